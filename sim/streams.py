"""cocotb 2.1 drivers and monitors for Amaranth ``lib.stream`` ports in emitted Verilog.

An Amaranth stream member ``<name>`` of a component appears in the Verilog as three ports:
``<name>__payload`` (one packed vector), ``<name>__valid`` and ``<name>__ready``. The classes here
drive and observe such ports cycle by cycle:

* `Clocking` defines the cycles: the falling edges of ``clk`` for a clocked design, or virtual
  cycles of the same period (made with `Timer`) for a purely combinational design, which has no
  clock port. In both cases a cycle starts at time ``period * k + period / 2``, inputs are driven
  at that point and everything is sampled in the `ReadOnly` phase of the same time step, i.e.
  with the values that the next rising edge (at ``period * (k + 1)``) sees. A transfer in cycle
  ``k`` is a cycle where ``valid`` and ``ready`` are both high at that sampling point.
* `StreamDriver` sends payloads in order, with random idle cycles between them; `StreamMonitor`
  takes payloads with random backpressure, checks the stream rules (once offered, a payload stays
  offered and unchanged until taken) and records every transfer with its cycle. Waiting for
  them fails after a number of cycles without any transfer, so runs of any length work and a
  hang is still reported.
* The driver takes raw payload bits, packed with the `amaranth.lib.data` layouts of `hw.layouts`
  (e.g. `hw.layouts.pack_group`, which range-checks every value); the monitor unpacks with
  ``layout.from_bits(bits)``. No bit offset is written by hand.
* The idle/backpressure patterns `never` and `random_pattern` are also used by the amaranth.sim
  helpers (``tests/helpers.py``); importing this module only imports cocotb, it needs no
  running simulator.
"""

import collections
import itertools

import numpy as np

import cocotb
from cocotb.clock import Clock
from cocotb.simtime import convert, get_sim_time
from cocotb.triggers import FallingEdge, ReadOnly, Timer

__all__ = ["Clocking", "StreamDriver", "StreamMonitor", "never", "random_pattern"]


def never():
    """Return an endless pattern that never inserts idle/backpressure cycles."""
    return itertools.repeat(False)


def random_pattern(probability, *, seed):
    """Return an endless pattern of booleans, each ``True`` with ``probability``.

    ``True`` means "insert an idle cycle" for a driver and "not ready" for a monitor.

    Parameters
    ----------
    probability : float
        Probability of ``True``, from 0 to 1.
    seed : int or `numpy.random.Generator`
        Anything `numpy.random.default_rng` accepts: an ``int`` gives the pattern its own
        generator (a reproducible run); a ``Generator`` is used as it is (shared with the caller,
        drawn from 256 values at a time).
    """
    rng = np.random.default_rng(seed)
    while True:
        yield from (rng.random(256) < probability).tolist()


