"""golden.fpraker_layers: the float view of a layer on FPRaker and the BF16 MAC, against naive
per-output loops and exact Fraction references."""

import dataclasses
import math
import struct
from fractions import Fraction

import numpy as np
import pytest

from golden import bfloat, fpraker_layers
from golden.fpraker import bf16_mac_dot, error_bound, exact_dot, fpraker_dot
from golden.fpraker_layers import (error_bounds, evaluate_float_layer, float_layer, layer_pairs,
                                   pe_cycles, reference_dots)
from golden.layers import Layer
from hw.params import FPRakerParams


def _conv(seed, *, k=6, c=4, h=7, w=6, r=3, s=2, groups=1, stride=(1, 2),
          padding=(1, 1, 1, 0), zero_point=3, per_channel=True):
    rng = np.random.default_rng(seed)
    weights = rng.integers(-127, 128, (k, c // groups, r, s)) * (rng.random((k, c // groups, r, s))
                                                                 < 0.7)
    acts = rng.integers(0, 256, (c, h, w)) >> rng.integers(0, 8, (c, h, w))
    scale = rng.uniform(0.001, 0.05, k) if per_channel else np.float64(0.0123)
    return Layer(kind="conv", name=f"c{seed}", weights=weights, activations=acts,
                 stride=stride, padding=padding, groups=groups, weight_scale=scale,
                 act_scale=0.0371, act_zero_point=zero_point)


def _fc(seed, k=5, c=19):
    rng = np.random.default_rng(seed)
    return Layer(kind="fc", name="f", weights=rng.integers(-127, 128, (k, c)),
                 activations=rng.integers(0, 256, c), weight_scale=np.float64(0.02),
                 act_scale=0.5, act_zero_point=0)


LAYERS = [lambda: _conv(1), lambda: _conv(2, groups=2, k=4, per_channel=False),
          lambda: _conv(3, k=4, c=4, groups=4, r=3, s=3, stride=(2, 2),
                        padding=(1, 1, 1, 1)),
          lambda: _fc(4)]


def _bf16_value(x):
    """Exact value of ``x`` rounded to float32 then bfloat16 (both RNE), with Fractions."""
    def rne(value, bits):
        if value == 0:
            return Fraction(0)
        magnitude = abs(value)
        e = math.floor(math.log2(magnitude))
        while Fraction(2) ** e > magnitude:
            e -= 1
        while Fraction(2) ** (e + 1) <= magnitude:
            e += 1
        ulp = Fraction(2) ** (e - bits)
        q = magnitude / ulp
        n = math.floor(q)
        if q - n > Fraction(1, 2) or (q - n == Fraction(1, 2) and n % 2):
            n += 1
        return n * ulp if value > 0 else -n * ulp
    return rne(rne(Fraction(x), 23), 7)


@pytest.mark.parametrize("make", LAYERS)
def test_float_layer_against_fraction_rounding(make):
    layer = make()
    weights, acts = float_layer(layer)
    scale = np.broadcast_to(np.asarray(layer.weight_scale).reshape(
        (-1,) + (1,) * (layer.weights.ndim - 1)) if np.ndim(layer.weight_scale) else
        layer.weight_scale, layer.weights.shape)
    for bits, code, sc in zip(weights.ravel(), layer.weights.ravel(), scale.ravel()):
        product = float(np.float64(code) * np.float64(sc))  # step 1: the float64 product
        assert bfloat.to_fraction(int(bits)) == _bf16_value(product)
    for bits, code in zip(acts.ravel(), layer.activations.ravel()):
        expected = _bf16_value(float(np.float64(int(code) - layer.act_zero_point)
                                     * np.float64(layer.act_scale)))
        assert bfloat.to_fraction(int(bits)) == expected


def _naive_pairs(layer):
    """Per-output loops: (k, oy, ox) outputs, (r, s, c) reduction, padding +0."""
    weights, acts = float_layer(layer)
    if layer.kind == "fc":
        return [(list(acts), list(weights[k])) for k in range(weights.shape[0])]
    k_out, oh, ow = layer.output_shape
    cg = layer.weights.shape[1]
    kg = k_out // layer.groups
    r_size, s_size = layer.weights.shape[2:]
    top, _, left, _ = layer.padding
    pairs = []
    for k in range(k_out):
        g = k // kg
        for oy in range(oh):
            for ox in range(ow):
                a, b = [], []
                for r in range(r_size):
                    for s in range(s_size):
                        for c in range(cg):
                            y = oy * layer.stride[0] + r - top
                            x = ox * layer.stride[1] + s - left
                            inside = 0 <= y < acts.shape[1] and 0 <= x < acts.shape[2]
                            a.append(int(acts[g * cg + c, y, x]) if inside else 0)
                            b.append(int(weights[k, c, r, s]))
                pairs.append((a, b))
    return pairs


@pytest.mark.parametrize("make", LAYERS)
def test_layer_pairs_against_naive_loops(make):
    layer = make()
    a, b = layer_pairs(layer)
    naive = _naive_pairs(layer)
    assert a.shape == (len(naive), len(naive[0][0])) == b.shape
    assert a.tolist() == [p[0] for p in naive] and b.tolist() == [p[1] for p in naive]
    a3, b3 = layer_pairs(layer, outputs=3)
    assert a3.tolist() == a[:3].tolist() and b3.tolist() == b[:3].tolist()


def test_reference_and_bounds_against_fractions():
    layer = _conv(5)
    a, b = layer_pairs(layer)
    rng = np.random.default_rng(0)
    picks = rng.choice(len(a), 25, replace=False)
    ref = reference_dots(a[picks], b[picks])
    for params in ((8, 28, "naf"), (4, 20, "booth"), (8, 24, None)):
        bounds = error_bounds(a[picks], b[picks], params)
        for i, row in enumerate(picks):
            exact = exact_dot(a[row], b[row])
            assert ref[i] == float(exact)  # fsum: the correctly rounded exact sum
            _, bound = error_bound(a[row], b[row], lanes=params[0], acc_width=params[1],
                                   encoding=params[2])
            assert abs(Fraction(bounds[i]) - bound) <= bound * Fraction(1, 10 ** 9)


def test_pe_cycles_against_naive_assignment():
    rng = np.random.default_rng(3)
    for count, pes in ((1, 1), (7, 3), (50, 16), (16, 16), (5, 40)):
        cycles = rng.integers(1, 30, count)
        loads = [0] * pes
        for i, c in enumerate(cycles.tolist()):
            loads[i % pes] += c
        assert pe_cycles(cycles, pes) == max(loads)


@pytest.mark.parametrize("make", LAYERS)
@pytest.mark.parametrize("design", ["fpraker", "bf16mac"])
def test_evaluate_against_per_output_golden(make, design):
    layer = make()
    params = FPRakerParams(lanes=4, acc_width=24)
    result = evaluate_float_layer(layer, design, params=params, pes=3)
    naive = _naive_pairs(layer)
    run = fpraker_dot if design == "fpraker" else bf16_mac_dot
    per = [run(np.array(a), np.array(b), params) for a, b in naive]
    assert result.output.dtype == np.float32
    assert result.output.view(np.uint32).tolist() == [int(p.bits) for p in per]
    loads = [0, 0, 0]
    for i, p in enumerate(per):
        loads[i % 3] += int(p.cycles)
    assert result.cycles == max(loads)
    sets = -(-len(naive[0][0]) // 4)
    assert result.baseline_cycles == sets * -(-len(naive) // 3)
    if design == "fpraker":
        assert result.ideal_cycles == sum(int(p.effectual) for p in per) / 12
    else:
        assert result.ideal_cycles == len(naive) * len(naive[0][0]) / 12
    exact = [exact_dot(a, b) for a, b in naive]
    errors = [abs(bfloat.to_fraction(int(p.bits), bfloat.F32) - e) for p, e in zip(per, exact)]
    encoding = "naf" if design == "fpraker" else None
    bounds = [error_bound(a, b, lanes=4, acc_width=24, encoding=encoding)[1] for a, b in naive]
    assert result.within_bound.tolist() == [e <= bd for e, bd in zip(errors, bounds)]
    assert all(result.within_bound)
    r = result.results
    assert r["error"]["max_abs_error"] == pytest.approx(float(max(errors)), rel=1e-12,
                                                        abs=1e-300)
    nonzero = [(er, e) for er, e in zip(errors, exact) if e != 0]
    assert r["error"]["max_rel_error"] == pytest.approx(float(max(er / abs(e)
                                                                  for er, e in nonzero)),
                                                        rel=1e-9)
    assert r["speedup"] == r["baseline_cycles"] / r["cycles"]
    assert r["achieved_over_ideal"] == r["ideal_cycles"] / r["cycles"]


def test_bound_violation_is_detected(monkeypatch):
    layer = _conv(6)
    good = evaluate_float_layer(layer, "fpraker")
    assert good.within_bound.all()
    real = fpraker_layers.fpraker_dot

    def wrong(a, b, params):
        result = real(a, b, params)
        bits = result.bits.copy()
        value = float(bfloat.bits_float32(bits[:1])[0]) * 1.001 or 1.0
        bits[0] = bfloat.float32_bits(np.array([value], dtype=np.float32))[0]
        return type(result)(**{**result.__dict__, "bits": bits})

    monkeypatch.setattr(fpraker_layers, "fpraker_dot", wrong)
    bad = evaluate_float_layer(layer, "fpraker")
    assert bad.within_bound.tolist() == [False] + [True] * (len(bad.output) - 1)
    assert bad.results["error"]["outside_bound"] == 1


def test_outputs_limit_and_order():
    layer = _conv(7)
    full = evaluate_float_layer(layer, "fpraker", pes=2)
    part = evaluate_float_layer(layer, "fpraker", pes=2, outputs=10)
    assert part.output.view(np.uint32).tolist() == full.output[:10].view(np.uint32).tolist()
    assert part.results["outputs"] == 10 and part.results["total_outputs"] == full.output.size


def test_bad_arguments():
    layer = _fc(8)
    with pytest.raises(ValueError, match=r"^design must be one of fpraker, bf16mac, not 'x'$"):
        evaluate_float_layer(layer, "x")
    with pytest.raises(ValueError, match=r"^pes must be an integer from 1 to 1048576, not 0$"):
        evaluate_float_layer(layer, "fpraker", pes=0)
    with pytest.raises(ValueError, match=r"^outputs must be an integer from 1 to 5, not 6$"):
        evaluate_float_layer(layer, "fpraker", outputs=6)
    with pytest.raises(TypeError, match=r"^params must be an FPRakerParams, not 3$"):
        evaluate_float_layer(layer, "fpraker", params=3)


def test_float32_bits_of_struct_agree():
    # the float view's bfloat16 -> float64 conversion (subnormals flushed) against struct
    patterns = np.array([0x3f80, 0xbf80, 0x0001, 0x8000, 0x4049, 0x0080, 0x7f7f])
    values = fpraker_layers._as_float64(patterns)
    for p, v in zip(patterns.tolist(), values.tolist()):
        expected = 0.0 if (p >> 7) & 0xFF == 0 else struct.unpack(">f", struct.pack(">I",
                                                                                   p << 16))[0]
        assert v == expected


def test_overflowing_float_view_is_refused():
    layer = Layer(kind="fc", name="big", weights=np.array([[100, 1]]), activations=np.array([1, 2]),
                  weight_scale=np.float64(1e37))
    with pytest.raises(ValueError, match=r"^layer 'big': the dequantized weights overflow "
                                         r"bfloat16$"):
        float_layer(layer)


# ------------------------------------------------------------------ network totals and report

@pytest.fixture(scope="module")
def tiny_network(tmp_path_factory):
    from golden.layers import save_network

    directory = tmp_path_factory.mktemp("fpnet") / "tiny"
    bases = [_conv(20, zero_point=0),  # the integer designs of the report need zero point 0
             _conv(30, k=4, c=4, groups=4, r=3, s=3, padding=(1, 1, 1, 1), zero_point=0),
             _fc(40)]
    rng = np.random.default_rng(50)
    layers = []
    for j, base in enumerate(bases):
        layers.append([dataclasses.replace(base, name=f"l{j}",
                                           activations=rng.integers(0, 256,
                                                                    base.activations.shape))
                       for _ in range(2)])
    save_network(directory, iter(layers), name="tiny-fp", source="synthetic", bits=8,
                 per_channel=True, images=[{"name": "a", "source": "rng"},
                                           {"name": "b", "source": "rng"}])
    return directory, layers


def test_network_fpraker_sums_per_layer_results(tiny_network):
    from golden.fpraker_layers import network_fpraker

    directory, layers = tiny_network
    for images, outputs in ((1, None), (2, 5), (None, 3)):
        result = network_fpraker(directory, images=images, outputs=outputs, pes=3)
        used = 2 if images is None else images
        assert result["images"] == used
        totals = {"cycles": 0, "baseline_cycles": 0, "ideal_cycles": 0.0}
        for row, per_image in zip(result["layers"], layers):
            expected = [evaluate_float_layer(x, "fpraker", pes=3,
                                             outputs=None if outputs is None
                                             else min(outputs, int(np.prod(x.output_shape))))
                        for x in per_image[:used]]
            assert row["name"] == per_image[0].name
            assert row["cycles"] == sum(e.cycles for e in expected)
            assert row["baseline_cycles"] == sum(e.baseline_cycles for e in expected)
            assert row["ideal_cycles"] == pytest.approx(sum(e.ideal_cycles for e in expected))
            assert row["outputs"] == sum(e.output.size for e in expected)
            assert row["max_rel_error"] == max(e.results["error"]["max_rel_error"]
                                               for e in expected)
            assert row["outside_bound"] == 0
            for key in totals:
                totals[key] += row[key]
        net = result["network"]
        assert net["cycles"] == totals["cycles"]
        assert net["speedup"] == totals["baseline_cycles"] / totals["cycles"]
        assert net["achieved_over_ideal"] == pytest.approx(totals["ideal_cycles"]
                                                           / totals["cycles"])


def test_report_fpraker_section(tiny_network, tmp_path, capsys):
    import csv
    import json

    from effectual.cli import main
    from golden.fpraker_layers import network_fpraker

    directory, _ = tiny_network
    out = tmp_path / "r"
    assert main(["report", str(directory), "-o", str(out), "--fpraker-outputs", "7",
                 "--fpraker-pes", "2", "--error-images", "0"]) == 0
    expected = network_fpraker(directory, images=1, outputs=7, pes=2)
    rows = list(csv.DictReader(open(out / "layers.csv")))
    for row, layer in zip(rows, expected["layers"]):
        assert int(row["fpraker_cycles"]) == layer["cycles"]
        assert int(row["fpraker_bf16mac_cycles"]) == layer["baseline_cycles"]
        assert float(row["fpraker_speedup_over_bf16mac"]) == pytest.approx(layer["speedup"])
        assert float(row["fpraker_max_rel_error"]) == pytest.approx(layer["max_rel_error"])
    net = next(csv.DictReader(open(out / "networks.csv")))
    assert int(net["fpraker_cycles"]) == expected["network"]["cycles"]
    report = json.loads((out / "report.json").read_text())
    assert report["networks"][0]["fpraker"]["network"]["cycles"] == \
        expected["network"]["cycles"]
    assert "--fpraker-outputs 7 --fpraker-pes 2" in report["command"]
    markdown = (out / "report.md").read_text()
    n = expected["network"]
    assert (f"| tiny-fp | {n['outputs']:,} | {n['cycles']:,} | {n['baseline_cycles']:,} | "
            f"{n['speedup']:.3f} | {n['achieved_over_ideal']:.3f} | {n['max_rel_error']:.2e} | 0 |"
            in markdown.splitlines())
    capsys.readouterr()
    assert main(["report", str(directory), "-o", str(out), "--fpraker-images", "0",
                 "--error-images", "0"]) == 0
    assert "fpraker_cycles" not in open(out / "layers.csv").readline()
    assert "FPRaker" not in (out / "report.md").read_text()


@pytest.mark.parametrize("extra,message", [
    (["--fpraker-images", "x"], "--fpraker-images must be a count (0 or more) or 'all', not 'x'"),
    (["--fpraker-outputs", "0"],
     "--fpraker-outputs must be a count (1 or more) or 'all', not '0'"),
    (["--fpraker-pes", "0"], "--fpraker-pes must be an integer from 1 to 1048576, not 0"),
])
def test_report_fpraker_option_errors(extra, message, tiny_network, tmp_path, capsys):
    from effectual.cli import main

    directory, _ = tiny_network
    assert main(["report", str(directory), "-o", str(tmp_path / "r")] + extra) == 2
    assert capsys.readouterr().err == f"effectual report: error: {message}\n"
    assert not (tmp_path / "r").exists()
