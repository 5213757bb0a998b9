"""SPARQ processing element: two activation/weight pairs per cycle on two 4b x 8b multipliers.

`SparqPE` implements vSPARQ (`golden.sparq`) bit for bit; `SparqBank` runs one `SparqPE` per
configuration of `hw.params.sparq_modes` side by side on one input stream (so one simulator
build covers every placement set and rounding mode, and modes can be compared on the same data);
`MacPE` is the plain 8b x 8b MAC baseline. The window logic (`window_select`) and the 2opt
datapath (`sparq_product`) are shared with the NB-SMT array (`hw.sysmt`). Every block is one
flat module, and its combinational logic is expressions only (see `select`).
"""

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .params import MacParams, SparqBankParams, SparqParams

__all__ = ["SparqPE", "SparqBank", "MacPE", "mac_input_layout", "sparq_input_layout",
           "sparq_output_layout", "bank_output_layout", "window_select", "sparq_product", "widen",
           "select", "equals", "leaf_fields", "pack_payloads", "unpack_field"]


def sparq_input_layout():
    """Return the input payload layout: ``act`` (2 x ``unsigned(8)``), ``weight``
    (2 x ``signed(8)``), ``last`` (1 bit: this pair ends the dot product)."""
    return data.StructLayout({"act": data.ArrayLayout(unsigned(8), 2),
                              "weight": data.ArrayLayout(signed(8), 2),
                              "last": unsigned(1)})


def mac_input_layout():
    """Return the input payload layout of `MacPE`: ``act`` (``unsigned(8)``), ``weight``
    (``signed(8)``), ``last``."""
    return data.StructLayout({"act": unsigned(8), "weight": signed(8), "last": unsigned(1)})


def sparq_output_layout(params):
    """Return the output payload layout of `SparqPE`: ``sum`` (``signed(acc_width)``)."""
    return data.StructLayout({"sum": signed(params.acc_width)})


def bank_output_layout(params):
    """Return the output payload layout of `SparqBank`: ``sum``, one ``signed(acc_width)`` per
    mode of ``params.modes``, in that order."""
    return data.StructLayout({"sum": data.ArrayLayout(signed(params.acc_width),
                                                      len(params.modes))})


def leaf_fields(layout, prefix=()):
    """Yield ``(path, offset, shape)`` of every scalar field of ``layout`` (nested structs and
    arrays); ``path`` is a tuple of field names and array indices."""
    if isinstance(layout, data.StructLayout):
        for name, field in layout:
            for path, offset, shape in leaf_fields(field.shape, prefix + (name,)):
                yield path, field.offset + offset, shape
    elif isinstance(layout, data.ArrayLayout):
        elem = layout.elem_shape
        size = data.Layout.cast(elem).size if isinstance(elem, data.Layout) else \
            elem.width
        for index in range(layout.length):
            for path, offset, shape in leaf_fields(elem, prefix + (index,)):
                yield path, index * size + offset, shape
    else:
        yield prefix, 0, layout


def pack_payloads(layout, values):
    """Return the payload bits (a list of ``int``) of ``N`` payloads of ``layout``.

    ``values`` maps each top-level field name to an integer array ``[N, ...]`` whose trailing
    axes follow the field's array dimensions (e.g. ``act`` of `sparq_input_layout` is
    ``[N, 2]``). Values are range-checked against their field's shape.
    """
    total = None
    for path, offset, shape in leaf_fields(layout):
        array = np.asarray(values[path[0]], dtype=np.int64)
        column = array[(slice(None),) + path[1:]]
        low, high = (-(1 << (shape.width - 1)), (1 << (shape.width - 1)) - 1) if shape.signed \
            else (0, (1 << shape.width) - 1)
        if column.size and (column.min() < low or column.max() > high):
            raise ValueError(f"field {'.'.join(map(str, path))} holds values outside "
                             f"{low}..{high}")
        bits = [int(v) << offset for v in (column & ((1 << shape.width) - 1)).tolist()] \
            if layout.size > 63 else ((column & ((1 << shape.width) - 1)) << offset)
        total = bits if total is None else (
            [a | b for a, b in zip(total, bits)] if isinstance(bits, list) else total | bits)
    return total.tolist() if isinstance(total, np.ndarray) else list(total)


