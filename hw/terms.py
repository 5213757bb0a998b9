"""Term encoding in hardware: activations to streams of signed power-of-two terms.

A *term* is ``(-1)**negative * 2**position``; an activation is the sum of its terms under one of
the encodings of `golden.terms` (``"naf"``, ``"booth"``, ``"binary"``), computed on the
magnitude ``|v|`` with every term sign flipped for a negative value (sign-magnitude, exactly as
`golden.terms.encode_terms`). The elaboration helpers `term_masks` and `lowest_term` are the
datapath; `TermEncoder` wraps them into a stream component, and the term-serial units of
`hw.term_serial` reuse the helpers with their own per-lane advance control.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .params import TermEncoderParams

__all__ = ["TermEncoder", "term_masks", "lowest_term", "act_row_layout", "term_layout",
           "term_beat_layout", "pack_act_row", "unpack_term_beat"]


def act_row_layout(params):
    """Return the layout of one row of activations: ``ArrayLayout`` of ``lanes`` elements of
    ``signed(act_width)`` / ``unsigned(act_width)``, lane 0 in the least significant bits."""
    shape = signed(params.act_width) if params.act_signed else unsigned(params.act_width)
    return data.ArrayLayout(shape, params.lanes)


def term_layout(params):
    """Return the layout of one lane's term: ``StructLayout`` of ``valid`` (1: the lane has a
    term in this beat), ``negative`` (1: the term is ``-2**position``) and ``position``
    (``unsigned(params.position_bits)``, ``0..act_width``). ``negative`` and ``position`` are 0
    when ``valid`` is 0."""
    return data.StructLayout({"valid": 1, "negative": 1,
                              "position": unsigned(params.position_bits)})


def term_beat_layout(params):
    """Return the layout of one output beat: ``StructLayout`` of ``terms`` (``ArrayLayout`` of
    `term_layout`, one per lane, lane 0 in the least significant bits) and ``last`` (1 bit,
    above ``terms``: the final beat of the row)."""
    return data.StructLayout({"terms": data.ArrayLayout(term_layout(params), params.lanes),
                              "last": 1})


def pack_act_row(params, values):
    """Return the payload bits (``int``) of one activation row given as ``lanes`` integers.

    Raises
    ------
    ValueError
        If the row does not have ``lanes`` values or a value is out of range.
    """
    values = [int(value) for value in values]
    if len(values) != params.lanes:
        raise ValueError(f"a row needs {params.lanes} values, not {len(values)}")
    for index, value in enumerate(values):
        if not params.min_value <= value <= params.max_value:
            raise ValueError(f"values[{index}] = {value} is out of range: must be from "
                             f"{params.min_value} to {params.max_value}")
    return act_row_layout(params).const(values).as_bits()


def unpack_term_beat(params, bits):
    """Return ``(valid, negative, position, last)`` of a beat's payload bits.

    ``valid``, ``negative`` and ``position`` are lists of ``lanes`` ints; decoded with plain
    shifts of the widths given by `term_layout` (field order valid, negative, position).
    """
    bits = int(bits)
    lane_bits = 2 + params.position_bits
    valid, negative, position = [], [], []
    for lane in range(params.lanes):
        field = bits >> (lane * lane_bits)
        valid.append(field & 1)
        negative.append((field >> 1) & 1)
        position.append((field >> 2) & ((1 << params.position_bits) - 1))
    return valid, negative, position, (bits >> (params.lanes * lane_bits)) & 1


def term_masks(m, value, *, width, signed, encoding, name="act"):
    """Build the term masks of ``value``; return ``(terms, negatives)`` (``width + 1``-bit values).

    Bit ``k`` of ``terms`` is set when the encoding has a non-zero digit at position ``k``; bit
    ``k`` of ``negatives`` when that digit is ``-1`` (after the sign of a negative ``value`` is
    applied), i.e. ``value == sum over k in terms of (-1 if negatives[k] else 1) * 2**k``.
    Combinational; the nets are added to ``m.d.comb``.

    Parameters
    ----------
    m : Module
    value : Value
        A ``width``-bit activation, two's complement if ``signed``.
    width : int
        Activation width; the magnitude ``|value|`` fits ``width`` bits (``2**(width-1)`` for
        the most negative signed value).
    signed : bool
    encoding : {"naf", "booth", "binary"}
    name : str
        Prefix of the nets. Nets whose top bit is a carry that is never read have ``unused`` in
        their names (Verilator's default ``--unused-regexp``).
    """
    value = value.as_unsigned()
    negative = value[width - 1] if signed else Const(0, 1)
    if signed:
        # -v of the most negative v is 2**(width-1): it fits the width-bit magnitude
        magnitude = Signal(width, name=f"{name}_magnitude")
        negated = Signal(width + 1, name=f"{name}_negated_unused_msb")
        m.d.comb += negated.eq(-value.as_signed())
        m.d.comb += magnitude.eq(Mux(negative, negated[:width], value))
    else:
        magnitude = value  # a net here would be an unread alias of the input

    def bit(position):
        return magnitude[position] if 0 <= position < width else Const(0, 1)

    if encoding == "binary" or (encoding == "booth" and width < 3):
        # (DNNsim's Booth rewrites only runs of three or more ones: none fit in two bits)
        plus, minus = Cat(magnitude, Const(0, 1)), Const(0, width + 1)
    elif encoding == "naf":
        # The NAF of x is the signed-digit form of x + (x >> 1) minus (x >> 1) (golden.terms),
        # built here as its LSB-first carry recoding, one carry bit per position: with
        # s = x[i] ^ carry, the digit is +1 if s and not x[i+1], -1 if s and x[i+1], else 0;
        # the carry out is (s & x[i+1]) | (x[i] & carry).
        # (Constant operands are folded here: a net of a constant would be left unread.)
        plus_bits, minus_bits = [], []
        carry = None  # a constant 0
        for i in range(width):
            if carry is None:
                s_ = magnitude[i]
            else:
                s_ = Signal(name=f"{name}_naf_sum_{i}")
                m.d.comb += s_.eq(magnitude[i] ^ carry)
            if i + 1 < width:
                following = magnitude[i + 1]
                plus_bits.append(s_ & ~following)
                minus_bits.append(s_ & following)
                next_carry = Signal(name=f"{name}_naf_carry_{i + 1}")
                m.d.comb += next_carry.eq(s_ & following if carry is None
                                          else (s_ & following) | (magnitude[i] & carry))
            else:  # x[i+1] = 0
                plus_bits.append(s_)
                minus_bits.append(Const(0, 1))
                next_carry = None
                if carry is not None:
                    next_carry = Signal(name=f"{name}_naf_carry_{i + 1}")
                    m.d.comb += next_carry.eq(magnitude[i] & carry)
            carry = next_carry
        plus_bits.append(Const(0, 1) if carry is None else carry)  # position width
        minus_bits.append(Const(0, 1))
        plus, minus = Cat(*plus_bits), Cat(*minus_bits)
    elif encoding == "booth":
        # DNNsim's MSB-first scan (golden.terms docstring) as one state bit per position,
        # "inside a run" before bit j is scanned, and vector operations for the digits.
        # With t = b[j] & b[j-1] & b[j-2] (a run of three starts here when outside a run) and
        # e = b[j] & ~b[j-1] & ~b[j-2] (the run's lowest one), the state after bit j is
        # (state | t) & ~e.
        below1 = Cat(Const(0, 1), magnitude[:width - 1])
        below2 = Cat(Const(0, 2), magnitude[:width - 2]) if width > 2 else Const(0, width)
        triple = Signal(width, name=f"{name}_triple")
        lowest_one = Signal(width, name=f"{name}_lowest_one")
        m.d.comb += [triple.eq(magnitude[:width] & below1 & below2),
                     lowest_one.eq(magnitude[:width] & ~below1 & ~below2)]
        states = [Const(0, 1)]  # state before scanning bit width-1
        for j in range(width - 1, 0, -1):
            state = Signal(name=f"{name}_in_run_{j - 1}")
            m.d.comb += state.eq((states[-1] | triple[j]) & ~lowest_one[j])
            states.append(state)
        in_run = Cat(*reversed(states))  # bit j: inside a run before bit j
        starts = ~in_run & triple
        plain = ~in_run & magnitude[:width] & ~triple
        plus = Cat(plain, Const(0, 1)) | Cat(Const(0, 1), starts)
        minus = Cat((in_run & lowest_one) | (in_run & ~magnitude[:width]), Const(0, 1))
    else:
        raise ValueError(f"encoding must be one of naf, booth, binary, not {encoding!r}")

    # plain expressions, not nets: the caller registers them (a net here would be an unread
    # alias wherever the expression is all constant or a copy of another net)
    terms = plus | minus
    negatives = Mux(negative, plus, minus) if signed else minus
    return terms, negatives


def lowest_term(m, terms, negatives, *, position_bits, name="term", valid=None, negative=None,
                position=None):
    """Build the lowest pending term of the masks; return ``(valid, negative, position, rest)``.

    ``valid`` is 1 when ``terms`` is non-zero, ``position`` the index of its lowest set bit (0
    when none), ``negative`` that term's sign bit from ``negatives``, and ``rest`` = ``terms``
    without that bit. Combinational; ``name`` prefixes the nets. ``valid``, ``negative`` and
    ``position`` may name existing targets (e.g. output port fields) to assign instead of new
    nets, so the emitted Verilog keeps no unread alias.
    """
    width = len(terms)
    valid = Signal(name=f"{name}_valid") if valid is None else valid
    negative = Signal(name=f"{name}_negative") if negative is None else negative
    position = Signal(position_bits, name=f"{name}_position") if position is None else position
    negated = Signal(width + 1, name=f"{name}_negated_unused_msb")
    lowest = Signal(width, name=f"{name}_lowest")
    rest = Signal(width, name=f"{name}_rest")
    m.d.comb += [
        valid.eq(terms.any()),
        negated.eq(~terms + 1),
        lowest.eq(terms & negated[:width]),
        rest.eq(terms & ~lowest),
        negative.eq((negatives & lowest).any()),
    ]
    # One-hot to binary: bit b of the position is the OR of the one-hot bits whose index has
    # bit b set. Plain assignments, no priority chain of processes (an Icarus time-0 race leaves
    # a process whose inputs never change at X).
    m.d.comb += position.eq(Cat(*(
        Cat(*(lowest[k] for k in range(width) if k >> b & 1)).any()
        for b in range(position_bits))))
    return valid, negative, position, rest


class TermEncoder(wiring.Component):
    """Encode rows of activations into streams of signed power-of-two terms, LSB first.

    Each accepted row of ``lanes`` activations becomes ``max(1, T)`` output beats, ``T`` being
    the largest term count in the row (`golden.terms.term_count`). Beat ``b`` carries, for each
    lane, the lane's ``b``-th term in ascending position order (least significant first, the
    order Pragmatic's two-stage shifter consumes them and `golden.terms.encode_terms` lists
    them), or ``valid = 0`` once the lane's terms are used up. A zero term is never emitted: a
    zero activation has ``valid = 0`` in every beat, and an all-zero row is a single beat with no
    valid term and ``last = 1``. ``last`` marks the row's final beat. The most negative signed
    value ``-2**(act_width-1)`` is one term ``-2**(act_width-1)``.

    Datapath per lane (`term_masks`, `lowest_term`): magnitude ``|v|``; the encoding's term and
    minus-digit masks (``act_width + 1`` bits; NAF as its LSB-first carry recoding, Booth as
    DNNsim's MSB-first scan, both one state bit per position; binary = the magnitude); signs
    flipped for a negative value; the pending mask is held in a register and a one-hot
    encoder of its lowest set bit gives each beat's term.

    Parameters
    ----------
    lanes : int, 1..64
    act_width : int, 2..16
    act_signed : bool
    encoding : {"naf", "booth", "binary"}
        See `hw.params.TermEncoderParams`.

    Members
    -------
    i_stream : ``In(stream.Signature(act_row_layout(params)))``
        Rows of activations, lane 0 in the least significant bits.
    o_stream : ``Out(stream.Signature(term_beat_layout(params)))``
        Term beats: per lane ``valid``/``negative``/``position``, plus ``last``.

    Latency and flow control
    ------------------------
    ``latency`` = 1: a row accepted in cycle ``k`` offers its first beat in cycle ``k + 1``.
    ``o_stream.valid`` is high exactly while a row is held; it does not depend on
    ``o_stream.ready``, and an offered beat stays unchanged until taken. ``i_stream.ready =
    ~o_stream.valid | (o_stream.ready & last)``: a new row is accepted in the cycle the previous
    row's last beat leaves, so with an always-ready sink a row takes ``max(1, T)`` cycles and rows
    follow back to back. ``sync`` domain, synchronous reset empties the encoder.

    Raises
    ------
    TypeError, ValueError
        For invalid parameters (see `hw.params.TermEncoderParams`).
    """

    def __init__(self, *, lanes=16, act_width=16, act_signed=True, encoding="booth"):
        self._params = TermEncoderParams(lanes=lanes, act_width=act_width,
                                         act_signed=act_signed, encoding=encoding)
        super().__init__({
            "i_stream": In(stream.Signature(act_row_layout(self._params))),
            "o_stream": Out(stream.Signature(term_beat_layout(self._params))),
        })

    @property
    def params(self):
        """The validated `TermEncoderParams`."""
        return self._params

    @property
    def latency(self):
        """Cycles from an accepted row to its first beat being offered (1)."""
        return self._params.latency

    def elaborate(self, platform):
        m = Module()
        p = self._params
        busy = self.o_stream.valid  # a row is held exactly while a beat is offered
        accept = Signal()
        take = Signal()
        singles = []
        for index in range(p.lanes):
            # per lane: the masks of the offered value, the pending masks, the lowest term
            new_terms, new_negatives = term_masks(
                m, self.i_stream.payload[index], width=p.act_width, signed=p.act_signed,
                encoding=p.encoding, name=f"lane{index}")
            pending = Signal(p.act_width + 1, name=f"lane{index}_pending")
            negatives = Signal(p.act_width + 1, name=f"lane{index}_pending_negatives")
            term = self.o_stream.payload.terms[index]
            _, _, _, rest = lowest_term(
                m, pending, negatives, position_bits=p.position_bits, name=f"lane{index}_term",
                valid=term.valid, negative=term.negative, position=term.position)
            singles.append(~rest.any())
            with m.If(accept):
                m.d.sync += [pending.eq(new_terms), negatives.eq(new_negatives)]
            with m.Elif(take):
                m.d.sync += pending.eq(rest)
        last = Signal()
        m.d.comb += [
            last.eq(Cat(*singles).all()),
            self.o_stream.payload.last.eq(last),
            self.i_stream.ready.eq(~busy | (self.o_stream.ready & last)),
            accept.eq(self.i_stream.valid & self.i_stream.ready),
            take.eq(self.o_stream.valid & self.o_stream.ready),
        ]
        with m.If(accept):
            m.d.sync += busy.eq(1)
        with m.Elif(take & last):
            m.d.sync += busy.eq(0)
        return m
