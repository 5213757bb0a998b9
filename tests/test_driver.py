"""effectual.driver and effectual.fpga host side: frame codec, Board over a scripted transport,
configuration checks and option parsing (no simulator; the driver against RTL is in
test_hostlink.py, test_board_tile.py and test_cocotb_board_tile.py).

Frames are checked against bytes written out by hand from the protocol table (hw.protocol) with
a CRC computed bit by bit from the polynomial, independent of `hw.protocol.crc16`.
"""

import numpy as np
import pytest

from effectual.driver import Board, BoardInfo, DeviceError, ProtocolError, SerialTransport, \
    decode_reply, encode_reply, encode_request, selftest_layer, selftest_vectors
from effectual.fpga import BOARD_TILES, DESIGN_TILES, board_params, params_from_info, \
    parse_tile
from golden.tcl import pack_act_rows, passes
from hw.params import FPRakerTileParams, TCLeTileParams, TileParams
from hw.protocol import Command, Error, pattern_crc

P = TileParams(filters=2, lanes=4, windows=2, weight_width=8, act_width=8, act_signed=False,
               pattern="L<2,1>", weight_rows=32, act_rows=32)


def crc_bits(data):
    register = 0xFFFF
    for byte in data:
        for i in range(7, -1, -1):
            top = ((register >> 15) ^ (byte >> i)) & 1
            register = ((register << 1) & 0xFFFF) ^ (0x1021 if top else 0)
    return register


def test_request_and_reply_bytes():
    body = bytes([0x05, 0x05, 0x00, 0x03, 0x00, 0x04, 0x00, 0x01])
    assert encode_request(Command.START, b"\x03\x00\x04\x00\x01") == \
        b"\xa5" + body + crc_bits(body).to_bytes(2, "big")
    body = bytes([0x02, 0x00, 0x00])
    assert encode_request(Command.STATUS) == b"\xa5" + body + crc_bits(body).to_bytes(2, "big")
    body = bytes([0x07, 0x00, 0x04, 0x00, 1, 2, 3, 4])
    frame = b"\x5a" + body + crc_bits(body).to_bytes(2, "big")
    assert encode_reply(Command.READ_CYCLES, Error.OK, b"\x01\x02\x03\x04") == frame
    reply, used = decode_reply(frame + b"junk")
    assert (reply.command, reply.status, reply.payload, used) == (7, 0, b"\x01\x02\x03\x04", 11)


def test_decode_reply_errors():
    frame = encode_reply(Command.STATUS, Error.OK, bytes(6))
    with pytest.raises(ProtocolError, match=r"^reply too short: 3 bytes \(5a0200\)$"):
        decode_reply(frame[:3])
    with pytest.raises(ProtocolError, match=r"^reply does not start with 0x5a: a5"):
        decode_reply(b"\xa5" + frame[1:])
    with pytest.raises(ProtocolError, match=r"^reply truncated: 12 of 13 bytes$"):
        decode_reply(frame[:-1])
    with pytest.raises(ProtocolError, match=r"^reply CRC mismatch: "):
        decode_reply(frame[:-1] + bytes([frame[-1] ^ 0x80]))
    with pytest.raises(ValueError, match=r"^command must be a byte, not 256$"):
        encode_request(256)


