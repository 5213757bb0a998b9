"""The FPRaker tile for the boards: P `hw.fpraker.FPRakerPE` s in lock-step behind the host
interface of the integer tiles (`hw.tile.TCLpTile`), so the board stack (host link, board top,
driver) drives it unchanged.

`golden.fpraker_tile` defines a pass (results and cycles) and packs the rows; the arithmetic of
each PE is `golden.fpraker.fpraker_dot`.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import memory, wiring

from .fpraker import FPRakerPE
from .params import FPRakerTileParams
from .tile import _memory_ports, host_interface

__all__ = ["FPRakerTile"]

#: control states, in encoding order (as `hw.tile`)
_STATES = ("IDLE", "LOAD_WEIGHTS", "LOAD_ACTS", "COMPUTE", "OUTPUT")


class FPRakerTile(wiring.Component):
    """P FPRaker PEs computing P bfloat16 dot products that share their A operand, with the
    ports of `hw.tile.TCLpTile`.

    A pass: after ``start`` (``rows`` = ``steps`` = R, ``load_weights``), R schedule rows (the
    B sets: row ``r`` holds PE ``p``'s N B patterns in slots ``p*N .. p*N+N-1``) when
    ``load_weights`` is 1, then R activation rows (the A sets, shared by all PEs), then P results
    (float32 patterns, PE order). Rows are kept in two memories (``amaranth.lib.memory``), so a
    pass with ``load_weights`` 0 reuses the loaded B sets with new A sets. The compute phase
    reads set ``r`` (A row ``r``, or A = +0 when ``r >= steps``; ``last`` on ``r = R - 1``) and
    gives it to all P PEs at once; the next set goes only when every PE has accepted (all
    ``i_stream.ready`` high), so set ``r`` costs ``max over PEs`` of its term cycles and the pass
    costs `golden.fpraker_tile.pass_result` ``.cycles`` exactly. The PEs' results are captured
    as they come (their ``o_stream.ready`` is always high, so no PE stalls).

    Parameters
    ----------
    filters, lanes, weight_rows, act_rows, fp_acc_width, encoding, windows, weight_width,
    act_width, act_signed, pattern
        As `hw.params.FPRakerTileParams` (keyword-only, validated there): P PEs (1..16), N
        pairs per set (1..16), R = ``weight_rows`` = ``act_rows`` sets per pass, the PEs'
        window W (16..48) and term encoding; the rest fixed.

    Members
    -------
    weights : ``In(stream.Signature(hw.layouts.schedule_row_layout(params)))``
        Schedule rows (B sets, P*N 16-bit patterns), accepted only while loading (R rows after
        a ``start`` with ``load_weights``).
    acts : ``In(stream.Signature(hw.layouts.act_row_layout(params)))``
        ``steps`` activation rows per pass (A sets, N 16-bit patterns).
    results : ``Out(stream.Signature(signed(33)))``
        P results per pass, PE order: float32 patterns zero-extended (non-negative).
    start : ``In(1)``
        One-cycle pulse; accepted only while idle (``busy`` low). Latches ``rows``, ``steps``
        and ``load_weights``, zeroes ``cycles`` and clears ``done``.
    rows : ``In(unsigned(weight_rows.bit_length()))``
        R, the sets of the pass, 1..weight_rows.
    steps : ``In(unsigned(act_rows.bit_length()))``
        T, the activation rows of the pass, 1..act_rows (the golden passes use T = R).
    load_weights : ``In(1)``
        1: accept R schedule rows on ``weights`` first; 0: reuse the rows in memory.
    busy : ``Out(1)``
        High from the cycle after an accepted ``start`` until the last result has been taken.
    done : ``Out(1)``
        High from the cycle after the last result transfer until the next ``start``.
    cycles : ``Out(32)``
        Compute cycles of the last pass: ``sum_r max_p c[p, r]`` (`golden.fpraker_tile`),
        counted while the PEs work, final once ``done`` is high.

    Latency and flow control
    ------------------------
    The streams follow the ``lib.stream`` rules; ``weights.ready`` and ``acts.ready`` are high
    only in their load phases, ``results.valid`` only in the result phase (``valid`` does not
    depend on ``ready``). The first result is offered exactly ``cycles + latency`` cycles after
    the cycle of the last activation row's transfer (``latency`` = 4: the first set's memory
    read, its transfer to the PEs, the last result's register in the PEs, the capture). One
    ``sync`` domain with synchronous reset (ports ``clk``, ``rst``).

    Raises
    ------
    TypeError, ValueError
        For invalid parameters (`hw.params.FPRakerTileParams`).
    """

    def __init__(self, *, filters=2, lanes=4, windows=1, weight_width=16, act_width=16,
                 act_signed=False, pattern="none", weight_rows=16, act_rows=16,
                 fp_acc_width=28, encoding="naf"):
        self._params = p = FPRakerTileParams(
            filters=filters, lanes=lanes, windows=windows, weight_width=weight_width,
            act_width=act_width, act_signed=act_signed, pattern=pattern,
            weight_rows=weight_rows, act_rows=act_rows, fp_acc_width=fp_acc_width,
            encoding=encoding)
        super().__init__(host_interface(p))

    @property
    def params(self):
        """The validated `FPRakerTileParams`."""
        return self._params

    @property
    def latency(self):
        """Uncounted cycles between the last activation transfer and the first result offered
        (the first result comes ``cycles + latency`` cycles after that transfer)."""
        return 4

    def elaborate(self, platform):
        m = Module()
        p = self._params
        pes, n = p.filters, p.lanes
        row_bits, act_bits = pes * n * 16, n * 16

        m.submodules.weight_memory = wmem = memory.Memory(
            shape=unsigned(row_bits), depth=p.weight_rows, init=[])
        wmem_w, wmem_r = _memory_ports(wmem, "weight_memory")
        m.submodules.act_memory = amem = memory.Memory(
            shape=unsigned(act_bits), depth=p.act_rows, init=[])
        amem_w, amem_r = _memory_ports(amem, "act_memory")
        engines = []
        for index in range(pes):
            pe = FPRakerPE(lanes=n, acc_width=p.fp_acc_width, encoding=p.encoding)
            m.submodules[f"pe{index}"] = pe
            engines.append(pe)

        state = Signal(range(len(_STATES)))
        idle, loading_w, loading_a, computing, output = (
            state == _STATES.index(name) for name in _STATES)

        def goto(name):
            return state.eq(_STATES.index(name))

        total_rows = Signal.like(self.rows)
        total_steps = Signal.like(self.steps)
        load_addr = Signal(range(p.weight_rows + 1))
        load_step = Signal(range(p.act_rows + 1))
        issue_row = Signal(range(p.weight_rows + 1))
        offer_valid = Signal()
        offer_last = Signal()
        offer_a_zero = Signal()
        working = Signal()
        out_index = Signal(range(max(pes, 2)))
        captured = [Signal(32, name=f"result{index}") for index in range(pes)]
        got = [Signal(name=f"got{index}") for index in range(pes)]

        # --- loading ---------------------------------------------------------------------------
        loading_weights = loading_w & (load_addr != total_rows)
        m.d.comb += [
            self.busy.eq(~idle),
            self.weights.ready.eq(loading_weights),
            wmem_w.addr.eq(load_addr),
            wmem_w.data.eq(self.weights.payload.as_value()),
            wmem_w.en.eq(loading_weights & self.weights.valid),
            self.acts.ready.eq(loading_a),
            amem_w.addr.eq(load_step),
            amem_w.data.eq(self.acts.payload.as_value()),
            amem_w.en.eq(loading_a & self.acts.valid),
            self.results.valid.eq(output),
        ]

        # --- feeding the PEs in lock-step ------------------------------------------------------
        all_ready = Cat(pe.i_stream.ready for pe in engines).all()
        fire = Signal()
        fetch = Signal()
        m.d.comb += [
            fire.eq(offer_valid & all_ready),
            fetch.eq(computing & (issue_row != total_rows) & (~offer_valid | fire)),
            wmem_r.addr.eq(issue_row),
            wmem_r.en.eq(fetch),
            amem_r.addr.eq(issue_row),
            amem_r.en.eq(fetch),
        ]
        a_set = Mux(offer_a_zero, 0, amem_r.data)
        for index, pe in enumerate(engines):
            m.d.comb += [
                pe.i_stream.valid.eq(fire),
                pe.i_stream.payload.eq(Cat(a_set, wmem_r.data.word_select(index, act_bits),
                                           offer_last)),
                pe.o_stream.ready.eq(1),
            ]
        with m.If(fetch):
            m.d.sync += [offer_valid.eq(1), offer_last.eq(issue_row + 1 == total_rows),
                         offer_a_zero.eq(issue_row >= total_steps), issue_row.eq(issue_row + 1)]
        with m.Elif(fire):
            m.d.sync += offer_valid.eq(0)
        # a set fired in cycle k is worked on from k + 1 until every PE is ready again
        with m.If(fire):
            m.d.sync += working.eq(1)
        with m.Elif(all_ready):
            m.d.sync += working.eq(0)
        with m.If(working):
            m.d.sync += self.cycles.eq(self.cycles + 1)
        # the results leave through a shift register (``captured[0]`` is offered): a plain
        # register output, defined from time 0 in every simulator
        for index, (pe, value, flag) in enumerate(zip(engines, captured, got)):
            with m.If(output & self.results.ready):
                if index + 1 < pes:
                    m.d.sync += value.eq(captured[index + 1])
            with m.Elif(pe.o_stream.valid):
                m.d.sync += [value.eq(pe.o_stream.payload.result), flag.eq(1)]
        all_got = Cat(flag | pe.o_stream.valid for pe, flag in zip(engines, got)).all()

        # --- control ---------------------------------------------------------------------------
        with m.If(idle):
            with m.If(self.start):
                m.d.sync += [
                    total_rows.eq(self.rows), total_steps.eq(self.steps), load_addr.eq(0),
                    load_step.eq(0), self.done.eq(0), self.cycles.eq(0),
                ]
                with m.If(self.load_weights):
                    m.d.sync += goto("LOAD_WEIGHTS")
                with m.Else():
                    m.d.sync += goto("LOAD_ACTS")
        with m.Elif(loading_w):
            with m.If(load_addr == total_rows):
                m.d.sync += goto("LOAD_ACTS")
            with m.Elif(self.weights.valid):
                m.d.sync += load_addr.eq(load_addr + 1)
        with m.Elif(loading_a):
            with m.If(self.acts.valid):
                with m.If(load_step + 1 == total_steps):
                    m.d.sync += [issue_row.eq(0), offer_valid.eq(0), goto("COMPUTE")]
                    m.d.sync += [flag.eq(0) for flag in got]
                with m.Else():
                    m.d.sync += load_step.eq(load_step + 1)
        with m.Elif(computing):
            with m.If(all_got):
                m.d.sync += [out_index.eq(0), goto("OUTPUT")]
        with m.Else():  # OUTPUT
            with m.If(self.results.ready):
                m.d.sync += out_index.eq(out_index + 1)
                with m.If(out_index == pes - 1):
                    m.d.sync += [self.done.eq(1), goto("IDLE")]

        m.d.comb += self.results.payload.eq(Cat(captured[0], Const(0, 1)))
        return m
