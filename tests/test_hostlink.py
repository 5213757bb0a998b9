# amaranth: UnusedElaboratable=no
"""hw.hostlink / hw.protocol: the framed protocol in amaranth.sim, byte streams (no UART).

The board is a `hw.board_tile.TileLink` (HostLink + the real bit-parallel tile, small
configuration) driven byte by byte through `sim.board_sim.ByteTransport`. Expected replies are
built with the host-side reference codec (`effectual.driver.encode_reply`) from the protocol
definition, never read back from the RTL:

* the CRC against the catalogue check value of CRC-16/CCITT-FALSE and a bitwise reference,
  and the RTL's combinational CRC step against it for every byte value;
* every command's reply, byte for byte (VERSION info, STATUS, loads, START, READ_RESULTS,
  READ_CYCLES, SELFTEST);
* every error status: junk before a sync byte, a truncated frame, an oversized length, a bad CRC,
  an unknown command, a wrong length for each command, out-of-range arguments, BUSY, NO_RESULT,
  BAD_VERSION, OVERRUN; after each, the link still answers;
* state intact: a corrupted or refused load does not change what a later run computes;
* a seeded fuzz of random and mutated frames: every burst gets well-formed replies, and a run
  afterwards still equals golden.
"""

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from effectual.driver import Board, decode_reply, encode_reply, encode_request, \
    selftest_layer, selftest_vectors
from golden.tcl import pack_act_rows, passes
from hw.board_tile import DESIGNS, TileLink
from hw.hostlink import HostLink, SelfTest, crc16_next, frame_geometry
from hw.params import FPRakerTileParams, TCLeTileParams, TileParams
from hw.protocol import PROTOCOL_VERSION, Command, Error, crc16, pattern_crc
from sim.board_sim import ByteTransport

P = TileParams(filters=2, lanes=4, windows=2, weight_width=8, act_width=8, act_signed=False,
               pattern="L<2,1>", weight_rows=32, act_rows=32)
TIMEOUT = 64
QUIET = 4 * TIMEOUT


def make(selftest=True, design="wskip", params=P):
    """A fresh simulated board and its transport (the power-on self-test already run)."""
    st = (SelfTest(**selftest_vectors(params, backend=DESIGNS[design][1])) if selftest
          else None)
    dut = TileLink(params=params, design=design, timeout=TIMEOUT, selftest=st, clock_hz=12000000)
    tr = ByteTransport(dut)
    tr.run(2000)
    return dut, tr


def read_frame(tr):
    """Wait for one reply frame (up to the transport's read budget); return its raw bytes."""
    head = tr.read(5)
    if len(head) < 5:
        return head
    return head + tr.read(int.from_bytes(head[3:5], "little") + 2)


def replies(tr, data):
    """Send raw ``data``; return the reply frames: the first one (waited for), then any others
    received until the line is quiet."""
    tr.write(data)
    raw = read_frame(tr) + tr.drain(QUIET)
    frames = []
    while raw:
        reply, used = decode_reply(raw)
        frames.append(reply)
        raw = raw[used:]
    return frames


def ask(tr, command, payload=b""):
    """One request; return its single reply's raw bytes."""
    tr.write(encode_request(command, payload))
    return read_frame(tr) + tr.drain(QUIET)


def u16(v):
    return int(v).to_bytes(2, "little")


# --- CRC ----------------------------------------------------------------------------------------

def _crc_bitwise(data):
    """CRC-16/CCITT-FALSE from its definition: polynomial division, MSB first."""
    register = 0xFFFF
    for bit in "".join(f"{b:08b}" for b in data):
        top = (register >> 15) & 1
        register = (register << 1) & 0xFFFF
        if top ^ int(bit):
            register ^= 0x1021
    return register


def test_crc_reference():
    assert crc16(b"123456789") == 0x29B1          # the catalogue check value
    rng = np.random.default_rng(0)
    for n in range(0, 40):
        data = bytes(rng.integers(0, 256, n).tolist())
        assert crc16(data) == _crc_bitwise(data)
        # residue: the CRC appended MSB first divides out
        assert crc16(data + crc16(data).to_bytes(2, "big")) == 0


def test_rtl_crc_step_every_byte():
    crc_in, byte_in = Signal(16), Signal(8)
    out = Signal(16)
    m = Module()
    m.d.comb += out.eq(crc16_next(crc_in, byte_in))
    sim = Simulator(m)
    states = [0xFFFF, 0x0000, 0x1234, 0x8001]

    async def bench(ctx):
        for state in states:
            for byte in range(256):
                ctx.set(crc_in, state)
                ctx.set(byte_in, byte)
                assert ctx.get(out) == crc16(bytes([byte]), state), (state, byte)

    sim.add_testbench(bench)
    sim.run()


