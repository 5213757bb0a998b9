"""In-process amaranth.sim transports: the host driver (`effectual.driver.Board`) against RTL.

Both transports own an `amaranth.sim.Simulator` and advance it only while the driver waits for
reply bytes, so the unchanged driver code runs against the simulated hardware:

* `ByteTransport` drives the byte streams of a `hw.board_tile.TileLink` directly (one byte per
  cycle; fast, for protocol tests).
* `PinTransport` drives the UART pins of a `hw.board_tile.BoardTile` with a bit-level 8N1 model
  (the host's serial port): bytes are written onto ``rx`` one bit per ``divisor`` cycles, and
  ``tx`` is decoded by sampling each bit in its middle, checking the start and stop bits.

``read(count)`` returns fewer bytes than asked when ``read_cycles`` simulated cycles pass without
a new byte, like a serial port's timeout.
"""

import collections

from amaranth.hdl import Module
from amaranth.sim import Simulator

__all__ = ["ByteTransport", "PinTransport", "SimulatedLineError"]

PERIOD = 1e-6


async def _ticks(ctx, count):
    # a loop rather than ctx.tick().repeat(): a background testbench is abandoned mid-wait at
    # the end of a run, and an abandoned repeat() generator warns when garbage-collected
    for _ in range(count):
        await ctx.tick()


class SimulatedLineError(AssertionError):
    """The simulated board's ``tx`` line broke the 8N1 format (a bad start or stop bit)."""


class _SimTransport:
    def __init__(self, dut, *, read_cycles):
        self.dut = dut
        self.read_cycles = read_cycles
        self.outgoing = collections.deque()
        self.incoming = collections.deque()
        self.cycle = 0
        m = Module()
        m.submodules.dut = dut
        self.sim = Simulator(m)
        self.sim.add_clock(PERIOD)
        self._add_benches()
        self.sent = 0
        self.received = 0

    def write(self, data):
        """Queue ``data`` for the board."""
        self.outgoing.extend(bytes(data))

    def run(self, cycles):
        """Advance the simulation by ``cycles`` clock cycles."""
        self.cycle += cycles
        self.sim.run_until(self.cycle * PERIOD)

    def read(self, count, *, step=None):
        """Return up to ``count`` received bytes; fewer after ``read_cycles`` without a byte."""
        step = step or self._step
        quiet = 0
        have = len(self.incoming)
        while len(self.incoming) < count and quiet < self.read_cycles:
            self.run(step)
            if len(self.incoming) > have or self.outgoing or self._busy():
                have, quiet = len(self.incoming), 0
            else:
                quiet += step
        return bytes(self.incoming.popleft() for _ in range(min(count, len(self.incoming))))

    def drain(self, quiet_cycles):
        """Run until nothing was received for ``quiet_cycles``; return what arrived."""
        out = bytearray()
        while True:
            before = len(self.incoming)
            self.run(quiet_cycles)
            if len(self.incoming) == before and not self.outgoing and not self._busy():
                break
        while self.incoming:
            out.append(self.incoming.popleft())
        return bytes(out)


class ByteTransport(_SimTransport):
    """Byte-stream transport into a `hw.board_tile.TileLink` (``rx``/``tx`` streams)."""

    _step = 16

    def __init__(self, dut, *, read_cycles=20000, gap=0):
        self.gap = gap
        self._sending = False
        super().__init__(dut, read_cycles=read_cycles)

    def _busy(self):
        return self._sending

    def _add_benches(self):
        dut = self.dut

        async def source(ctx):
            while True:
                if not self.outgoing:
                    self._sending = False
                    ctx.set(dut.rx.valid, 0)
                    await ctx.tick()
                    continue
                self._sending = True
                ctx.set(dut.rx.valid, 1)
                ctx.set(dut.rx.payload, self.outgoing.popleft())
                await ctx.tick()
                self.sent += 1
                if self.gap:
                    ctx.set(dut.rx.valid, 0)
                    await _ticks(ctx, self.gap)

        async def sink(ctx):
            ctx.set(dut.tx.ready, 1)
            async for _, _, valid, payload in ctx.tick().sample(dut.tx.valid, dut.tx.payload):
                if valid:
                    self.incoming.append(payload)
                    self.received += 1

        self.sim.add_testbench(source, background=True)
        self.sim.add_testbench(sink, background=True)


class PinTransport(_SimTransport):
    """UART-pin transport into a `hw.board_tile.BoardTile` (``rx``/``tx`` pins, 8N1).

    Parameters
    ----------
    dut : `hw.board_tile.BoardTile`
    read_cycles : int
        Cycles without a received byte after which `read` gives up.
    bit_cycles : int, optional
        The host's bit period in cycles, sending and receiving (default: the board's divisor;
        another value models a host whose baud rate is slightly off).

    Attributes
    ----------
    raw_bits : deque of 0/1
        Line levels sent before any queued byte, one per bit period (to send malformed
        characters).
    """

    def __init__(self, dut, *, read_cycles=None, bit_cycles=None):
        self.divisor = dut.divisor
        self.bit_cycles = bit_cycles or dut.divisor
        self._step = 10 * self.divisor
        self._sending = False
        self._receiving = False
        self.raw_bits = collections.deque()
        super().__init__(dut, read_cycles=read_cycles or 200 * self.divisor)

    def _busy(self):
        return self._sending or self._receiving

    def _add_benches(self):
        dut = self.dut
        d = self.divisor

        async def host_tx(ctx):
            ctx.set(dut.rx, 1)
            while True:
                if self.raw_bits:
                    self._sending = True
                    ctx.set(dut.rx, self.raw_bits.popleft())
                    await _ticks(ctx, self.bit_cycles)
                    continue
                if not self.outgoing:
                    self._sending = False
                    await _ticks(ctx, d)
                    continue
                self._sending = True
                byte = self.outgoing.popleft()
                for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
                    ctx.set(dut.rx, bit)
                    await _ticks(ctx, self.bit_cycles)
                self.sent += 1

        async def host_rx(ctx):
            while True:
                await ctx.negedge(dut.tx)
                self._receiving = True
                d = self.bit_cycles
                await _ticks(ctx, d // 2)
                if ctx.get(dut.tx) != 0:
                    raise SimulatedLineError("tx: start bit not low in its middle")
                byte = 0
                for i in range(8):
                    await _ticks(ctx, d)
                    byte |= ctx.get(dut.tx) << i
                await _ticks(ctx, d)
                if ctx.get(dut.tx) != 1:
                    raise SimulatedLineError(f"tx: stop bit low after byte 0x{byte:02x}")
                self.incoming.append(byte)
                self.received += 1
                self._receiving = False

        self.sim.add_testbench(host_tx, background=True)
        self.sim.add_testbench(host_rx, background=True)
