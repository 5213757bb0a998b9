"""Term-serial inner products with Pragmatic's two-stage shifter, and the TCLe tile.

A term-serial processing element (PE) takes N (activation, weight) pairs per row and processes
the activations' terms (`hw.terms`: signed powers of two, LSB first), one term per lane per
cycle. The *two-stage shifter* (Pragmatic, spec section 1.5): each cycle the PE's *base* is the
smallest pending term position over its lanes; a lane whose next term lies within ``2**L1``
positions of the base (``L1 = first_stage_bits``) shifts its weight by ``position - base`` in a
small first-stage shifter (``0 .. 2**L1 - 1``) and consumes the term, the others wait; the adder
tree sums the lanes (each negated for a negative term) and one shared second-stage shifter
shifts the sum by the base before it is accumulated. A row takes ``max(1, cycles)`` cycles, the
count of `golden.pragmatic.pe_cycles`.

Blocks
------
`TermSerialInnerProduct`
    One PE with its own term encoders, on streams: rows in, one dot product out per row marked
    ``last``. Equals `golden.terms.term_serial_dot` and takes `golden.pragmatic.pe_cycles`
    cycles per row.
`TCLeTile`
    The TCL front end of `hw.tile` (memories, loading, stages S0..S2, result path) with a
    term-serial back end: F x W PEs, columns in lock-step. Same ports and cycle counter as
    `hw.tile.TCLpTile`.
"""

import operator
from functools import reduce

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .params import TCLeTileParams, TERM_ENCODINGS, check_bool, check_int
from .terms import lowest_term, term_masks
from .tile import ActivationSelect, _Tile

__all__ = ["term_serial_cycle", "TermSerialInnerProduct", "TCLeTile", "ipu_row_layout"]


def _onehot_to_binary(onehot, bits):
    """Return the index of the set bit of a one-hot (or zero) value, as ``bits`` bits."""
    return Cat(*(Cat(*(onehot[k] for k in range(len(onehot)) if k >> b & 1)).any()
                 for b in range(bits)))


def _tree_sum(values):
    values = list(values)
    while len(values) > 1:
        values = [values[i] + values[i + 1] if i + 1 < len(values) else values[i]
                  for i in range(0, len(values), 2)]
    return values[0]


def term_serial_cycle(m, pending, negatives, weights, *, first_stage_bits, name):
    """Build one cycle of a term-serial PE; return ``(contribution, rest, finished)``.

    Parameters
    ----------
    pending, negatives : list of Values (one per lane, ``act_width + 1`` bits)
        The lanes' pending term masks and the masks of their negative terms.
    weights : list of signed Values (one per lane)
    first_stage_bits : int, 0..3
        L1: the first-stage shifter covers ``2**L1`` positions above the base.
    name : str
        Prefix of the nets.

    Returns
    -------
    contribution : signed Value
        This cycle's ``(sum over consuming lanes of +-(w << (position - base))) << base``.
    rest : list of Signals
        The lanes' pending masks after this cycle.
    finished : Signal
        1 when no term is left after this cycle.
    """
    width = len(pending[0])
    position_bits = max(1, (width - 1).bit_length())
    union = Signal(width, name=f"{name}_union")
    base_onehot = Signal(width, name=f"{name}_base_onehot")
    base = Signal(position_bits, name=f"{name}_base")
    window = Signal(width, name=f"{name}_window")
    m.d.comb += [
        union.eq(reduce(operator.or_, pending)),
        base_onehot.eq(union & (~union + 1)[:width]),
        base.eq(_onehot_to_binary(base_onehot, position_bits)),
        window.eq(reduce(operator.or_, [(base_onehot << k)[:width]
                                        for k in range(1 << first_stage_bits)])),
    ]
    terms, rest = [], []
    shifted_width = len(weights[0]) + (1 << first_stage_bits) - 1
    for lane, (lane_pending, lane_negatives, weight) in enumerate(
            zip(pending, negatives, weights)):
        _, negative, position, popped = lowest_term(m, lane_pending, lane_negatives,
                                                    position_bits=position_bits,
                                                    name=f"{name}_l{lane}")
        take = Signal(name=f"{name}_l{lane}_take")
        lane_rest = Signal(width, name=f"{name}_l{lane}_rest")
        m.d.comb += [
            take.eq((window & (lane_pending ^ popped)).any()),  # the lowest term is in the window
            lane_rest.eq(Mux(take, popped, lane_pending)),
        ]
        # The first-stage shifter: a choice among the 2**L1 constant shifts of the weight
        # (sign-extended to the widest), so no operator mixes operand widths.
        shifted = Signal(signed(shifted_width), name=f"{name}_l{lane}_shifted")
        if first_stage_bits:
            distance = Signal(first_stage_bits, name=f"{name}_l{lane}_distance")
            difference = Signal(position_bits + 1, name=f"{name}_l{lane}_distance_unused_msbs")
            m.d.comb += [difference.eq(position - base),
                         distance.eq(difference[:first_stage_bits])]
            # nested Mux (assignments, not a process: see hw.terms on Icarus and processes)
            choice = weight
            for k in range(1, 1 << first_stage_bits):
                choice = Mux(distance == k, Cat(Const(0, k), weight).as_signed(), choice)
            m.d.comb += shifted.eq(choice)
        else:
            m.d.comb += shifted.eq(weight)
        term = Signal(signed(shifted_width + 1), name=f"{name}_l{lane}_term")
        m.d.comb += term.eq(Mux(take, Mux(negative, -shifted, shifted), 0))
        terms.append(term)
        rest.append(lane_rest)
    tree = Signal(signed(len(terms[0]) + ceil_log2(len(terms))), name=f"{name}_tree")
    m.d.comb += tree.eq(_tree_sum(terms))
    contribution = Signal(signed(len(tree) + width - 1), name=f"{name}_contribution")
    m.d.comb += contribution.eq(tree << base)  # the shared second-stage shifter
    finished = Signal(name=f"{name}_finished")
    m.d.comb += finished.eq(~reduce(operator.or_, rest).any())
    return contribution, rest, finished


