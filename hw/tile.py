"""Bit-Tactical tile: the weight-skipping front end with a bit-serial (TCLp) or bit-parallel back end.

The tile and its host interface are defined in docs/tcl-contract.md (the contract shared
with `golden.tcl`): a tile has F filter lanes x N weight lanes x W windows (columns); the weight
memory holds the packed schedule rows the static scheduler produced (`hw.layouts.
schedule_row_layout`), the activation memory holds the T dense activation rows of each of the W
windows, and every (filter, window) pair has an inner-product unit and an accumulator.

Blocks
------
`ActivationSelect`
    The weight-skipping multiplexers: for every (filter, lane) slot an (h+d+1):1 choice among the
    lookahead/lookaside positions of an activation buffer of h+1 rows, driven by the stored select
    field. The element width is a parameter: the bit-serial tile selects activation *bits*, the
    bit-parallel tile selects activation *words*.
`BitSerialInnerProduct`
    N AND-gated weights, an adder tree and an LSB-first shift-accumulator (the sign plane of
    signed activations is subtracted): one Stripes-style serial inner-product unit (SIP).
`BitParallelInnerProduct`
    N multipliers, an adder tree and an accumulator.
`TCLpTile`, `BitParallelTile`
    The two tiles, with identical ports and the same front end (pattern ``"none"`` gives the
    dense front end: Dynamic Stripes resp. the bit-parallel baseline).

Front end pipeline (both tiles)
-------------------------------
The activation memory of each window is split into h+1 banks, row ``t`` in bank ``t mod (h+1)``
at address ``t div (h+1)``, so the h+1 rows ``t_r .. t_r+h`` a schedule row reads come out of the
banks in one cycle whatever the row advance (1..h+1). The skip field of every schedule row is
also kept in a narrow memory of its own, read one stage before the weights and selects, because
``t_r = t_{r-1} + 1 + skip_r`` gives the bank addresses. Stages, all moved by one ``advance``
signal: S0 issues the skip read of row ``r``; S1 computes ``t_r`` and issues the weight/select
read and the bank reads; S2 has the weights, selects and the rotated activation rows (rows at a
step ``>= T`` read zero). The bit-parallel tile executes in S2 (one cycle per row); the TCLp tile
computes the row's precision in S2 and executes in a further stage EX for ``p_r`` cycles, while
S0..S2 hold the next rows, so consecutive rows follow without a bubble.

The tiles build the logic of `ActivationSelect` and of the inner-product units inline
(`select_logic`, `bit_serial_logic`, `bit_parallel_logic`, the same functions the components
elaborate), so each tile is one flat Verilog module: Amaranth's per-submodule port aliases and
module names would otherwise fail Verilator's ``-Wall`` lint. For the same reason the code
extends operands explicitly and names the nets whose carry bits are dropped ``*_unused*``.
"""

import operator

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .layouts import act_row_layout, result_shape, schedule_row_layout
from .params import TileParams, check_bool, check_int

__all__ = ["candidate_positions", "host_interface", "ActivationSelect", "BitSerialInnerProduct",
           "BitParallelInnerProduct", "TCLpTile", "BitParallelTile"]


def _tree(op, values):
    """Return ``op`` applied over ``values`` as a balanced tree (shallow expressions)."""
    values = list(values)
    while len(values) > 1:
        values = [op(values[i], values[i + 1]) if i + 1 < len(values) else values[i]
                  for i in range(0, len(values), 2)]
    return values[0]


def candidate_positions(offsets, lanes, lane):
    """Return the buffer positions ``(dt, lane')`` that select values ``0, 1, ...`` of weight
    lane ``lane`` read: ``(0, lane)``, then ``(dt, (lane + dl) mod lanes)`` for each offset."""
    return [(0, lane)] + [(dt, (lane + dl) % lanes) for dt, dl in offsets]


def _truncated(m, name, expr, width):
    """Return ``expr`` cut to ``width`` bits through a net whose name marks the carry bits that
    are dropped as unused (Verilator's default ``--unused-regexp`` is ``*unused*``)."""
    full = Signal(max(width, len(Value.cast(expr))), name=f"{name}_unused_msb")
    m.d.comb += full.eq(expr)
    return full[:width]


def _memory_ports(mem, name):
    """Return ``(write_port, read_port)`` (synchronous) of ``mem``, their nets named after
    ``name``: Amaranth leaves each port's net unread in the emitted Verilog (the memory
    reads the driving expressions), and the ``unused`` in the name waives Verilator's lint."""
    addr_width = ceil_log2(mem.depth)
    write = memory.WritePort(memory.WritePort.Signature(shape=mem.shape, addr_width=addr_width),
                             memory=mem, domain="sync", path=(f"{name}_write_unused",))
    read = memory.ReadPort(memory.ReadPort.Signature(shape=mem.shape, addr_width=addr_width),
                           memory=mem, domain="sync", path=(f"{name}_read_unused",))
    return write, read


def _plane_bits(act_width):
    return max(1, (act_width - 1).bit_length())


def _is(value, constant):
    """Return ``value == constant`` (``constant`` must fit ``value``), built so that the
    emitted Verilog compares no operands of different widths (Verilator's WIDTH lint)."""
    value = Value.cast(value)
    # bit by bit: the emitted Verilog has no constant narrower than the value
    return Cat(value[i] if (constant >> i) & 1 else ~value[i] for i in range(len(value))).all()