# --- commands -----------------------------------------------------------------------------------

def expected_info(params, backend, selftest, clock_hz, max_payload, term=(0, 0, 0, 0)):
    """The VERSION payload (protocol 2) from the protocol's field list (hw.protocol docs,
    docs/fpga-bringup.md table): ``backend`` 0 bit-parallel, 1 bit-serial, 2 term-serial;
    ``term`` = (encoding code, first_stage_bits, run_ahead, gate_zero_weights)."""
    return (b"EFCT" + bytes([2, backend, params.filters, params.lanes, params.windows,
                             params.weight_width, params.act_width, int(params.act_signed)])
            + params.weight_rows.to_bytes(4, "little") + params.act_rows.to_bytes(4, "little")
            + max_payload.to_bytes(2, "little") + pattern_crc(params.offsets).to_bytes(2, "little")
            + clock_hz.to_bytes(4, "little") + bytes([int(selftest)]) + bytes(term))


def test_geometry():
    # 8 slots x (8-bit weight + 2-bit select) + 2-bit skip = 82 bits; 4 x 8-bit acts; acc 23 bits
    assert frame_geometry(P) == {"row_bytes": 11, "act_bytes": 4, "result_bytes": 3,
                                 "max_payload": 256}
    big = TileParams(filters=16, lanes=16, windows=1, weight_width=16, act_width=16,
                     pattern="T<2,5>", weight_rows=4, act_rows=4)
    # 256 x (16 + 3) + 2 bits = 4866 bits = 609 bytes -> 611 with the row index -> 1024
    assert frame_geometry(big)["max_payload"] == 1024


def test_version_status_and_selftest():
    _, tr = make()
    info = expected_info(P, 0, True, 12000000, 256)
    assert ask(tr, Command.VERSION, bytes([PROTOCOL_VERSION])) == \
        encode_reply(Command.VERSION, Error.OK, info)
    assert ask(tr, Command.VERSION, bytes([PROTOCOL_VERSION + 1])) == \
        encode_reply(Command.VERSION, Error.BAD_VERSION, info)
    # power-on self-test passed; no error yet; three good frames (this one included)
    assert ask(tr, Command.STATUS) == encode_reply(Command.STATUS, Error.OK,
                                                   bytes([0b1110, 0, 0, 0, 3, 0]))
    vectors = selftest_vectors(P, backend="bit-parallel")
    assert ask(tr, Command.SELFTEST) == encode_reply(
        Command.SELFTEST, Error.OK, bytes([1]) + vectors["cycles"].to_bytes(4, "little"))
    assert ask(tr, Command.READ_CYCLES) == encode_reply(
        Command.READ_CYCLES, Error.OK, vectors["cycles"].to_bytes(4, "little"))
    nbytes = frame_geometry(P)["result_bytes"]
    expected = b"".join((v & 0xFFFFFF).to_bytes(nbytes, "little") for v in vectors["results"])
    assert ask(tr, Command.READ_RESULTS, u16(0) + u16(4)) == encode_reply(
        Command.READ_RESULTS, Error.OK, expected)
    assert ask(tr, Command.READ_RESULTS, u16(1) + u16(2)) == encode_reply(
        Command.READ_RESULTS, Error.OK, expected[3:9])
    assert ask(tr, Command.READ_RESULTS, u16(4) + u16(0)) == encode_reply(
        Command.READ_RESULTS, Error.OK, b"")


def test_selftest_detects_wrong_vectors():
    """Self-test vectors with one wrong expected result (or wrong cycles) report fail."""
    for field in ("results", "cycles"):
        vectors = selftest_vectors(P, backend="bit-parallel")
        if field == "results":
            vectors["results"][3] += 1
        else:
            vectors["cycles"] += 1
        dut = TileLink(params=P, design="wskip", timeout=TIMEOUT,
                       selftest=SelfTest(**vectors))
        tr = ByteTransport(dut)
        tr.run(2000)
        assert ask(tr, Command.STATUS) == encode_reply(Command.STATUS, Error.OK,
                                                       bytes([0b0110, 0, 0, 0, 1, 0]))
        reply, _ = decode_reply(ask(tr, Command.SELFTEST))
        assert (reply.status, reply.payload[0]) == (Error.OK, 0)


