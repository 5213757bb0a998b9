"""amaranth.sim helpers shared by the unit tests of every streaming block.

Conventions (Amaranth 0.5 async testbenches only):

* `sim_top` wraps a component in a test-only module that owns the ``sync`` clock domain
  (so combinational components can be driven with clock ticks too, and reset can be asserted)
  and a free-running cycle counter, which lets concurrent testbenches timestamp transfers.
* `stream_send` / `stream_receive` drive and consume an Amaranth stream with optional random idle
  cycles (source side) and backpressure (sink side), record the cycle of every transfer, check
  the stream rules on the DUT's output (valid never drops and the payload never changes before
  the transfer), and fail with a timeout instead of hanging. The idle and backpressure patterns
  are those of the cocotb harness, `sim.streams.never` and `sim.streams.random_pattern`.
* Payloads are exchanged as raw bits (``int``): pack and unpack them with the layouts in
  `hw.layouts`, never with hand-written offsets.
"""

import os

from amaranth.hdl import ClockDomain, Module, Signal, Value
from amaranth.sim import Simulator

from sim.streams import never

__all__ = ["SimTop", "sim_top", "run_simulation", "stream_send", "stream_receive", "as_bits"]

CLOCK_PERIOD = 1e-6


class SimTop:
    """A test-only top: ``module`` holding ``dut``, clock domain ``domain``, counter ``cycle``.

    ``cycle`` counts clock edges; its value sampled at an edge is the index of that edge (0 for
    the first). The counter ignores reset so timestamps stay monotonic.
    """


    def __init__(self, dut, *, cycle_width=32):
        self.dut = dut
        self.module = Module()
        self.domain = ClockDomain("sync")
        self.cycle = Signal(cycle_width, reset_less=True)
        self.module.domains.sync = self.domain
        self.module.submodules.dut = dut
        self.module.d.sync += self.cycle.eq(self.cycle + 1)


def sim_top(dut):
    """Return a `SimTop` around ``dut``."""
    return SimTop(dut)


def run_simulation(top, *testbenches, clocked=True, vcd_name=None):
    """Simulate ``top`` (a `SimTop` or any elaboratable) with async ``testbenches``.

    With ``clocked`` the ``sync`` domain gets a clock. A VCD file ``<vcd_name>.vcd`` is written
    only when the ``VCD`` environment variable is set to a non-empty value.
    """
    module = top.module if isinstance(top, SimTop) else top
    sim = Simulator(module)
    if clocked:
        sim.add_clock(CLOCK_PERIOD, domain="sync")
    for testbench in testbenches:
        sim.add_testbench(testbench)
    if os.environ.get("VCD") and vcd_name:
        with sim.write_vcd(f"{vcd_name}.vcd"):
            sim.run()
    else:
        sim.run()


def as_bits(value):
    """Return the raw bits of a value read from the simulator (``int`` or `data.Const`)."""
    return value.as_bits() if hasattr(value, "as_bits") else int(value)


async def stream_send(ctx, stream, payloads, *, cycle, idle=None, timeout=1000):
    """Send ``payloads`` (raw bits) in order into ``stream``; return the cycle of each transfer.

    Before each payload the source idles (valid low) for as long as the ``idle`` pattern yields
    ``True``; once valid is raised it stays raised with a stable payload until the transfer, as
    the stream rules require. ``cycle`` is the `SimTop` counter. Fails if the sink is not
    ready for ``timeout`` consecutive cycles.
    """
    idle = never() if idle is None else idle
    cycles = []
    for payload in payloads:
        while next(idle):
            ctx.set(stream.valid, 0)
            await ctx.tick()
        ctx.set(stream.valid, 1)
        ctx.set(Value.cast(stream.payload), payload)
        for _ in range(timeout):
            _, _, ready, now = await ctx.tick().sample(stream.ready, cycle)
            if ready:
                cycles.append(now)
                break
        else:
            raise AssertionError(f"stream_send: payload #{len(cycles)} not accepted within "
                                 f"{timeout} cycles")
    ctx.set(stream.valid, 0)
    return cycles


async def stream_receive(ctx, stream, count, *, cycle, stall=None, timeout=1000,
                         drain_cycles=8):
    """Receive ``count`` payloads from ``stream``; return ``(payloads, cycles)``.

    ``payloads`` are raw bits; ``cycles`` the cycle of each transfer. ``ready`` is low whenever
    the ``stall`` pattern yields ``True`` (backpressure). The stream rules are checked on every
    cycle: an offered payload must stay offered, unchanged, until it is taken. After the last
    payload the sink stays ready for ``drain_cycles`` more cycles and fails if anything else
    arrives. Fails if nothing arrives for ``timeout`` consecutive cycles.
    """
    stall = never() if stall is None else stall
    payloads, cycles = [], []
    held = None
    quiet = 0
    while len(payloads) < count:
        ready = not next(stall)
        ctx.set(stream.ready, ready)
        _, _, valid, payload, now = await ctx.tick().sample(
            stream.valid, Value.cast(stream.payload), cycle)
        payload = as_bits(payload)
        if held is not None:
            assert valid, f"valid dropped at cycle {now} before payload {held:#x} was taken"
            assert payload == held, (f"payload changed at cycle {now} from {held:#x} to "
                                     f"{payload:#x} before the transfer")
        if valid and ready:
            payloads.append(payload)
            cycles.append(now)
            held = None
            quiet = 0
        else:
            held = payload if valid else None
            quiet += 1
            if quiet > timeout:
                raise AssertionError(f"stream_receive: got {len(payloads)} of {count} payloads, "
                                     f"then nothing for {timeout} cycles")
    ctx.set(stream.ready, 1)
    for _ in range(drain_cycles):
        _, _, valid, now = await ctx.tick().sample(stream.valid, cycle)
        assert not valid, f"unexpected extra payload offered at cycle {now}"
    ctx.set(stream.ready, 0)
    return payloads, cycles