def _extended(m, name, value, width):
    """Return ``value`` sign- or zero-extended to ``width`` bits, as an explicit concatenation
    (an implicit extension would leave operands of different widths in the Verilog)."""
    value = Value.cast(value)
    extra = width - len(value)
    if extra <= 0:
        return value
    if not isinstance(value, Signal):  # evaluate the expression once, not per use below
        # ("unused": when the expression is a plain slice the backend reads it directly)
        net = Signal(value.shape(), name=f"{name}_unused")
        m.d.comb += net.eq(value)
        value = net
    # A multiplexer on the top bit: Amaranth folds a plain extension (even a written-out
    # concatenation) back into the narrow operand; synthesis removes the multiplexer.
    low = Cat(value, Const(0, extra))
    high = Cat(value, Const(-1, extra)) if value.shape().signed else low
    extended = Mux(value[-1], high, low)
    return extended.as_signed() if value.shape().signed else extended


def _sum_tree(m, name, values, width):
    """Return the sum of ``values`` at ``width`` bits as a balanced adder tree (the caller
    guarantees no overflow). Each adder gets operands of equal width (the narrower one, if
    any, is extended explicitly); with a power-of-two count no extension is needed at all."""
    values = [Value.cast(v) for v in values]
    level = 0
    while len(values) > 1:
        paired = []
        for i in range(0, len(values), 2):
            if i + 1 == len(values):
                paired.append(values[i])
                continue
            a, b = values[i], values[i + 1]
            common = max(len(a), len(b))
            paired.append(_extended(m, f"{name}_l{level}_{i}a", a, common)
                          + _extended(m, f"{name}_l{level}_{i}b", b, common))
        values = paired
        level += 1
    total = values[0]
    if len(total) > width:
        return _truncated(m, f"{name}_total", total, width).as_signed()
    return _extended(m, f"{name}_total", total, width)


def select_logic(m, *, offsets, filters, lanes, element_width, window, select, selected):
    """Build the weight-skipping multiplexers of `ActivationSelect` into module ``m``.

    ``window``, ``select`` and ``selected`` are packed values laid out as the component's
    members (``select`` is ignored when nothing can be selected); the tiles call this directly
    so that their Verilog stays one flat module.
    """
    select_bits = len(offsets).bit_length()
    ew = element_width
    for f in range(filters):
        for lane in range(lanes):
            slot = f * lanes + lane
            out = selected.word_select(slot, ew)
            inputs = [window.word_select(dt * lanes + position, ew)
                      for dt, position in candidate_positions(offsets, lanes, lane)]
            if select_bits == 0:
                m.d.comb += out.eq(inputs[0])
                continue
            with m.Switch(select.word_select(slot, select_bits)):
                for k, value in enumerate(inputs):
                    with m.Case(k):
                        m.d.comb += out.eq(value)
                if len(inputs) < 1 << select_bits:
                    with m.Default():
                        m.d.comb += out.eq(0)


def bit_serial_logic(m, name, *, lanes, weight_width, act_width, act_signed, acc_width,
                     weights, bits, plane, last, en, clear, acc):
    """Build a `BitSerialInnerProduct` datapath into module ``m`` (nets prefixed ``name``);
    the arguments are the component's members and parameters."""
    n, ww = lanes, weight_width
    partial_width = ww + ceil_log2(n)
    gated = [Mux(bits[lane], weights.word_select(lane, ww), 0).as_signed()
             for lane in range(n)]
    partial = Signal(signed(partial_width), name=f"{name}_partial")
    m.d.sync += partial.eq(_sum_tree(m, f"{name}_tree", gated, partial_width))
    plane_r = Signal(len(plane), name=f"{name}_plane")
    negate = Signal(name=f"{name}_negate")
    valid = Signal(name=f"{name}_valid")
    m.d.sync += [plane_r.eq(plane), negate.eq(last & act_signed), valid.eq(en)]
    # partial << plane_r at the accumulator's width: a logarithmic shifter of equal-width stages
    shifted = _extended(m, f"{name}_partial_ext", partial, acc_width)
    for i in range(len(plane_r)):
        amount = 1 << i
        stage = Signal(signed(acc_width), name=f"{name}_shift{amount}")
        m.d.comb += stage.eq(Mux(plane_r[i], Cat(Const(0, amount), shifted[:acc_width - amount]),
                                 shifted))
        shifted = stage
    added = _truncated(m, f"{name}_sum", acc + shifted, acc_width)
    subtracted = _truncated(m, f"{name}_difference", acc - shifted, acc_width)
    with m.If(clear):
        m.d.sync += [acc.eq(0), valid.eq(0)]
    with m.Elif(valid):
        m.d.sync += acc.eq(Mux(negate, subtracted, added))


def bit_parallel_logic(m, name, *, lanes, weight_width, act_width, act_signed, acc_width,
                       weights, acts, en, clear, acc):
    """Build a `BitParallelInnerProduct` datapath into module ``m`` (nets prefixed ``name``)."""
    n, ww, aw = lanes, weight_width, act_width
    product_width = ww + aw
    products = []
    for lane in range(n):
        weight = weights.word_select(lane, ww).as_signed()
        act = acts.word_select(lane, aw)
        product = Signal(signed(product_width), name=f"{name}_p{lane}")
        m.d.comb += product.eq(weight * (act.as_signed() if act_signed else act))
        products.append(product)
    partial_width = product_width + ceil_log2(n)
    partial = Signal(signed(partial_width), name=f"{name}_partial")
    valid = Signal(name=f"{name}_valid")
    m.d.sync += [partial.eq(_sum_tree(m, f"{name}_tree", products, partial_width)),
                 valid.eq(en)]
    extended = _extended(m, f"{name}_partial_ext", partial, acc_width)
    total = _truncated(m, f"{name}_sum", acc + extended, acc_width)
    with m.If(clear):
        m.d.sync += [acc.eq(0), valid.eq(0)]
    with m.Elif(valid):
        m.d.sync += acc.eq(total)


