"""Host link: the framed request/reply protocol of `hw.protocol` between a UART and a tile.

`HostLink` parses request frames from a byte stream (the UART receiver), checks them (sync byte,
length, CRC, inter-byte timeout), executes the command against its on-chip buffers and the tile
(the host interface of docs/tcl-contract.md) and sends one reply frame per request. It
also runs the built-in self-test from vectors baked in at build time.
"""

import functools
import operator

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .layouts import act_row_layout, schedule_row_layout
from .params import FPRakerTileParams, TCLeTileParams, TileParams, check_int
from .protocol import (INFO_LENGTH, MAGIC, PROTOCOL_VERSION, REPLY_SYNC, REQUEST_SYNC, Command,
                       Error, backend_code, encoding_code, pattern_crc)

__all__ = ["HostLink", "SelfTest", "crc16_next", "frame_geometry"]


def _crc_step_bits(crc, byte):
    """CRC-16/CCITT-FALSE register after one byte, over GF(2): each bit is a set of inputs."""
    for i in range(8):
        feedback = crc[15] ^ byte[7 - i]
        crc = [feedback] + crc[:15]
        for tap in (5, 12):                      # x^16 + x^12 + x^5 + 1
            crc[tap] = crc[tap] ^ feedback
    return crc


def crc16_next(crc, byte):
    """Return the CRC-16/CCITT-FALSE register after shifting in ``byte`` (combinational).

    Each output bit is the XOR of the register and data bits it depends on (the step is linear
    over GF(2); the dependency sets are computed here once), so the logic is one XOR tree per bit.
    """
    inputs = ([frozenset([("c", k)]) for k in range(16)],
              [frozenset([("d", k)]) for k in range(8)])
    symbolic = _crc_step_bits(list(inputs[0]), list(inputs[1]))
    bits = []
    for terms in symbolic:
        operands = [crc[k] if kind == "c" else byte[k] for kind, k in sorted(terms)]
        bits.append(functools.reduce(operator.xor, operands))
    return Cat(*bits)


def _times(value, constant):
    """Return ``value * constant`` as shifts and adds, so that no multiplier (or DSP block) is
    inferred for an address computation."""
    terms = [value << k for k in range(constant.bit_length()) if (constant >> k) & 1]
    return functools.reduce(operator.add, terms) if terms else Const(0)


def _bytes_of(bits):
    return (bits + 7) // 8


def frame_geometry(params):
    """Return the byte sizes the link uses for ``params`` (a `TileParams`) as a dict.

    ``row_bytes``, ``act_bytes``, ``result_bytes``: bytes of one schedule row, activation row and
    result (little-endian, results sign-extended); ``max_payload``: the largest request/reply
    payload (a power of two, at least 256 and at least 2 + the largest row).
    """
    row = _bytes_of(schedule_row_layout(params).size)
    act = _bytes_of(act_row_layout(params).size)
    result = _bytes_of(params.acc_width)
    need = max(256, 2 + row, 2 + act, result, INFO_LENGTH)
    return {"row_bytes": row, "act_bytes": act, "result_bytes": result,
            "max_payload": 1 << (need - 1).bit_length()}


class SelfTest:
    """Self-test vectors baked into the bitstream: one pass of the tile and its expected results.

    Parameters
    ----------
    rows, steps : int
        R schedule rows (1..weight_rows) and T steps (1..act_rows) of the pass.
    schedule : list of int
        R packed schedule row words (`golden.tcl.Schedule.pack`).
    acts : list of int
        ``W * T`` packed activation row words, window-major (`golden.tcl.pack_act_rows`).
    results : list of int
        The ``F * W`` expected results, window-major, filter-minor.
    cycles : int
        The expected compute cycles of the pass.
    """

    def __init__(self, *, rows, steps, schedule, acts, results, cycles):
        self.rows, self.steps = int(rows), int(steps)
        self.schedule = [int(word) for word in schedule]
        self.acts = [int(word) for word in acts]
        self.results = [int(value) for value in results]
        self.cycles = int(cycles)

    def check(self, params):
        """Raise ``ValueError`` if the vectors do not fit ``params``."""
        check_int("selftest rows", self.rows, 1, params.weight_rows)
        check_int("selftest steps", self.steps, 1, params.act_rows)
        check_int("selftest cycles", self.cycles, 0, (1 << 32) - 1)
        if len(self.schedule) != self.rows:
            raise ValueError(f"selftest schedule must have {self.rows} rows, "
                             f"not {len(self.schedule)}")
        if len(self.acts) != params.windows * self.steps:
            raise ValueError(f"selftest acts must have {params.windows * self.steps} rows, "
                             f"not {len(self.acts)}")
        if len(self.results) != params.filters * params.windows:
            raise ValueError(f"selftest results must have {params.filters * params.windows} "
                             f"values, not {len(self.results)}")

    def rom_bytes(self, params):
        """Return ``(rom bytes, schedule length, acts length)``: schedule, acts, results."""
        geo = frame_geometry(params)
        out = bytearray()
        for word in self.schedule:
            out += word.to_bytes(geo["row_bytes"], "little")
        sched_len = len(out)
        for word in self.acts:
            out += word.to_bytes(geo["act_bytes"], "little")
        act_len = len(out) - sched_len
        for value in self.results:
            out += (value & ((1 << (8 * geo["result_bytes"])) - 1)).to_bytes(
                geo["result_bytes"], "little")
        return bytes(out), sched_len, act_len