def ipu_row_layout(*, lanes, weight_width, act_width, act_signed):
    """Return the input row layout of `TermSerialInnerProduct`: ``StructLayout`` of ``acts``
    (``ArrayLayout`` of ``lanes`` activations), ``weights`` (``ArrayLayout`` of ``lanes``
    ``signed(weight_width)``) and ``last`` (1 bit: the row ends a dot product)."""
    act_shape = signed(act_width) if act_signed else unsigned(act_width)
    return data.StructLayout({"acts": data.ArrayLayout(act_shape, lanes),
                              "weights": data.ArrayLayout(signed(weight_width), lanes),
                              "last": 1})


class TermSerialInnerProduct(wiring.Component):
    """One term-serial PE on streams: dot products of activation terms and weights.

    Each accepted row holds N activations, N weights and ``last``. The activations are encoded
    into terms on acceptance (`hw.terms.term_masks`; with ``gate_zero_weights`` a lane whose
    weight is zero gets no terms); the row then takes ``max(1, c)`` compute cycles, ``c`` from
    the two-stage shifter rule (module docstring, `golden.pragmatic.pe_cycles`), and its
    products are added to the accumulator. After a row with ``last`` the accumulated dot product
    is offered on ``o_stream`` and the accumulator restarts from zero.

    Parameters
    ----------
    lanes : int, 1..64
    weight_width : int, 2..16
        Signed weights.
    act_width : int, 2..16
    act_signed : bool
    encoding : {"naf", "booth", "binary"}
    first_stage_bits : int, 0..3
        L1 (2: first-stage shifts 0..3).
    gate_zero_weights : bool
        Give lanes with a zero weight no terms (TCLe's holes); False processes every lane.
    acc_width : int, 8..64
        Accumulator and result width (wrap-around two's complement).

    Members
    -------
    i_stream : ``In(stream.Signature(ipu_row_layout(...)))``
    o_stream : ``Out(stream.Signature(signed(acc_width)))``
    cycles : ``Out(32)``
        Compute cycles since reset (one per cycle spent on a row).

    Latency and flow control
    ------------------------
    A row accepted in cycle ``k`` computes in cycles ``k+1 .. k+c``; ``i_stream.ready`` is high
    when no row is held or in the held row's final compute cycle, so rows follow back to back.
    A ``last`` row's result is offered from the cycle after its final compute cycle and held
    until taken; while a result waits (``o_stream.valid & ~o_stream.ready``) nothing computes.
    ``sync`` domain, synchronous reset.
    """

    def __init__(self, *, lanes=16, weight_width=16, act_width=16, act_signed=True,
                 encoding="booth", first_stage_bits=2, gate_zero_weights=False, acc_width=48):
        self._lanes = check_int("lanes", lanes, 1, 64)
        self._weight_width = check_int("weight_width", weight_width, 2, 16)
        self._act_width = check_int("act_width", act_width, 2, 16)
        self._act_signed = check_bool("act_signed", act_signed)
        if not isinstance(encoding, str) or encoding not in TERM_ENCODINGS:
            error = ValueError if isinstance(encoding, str) else TypeError
            raise error(f"encoding must be one of {', '.join(TERM_ENCODINGS)}, not {encoding!r}")
        self._encoding = encoding
        self._first_stage_bits = check_int("first_stage_bits", first_stage_bits, 0, 3)
        self._gate = check_bool("gate_zero_weights", gate_zero_weights)
        self._acc_width = check_int("acc_width", acc_width, 8, 64)
        super().__init__({
            "i_stream": In(stream.Signature(ipu_row_layout(
                lanes=lanes, weight_width=weight_width, act_width=act_width,
                act_signed=act_signed))),
            "o_stream": Out(stream.Signature(signed(acc_width))),
            "cycles": Out(32),
        })

    @property
    def latency(self):
        """Cycles from accepting a ``last`` row with ``c`` compute cycles to its result being
        offered, minus ``c``: 1."""
        return 1

    def elaborate(self, platform):
        m = Module()
        n, aw = self._lanes, self._act_width
        busy = Signal()
        row_last = Signal()
        acc = Signal(signed(self._acc_width))
        pending = [Signal(aw + 1, name=f"pending{lane}") for lane in range(n)]
        negatives = [Signal(aw + 1, name=f"negatives{lane}") for lane in range(n)]
        weights = [Signal(signed(self._weight_width), name=f"weight{lane}") for lane in range(n)]

        contribution, rest, finished = term_serial_cycle(
            m, pending, negatives, weights, first_stage_bits=self._first_stage_bits, name="pe")
        blocked = self.o_stream.valid & ~self.o_stream.ready
        advance = Signal()
        ending = Signal()
        accept = Signal()
        m.d.comb += [
            advance.eq(busy & ~blocked),
            ending.eq(advance & finished),
            self.i_stream.ready.eq(~busy | ending),
            accept.eq(self.i_stream.valid & self.i_stream.ready),
        ]
        with m.If(self.o_stream.valid & self.o_stream.ready):
            m.d.sync += self.o_stream.valid.eq(0)
        with m.If(advance):
            m.d.sync += self.cycles.eq(self.cycles + 1)
            m.d.sync += [p.eq(r) for p, r in zip(pending, rest)]
            with m.If(finished & row_last):
                m.d.sync += [self.o_stream.payload.eq(acc + contribution),
                             self.o_stream.valid.eq(1), acc.eq(0)]
            with m.Else():
                m.d.sync += acc.eq(acc + contribution)
            with m.If(finished):
                m.d.sync += busy.eq(0)
        for lane in range(n):
            lane_m = Module()
            m.submodules[f"encoder{lane}"] = lane_m
            new_terms, new_negatives = term_masks(
                lane_m, self.i_stream.payload.acts[lane], width=aw, signed=self._act_signed,
                encoding=self._encoding)
            if self._gate:
                nonzero = self.i_stream.payload.weights[lane].any()
                new_terms = Mux(nonzero, new_terms, 0)
            with m.If(accept):
                m.d.sync += [pending[lane].eq(new_terms), negatives[lane].eq(new_negatives),
                             weights[lane].eq(self.i_stream.payload.weights[lane])]
        with m.If(accept):
            m.d.sync += [busy.eq(1), row_last.eq(self.i_stream.payload.last)]
        return m


