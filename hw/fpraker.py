"""FPRaker in hardware: a bfloat16 term encoder, the term-serial PE and its bit-parallel baseline.

`FPTermEncoder` turns bfloat16 values into streams of signed power-of-two terms of their
significands. `FPRakerPE` multiplies-accumulates ``lanes`` bfloat16 pairs per set, processing
A's significand term by term and skipping the terms below its accumulator window; `BF16MAC` is
the bit-parallel baseline with the same ports and the same accumulator, one set per cycle. The
arithmetic (flush-to-zero operands, truncating W-bit accumulator, IEEE special values,
round-to-nearest-even float32 result) is defined by `golden.fpraker`, which the PE and the MAC
equal bit for bit and cycle for cycle.

The datapath is generic logic (adders, barrel shifters, comparators): the same netlist is
simulated and synthesized for iCE40 and ECP5; the baseline's 8x8 significand multipliers are
written as ``*`` and may map to DSP blocks where a platform has them.
"""

from functools import reduce

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .params import BF16MACParams, FPRakerParams, FPTermEncoderParams

__all__ = ["FPTermEncoder", "FPRakerPE", "BF16MAC", "bf16_layout", "term_layout",
           "set_layout", "result_layout", "significand_masks", "pack_bf16", "unpack_term",
           "pack_set", "unpack_result"]

#: bfloat16 fields, least significant first (the `data.Struct` template of IEEE754Single)
bf16_layout = data.StructLayout({"fraction": 7, "exponent": 8, "sign": 1})

#: one term beat of `FPTermEncoder`: ``negative`` (the term is ``-2**position``),
#: ``position`` (0..8, of the integer significand ``128 + fraction``), ``last`` (final term of
#: the value) and ``zero`` (the value is zero or subnormal: no terms; the beat is the only one
#: and carries ``negative = position = 0``)
term_layout = data.StructLayout({"negative": 1, "position": 4, "last": 1, "zero": 1})

_POSITIONS = 9
_ZERO_EXPONENT = -(1 << (FPRakerParams.EXP_WIDTH - 1))


def set_layout(params):
    """Return the input payload layout of the PE and the MAC: ``a`` and ``b``
    (``ArrayLayout`` of `bf16_layout`, ``params.lanes`` elements, lane 0 least significant) and
    ``last`` (1 bit, above them: this set ends the dot product)."""
    return data.StructLayout({"a": data.ArrayLayout(bf16_layout, params.lanes),
                              "b": data.ArrayLayout(bf16_layout, params.lanes), "last": 1})


#: output payload of the PE and the MAC: ``result`` (float32 pattern) and ``cycles`` (cycles of
#: work the dot product took, `golden.fpraker`'s cycle model)
result_layout = data.StructLayout({"result": 32, "cycles": FPRakerParams.CYCLE_WIDTH})


def pack_bf16(bits):
    """Return the `bf16_layout` payload bits of one bfloat16 pattern (checked to fit)."""
    bits = int(bits)
    if not 0 <= bits <= 0xFFFF:
        raise ValueError(f"bfloat16 pattern must be from 0 to 0xffff, not {bits:#x}")
    return bf16_layout.const({"fraction": bits & 0x7F, "exponent": (bits >> 7) & 0xFF,
                              "sign": bits >> 15}).as_bits()


def unpack_term(bits):
    """Return ``(negative, position, last, zero)`` of one `term_layout` payload."""
    value = term_layout.from_bits(int(bits))
    return int(value.negative), int(value.position), int(value.last), int(value.zero)


def pack_set(params, a, b, last):
    """Return the `set_layout` payload bits of one set (``lanes`` patterns each of ``a``,
    ``b``)."""
    a, b = [int(x) for x in a], [int(x) for x in b]
    if len(a) != params.lanes or len(b) != params.lanes:
        raise ValueError(f"a set needs {params.lanes} patterns in a and in b, not {len(a)} and "
                         f"{len(b)}")
    for name, values in (("a", a), ("b", b)):
        for index, x in enumerate(values):
            if not 0 <= x <= 0xFFFF:
                raise ValueError(f"{name}[{index}] = {x} is not a bfloat16 pattern (0..0xffff)")
    fields = lambda x: {"fraction": x & 0x7F, "exponent": (x >> 7) & 0xFF, "sign": x >> 15}
    return set_layout(params).const({"a": [fields(x) for x in a], "b": [fields(x) for x in b],
                                     "last": int(bool(last))}).as_bits()