def unpack_field(layout, bits, name):
    """Return field ``name`` of payloads ``bits`` (list of ``int``) as int64 ``[N, ...]``."""
    leaves = [(path, offset, shape) for path, offset, shape in leaf_fields(layout)
              if path[0] == name]
    count = len(bits)
    dims = []
    for path, _, _ in leaves:
        for axis, index in enumerate(path[1:]):
            if len(dims) <= axis:
                dims.append(0)
            dims[axis] = max(dims[axis], index + 1)
    out = np.empty((count,) + tuple(dims), dtype=np.int64)
    for path, offset, shape in leaves:
        mask = (1 << shape.width) - 1
        column = np.array([(b >> offset) & mask for b in bits], dtype=np.int64) if count \
            else np.zeros(0, dtype=np.int64)
        if shape.signed:
            column = np.where(column >= 1 << (shape.width - 1), column - (1 << shape.width),
                              column)
        out[(slice(None),) + path[1:]] = column
    return out


def equals(value, constant):
    """Return ``value == constant`` as an AND of (inverted) bits (no LOGNOT in Verilog)."""
    mask = Const(~constant & ((1 << len(value)) - 1), len(value))
    return (value ^ mask).all()


def select(index, choices, default):
    """Return a multiplexer chain: ``choices[v]`` when ``index == v``, else ``default``.

    Combinational logic is written as expressions (continuous assignments in Verilog), never
    as processes: Icarus does not run an ``always @*`` block whose inputs never change, so a
    process fed by constant-zero registers would stay X.
    """
    result = default
    for value, choice in choices.items():
        if value == 0:  # no inverter on a select: Amaranth would leave it unused
            result = Mux(index.any(), result, choice)
        elif len(index) == 1:
            result = Mux(index, choice, result)
        else:
            result = Mux(equals(index, value), choice, result)
    return result


def window_select(m, x, *, width, offsets, rounding, name):
    """Add the window logic of ``x`` (an 8-bit unsigned value) to ``m``; return
    ``(field, shift)``.

    Leading-one placement (the lowest offset whose window holds the leading one), a multiplexer
    extracting the ``width`` window bits and, with ``rounding``, one round-half-to-even
    incrementer with saturation to the all-ones window. ``field`` is ``unsigned(width)``,
    ``shift`` ``unsigned(3)`` (the offset); the value is ``field << shift`` as in
    `golden.sparq.window`.
    """
    offsets = sorted(offsets)
    if len(offsets) == 1 and offsets[0] == 0 and width == 8:
        return x, Const(0, 3)
    shift = Signal(3, name=f"{name}_shift")
    truncated = Signal(width, name=f"{name}_truncated")
    round_up = Signal(name=f"{name}_round_up")
    # The highest offset is the default; lower ones win when their window holds the leading one.
    shift_value = Const(offsets[-1], 3)
    truncated_value = x[offsets[-1]:offsets[-1] + width]
    round_value = Const(0, 1)
    choices = []
    for offset in offsets:
        up = Const(0, 1)
        if rounding and offset > 0:
            sticky = x[:offset - 1].any() if offset > 1 else Const(0, 1)
            up = x[offset - 1] & (sticky | x[offset])
        choices.append((offset, x[offset:offset + width], up))
    round_value = choices[-1][2]
    for offset, field_bits, up in reversed(choices[:-1]):
        above = x[offset + width:].any()  # the leading one is above this window
        shift_value = Mux(above, shift_value, Const(offset, 3))
        truncated_value = Mux(above, truncated_value, field_bits)
        round_value = Mux(above, round_value, up)
    m.d.comb += [shift.eq(shift_value), truncated.eq(truncated_value)]
    if rounding:
        m.d.comb += round_up.eq(round_value)
    if not rounding:
        return truncated, shift
    field = Signal(width, name=f"{name}_field")
    rounded = Signal(width + 1, name=f"{name}_rounded")
    m.d.comb += [rounded.eq(truncated + round_up),
                 field.eq(Mux(rounded[width], Const((1 << width) - 1, width), rounded[:width]))]
    return field, shift


def _shifted_product(m, field, weight, shift, shifts, name):
    """A ``len(field)``-bit x 8-bit signed multiplier followed by a left shifter (``shifts``:
    the shift amounts that can occur)."""
    product = field.as_unsigned() * weight
    shifted = Signal(signed(len(product) + max(shifts)), name=f"{name}_shifted")
    amounts = sorted(set(shifts))
    options = {amount: Cat(Const(0, amount), product).as_signed() if amount else product
               for amount in amounts}
    m.d.comb += shifted.eq(select(shift, {a: options[a] for a in amounts[:-1]},
                                  options[amounts[-1]]))
    return shifted