class HostLink(wiring.Component):
    """Request/reply protocol engine with schedule, activation and result buffers.

    The frame format, command and status codes are those of `hw.protocol`. Request payloads are
    received into a frame buffer of ``max_payload`` bytes; a command executes only after its
    whole frame was received with a good CRC, so a malformed, truncated, oversized or corrupted
    frame changes nothing but the error counters. Every request gets exactly one reply; bytes
    that cannot start a frame (bad sync, oversized length, a UART framing error, bytes received
    while a reply is being sent) are discarded until the line has been quiet for ``timeout``
    cycles, and then one error reply is sent. A frame cut short gets a ``TIMEOUT`` reply
    ``timeout`` cycles after its last byte.

    Buffers (byte-wide memories): the schedule (``weight_rows * row_bytes``), the activation rows
    (``windows * act_rows * act_bytes``) and the results (``filters * windows * result_bytes``).
    ``START`` streams ``rows`` schedule rows (if ``load_weights``) and ``windows * steps``
    activation rows from the buffers into the tile, collects the ``filters * windows`` results
    into the result buffer and latches the tile's ``cycles``; the link keeps answering (``STATUS``
    polls, ``BUSY`` for commands that would disturb the run) meanwhile. Loads are refused while
    a run is in progress.

    Self-test (when ``selftest`` is given): after reset and on the ``SELFTEST`` command the
    vectors are copied from a ROM into the schedule and activation buffers (overwriting them),
    the pass is run, and the results and cycle count are compared with the expected ones.

    Parameters
    ----------
    params : `hw.params.TileParams`
        The tile's configuration (a `TCLeTileParams` for the term-serial back end, an
        `FPRakerTileParams` for the fpraker back end and only for it; ``TypeError`` otherwise).
    backend : str
        A name of `hw.protocol.BACKENDS`, reported in the ``VERSION`` info with what the host
        needs to predict the cycle counts: ``"bit-parallel"`` (cycles = R), ``"bit-serial"``
        (TCLp; cycles = sum of row precisions) or ``"term-serial"`` (TCLe, Pragmatic; the
        encoding, first-stage bits, run-ahead and zero-weight gating of ``params`` follow) or
        ``"fpraker"`` (the bfloat16 FPRaker tile; its encoding and ``fp_acc_width`` follow).
    timeout : int, 8..2**24
        Inter-byte timeout in clock cycles.
    selftest : `SelfTest` or None
        Baked-in self-test vectors.
    clock_hz : int
        Reported in the ``VERSION`` info (0 if unknown).

    Members
    -------
    rx : ``In(stream.Signature(8))``
        Received bytes (always ready).
    rx_error : ``In(1)``
        Pulse: the UART received a character with a bad stop bit or lost one.
    tx : ``Out(stream.Signature(8))``
        Reply bytes.
    weights, acts : ``Out(stream.Signature(unsigned(row bits)))``
        Schedule and activation rows to the tile (the packed words of the contract).
    results : ``In(stream.Signature(signed(acc_width)))``
        Results from the tile.
    start : ``Out(1)``; rows, steps : ``Out(...)``; load_weights : ``Out(1)``
        Tile control: ``start`` pulses for one cycle; the others hold during the run.
    tile_done : ``In(1)``; tile_cycles : ``In(32)``
        From the tile.
    running : ``Out(1)``
        A run (host-started or self-test) is in progress.
    busy : ``Out(1)``
        ``running``, or the self-test copying its vectors or checking the results.
    selftest_done, selftest_pass : ``Out(1)``
        The last self-test finished, and passed.
    link_idle : ``Out(1)``
        Waiting for a request.
    """

    def __init__(self, *, params, backend="bit-parallel", timeout=1000, selftest=None,
                 clock_hz=0):
        if not isinstance(params, TileParams):
            raise TypeError(f"params must be a TileParams, not {params!r}")
        self._backend_code = backend_code(backend)
        if backend == "term-serial" and not isinstance(params, TCLeTileParams):
            raise TypeError(f"backend term-serial needs params of type TCLeTileParams, not "
                            f"{type(params).__name__}")
        if (backend == "fpraker") != isinstance(params, FPRakerTileParams):
            if backend == "fpraker":
                raise TypeError(f"backend fpraker needs params of type FPRakerTileParams, not "
                                f"{type(params).__name__}")
            raise TypeError(f"params of type FPRakerTileParams need backend fpraker, not "
                            f"{backend}")
        self._params = params
        self._backend = backend
        self._timeout = check_int("timeout", timeout, 8, 1 << 24)
        self._clock_hz = check_int("clock_hz", clock_hz, 0, (1 << 32) - 1)
        if selftest is not None:
            if not isinstance(selftest, SelfTest):
                raise TypeError(f"selftest must be a SelfTest or None, not {selftest!r}")
            selftest.check(params)
        self._selftest = selftest
        self._geo = frame_geometry(params)
        self._row_bits = schedule_row_layout(params).size
        self._act_bits = act_row_layout(params).size
        super().__init__({
            "rx": In(stream.Signature(8)),
            "rx_error": In(1),
            "tx": Out(stream.Signature(8)),
            "weights": Out(stream.Signature(unsigned(self._row_bits))),
            "acts": Out(stream.Signature(unsigned(self._act_bits))),
            "results": In(stream.Signature(signed(params.acc_width))),
            "start": Out(1),
            "rows": Out(unsigned(params.weight_rows.bit_length())),
            "steps": Out(unsigned(params.act_rows.bit_length())),
            "load_weights": Out(1),
            "tile_done": In(1),
            "tile_cycles": In(32),
            "running": Out(1),
            "busy": Out(1),
            "selftest_done": Out(1),
            "selftest_pass": Out(1),
            "link_idle": Out(1),
        })

    @property
    def params(self):
        """The tile's `TileParams` (or `TCLeTileParams`)."""
        return self._params

    @property
    def geometry(self):
        """`frame_geometry` of the parameters."""
        return dict(self._geo)

    @property
    def timeout(self):
        """Inter-byte timeout in cycles."""
        return self._timeout

    @property
    def backend(self):
        """The back end's name (`hw.protocol.BACKENDS`)."""
        return self._backend

    def info_bytes(self):
        """Return the ``VERSION`` reply payload (`hw.protocol.INFO_LENGTH` bytes, layout in
        `hw.protocol`) as Python ``bytes``."""
        p, g = self._params, self._geo
        out = bytearray(MAGIC)
        out += bytes([PROTOCOL_VERSION, self._backend_code, p.filters, p.lanes, p.windows,
                      p.weight_width, p.act_width, int(p.act_signed)])
        out += p.weight_rows.to_bytes(4, "little") + p.act_rows.to_bytes(4, "little")
        out += g["max_payload"].to_bytes(2, "little")
        out += pattern_crc(p.offsets).to_bytes(2, "little")
        out += self._clock_hz.to_bytes(4, "little")
        out += bytes([int(self._selftest is not None)])
        if self._backend == "term-serial":
            out += bytes([encoding_code(p.encoding), p.first_stage_bits,
                          p.run_ahead, int(p.gate_zero_weights)])
        elif self._backend == "fpraker":
            out += bytes([encoding_code(p.encoding), p.fp_acc_width, 0, 0])
        else:
            out += bytes(4)
        assert len(out) == INFO_LENGTH
        return bytes(out)

    def elaborate(self, platform):
        m = Module()
        p, g = self._params, self._geo
        F, W = p.filters, p.windows
        Bw, Ba, Bo, P = g["row_bytes"], g["act_bytes"], g["result_bytes"], g["max_payload"]
        n_results = F * W
        sched_depth = p.weight_rows * Bw
        act_depth = W * p.act_rows * Ba
        res_depth = n_results * Bo

        m.submodules.frame_mem = frame_mem = Memory(shape=8, depth=P, init=[])
        m.submodules.sched_mem = sched_mem = Memory(shape=8, depth=sched_depth, init=[])
        m.submodules.act_mem = act_mem = Memory(shape=8, depth=act_depth, init=[])
        m.submodules.res_mem = res_mem = Memory(shape=8, depth=res_depth, init=[])
        frame_wr, frame_rd = frame_mem.write_port(), frame_mem.read_port()
        sched_wr, sched_rd = sched_mem.write_port(), sched_mem.read_port()
        act_wr, act_rd = act_mem.write_port(), act_mem.read_port()
        res_wr, res_rd = res_mem.write_port(), res_mem.read_port()
        st = self._selftest
        if st is not None:
            rom_data, st_sched_len, st_act_len = st.rom_bytes(p)
            m.submodules.rom = rom = Memory(shape=8, depth=len(rom_data), init=list(rom_data))
            rom_rd = rom.read_port()

        # --- receiver registers and the inter-byte timer -------------------------------------
        byte = self.rx.payload
        got = self.rx.valid
        m.d.comb += self.rx.ready.eq(1)
        timer = Signal(range(self._timeout + 1))
        quiet = timer == self._timeout
        with m.If(got | self.rx_error):
            m.d.sync += timer.eq(0)
        with m.Elif(~quiet):
            m.d.sync += timer.eq(timer + 1)

        cmd = Signal(8)
        length = Signal(16)
        idx = Signal(16)
        crc = Signal(16)
        err = Signal(8)
        args = Array(Signal(8, name=f"arg{i}") for i in range(5))
        arg16 = [Cat(args[0], args[1]), Cat(args[2], args[3])]
        s_mod, s_rows = Signal(range(Bw)), Signal(16)
        a_mod, a_rows = Signal(range(Ba)), Signal(16)
        overrun = Signal()
        reply_status = Signal(8)
        reply_len = Signal(16)
        tx_crc = Signal(16)
        j = Signal(16)                     # copy / fill / send index
        base = Signal(range(max(sched_depth, act_depth, res_depth, P) + 1))
        count = Signal(16)                 # bytes to copy
        err_count = Signal(16)
        last_err = Signal(8)
        ok_count = Signal(16)

        # --- runner (streams buffers into the tile) -------------------------------------------
        go = Signal()
        run_rows = Signal.like(self.rows)
        run_steps = Signal.like(self.steps)
        run_load = Signal()
        results_valid = Signal()
        cycles = Signal(32)
        m.d.comb += [self.rows.eq(run_rows), self.steps.eq(run_steps),
                     self.load_weights.eq(run_load)]

        # --- self-test state -----------------------------------------------------------------
        st_done = Signal()
        st_pass = Signal()
        st_from_cmd = Signal()
        st_bad = Signal()
        st_active = Signal()
        m.d.comb += [self.selftest_done.eq(st_done), self.selftest_pass.eq(st_pass),
                     self.busy.eq(self.running | st_active)]

        # one CRC step each for the received and the sent byte (shared by every state)
        rx_crc_next = Signal(16)
        tx_crc_next = Signal(16)
        err_count_next = Signal(16)
        m.d.comb += [rx_crc_next.eq(crc16_next(crc, byte)),
                     tx_crc_next.eq(crc16_next(tx_crc, self.tx.payload)),
                     err_count_next.eq(Mux(err_count == 0xFFFF, err_count, err_count + 1))]

        def reply(status, nbytes=0):
            m.d.sync += [reply_status.eq(status), reply_len.eq(nbytes), j.eq(0),
                         tx_crc.eq(0xFFFF)]
            m.next = "SEND_HDR"

        def fail(code):
            m.d.sync += [reply_status.eq(code), reply_len.eq(0), j.eq(0), tx_crc.eq(0xFFFF),
                         last_err.eq(code), err_count.eq(err_count_next)]
            m.next = "SEND_HDR"

        def discard(code):
            m.d.sync += err.eq(code)
            m.next = "DISCARD"

        receiving = Signal()
        with m.If(~receiving & (got | self.rx_error)):
            m.d.sync += overrun.eq(1)

        info = self.info_bytes()
        status_bytes = [Cat(self.running, results_valid, st_done, st_pass, Const(0, 4)),
                        last_err, err_count[:8], err_count[8:], ok_count[:8], ok_count[8:]]
        cycle_bytes = [cycles.word_select(k, 8) for k in range(4)]
        st_bytes = [Cat(st_pass, Const(0, 7))] + cycle_bytes

        start_rows_ok = (arg16[0] >= 1) & (arg16[0] <= p.weight_rows)
        start_steps_ok = (arg16[1] >= 1) & (arg16[1] <= p.act_rows)
        read_first, read_count = arg16
        read_ok = (read_first + read_count <= n_results) & (read_count <= P // Bo)

        with m.FSM(init="ST_COPY_S" if st is not None else "IDLE"):
            # ---- receive ------------------------------------------------------------------
            with m.State("IDLE"):
                m.d.comb += [receiving.eq(1), self.link_idle.eq(1)]
                m.d.sync += [overrun.eq(0), cmd.eq(0), idx.eq(0), s_mod.eq(0), s_rows.eq(0),
                             a_mod.eq(0), a_rows.eq(0)]
                with m.If(self.rx_error):
                    discard(Error.FRAMING)
                with m.Elif(got):
                    with m.If(byte == REQUEST_SYNC):
                        m.d.sync += crc.eq(0xFFFF)
                        m.next = "R_CMD"
                    with m.Else():
                        discard(Error.BAD_SYNC)

            def receive_state(name, on_byte):
                with m.State(name):
                    m.d.comb += receiving.eq(1)
                    with m.If(self.rx_error):
                        discard(Error.FRAMING)
                    with m.Elif(got):
                        m.d.sync += crc.eq(rx_crc_next)
                        on_byte()
                    with m.Elif(quiet):
                        fail(Error.TIMEOUT)

            def on_cmd():
                m.d.sync += cmd.eq(byte)
                m.next = "R_LEN0"

            def on_len0():
                m.d.sync += length[:8].eq(byte)
                m.next = "R_LEN1"

            def on_len1():
                m.d.sync += length[8:].eq(byte)
                full = Cat(length[:8], byte)
                with m.If(full > P):
                    discard(Error.TOO_LONG)
                with m.Elif(full == 0):
                    m.next = "R_CRC0"
                with m.Else():
                    m.next = "R_DATA"

            def on_data():
                m.d.comb += [frame_wr.addr.eq(idx), frame_wr.data.eq(byte), frame_wr.en.eq(1)]
                m.d.sync += idx.eq(idx + 1)
                with m.If(idx < 5):
                    m.d.sync += args[idx[:3]].eq(byte)
                with m.If(idx >= 2):
                    m.d.sync += [s_mod.eq(Mux(s_mod == Bw - 1, 0, s_mod + 1)),
                                 a_mod.eq(Mux(a_mod == Ba - 1, 0, a_mod + 1))]
                    with m.If(s_mod == Bw - 1):
                        m.d.sync += s_rows.eq(s_rows + 1)
                    with m.If(a_mod == Ba - 1):
                        m.d.sync += a_rows.eq(a_rows + 1)
                with m.If(idx + 1 == length):
                    m.next = "R_CRC0"

            def on_crc0():
                m.next = "R_CRC1"

            def on_crc1():
                with m.If(rx_crc_next == 0):
                    m.d.sync += ok_count.eq(ok_count + 1)
                    m.next = "EXEC"
                with m.Else():
                    fail(Error.BAD_CRC)

            receive_state("R_CMD", on_cmd)
            receive_state("R_LEN0", on_len0)
            receive_state("R_LEN1", on_len1)
            receive_state("R_DATA", on_data)
            receive_state("R_CRC0", on_crc0)
            receive_state("R_CRC1", on_crc1)

            with m.State("DISCARD"):
                m.d.comb += receiving.eq(1)
                m.d.sync += overrun.eq(0)
                with m.If(quiet & ~got & ~self.rx_error):
                    fail(err)

            # ---- execute ------------------------------------------------------------------
            with m.State("EXEC"):
                m.d.sync += j.eq(0)
                with m.Switch(cmd):
                    with m.Case(Command.VERSION):
                        with m.If(length != 1):
                            fail(Error.BAD_LEN)
                        with m.Else():
                            m.next = "FILL_INFO"
                    with m.Case(Command.STATUS):
                        with m.If(length != 0):
                            fail(Error.BAD_LEN)
                        with m.Else():
                            m.next = "FILL_STATUS"
                    with m.Case(Command.LOAD_SCHEDULE, Command.LOAD_ACTS):
                        is_sched = cmd == Command.LOAD_SCHEDULE
                        unit = Mux(is_sched, Bw, Ba)
                        whole = Mux(is_sched, s_mod == 0, a_mod == 0)
                        nrows = Mux(is_sched, s_rows, a_rows)
                        capacity = Mux(is_sched, p.weight_rows, W * p.act_rows)
                        with m.If((length < 2 + unit) | ~whole):
                            fail(Error.BAD_LEN)
                        with m.Elif(self.running):
                            fail(Error.BUSY)
                        with m.Elif(arg16[0] + nrows > capacity):
                            fail(Error.BAD_ARG)
                        with m.Else():
                            m.d.sync += [base.eq(Mux(is_sched, _times(arg16[0], Bw),
                                                     _times(arg16[0], Ba))),
                                         count.eq(length - 2)]
                            m.next = "COPY_RD"
                    with m.Case(Command.START):
                        with m.If(length != 5):
                            fail(Error.BAD_LEN)
                        with m.Elif(self.running):
                            fail(Error.BUSY)
                        with m.Elif(~start_rows_ok | ~start_steps_ok | (args[4] > 1)):
                            fail(Error.BAD_ARG)
                        with m.Else():
                            m.d.sync += [run_rows.eq(arg16[0]), run_steps.eq(arg16[1]),
                                         run_load.eq(args[4][0])]
                            m.d.comb += go.eq(1)
                            reply(Error.OK)
                    with m.Case(Command.READ_RESULTS):
                        with m.If(length != 4):
                            fail(Error.BAD_LEN)
                        with m.Elif(self.running):
                            fail(Error.BUSY)
                        with m.Elif(~read_ok):
                            fail(Error.BAD_ARG)
                        with m.Elif(~results_valid):
                            fail(Error.NO_RESULT)
                        with m.Else():
                            m.d.sync += [base.eq(_times(read_first, Bo)),
                                         count.eq(_times(read_count, Bo))]
                            with m.If(read_count == 0):
                                reply(Error.OK, 0)
                            with m.Else():
                                m.next = "RCOPY_RD"
                    with m.Case(Command.READ_CYCLES):
                        with m.If(length != 0):
                            fail(Error.BAD_LEN)
                        with m.Elif(self.running):
                            fail(Error.BUSY)
                        with m.Elif(~results_valid):
                            fail(Error.NO_RESULT)
                        with m.Else():
                            m.next = "FILL_CYCLES"
                    with m.Case(Command.SELFTEST):
                        if st is None:
                            fail(Error.BAD_CMD)
                        else:
                            with m.If(length != 0):
                                fail(Error.BAD_LEN)
                            with m.Elif(self.running):
                                fail(Error.BUSY)
                            with m.Else():
                                m.d.sync += st_from_cmd.eq(1)
                                m.next = "ST_COPY_S"
                    with m.Default():
                        fail(Error.BAD_CMD)

            def fill_state(name, values, status):
                with m.State(name):
                    table = Array(Const(v, 8) if isinstance(v, int) else v for v in values)
                    m.d.comb += [frame_wr.addr.eq(j), frame_wr.data.eq(table[j]),
                                 frame_wr.en.eq(1)]
                    m.d.sync += j.eq(j + 1)
                    with m.If(j == len(values) - 1):
                        reply(status, len(values))

            fill_state("FILL_INFO", list(info),
                       Mux(args[0] == PROTOCOL_VERSION, Error.OK, Error.BAD_VERSION))
            fill_state("FILL_STATUS", status_bytes, Error.OK)
            fill_state("FILL_CYCLES", cycle_bytes, Error.OK)
            fill_state("FILL_ST", st_bytes, Error.OK)

            # frame buffer -> schedule / activation buffer (2 cycles a byte)
            is_sched = cmd == Command.LOAD_SCHEDULE
            with m.State("COPY_RD"):
                m.d.comb += frame_rd.addr.eq(j + 2)
                m.next = "COPY_WR"
            with m.State("COPY_WR"):
                m.d.comb += frame_rd.addr.eq(j + 2)
                m.d.comb += [sched_wr.addr.eq(base + j), sched_wr.data.eq(frame_rd.data),
                             sched_wr.en.eq(is_sched),
                             act_wr.addr.eq(base + j), act_wr.data.eq(frame_rd.data),
                             act_wr.en.eq(~is_sched)]
                m.d.sync += j.eq(j + 1)
                with m.If(j + 1 == count):
                    reply(Error.OK)
                with m.Else():
                    m.next = "COPY_RD"

            # result buffer -> frame buffer
            with m.State("RCOPY_RD"):
                m.d.comb += res_rd.addr.eq(base + j)
                m.next = "RCOPY_WR"
            with m.State("RCOPY_WR"):
                m.d.comb += [res_rd.addr.eq(base + j), frame_wr.addr.eq(j),
                             frame_wr.data.eq(res_rd.data), frame_wr.en.eq(1)]
                m.d.sync += j.eq(j + 1)
                with m.If(j + 1 == count):
                    reply(Error.OK, count)
                with m.Else():
                    m.next = "RCOPY_RD"

            # ---- send the reply -------------------------------------------------------------
            with m.State("SEND_HDR"):
                header = Array([Const(REPLY_SYNC, 8), cmd, reply_status, reply_len[:8],
                                reply_len[8:]])
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(header[j[:3]])]
                with m.If(self.tx.ready):
                    m.d.sync += j.eq(j + 1)
                    with m.If(j != 0):
                        m.d.sync += tx_crc.eq(tx_crc_next)
                    with m.If(j == 4):
                        m.d.sync += j.eq(0)
                        m.next = "SEND_PICK"
            with m.State("SEND_PICK"):
                m.next = "SEND_CRC0"
                with m.If(reply_len != 0):
                    m.next = "SEND_RD"
            with m.State("SEND_RD"):
                m.d.comb += frame_rd.addr.eq(j)
                m.next = "SEND_DATA"
            with m.State("SEND_DATA"):
                m.d.comb += [frame_rd.addr.eq(j), self.tx.valid.eq(1),
                             self.tx.payload.eq(frame_rd.data)]
                with m.If(self.tx.ready):
                    m.d.sync += [tx_crc.eq(tx_crc_next), j.eq(j + 1)]
                    with m.If(j + 1 == reply_len):
                        m.next = "SEND_CRC0"
                    with m.Else():
                        m.next = "SEND_RD"
            with m.State("SEND_CRC0"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(tx_crc[8:])]
                with m.If(self.tx.ready):
                    m.next = "SEND_CRC1"
            with m.State("SEND_CRC1"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(tx_crc[:8])]
                with m.If(self.tx.ready):
                    with m.If(overrun | got | self.rx_error):
                        discard(Error.OVERRUN)
                    with m.Else():
                        m.next = "IDLE"

            # ---- self-test ------------------------------------------------------------------
            if st is not None:
                with m.State("ST_COPY_S"):
                    m.d.comb += st_active.eq(1)
                    m.d.comb += [rom_rd.addr.eq(j), sched_wr.addr.eq(j - 1),
                                 sched_wr.data.eq(rom_rd.data), sched_wr.en.eq(j != 0)]
                    m.d.sync += [j.eq(j + 1), st_done.eq(0), st_pass.eq(0), st_bad.eq(0)]
                    with m.If(j == st_sched_len):
                        m.d.sync += j.eq(0)
                        m.next = "ST_COPY_A"
                with m.State("ST_COPY_A"):
                    m.d.comb += st_active.eq(1)
                    m.d.comb += [rom_rd.addr.eq(j + st_sched_len), act_wr.addr.eq(j - 1),
                                 act_wr.data.eq(rom_rd.data), act_wr.en.eq(j != 0)]
                    m.d.sync += j.eq(j + 1)
                    with m.If(j == st_act_len):
                        m.d.sync += [j.eq(0), run_rows.eq(st.rows), run_steps.eq(st.steps),
                                     run_load.eq(1)]
                        m.next = "ST_GO"
                with m.State("ST_GO"):
                    m.d.comb += st_active.eq(1)
                    m.d.comb += go.eq(1)
                    m.next = "ST_WAIT"
                with m.State("ST_WAIT"):
                    m.d.comb += st_active.eq(1)
                    with m.If(~self.running):
                        m.next = "ST_CMP"
                with m.State("ST_CMP"):
                    m.d.comb += st_active.eq(1)
                    m.d.comb += [res_rd.addr.eq(j),
                                 rom_rd.addr.eq(j + st_sched_len + st_act_len)]
                    m.d.sync += j.eq(j + 1)
                    with m.If((j != 0) & (res_rd.data != rom_rd.data)):
                        m.d.sync += st_bad.eq(1)
                    with m.If(j == res_depth):
                        m.d.sync += [j.eq(0), st_done.eq(1),
                                     st_pass.eq(~st_bad & (res_rd.data == rom_rd.data)
                                                & (cycles == st.cycles))]
                        m.next = "ST_END"
                with m.State("ST_END"):
                    m.d.sync += st_from_cmd.eq(0)
                    with m.If(st_from_cmd):
                        m.next = "FILL_ST"
                    with m.Elif(overrun):
                        discard(Error.OVERRUN)
                    with m.Else():
                        m.next = "IDLE"

        # --- runner FSM ----------------------------------------------------------------------
        rb = Signal(range(max(Bw, Ba, Bo) + 1))          # byte within a row / result
        raddr = Signal(range(max(sched_depth, act_depth, res_depth) + 1))
        rcount = Signal(range(max(p.weight_rows, W * p.act_rows, n_results) + 1))
        shreg = Signal(8 * max(Bw, Ba))
        result = Signal(8 * Bo)
        act_total = Signal(range(W * p.act_rows + 1))
        m.d.comb += [self.weights.payload.eq(shreg[8 * max(Bw, Ba) - 8 * Bw:]),
                     self.acts.payload.eq(shreg[8 * max(Bw, Ba) - 8 * Ba:])]
        with m.FSM(name="runner"):
            with m.State("R_IDLE"):
                with m.If(go):
                    m.d.sync += [results_valid.eq(0), raddr.eq(0), rcount.eq(0), rb.eq(0)]
                    # START registers run_rows/run_steps/run_load in the cycle of go: the tile
                    # samples them with the start pulse in R_START.
                    m.next = "R_START"
            with m.State("R_START"):
                m.d.comb += [self.running.eq(1), self.start.eq(1)]
                m.d.sync += act_total.eq(_times(run_steps, W))
                with m.If(run_load):
                    m.next = "R_W_RD"
                with m.Else():
                    m.next = "R_A_RD"

            def feed(prefix, rd, nbytes, out, total, after):
                with m.State(f"{prefix}_RD"):
                    m.d.comb += [self.running.eq(1), rd.addr.eq(raddr)]
                    m.next = f"{prefix}_SH"
                with m.State(f"{prefix}_SH"):
                    m.d.comb += [self.running.eq(1), rd.addr.eq(raddr)]
                    m.d.sync += [shreg.eq(Cat(shreg[8:], rd.data)), raddr.eq(raddr + 1),
                                 rb.eq(rb + 1)]
                    with m.If(rb == nbytes - 1):
                        m.d.sync += rb.eq(0)
                        m.next = f"{prefix}_OUT"
                    with m.Else():
                        m.next = f"{prefix}_RD"
                with m.State(f"{prefix}_OUT"):
                    m.d.comb += [self.running.eq(1), out.valid.eq(1)]
                    with m.If(out.ready):
                        m.d.sync += rcount.eq(rcount + 1)
                        with m.If(rcount + 1 == total):
                            m.d.sync += [rcount.eq(0), raddr.eq(0)]
                            m.next = after
                        with m.Else():
                            m.next = f"{prefix}_RD"

            feed("R_W", sched_rd, Bw, self.weights, run_rows, "R_A_RD")
            feed("R_A", act_rd, Ba, self.acts, act_total, "R_RES")
            with m.State("R_RES"):
                m.d.comb += [self.running.eq(1), self.results.ready.eq(1)]
                with m.If(self.results.valid):
                    m.d.sync += [result.eq(self.results.payload.as_signed()), rb.eq(0)]
                    m.next = "R_RES_WR"
            with m.State("R_RES_WR"):
                m.d.comb += [self.running.eq(1), res_wr.addr.eq(raddr),
                             res_wr.data.eq(result.word_select(rb, 8)), res_wr.en.eq(1)]
                m.d.sync += [raddr.eq(raddr + 1), rb.eq(rb + 1)]
                with m.If(rb == Bo - 1):
                    m.d.sync += [rb.eq(0), rcount.eq(rcount + 1)]
                    with m.If(rcount + 1 == n_results):
                        m.next = "R_DONE"
                    with m.Else():
                        m.next = "R_RES"
            with m.State("R_DONE"):
                m.d.comb += self.running.eq(1)
                with m.If(self.tile_done):
                    m.d.sync += [cycles.eq(self.tile_cycles), results_valid.eq(1)]
                    m.next = "R_IDLE"
        return m