def unpack_result(bits):
    """Return ``(result, cycles)`` of one `result_layout` payload."""
    value = result_layout.from_bits(int(bits))
    return int(value.result), int(value.cycles)


def significand_masks(m, sig, *, encoding, name):
    """Build the term masks of an 8-bit significand; return ``(plus, minus)``, 9 bits each.

    Bit ``p`` of ``plus`` (``minus``) is set when the encoding of ``sig`` has the term ``+2**p``
    (``-2**p``); `golden.fpraker.term_masks` is the reference. Combinational (``m.d.comb``).
    """
    plus = Signal(_POSITIONS, name=f"{name}_plus")
    minus = Signal(_POSITIONS, name=f"{name}_minus")
    if encoding == "binary":
        m.d.comb += [plus.eq(sig), minus.eq(0)]
    elif encoding == "naf":
        # x + (x >> 1) and its changed bits c: +1 digits (x + h) & c, -1 digits h & c; the
        # sum is below 2**9, so the top bit of the 10-bit sum is constant 0 ("unused" is
        # Verilator's default --unused-regexp)
        half = Cat(sig[1:], Const(0, 2))
        three_halves = Signal(_POSITIONS + 1, name=f"{name}_three_halves_unused_msb")
        m.d.comb += three_halves.eq(sig + half)
        changed = half ^ three_halves[:_POSITIONS]
        m.d.comb += [plus.eq(three_halves[:_POSITIONS] & changed), minus.eq(half & changed)]
    elif encoding == "booth":
        # DNNsim's MSB-first scan (golden.terms), unrolled with one "in a run" state bit; the
        # significand's top bit is 1, so the scan starts outside a run at bit 7. Gates with a
        # constant input are folded here (None is constant 0, True constant 1).
        def and_(*xs):
            if any(x is None for x in xs):
                return None
            xs = [x for x in xs if x is not True]
            return reduce(lambda a, b: a & b, xs) if xs else True

        def or_(*xs):
            xs = [x for x in xs if x is not None]
            if any(x is True for x in xs):
                return True
            return reduce(lambda a, b: a | b, xs) if xs else None

        def not_(x):
            return True if x is None else (None if x is True else ~x)

        def bit(position):
            return sig[position] if position >= 0 else None

        plus_bits = [None] * _POSITIONS
        minus_bits = [None] * _POSITIONS
        in_run = None
        for j in range(7, -1, -1):
            current, below1, below2 = bit(j), bit(j - 1), bit(j - 2)
            starts = and_(not_(in_run), current, below1, below2)
            plain = and_(not_(in_run), current, not_(starts))
            ends = and_(in_run, current, not_(below1), not_(below2))
            plus_bits[j + 1] = or_(plus_bits[j + 1], starts)
            plus_bits[j] = or_(plus_bits[j], plain)
            minus_bits[j] = or_(minus_bits[j], ends, and_(in_run, not_(current)))
            if j:
                state = Signal(name=f"{name}_in_run_{j}")
                value = and_(or_(in_run, starts), not_(ends))
                m.d.comb += state.eq(0 if value is None else 1 if value is True else value)
                in_run = state
        for target, bits in ((plus, plus_bits), (minus, minus_bits)):
            m.d.comb += target.eq(Cat(*[Const(0, 1) if b is None else
                                        Const(1, 1) if b is True else b for b in bits]))
    else:
        raise ValueError(f"encoding must be one of naf, booth, binary, not {encoding!r}")
    return plus, minus


def _top_term(m, mask, *, name):
    """Build a leading-one detector; return ``(position, rest)``: the highest set bit of the
    9-bit ``mask`` (0 for an empty mask) and ``mask`` without it."""
    position = Signal(4, name=f"{name}_position")
    rest = Signal(_POSITIONS, name=f"{name}_rest")
    m.d.comb += [position.eq(0), rest.eq(mask)]
    full = (1 << _POSITIONS) - 1
    for p in range(_POSITIONS):  # the last matching assignment wins: the highest set bit
        with m.If(mask[p]):
            m.d.comb += [position.eq(p), rest.eq(mask & Const(full ^ (1 << p), _POSITIONS))]
    return position, rest