def sparq_product(m, params, act, weight, *, prefix="", active=None):
    """Add the vSPARQ datapath of one PE to ``m``; return the pair's contribution (a signal).

    ``act`` and ``weight`` are 2-element sequences of ``unsigned(8)`` / ``signed(8)`` values;
    signal names start with ``prefix``. Zero detect; both non-zero: each activation's
    ``window_width``-bit window on its own multiplier; one zero: the survivor's
    ``2 * window_width``-bit window, split into its high and low halves, on both multipliers
    with the survivor's weight (exact for 4-bit windows). ``active`` (two 1-bit values)
    replaces the activation zero detect (NB-SMT also idles a thread on a zero weight); an
    inactive element must contribute zero (zero activation or zero weight).
    """
    n = params.window_width
    a1, a2 = act
    w1, w2 = weight
    if active is None:
        nonzero1 = Signal(name=f"{prefix}act0_nonzero")
        nonzero2 = Signal(name=f"{prefix}act1_nonzero")
        m.d.comb += [nonzero1.eq(a1.any()), nonzero2.eq(a2.any())]
    else:
        nonzero1, nonzero2 = active
    both = Signal(name=f"{prefix}both_nonzero")
    m.d.comb += both.eq(nonzero1 & nonzero2)
    field1, shift1 = window_select(m, a1, width=n, offsets=params.offsets,
                                   rounding=params.rounding, name=f"{prefix}act0")
    field2, shift2 = window_select(m, a2, width=n, offsets=params.offsets,
                                   rounding=params.rounding, name=f"{prefix}act1")
    survivor_act = Signal(8, name=f"{prefix}survivor_act")
    survivor_weight = Signal(signed(8), name=f"{prefix}survivor_weight")
    m.d.comb += [survivor_act.eq(Mux(nonzero1, a1, a2)),
                 survivor_weight.eq(Mux(nonzero1, w1, w2))]
    wide, wide_shift = window_select(m, survivor_act, width=2 * n,
                                     offsets=params.survivor_offsets,
                                     rounding=params.rounding, name=f"{prefix}survivor")
    units = []
    for index, (field, shift, w, half, half_offset) in enumerate([
            (field1, shift1, w1, wide[n:], n), (field2, shift2, w2, wide[:n], 0)]):
        unit_field = Signal(n, name=f"{prefix}mul{index}_field")
        unit_weight = Signal(signed(8), name=f"{prefix}mul{index}_weight")
        unit_shift = Signal(3, name=f"{prefix}mul{index}_shift")
        m.d.comb += [unit_field.eq(Mux(both, field, half)),
                     unit_weight.eq(Mux(both, w, survivor_weight))]
        offsets = params.survivor_offsets
        half_shift = select(wide_shift, {o: Const(o + half_offset, 3) for o in offsets[:-1]},
                            Const(offsets[-1] + half_offset, 3))
        m.d.comb += unit_shift.eq(Mux(both, shift, half_shift))
        shifts = set(params.offsets) | {o + half_offset for o in params.survivor_offsets}
        units.append(_shifted_product(m, unit_field, unit_weight, unit_shift, shifts,
                                      f"{prefix}mul{index}"))
    total = Signal(signed(len(units[0]) + 1), name=f"{prefix}pair_sum")
    m.d.comb += total.eq(units[0] + units[1])
    return total


def widen(m, value, width, name):
    """Return a ``signed(width)`` signal holding signed ``value``, sign-extended by a
    multiplexer on the sign bit, so that the emitted Verilog adds operands of equal width
    (Verilator ``-Wall`` WIDTHEXPAND) instead of relying on implicit extension."""
    wide = Signal(signed(width), name=name)
    ones = Const((1 << (width - len(value))) - 1, width - len(value))
    m.d.comb += wide.eq(Mux(value[-1], Cat(value, ones), Cat(value, Const(0, width - len(value)))))
    return wide


