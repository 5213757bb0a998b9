# amaranth: UnusedElaboratable=no
"""hw.board_tile: the tile board top through its UART pins, its LEDs, every board target, and
``effectual board run`` end to end against the simulated board.

* The host driver (`effectual.driver.Board`, unchanged) talks to `BoardTile` in amaranth.sim
  through `sim.board_sim.PinTransport`, a bit-level 8N1 model of the host's serial port on the
  ``rx``/``tx`` pins: handshake, self-test, and a layer slice (several passes, schedule reuse)
  whose outputs and cycle counts equal `golden.tcl` and whose assembled outputs equal
  `golden.layers.layer_output`, for the TCLp tile (design tclp) and the bit-parallel tile with
  a pattern (design wskip); a whole small layer on the TCLe tile (designs tcle and pragmatic,
  term-serial cycles from `golden.pragmatic.schedule_cycles`, their sum checked against the
  layer-level golden model of the design).
* A host 2 % slow still talks; a character with a low stop bit gets a FRAMING reply.
* LEDs: busy during the power-on self-test, then idle + pass; fail with wrong vectors.
* Every board target elaborates (tclp, wskip, tcle) with the UART, clock and LED pins placed where
  amaranth-boards defines them.
"""

import dataclasses
import json
import re

import numpy as np
import pytest

from effectual import cli
from effectual.driver import Board, decode_reply, encode_request, selftest_layer, \
    selftest_vectors
from golden.layers import Layer, save_layer
from hw.board import BOARDS
from hw.board_tile import DESIGNS, LED_MAP, LED_ROLES, BoardTile, BoardTileTop
from hw.hostlink import SelfTest
from hw.params import FPRakerTileParams, TCLeTileParams, TileParams
from hw.protocol import Command, Error
from sim.board_sim import PinTransport

P = TileParams(filters=2, lanes=4, windows=2, weight_width=8, act_width=8, act_signed=False,
               pattern="L<2,1>", weight_rows=32, act_rows=32)
#: the term-serial designs' parameters: TCLe (the board default options) and Pragmatic (no
#: pattern, no zero-weight gating, other encoding, first stage and run-ahead)
PARAMS = {"tclp": P, "wskip": P,
          "tcle": TCLeTileParams(**dataclasses.asdict(P)),
          "pragmatic": TCLeTileParams(**{**dataclasses.asdict(P), "pattern": "none"},
                                      gate_zero_weights=False, encoding="naf",
                                      first_stage_bits=1, run_ahead=2),
          # the bfloat16 FPRaker tile: 2 PEs x 4 lanes, 16 sets per pass (LeNet conv1's 9-term
          # dot products take 3, fc2's 64-term ones 16), booth terms, a 24-bit window
          "fpraker": FPRakerTileParams(filters=2, lanes=4, weight_rows=16, act_rows=16,
                                       fp_acc_width=24, encoding="booth")}
DIVISOR = 4


def make(design="tclp", vectors=None, **kwargs):
    params = PARAMS[design]
    vectors = vectors or selftest_vectors(params, backend=DESIGNS[design][1])
    dut = BoardTile(params=params, design=design, divisor=DIVISOR, selftest=SelfTest(**vectors))
    return dut, PinTransport(dut, **kwargs)


def conv_layer(seed):
    """A 3x3 convolution over 4 channels (8-bit, half the weights zero), 5x5 outputs."""
    rng = np.random.default_rng(seed)
    weights = rng.integers(-128, 128, (3, 4, 3, 3))
    weights[rng.random(weights.shape) < 0.5] = 0
    acts = rng.integers(0, 256, (4, 7, 7)) >> rng.integers(0, 8, (4, 7, 7))
    return Layer(kind="conv", weights=weights, activations=acts, weight_bits=8, act_bits=8,
                 act_signed=False, padding=(0, 0, 0, 0), name="conv3x3")