def _select_bit(m, bits, index, *, name):
    """Build ``bits[index]`` for a 9-bit ``bits`` and a 4-bit ``index`` (0 past the end)."""
    bit = Signal(name=name)
    with m.Switch(index):
        for p in range(_POSITIONS):
            with m.Case(p):
                m.d.comb += bit.eq(bits[p])
        with m.Default():
            m.d.comb += bit.eq(0)
    return bit


def _max(values):
    return reduce(lambda x, y: Mux(x > y, x, y), values)


class FPTermEncoder(wiring.Component):
    """Encode bfloat16 values into streams of signed power-of-two terms, most significant first.

    The integer significand ``128 + fraction`` of each value is encoded with ``encoding`` (module
    `golden.terms`; the reference is `golden.fpraker.term_masks`) and its terms are emitted one
    per beat, highest position first, with the value's sign applied: the terms of a value sum to
    ``(-1)**sign * (128 + fraction)``. A zero or subnormal value (exponent field 0, flushed to
    zero) is detected and emits one beat with ``zero = 1``. Infinities and NaNs are encoded like
    normal values (their class is the exponent block's business).

    Parameters
    ----------
    encoding : str
        ``"naf"`` (default), ``"booth"`` or ``"binary"``.

    Members
    -------
    i_stream : ``In(stream.Signature(bf16_layout))``
        bfloat16 values.
    o_stream : ``Out(stream.Signature(term_layout))``
        Term beats; the last beat of each value has ``last = 1``.

    Latency and flow control
    ------------------------
    One register stage (``sync`` domain, ports ``clk`` and ``rst``): a value accepted in cycle
    ``k`` offers its first beat in cycle ``k + latency`` (``latency`` = 1). A value with ``t``
    terms takes ``max(1, t)`` beats, and the next value is accepted in the cycle the last beat
    leaves (``i_stream.ready = ~o_stream.valid | (o_stream.ready & last)``), so with a ready sink
    the output carries one beat every cycle. ``o_stream.valid`` does not depend on
    ``o_stream.ready``; an offered beat holds until taken. Reset empties the stage.

    Raises
    ------
    TypeError, ValueError
        For an invalid ``encoding`` (`hw.params.FPTermEncoderParams`).
    """

    def __init__(self, *, encoding="naf"):
        self._params = FPTermEncoderParams(encoding=encoding)
        super().__init__({
            "i_stream": In(stream.Signature(bf16_layout)),
            "o_stream": Out(stream.Signature(term_layout)),
        })

    @property
    def params(self):
        """The validated `FPTermEncoderParams`."""
        return self._params

    @property
    def encoding(self):
        """The term encoding."""
        return self._params.encoding

    @property
    def latency(self):
        """Cycles from an accepted value to its first beat being offered (1)."""
        return self._params.latency

    def elaborate(self, platform):
        m = Module()
        value = self.i_stream.payload
        sig = Cat(value.fraction, Const(1, 1))
        plus, minus = significand_masks(m, sig, encoding=self.encoding, name="sig")

        pending = Signal(_POSITIONS)      # terms not yet sent
        negatives = Signal(_POSITIONS)    # which of them are negative (value sign applied)
        zero = Signal()
        position, rest = _top_term(m, pending, name="top")
        last = Signal()
        negative = _select_bit(m, negatives, position, name="top_negative")
        m.d.comb += [
            last.eq(zero | ~rest.any()),
            self.o_stream.payload.zero.eq(zero),
            self.o_stream.payload.last.eq(last),
            self.o_stream.payload.position.eq(Mux(zero, 0, position)),
            self.o_stream.payload.negative.eq(~zero & negative),
            self.i_stream.ready.eq(~self.o_stream.valid | (self.o_stream.ready & last)),
        ]
        with m.If(self.o_stream.valid & self.o_stream.ready):
            m.d.sync += pending.eq(rest)
        with m.If(self.i_stream.ready):
            m.d.sync += self.o_stream.valid.eq(self.i_stream.valid)
            with m.If(self.i_stream.valid):
                m.d.sync += [
                    zero.eq(~value.exponent.any()),
                    pending.eq(plus | minus),
                    negatives.eq(Mux(value.sign, plus, minus)),
                ]
        return m


