"""``effectual sim``: a tiny hand-made layer through the RTL tiles (Icarus), checked against
`golden.layers.layer_output` (the dense reference) and the golden cycle models."""

import json

import numpy as np
import pytest

from effectual.cli import main
from golden.designs import get_design
from golden.layers import Layer, layer_output, save_layer

VERILATOR_FREE = "icarus"  # the Verilator path is exercised by tests/test_cocotb_tile.py


@pytest.fixture(scope="module")
def tiny_layer(tmp_path_factory):
    rng = np.random.default_rng(11)
    weights = rng.integers(-128, 128, (5, 3, 3, 3)) * (rng.random((5, 3, 3, 3)) < 0.4)
    acts = rng.integers(-128, 128, (3, 4, 4)) >> rng.integers(0, 6, (3, 4, 4))
    layer = Layer(kind="conv", weights=weights, activations=acts, padding=(1, 1, 1, 1),
                  weight_bits=8, act_bits=8, act_signed=True, name="tiny")
    path = tmp_path_factory.mktemp("layer") / "tiny.npz"
    save_layer(path, layer)
    return path, layer


@pytest.mark.cocotb
@pytest.mark.parametrize("design", ["tclp", "baseline", "dstripes", "wskip"])
def test_sim_json_and_out(design, tiny_layer, tmp_path, capsys):
    path, layer = tiny_layer
    out = tmp_path / "y.npy"
    argv = ["sim", "--design", design, "--layer", str(path), "--sim", VERILATOR_FREE, "--json",
            "--out", str(out)]
    windows = 5 if design in ("dstripes", "wskip") else None
    if windows:
        argv += ["--windows", str(windows)]
    assert main(argv) == 0
    results = json.loads(capsys.readouterr().out)
    expected = layer_output(layer)
    got = np.load(out)
    if windows:
        assert got.shape == (5, windows)
        assert np.array_equal(got, expected.reshape(5, -1)[:, :windows])
    else:
        assert np.array_equal(got, expected)
    assert results["output_matches"] and results["cycles_match"]
    assert results["cycles"] == results["golden_cycles"]
    assert results["windows"] == (windows or 16) and results["total_windows"] == 16
    bit_parallel = design in ("baseline", "wskip")
    assert results["tile"] == ("4x4x1" if bit_parallel else "4x4x2")
    # baseline cycles: one window per pass, every dense step a cycle
    steps = 3 * 3 * 1  # R*S*ceil(C/N)
    assert results["baseline_cycles"] == 2 * (windows or 16) * steps  # 2 filter tiles of 4
    if design == "baseline":
        assert results["cycles"] == results["baseline_cycles"] == get_design(
            "baseline").cycles(layer, filters=4, lanes=4)
    assert results["speedup"] == pytest.approx(results["baseline_cycles"] / results["cycles"])


@pytest.mark.cocotb
def test_sim_text_output_and_tile(tiny_layer, capsys):
    path, _ = tiny_layer
    assert main(["sim", "--design", "tclp", "--layer", str(path), "--sim", "icarus",
                 "--tile", "2x4x3", "--pattern", "L<1,2>", "--windows", "4"]) == 0
    text = capsys.readouterr().out
    assert "tile 2x4x3, pattern L<1,2>" in text
    assert "output          matches golden.layers.layer_output" in text
    assert "equal)" in text