class Clocking:
    """Cycle boundaries of a testbench, with or without a ``clk`` port.

    Parameters
    ----------
    dut : cocotb handle
        The toplevel. If it has a ``clk`` port, `start` drives it; if it has ``rst``, `reset`
        pulses it (synchronous, active high, as Amaranth emits it).
    period_ns : int
        Clock period (or virtual cycle length) in nanoseconds; must be even.
    """

    def __init__(self, dut, *, period_ns=10):
        if period_ns <= 0 or period_ns % 2:
            raise ValueError(f"period_ns must be a positive even integer, not {period_ns!r}")
        self.dut = dut
        self.period_ns = period_ns
        self.clk = getattr(dut, "clk") if _has_port(dut, "clk") else None
        self.rst = getattr(dut, "rst") if _has_port(dut, "rst") else None
        self._clock = None
        self._period_steps = convert(period_ns, "ns", to="step")

    @property
    def clocked(self):
        """Whether the design has a clock port."""
        return self.clk is not None

    def start(self):
        """Start the clock (no-op for a combinational design)."""
        if self.clocked and self._clock is None:
            self._clock = Clock(self.clk, self.period_ns, unit="ns")
            self._clock.start(start_high=True)

    def cycle(self):
        """Return the index of the current cycle."""
        return get_sim_time("step") // self._period_steps

    async def next_cycle(self):
        """Wait for the start of the next cycle (where inputs may be driven)."""
        if self.clocked:
            await FallingEdge(self.clk)
        else:
            now, period = get_sim_time("step"), self._period_steps
            target = ((now - period // 2) // period + 1) * period + period // 2
            await Timer(target - now, unit="step")

    async def cycles(self, count):
        """Wait for ``count`` cycle starts."""
        for _ in range(count):
            await self.next_cycle()

    async def reset(self, cycles=2):
        """Hold ``rst`` high for ``cycles`` rising edges (no-op without a reset port)."""
        if self.rst is None:
            return
        await self.next_cycle()
        self.rst.value = 1
        await self.cycles(cycles)
        self.rst.value = 0


def _has_port(dut, name):
    try:
        getattr(dut, name)
    except AttributeError:
        return False
    return True


def _read_bits(handle, what):
    value = handle.value
    if not value.is_resolvable:
        raise AssertionError(f"{what} is not resolvable: {value}")
    return int(value)  # Logic (1 bit) or LogicArray (unsigned)


class StreamDriver:
    """Drive the ``<name>__valid/payload`` inputs of a stream and watch its ``ready``.

    Parameters
    ----------
    dut : cocotb handle
    name : str
        Stream member name, e.g. ``"i_stream"``.
    layout : `amaranth.lib.data.Layout`
        Payload layout; `send` takes raw bits of ``layout.size`` bits (pack them with the layout,
        e.g. `hw.layouts.pack_group`).
    clocking : `Clocking`
    idle : iterator of bool, optional
        Consulted once per cycle while a payload is waiting: ``True`` keeps ``valid`` low for
        that cycle. Once ``valid`` is raised it stays high, with the payload unchanged, until the
        transfer.

    Attributes
    ----------
    sent : list of ``(bits, cycle)``
        Every transfer, in order.
    """

    def __init__(self, dut, name, layout, clocking, *, idle=None):
        self.layout = layout
        self.clocking = clocking
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.payload = getattr(dut, f"{name}__payload")
        self.idle = never() if idle is None else idle
        self.queue = collections.deque()
        self.sent = []
        self._current = None
        self._task = None
        self.valid.value = 0

    def send(self, bits):
        """Queue one payload, given as its raw bits (an ``int`` from 0 to 2**layout.size - 1).

        Raises
        ------
        TypeError
            If ``bits`` is not an ``int``.
        ValueError
            If ``bits`` does not fit in ``layout.size`` bits.
        """
        if not isinstance(bits, int) or isinstance(bits, bool):
            raise TypeError(f"StreamDriver.send: bits must be an int, not {bits!r}")
        if not 0 <= bits < 1 << self.layout.size:
            raise ValueError(f"StreamDriver.send: bits {bits:#x} out of range: must be from 0 to "
                             f"{(1 << self.layout.size) - 1:#x} ({self.layout.size} bits)")
        self.queue.append(bits)

    @property
    def pending(self):
        """Number of payloads queued or being offered, i.e. not transferred yet."""
        return len(self.queue) + (self._current is not None)

    def start(self):
        """Start driving (once)."""
        if self._task is None:
            self._task = cocotb.start_soon(self._run())

    async def wait_idle(self, timeout_cycles=1000):
        """Wait until every queued payload has been transferred.

        Fails with `AssertionError` if payloads are pending and none is transferred for
        ``timeout_cycles`` consecutive cycles.
        """
        transferred, quiet = len(self.sent), 0
        while self.pending:
            await self.clocking.next_cycle()
            if len(self.sent) > transferred:
                transferred, quiet = len(self.sent), 0
                continue
            quiet += 1
            if quiet >= timeout_cycles:
                raise AssertionError(f"StreamDriver: {self.pending} payloads still pending, none "
                                     f"transferred for {timeout_cycles} cycles")

    async def _run(self):
        while True:
            await self.clocking.next_cycle()
            if self._current is None:
                if self.queue and not next(self.idle):
                    self._current = self.queue.popleft()
                    self.payload.value = self._current
                    self.valid.value = 1
                else:
                    self.valid.value = 0
            await ReadOnly()
            if self._current is not None and _read_bits(self.ready, "ready"):
                self.sent.append((self._current, self.clocking.cycle()))
                self._current = None


class StreamMonitor:
    """Drive the ``<name>__ready`` input of a stream and record what it transfers.

    Parameters
    ----------
    dut : cocotb handle
    name : str
        Stream member name, e.g. ``"o_stream"``.
    layout : `amaranth.lib.data.Layout`
        Payload layout; received payloads are ``layout.from_bits(bits)``.
    clocking : `Clocking`
    stall : iterator of bool, optional
        Consulted once per cycle: ``True`` keeps ``ready`` low for that cycle (backpressure).

    Attributes
    ----------
    received : list of ``(payload, cycle)``
        Every transfer, in order; ``payload`` is a `data.Const` of ``layout``.
    errors : list of str
        Stream-rule violations seen (each is also raised in the monitor's task).
    """

    def __init__(self, dut, name, layout, clocking, *, stall=None):
        self.layout = layout
        self.clocking = clocking
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.payload = getattr(dut, f"{name}__payload")
        self.stall = never() if stall is None else stall
        self.received = []
        self.errors = []
        self._task = None
        self.ready.value = 0

    def start(self):
        """Start monitoring (once)."""
        if self._task is None:
            self._task = cocotb.start_soon(self._run())

    async def wait_for(self, count, timeout_cycles=1000):
        """Wait until ``count`` payloads have been received in total.

        Fails with `AssertionError` on a stream-rule violation, or if fewer than ``count`` have
        arrived and none arrives for ``timeout_cycles`` consecutive cycles.
        """
        received, quiet = len(self.received), 0
        while len(self.received) < count and not self.errors:
            await self.clocking.next_cycle()
            if len(self.received) > received:
                received, quiet = len(self.received), 0
                continue
            quiet += 1
            if quiet >= timeout_cycles:
                raise AssertionError(f"StreamMonitor: received {len(self.received)} of {count} "
                                     f"payloads, then nothing for {timeout_cycles} cycles")
        if self.errors:
            raise AssertionError(self.errors[0])

    def _fail(self, message):
        self.errors.append(message)
        raise AssertionError(message)

    async def _run(self):
        held = None
        while True:
            await self.clocking.next_cycle()
            ready = not next(self.stall)
            self.ready.value = int(ready)
            await ReadOnly()
            cycle = self.clocking.cycle()
            valid = _read_bits(self.valid, "valid")
            bits = _read_bits(self.payload, "payload") if valid else None
            if held is not None:
                if not valid:
                    self._fail(f"valid dropped in cycle {cycle} before payload {held:#x} was "
                               f"taken")
                if bits != held:
                    self._fail(f"payload changed in cycle {cycle} from {held:#x} to {bits:#x} "
                               f"before the transfer")
            if valid and ready:
                payload = self.layout.from_bits(bits)
                self.received.append((payload, cycle))
                held = None
            else:
                held = bits