def _accumulate(m, params, i_stream, o_stream, pair, *, ready, prefix=""):
    """Add the accumulator and output register of one PE; ``ready`` gates input transfers."""
    acc = Signal(signed(params.acc_width), name=f"{prefix}acc")
    wide_pair = widen(m, pair, params.acc_width, f"{prefix}pair_wide")
    # The carry bit is dropped (the accumulator wraps); "unused" marks it for Verilator.
    total_unused_msb = Signal(signed(params.acc_width + 1), name=f"{prefix}total_unused_msb")
    total = total_unused_msb[:params.acc_width]
    m.d.comb += total_unused_msb.eq(acc + wide_pair)
    with m.If(o_stream.ready):
        m.d.sync += o_stream.valid.eq(0)
    with m.If(i_stream.valid & ready):
        with m.If(i_stream.payload.last):
            m.d.sync += [o_stream.payload.eq(total), o_stream.valid.eq(1), acc.eq(0)]
        with m.Else():
            m.d.sync += acc.eq(total)


class SparqPE(wiring.Component):
    """SPARQ processing element: vSPARQ dot products, two activation/weight pairs per cycle.

    Each accepted input is one pair ``(act[0], weight[0]), (act[1], weight[1])`` of a dot
    product (uint8 activations, int8 weights). Datapath: zero detect on both activations;
    leading-one window select (``placements`` offsets, ``window_width`` bits) with an optional
    round-half-to-even incrementer saturating in the window; two ``window_width``-bit x 8-bit
    multipliers with shifters that, when one activation is zero, take the high and low halves
    of the survivor's double-width window with its weight (an exact 8b x 8b product for 4-bit
    windows); an adder and an accumulator. The result equals `golden.sparq.sparq_dot` of the
    dot product's pairs bit for bit (while it fits in ``signed(acc_width)``).

    Parameters
    ----------
    window_width, placements, rounding, acc_width
        See `hw.params.SparqParams` (validated there).

    Members
    -------
    i_stream : ``In(stream.Signature(sparq_input_layout()))``
        ``act`` (2 x ``unsigned(8)``), ``weight`` (2 x ``signed(8)``), ``last``: the pair ends
        the dot product.
    o_stream : ``Out(stream.Signature(sparq_output_layout(params)))``
        ``sum``: one dot product per input transfer with ``last``, in order.

    Latency and flow control
    ------------------------
    One register stage (``latency`` 1, ``sync`` domain, synchronous reset): the transfer with
    ``last`` makes its dot product available on ``o_stream`` in the next cycle.
    ``i_stream.ready = ~o_stream.valid | o_stream.ready`` (full throughput: one pair per cycle
    while the output is taken); ``o_stream.valid`` and the payload hold until the transfer.
    Reset clears the accumulator and empties the output.

    Raises
    ------
    TypeError, ValueError
        For invalid parameters (see `hw.params.SparqParams`).
    """

    def __init__(self, *, window_width=4, placements=5, rounding=True, acc_width=32):
        self._params = SparqParams(window_width=window_width, placements=placements,
                                   rounding=rounding, acc_width=acc_width)
        super().__init__({
            "i_stream": In(stream.Signature(sparq_input_layout())),
            "o_stream": Out(stream.Signature(sparq_output_layout(self._params))),
        })

    @property
    def params(self):
        """The validated `SparqParams`."""
        return self._params

    @property
    def window_width(self):
        """Bits kept per activation when both partners are non-zero."""
        return self._params.window_width

    @property
    def placements(self):
        """Number of window offsets."""
        return self._params.placements

    @property
    def rounding(self):
        """Whether windows round half to even (ROUND) instead of truncating (RAW)."""
        return self._params.rounding

    @property
    def acc_width(self):
        """Accumulator width."""
        return self._params.acc_width

    @property
    def latency(self):
        """Cycles from the ``last`` transfer to its result being offered (1)."""
        return self._params.latency

    def elaborate(self, platform):
        m = Module()
        payload = self.i_stream.payload
        pair = sparq_product(m, self._params, [payload.act[0], payload.act[1]],
                             [payload.weight[0], payload.weight[1]])
        m.d.comb += self.i_stream.ready.eq(~self.o_stream.valid | self.o_stream.ready)
        _accumulate(m, self._params, self.i_stream, self.o_stream, pair,
                    ready=self.i_stream.ready)
        return m