class _SetAccumulator(wiring.Component):
    """The shared part of `FPRakerPE` and `BF16MAC`: exponent block, accumulator, normalizer,
    rounder, special values, stream control and cycle counter. Subclasses build the lanes."""

    def __init__(self, params):
        self._params = params
        super().__init__({
            "i_stream": In(stream.Signature(set_layout(params))),
            "o_stream": Out(stream.Signature(result_layout)),
        })

    @property
    def params(self):
        """The validated parameter object."""
        return self._params

    @property
    def lanes(self):
        """Pairs per set."""
        return self._params.lanes

    @property
    def acc_width(self):
        """Accumulator window W in bits."""
        return self._params.acc_width

    @property
    def latency(self):
        """Cycles from the transfer of a dot product's last set to its result being offered,
        when that set takes one cycle of work; each further cycle of work adds one."""
        return self._params.latency

    def _lane_inputs(self, m, lane, a, b):
        """Decode one lane at the input; return a dict of values to register."""
        raise NotImplementedError

    def _lane_step(self, m, lane, regs, d):
        """Build one lane's work for this cycle; return ``(magnitude, negative, more, updates)``:
        the W-bit unsigned contribution, its sign, whether the lane has work left after this
        cycle, and the register updates to apply when the cycle advances without finishing."""
        raise NotImplementedError

    def elaborate(self, platform):
        m = Module()
        p = self._params
        w, n = p.acc_width, p.lanes
        ew = p.EXP_WIDTH
        sw = p.sum_width
        payload = self.i_stream.payload

        # --- registered set (one per lane) ----------------------------------------------------
        busy = Signal()
        first = Signal()
        set_last = Signal()
        lane_regs = []
        nan_in, pinf_in, ninf_in = [], [], []
        for i in range(n):
            a, b = payload.a[i], payload.b[i]
            a_zero, b_zero = a.exponent == 0, b.exponent == 0
            a_special, b_special = a.exponent == 0xFF, b.exponent == 0xFF
            a_inf, b_inf = a_special & (a.fraction == 0), b_special & (b.fraction == 0)
            a_nan, b_nan = a_special & (a.fraction != 0), b_special & (b.fraction != 0)
            nan = Signal(name=f"lane{i}_nan_in")
            inf = Signal(name=f"lane{i}_inf_in")
            m.d.comb += [nan.eq(a_nan | b_nan | (a_inf & b_zero) | (b_inf & a_zero)),
                         inf.eq((a_inf | b_inf) & ~nan)]
            psign = a.sign ^ b.sign
            nan_in.append(nan)
            pinf_in.append(inf & ~psign)
            ninf_in.append(inf & psign)
            regs = {
                "finite": (Signal(name=f"lane{i}_finite"),
                           ~(a_zero | b_zero | a_special | b_special)),
                "negative": (Signal(name=f"lane{i}_negative"), psign),
                "exponent": (Signal(9, name=f"lane{i}_exponent"), a.exponent + b.exponent),
                "sig_b": (Signal(8, name=f"lane{i}_sig_b"), Cat(b.fraction, Const(1, 1))),
            }
            for key, (signal, value) in self._lane_inputs(m, i, a, b).items():
                regs[key] = (signal, value)
            lane_regs.append(regs)

        # --- accumulator state --------------------------------------------------------------
        acc_sign = Signal()
        acc_exp = Signal(signed(ew), init=_ZERO_EXPONENT)
        acc_mag = Signal(w)
        partial = Signal(signed(sw))
        flag_nan, flag_pinf, flag_ninf = Signal(), Signal(), Signal()
        cycles = Signal(p.CYCLE_WIDTH)

        # --- exponent block: e_max over finite lanes, e_ref, distances ----------------------
        lane_exps = []
        for i, regs in enumerate(lane_regs):
            e = Signal(signed(ew), name=f"lane{i}_e")
            m.d.comb += e.eq(Mux(regs["finite"][0], regs["exponent"][0], _ZERO_EXPONENT))
            lane_exps.append(e)
        e_max = Signal(signed(ew))
        e_ref = Signal(signed(ew))
        m.d.comb += [e_max.eq(_max(lane_exps)), e_ref.eq(Mux(acc_exp > e_max, acc_exp, e_max))]

        # --- alignment of the accumulator (truncation toward zero) ---------------------------
        align = Signal(ew + 1)
        m.d.comb += align.eq((e_ref - acc_exp)[:ew + 1])
        shift_bits = (w - 1).bit_length()
        aligned = Signal(w)
        m.d.comb += aligned.eq(Mux(align >= w, 0, acc_mag >> align[:shift_bits]))
        base = Signal(signed(sw))
        m.d.comb += base.eq(Mux(first, Mux(acc_sign, -aligned, aligned), partial))

        # --- lanes and adder tree ------------------------------------------------------------
        contributions = []
        more_flags = []
        updates = []
        for i, regs in enumerate(lane_regs):
            d = Signal(ew, name=f"lane{i}_distance")
            m.d.comb += d.eq((e_ref - lane_exps[i])[:ew])
            magnitude, negative, more, lane_updates = self._lane_step(
                m, i, {k: s for k, (s, _) in regs.items()}, d)
            contribution = Signal(signed(w + 1), name=f"lane{i}_contribution")
            m.d.comb += contribution.eq(Mux(negative ^ regs["negative"][0],
                                            -magnitude, magnitude))
            contributions.append(contribution)
            more_flags.append(more)
            updates += lane_updates
        total = Signal(signed(sw))
        m.d.comb += total.eq(base + sum(contributions))
        set_done = Signal()
        m.d.comb += set_done.eq(~Cat(*more_flags).any())

        # --- normalizer ------------------------------------------------------------------------
        total_mag = Signal(sw)
        m.d.comb += total_mag.eq(Mux(total < 0, -total, total))
        length = Signal(range(sw + 1))
        m.d.comb += length.eq(0)
        for k in range(sw):
            with m.If(total_mag[k]):
                m.d.comb += length.eq(k + 1)
        normalized = Signal(w)
        m.d.comb += normalized.eq((Cat(Const(0, w), total_mag) >> length)[:w])
        new_exp = Signal(signed(ew))
        new_zero = Signal()
        m.d.comb += [new_zero.eq(total_mag == 0),
                     new_exp.eq(Mux(new_zero, _ZERO_EXPONENT, e_ref + length - w))]
        new_sign = Signal()
        m.d.comb += new_sign.eq(~new_zero & (total < 0))

        # --- rounder: round to nearest even, overflow, flush to zero, specials ---------------
        if w > 24:
            kept = normalized[w - 24:]
            round_bit = normalized[w - 25]
            sticky = normalized[:w - 25].any() if w > 25 else Const(0, 1)
            round_up = round_bit & (sticky | kept[0])
        else:
            kept = Cat(Const(0, 24 - w), normalized)
            round_up = Const(0, 1)
        rounded = Signal(25)
        m.d.comb += rounded.eq(kept + round_up)
        carry = rounded[24]
        fraction = Signal(23)
        m.d.comb += fraction.eq(Mux(carry, rounded[1:24], rounded[:23]))
        biased = Signal(signed(ew + 1))
        m.d.comb += biased.eq(new_exp - 126 + carry)
        nan_now = flag_nan
        result = Signal(32)
        with m.If(nan_now | (flag_pinf & flag_ninf)):
            m.d.comb += result.eq(0x7FC00000)
        with m.Elif(flag_pinf | flag_ninf):
            m.d.comb += result.eq(Cat(Const(0, 23), Const(0xFF, 8), flag_ninf))
        with m.Elif(new_zero):
            m.d.comb += result.eq(0)
        with m.Elif(biased >= 255):
            m.d.comb += result.eq(Cat(Const(0, 23), Const(0xFF, 8), new_sign))
        with m.Elif(biased <= 0):
            m.d.comb += result.eq(Cat(Const(0, 31), new_sign))
        with m.Else():
            m.d.comb += result.eq(Cat(fraction, biased[:8], new_sign))

        # --- control ---------------------------------------------------------------------------
        out_free = ~self.o_stream.valid | self.o_stream.ready
        advance = Signal()
        finishing = Signal()   # this cycle completes the set
        m.d.comb += [
            advance.eq(busy & (~(set_done & set_last) | out_free)),
            finishing.eq(advance & set_done),
            self.i_stream.ready.eq(~busy | finishing),
        ]
        accept = self.i_stream.valid & self.i_stream.ready
        with m.If(self.o_stream.ready):
            m.d.sync += self.o_stream.valid.eq(0)
        end_of_dot = finishing & set_last
        with m.If(advance):
            m.d.sync += cycles.eq(Mux(set_done & set_last, 0, cycles + 1))
            with m.If(set_done):
                m.d.sync += [acc_sign.eq(new_sign), acc_exp.eq(new_exp), acc_mag.eq(normalized)]
                with m.If(set_last):
                    m.d.sync += [
                        acc_sign.eq(0), acc_exp.eq(_ZERO_EXPONENT), acc_mag.eq(0),
                        self.o_stream.valid.eq(1),
                        self.o_stream.payload.result.eq(result),
                        self.o_stream.payload.cycles.eq(cycles + 1),
                    ]
            with m.Else():
                m.d.sync += [partial.eq(total), first.eq(0)]
                m.d.sync += updates
        with m.If(finishing):
            m.d.sync += busy.eq(0)
        # sticky special flags: cleared when a dot product ends, merged when a set arrives
        for flag, lane_flags in ((flag_nan, nan_in), (flag_pinf, pinf_in),
                                 (flag_ninf, ninf_in)):
            kept_flag = flag & ~end_of_dot
            m.d.sync += flag.eq(kept_flag | (accept & Cat(*lane_flags).any()))
        with m.If(accept):
            m.d.sync += [busy.eq(1), first.eq(1), set_last.eq(payload.last)]
            for regs in lane_regs:
                m.d.sync += [signal.eq(value) for signal, value in regs.values()]
        return m