class ActivationSelect(wiring.Component):
    """The weight-skipping multiplexers of one window: an (h+d+1):1 choice per (filter, lane).

    Slot ``s = f*N + l`` (filter ``f``, weight lane ``l``) outputs the element of the activation
    buffer named by its select field ``k``: ``k = 0`` is the slot's own position (row 0, lane
    ``l``); ``k >= 1`` is ``offsets[k-1] = (dt, dl)``, i.e. row ``dt``, lane ``(l + dl) mod N``
    (see `hw.params.parse_pattern`). A select value above ``len(offsets)`` (possible only when
    ``len(offsets) + 1`` is not a power of two) outputs zero. Elements are opaque bit vectors of
    ``element_width`` bits: activation bits (``element_width=1``) for the bit-serial back end,
    activation words for the bit-parallel one.

    Parameters
    ----------
    filters, lanes : int, 1..64
        F and N.
    pattern : str
        The connectivity pattern (``"none"``, ``"L<h,d>"``, ``"T<2,5>"``, ``"(dt,dl),..."``).
    element_width : int, 1..64
        Width of one buffer element.

    Members
    -------
    window : ``In((h+1) * N * element_width)``
        The activation buffer, packed: element ``(dt, lane)`` (row ``dt`` = step ``t + dt``) at
        bits ``[i*element_width, (i+1)*element_width)`` with ``i = dt*N + lane``; the bit layout
        of ``data.ArrayLayout(data.ArrayLayout(unsigned(element_width), N), h+1)``.
    select : ``In(F * N * select_bits)``
        The select field of slot ``s`` at bits ``[s*select_bits, (s+1)*select_bits)``. Absent
        for pattern ``"none"`` (nothing to select: every slot reads its own position).
    selected : ``Out(F * N * element_width)``
        The element slot ``s`` reads, at bits ``[s*element_width, (s+1)*element_width)``.

    The ports are plain packed vectors (not `data.Layout` views) so that the emitted Verilog
    has no per-element alias wires.

    Latency: 0 (purely combinational, no clock).

    Raises
    ------
    TypeError, ValueError
        For a parameter of the wrong type or out of range (messages of `hw.params.TileParams`,
        and ``element_width must be an integer from 1 to 64, ...``).
    """

    def __init__(self, *, filters=16, lanes=16, pattern="T<2,5>", element_width=1):
        self._params = TileParams(filters=filters, lanes=lanes, pattern=pattern)
        self._element_width = check_int("element_width", element_width, 1, 64)
        p = self._params
        ew, slots = self._element_width, p.filters * p.lanes
        members = {"window": In((p.lookahead + 1) * p.lanes * ew)}
        if p.select_bits:
            members["select"] = In(slots * p.select_bits)
        members["selected"] = Out(slots * ew)
        super().__init__(members)

    @property
    def filters(self):
        """F."""
        return self._params.filters

    @property
    def lanes(self):
        """N."""
        return self._params.lanes

    @property
    def pattern(self):
        """The connectivity pattern."""
        return self._params.pattern

    @property
    def offsets(self):
        """The candidate offsets ``((dt, dl), ...)``; select ``k >= 1`` is ``offsets[k-1]``."""
        return self._params.offsets

    @property
    def element_width(self):
        """Width of one buffer element."""
        return self._element_width

    @property
    def latency(self):
        """0: combinational."""
        return 0

    def candidates(self, lane):
        """Return the buffer positions ``(dt, lane')`` of select values 0, 1, ... for ``lane``."""
        return candidate_positions(self._params.offsets, self._params.lanes, lane)

    def elaborate(self, platform):
        m = Module()
        p = self._params
        select_logic(m, offsets=p.offsets, filters=p.filters, lanes=p.lanes,
                     element_width=self._element_width, window=self.window,
                     select=getattr(self, "select", None), selected=self.selected)
        return m


def _check_ip(lanes, weight_width, act_width, act_signed, acc_width):
    lanes = check_int("lanes", lanes, 1, TileParams.MAX_DIM)
    weight_width = check_int("weight_width", weight_width, 2, 16)
    act_width = check_int("act_width", act_width, 2, 16)
    check_bool("act_signed", act_signed)
    minimum = weight_width + act_width + ceil_log2(lanes)
    acc_width = check_int("acc_width", acc_width, minimum, 64)
    return lanes, weight_width, act_width, act_signed, acc_width