class SparqBank(wiring.Component):
    """Every SPARQ mode side by side: one `SparqPE` per entry of `hw.params.sparq_modes`.

    All PEs take the same input transfers and deliver their results together, so one run
    compares every placement set, window width and rounding mode on the same data (this is
    the top the exhaustive cocotb sweep simulates).

    Parameters
    ----------
    acc_width : int, 18..48
        Accumulator width of every PE (`hw.params.SparqBankParams`).

    Members
    -------
    i_stream : ``In(stream.Signature(sparq_input_layout()))``
        As `SparqPE`.
    o_stream : ``Out(stream.Signature(bank_output_layout(params)))``
        ``sum[i]`` is the result of the PE of ``params.modes[i]``.

    Latency and flow control
    ------------------------
    As `SparqPE` (``latency`` 1); the PEs share all flow control.
    """

    def __init__(self, *, acc_width=32):
        self._params = SparqBankParams(acc_width=acc_width)
        super().__init__({
            "i_stream": In(stream.Signature(sparq_input_layout())),
            "o_stream": Out(stream.Signature(bank_output_layout(self._params))),
        })

    @property
    def params(self):
        """The validated `SparqBankParams`."""
        return self._params

    @property
    def modes(self):
        """The `SparqParams` of the PEs, in output order."""
        return self._params.modes

    @property
    def latency(self):
        """Cycles from the ``last`` transfer to its results being offered (1)."""
        return self._params.latency

    def elaborate(self, platform):
        # One flat module (no submodules): each PE's signals carry its mode name as a prefix.
        m = Module()
        payload = self.i_stream.payload
        m.d.comb += self.i_stream.ready.eq(~self.o_stream.valid | self.o_stream.ready)
        for index, mode in enumerate(self._params.modes):
            prefix = f"{mode.name.replace('-', '_')}_"
            pair = sparq_product(m, mode, [payload.act[0], payload.act[1]],
                                 [payload.weight[0], payload.weight[1]], prefix=prefix)
            lane = _LaneOutput(self.o_stream, index)
            _accumulate(m, mode, self.i_stream, lane, pair, ready=self.i_stream.ready,
                        prefix=prefix)
        return m


class _LaneOutput:
    """The view of one PE's result in the bank's output: ``payload`` is ``sum[index]``; all
    lanes share ``valid`` and ``ready``."""

    def __init__(self, o_stream, index):
        self.payload = o_stream.payload.sum[index]
        self.valid = o_stream.valid
        self.ready = o_stream.ready


class MacPE(wiring.Component):
    """Plain multiply-accumulate PE: one uint8 activation x int8 weight per cycle, exact.

    The baseline `SparqPE` is compared with (``effectual synth``): one 9b x 8b signed
    multiplier, an adder and an accumulator; same flow control and output as `SparqPE`.

    Parameters
    ----------
    acc_width : int, 18..48
        Accumulator width (`hw.params.MacParams`).

    Members
    -------
    i_stream : ``In(stream.Signature(mac_input_layout()))``
        ``act``, ``weight``, ``last`` (the pair ends the dot product).
    o_stream : ``Out(stream.Signature(sparq_output_layout(params)))``
        ``sum``: one exact dot product per ``last`` transfer.

    Latency and flow control
    ------------------------
    As `SparqPE`: ``latency`` 1, ``i_stream.ready = ~o_stream.valid | o_stream.ready``.
    """

    def __init__(self, *, acc_width=32):
        self._params = MacParams(acc_width=acc_width)
        super().__init__({
            "i_stream": In(stream.Signature(mac_input_layout())),
            "o_stream": Out(stream.Signature(sparq_output_layout(self._params))),
        })

    @property
    def params(self):
        """The validated `MacParams`."""
        return self._params

    @property
    def acc_width(self):
        """Accumulator width."""
        return self._params.acc_width

    @property
    def latency(self):
        """Cycles from the ``last`` transfer to its result being offered (1)."""
        return self._params.latency

    def elaborate(self, platform):
        m = Module()
        payload = self.i_stream.payload
        multiply = payload.act.as_unsigned() * payload.weight
        product = Signal(multiply.shape(), name="product")
        m.d.comb += [product.eq(multiply),
                     self.i_stream.ready.eq(~self.o_stream.valid | self.o_stream.ready)]
        _accumulate(m, self._params, self.i_stream, self.o_stream, product,
                    ready=self.i_stream.ready)
        return m