@pytest.mark.cocotb
def test_sim_tcle_equals_golden_tcle(tiny_layer, capsys):
    """The TCLe tile: RTL output = dense reference, per-pass counters = golden.pragmatic, and
    their sum = the registered golden design ``tcle`` on the whole layer."""
    path, layer = tiny_layer
    assert main(["sim", "--design", "tcle", "--layer", str(path), "--sim", VERILATOR_FREE,
                 "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert results["output_matches"] and results["cycles_match"]
    assert (results["tile"], results["pattern"], results["windows"]) == ("4x4x2", "T<2,5>", 16)
    import golden.pragmatic  # noqa: F401  (registers tcle)
    assert results["cycles"] == get_design("tcle").cycles(
        layer, filters=4, lanes=4, windows=2, pattern="T<2,5>", encoding="booth",
        first_stage_bits=2)
    assert results["speedup"] == pytest.approx(results["baseline_cycles"] / results["cycles"])


@pytest.mark.cocotb
@pytest.mark.parametrize("design, extra", [
    ("pragmatic", ["--encoding", "naf", "--first-stage-bits", "1"]),
    ("tcle", ["--run-ahead", "2", "--tile", "2x4x3"]),
])
def test_sim_term_serial_options(design, extra, tiny_layer, capsys):
    """Pragmatic (the TCLe tile without zero-weight gating) and TCLe with run-ahead: RTL
    output = dense reference, the cycle counters = golden, and their sum = the registered
    design with the same options on the whole layer."""
    import golden.pragmatic  # noqa: F401  (registers the designs)

    path, layer = tiny_layer
    assert main(["sim", "--design", design, "--layer", str(path), "--sim", VERILATOR_FREE,
                 "--json", *extra]) == 0
    results = json.loads(capsys.readouterr().out)
    assert results["output_matches"] and results["cycles_match"]
    f, n, w = (int(v) for v in results["tile"].split("x"))
    options = dict(filters=f, lanes=n, windows=w, encoding=results["encoding"],
                   first_stage_bits=results["first_stage_bits"],
                   run_ahead=results["run_ahead"])
    if design == "tcle":
        assert (results["run_ahead"], results["tile"]) == (2, "2x4x3")
        options["pattern"] = "T<2,5>"
    else:
        assert (results["pattern"], results["encoding"], results["first_stage_bits"]) == (
            "none", "naf", 1)
    assert results["cycles"] == get_design(design).cycles(layer, **options)
    # the tiny layer has zero weights: Pragmatic processes their activations' terms, TCLe with
    # pattern none does not, so it takes fewer cycles
    if design == "pragmatic":
        assert get_design("tcle").cycles(layer, pattern="none", **options) < results["cycles"]


@pytest.mark.parametrize("argv,message", [
    (["--design", "stripes"], "stripes has no RTL (its golden model uses one per-layer "
                              "precision); simulate dstripes instead"),
    (["--design", "nope"], "--design must be one of baseline, dstripes, wskip, tclp, tcle, "
                           "pragmatic, sysmt1, sysmt2, sysmt4, not 'nope'"),
    (["--design", "tclp", "--run-ahead", "1"],
     "--run-ahead applies to tcle and pragmatic only, not tclp"),
    (["--design", "sysmt2", "--encoding", "naf"],
     "--encoding applies to tcle and pragmatic only, not sysmt2"),
    (["--design", "tcle", "--run-ahead", "9"], "run_ahead must be an integer from 0 to 8, not 9"),
    (["--design", "pragmatic", "--pattern", "T<2,5>"],
     "--pattern applies to wskip, tclp and tcle only, not pragmatic"),
    (["--design", "fpraker", "--run-ahead", "1"],
     "--run-ahead does not apply to fpraker (use --outputs)"),
    (["--design", "sparq"], "sparq has no array RTL (SySMTArray's 2-thread PEs use SPARQ's 2opt "
                            "window, the sparq design 5opt; hw.sparq.SparqPE is one PE); "
                            "simulate sysmt2 instead"),
    (["--design", "sysmt2", "--array", "4"],
     "--array must be RxC with positive integers (e.g. 16x16), not '4'"),
    (["--design", "sysmt2", "--array", "1x4"], "rows must be an integer from 2 to 16, not 1"),
    (["--design", "sysmt4", "--array", "4x17"], "cols must be an integer from 1 to 16, not 17"),
    (["--design", "sysmt2", "--tile", "4x4x2"],
     "--tile applies to baseline, dstripes, wskip, tclp, tcle, pragmatic only, not sysmt2 (use "
     "--array)"),
    (["--design", "sysmt1", "--pattern", "T<2,5>"],
     "--pattern applies to wskip, tclp and tcle only, not sysmt1"),
    (["--design", "tclp", "--array", "4x4"],
     "--array applies to sysmt1, sysmt2, sysmt4 only, not tclp"),
    (["--design", "sysmt2", "--windows", "0"], "--windows must be a positive integer, not 0"),
    # tiny_layer has negative (signed) activations: the array's PEs take uint8
    (["--design", "sysmt2"], "layer 'tiny': sysmt2 cannot run it: the array's PEs take unsigned "
                             "activations (0..255), the layer has negative ones"),
    (["--design", "tclp", "--sim", "vcs"], "--sim must be one of icarus, verilator, not 'vcs'"),
    (["--design", "baseline", "--pattern", "T<2,5>"],
     "--pattern applies to wskip, tclp and tcle only, not baseline"),
    (["--design", "tclp", "--tile", "4x4"],
     "--tile must be FxNxW with positive integers (e.g. 16x16x8), not '4x4'"),
    (["--design", "tclp", "--windows", "0"], "--windows must be a positive integer, not 0"),
])
def test_sim_errors_are_one_line(argv, message, tiny_layer, capsys):
    path, _ = tiny_layer
    full = ["sim", "--layer", str(path)] + argv
    if "--sim" not in argv:
        full += ["--sim", "icarus"]
    assert main(full) == 2
    assert capsys.readouterr().err == f"effectual sim: error: {message}\n"


@pytest.fixture(scope="module")
def unsigned_layer(tmp_path_factory):
    """A tiny conv layer the SySMT array can run: activations 0..255 (many zeros, many above
    15, so 2-thread collisions squeeze), sparse int8 weights."""
    rng = np.random.default_rng(5)
    weights = rng.integers(-128, 128, (5, 3, 3, 3)) * (rng.random((5, 3, 3, 3)) < 0.6)
    acts = rng.integers(0, 256, (3, 4, 4)) * (rng.random((3, 4, 4)) < 0.6)
    layer = Layer(kind="conv", weights=weights, activations=acts, padding=(1, 1, 1, 1),
                  weight_bits=8, act_bits=8, act_signed=False, name="tinyu")
    path = tmp_path_factory.mktemp("layer") / "tinyu.npz"
    save_layer(path, layer)
    return path, layer


def _array_cycles(positions, channels, length, rows, cols, threads):
    """Naive array cycle count: every R x C tile takes ceil(L/T) steps, R + C - 2 flush cycles
    and R output rows."""
    tiles = -(-positions // rows) * -(-channels // cols)
    return tiles * (-(-length // threads) + rows + cols - 2 + rows)


@pytest.mark.cocotb
def test_sim_sysmt2_equals_golden_nbsmt(unsigned_layer, tmp_path, capsys):
    """The whole layer on the default 4x4 2-thread array (Icarus): output = golden NB-SMT
    (which differs from the exact output on this layer), counter = the cycle model."""
    from golden.nbsmt import layer_cycles, nbsmt_layer_output
    from hw.params import SySMTParams

    path, layer = unsigned_layer
    out = tmp_path / "y.npy"
    assert main(["sim", "--design", "sysmt2", "--layer", str(path), "--sim", VERILATOR_FREE,
                 "--json", "--out", str(out)]) == 0
    results = json.loads(capsys.readouterr().out)
    params = SySMTParams(rows=4, cols=4, threads=2)
    expected, counts = nbsmt_layer_output(layer, params)
    assert counts["squeezed"] > 0 and not np.array_equal(expected, layer_output(layer))
    got = np.load(out)
    assert got.dtype == np.int64 and np.array_equal(got, expected)
    assert results["output_matches"] and results["cycles_match"]
    assert (results["array"], results["threads"], results["windows"], results["tiles"]) == \
        ("4x4", 2, 16, 8)
    assert results["cycles"] == results["golden_cycles"] == layer_cycles(layer, params) == \
        _array_cycles(16, 5, 27, 4, 4, 2)
    assert results["sim_clock_cycles"] == results["cycles"]  # full rate: counter = wall clock
    assert results["baseline_cycles"] == _array_cycles(16, 5, 27, 4, 4, 1)
    assert results["speedup"] == pytest.approx(results["baseline_cycles"] / results["cycles"])


@pytest.mark.cocotb
def test_sim_sysmt1_positions_and_array(unsigned_layer, tmp_path, capsys):
    """The first 7 positions on a 3x2 one-thread array: exactly the dense reference."""
    path, layer = unsigned_layer
    out = tmp_path / "y.npy"
    assert main(["sim", "--design", "sysmt1", "--layer", str(path), "--sim", VERILATOR_FREE,
                 "--windows", "7", "--array", "3x2", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert np.array_equal(np.load(out), layer_output(layer).reshape(5, -1)[:, :7])
    cycles = _array_cycles(7, 5, 27, 3, 2, 1)
    assert "on sysmt1 RTL, array 3x2, 1 thread per PE, icarus" in text
    assert "positions       7 of 16 (9 tiles)" in text
    assert "output          matches golden.layers.layer_output" in text
    assert f"cycles          {cycles:,} (array counter; golden {cycles:,}, equal)" in text


def test_sysmt_positions_cross_gemm_chunks():
    """The array testbench's GEMM (first N positions, groups in order) equals the im2col
    patches in NB-SMT reduction order, also when `golden.nbsmt.layer_gemm` splits the output
    rows into several chunks (this layer: 27, 27 and 12 rows)."""
    from golden.layers import layer_patches, layer_weight_matrix
    from golden.nbsmt import layer_gemm
    from golden.sparq import layer_reduction_order
    from sim.tb_sysmt_layer import positions_gemm

    rng = np.random.default_rng(1)
    layer = Layer(kind="conv", weights=rng.integers(-128, 128, (4, 32, 3, 3)),
                  activations=rng.integers(0, 256, (64, 66, 66)), padding=(1, 1, 1, 1),
                  groups=2, name="chunked")
    assert len({rows.start for _, rows, _, _ in layer_gemm(layer)}) == 3
    order = layer_reduction_order(layer)
    patches = layer_patches(layer)[:, :, order]
    weights = layer_weight_matrix(layer)[:, :, order]
    for n in (None, 5, 27 * 66 + 3, 54 * 66 + 1, 66 * 66):
        got = list(positions_gemm(layer, n))
        assert [group for group, _, _ in got] == [0, 1]
        for group, acts, w in got:
            assert np.array_equal(acts, patches[group][:n]) and np.array_equal(w, weights[group])
