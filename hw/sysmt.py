"""SySMT: an output-stationary systolic array of NB-SMT processing elements (1, 2 or 4 threads).

The reference is `golden.nbsmt` (products: `golden.nbsmt.nbsmt_step`; schedule and cycles:
`golden.nbsmt.array_tiles`, `golden.nbsmt.tile_cycles`). One processing element (PE) per
output owns one 8b x 8b multiply budget, built as

* 1 thread: one 8b x 8b multiplier;
* 2 threads: two 4b x 8b multipliers with shifters (the SPARQ 2opt datapath of
  `hw.sparq.sparq_product` with a weight-zero detect): both threads active -> each thread's
  4-bit activation window times its weight; otherwise the active thread's exact product from
  its two activation nibbles;
* 4 threads: four 4b x 5b (unsigned x signed) multipliers with shifters, routed by the set of
  active threads: one active -> the four nibble products of its exact 8b x 8b product; two
  active -> two units each (4-bit activation window times the weight's high and low nibbles);
  three or four -> one unit each (4-bit activation window times 4-bit weight window).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .params import SparqParams, SySMTParams
from .sparq import select, sparq_product, widen, window_select

__all__ = ["SySMTArray", "sysmt_input_layout", "sysmt_output_layout", "nbsmt_product",
           "CYCLE_COUNTER_WIDTH"]

#: width of the ``cycles`` output
CYCLE_COUNTER_WIDTH = 32


def sysmt_input_layout(params):
    """Return the input payload layout: one step of a tile.

    ``act``: ``rows`` x ``threads`` ``unsigned(8)`` (row ``i``: output position ``i`` of the
    tile, thread ``t``: reduction element ``step * threads + t``); ``weight``: ``cols`` x
    ``threads`` ``signed(8)`` (column ``j``: output channel ``j`` of the tile); ``last``: the
    tile's last step.
    """
    return data.StructLayout({
        "act": data.ArrayLayout(data.ArrayLayout(unsigned(8), params.threads), params.rows),
        "weight": data.ArrayLayout(data.ArrayLayout(signed(8), params.threads), params.cols),
        "last": unsigned(1),
    })


def sysmt_output_layout(params):
    """Return the output payload layout: ``sum``, one row of ``cols`` ``signed(acc_width)``."""
    return data.StructLayout({"sum": data.ArrayLayout(signed(params.acc_width), params.cols)})


def _weight_window(m, w, *, rounding, name):
    """Return ``(field, high)``: the signed 4-bit window of int8 ``w`` (`golden.nbsmt.
    reduce_weight`); ``high`` says the window is at offset 4."""
    small = Signal(name=f"{name}_small")
    m.d.comb += small.eq(~w[3:].any() | w[3:].all())
    field = Signal(signed(4), name=f"{name}_wfield")
    nibble = w[4:8]
    if rounding:
        up = w[3] & (w[:3].any() | w[4])
        rounded = Signal(signed(4), name=f"{name}_wrounded")
        saturate = nibble[:3].all() & ~nibble[3] & up
        incremented_unused_msb = Signal(5, name=f"{name}_wincremented_unused_msb")
        m.d.comb += [incremented_unused_msb.eq(nibble + Cat(up, Const(0, 3))),
                     rounded.eq(Mux(saturate, nibble, incremented_unused_msb[:4]))]
        m.d.comb += field.eq(Mux(small, w[:4].as_signed(), rounded))
    else:
        m.d.comb += field.eq(Mux(small, w[:4], nibble))
    return field, ~small


def _four_thread_product(m, params, acts, weights, active, prefix):
    """The 4-thread datapath: four 4b x 5b multipliers routed by the active-thread mask."""
    fields, highs, wfields, whighs = [], [], [], []
    for t in range(4):
        field, shift = window_select(m, acts[t], width=4, offsets=(0, 4),
                                     rounding=params.rounding, name=f"{prefix}t{t}_act")
        fields.append(field)
        highs.append(shift.any())
        wfield, whigh = _weight_window(m, weights[t], rounding=params.rounding,
                                       name=f"{prefix}t{t}")
        wfields.append(wfield)
        whighs.append(whigh)
    # per unit: x (unsigned 4), y (signed 5), shift code (amount / 4: 0, 1, 2)
    xs = [Signal(4, name=f"{prefix}u{u}_x") for u in range(4)]
    ys = [Signal(signed(5), name=f"{prefix}u{u}_y") for u in range(4)]
    codes = [Signal(2, name=f"{prefix}u{u}_shift") for u in range(4)]

    def signed5(bits, signed):
        return Cat(bits, bits[3] if signed else Const(0, 1)).as_signed()

    def high_nibble(t):
        return signed5(weights[t][4:8], True)

    def low_nibble(t):
        return signed5(weights[t][:4], False)

    a0, a1, a2, a3 = active
    two_or_more = Signal(name=f"{prefix}two_or_more")
    many = Signal(name=f"{prefix}three_or_more")
    m.d.comb += [
        two_or_more.eq((a0 & a1) | (a0 & a2) | (a0 & a3) | (a1 & a2) | (a1 & a3) | (a2 & a3)),
        many.eq((a0 & a1 & a2) | (a0 & a1 & a3) | (a0 & a2 & a3) | (a1 & a2 & a3)),
    ]

    def lowest(values):
        """The value of the lowest active thread (thread 3 if none is active)."""
        result = values[3]
        for t in (2, 1, 0):
            result = Mux(active[t], values[t], result)
        return result

    def highest(values):
        """The value of the highest active thread (thread 0 if none is active)."""
        result = values[0]
        for t in (1, 2, 3):
            result = Mux(active[t], values[t], result)
        return result

    high_nibbles = [high_nibble(t) for t in range(4)]
    low_nibbles = [low_nibble(t) for t in range(4)]
    # one active (or none: its exact product is zero): the four nibble products of a x w
    def named(value, name):
        signal = Signal(value.shape(), name=f"{prefix}{name}")
        m.d.comb += signal.eq(value)
        return signal

    sa = named(lowest([acts[t] for t in range(4)]), "single_act")
    sw_high = named(lowest(high_nibbles), "single_weight_high")
    sw_low = named(lowest(low_nibbles), "single_weight_low")
    single = [(sa[4:8], sw_high, Const(2, 2)), (sa[4:8], sw_low, Const(1, 2)),
              (sa[:4], sw_high, Const(1, 2)), (sa[:4], sw_low, Const(0, 2))]
    # two active: units 0, 1 for the lower thread, 2, 3 for the higher one
    pair = []
    for pick in (lowest, highest):
        field = named(pick(fields), f"pair_{pick.__name__}_field")
        high = named(pick(highs), f"pair_{pick.__name__}_high")
        pair += [(field, pick(high_nibbles), Mux(high, 2, 1)),
                 (field, pick(low_nibbles), Cat(high, Const(0, 1)))]
    # three or four active: unit t for thread t, 4-bit activation and weight windows
    spread = [(Mux(active[t], fields[t], 0), signed5(wfields[t], True),
               Mux(highs[t] & whighs[t], 2, Cat(highs[t] | whighs[t], Const(0, 1))))
              for t in range(4)]
    for u in range(4):
        for index, target in enumerate((xs[u], ys[u], codes[u])):
            m.d.comb += target.eq(Mux(two_or_more, Mux(many, spread[u][index], pair[u][index]),
                                      single[u][index]))
    units = []
    for u in range(4):
        product = xs[u].as_unsigned() * ys[u]
        shifted = Signal(signed(len(product) + 8), name=f"{prefix}u{u}_shifted")
        options = [product, Cat(Const(0, 4), product).as_signed(),
                   Cat(Const(0, 8), product).as_signed()]
        m.d.comb += shifted.eq(select(codes[u], {0: options[0], 1: options[1]}, options[2]))
        units.append(shifted)
    half0 = Signal(signed(len(units[0]) + 1), name=f"{prefix}sum01")
    half1 = Signal(signed(len(units[0]) + 1), name=f"{prefix}sum23")
    total = Signal(signed(len(units[0]) + 2), name=f"{prefix}sum")
    m.d.comb += [half0.eq(units[0] + units[1]), half1.eq(units[2] + units[3]),
                 total.eq(half0 + half1)]
    return total


def _increment(m, value, name):
    """Return ``value + 1`` (wrapping) with operands of equal width in the emitted Verilog."""
    next_unused_msb = Signal(len(value) + 1, name=f"{name}_next_unused_msb")
    m.d.comb += next_unused_msb.eq(value + Const(1, len(value)))
    return next_unused_msb[:len(value)]


def nbsmt_product(m, params, acts, weights, *, prefix=""):
    """Add one NB-SMT PE's datapath to ``m``; return the cycle's contribution (a signal).

    ``acts`` / ``weights``: ``params.threads`` values each (``unsigned(8)`` / ``signed(8)``).
    """
    t = params.threads
    active = []
    for index in range(t):
        flag = Signal(name=f"{prefix}t{index}_active")
        condition = acts[index].any()
        if params.skip_zero_weights:
            condition = condition & weights[index].any()
        m.d.comb += flag.eq(condition)
        active.append(flag)
    if t == 1:
        # zero-gated 8b x 8b product (a named net: the sign extension reads it twice)
        gated = Mux(active[0], acts[0].as_unsigned() * weights[0], 0)
        product = Signal(gated.shape(), name=f"{prefix}product")
        m.d.comb += product.eq(gated)
        return product
    if t == 2:
        mode = SparqParams(window_width=4, placements=2, rounding=params.rounding,
                           acc_width=params.acc_width)
        return sparq_product(m, mode, acts, weights, prefix=prefix, active=active)
    return _four_thread_product(m, params, acts, weights, active, prefix)


class SySMTArray(wiring.Component):
    """Output-stationary systolic array of ``rows`` x ``cols`` NB-SMT PEs with a cycle counter.

    A *tile* computes ``rows`` output positions x ``cols`` output channels of a GEMM. The host
    streams the tile's steps: step ``s`` carries, for every row ``i``, the ``threads``
    activations ``A[i, s*T .. s*T+T-1]`` and, for every column ``j``, the weights
    ``W[j, s*T .. s*T+T-1]`` (zero-padded), ``last`` on the final step. Inside, row ``i``'s
    activations are delayed ``i`` steps and column ``j``'s weights ``j`` steps (the systolic
    skew); every PE passes its activations right and its weights down and accumulates its
    NB-SMT products (`nbsmt_product`; `golden.nbsmt.nbsmt_step`). After ``last`` the array
    flushes for ``rows + cols - 2`` cycles (zeros, which are idle threads), then emits its
    ``rows`` result rows (row 0 first) and clears the accumulators for the next tile.

    Parameters
    ----------
    rows, cols, threads, rounding, skip_zero_weights, acc_width
        See `hw.params.SySMTParams` (validated there).

    Members
    -------
    i_stream : ``In(stream.Signature(sysmt_input_layout(params)))``
        One tile step per transfer (``act``, ``weight``, ``last``).
    o_stream : ``Out(stream.Signature(sysmt_output_layout(params)))``
        One result row per transfer: ``sum[j]`` = output (row, column ``j``) of the tile.
    cycles : ``Out(32)``
        Busy cycles since reset: cycles with an input step transfer, a flush cycle, or a
        result row transfer. Per tile that is `golden.nbsmt.tile_cycles` (``ceil(L/T)`` +
        ``rows + cols - 2`` + ``rows``), whatever the idle cycles and backpressure; with
        neither, it is also the wall-clock time. Wraps at 2**32.

    Latency and flow control
    ------------------------
    ``i_stream.ready`` is high while the array loads a tile (it never stalls within a tile:
    NB-SMT squeezes instead); it is low during the flush and the output phase. ``latency``
    (``rows + cols - 1``) cycles after the ``last`` transfer the first row is offered;
    ``o_stream.valid`` does not depend on ``o_stream.ready`` and rows hold until taken. Reset
    (synchronous) empties the array, clears the accumulators and the counter.

    Raises
    ------
    TypeError, ValueError
        For invalid parameters (see `hw.params.SySMTParams`).
    """

    def __init__(self, *, rows=4, cols=4, threads=2, rounding=True, skip_zero_weights=True,
                 acc_width=32):
        self._params = SySMTParams(rows=rows, cols=cols, threads=threads, rounding=rounding,
                                   skip_zero_weights=skip_zero_weights, acc_width=acc_width)
        super().__init__({
            "i_stream": In(stream.Signature(sysmt_input_layout(self._params))),
            "o_stream": Out(stream.Signature(sysmt_output_layout(self._params))),
            "cycles": Out(CYCLE_COUNTER_WIDTH),
        })

    @property
    def params(self):
        """The validated `SySMTParams`."""
        return self._params

    @property
    def rows(self):
        """Output positions per tile."""
        return self._params.rows

    @property
    def cols(self):
        """Output channels per tile."""
        return self._params.cols

    @property
    def threads(self):
        """Threads per PE."""
        return self._params.threads

    @property
    def rounding(self):
        """Whether squeezed operands round half to even (else truncate)."""
        return self._params.rounding

    @property
    def skip_zero_weights(self):
        """Whether a zero weight idles its thread."""
        return self._params.skip_zero_weights

    @property
    def acc_width(self):
        """Accumulator width."""
        return self._params.acc_width

    @property
    def latency(self):
        """Cycles from the ``last`` transfer to the first result row being offered."""
        return self._params.latency

    def elaborate(self, platform):
        m = Module()
        p = self._params
        rows, cols, t = p.rows, p.cols, p.threads
        flush_cycles = rows + cols - 2

        # Phase: a one-hot register (load, flush, emit); load after reset.
        phase = Signal(3, init=1)
        loading, flushing, emitting = phase[0], phase[1], phase[2]
        flush_count = Signal(range(max(flush_cycles, 2)))
        row = Signal(range(max(rows, 2)))
        advance = Signal()
        out_transfer = Signal()
        m.d.comb += [
            self.i_stream.ready.eq(loading),
            self.o_stream.valid.eq(emitting),
            advance.eq((loading & self.i_stream.valid) | flushing),
            out_transfer.eq(emitting & self.o_stream.ready),
        ]
        with m.If(advance | out_transfer):
            m.d.sync += self.cycles.eq(_increment(m, self.cycles, "cycles"))

        # Inputs entering the array this cycle: the stream payload while loading, else zeros.
        payload = self.i_stream.payload
        act_in = [[Signal(8, name=f"in_r{i}_t{k}") for k in range(t)] for i in range(rows)]
        weight_in = [[Signal(signed(8), name=f"in_c{j}_t{k}") for k in range(t)]
                     for j in range(cols)]
        for i in range(rows):
            for k in range(t):
                m.d.comb += act_in[i][k].eq(Mux(loading, payload.act[i][k], 0))
        for j in range(cols):
            for k in range(t):
                m.d.comb += weight_in[j][k].eq(Mux(loading, payload.weight[j][k], 0))

        # Skew: row i's activations pass i registers, column j's weights j registers.
        def delay(values, depth, name):
            current = values
            for stage in range(depth):
                registers = [Signal.like(v, name=f"{name}_d{stage}_t{k}")
                             for k, v in enumerate(current)]
                with m.If(advance):
                    m.d.sync += [r.eq(v) for r, v in zip(registers, current)]
                current = registers
            return current

        left = [delay(act_in[i], i, f"skew_r{i}") for i in range(rows)]
        top = [delay(weight_in[j], j, f"skew_c{j}") for j in range(cols)]

        accs = [[Signal(signed(p.acc_width), name=f"acc_r{i}_c{j}") for j in range(cols)]
                for i in range(rows)]
        clear = Signal()
        m.d.comb += clear.eq(out_transfer & (row == Const(rows - 1, len(row))))
        pass_act, pass_weight = {}, {}
        for i in range(rows):
            for j in range(cols):
                acts = left[i] if j == 0 else pass_act[(i, j - 1)]
                weights = top[j] if i == 0 else pass_weight[(i - 1, j)]
                prefix = f"pe_r{i}_c{j}_"
                product = nbsmt_product(m, p, acts, weights, prefix=prefix)
                wide = widen(m, product, p.acc_width, f"{prefix}product_wide")
                total_unused_msb = Signal(signed(p.acc_width + 1),
                                          name=f"{prefix}total_unused_msb")
                m.d.comb += total_unused_msb.eq(accs[i][j] + wide)
                with m.If(clear):
                    m.d.sync += accs[i][j].eq(0)
                with m.Elif(advance):
                    m.d.sync += accs[i][j].eq(total_unused_msb[:p.acc_width])
                if j < cols - 1:
                    regs = [Signal(8, name=f"{prefix}act_t{k}") for k in range(t)]
                    with m.If(advance):
                        m.d.sync += [r.eq(v) for r, v in zip(regs, acts)]
                    pass_act[(i, j)] = regs
                if i < rows - 1:
                    regs = [Signal(signed(8), name=f"{prefix}weight_t{k}") for k in range(t)]
                    with m.If(advance):
                        m.d.sync += [r.eq(v) for r, v in zip(regs, weights)]
                    pass_weight[(i, j)] = regs

        # Output: the accumulators of the selected row.
        for j in range(cols):
            m.d.comb += self.o_stream.payload.sum[j].eq(
                select(row, {i: accs[i][j] for i in range(rows - 1)}, accs[rows - 1][j]))

        last_step = self.i_stream.valid & payload.last
        with m.If(loading & last_step):
            if flush_cycles:
                m.d.sync += [phase.eq(0b010), flush_count.eq(0)]
            else:
                m.d.sync += phase.eq(0b100)
        if flush_cycles:
            with m.If(flushing):
                m.d.sync += flush_count.eq(_increment(m, flush_count, "flush_count"))
                with m.If(flush_count == Const(flush_cycles - 1, len(flush_count))):
                    m.d.sync += phase.eq(0b100)
        with m.If(out_transfer):
            m.d.sync += row.eq(_increment(m, row, "row"))
            with m.If(row == Const(rows - 1, len(row))):
                m.d.sync += [row.eq(0), phase.eq(0b001)]
        return m

