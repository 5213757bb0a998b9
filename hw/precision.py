"""Dynamic precision detector: the minimal width (and common trailing zeros) of a value group."""

from functools import reduce
import operator

from amaranth.hdl import Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .layouts import group_layout, precision_layout
from .params import PrecisionParams

__all__ = ["DynamicPrecisionDetector"]


class DynamicPrecisionDetector(wiring.Component):
    """Detect the dynamic precision of each group of values on a stream.

    For every group of ``group_size`` values the detector outputs the smallest ``width`` such that
    every value of the group fits a ``width``-bit two's-complement field (``signed``) or a
    ``width``-bit unsigned field; ``width`` is at least 1, so an all-zero group (and, signed, an
    all-minus-one group) is charged one bit. With ``trim_lsb`` it also outputs ``lsb``, the number
    of trailing zero bits common to every non-zero value of the group (0 for an all-zero group),
    and ``width`` is reduced by ``lsb``: every value is then ``field << lsb`` where ``field`` holds
    bits ``lsb .. lsb + width - 1`` of the value, sign-extended when ``signed``. The reference is
    `golden.precision.group_precision`, which this block equals bit for bit.

    The datapath is: sign adjustment (``~v`` for negative values when ``signed``), OR reduction
    over the group, a leading-one detector giving ``width``; with ``trim_lsb``, a trailing-one
    detector on the OR of the raw values giving ``lsb``, and ``width - lsb``.

    Parameters
    ----------
    group_size : int, 1..256
        Number of values that share one precision.
    value_width : int, 1..32
        Width in bits of each value.
    signed : bool
        Values are two's complement (``True``) or unsigned (``False``).
    trim_lsb : bool
        Also detect, output and remove the trailing zero bits common to the group.
    pipelined : bool
        Register the result (``latency`` 1) instead of computing it combinationally
        (``latency`` 0).

    Members
    -------
    i_stream : ``In(stream.Signature(hw.layouts.group_layout(params)))``
        Groups of values: an `ArrayLayout` of ``group_size`` elements of ``signed(value_width)``
        or ``unsigned(value_width)``, element 0 in the least significant bits.
    o_stream : ``Out(stream.Signature(hw.layouts.precision_layout(params)))``
        One precision per group, in input order: a `StructLayout` with ``width``
        (``unsigned(params.width_bits)``) and, only when ``trim_lsb``, ``lsb``
        (``unsigned(params.lsb_bits)``).

    Latency and flow control
    ------------------------
    Every accepted group produces exactly one output, in order; ``latency`` cycles separate the
    input transfer from the cycle in which its result is first offered on ``o_stream``.

    * ``pipelined=False`` (``latency`` 0): purely combinational, no clock or reset.
      ``o_stream.valid = i_stream.valid``, ``i_stream.ready = o_stream.ready`` and
      ``o_stream.payload`` is a function of ``i_stream.payload``.
    * ``pipelined=True`` (``latency`` 1): one register stage in the ``sync`` domain (Verilog
      ports ``clk`` and ``rst``, synchronous active-high reset) with full throughput:
      ``i_stream.ready = ~o_stream.valid | o_stream.ready``, so a new group is accepted in the
      same cycle the previous result leaves. ``o_stream.valid`` does not depend on
      ``o_stream.ready`` and, once asserted, ``o_stream.valid`` and ``o_stream.payload`` hold
      until the transfer. Reset empties the stage (``o_stream.valid`` = 0).

    Raises
    ------
    TypeError
        If a parameter has the wrong type (see `hw.params.PrecisionParams`).
    ValueError
        If ``group_size`` or ``value_width`` is out of range.
    """

    def __init__(self, *, group_size=16, value_width=16, signed=True, trim_lsb=False,
                 pipelined=False):
        self._params = PrecisionParams(group_size=group_size, value_width=value_width,
                                       signed=signed, trim_lsb=trim_lsb, pipelined=pipelined)
        super().__init__({
            "i_stream": In(stream.Signature(group_layout(self._params))),
            "o_stream": Out(stream.Signature(precision_layout(self._params))),
        })

    @property
    def params(self):
        """The validated `PrecisionParams` of this detector."""
        return self._params

    @property
    def group_size(self):
        """Number of values per group."""
        return self._params.group_size

    @property
    def value_width(self):
        """Width in bits of each value."""
        return self._params.value_width

    @property
    def signed(self):
        """Whether values are two's complement."""
        return self._params.signed

    @property
    def trim_lsb(self):
        """Whether common trailing zero bits are detected and removed from ``width``."""
        return self._params.trim_lsb

    @property
    def pipelined(self):
        """Whether the result is registered."""
        return self._params.pipelined

    @property
    def latency(self):
        """Cycles from an input transfer to its result being offered (0 or 1)."""
        return self._params.latency

    @staticmethod
    def _or_reduce(m, values, name, *, net):
        """Return the bitwise OR of ``values``; a net called ``name`` if ``net`` is true.

        A plain input slice must not get a net: Verilog would keep the alias and never read it.
        """
        result = reduce(operator.or_, values)
        if net:
            result_net = Signal(len(result), name=name)
            m.d.comb += result_net.eq(result)
            result = result_net
        return result

    def elaborate(self, platform):
        m = Module()
        p = self._params
        w = p.value_width
        raw = [self.i_stream.payload[k].as_unsigned() for k in range(p.group_size)]

        # Only the bits below the sign bit can widen a signed value: the sign is folded in with
        # an XOR (~v for negative v), so the OR of the folded values never has its top bit set.
        magnitude_width = w - 1 if p.signed else w
        if p.signed:
            magnitude = [v[:w - 1] ^ v[w - 1].replicate(w - 1) for v in raw]
        else:
            magnitude = raw

        # Registered and trimmed results need named intermediate nets; a combinational untrimmed
        # result is detected straight into the output field (no alias net left unused).
        detect_into_output = not (p.pipelined or p.trim_lsb) and magnitude_width > 0
        if not magnitude_width:
            width = Const(1, p.width_bits)  # 1-bit signed values are 0 or -1: always one bit
        else:
            width = self.o_stream.payload.width if detect_into_output else Signal(p.width_bits)
            magnitude_or = self._or_reduce(m, magnitude, "magnitude_or",
                                           net=p.group_size > 1 or p.signed)
            # Leading-one detector: the last matching assignment wins, i.e. the highest set bit.
            m.d.comb += width.eq(Const(1, p.width_bits))
            for i in range(magnitude_width):
                with m.If(magnitude_or[i]):
                    m.d.comb += width.eq(Const(i + 1 + p.signed, p.width_bits))

        result = {"width": width}
        if p.trim_lsb:
            raw_or = self._or_reduce(m, raw, "raw_or", net=p.group_size > 1)
            # Trailing-one detector: scanned from the MSB down so the lowest set bit wins. It is
            # as wide as `width` so that the subtraction below has equal operand widths.
            lsb = Signal(p.width_bits)
            m.d.comb += lsb.eq(Const(0, p.width_bits))
            for i in reversed(range(w)):
                with m.If(raw_or[i]):
                    m.d.comb += lsb.eq(Const(i, p.width_bits))
            # lsb < width always, so the carry bit of the difference is constant zero; the
            # "unused" in the name is Verilator's default --unused-regexp for such bits.
            trimmed_width_unused_msb = Signal(p.width_bits + 1)
            m.d.comb += trimmed_width_unused_msb.eq(width - lsb)
            result = {"width": trimmed_width_unused_msb[:p.width_bits],
                      "lsb": lsb[:p.lsb_bits]}

        assign = [] if detect_into_output else [
            getattr(self.o_stream.payload, name).eq(value) for name, value in result.items()]
        if p.pipelined:
            m.d.comb += self.i_stream.ready.eq(~self.o_stream.valid | self.o_stream.ready)
            with m.If(self.i_stream.ready):
                m.d.sync += self.o_stream.valid.eq(self.i_stream.valid)
            with m.If(self.i_stream.valid & self.i_stream.ready):
                m.d.sync += assign
        else:
            m.d.comb += [
                self.o_stream.valid.eq(self.i_stream.valid),
                self.i_stream.ready.eq(self.o_stream.ready),
                *assign,
            ]
        return m