class BitSerialInnerProduct(wiring.Component):
    """Bit-serial inner-product unit: ``acc += sum_l bit_l * weight_l * (+-2**plane)``.

    One activation bit plane per cycle, least significant plane first: the N weights are
    AND-gated by the N activation bits of the plane, summed by an adder tree, shifted left by
    ``plane`` and added to the accumulator, or subtracted when ``last`` is set and the activations
    are signed (the two's-complement sign plane ``p-1`` weighs ``-2**(p-1)``). Feeding planes
    ``0..p-1`` of activations ``a_l`` (``last`` on plane ``p-1``) adds ``sum_l a_l * w_l`` to the
    accumulator whenever every ``a_l`` fits a ``p``-bit field.

    Parameters
    ----------
    lanes : int, 1..64
        N.
    weight_width : int, 2..16
        Width of the signed weights.
    act_width : int, 2..16
        Width of the activations (planes ``0..act_width-1``).
    act_signed : bool
        Subtract the ``last`` plane (two's complement) or add it (unsigned).
    acc_width : int, weight_width + act_width + ceil_log2(lanes) .. 64
        Width of the signed accumulator; sums wrap modulo ``2**acc_width``.

    Members
    -------
    weights : ``In(N * weight_width)``
        Weight ``l`` (two's complement) at bits ``[l*weight_width, (l+1)*weight_width)``.
    bits : ``In(N)``
        Bit ``l`` is lane ``l``'s activation bit of this plane.
    plane : ``In(unsigned(max(1, ceil_log2(act_width))))``
        The plane index (shift), ``0..act_width-1``.
    last : ``In(1)``
        This is the last (sign) plane of the activations.
    en : ``In(1)``
        The inputs are valid this cycle.
    clear : ``In(1)``
        Zero the accumulator and drop every plane in flight (including this cycle's).
    acc : ``Out(signed(acc_width))``
        The accumulator.

    Latency: 2. A plane presented with ``en`` in cycle ``k`` is included in ``acc`` from cycle
    ``k + 2`` (a pipeline register after the adder tree, then the accumulator). Full throughput.
    """

    def __init__(self, *, lanes=16, weight_width=16, act_width=16, act_signed=True,
                 acc_width=40):
        (self._lanes, self._weight_width, self._act_width, self._act_signed,
         self._acc_width) = _check_ip(lanes, weight_width, act_width, act_signed, acc_width)
        super().__init__({
            "weights": In(self._lanes * self._weight_width),
            "bits": In(self._lanes),
            "plane": In(unsigned(_plane_bits(self._act_width))),
            "last": In(1),
            "en": In(1),
            "clear": In(1),
            "acc": Out(signed(self._acc_width)),
        })

    lanes = property(lambda self: self._lanes, doc="N.")
    weight_width = property(lambda self: self._weight_width, doc="Width of the weights.")
    act_width = property(lambda self: self._act_width, doc="Width of the activations.")
    act_signed = property(lambda self: self._act_signed, doc="Whether activations are signed.")
    acc_width = property(lambda self: self._acc_width, doc="Width of the accumulator.")
    latency = property(lambda self: 2, doc="Cycles from a plane to its inclusion in ``acc``.")

    def elaborate(self, platform):
        m = Module()
        bit_serial_logic(m, "sip", lanes=self._lanes, weight_width=self._weight_width,
                         act_width=self._act_width, act_signed=self._act_signed,
                         acc_width=self._acc_width, weights=self.weights, bits=self.bits,
                         plane=self.plane, last=self.last, en=self.en, clear=self.clear,
                         acc=self.acc)
        return m


class BitParallelInnerProduct(wiring.Component):
    """Bit-parallel inner-product unit: ``acc += sum_l act_l * weight_l`` every valid cycle.

    Parameters
    ----------
    lanes : int, 1..64
        N.
    weight_width : int, 2..16
        Width of the signed weights.
    act_width : int, 2..16
        Width of the activations.
    act_signed : bool
        Activations are two's complement (``True``) or unsigned.
    acc_width : int, weight_width + act_width + ceil_log2(lanes) .. 64
        Width of the signed accumulator; sums wrap modulo ``2**acc_width``.

    Members
    -------
    weights : ``In(N * weight_width)``
        Weight ``l`` (two's complement) at bits ``[l*weight_width, (l+1)*weight_width)``.
    acts : ``In(N * act_width)``
        Activation ``l`` (two's complement if ``act_signed``) at bits
        ``[l*act_width, (l+1)*act_width)``.
    en : ``In(1)``
        The inputs are valid this cycle.
    clear : ``In(1)``
        Zero the accumulator and drop every product in flight (including this cycle's).
    acc : ``Out(signed(acc_width))``

    Latency: 2 (products and adder tree registered, then the accumulator). Full throughput.
    """

    def __init__(self, *, lanes=16, weight_width=16, act_width=16, act_signed=True,
                 acc_width=40):
        (self._lanes, self._weight_width, self._act_width, self._act_signed,
         self._acc_width) = _check_ip(lanes, weight_width, act_width, act_signed, acc_width)
        super().__init__({
            "weights": In(self._lanes * self._weight_width),
            "acts": In(self._lanes * self._act_width),
            "en": In(1),
            "clear": In(1),
            "acc": Out(signed(self._acc_width)),
        })

    lanes = property(lambda self: self._lanes, doc="N.")
    weight_width = property(lambda self: self._weight_width, doc="Width of the weights.")
    act_width = property(lambda self: self._act_width, doc="Width of the activations.")
    act_signed = property(lambda self: self._act_signed, doc="Whether activations are signed.")
    acc_width = property(lambda self: self._acc_width, doc="Width of the accumulator.")
    latency = property(lambda self: 2, doc="Cycles from a row to its inclusion in ``acc``.")

    def elaborate(self, platform):
        m = Module()
        bit_parallel_logic(m, "mac", lanes=self._lanes, weight_width=self._weight_width,
                           act_width=self._act_width, act_signed=self._act_signed,
                           acc_width=self._acc_width, weights=self.weights, acts=self.acts,
                           en=self.en, clear=self.clear, acc=self.acc)
        return m


#: control states of the tile, in encoding order
_STATES = ("IDLE", "LOAD_WEIGHTS", "LOAD_ACTS", "COMPUTE", "OUTPUT")


def host_interface(params):
    """Return the signature members of a tile's host interface for ``params`` (a `TileParams`):
    the ports of `TCLpTile` (docs/tcl-contract.md), shared by every tile."""
    return {
        "weights": In(stream.Signature(schedule_row_layout(params))),
        "acts": In(stream.Signature(act_row_layout(params))),
        "results": Out(stream.Signature(result_shape(params))),
        "start": In(1),
        "rows": In(unsigned(params.weight_rows.bit_length())),
        "steps": In(unsigned(params.act_rows.bit_length())),
        "load_weights": In(1),
        "busy": Out(1),
        "done": Out(1),
        "cycles": Out(32),
    }