def test_errors_each_reply_and_recovery():
    _, tr = make(selftest=False)
    g = frame_geometry(P)
    row = bytes(g["row_bytes"])
    act = bytes(g["act_bytes"])
    e = lambda cmd, err: encode_reply(cmd, err)  # noqa: E731
    # before any run
    assert ask(tr, Command.READ_RESULTS, u16(0) + u16(1)) == e(Command.READ_RESULTS,
                                                               Error.NO_RESULT)
    assert ask(tr, Command.READ_CYCLES) == e(Command.READ_CYCLES, Error.NO_RESULT)
    assert ask(tr, Command.SELFTEST) == e(Command.SELFTEST, Error.BAD_CMD)   # no vectors
    cases = [
        # (raw bytes, expected reply)
        (b"\x00\x11\x22", e(0, Error.BAD_SYNC)),
        (encode_request(Command.STATUS)[:-1], e(Command.STATUS, Error.TIMEOUT)),
        (encode_request(Command.STATUS)[:1], e(0, Error.TIMEOUT)),
        (bytes([0xA5, Command.LOAD_ACTS]) + u16(257) + bytes(259),
         e(Command.LOAD_ACTS, Error.TOO_LONG)),
        (encode_request(Command.STATUS)[:-1] + b"\x00", e(Command.STATUS, Error.BAD_CRC)),
        (encode_request(0x42), e(0x42, Error.BAD_CMD)),
        (encode_request(0x00), e(0x00, Error.BAD_CMD)),
        (encode_request(Command.VERSION), e(Command.VERSION, Error.BAD_LEN)),
        (encode_request(Command.STATUS, b"\x00"), e(Command.STATUS, Error.BAD_LEN)),
        (encode_request(Command.LOAD_SCHEDULE, u16(0) + row[:-1]),
         e(Command.LOAD_SCHEDULE, Error.BAD_LEN)),
        (encode_request(Command.LOAD_SCHEDULE, u16(0) + row + b"\x00"),
         e(Command.LOAD_SCHEDULE, Error.BAD_LEN)),
        (encode_request(Command.LOAD_SCHEDULE, u16(31) + row + row),
         e(Command.LOAD_SCHEDULE, Error.BAD_ARG)),
        (encode_request(Command.LOAD_ACTS, u16(63) + act + act),
         e(Command.LOAD_ACTS, Error.BAD_ARG)),
        (encode_request(Command.START, u16(1) + u16(1)), e(Command.START, Error.BAD_LEN)),
        (encode_request(Command.START, u16(0) + u16(1) + b"\x01"),
         e(Command.START, Error.BAD_ARG)),
        (encode_request(Command.START, u16(33) + u16(1) + b"\x01"),
         e(Command.START, Error.BAD_ARG)),
        (encode_request(Command.START, u16(1) + u16(0) + b"\x01"),
         e(Command.START, Error.BAD_ARG)),
        (encode_request(Command.START, u16(1) + u16(33) + b"\x01"),
         e(Command.START, Error.BAD_ARG)),
        (encode_request(Command.START, u16(1) + u16(1) + b"\x02"),
         e(Command.START, Error.BAD_ARG)),
        (encode_request(Command.READ_RESULTS, u16(0)), e(Command.READ_RESULTS, Error.BAD_LEN)),
        (encode_request(Command.READ_CYCLES, b"\x00"), e(Command.READ_CYCLES, Error.BAD_LEN)),
        (encode_request(Command.SELFTEST, b"\x00"), e(Command.SELFTEST, Error.BAD_CMD)),
        # two requests back to back: the second arrives during the first's reply
        (encode_request(Command.STATUS) * 2, None),
    ]
    errors = 3
    for raw, want in cases:
        got = replies(tr, raw)
        if want is None:
            assert [r.status for r in got] == [Error.OK, Error.OVERRUN], got
            errors += 1
            last = Error.OVERRUN
        else:
            assert len(got) == 1 and encode_reply(got[0].command, got[0].status,
                                                  got[0].payload) == want, (raw.hex(), got)
            errors += 1
            last = got[0].status
        # the link answers normally afterwards
        status = replies(tr, encode_request(Command.STATUS))
        assert len(status) == 1 and status[0].status == Error.OK
        assert status[0].payload[1:4] == bytes([last]) + u16(errors)


