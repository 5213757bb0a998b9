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


def test_pragmatic_is_not_the_tcle_tile_with_pattern_none(tiny_layer):
    """Why ``--design pragmatic`` is rejected: on a layer with zero weights the golden
    Pragmatic model counts more cycles than the TCLe tile's cycle model with pattern none."""
    import golden.pragmatic as pragmatic
    from golden.tcl import passes
    from hw.params import TCLeTileParams

    _, layer = tiny_layer
    params = TCLeTileParams(filters=4, lanes=4, windows=2, weight_width=8, act_width=8,
                            act_signed=True, pattern="none", weight_rows=256, act_rows=256)
    tile = sum(pragmatic.schedule_cycles(one.schedule, one.acts, encoding="booth", act_width=8,
                                         act_signed=True, first_stage_bits=2)
               for one in passes(layer, params))
    assert tile < pragmatic.pragmatic_cycles(layer, filters=4, lanes=4, windows=2)
    # the layer-level golden tcle model with pattern none is the tile's per-pass model summed
    assert tile == pragmatic.tcle_cycles(layer, filters=4, lanes=4, windows=2, pattern="none")


@pytest.mark.parametrize("argv,message", [
    (["--design", "stripes"], "stripes has no RTL (its golden model uses one per-layer "
                              "precision); simulate dstripes instead"),
    (["--design", "pragmatic"], "pragmatic has no RTL (the TCLe tile with pattern none skips "
                                "zero weights' terms, Pragmatic does not); simulate tcle "
                                "instead"),
    (["--design", "nope"],
     "--design must be one of baseline, dstripes, wskip, tclp, tcle, not 'nope'"),
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