@pytest.mark.parametrize("design", ["tclp", "wskip"])
def test_driver_runs_layer_slice_through_uart_pins(design):
    _, tr = make(design)
    board = Board(tr)
    info = board.handshake()
    assert (info.backend, info.filters, info.windows) == (DESIGNS[design][1], 2, 2)
    board.expect(P)
    status = board.status()
    assert status.selftest_done and status.selftest_pass
    # 3 filters on a 2-filter tile: 2 filter tiles; 3 windows: 2 chunks of 2 (the second
    # partial) -> 4 passes, the schedule loaded once per filter tile
    run = board.run_layer(conv_layer(1), max_windows=3)
    assert len(run.passes) == 4
    assert all(p.ok for p in run.passes), [(p.cycles, p.expected_cycles) for p in run.passes]
    np.testing.assert_array_equal(run.outputs, run.reference)
    assert run.ok
    assert board.selftest() == (True, selftest_vectors(P, backend=DESIGNS[design][1])["cycles"])


def small_conv(seed):
    """A 2x2 convolution over 4 channels, 3 filters (8-bit, half the weights zero), 3x2 outputs:
    2 filter tiles x 3 window chunks on the 2x4x2 tile, small enough to run whole."""
    rng = np.random.default_rng(seed)
    weights = rng.integers(-128, 128, (3, 4, 2, 2))
    weights[rng.random(weights.shape) < 0.5] = 0
    acts = rng.integers(0, 256, (4, 4, 3)) >> rng.integers(0, 8, (4, 4, 3))
    acts[rng.random(acts.shape) < 0.2] = 0
    return Layer(kind="conv", weights=weights, activations=acts, weight_bits=8, act_bits=8,
                 act_signed=False, padding=(0, 0, 0, 0), name="conv2x2")


@pytest.mark.parametrize("design", ["tcle", "pragmatic"])
def test_term_serial_board_runs_whole_layer_through_uart_pins(design):
    """The TCLe tile (and Pragmatic: no pattern, no gating, NAF, L1 = 1, run-ahead 2) on the
    board top: the driver predicts each pass's cycles with golden.pragmatic.schedule_cycles;
    the total equals the layer-level golden model of the design (golden.designs, computed from
    row costs, not from the passes) and the outputs equal golden.layers.layer_output."""
    from golden.designs import get_design
    from golden.pragmatic import tile_design

    params = PARAMS[design]
    _, tr = make(design)
    board = Board(tr)
    info = board.handshake()
    assert (info.backend, info.encoding, info.first_stage_bits, info.run_ahead,
            info.gate_zero_weights) == ("term-serial", params.encoding, params.first_stage_bits,
                                        params.run_ahead, params.gate_zero_weights)
    board.expect(params)
    status = board.status()
    assert status.selftest_done and status.selftest_pass
    layer = small_conv(2)
    run = board.run_layer(layer)
    assert len(run.passes) == 6
    assert all(p.ok for p in run.passes), [(p.cycles, p.expected_cycles) for p in run.passes]
    np.testing.assert_array_equal(run.outputs, run.reference)
    name, options = tile_design(params)
    assert name == design
    assert run.cycles == get_design(name).cycles(layer, **options)
    assert board.selftest() == (True, selftest_vectors(params, backend="term-serial")["cycles"])


LENET = "build/workloads/lenet-digits-8"


def lenet_layer(index):
    """Layer ``index`` of LeNet-digits-8 (image 0). Without the workload (``effectual import
    lenet-digits --bits 8``) a random layer of the same shape and activation scale: conv1
    (16 filters 3x3 over 1 channel, 8x8, padding 1) or fc2 (10 x 64)."""
    import pathlib

    from golden.layers import load_network

    if pathlib.Path(LENET).is_dir():
        for position, (_, _, layer) in enumerate(load_network(LENET, images=0)[1]):
            if position == index:
                return layer
    rng = np.random.default_rng(4 + index)
    if index == 0:
        return Layer(kind="conv", weights=rng.integers(-128, 128, (16, 1, 3, 3)),
                     activations=rng.integers(0, 256, (1, 8, 8)), padding=(1, 1, 1, 1),
                     weight_scale=0.01, act_scale=1 / 255, name="conv1")
    return Layer(kind="fc", weights=rng.integers(-128, 128, (10, 64)),
                 activations=rng.integers(0, 256, 64), weight_scale=0.01, act_scale=0.11,
                 name="fc2")


