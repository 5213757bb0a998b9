"""``effectual eval``: output check against golden.layers.layer_output, figures, errors."""

import dataclasses
import json

import numpy as np
import pytest

from effectual.cli import main
from golden.designs import DESIGNS, get_design
from golden.layers import Layer, layer_output, load_layer, save_layer


@pytest.fixture(scope="module")
def layer_file(tmp_path_factory):
    rng = np.random.default_rng(11)
    weights = rng.integers(-100, 101, (20, 24, 3, 3)) * (rng.random((20, 24, 3, 3)) < 0.3)
    acts = rng.integers(0, 256, (24, 7, 6)) >> rng.integers(0, 8, (24, 7, 6))
    layer = Layer(kind="conv", name="c1", weights=weights, activations=acts,
                  padding=(1, 1, 1, 0), stride=(1, 2), act_bits=8)
    path = tmp_path_factory.mktemp("eval") / "c1.npz"
    save_layer(path, layer)
    return path


@pytest.mark.parametrize("design", ["baseline", "stripes", "dstripes", "wskip", "tclp"])
def test_eval_each_design(design, layer_file, tmp_path, capsys):
    out = tmp_path / "y.npy"
    assert main(["eval", "--design", design, "--layer", str(layer_file), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    layer = load_layer(layer_file)
    saved = np.load(out)
    assert saved.dtype == np.int64 and np.array_equal(saved, layer_output(layer))
    cycles = get_design(design).cycles(layer)
    baseline = get_design("baseline").cycles(layer)
    ideal = get_design(design).ideal(layer)
    assert "output          matches golden.layers.layer_output (420 values)" in text
    assert f"cycles          {cycles:,}\n" in text
    assert f"baseline cycles {baseline:,}\n" in text and f"ideal cycles    {ideal:,}\n" in text
    assert f"speedup         {baseline / cycles:.3f}\n" in text
    assert f"achieved/ideal  {ideal / cycles:.3f}\n" in text


def test_eval_json_and_options(layer_file, capsys):
    argv = ["eval", "--design", "tclp", "--layer", str(layer_file), "--json", "--tile", "8x8x4",
            "--pattern", "L<2,3>", "--run-ahead", "1"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    layer = load_layer(layer_file)
    options = dict(filters=8, lanes=8, windows=4, pattern="L<2,3>", run_ahead=1)
    assert result["options"] == options and result["output_matches"] is True
    assert result["cycles"] == get_design("tclp").cycles(layer, **options)
    assert result["ideal_cycles"] == get_design("tclp").ideal(layer, **options)
    assert result["baseline_cycles"] == get_design("baseline").cycles(layer, filters=8, lanes=8)
    assert result["speedup"] == result["baseline_cycles"] / result["cycles"]
    assert result["achieved_over_ideal"] == result["ideal_cycles"] / result["cycles"]
    assert result["output_shape"] == [20, 7, 3]


def test_eval_mismatch_is_an_error(layer_file, tmp_path, capsys, monkeypatch):
    def wrong(layer, **options):
        output = layer_output(layer)
        output[1, 2, 0] += 3
        return output

    monkeypatch.setitem(DESIGNS, "tclp", dataclasses.replace(DESIGNS["tclp"], output=wrong))
    out = tmp_path / "bad.npy"
    assert main(["eval", "--design", "tclp", "--layer", str(layer_file), "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert "output          DIFFERS FROM golden.layers.layer_output" in captured.out
    expected = int(layer_output(load_layer(layer_file))[1, 2, 0])
    assert captured.err.strip() == (
        f"effectual eval: error: tclp's output differs from golden.layers.layer_output: 1 of "
        f"420 values differ (first at index (1, 2, 0): {expected + 3} instead of {expected})")
    assert np.load(out)[1, 2, 0] == expected + 3


@pytest.mark.parametrize("extra,message", [
    (["--design", "nope"], "unknown design 'nope'; known: baseline, stripes, dstripes, wskip, "
                           "tclp"),
    (["--design", "tclp", "--tile", "16x16"],
     "--tile must be FxNxW with positive integers (e.g. 16x16x8), not '16x16'"),
    (["--design", "tclp", "--tile", "16x0x2"],
     "--tile must be FxNxW with positive integers (e.g. 16x16x8), not '16x0x2'"),
    (["--design", "baseline", "--pattern", "T<2,5>"],
     "--pattern applies to wskip and tclp only, not baseline"),
    (["--design", "wskip", "--run-ahead", "1"], "--run-ahead applies to tclp only, not wskip"),
    (["--design", "tclp", "--run-ahead", "-1"],
     "run_ahead must be an integer from 0 to 65536, not -1"),
    (["--design", "wskip", "--pattern", "X"],
     "pattern must be 'none', 'L<h,d>', 'T<2,5>' or a list '(dt,dl),(dt,dl),...', not 'X'"),
    (["--design", "tclp", "--tile", "16x2x2"],
     "pattern 'T<2,5>': offset (2,-2) needs dt from 1 to 7 and dl from -1 to 1"),
])
def test_eval_errors(extra, message, layer_file, capsys):
    assert main(["eval", "--layer", str(layer_file)] + extra) == 2
    assert capsys.readouterr().err.strip() == f"effectual eval: error: {message}"


def test_eval_missing_layer_file(tmp_path, capsys):
    assert main(["eval", "--design", "tclp", "--layer", str(tmp_path / "none.npz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("effectual eval: error: ") and "none.npz" in err


def test_bench_tcl_suite_on_a_tiny_network(tmp_path, monkeypatch, capsys):
    """The ``tcl`` bench suite end to end, on a synthetic network standing in for BlazeFace."""
    from effectual import bench_tcl
    from golden.layers import save_network

    rng = np.random.default_rng(3)
    w1 = rng.integers(-50, 51, (8, 4, 3, 3)) * (rng.random((8, 4, 3, 3)) < 0.4)
    w2 = rng.integers(-50, 51, (8, 1, 3, 3))
    images = [[Layer(kind="conv", name="c", weights=w1, padding=(1, 1, 1, 1),
                     activations=rng.integers(0, 256, (4, 5, 5)) >> 3) for _ in range(2)],
              [Layer(kind="conv", name="dw", weights=w2, groups=8,
                     activations=rng.integers(0, 256, (8, 4, 4))) for _ in range(2)]]
    save_network(tmp_path / "tiny-8", images, name="tiny", source="rng", bits=8)
    monkeypatch.setattr(bench_tcl, "NETWORKS", (("tiny", 8),))
    monkeypatch.setattr(bench_tcl, "TIMED", ("tiny", 8))
    monkeypatch.setattr(bench_tcl, "ROOT", tmp_path)
    monkeypatch.setattr(bench_tcl, "network_dir",
                        lambda workload, bits: tmp_path / f"{workload}-{bits}")
    result = bench_tcl.suite(None)
    figures = result["networks"]["tiny-8"]
    for name in DESIGNS:
        expected = sum(get_design(name).cycles(layer) for per_layer in images
                       for layer in per_layer)
        ideal = sum(get_design(name).ideal(layer) for per_layer in images for layer in per_layer)
        assert figures["network"][name]["cycles"] == expected
        assert figures["network"][name]["ideal"] == ideal
        assert figures["layers"][1]["designs"][name]["cycles"] == sum(
            get_design(name).cycles(layer) for layer in images[1])
    ahead = sum(get_design("tclp").cycles(layer, run_ahead=1) for per_layer in images
                for layer in per_layer)
    assert figures["network"]["tclp-ra1"]["cycles"] == ahead
    assert result["timing_seconds"]["images"] == 2
    assert result["timing_seconds"]["layers_per_image"] == 2
    assert "tiny-8: 2 layers, 2 images" in capsys.readouterr().out
    json.dumps(result)