class FPRakerPE(_SetAccumulator):
    """FPRaker processing element: ``lanes`` bfloat16 MACs per set, A's significand term-serial.

    Each set's products are added to a floating-point accumulator with a ``acc_width``-bit
    window (`golden.fpraker` defines the arithmetic exactly). Datapath: per-lane exponent adders
    and a maximum tree (exponent block), per-lane term encoders (`significand_masks`) whose
    terms outside the window are masked off at the window comparators (out-of-bounds skip),
    per-lane leading-term detectors and barrel shifters of B's significand, a conditional
    negation and an adder tree into a wide in-set sum, the alignment shifter of the accumulator,
    a leading-one normalizer and a round-to-nearest-even float32 rounder; infinities and NaN set
    sticky flags. When the set flagged ``last`` completes, the float32 result and the cycles the
    dot product took are offered and the accumulator is cleared.

    Parameters
    ----------
    lanes : int, 1..64
        Pairs per set (N).
    acc_width : int, 16..48
        Accumulator window W.
    encoding : str
        Term encoding of A's significand: ``"naf"``, ``"booth"`` or ``"binary"``.

    Members
    -------
    i_stream : ``In(stream.Signature(set_layout(params)))``
        Sets: ``a``, ``b`` (``lanes`` bfloat16 each) and ``last``.
    o_stream : ``Out(stream.Signature(result_layout))``
        One result per dot product: ``result`` (float32) and ``cycles``.

    Latency and flow control
    ------------------------
    A set accepted in cycle ``k`` is worked on in cycles ``k + 1 .. k + T`` with
    ``T = max(1, max over lanes of its in-window terms)``; the next set is accepted in cycle
    ``k + T`` (``i_stream.ready`` is high while idle and in the last cycle of a set), so with a
    steady source the PE spends exactly `golden.fpraker`'s cycle count. A last set's result is
    offered from cycle ``k + T + 1`` (``latency`` = 2 for ``T = 1``); ``o_stream.valid`` does not
    depend on ``o_stream.ready``, and while a previous result waits the last cycle of the next
    dot product stalls (``cycles`` counts only the cycles of work). ``sync`` domain with
    synchronous reset (ports ``clk``, ``rst``); reset empties the PE and clears the accumulator.

    Raises
    ------
    TypeError, ValueError
        For invalid parameters (`hw.params.FPRakerParams`).
    """

    def __init__(self, *, lanes=8, acc_width=28, encoding="naf"):
        super().__init__(FPRakerParams(lanes=lanes, acc_width=acc_width, encoding=encoding))

    @property
    def encoding(self):
        """The term encoding of A's significand."""
        return self._params.encoding

    def _lane_inputs(self, m, lane, a, b):
        sig = Cat(a.fraction, Const(1, 1))
        plus, minus = significand_masks(m, sig, encoding=self.encoding, name=f"lane{lane}_a")
        return {"terms": (Signal(_POSITIONS, name=f"lane{lane}_terms"), plus | minus),
                "negatives": (Signal(_POSITIONS, name=f"lane{lane}_negatives"), minus)}

    def _lane_step(self, m, lane, regs, d):
        w = self._params.acc_width
        # window comparators: position q is in bounds when d + 8 - q < W
        window = Signal(_POSITIONS, name=f"lane{lane}_window")
        m.d.comb += window.eq(Cat(*[d < w - 8 + q for q in range(_POSITIONS)]))
        pending = Signal(_POSITIONS, name=f"lane{lane}_pending")
        m.d.comb += pending.eq(Mux(regs["finite"], regs["terms"] & window, 0))
        position, rest = _top_term(m, pending, name=f"lane{lane}_top")
        shift_bits = (w - 1).bit_length()
        shift = Signal(shift_bits, name=f"lane{lane}_shift")
        m.d.comb += shift.eq((d + 8 - position)[:shift_bits])  # < W for an in-window term
        magnitude = Signal(w, name=f"lane{lane}_magnitude")
        m.d.comb += magnitude.eq(Mux(pending.any(),
                                     Cat(Const(0, w - 8), regs["sig_b"]) >> shift, 0))
        negative = regs["negatives"].bit_select(position, 1)
        return magnitude, negative, rest.any(), [regs["terms"].eq(rest)]