def lenet_conv1_slice():
    """LeNet-digits-8 conv1, its first 6 filters on a 4x3 crop of the middle of the digit, no
    padding: 2x1 output positions, every window over ink."""
    layer = lenet_layer(0)
    assert layer.kind == "conv" and layer.weights.shape == (16, 1, 3, 3)
    return dataclasses.replace(layer, weights=layer.weights[:6],
                               activations=layer.activations[:, 2:6, 3:6],
                               padding=(0, 0, 0, 0), name="conv1-slice")


def test_fpraker_board_runs_lenet_slice_through_uart_pins():
    """The FPRaker tile on the board top (back end 3): the driver runs the float view of a
    LeNet conv1 slice pass by pass (golden.fpraker_tile.layer_passes); every pass's P float32
    results equal golden bit for bit and its cycles equal golden.fpraker_tile.pass_result's;
    the assembled outputs equal golden.fpraker.fpraker_dot of each whole output of
    golden.fpraker_layers.layer_pairs; the self-test passes with selftest_pass's cycles."""
    from golden.fpraker import fpraker_dot
    from golden.fpraker_layers import layer_pairs
    from golden.fpraker_tile import pass_result, selftest_pass

    params = PARAMS["fpraker"]
    _, tr = make("fpraker")
    board = Board(tr)
    info = board.handshake()
    assert (info.backend, info.filters, info.lanes, info.windows, info.weight_rows,
            info.encoding, info.fp_acc_width) == ("fpraker", 2, 4, 1, 16, "booth", 24)
    board.expect(params)
    status = board.status()
    assert status.selftest_done and status.selftest_pass
    layer = lenet_conv1_slice()
    run = board.run_layer(layer)
    # 3 blocks of 2 filters x 2 positions; the first pass of a block loads its B sets
    assert [(p.tile, p.chunk) for p in run.passes] == [(t, c) for t in range(3) for c in range(2)]
    assert all(p.ok for p in run.passes), [(p.cycles, p.expected_cycles) for p in run.passes]
    a, b = layer_pairs(layer)                 # [12 outputs, 9]: (k, oy, ox) order
    assert a.shape == (12, 9) and (a != 0).mean() > 0.5
    whole = fpraker_dot(a, b, params.pe_params)
    np.testing.assert_array_equal(run.outputs, whole.bits.reshape(6, 2))
    np.testing.assert_array_equal(run.outputs, run.reference)
    assert len(set(run.outputs.ravel().tolist())) == 12      # 12 distinct floats
    # cycles: the lock-step sum per pass is at least the slowest PE's own count
    assert run.cycles >= sum(whole.cycles.reshape(6, 2)[2 * t:2 * t + 2, c].max()
                             for t in range(3) for c in range(2))
    assert run.cycles > 6 * 3                 # more than one cycle per set: terms were counted
    assert run.ok
    # the whole of fc2 (10 outputs of 64 pairs, 16 sets): 5 passes, each loading its B sets
    fc2 = lenet_layer(4)
    run = board.run_layer(fc2)
    assert [(p.tile, p.chunk) for p in run.passes] == [(t, 0) for t in range(5)]
    a, b = layer_pairs(fc2)
    np.testing.assert_array_equal(run.outputs.ravel(), fpraker_dot(a, b, params.pe_params).bits)
    assert run.ok
    st = selftest_pass(params, seed=1)
    assert board.selftest() == (True, pass_result(params, st.a_sets, st.b_sets).cycles)