class TCLeTile(_Tile):
    """The TCLe tile: the TCL weight-skipping front end of `hw.tile` with a term-serial back end.

    Front end, memories, loading, control, result path and ports are those of
    `hw.tile.TCLpTile` (shared code: `hw.tile._Tile`); see its docstring for the members
    ``weights``, ``acts``, ``results``, ``start``, ``rows``, ``steps``, ``load_weights``,
    ``busy``, ``done`` and ``cycles`` and the flow control. The back end:

    * Stage S2: every activation of the W x (h+1) x N buffer is encoded into term masks
      (`hw.terms.term_masks`, ``encoding``); for every window an `hw.tile.ActivationSelect`
      picks, per (filter, lane) slot, the masks of the activation its select field reads; with
      ``gate_zero_weights`` a slot whose weight is zero gets no terms.
    * Column buffers: each of the W columns holds up to ``run_ahead + 1`` rows: the one its
      PEs execute and up to ``run_ahead`` waiting ones (weights and selected masks). The front
      end pushes its S2 row into every column at once, in a cycle where every column has room
      (a column whose row ends in that cycle has room); S0..S2 meanwhile hold the next rows,
      so a column never waits for the front end.
    * Stage EX, per column: F term-serial PEs (`term_serial_cycle`, first-stage window
      ``first_stage_bits``) consume one term per lane per cycle and add to their accumulators.
      The column's row ends in the cycle in which all F PEs have consumed all its terms (at
      least one cycle); its next row starts the cycle after. ``run_ahead = 0`` is lock-step:
      every row waits for all columns. ``cycles`` counts the cycles in which any column
      executes: per pass exactly `golden.pragmatic.schedule_cycles` (the
      `golden.tcl.pass_cycles` recurrence over the columns' row costs).

    Parameters
    ----------
    filters, lanes, windows, weight_width, act_width, act_signed, pattern, weight_rows, act_rows
        As `hw.params.TileParams`.
    encoding : {"naf", "booth", "binary"}
    first_stage_bits : int, 0..3
    run_ahead : int, 0..8
    gate_zero_weights : bool
        See `hw.params.TCLeTileParams` (keyword-only, validated there). Pattern ``"none"`` with
        ``gate_zero_weights=False`` is a Pragmatic tile (golden design ``pragmatic``).

    Latency: ``latency`` (as `hw.tile.TCLpTile`): the first result is offered exactly
    ``cycles + latency`` cycles after the last activation transfer.
    """

    _FILL = 3  # S0, S1, S2 before EX

    def __init__(self, *, encoding="booth", first_stage_bits=2, run_ahead=0,
                 gate_zero_weights=True, **tile):
        self._tcle_params = TCLeTileParams(encoding=encoding, first_stage_bits=first_stage_bits,
                                           run_ahead=run_ahead,
                                           gate_zero_weights=gate_zero_weights, **tile)
        super().__init__(**tile)

    @property
    def params(self):
        """The validated `hw.params.TCLeTileParams`."""
        return self._tcle_params

    def _pipeline_empty(self, issued_all, valid1, valid2):
        # a column with waiting rows always has a row in EX
        return issued_all & ~valid1 & ~valid2 & ~Cat(*self._valid_x).any()

    def elaborate(self, platform):
        m = Module()
        self._valid_x = [Signal(name=f"valid_x_w{w}") for w in range(self._tcle_params.windows)]
        advance = Signal()
        return self._front_end(m, advance)

    def _back_end(self, m, *, clear, compute, advance, valid2, weights2, selects2, windows):
        p = self._tcle_params
        f_, n, w_ = p.filters, p.lanes, p.windows
        h1 = p.lookahead + 1
        aw, ww = p.act_width, p.weight_width
        mw = aw + 1  # mask width: positions 0..act_width
        slots = f_ * n
        depth = p.run_ahead  # waiting rows per column
        valid_x = self._valid_x

        # --- S2: term masks of every buffered activation, selected per slot ---------------------
        # A column entry: the slots' term masks, then their negative masks, then the weights.
        slot_nonzero = [weights2.word_select(s, ww).any() for s in range(slots)]
        pushed = []
        for w in range(w_):
            encoders = Module()
            m.submodules[f"encode_w{w}"] = encoders
            elements = []
            for i in range(h1 * n):
                terms, negatives = term_masks(encoders, windows[w].word_select(i, aw), width=aw,
                                              signed=p.act_signed, encoding=p.encoding)
                elements.append(Cat(terms, negatives))
            select = ActivationSelect(filters=f_, lanes=n, pattern=p.pattern,
                                      element_width=2 * mw)
            m.submodules[f"select_w{w}"] = select
            m.d.comb += select.window.eq(Cat(*elements))
            if p.select_bits:  # pattern "none" has nothing to select
                m.d.comb += select.select.eq(selects2)
            element = [select.selected.word_select(s, 2 * mw) for s in range(slots)]
            terms = [Mux(slot_nonzero[s], element[s][:mw], 0) if p.gate_zero_weights
                     else element[s][:mw] for s in range(slots)]
            entry = Signal(slots * (2 * mw + ww), name=f"entry_s2_w{w}")
            m.d.comb += entry.eq(Cat(*terms, *(e[mw:] for e in element), weights2))
            pushed.append(entry)

        # --- EX, per column: F PEs on the column's current row --------------------------------
        # In lock-step every column holds the same row: the columns share one weights register.
        shared_weights = Signal(slots * ww, name="weights_x") if depth == 0 else None
        if depth == 0:
            with m.If(advance):  # lock-step: a push happens when every column is free
                m.d.sync += shared_weights.eq(weights2)
        push = Signal()
        m.d.comb += push.eq(advance & valid2)
        accs = [[None] * w_ for _ in range(f_)]
        room = []
        for w in range(w_):
            weights_x = shared_weights if depth == 0 else Signal(slots * ww,
                                                                 name=f"weights_x_w{w}")
            pending = [Signal(mw, name=f"pending_w{w}_s{s}") for s in range(slots)]
            negatives = [Signal(mw, name=f"negatives_w{w}_s{s}") for s in range(slots)]
            finished_pes, rests = [], []
            for f in range(f_):
                pe = Module()
                m.submodules[f"pe_f{f}_w{w}"] = pe
                weights = [weights_x.word_select(f * n + l, ww).as_signed() for l in range(n)]
                contribution, rest, finished = term_serial_cycle(
                    pe, pending[f * n:(f + 1) * n], negatives[f * n:(f + 1) * n], weights,
                    first_stage_bits=p.first_stage_bits, name="pe")
                finished_pes.append(finished)
                rests += rest
                acc = Signal(signed(p.acc_width), name=f"acc_f{f}_w{w}")
                # equal-width operands, the carry out in a net named unused (Verilator lint)
                extended = Signal(signed(p.acc_width), name=f"contribution_f{f}_w{w}")
                total = Signal(signed(p.acc_width + 1), name=f"acc_next_f{f}_w{w}_unused_msb")
                m.d.comb += [extended.eq(contribution), total.eq(acc + extended)]
                with m.If(clear):
                    m.d.sync += acc.eq(0)
                with m.Elif(valid_x[w]):
                    m.d.sync += acc.eq(total[:p.acc_width])
                accs[f][w] = acc
            # the column takes a new row (or none) at the end of a cycle in which it is free
            free = Signal(name=f"free_w{w}")
            m.d.comb += free.eq(~valid_x[w] | reduce(operator.and_, finished_pes))

            waiting = [Signal(len(pushed[w]), name=f"waiting_w{w}_k{k}") for k in range(depth)]
            waiting_valid = [Signal(name=f"waiting_valid_w{w}_k{k}") for k in range(depth)]
            # room: fewer than run_ahead + 1 rows held, or the EX row ends this cycle
            room.append(free if depth == 0 else (free | ~waiting_valid[-1]))
            # The EX row: the oldest waiting row, else the pushed row, else none.
            incoming = Signal(len(pushed[w]), name=f"incoming_w{w}")
            incoming_valid = Signal(name=f"incoming_valid_w{w}")
            if depth:
                m.d.comb += [incoming.eq(Mux(waiting_valid[0], waiting[0], pushed[w])),
                             incoming_valid.eq(waiting_valid[0] | push)]
            else:
                m.d.comb += [incoming.eq(pushed[w]), incoming_valid.eq(push)]
            with m.If(free):
                m.d.sync += valid_x[w].eq(incoming_valid)
                m.d.sync += [register.eq(incoming.word_select(s, mw))
                             for s, register in enumerate(pending + negatives)]
                if depth:
                    m.d.sync += weights_x.eq(incoming[2 * slots * mw:])
            with m.Else():
                m.d.sync += [register.eq(rest) for register, rest in zip(pending, rests)]
            # The waiting rows, oldest first: shift down when the EX row takes the oldest; the
            # pushed row goes behind the last waiting one (not into the buffer when it goes
            # straight to EX).
            if depth:
                pop = free & waiting_valid[0]
                for k in range(depth):
                    after_valid = waiting_valid[k + 1] if k + 1 < depth else Const(0)
                    after = waiting[k + 1] if k + 1 < depth else pushed[w]
                    behind = waiting_valid[k - 1] if k else Const(1)
                    with m.If(pop):
                        with m.If(push & waiting_valid[k] & ~after_valid):
                            m.d.sync += [waiting[k].eq(pushed[w]), waiting_valid[k].eq(1)]
                        with m.Else():
                            m.d.sync += [waiting[k].eq(after), waiting_valid[k].eq(after_valid)]
                    with m.Elif(push & ~free & ~waiting_valid[k] & behind):
                        m.d.sync += [waiting[k].eq(pushed[w]), waiting_valid[k].eq(1)]
                with m.If(clear):
                    m.d.sync += [v.eq(0) for v in waiting_valid]

        m.d.comb += advance.eq(compute & reduce(operator.and_, room))
        with m.If(Cat(*valid_x).any()):
            m.d.sync += self.cycles.eq(self.cycles + 1)
        return accs
