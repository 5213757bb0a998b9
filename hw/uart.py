"""8N1 UART transmitter and receiver with a fixed baud divisor.

A bit lasts ``divisor`` clock cycles (``divisor = round(clock_hz / baud)``; the default host link
uses 115200 baud, which every USB-serial bridge on the supported boards (FTDI FT2232H on the
iCEBreaker and on the ULX3S) handles: 104 cycles at 12 MHz, 217 at 25 MHz, both within 0.2 % of
the nominal rate). A character is a start bit (0), eight data bits, least significant first, and
one stop bit (1); the line idles high.
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from .params import check_int

__all__ = ["UARTTx", "UARTRx", "MIN_DIVISOR", "MAX_DIVISOR", "baud_divisor"]

MIN_DIVISOR = 4
MAX_DIVISOR = 65535


def baud_divisor(clock_hz, baud):
    """Return the divisor (clock cycles per bit) nearest to ``clock_hz / baud``.

    Raises ``ValueError`` if the rate is off by more than 2 % (a receiver samples mid-bit, so the
    two ends together may be off by about 4 % over a 10-bit character) or the divisor is out of
    range ``MIN_DIVISOR..MAX_DIVISOR``.
    """
    if not isinstance(baud, int) or isinstance(baud, bool) or baud <= 0:
        raise ValueError(f"baud must be a positive integer, not {baud!r}")
    divisor = max(1, round(clock_hz / baud))
    if not MIN_DIVISOR <= divisor <= MAX_DIVISOR:
        raise ValueError(f"baud {baud} at {clock_hz / 1e6:g} MHz needs a divisor of {divisor}; "
                         f"it must be from {MIN_DIVISOR} to {MAX_DIVISOR}")
    error = abs(clock_hz / divisor - baud) / baud
    if error > 0.02:
        raise ValueError(f"baud {baud} at {clock_hz / 1e6:g} MHz is off by {100 * error:.1f} % "
                         f"(divisor {divisor}); at most 2 % is accepted")
    return divisor


class UARTTx(wiring.Component):
    """Serialize bytes onto an 8N1 line.

    Parameters
    ----------
    divisor : int, 4..65535
        Clock cycles per bit.

    Members
    -------
    i_stream : ``In(stream.Signature(8))``
        Bytes to send.
    tx : ``Out(1, init=1)``
        The line (a register; high when idle).

    Latency and flow control
    ------------------------
    A byte taken in cycle ``c`` drives its start bit on ``tx`` from cycle ``c + 1`` for
    ``divisor`` cycles, then bits 0..7 and the stop bit, each for ``divisor`` cycles.
    ``i_stream.ready`` is high when the line is idle and in the last cycle of a stop bit, so
    back-to-back bytes follow each other every ``10 * divisor`` cycles with no gap.
    """

    def __init__(self, *, divisor):
        self._divisor = check_int("divisor", divisor, MIN_DIVISOR, MAX_DIVISOR)
        super().__init__({"i_stream": In(stream.Signature(8)), "tx": Out(1, init=1)})

    @property
    def divisor(self):
        """Clock cycles per bit."""
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        busy = Signal()
        timer = Signal(range(self._divisor))
        remaining = Signal(range(10))        # bits still to send after the current one
        shift = Signal(9)                    # data bits then the stop bit
        last = busy & (remaining == 0) & (timer == 0)
        m.d.comb += self.i_stream.ready.eq(~busy | last)
        with m.If(self.i_stream.valid & self.i_stream.ready):
            m.d.sync += [busy.eq(1), self.tx.eq(0), shift.eq(Cat(self.i_stream.payload, 1)),
                         remaining.eq(9), timer.eq(self._divisor - 1)]
        with m.Elif(busy):
            with m.If(timer != 0):
                m.d.sync += timer.eq(timer - 1)
            with m.Elif(remaining != 0):
                m.d.sync += [self.tx.eq(shift[0]), shift.eq(shift >> 1),
                             remaining.eq(remaining - 1), timer.eq(self._divisor - 1)]
            with m.Else():
                m.d.sync += busy.eq(0)
        return m


class UARTRx(wiring.Component):
    """Deserialize an 8N1 line into bytes.

    The line passes a two-flip-flop synchronizer (initially high). A low level starts a
    character; the start bit is checked again in its middle (``divisor // 2`` cycles later; a
    shorter low pulse is ignored) and each data bit and the stop bit are sampled one
    ``divisor`` later each. A character whose stop bit samples low is discarded with a
    ``frame_error`` pulse, and the receiver then waits for the line to go high (a break does not
    produce a stream of characters). After a good stop bit sample the receiver immediately looks
    for the next start bit, so a transmitter up to about 4 % fast or slow is received.

    Parameters
    ----------
    divisor : int, 4..65535
        Clock cycles per bit.

    Members
    -------
    rx : ``In(1, init=1)``
        The line (asynchronous).
    o_stream : ``Out(stream.Signature(8))``
        Received bytes. ``valid`` rises one cycle after the stop bit sample and the byte is held
        until taken.
    frame_error : ``Out(1)``
        One-cycle pulse: a character had a low stop bit and was discarded.
    overrun : ``Out(1)``
        One-cycle pulse: a character completed while the previous byte was still not taken; the
        new byte was discarded.

    Latency
    -------
    ``o_stream.valid`` rises ``2 + divisor // 2 + 9 * divisor + 1`` cycles after the falling edge
    of the start bit reaches ``rx`` (2 synchronizer stages, the half start bit, 9 bit periods,
    the output register).
    """

    def __init__(self, *, divisor):
        self._divisor = check_int("divisor", divisor, MIN_DIVISOR, MAX_DIVISOR)
        super().__init__({"rx": In(1, init=1), "o_stream": Out(stream.Signature(8)),
                          "frame_error": Out(1), "overrun": Out(1)})

    @property
    def divisor(self):
        """Clock cycles per bit."""
        return self._divisor

    @property
    def latency(self):
        """Cycles from the start bit's falling edge on ``rx`` to ``o_stream.valid``."""
        return 2 + self._divisor // 2 + 9 * self._divisor + 1

    def elaborate(self, platform):
        m = Module()
        line = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, line, init=1)
        timer = Signal(range(self._divisor))
        bit = Signal(range(9))
        shift = Signal(8)
        m.d.sync += [self.frame_error.eq(0), self.overrun.eq(0)]
        with m.If(self.o_stream.ready):
            m.d.sync += self.o_stream.valid.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += timer.eq(self._divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(line):
                    m.next = "IDLE"                      # glitch shorter than half a bit
                with m.Else():
                    m.d.sync += [timer.eq(self._divisor - 1), bit.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [shift.eq(Cat(shift[1:], line)), bit.eq(bit + 1),
                                 timer.eq(self._divisor - 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(~line):
                    m.d.sync += self.frame_error.eq(1)
                    m.next = "BREAK"
                with m.Else():
                    with m.If(self.o_stream.valid & ~self.o_stream.ready):
                        m.d.sync += self.overrun.eq(1)
                    with m.Else():
                        m.d.sync += [self.o_stream.payload.eq(shift),
                                     self.o_stream.valid.eq(1)]
                    m.next = "IDLE"
            with m.State("BREAK"):
                with m.If(line):
                    m.next = "IDLE"
        return m