def test_board_run_cli_fpraker_against_simulated_board(tmp_path, capsys):
    """``effectual board run --design fpraker --port sim`` on the iCEBreaker's default fpraker
    tile (1 PE x 4 lanes, 32 sets) and a real LeNet layer (the conv1 slice, first position of
    each filter)."""
    layer_file = tmp_path / "layer.npz"
    save_layer(layer_file, lenet_conv1_slice())
    out = tmp_path / "run.json"
    assert cli.main(["board", "run", "--board", "icebreaker", "--layer", str(layer_file),
                     "--port", "sim", "--design", "fpraker", "--fp-acc-width", "20",
                     "--max-windows", "1", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "board: fpraker tile 1x4x1 pattern none naf W=20 (bfloat16), " in printed
    assert "power-on self-test: PASS" in printed
    assert "outputs and cycles equal golden" in printed
    result = json.loads(out.read_text())
    assert result["ok"] and len(result["passes"]) == 6
    assert all(p["cycles"] == p["expected_cycles"] for p in result["passes"])


def test_slow_host_and_framing_error():
    # a host whose bit period is 4 % longer than the board's (26 vs 25 cycles) still talks
    dut = BoardTile(params=P, design="wskip", divisor=25,
                    selftest=SelfTest(**selftest_vectors(P, backend="bit-parallel")))
    slow = PinTransport(dut, bit_cycles=26)
    assert Board(slow).handshake().filters == 2
    # a character with a low stop bit in the middle of a STATUS request
    _, tr = make()
    Board(tr).handshake()
    frame = encode_request(Command.STATUS)
    tr.write(frame[:2])
    tr.run(21 * DIVISOR)                     # both bytes sent; well within the timeout
    byte = frame[2]
    tr.raw_bits.extend([0] + [(byte >> i) & 1 for i in range(8)] + [0, 1])
    head = tr.read(5)
    got, _ = decode_reply(head + tr.read(int.from_bytes(head[3:5], "little") + 2))
    assert (got.command, got.status) == (Command.STATUS, Error.FRAMING)
    assert Board(tr).status().last_error == Error.FRAMING


def test_leds_follow_selftest():
    for wrong in (False, True):
        vectors = selftest_vectors(P, backend="bit-serial")
        if wrong:
            vectors["results"][0] ^= 1
        dut, tr = make(vectors=vectors)
        seen = []

        async def watch(ctx):
            async for _, _, leds in ctx.tick().sample(dut.leds):
                if not seen or seen[-1] != leds:
                    seen.append(leds)

        tr.sim.add_testbench(watch, background=True)
        tr.run(3000)
        names = [{LED_ROLES[i] for i in range(4) if (v >> i) & 1} for v in seen]
        final = {"idle", "fail"} if wrong else {"idle", "pass"}
        assert names[0] == {"busy"} and names[-1] == final, names
        assert all(not ({"pass", "fail"} <= n) for n in names)


@pytest.mark.parametrize("design", ["tclp", "wskip", "tcle", "fpraker"])
@pytest.mark.parametrize("board", list(BOARDS))
def test_board_targets_elaborate(board, design):
    platform = BOARDS[board]()
    params = PARAMS[design]
    dut = BoardTile(params=params, design=design, divisor=104,
                    selftest=SelfTest(**selftest_vectors(params, backend=DESIGNS[design][1])))
    plan = platform.build(BoardTileTop(board, dut), name="top", do_build=False)
    if board == "icebreaker":
        placed = dict(re.findall(r"^set_io (\S+) (\S+)$", plan.files["top.pcf"], re.MULTILINE))
    else:
        placed = dict(re.findall(r'^LOCATE COMP "(\S+)" SITE "(\S+)";$', plan.files["top.lpf"],
                                 re.MULTILINE))
    expected = {f"{platform.default_clk}_0__io": platform.lookup(platform.default_clk,
                                                                 0).ios[0].names[0],
                "button_0__io": platform.lookup("button", 0).ios[0].names[0]}
    for role, index in LED_MAP[board].items():
        pin = platform.lookup("led", index).ios[0].names[0]
        if ":" in pin:                      # a connector pin, e.g. the iCEBreaker's PMOD2
            connector, number = pin.split(":")
            name, _, conn_number = connector.rpartition("_")
            pin = platform.connectors[name, int(conn_number)].mapping[number]
        expected[f"led_{index}__io"] = pin
    for sub in ("rx", "tx"):
        resource = [s for s in platform.lookup("uart", 0).ios if s.name == sub][0]
        expected[f"uart_0__{sub}__io"] = resource.ios[0].names[0]
    assert {k: v for k, v in placed.items() if k in expected} == expected


def test_board_run_cli_against_simulated_board(tmp_path, capsys):
    layer_file = tmp_path / "layer.npz"
    save_layer(layer_file, selftest_layer(P, seed=9))
    out = tmp_path / "run.json"
    assert cli.main(["board", "run", "--board", "icebreaker", "--layer", str(layer_file),
                     "--port", "sim", "--max-windows", "2", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "board: tclp tile 2x4x2 pattern L<2,1>, " in printed
    assert "power-on self-test: PASS" in printed
    assert "outputs and cycles equal golden" in printed
    result = json.loads(out.read_text())
    assert result["ok"] and len(result["passes"]) == 1


def test_board_run_cli_tcle_against_simulated_board(tmp_path, capsys):
    layer_file = tmp_path / "layer.npz"
    save_layer(layer_file, small_conv(5))
    out = tmp_path / "run.json"
    assert cli.main(["board", "run", "--board", "icebreaker", "--layer", str(layer_file),
                     "--port", "sim", "--design", "tcle", "--encoding", "naf",
                     "--first-stage-bits", "1", "--max-windows", "2", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    # the iCEBreaker's default TCLe tile (DESIGN_TILES): 2x2x2
    assert "board: tcle tile 2x2x2 pattern L<2,1> naf L1=1 A=0, " in printed
    assert "power-on self-test: PASS" in printed
    assert "outputs and cycles equal golden" in printed
    result = json.loads(out.read_text())
    assert result["ok"] and len(result["passes"]) == 2
    assert all(p["cycles"] == p["expected_cycles"] for p in result["passes"])


def test_design_names_follow_the_golden_registry():
    """baseline/wskip: bit-parallel tile without/with a pattern; dstripes/tclp: the TCLp tile."""
    from effectual.fpga import BOARD_TILES, board_params
    from amaranth.hdl import Fragment

    from hw.board_tile import design_name, make_tile
    from hw.term_serial import TCLeTile

    for design, pattern, tile, backend in [
            ("baseline", "none", "hw.tile:BitParallelTile", "bit-parallel"),
            ("wskip", "L<2,1>", "hw.tile:BitParallelTile", "bit-parallel"),
            ("dstripes", "none", "hw.tile:TCLpTile", "bit-serial"),
            ("tclp", "L<2,1>", "hw.tile:TCLpTile", "bit-serial")]:
        assert DESIGNS[design] == (tile, backend)
        assert design_name(DESIGNS[design][1], pattern) == design
        assert board_params("icebreaker", design=design).pattern == pattern
    assert board_params("icebreaker", design="baseline") == TileParams(
        **{**BOARD_TILES["icebreaker"], "windows": 1, "pattern": "none"})
    with pytest.raises(ValueError, match=r"^--pattern applies to wskip, tclp and tcle only, "
                                         r"not dstripes$"):
        board_params("icebreaker", design="dstripes", pattern="T<2,5>")
    with pytest.raises(ValueError, match=r"^design baseline has pattern none, not 'L<2,1>' "
                                         r"\(with a pattern use wskip\)$"):
        make_tile("baseline", P)
    with pytest.raises(ValueError, match=r"^unknown design 'bit-parallel'; known designs: "
                                         r"baseline, dstripes, wskip, tclp, tcle, pragmatic, "
                                         r"fpraker$"):
        make_tile("bit-parallel", P)
    # the term-serial designs: the TCLe tile, with and without zero-weight gating
    tcle, prag = PARAMS["tcle"], PARAMS["pragmatic"]
    for design, params in (("tcle", tcle), ("pragmatic", prag)):
        assert DESIGNS[design] == ("hw.term_serial:TCLeTile", "term-serial")
        assert design_name("term-serial", params.pattern, params.gate_zero_weights) == design
        tile = make_tile(design, params)
        assert isinstance(tile, TCLeTile) and tile.params == params
        Fragment.get(tile, None)             # elaborates (and is used)
    assert board_params("icebreaker", design="tcle") == TCLeTileParams(
        **{**BOARD_TILES["icebreaker"], "lanes": 2})
    assert board_params("ulx3s-85f", design="tcle") == TCLeTileParams(
        **{**BOARD_TILES["ulx3s-85f"], "windows": 2})
    assert board_params("icebreaker", design="pragmatic", encoding="binary") == TCLeTileParams(
        **{**BOARD_TILES["icebreaker"], "lanes": 2, "pattern": "none"}, gate_zero_weights=False,
        encoding="binary")
    with pytest.raises(TypeError, match=r"^design tcle takes TCLeTileParams, not TileParams\("):
        make_tile("tcle", P)
    with pytest.raises(TypeError, match=r"^design tclp takes TileParams, not TCLeTileParams\("):
        make_tile("tclp", tcle)
    with pytest.raises(ValueError, match=r"^design pragmatic has pattern none, not 'L<2,1>' "
                                         r"\(with a pattern use tcle\)$"):
        make_tile("pragmatic", tcle)
    with pytest.raises(ValueError, match=r"^design tcle has gate_zero_weights=True, not False "
                                         r"\(use pragmatic\)$"):
        make_tile("tcle", prag)
    with pytest.raises(ValueError, match=r"^design pragmatic has gate_zero_weights=False, not "
                                         r"True \(use tcle\)$"):
        make_tile("pragmatic", dataclasses.replace(prag, gate_zero_weights=True))
    with pytest.raises(ValueError, match=r"^backend must be one of bit-parallel, bit-serial, "
                                         r"term-serial, fpraker, not 'serial'$"):
        design_name("serial", "none")


def test_board_run_cli_errors(tmp_path, capsys):
    assert cli.main(["board", "run", "--board", "icebreaker", "--port", "sim"]) == 2
    assert capsys.readouterr().err == "effectual board: error: board run needs --layer\n"
    layer_file = tmp_path / "layer.npz"
    save_layer(layer_file, small_conv(5))
    run = ["board", "run", "--board", "icebreaker", "--layer", str(layer_file), "--port", "sim"]
    assert cli.main([*run, "--design", "tcle", "--run-ahead", "x"]) == 2
    assert capsys.readouterr().err == ("effectual board: error: --run-ahead must be an integer, "
                                       "not 'x'\n")
    assert cli.main([*run, "--design", "wskip", "--encoding", "naf"]) == 2
    assert capsys.readouterr().err == ("effectual board: error: --encoding applies to tcle, "
                                       "pragmatic and fpraker only, not wskip\n")
    assert cli.main(["board", "icebreaker"]) == 2
    assert capsys.readouterr().err == ("effectual board: error: the following arguments are "
                                       "required: -o/--output\n")


@pytest.mark.parametrize("board", list(BOARDS))
def test_board_top_with_divided_clock(board):
    """``clock_divider=4``: the tile's logic is in a ``tile`` domain whose clock is a register
    of the board clock domain, net `TILE_CLOCK_NET`, toggling every 2 board cycles."""
    from amaranth.sim import Simulator

    from hw.board_tile import TILE_CLOCK_NET

    params = PARAMS["wskip"]
    dut = BoardTile(params=params, design="wskip", divisor=26,
                    selftest=SelfTest(**selftest_vectors(params, backend="bit-parallel")))
    plan = BOARDS[board]().build(BoardTileTop(board, dut, clock_divider=4), name="top",
                                 do_build=False)
    rtlil = plan.files["top.il"]
    assert f"wire width 1 \\{TILE_CLOCK_NET}" in rtlil or f"wire \\{TILE_CLOCK_NET}" in rtlil
    # the divided clock in simulation (no platform): high for 2 board cycles, low for 2
    top = BoardTileTop(board, BoardTile(params=params, design="wskip", divisor=26),
                       clock_divider=4)
    sim = Simulator(top)
    sim.add_clock(1e-6)
    seen = []

    async def bench(ctx):
        for _ in range(12):
            await ctx.tick()
            seen.append(ctx.get(top.tile_clock))

    sim.add_testbench(bench)
    sim.run()
    assert seen[:8] in ([1, 1, 0, 0, 1, 1, 0, 0], [0, 0, 1, 1, 0, 0, 1, 1],
                        [1, 0, 0, 1, 1, 0, 0, 1], [0, 1, 1, 0, 0, 1, 1, 0])


@pytest.mark.parametrize("divider, error, message", [
    (3, ValueError, r"^clock_divider must be one of 1, 2, 4, 8, not 3$"),
    ("2", TypeError, r"^clock_divider must be one of 1, 2, 4, 8, not '2'$"),
    (True, TypeError, r"^clock_divider must be one of 1, 2, 4, 8, not True$"),
])
def test_board_top_clock_divider_errors(divider, error, message):
    dut = BoardTile(params=PARAMS["wskip"], design="wskip", divisor=26)
    with pytest.raises(error, match=message):
        BoardTileTop("icebreaker", dut, clock_divider=divider)