def test_busy_and_results_bounds():
    _, tr = make()
    reply_start = ask(tr, Command.START, u16(32) + u16(32) + b"\x01")
    assert reply_start == encode_reply(Command.START, Error.OK)
    for command, payload in [(Command.START, u16(1) + u16(1) + b"\x01"),
                             (Command.LOAD_SCHEDULE, u16(0) + bytes(11)),
                             (Command.LOAD_ACTS, u16(0) + bytes(4)),
                             (Command.READ_RESULTS, u16(0) + u16(1)),
                             (Command.READ_CYCLES, b""), (Command.SELFTEST, b"")]:
        tr.write(encode_request(command, payload))          # no quiet wait: still running
        assert read_frame(tr) == encode_reply(command, Error.BUSY), command
    tr.run(5000)
    status, _ = decode_reply(ask(tr, Command.STATUS))
    assert status.payload[0] & 3 == 2                       # finished, results valid
    assert ask(tr, Command.READ_RESULTS, u16(3) + u16(2)) == encode_reply(
        Command.READ_RESULTS, Error.BAD_ARG)
    big = TileParams(filters=16, lanes=4, windows=8, weight_width=8, act_width=8,
                     act_signed=False, pattern="none", weight_rows=2, act_rows=2)
    link = HostLink(params=big)
    assert link.geometry["result_bytes"] * 128 > link.geometry["max_payload"]


def test_failed_frames_leave_state_intact():
    """A run after corrupted, refused and truncated loads equals golden of the good data."""
    _, tr = make(selftest=False)
    board = Board(tr)
    board.handshake()
    board.expect(P)
    layer = selftest_layer(P, seed=7)
    first = next(passes(layer, P))
    good_rows = first.schedule.pack(P)
    good_acts = pack_act_rows(first.acts, P)
    board.load_schedule(good_rows)
    board.load_acts(good_acts)
    g = frame_geometry(P)
    junk_row = bytes([0x5A] * g["row_bytes"])
    bad = encode_request(Command.LOAD_SCHEDULE, u16(0) + junk_row * 3)
    assert replies(tr, bad[:-1] + bytes([bad[-1] ^ 1]))[0].status == Error.BAD_CRC
    assert replies(tr, bad[:-4])[0].status == Error.TIMEOUT
    assert replies(tr, encode_request(Command.LOAD_SCHEDULE, u16(0) + junk_row
                                      + b"\x01"))[0].status == Error.BAD_LEN
    bad_acts = encode_request(Command.LOAD_ACTS, u16(0) + bytes([0xFF] * 4 * 8))
    assert replies(tr, bad_acts[:-2] + b"\x00\x00")[0].status == Error.BAD_CRC
    board.start(first.schedule.rows, first.acts.shape[1], True)
    board.wait()
    outputs = np.array(board.read_results(4)).reshape(2, 2).T
    np.testing.assert_array_equal(outputs, first.outputs)
    assert board.read_cycles() == first.cycles_bit_parallel


def test_term_serial_version_info_selftest_and_errors():
    """A TCLe tile behind the link: VERSION tells back end 2 and the term-serial options; the
    power-on and commanded self-tests pass with golden.pragmatic.schedule_cycles."""
    from golden.pragmatic import schedule_cycles

    pe = TCLeTileParams(**{**P.__dict__}, encoding="binary", first_stage_bits=3, run_ahead=1)
    _, tr = make(design="tcle", params=pe)
    info = expected_info(pe, 2, True, 12000000, 256, term=(2, 3, 1, 1))
    assert ask(tr, Command.VERSION, bytes([PROTOCOL_VERSION])) == \
        encode_reply(Command.VERSION, Error.OK, info)
    first = next(passes(selftest_layer(pe), pe))
    cycles = schedule_cycles(first.schedule, first.acts, encoding="binary", act_width=8,
                             act_signed=False, first_stage_bits=3, run_ahead=1)
    assert ask(tr, Command.STATUS) == encode_reply(Command.STATUS, Error.OK,
                                                   bytes([0b1110, 0, 0, 0, 2, 0]))
    assert ask(tr, Command.SELFTEST) == encode_reply(
        Command.SELFTEST, Error.OK, bytes([1]) + cycles.to_bytes(4, "little"))
    with pytest.raises(ValueError, match=r"^backend must be one of bit-parallel, bit-serial, "
                                         r"term-serial, fpraker, not 'serial'$"):
        HostLink(params=P, backend="serial")
    with pytest.raises(TypeError, match=r"^backend term-serial needs params of type "
                                        r"TCLeTileParams, not TileParams$"):
        HostLink(params=P, backend="term-serial")


#: the FPRaker tile behind the link: 2 PEs x 4 lanes (activation rows of 8 bytes, like P's)
PF = FPRakerTileParams(filters=2, lanes=4, weight_rows=8, act_rows=8)