class _Tile(wiring.Component):
    """Shared host interface, memories, front end and result path of both tiles."""

    #: pipeline stages between entering the compute phase and the first counted cycle
    _FILL = None

    def __init__(self, *, filters=16, lanes=16, windows=16, weight_width=16, act_width=16,
                 act_signed=True, pattern="T<2,5>", weight_rows=1024, act_rows=1024):
        self._params = p = TileParams(
            filters=filters, lanes=lanes, windows=windows, weight_width=weight_width,
            act_width=act_width, act_signed=act_signed, pattern=pattern,
            weight_rows=weight_rows, act_rows=act_rows)
        super().__init__(host_interface(p))

    @property
    def params(self):
        """The validated `TileParams`."""
        return self._params

    @property
    def latency(self):
        """Uncounted cycles between the last activation transfer and the first result offered.

        The first result is offered exactly ``cycles + latency`` cycles after the cycle of the
        last activation row's transfer, ``cycles`` being the pass's compute cycles.
        """
        return self._FILL + 2  # pipeline fill, the cycle finding the pipeline empty, one more

    def _front_end(self, m, advance):
        """Build memories, loading, control and stages S0..S2; return what the back end needs."""
        p = self._params
        f_, n, w_ = p.filters, p.lanes, p.windows
        h = p.lookahead
        h1 = h + 1
        slots = f_ * n
        row_bits = n * p.act_width
        weight_bits = slots * p.weight_width
        wsel_bits = slots * (p.weight_width + p.select_bits)
        bank_depth = -(-p.act_rows // h1)

        total_rows = Signal.like(self.rows)
        total_steps = Signal.like(self.steps)
        # Counters that only ever hold 0 (one window, h = 0) still get one bit: Verilog has no
        # zero-width nets.
        # One bit wider than the row count: a weight-memory address is then a slice of the
        # counter, never an alias that the backend would rename after the memory port.
        row_counter_bits = p.weight_rows.bit_length() + 1
        load_addr = Signal(row_counter_bits)
        load_window = Signal(range(max(w_, 2)))
        load_step = Signal(range(p.act_rows), name="load_step" if h else "load_step_unused")
        load_bank = Signal(range(max(h1, 2)))
        # with h = 0 there is one bank per window and the bank address is the step
        # (the backend names these registers after the memory ports' address nets, so their own
        # names are left unread: "unused")
        load_bank_addr = Signal(range(bank_depth), name="load_bank_addr_unused") if h \
            else load_step
        clear = Signal()
        compute = Signal()
        out_index = Signal(range(f_ * w_))
        state = Signal(range(len(_STATES)))

        # S0: issue; S1: skip known, t computed, memories read; S2: row data available.
        issue_row = Signal(row_counter_bits)
        row1 = Signal.like(issue_row)
        valid1 = Signal()
        valid2 = Signal()
        t_width = p.act_rows + h + 1
        base = Signal(range(t_width))
        base_mod = Signal(range(max(h1, 2)))
        base_div = Signal(range(bank_depth + 2))
        t2 = Signal(range(t_width))
        mod2 = Signal(range(max(h1, 2)))

        m.submodules.weight_memory = wmem = memory.Memory(
            shape=unsigned(wsel_bits), depth=p.weight_rows, init=[])
        wmem_w, wmem_r = _memory_ports(wmem, "weight_memory")
        if p.advance_bits:
            m.submodules.skip_memory = smem = memory.Memory(
                shape=unsigned(p.advance_bits), depth=p.weight_rows, init=[])
            smem_w, smem_r = _memory_ports(smem, "skip_memory")
        banks = []
        for w in range(w_):
            column = []
            for j in range(h1):
                bank = memory.Memory(shape=unsigned(row_bits), depth=bank_depth, init=[])
                m.submodules[f"act_memory_w{w}_b{j}"] = bank
                column.append(_memory_ports(bank, f"act_memory_w{w}_b{j}"))
            banks.append(column)

        rows_ext = _extended(m, "total_rows_ext", total_rows, row_counter_bits)

        def plus(name, value, amount=1):
            amount = Const(amount, len(value)) if isinstance(amount, int) else _extended(
                m, f"{name}_addend", amount, len(value))
            return _truncated(m, name, value + amount, len(value))

        def minus_one(name, value):
            return _truncated(m, name, value - Const(1, len(value)), len(value))

        # --- loading -------------------------------------------------------------------------
        weight_payload = self.weights.payload
        m.d.comb += [
            wmem_w.addr.eq(load_addr),
            wmem_w.data.eq(weight_payload.as_value()[:wsel_bits]),
        ]
        if p.advance_bits:
            m.d.comb += [smem_w.addr.eq(load_addr), smem_w.data.eq(weight_payload.skip),
                         smem_w.en.eq(wmem_w.en)]
        for w in range(w_):
            for j in range(h1):
                write, _ = banks[w][j]
                m.d.comb += [
                    write.addr.eq(load_bank_addr),
                    write.data.eq(self.acts.payload.as_value()),
                    write.en.eq(self.acts.valid & self.acts.ready & _is(load_window, w)
                                & _is(load_bank, j)),
                ]

        idle, loading_w, loading_a, computing, output = (
            _is(state, _STATES.index(name)) for name in _STATES)

        def goto(name):
            return state.eq(Const(_STATES.index(name), len(state)))
        with m.If(idle):
            with m.If(self.start):
                m.d.comb += clear.eq(1)
                m.d.sync += [
                    total_rows.eq(self.rows), total_steps.eq(self.steps),
                    load_addr.eq(0), load_window.eq(0), load_step.eq(0), load_bank.eq(0),
                    load_bank_addr.eq(0), self.done.eq(0), self.cycles.eq(0),
                ]
                with m.If(self.load_weights):
                    m.d.sync += goto("LOAD_WEIGHTS")
                with m.Else():
                    m.d.sync += goto("LOAD_ACTS")
        with m.Elif(loading_w):
            with m.If(load_addr == rows_ext):
                m.d.sync += goto("LOAD_ACTS")
            with m.Elif(self.weights.valid):
                m.d.sync += load_addr.eq(plus("load_addr_next", load_addr))
        with m.Elif(loading_a):
            with m.If(self.acts.valid):
                with m.If(_extended(m, "load_step_ext", load_step, len(total_steps))
                          == minus_one("steps_minus_one", total_steps)):
                    m.d.sync += [load_step.eq(0), load_bank.eq(0),
                                 load_window.eq(plus("load_window_next", load_window))]
                    if h:
                        m.d.sync += load_bank_addr.eq(0)
                    with m.If(_is(load_window, w_ - 1)):
                        m.d.sync += [issue_row.eq(0), valid1.eq(0), valid2.eq(0),
                                     base.eq(0), base_mod.eq(0), base_div.eq(0),
                                     goto("COMPUTE")]
                with m.Else():
                    m.d.sync += load_step.eq(plus("load_step_next", load_step))
                    if h:
                        with m.If(_is(load_bank, h)):
                            m.d.sync += [load_bank.eq(0), load_bank_addr.eq(
                                plus("load_bank_addr_next", load_bank_addr))]
                        with m.Else():
                            m.d.sync += load_bank.eq(plus("load_bank_next", load_bank))
        with m.Elif(computing):
            # The pipeline is empty one cycle after the last counted cycle; the inner-product
            # units (latency 2) have added it to the accumulators one cycle later, in the
            # first OUTPUT cycle.
            with m.If(self._pipeline_empty(issue_row == rows_ext, valid1, valid2)):
                m.d.sync += [out_index.eq(0), goto("OUTPUT")]
        with m.Else():  # OUTPUT
            with m.If(self.results.ready):
                m.d.sync += out_index.eq(plus("out_index_next", out_index))
                with m.If(_is(out_index, f_ * w_ - 1)):
                    m.d.sync += [self.done.eq(1), goto("IDLE")]

        # Control outputs are plain functions of the state (continuous assignments in Verilog,
        # defined from time 0 in every simulator).
        loading_weights = loading_w & (load_addr != rows_ext)
        m.d.comb += [
            self.busy.eq(~idle),
            self.weights.ready.eq(loading_weights),
            wmem_w.en.eq(loading_weights & self.weights.valid),
            self.acts.ready.eq(loading_a),
            compute.eq(computing),
            self.results.valid.eq(output),
        ]

        # --- S0 -> S1 ------------------------------------------------------------------------
        issue = compute & (issue_row != rows_ext)
        with m.If(advance):
            m.d.sync += [valid1.eq(issue), row1.eq(issue_row)]
            with m.If(issue):
                m.d.sync += issue_row.eq(plus("issue_row_next", issue_row))

        # --- S1: t_r = t_{r-1} + 1 + skip_r, kept also as (t_r div (h+1), t_r mod (h+1)) ------
        if p.advance_bits:
            mod1 = Signal(range(max(h1, 2)))
            div1 = Signal(range(bank_depth + 2))
        m.d.comb += wmem_r.addr.eq(row1), wmem_r.en.eq(advance)
        if p.advance_bits:
            skip = Signal(range(h1))
            m.d.comb += [smem_r.addr.eq(issue_row), smem_r.en.eq(advance), skip.eq(smem_r.data)]
            t1 = plus("t1", base, skip)
            base_div_next = plus("div1", base_div)
            # (base_mod + skip) mod (h+1) and its carry into base_div, by table
            with m.Switch(Cat(skip, base_mod)):
                for bm in range(h1):
                    for sk in range(h1):
                        with m.Case(sk | (bm << len(skip))):
                            total = bm + sk
                            m.d.comb += mod1.eq(Const(total % h1, len(mod1)))
                            m.d.comb += div1.eq(base_div_next if total >= h1 else base_div)
                with m.Default():
                    m.d.comb += [mod1.eq(Const(0, len(mod1))), div1.eq(base_div)]
        else:  # h = 0: every row advances by one
            t1, mod1, div1 = base, base_mod, base_div
        div1_next = plus("div1_next", div1)
        for w in range(w_):
            for j in range(h1):
                _, read = banks[w][j]
                # bank j holds the row of t..t+h that is j mod (h+1): the next one if j < mod
                later = _tree(operator.or_, [_is(mod1, v) for v in range(j + 1, h1)]) \
                    if j < h else None
                address = Mux(later, div1_next, div1) if j < h else div1
                m.d.comb += [read.addr.eq(_truncated(m, f"bank_addr_w{w}_b{j}", address,
                                                     len(read.addr))),
                             read.en.eq(advance)]
        with m.If(advance):
            m.d.sync += [valid2.eq(valid1), t2.eq(t1), mod2.eq(mod1)]
            with m.If(valid1):
                m.d.sync += base.eq(plus("base_next", t1))
                with m.If(_is(mod1, h)):
                    m.d.sync += [base_mod.eq(0), base_div.eq(plus("base_div_next", div1))]
                with m.Else():
                    m.d.sync += [base_mod.eq(plus("base_mod_next", mod1)), base_div.eq(div1)]

        # --- S2: rotate bank outputs into rows t2 .. t2+h; rows at a step >= T read zero ------
        windows = []
        for w in range(w_):
            # (named "unused" because the backend may read the rows directly instead)
            window = Signal(h1 * row_bits, name=f"window_w{w}_unused")
            for dt in range(h1):
                rotated = Signal(row_bits, name=f"rotated_w{w}_d{dt}")
                if h1 == 1:
                    m.d.comb += rotated.eq(banks[w][0][1].data)
                else:
                    with m.Switch(mod2):
                        for mod in range(h1):
                            with m.Case(mod):
                                m.d.comb += rotated.eq(banks[w][(mod + dt) % h1][1].data)
                        if h1 < 1 << len(mod2):
                            with m.Default():
                                m.d.comb += rotated.eq(0)
                row = window.word_select(dt, row_bits)
                if dt == 0:
                    m.d.comb += row.eq(rotated)  # t2 < T for every scheduled row
                else:
                    step = t2  # t2 + dt < act_rows + h: no overflow; 1'h1 increments lint clean
                    for i in range(dt):
                        step = plus(f"t2_plus_{i + 1}", step)
                    in_range = step < _extended(m, f"steps_ext_{dt}", total_steps, len(step))
                    m.d.comb += row.eq(Mux(in_range, rotated, 0))
            windows.append(window)

        accs = self._back_end(m, clear=clear, compute=compute, advance=advance, valid2=valid2,
                              weights2=wmem_r.data[:weight_bits],
                              selects2=wmem_r.data[weight_bits:],
                              windows=windows)
        # results: window-major, filter-minor
        with m.Switch(out_index):
            for index, acc in enumerate(accs[f][w] for w in range(w_) for f in range(f_)):
                with m.Case(index):
                    m.d.comb += self.results.payload.eq(acc)
            if f_ * w_ < 1 << len(out_index):
                with m.Default():
                    m.d.comb += self.results.payload.eq(0)
        return m

    def _pipeline_empty(self, issued_all, valid1, valid2):
        raise NotImplementedError  # pragma: no cover - defined by each tile


class TCLpTile(_Tile):
    """The TCLp tile: weight-skipping front end and bit-serial activations with per-row dynamic
    precision (with pattern ``"none"``: a Dynamic Stripes tile).

    Each executed schedule row ``r`` takes ``p_r`` cycles, one activation bit plane per cycle,
    least significant first: ``p_r`` is the largest dynamic precision over the W windows of the
    activations the row's selects read (`golden.precision.group_precision` semantics, at least
    1), found in stage S2 from the union of the positions selected by any slot (a decoded mask
    of the h+1 buffer rows), an OR over the sign-folded masked values and a leading-one detector
    (as in `hw.precision.DynamicPrecisionDetector`). In stage EX the W x (h+1) x N buffered
    activations shift right one bit per cycle; for every window the `ActivationSelect` logic on
    the bits picks one bit per slot, and F x W `BitSerialInnerProduct` datapaths accumulate, the
    sign plane ``p_r - 1`` subtracted for signed activations. All W columns run in lock-step.

    Parameters
    ----------
    filters, lanes, windows, weight_width, act_width, act_signed, pattern, weight_rows, act_rows
        As `hw.params.TileParams` (keyword-only, validated there).

    Members
    -------
    weights : ``In(stream.Signature(hw.layouts.schedule_row_layout(params)))``
        Schedule rows, accepted only while loading (R rows after a ``start`` with
        ``load_weights``).
    acts : ``In(stream.Signature(hw.layouts.act_row_layout(params)))``
        W*T activation rows per pass, window-major (all T rows of window 0 first).
    results : ``Out(stream.Signature(signed(acc_width)))``
        F*W results per pass, window-major, filter-minor.
    start : ``In(1)``
        One-cycle pulse; accepted only while idle (``busy`` low). Latches ``rows``, ``steps``
        and ``load_weights``, zeroes the accumulators and ``cycles`` and clears ``done``.
    rows : ``In(unsigned(weight_rows.bit_length()))``
        R, the schedule rows of the pass, 1..weight_rows.
    steps : ``In(unsigned(act_rows.bit_length()))``
        T, the dense steps (activation rows per window), 1..act_rows.
    load_weights : ``In(1)``
        1: accept R schedule rows on ``weights`` first; 0: reuse the rows in memory.
    busy : ``Out(1)``
        High from the cycle after an accepted ``start`` until the last result has been taken.
    done : ``Out(1)``
        High from the cycle after the last result transfer until the next ``start``.
    cycles : ``Out(32)``
        Compute cycles of the last pass: ``sum_r p_r`` exactly (counted while the pass runs,
        final once ``done`` is high).

    Flow control: the streams follow the ``lib.stream`` rules; ``weights.ready`` and
    ``acts.ready`` are high only in their load phases, ``results.valid`` only in the result
    phase. ``latency`` gives the uncounted cycles between loading and the results.
    """

    _FILL = 3  # S0, S1, S2 before EX

    def _pipeline_empty(self, issued_all, valid1, valid2):
        return issued_all & ~valid1 & ~valid2 & ~self._valid_x

    def elaborate(self, platform):
        m = Module()
        self._valid_x = Signal()
        self._last = Signal()
        advance = Signal()
        self._advance = advance
        return self._front_end(m, advance)

    def _back_end(self, m, *, clear, compute, advance, valid2, weights2, selects2, windows):
        p = self._params
        f_, n, w_ = p.filters, p.lanes, p.windows
        h1 = p.lookahead + 1
        aw, ww, sb = p.act_width, p.weight_width, p.select_bits
        slots = f_ * n
        valid_x = self._valid_x

        # --- S2: precision of the row over the positions any slot selects -------------------
        decode = {}
        used = [[[] for _ in range(n)] for _ in range(h1)]
        for f in range(f_):
            for lane in range(n):
                slot = f * n + lane
                for k, (dt, position) in enumerate(candidate_positions(p.offsets, n, lane)):
                    if (slot, k) not in decode:
                        decode[slot, k] = _is(selects2.word_select(slot, sb), k) if sb else Const(1)
                    used[dt][position].append(decode[slot, k])
        folded_width = aw - 1 if p.act_signed else aw
        contributions = []
        for dt in range(h1):
            for lane in range(n):
                if not used[dt][lane]:
                    continue
                if sb:
                    mask = Signal(name=f"used_d{dt}_l{lane}")
                    m.d.comb += mask.eq(_tree(operator.or_, used[dt][lane]))
                else:  # pattern "none": every slot reads its own position
                    mask = Const(1)
                for w in range(w_):
                    value = windows[w].word_select(dt * n + lane, aw)
                    if p.act_signed:
                        value = value[:aw - 1] ^ value[aw - 1].replicate(aw - 1)
                    contributions.append(value & mask.replicate(folded_width))
        combined = Signal(folded_width)
        m.d.comb += combined.eq(_tree(operator.or_, contributions))
        # Leading-one detector of hw.precision.DynamicPrecisionDetector (there on one group,
        # here on the OR of the whole row): the last matching assignment wins.
        precision2 = Signal(aw.bit_length())
        m.d.comb += precision2.eq(Const(1, len(precision2)))
        for i in range(folded_width):
            with m.If(combined[i]):
                m.d.comb += precision2.eq(Const(i + 1 + p.act_signed, len(precision2)))

        # --- EX: hold the row for p cycles, one plane per cycle ------------------------------
        weights_x = Signal(slots * ww)
        selects_x = Signal(slots * sb) if sb else None
        precision_x = Signal(len(precision2))
        plane = Signal(unsigned(_plane_bits(aw)))
        last = Signal()
        precision_minus_one = _truncated(m, "precision_minus_one",
                                         precision_x - Const(1, len(precision_x)),
                                         len(precision_x))
        m.d.comb += [last.eq(_extended(m, "plane_ext", plane, len(precision_x))
                             == precision_minus_one),
                     advance.eq(compute & (~valid_x | last))]
        # Each element shifts right one bit per cycle: its bit 0 is the current plane.
        buffers = [Signal(h1 * n * aw, name=f"abuf_w{w}") for w in range(w_)]
        with m.If(advance):
            m.d.sync += [valid_x.eq(valid2), weights_x.eq(weights2), precision_x.eq(precision2),
                         plane.eq(0)]
            if sb:
                m.d.sync += selects_x.eq(selects2)
            m.d.sync += [buffer.eq(window) for buffer, window in zip(buffers, windows)]
        with m.Elif(valid_x):
            m.d.sync += plane.eq(_truncated(m, "plane_next", plane + Const(1, len(plane)),
                                            len(plane)))
            m.d.sync += [buffer.eq(Cat(Cat(buffer[i * aw + 1:(i + 1) * aw], Const(0, 1))
                                       for i in range(h1 * n))) for buffer in buffers]
        with m.If(valid_x):
            m.d.sync += self.cycles.eq(_truncated(m, "cycles_next",
                                                  self.cycles + Const(1, 32), 32))

        # The ActivationSelect and BitSerialInnerProduct logic, built flat into this module.
        accs = [[None] * w_ for _ in range(f_)]
        for w in range(w_):
            selected = Signal(slots, name=f"selected_bits_w{w}")
            select_logic(m, offsets=p.offsets, filters=f_, lanes=n, element_width=1,
                         window=Cat(buffers[w][i * aw] for i in range(h1 * n)),
                         select=selects_x, selected=selected)
            for f in range(f_):
                acc = Signal(signed(p.acc_width), name=f"acc_f{f}_w{w}")
                bit_serial_logic(m, f"sip_f{f}_w{w}", lanes=n, weight_width=ww, act_width=aw,
                                 act_signed=p.act_signed, acc_width=p.acc_width,
                                 weights=weights_x[f * n * ww:(f + 1) * n * ww],
                                 bits=selected[f * n:(f + 1) * n], plane=plane, last=last,
                                 en=valid_x, clear=clear, acc=acc)
                accs[f][w] = acc
        return accs


class BitParallelTile(_Tile):
    """The bit-parallel tile: the same front end, F x N x W full-width multipliers, one cycle
    per executed schedule row (pattern ``"none"``: the DaDianNao-like baseline; otherwise the
    weight-skipping front end on a bit-parallel back end).

    In stage S2 every window's `ActivationSelect` logic picks one activation word per slot and
    F x W `BitParallelInnerProduct` datapaths accumulate; ``cycles`` counts exactly R per pass.

    Parameters and Members
    ----------------------
    Identical to `TCLpTile` (same ports, same flow control); ``cycles`` is R.
    """

    _FILL = 2  # S0, S1 before S2 (= execute)

    def _pipeline_empty(self, issued_all, valid1, valid2):
        return issued_all & ~valid1 & ~valid2

    def elaborate(self, platform):
        m = Module()
        advance = Signal(name="advance_unused")  # an alias of compute here
        return self._front_end(m, advance)

    def _back_end(self, m, *, clear, compute, advance, valid2, weights2, selects2, windows):
        p = self._params
        f_, n, w_ = p.filters, p.lanes, p.windows
        aw, ww = p.act_width, p.weight_width
        m.d.comb += advance.eq(compute)
        with m.If(valid2):
            m.d.sync += self.cycles.eq(_truncated(m, "cycles_next",
                                                  self.cycles + Const(1, 32), 32))
        # The ActivationSelect and BitParallelInnerProduct logic, built flat into this module.
        accs = [[None] * w_ for _ in range(f_)]
        for w in range(w_):
            selected = Signal(f_ * n * aw, name=f"selected_acts_w{w}")
            select_logic(m, offsets=p.offsets, filters=f_, lanes=n, element_width=aw,
                         window=windows[w], select=selects2, selected=selected)
            for f in range(f_):
                acc = Signal(signed(p.acc_width), name=f"acc_f{f}_w{w}")
                bit_parallel_logic(m, f"mac_f{f}_w{w}", lanes=n, weight_width=ww, act_width=aw,
                                   act_signed=p.act_signed, acc_width=p.acc_width,
                                   weights=weights2[f * n * ww:(f + 1) * n * ww],
                                   acts=selected[f * n * aw:(f + 1) * n * aw], en=valid2,
                                   clear=clear, acc=acc)
                accs[f][w] = acc
        return accs