class Scripted:
    """A transport that answers each write with the next scripted reply (bytes)."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.sent = []
        self.buffer = b""

    def write(self, data):
        self.sent.append(bytes(data))
        if self.replies:
            self.buffer += self.replies.pop(0)

    def read(self, count):
        out, self.buffer = self.buffer[:count], self.buffer[count:]
        return out


def info_payload(params, *, backend=0, max_payload=256, protocol=2, term=(0, 0, 0, 0)):
    """The protocol-2 VERSION payload written out from the table in hw.protocol."""
    return (b"EFCT" + bytes([protocol, backend, params.filters, params.lanes,
                             params.windows, params.weight_width, params.act_width,
                             int(params.act_signed)])
            + params.weight_rows.to_bytes(4, "little") + params.act_rows.to_bytes(4, "little")
            + max_payload.to_bytes(2, "little") + pattern_crc(params.offsets).to_bytes(2, "little")
            + (12_000_000).to_bytes(4, "little") + b"\x01" + bytes(term))


def test_handshake_retry_version_and_errors():
    ok = encode_reply(Command.VERSION, Error.OK, info_payload(P))
    transport = Scripted([encode_reply(0, Error.OVERRUN), ok])
    board = Board(transport)
    info = board.handshake()
    assert transport.sent == [encode_request(Command.VERSION, b"\x02")] * 2
    assert (info.filters, info.weight_rows, info.clock_hz, info.selftest) == (2, 32, 12e6, True)
    assert params_from_info(info) == P
    board.expect(P)
    with pytest.raises(ValueError, match=r"^the board's tile differs from the expected one in "
                                         r"windows, pattern$"):
        board.expect(TileParams(**{**P.__dict__, "windows": 3, "pattern": "T<2,5>"}))
    bad = Board(Scripted([encode_reply(Command.VERSION, Error.BAD_VERSION,
                                       info_payload(P, protocol=3))]))
    with pytest.raises(DeviceError, match=r"^board speaks protocol 3, this driver 2$"):
        bad.handshake()
    # a protocol-1 board (29-byte info, bit-serial flag in byte 5) is refused the same way
    old = Board(Scripted([encode_reply(Command.VERSION, Error.BAD_VERSION,
                                       info_payload(P, protocol=1)[:29])]))
    with pytest.raises(DeviceError, match=r"^board speaks protocol 1, this driver 2$"):
        old.handshake()
    with pytest.raises(ProtocolError, match=r"^no reply to STATUS \(got nothing\)$"):
        Board(Scripted([])).status()
    with pytest.raises(ProtocolError, match=r"^reply to command 0x03, expected 0x02$"):
        Board(Scripted([encode_reply(3, 0)])).status()
    with pytest.raises(DeviceError, match=r"^board replied BUSY to START$"):
        Board(Scripted([encode_reply(Command.START, Error.BUSY)])).start(1, 1, True)
    with pytest.raises(ProtocolError, match=r"^VERSION reply is not an Effectual board"):
        BoardInfo.from_bytes(b"EFCX" + bytes(29))


def test_loads_are_split_to_max_payload_and_results_joined():
    board = Board(Scripted([encode_reply(Command.VERSION, Error.OK,
                                         info_payload(P, max_payload=32))]))
    board.handshake()
    board.expect(P)
    words = [int(v) for v in np.random.default_rng(1).integers(0, 1 << 62, 7)]
    board.transport.replies = [encode_reply(Command.LOAD_SCHEDULE, 0)] * 4
    board.load_schedule(words, first=3)
    frames = [decode_request(f) for f in board.transport.sent[1:]]
    # 11-byte rows, 30 bytes of rows per 32-byte payload: 2 rows per frame
    assert [(c, p[:2]) for c, p in frames] == [(3, b"\x03\x00"), (3, b"\x05\x00"),
                                               (3, b"\x07\x00"), (3, b"\x09\x00")]
    joined = b"".join(p[2:] for _, p in frames)
    assert joined == b"".join((w & ((1 << 88) - 1)).to_bytes(11, "little") for w in words)
    # 3-byte results: 10 per 32-byte reply
    values = list(range(-12, 13))
    board.transport.sent.clear()
    board.transport.replies = [
        encode_reply(Command.READ_RESULTS, 0, b"".join((v & 0xFFFFFF).to_bytes(3, "little")
                                                       for v in values[k:k + 10]))
        for k in range(0, 25, 10)]
    assert board.read_results(25) == values
    assert [decode_request(f)[1] for f in board.transport.sent] == [
        b"\x00\x00\x0a\x00", b"\x0a\x00\x0a\x00", b"\x14\x00\x05\x00"]


def decode_request(frame):
    assert frame[0] == 0xA5 and crc_bits(frame[1:-2]) == int.from_bytes(frame[-2:], "big")
    length = int.from_bytes(frame[2:4], "little")
    assert len(frame) == 6 + length
    return frame[1], frame[4:4 + length]


def test_selftest_vectors_are_the_first_golden_pass():
    for serial in (False, True):
        vectors = selftest_vectors(P, backend="bit-serial" if serial else "bit-parallel",
                                   seed=4)
        first = next(passes(selftest_layer(P, seed=4), P))
        assert vectors["rows"] == first.schedule.rows
        assert vectors["acts"] == pack_act_rows(first.acts, P)
        assert vectors["results"] == [int(first.outputs[f, w]) for w in range(2)
                                      for f in range(2)]
        assert vectors["cycles"] == (first.cycles_bit_serial if serial
                                     else first.cycles_bit_parallel)
    layer = selftest_layer(P)
    assert layer.weights.shape == (2, 4, 2, 2) and (layer.weights == 0).mean() > 0.2


def test_tile_options_and_board_params():
    assert parse_tile("2x4x8") == (2, 4, 8)
    with pytest.raises(ValueError, match=r"^--tile must be FxNxW \(filters x lanes x windows\), "
                                         r"e\.g\. 2x4x2, not '2x4'$"):
        parse_tile("2x4")
    assert board_params("icebreaker") == TileParams(**BOARD_TILES["icebreaker"])
    assert board_params("icebreaker", design="wskip") == TileParams(
        **{**BOARD_TILES["icebreaker"], "windows": 1})
    assert board_params("ulx3s-85f", tile="1x2x3", pattern="none").windows == 3
    with pytest.raises(ValueError, match=r"^unknown board 'de0'"):
        board_params("de0")
    with pytest.raises(ValueError, match=r"^filters must be an integer from 1 to 64, not 0$"):
        board_params("icebreaker", tile="0x4x2")


def test_unknown_pattern_and_missing_pyserial():
    info = BoardInfo.from_bytes(info_payload(P)[:22] + b"\x00\x00" + info_payload(P)[24:])
    with pytest.raises(ValueError, match=r"^the board's pattern \(CRC 0x0000\) is none of the "
                                         r"known patterns$"):
        params_from_info(info)
    try:
        import serial  # noqa: F401
    except ImportError:
        with pytest.raises(OSError, match=r"^talking to a board needs pyserial: "
                                          r"pip install 'pyserial>=3\.5,<4'$"):
            SerialTransport("/dev/null")


PE = TCLeTileParams(filters=2, lanes=4, windows=2, weight_width=8, act_width=8,
                    act_signed=False, pattern="L<2,1>", weight_rows=32, act_rows=32,
                    encoding="naf", first_stage_bits=1, run_ahead=3)


def test_term_serial_info_params_and_errors():
    """Protocol 2: back-end code 2 (term-serial) and the encoding (0 booth, 1 naf, 2 binary),
    first-stage bits, run-ahead and gating in bytes 29..32, written out by hand."""
    from hw.params import TERM_ENCODINGS
    from hw.protocol import ENCODINGS, encoding_code

    assert sorted(ENCODINGS) == sorted(TERM_ENCODINGS)      # every tile encoding has a code
    assert [encoding_code(e) for e in ("booth", "naf", "binary")] == [0, 1, 2]
    with pytest.raises(ValueError, match=r"^encoding must be one of booth, naf, binary, "
                                         r"not 'csd'$"):
        encoding_code("csd")
    payload = info_payload(PE, backend=2, term=(1, 1, 3, 1))
    info = BoardInfo.from_bytes(payload)
    assert (info.backend, info.term_serial, info.encoding, info.first_stage_bits,
            info.run_ahead, info.gate_zero_weights) == ("term-serial", True, "naf", 1, 3, True)
    assert params_from_info(info) == PE
    board = Board(Scripted([encode_reply(Command.VERSION, Error.OK, payload)]))
    board.handshake()
    board.expect(PE)
    with pytest.raises(ValueError, match=r"^the board's tile differs from the expected one in "
                                         r"encoding, run_ahead$"):
        board.expect(TCLeTileParams(**{**PE.__dict__, "encoding": "booth", "run_ahead": 0}))
    with pytest.raises(ValueError, match=r"^the board's tile differs from the expected one in "
                                         r"params type \(the board's back end is "
                                         r"term-serial\)$"):
        board.expect(P)
    # the bit-parallel and bit-serial back ends: codes 0 and 1, no term-serial fields
    for code, name in ((0, "bit-parallel"), (1, "bit-serial")):
        info = BoardInfo.from_bytes(info_payload(P, backend=code))
        assert (info.backend, info.encoding, info.run_ahead) == (name, None, None)
        assert params_from_info(info) == P
    prag = BoardInfo.from_bytes(info_payload(TCLeTileParams(
        **{**PE.__dict__, "pattern": "none", "gate_zero_weights": False}), backend=2,
        term=(2, 0, 0, 0)))
    assert params_from_info(prag) == TCLeTileParams(**{**PE.__dict__, "pattern": "none",
                                                      "gate_zero_weights": False,
                                                      "encoding": "binary",
                                                      "first_stage_bits": 0, "run_ahead": 0})
    with pytest.raises(ProtocolError, match=r"^VERSION reply has back-end code 4, not one of "
                                            r"0\.\.3$"):
        BoardInfo.from_bytes(info_payload(P, backend=4))
    with pytest.raises(ProtocolError, match=r"^VERSION reply has encoding code 3, not one of "
                                            r"0\.\.2$"):
        BoardInfo.from_bytes(info_payload(PE, backend=2, term=(3, 1, 3, 1)))


def test_term_serial_expected_cycles_and_selftest_vectors():
    """The term-serial cycles of a pass are golden.pragmatic.schedule_cycles with the tile's
    options; summed over a whole layer they equal the layer-level golden model (row costs)."""
    from golden.designs import get_design
    from golden.pragmatic import schedule_cycles, tile_design
    from effectual.driver import expected_cycles

    layer = selftest_layer(PE, seed=4)
    jobs = list(passes(layer, PE))
    first = jobs[0]
    vectors = selftest_vectors(PE, backend="term-serial", seed=4)
    assert vectors["cycles"] == schedule_cycles(first.schedule, first.acts, encoding="naf",
                                                act_width=8, act_signed=False,
                                                first_stage_bits=1, run_ahead=3)
    assert vectors["results"] == [int(first.outputs[f, w]) for w in range(2) for f in range(2)]
    name, options = tile_design(PE)
    assert sum(expected_cycles(j, PE, "term-serial") for j in jobs) == \
        get_design(name).cycles(layer, **options)
    with pytest.raises(ValueError, match=r"^backend must be one of bit-parallel, bit-serial, "
                                         r"term-serial, fpraker, not 'serial'$"):
        expected_cycles(first, PE, "serial")
    with pytest.raises(TypeError, match=r"^the term-serial back end needs TCLeTileParams, not "
                                        r"TileParams\("):
        expected_cycles(first, P, "term-serial")


def test_term_serial_board_params_and_errors():
    base = {**BOARD_TILES["icebreaker"], **DESIGN_TILES.get(("icebreaker", "tcle"), {})}
    assert board_params("icebreaker", design="tcle", encoding="binary", first_stage_bits=3,
                        run_ahead=8) == TCLeTileParams(**base, encoding="binary",
                                                       first_stage_bits=3, run_ahead=8)
    with pytest.raises(ValueError, match=r"^--encoding applies to tcle, pragmatic and fpraker only, "
                                         r"not tclp$"):
        board_params("icebreaker", design="tclp", encoding="naf")
    with pytest.raises(ValueError, match=r"^--run-ahead applies to tcle and pragmatic only, "
                                         r"not baseline$"):
        board_params("icebreaker", design="baseline", run_ahead=1)
    with pytest.raises(ValueError, match=r"^encoding must be one of naf, booth, binary, "
                                         r"not 'csd'$"):
        board_params("icebreaker", design="tcle", encoding="csd")
    with pytest.raises(ValueError, match=r"^first_stage_bits must be an integer from 0 to 3, "
                                         r"not 4$"):
        board_params("icebreaker", design="tcle", first_stage_bits=4)
    with pytest.raises(ValueError, match=r"^run_ahead must be an integer from 0 to 8, not 9$"):
        board_params("icebreaker", design="pragmatic", run_ahead=9)
    with pytest.raises(ValueError, match=r"^--pattern applies to wskip, tclp and tcle only, "
                                         r"not pragmatic$"):
        board_params("icebreaker", design="pragmatic", pattern="L<2,1>")
    with pytest.raises(ValueError, match=r"^unknown design 'tcl'; known designs: baseline, "
                                         r"dstripes, wskip, tclp, tcle, pragmatic, fpraker$"):
        board_params("icebreaker", design="tcl")


PF = FPRakerTileParams(filters=4, lanes=8, weight_rows=64, act_rows=64, fp_acc_width=30,
                       encoding="booth")


def test_fpraker_info_params_and_errors():
    """Back-end code 3 (fpraker): the encoding in byte 29 and fp_acc_width in byte 30 (bytes 31
    and 32 zero), written out by hand; params_from_info rebuilds the FPRakerTileParams."""
    payload = info_payload(PF, backend=3, term=(0, 30, 0, 0))
    assert payload[5:12] == bytes([3, 4, 8, 1, 16, 16, 0])
    info = BoardInfo.from_bytes(payload)
    assert (info.backend, info.fpraker, info.term_serial, info.encoding, info.fp_acc_width,
            info.first_stage_bits, info.run_ahead) == ("fpraker", True, False, "booth", 30,
                                                       None, None)
    assert params_from_info(info) == PF
    board = Board(Scripted([encode_reply(Command.VERSION, Error.OK, payload)]))
    board.handshake()
    board.expect(PF)
    with pytest.raises(ValueError, match=r"^the board's tile differs from the expected one in "
                                         r"lanes, encoding, fp_acc_width$"):
        board.expect(FPRakerTileParams(filters=4, lanes=4, weight_rows=64, act_rows=64))
    with pytest.raises(ValueError, match=r"^the board's tile differs from the expected one in "
                                         r"filters, lanes, windows, weight_width, act_width, "
                                         r"weight_rows, act_rows, pattern, params type \(the "
                                         r"board's back end is fpraker\)$"):
        board.expect(P)
    # a TCLe board is not an fpraker one either
    term = Board(Scripted([encode_reply(Command.VERSION, Error.OK,
                                        info_payload(PE, backend=2, term=(1, 1, 3, 1)))]))
    term.handshake()
    with pytest.raises(ValueError, match=r"params type \(the board's back end is "
                                         r"term-serial\)$"):
        term.expect(FPRakerTileParams(filters=2, lanes=4, weight_rows=32, act_rows=32))
    with pytest.raises(ProtocolError, match=r"^VERSION reply has encoding code 5, not one of "
                                            r"0\.\.2$"):
        BoardInfo.from_bytes(info_payload(PF, backend=3, term=(5, 30, 0, 0)))
    bad = BoardInfo.from_bytes(info_payload(PF, backend=3, term=(0, 30, 0, 0))[:22] + b"\0\0"
                               + payload[24:])
    with pytest.raises(ValueError, match=r"^the fpraker board's pattern \(CRC 0x0000\) is not "
                                         r"none$"):
        params_from_info(bad)


def test_fpraker_expected_cycles_and_selftest_vectors():
    """The fpraker self-test is golden.fpraker_tile.selftest_pass; the expected cycles of a pass
    are the lock-step sum of per-set maxima over the PEs, checked against per-PE fpraker_dot
    set cycles."""
    from golden.fpraker import fpraker_dot
    from golden.fpraker_tile import selftest_pass
    from effectual.driver import expected_cycles

    params = FPRakerTileParams(filters=3, lanes=2, weight_rows=8, act_rows=8)
    st = selftest_pass(params, seed=6)
    vectors = selftest_vectors(params, backend="fpraker", seed=6)
    assert (vectors["rows"], vectors["steps"]) == (4, 4)
    assert vectors["schedule"] == st.schedule and vectors["acts"] == st.acts
    per_pe = [fpraker_dot(st.a_sets.ravel(), st.b_sets[p].ravel(), params.pe_params)
              for p in range(3)]
    assert vectors["results"] == [int(d.bits) for d in per_pe]
    lockstep = int(np.max([d.set_cycles for d in per_pe], axis=0).sum())
    assert vectors["cycles"] == lockstep == expected_cycles(st, params, "fpraker")
    with pytest.raises(TypeError, match=r"^the fpraker back end needs FPRakerTileParams, not "
                                        r"TileParams\("):
        expected_cycles(st, P, "fpraker")


def test_fpraker_board_params_and_errors():
    from effectual.fpga import FPRAKER_TILES

    assert board_params("icebreaker", design="fpraker") == FPRakerTileParams(
        **FPRAKER_TILES["icebreaker"])
    assert FPRAKER_TILES["icebreaker"] == dict(filters=1, lanes=4, weight_rows=72, act_rows=72)
    assert board_params("ulx3s-85f", design="fpraker", encoding="booth", fp_acc_width=30) == PF
    assert board_params("icebreaker", design="fpraker", tile="2x2x1", weight_rows=8,
                        act_rows=8) == FPRakerTileParams(filters=2, lanes=2, weight_rows=8,
                                                         act_rows=8)
    with pytest.raises(ValueError, match=r"^--fp-acc-width applies to fpraker only, not tcle$"):
        board_params("icebreaker", design="tcle", fp_acc_width=24)
    with pytest.raises(ValueError, match=r"^--first-stage-bits applies to tcle and pragmatic "
                                         r"only, not fpraker$"):
        board_params("icebreaker", design="fpraker", first_stage_bits=1)
    with pytest.raises(ValueError, match=r"^--pattern applies to wskip, tclp and tcle only, "
                                         r"not fpraker$"):
        board_params("icebreaker", design="fpraker", pattern="L<2,1>")
    with pytest.raises(ValueError, match=r"^windows of an FPRaker tile must be 1, not 2$"):
        board_params("icebreaker", design="fpraker", tile="1x4x2")
    with pytest.raises(ValueError, match=r"^fp_acc_width must be an integer from 16 to 48, "
                                         r"not 50$"):
        board_params("icebreaker", design="fpraker", fp_acc_width=50)
