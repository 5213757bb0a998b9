"""``effectual eval``: output check against golden.layers.layer_output, figures, errors."""

import dataclasses
import json
import math

import numpy as np
import pytest

from effectual.cli import main
from golden.designs import DESIGNS, get_design, load_designs
from golden.layers import Layer, layer_output, load_layer, save_layer
from golden.nbsmt import nbsmt_layer_output
from hw.params import SySMTParams

load_designs()


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


@pytest.mark.parametrize("design", ["baseline", "stripes", "dstripes", "wskip", "tclp",
                                    "pragmatic", "tcle"])
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


@pytest.mark.parametrize("design", ["pragmatic", "tcle"])
def test_eval_term_serial_options(design, layer_file, capsys):
    argv = ["eval", "--design", design, "--layer", str(layer_file), "--json", "--tile", "8x8x4",
            "--encoding", "naf", "--first-stage-bits", "3", "--run-ahead", "1"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    options = dict(filters=8, lanes=8, windows=4, run_ahead=1, encoding="naf",
                   first_stage_bits=3)
    layer = load_layer(layer_file)
    assert result["options"] == options and result["output_matches"] is True
    assert result["cycles"] == get_design(design).cycles(layer, **options)
    assert result["cycles"] != get_design(design).cycles(layer, filters=8, lanes=8, windows=4)


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
    (["--design", "sysmt1", "--array", "16"],
     "--array must be RxC with positive integers (e.g. 16x16), not '16'"),
    (["--design", "sysmt4", "--array", "1x4"], "rows must be an integer from 2 to 16, not 1"),
    (["--design", "sparq", "--array", "4x17"], "cols must be an integer from 1 to 16, not 17"),
    (["--design", "tclp", "--tile", "16x16"],
     "--tile must be FxNxW with positive integers (e.g. 16x16x8), not '16x16'"),
    (["--design", "tclp", "--tile", "16x0x2"],
     "--tile must be FxNxW with positive integers (e.g. 16x16x8), not '16x0x2'"),
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


def test_eval_unknown_design_lists_the_registry(layer_file, capsys):
    assert main(["eval", "--layer", str(layer_file), "--design", "nope"]) == 2
    err = capsys.readouterr().err
    assert err == f"effectual eval: error: unknown design 'nope'; known: {', '.join(DESIGNS)}\n"
    assert [n for n in DESIGNS if n in KNOWN] == KNOWN


#: the designs of golden/designs.py and golden/approx_designs.py, in registration order
KNOWN = ["baseline", "stripes", "dstripes", "wskip", "tclp", "pragmatic", "tcle", "sysmt1",
         "sysmt2", "sysmt4", "sparq"]
#: option -> the known designs that take it (other modules may register more takers)
TAKERS = {"--tile": ["baseline", "stripes", "dstripes", "wskip", "tclp", "pragmatic", "tcle"],
          "--array": ["sysmt1", "sysmt2", "sysmt4", "sparq"],
          "--pattern": ["wskip", "tclp", "tcle"], "--run-ahead": ["tclp", "pragmatic", "tcle"],
          "--encoding": ["pragmatic", "tcle"], "--first-stage-bits": ["pragmatic", "tcle"]}


@pytest.mark.parametrize("design,option,value", [
    ("tclp", "--array", "8x8"), ("sysmt2", "--tile", "8x8x1"), ("sparq", "--pattern", "T<2,5>"),
    ("sysmt4", "--run-ahead", "1"), ("baseline", "--pattern", "T<2,5>"),
    ("wskip", "--run-ahead", "1"), ("sysmt1", "--pattern", "none"),
    ("tclp", "--encoding", "naf"), ("baseline", "--first-stage-bits", "3")])
def test_eval_option_does_not_apply(design, option, value, layer_file, capsys):
    assert main(["eval", "--layer", str(layer_file), "--design", design, option, value]) == 2
    err = capsys.readouterr().err
    expected = [n for n in DESIGNS if n in TAKERS[option]]
    if all(n in KNOWN for n in DESIGNS):
        listed = expected[0] if len(expected) == 1 else \
            ", ".join(expected[:-1]) + " and " + expected[-1]
        assert err == f"effectual eval: error: {option} applies to {listed} only, not {design}\n"
    else:  # designs registered by other modules may take the option too
        assert err.startswith(f"effectual eval: error: {option} applies to ")
        assert err.endswith(f" only, not {design}\n")
        listed = err[len(f"effectual eval: error: {option} applies to "):-len(
            f" only, not {design}\n")].replace(" and ", ", ").split(", ")
        assert [n for n in listed if n in KNOWN] == expected


def _naive_error(output, exact):
    """(differing, max |error|, relative RMS error) with plain Python."""
    pairs = list(zip(output.ravel().tolist(), exact.ravel().tolist()))
    diffs = [o - e for o, e in pairs]
    norm = math.sqrt(sum(e * e for _, e in pairs)) or 1.0
    return (sum(d != 0 for d in diffs), max(abs(d) for d in diffs),
            math.sqrt(sum(d * d for d in diffs)) / norm)


@pytest.mark.parametrize("design", ["sysmt1", "sysmt2", "sysmt4", "sparq"])
def test_eval_systolic_designs(design, layer_file, tmp_path, capsys):
    out = tmp_path / "y.npy"
    assert main(["eval", "--design", design, "--layer", str(layer_file), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    layer = load_layer(layer_file)
    exact = layer_output(layer)
    saved = np.load(out)
    assert np.array_equal(saved, get_design(design).output(layer))
    cycles = get_design(design).cycles(layer)
    assert f"cycles          {cycles:,}\n" in text
    assert f"baseline cycles {get_design('baseline').cycles(layer):,}\n" in text
    assert f"ideal cycles    {get_design(design).ideal(layer):,}\n" in text
    if design == "sysmt1":
        assert np.array_equal(saved, exact)
        assert "output          matches golden.layers.layer_output (420 values)" in text
        assert "speedup/" not in text
        return
    differing, largest, rms = _naive_error(saved, exact)
    assert differing > 0  # the layer is dense enough for threads to collide
    assert (f"output          approximate: {differing} of 420 values differ from "
            f"golden.layers.layer_output\n") in text
    assert f"differ fraction {differing / 420:.4f}\n" in text
    assert f"max abs error   {largest:,}\n" in text
    assert f"rel RMS error   {rms:.6f}\n" in text
    reference = get_design("sysmt1").cycles(layer)
    assert f"sysmt1 cycles   {reference:,}\n" in text
    assert f"speedup/sysmt1  {reference / cycles:.3f}\n" in text
    if design == "sparq":
        assert "squeezed" not in text
    else:
        _, counts = nbsmt_layer_output(layer, SySMTParams(rows=16, cols=16,
                                                          threads=int(design[-1])))
        assert (f"squeezed        {counts['squeezed'] / counts['active']:.4f} "
                f"({counts['squeezed']:,} of {counts['active']:,} active thread "
                f"operations)\n") in text


def test_eval_systolic_json_with_array(layer_file, capsys):
    argv = ["eval", "--design", "sysmt4", "--layer", str(layer_file), "--json",
            "--array", "4x3"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    layer = load_layer(layer_file)
    options = dict(rows=4, cols=3)
    output, counts = nbsmt_layer_output(layer, SySMTParams(threads=4, **options))
    differing, largest, rms = _naive_error(output, layer_output(layer))
    assert result["options"] == options and result["exact"] is False
    assert result["output_matches"] is False
    assert result["cycles"] == get_design("sysmt4").cycles(layer, **options)
    assert result["ideal_cycles"] == math.ceil(layer.macs / (4 * 4 * 3))
    assert result["reference_cycles"] == get_design("sysmt1").cycles(layer, **options)
    assert result["relative_to"] == "sysmt1"
    assert result["speedup_over_reference"] == result["reference_cycles"] / result["cycles"]
    assert result["baseline_cycles"] == get_design("baseline").cycles(layer)
    assert result["counts"] == counts
    assert result["error"] == {"values": 420, "differing": differing,
                               "differ_fraction": differing / 420, "max_abs_error": largest,
                               "rel_rms_error": pytest.approx(rms, rel=1e-12),
                               "squeezed_fraction": counts["squeezed"] / counts["active"]}


def test_eval_exact_systolic_mismatch_fails_approximate_does_not(layer_file, capsys,
                                                                  monkeypatch):
    def wrong(layer, **options):
        output = layer_output(layer)
        output[0, 0, 0] += 1
        return output, {}

    monkeypatch.setitem(DESIGNS, "sysmt1", dataclasses.replace(DESIGNS["sysmt1"],
                                                               output_counts=wrong))
    assert main(["eval", "--design", "sysmt1", "--layer", str(layer_file)]) == 1
    captured = capsys.readouterr()
    assert "output          DIFFERS FROM golden.layers.layer_output" in captured.out
    assert captured.err.startswith("effectual eval: error: sysmt1's output differs from "
                                   "golden.layers.layer_output: 1 of 420 values differ")
    monkeypatch.setitem(DESIGNS, "sysmt2", dataclasses.replace(DESIGNS["sysmt2"],
                                                               output_counts=wrong))
    assert main(["eval", "--design", "sysmt2", "--layer", str(layer_file)]) == 0
    captured = capsys.readouterr()
    assert "output          approximate: 1 of 420 values differ" in captured.out
    assert captured.err == ""


def test_eval_unsupported_layer(tmp_path, capsys):
    layer = Layer(kind="fc", name="f16", weights=np.ones((3, 4), int),
                  activations=np.full(4, 1000), act_bits=16)
    path = tmp_path / "f16.npz"
    save_layer(path, layer)
    assert main(["eval", "--design", "sysmt2", "--layer", str(path)]) == 2
    assert capsys.readouterr().err == ("effectual eval: error: layer 'f16': sysmt2 cannot run "
                                       "it: activations must be unsigned 8-bit, not 16-bit\n")
    assert main(["eval", "--design", "tclp", "--layer", str(path)]) == 0


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


# --------------------------------------------------------------- float designs (fpraker, bf16mac)

@pytest.mark.parametrize("design", ["fpraker", "bf16mac"])
def test_eval_float_design(design, layer_file, tmp_path, capsys):
    from golden.fpraker_layers import evaluate_float_layer

    out = tmp_path / "y.npy"
    argv = ["eval", "--design", design, "--layer", str(layer_file), "--out", str(out),
            "--pes", "4"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    layer = load_layer(layer_file)
    expected = evaluate_float_layer(layer, design, pes=4)
    saved = np.load(out)
    assert saved.dtype == np.float32 and saved.shape == layer_output(layer).shape
    assert saved.ravel().view(np.uint32).tolist() == expected.output.view(np.uint32).tolist()
    r = expected.results
    assert f"cycles          {r['cycles']:,}\n" in text
    assert f"baseline cycles {r['baseline_cycles']:,} (bf16mac)\n" in text
    assert f"ideal cycles    {r['ideal_cycles']:,.1f}\n" in text
    assert f"speedup         {r['baseline_cycles'] / r['cycles']:.3f}\n" in text
    assert f"within bound    420 of 420\n" in text
    # independent: the float view's outputs are close to the float64 dequantized output
    scale = float(layer.weight_scale) * layer.act_scale
    real = layer_output(layer) * scale
    assert np.max(np.abs(saved - real)) <= 2 ** -6 * np.max(np.abs(real))


def test_eval_float_json_outputs_limit(layer_file, tmp_path, capsys):
    out = tmp_path / "y.npy"
    argv = ["eval", "--design", "fpraker", "--layer", str(layer_file), "--json", "--outputs", "7",
            "--out", str(out)]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["outputs"] == 7 and result["total_outputs"] == 420 and result["pes"] == 16
    assert np.load(out).shape == (7,)
    assert result["error"]["outside_bound"] == 0


@pytest.mark.parametrize("extra,message", [
    (["--design", "fpraker", "--tile", "8x8x1"], "--tile does not apply to fpraker"),
    (["--design", "bf16mac", "--encoding", "naf"], "--encoding does not apply to bf16mac"),
    (["--design", "baseline", "--pes", "4"],
     "--pes applies to fpraker and bf16mac only, not baseline"),
    (["--design", "tclp", "--outputs", "4"],
     "--outputs applies to fpraker and bf16mac only, not tclp"),
    (["--design", "fpraker", "--outputs", "0"], "outputs must be an integer from 1 to 420, not 0"),
    (["--design", "bf16mac", "--pes", "0"], "pes must be an integer from 1 to 1048576, not 0"),
])
def test_eval_float_errors(extra, message, layer_file, capsys):
    assert main(["eval", "--layer", str(layer_file)] + extra) == 2
    assert capsys.readouterr().err.strip() == f"effectual eval: error: {message}"


def test_eval_float_bound_violation_fails(layer_file, capsys, monkeypatch):
    from golden import bfloat, fpraker_layers

    real = fpraker_layers.bf16_mac_dot

    def wrong(a, b, params):
        result = real(a, b, params)
        bits = result.bits.copy()
        value = float(bfloat.bits_float32(bits[:1])[0]) * 1.01 or 1.0
        bits[0] = bfloat.float32_bits(np.array([value], dtype=np.float32))[0]
        return dataclasses.replace(result, bits=bits)

    monkeypatch.setattr(fpraker_layers, "bf16_mac_dot", wrong)
    assert main(["eval", "--design", "bf16mac", "--layer", str(layer_file)]) == 1
    captured = capsys.readouterr()
    assert "within bound    419 of 420\n" in captured.out
    assert captured.err == ("effectual eval: error: 1 of bf16mac's outputs are outside "
                            "golden.fpraker.error_bound\n")