def test_fpraker_version_info_selftest_and_errors():
    """An FPRaker tile behind the link: VERSION tells back end 3, the encoding (byte 29) and
    fp_acc_width (byte 30); bytes 31 and 32 are 0. The power-on and commanded self-tests pass
    with the cycles of golden.fpraker_tile.pass_result on selftest_pass's sets."""
    from golden.fpraker_tile import pass_result, selftest_pass

    pf = FPRakerTileParams(filters=2, lanes=2, weight_rows=8, act_rows=8, fp_acc_width=21,
                           encoding="binary")
    assert frame_geometry(pf)["max_payload"] == 256
    _, tr = make(design="fpraker", params=pf)
    info = expected_info(pf, 3, True, 12000000, 256, term=(2, 21, 0, 0))
    assert info[5:12] == bytes([3, 2, 2, 1, 16, 16, 0])
    assert ask(tr, Command.VERSION, bytes([PROTOCOL_VERSION])) == \
        encode_reply(Command.VERSION, Error.OK, info)
    st = selftest_pass(pf, seed=1)
    cycles = pass_result(pf, st.a_sets, st.b_sets).cycles
    assert ask(tr, Command.STATUS) == encode_reply(Command.STATUS, Error.OK,
                                                   bytes([0b1110, 0, 0, 0, 2, 0]))
    assert ask(tr, Command.SELFTEST) == encode_reply(
        Command.SELFTEST, Error.OK, bytes([1]) + cycles.to_bytes(4, "little"))
    # the results of the self-test pass: P float32 patterns of 5 bytes (33-bit, zero-extended)
    assert ask(tr, Command.READ_RESULTS, u16(0) + u16(2)) == encode_reply(
        Command.READ_RESULTS, Error.OK,
        b"".join(int(r).to_bytes(5, "little") for r in st.results))
    with pytest.raises(TypeError, match=r"^backend fpraker needs params of type "
                                        r"FPRakerTileParams, not TileParams$"):
        HostLink(params=P, backend="fpraker")
    with pytest.raises(TypeError, match=r"^backend fpraker needs params of type "
                                        r"FPRakerTileParams, not TCLeTileParams$"):
        HostLink(params=TCLeTileParams(**P.__dict__), backend="fpraker")
    for backend in ("bit-parallel", "bit-serial"):
        with pytest.raises(TypeError, match=r"^params of type FPRakerTileParams need backend "
                                            rf"fpraker, not {backend}$"):
            HostLink(params=pf, backend=backend)
    with pytest.raises(TypeError, match=r"^backend term-serial needs params of type "
                                        r"TCLeTileParams, not FPRakerTileParams$"):
        HostLink(params=pf, backend="term-serial")


@pytest.mark.parametrize("design", ["wskip", "tclp", "tcle", "fpraker"])
def test_fuzz_random_and_mutated_frames(design):
    rng = np.random.default_rng(11)
    params = {"tcle": TCLeTileParams(**P.__dict__), "fpraker": PF}.get(design, P)
    _, tr = make(design=design, params=params)
    valid = [encode_request(Command.STATUS), encode_request(Command.VERSION, b"\x01"),
             encode_request(Command.READ_CYCLES),
             encode_request(Command.LOAD_ACTS, u16(0) + bytes(range(8))),
             encode_request(Command.READ_RESULTS, u16(0) + u16(4))]
    count = 60
    for i in range(count):
        kind = i % 3
        if kind == 0:                                  # random bytes
            raw = bytes(rng.integers(0, 256, int(rng.integers(1, 24))).tolist())
        else:                                          # a mutated valid frame
            raw = bytearray(valid[int(rng.integers(len(valid)))])
            for _ in range(int(rng.integers(1, 3))):
                what = rng.integers(3) if raw else 2
                pos = int(rng.integers(len(raw) + 1)) if what == 2 else int(rng.integers(len(raw)))
                if what == 0:
                    raw[pos] ^= 1 << int(rng.integers(8))
                elif what == 1:
                    del raw[pos:]
                else:
                    raw.insert(pos, int(rng.integers(256)))
            raw = bytes(raw) or b"\x00"
        got = replies(tr, raw)                         # decode_reply checks sync, length, CRC
        assert got, f"no reply to {raw.hex()}"
        assert all(r.command in (0,) + tuple(raw) for r in got)
    # the board is intact: a real run still equals golden
    board = Board(tr)
    board.handshake()
    board.expect(params)
    run = board.run_layer(selftest_layer(params, seed=3), max_windows=4)
    assert run.ok