class BF16MAC(_SetAccumulator):
    """Bit-parallel bfloat16 multiply-accumulate baseline: ``lanes`` products per cycle.

    Same ports, arithmetic frame and accumulator as `FPRakerPE` (`golden.fpraker.bf16_mac_dot`)
    but each lane multiplies the two 8-bit significands at once (an 8x8 multiplier) and shifts
    the 16-bit product into the window: every set takes one cycle.

    Parameters
    ----------
    lanes : int, 1..64
        Pairs per set (N).
    acc_width : int, 16..48
        Accumulator window W.

    Members
    -------
    i_stream : ``In(stream.Signature(set_layout(params)))``
    o_stream : ``Out(stream.Signature(result_layout))``
        As for `FPRakerPE`; ``cycles`` is the number of sets.

    Latency and flow control
    ------------------------
    As for `FPRakerPE` with ``T = 1`` for every set: one set per cycle, a result offered two
    cycles after its last set's transfer (``latency`` = 2).

    Raises
    ------
    TypeError, ValueError
        For invalid parameters (`hw.params.BF16MACParams`).
    """

    def __init__(self, *, lanes=8, acc_width=28):
        super().__init__(BF16MACParams(lanes=lanes, acc_width=acc_width))

    def _lane_inputs(self, m, lane, a, b):
        return {"sig_a": (Signal(8, name=f"lane{lane}_sig_a"), Cat(a.fraction, Const(1, 1)))}

    def _lane_step(self, m, lane, regs, d):
        w = self._params.acc_width
        product = Signal(16, name=f"lane{lane}_product")
        m.d.comb += product.eq(regs["sig_a"] * regs["sig_b"])
        shift_bits = (w - 1).bit_length()
        magnitude = Signal(w, name=f"lane{lane}_magnitude")
        m.d.comb += magnitude.eq(Mux(~regs["finite"] | (d >= w), 0,
                                     Cat(Const(0, w - 16), product) >> d[:shift_bits]))
        return magnitude, Const(0, 1), Const(0, 1), []
