"""``effectual import`` of ONNX models, checked against onnxruntime's own outputs.

Every model is built here with onnx.helper (no downloads). For each imported layer the tests
check (a) the captured float inputs against onnxruntime's intermediate tensors, (b) the
dequantized exact integer output against onnxruntime's float output of the same node, within a
bound derived from the quantization step sizes, and (c) the manifest against figures computed
here from the graph and onnxruntime's output shapes.
"""

import argparse
import json
import re

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from effectual import importers  # noqa: E402
from effectual.cli import UsageError  # noqa: E402
from effectual.importers.onnx_import import import_onnx  # noqa: E402
from golden.layers import layer_output, load_layer, load_network  # noqa: E402


# ---------------------------------------------------------------------------------- helpers

def tensor(name, shape=None, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def save_model(path, nodes, inputs, outputs, initializers=()):
    graph = helper.make_graph(nodes, "test", inputs, [tensor(o) for o in outputs],
                              [numpy_helper.from_array(np.asarray(v, np.float32), k)
                               for k, v in dict(initializers).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return str(path)


def ort_outputs(model_path, feed):
    """Run the test's own model (whose graph outputs list the tensors to check).

    Graph optimizations are off, as in the importer (documented there): with them on,
    onnxruntime fuses e.g. Conv+Relu and its float32 results move by an ulp or so.
    """
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = onnxruntime.InferenceSession(model_path, options,
                                           providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, feed)))


def cli_import(*argv):
    """``effectual import ARGV`` through the subcommand's own parser and ``run``."""
    parser = argparse.ArgumentParser()
    importers.add_arguments(parser)
    args = parser.parse_args([str(a) for a in argv])
    assert importers.run(args) == 0


def save_inputs(tmp_path, arrays, prefix="input"):
    paths = []
    for index, array in enumerate(arrays):
        path = tmp_path / f"{prefix}{index}.npy"
        np.save(path, np.asarray(array, np.float32))
        paths.append(str(path))
    return paths


def conv_float(weights, acts, stride, padding, groups):
    """Float64 grouped conv by shifted windows (an algorithm independent of im2col)."""
    k_count, cg, r_count, s_count = weights.shape
    top, bottom, left, right = padding
    padded = np.pad(acts, ((0, 0), (top, bottom), (left, right)))
    oh = (padded.shape[1] - r_count) // stride[0] + 1
    ow = (padded.shape[2] - s_count) // stride[1] + 1
    kg = k_count // groups
    out = np.zeros((k_count, oh, ow))
    for r in range(r_count):
        for s in range(s_count):
            window = padded[:, r:r + stride[0] * (oh - 1) + 1:stride[0],
                            s:s + stride[1] * (ow - 1) + 1:stride[1]]
            for g in range(groups):
                out[g * kg:(g + 1) * kg] += np.einsum(
                    "kc,chw->khw", weights[g * kg:(g + 1) * kg, :, r, s],
                    window[g * cg:(g + 1) * cg])
    return out


def check_output(layer, reference, bias=None, abs_tol=1e-6):
    """Check the dequantized integer output against onnxruntime's float output.

    Bound. With w = sw * (qw + ew) and a = sa * (qa + ea), where round-to-nearest without
    saturation gives |ew|, |ea| <= 1/2 (the scales map each max onto the largest code):
        sum w*a - sw*sa * sum qw*qa = sw*sa * sum (qw*ea + ew*qa + ew*ea)
    so per output |error| <= sw*sa * sum over the non-padded terms of (|qw|/2 + |qa|/2 + 1/4)
    (padded terms are exact zeros on both sides). onnxruntime computes in float32: a sum of L
    products carries at most about L * 2**-24 * sum |w*a| (~5e-6 relative for L <= 80), covered
    by 1e-5 * sw*sa * sum (|qw|+1)(|qa|+1) plus abs_tol for the bias and BatchNorm arithmetic.
    """
    q = layer_output(layer).astype(np.float64)
    k = layer.out_channels
    sw = np.broadcast_to(layer.weight_scale, (k,)).astype(np.float64)
    sa = layer.act_scale
    bias = np.zeros(k) if bias is None else np.asarray(bias, np.float64)
    qw = layer.weights.astype(np.float64)
    qa = (layer.activations - layer.act_zero_point).astype(np.float64)
    if layer.kind == "conv":
        shape = (k, 1, 1)
        args = (layer.stride, layer.padding, layer.groups)
        mask = np.ones_like(qa)
        terms = (0.5 * conv_float(np.abs(qw), mask, *args)
                 + 0.5 * conv_float(np.ones_like(qw), np.abs(qa), *args)
                 + 0.25 * conv_float(np.ones_like(qw), mask, *args))
        magnitude = conv_float(np.abs(qw) + 1, np.abs(qa) + mask, *args)
    else:
        shape = (k,)
        terms = 0.5 * np.abs(qw).sum(1) + 0.5 * np.abs(qa).sum() + 0.25 * qa.size
        magnitude = (np.abs(qw) + 1) @ (np.abs(qa) + 1)
    scale = sw.reshape(shape) * sa
    deq = q * scale + bias.reshape(shape)
    bound = scale * terms + 1e-5 * (scale * magnitude + np.abs(bias.reshape(shape))) + abs_tol
    assert deq.shape == reference.shape
    error = np.abs(deq - reference)
    assert np.all(error <= bound), f"max excess {np.max(error - bound)}"
    # the bound is informative: much smaller than the outputs it checks
    assert np.mean(bound) < 0.2 * np.mean(np.abs(reference - bias.reshape(shape)))
    return deq, bound


def check_quantization(layer, float_weights, float_acts_all, bits, per_channel):
    """Scales and codes follow the documented rules (formulas written out here)."""
    high = (1 << (bits - 1)) - 1
    w = np.asarray(float_weights, np.float64)
    if per_channel:
        peak = np.abs(w.reshape(w.shape[0], -1)).max(1)
        expected_sw = np.where(peak > 0, peak / high, 1.0)
    else:
        expected_sw = np.abs(w).max() / high
    assert np.allclose(layer.weight_scale, expected_sw, rtol=1e-12)
    assert layer.weights.min() >= -high - 1 and layer.weights.max() <= high
    sw = np.asarray(layer.weight_scale).reshape((-1,) + (1,) * (w.ndim - 1))
    assert np.all(np.abs(layer.weights * sw - w) <= sw / 2 * (1 + 1e-9))
    acts = np.asarray(float_acts_all, np.float64)
    signed = bool(acts.min() < 0)
    assert layer.act_signed == signed and layer.act_zero_point == 0
    top = high if signed else (1 << bits) - 1
    assert np.isclose(layer.act_scale, np.abs(acts).max() / top, rtol=1e-12)


def macs(weights_shape, output_shape):
    """MACs from onnxruntime's output shape: outputs times the per-output reduction."""
    return int(np.prod(output_shape)) * int(np.prod(weights_shape[1:]))


def loaded(directory):
    manifest, iterator = load_network(directory)
    layers = {}
    for entry, image, layer in iterator:
        layers[(entry["name"], image)] = layer
    return manifest, layers


# ---------------------------------------------------------------------------------- models

@pytest.mark.parametrize("bits,per_channel", [(8, False), (8, True), (16, False), (16, True)])
def test_conv_relu_conv(tmp_path, bits, per_channel):
    rng = np.random.default_rng(bits + per_channel)
    w1 = rng.normal(size=(8, 3, 3, 3)).astype(np.float32)
    b1 = rng.normal(size=8).astype(np.float32)
    w2 = (rng.normal(size=(6, 8, 1, 1)) * np.linspace(0.1, 2, 6)[:, None, None, None]
          ).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", strides=[2, 2],
                              pads=[0, 1, 2, 1]),  # ONNX order: top, left, bottom, right
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2"),
             helper.make_node("Relu", ["c2"], ["y"])]
    model = save_model(tmp_path / "m.onnx", nodes, [tensor("x", [1, 3, 12, 11])],
                       ["y", "c1", "r1", "c2"], {"w1": w1, "b1": b1, "w2": w2})
    images = [rng.normal(size=(1, 3, 12, 11)), rng.normal(size=(1, 3, 12, 11)) + 0.5]
    inputs = save_inputs(tmp_path, images)
    out = tmp_path / "out"
    cli_import(model, "--input", *inputs, "--bits", bits, *(["--per-channel"] * per_channel),
               "-o", out)
    refs = [ort_outputs(model, {"x": np.asarray(x, np.float32)}) for x in images]

    # (a) captured float inputs are onnxruntime's tensors
    capture = import_onnx(model, inputs)
    assert [layer.name for layer in capture.layers] == ["conv1", "conv2"]
    conv1, conv2 = capture.layers
    assert np.array_equal(conv1.activations, np.stack([np.float32(x[0]) for x in images]))
    assert np.array_equal(conv2.activations, np.stack([r["r1"][0] for r in refs]))
    assert conv1.padding == (0, 2, 1, 1) and conv1.stride == (2, 2)

    # (b) dequantized exact output vs onnxruntime's float conv output
    manifest, layers = loaded(out)
    for j, ref in enumerate(refs):
        check_output(layers[("conv1", j)], ref["c1"][0], bias=b1)
        check_output(layers[("conv2", j)], ref["c2"][0])
    check_quantization(layers[("conv1", 0)], w1, conv1.activations, bits, per_channel)
    check_quantization(layers[("conv2", 1)], w2, conv2.activations, bits, per_channel)
    assert layers[("conv1", 0)].act_signed and not layers[("conv2", 0)].act_signed

    # (c) the manifest
    assert manifest["name"] == "m" and manifest["source"] == model
    assert manifest["bits"] == bits and manifest["per_channel"] is per_channel
    assert [i["source"] for i in manifest["images"]] == inputs
    entries = manifest["layers"]
    assert [(e["index"], e["name"], e["kind"], e["op_type"]) for e in entries] == \
        [(0, "conv1", "conv", "Conv"), (1, "conv2", "conv", "Conv")]
    assert entries[0]["weights_shape"] == [8, 3, 3, 3]
    assert entries[0]["activations_shape"] == [3, 12, 11]
    assert entries[0]["output_shape"] == list(refs[0]["c1"].shape[1:])
    assert entries[1]["activations_shape"] == list(refs[0]["r1"].shape[1:])
    assert entries[1]["output_shape"] == list(refs[0]["c2"].shape[1:])
    expected = [macs(w1.shape, refs[0]["c1"].shape), macs(w2.shape, refs[0]["c2"].shape)]
    assert [e["macs"] for e in entries] == expected and manifest["macs"] == sum(expected)
    assert entries[0]["padding"] == [0, 2, 1, 1] and entries[0]["stride"] == [2, 2]


def test_bound_catches_a_wrong_layer(tmp_path):
    """The output check is not vacuous: a spatially flipped kernel violates the bound."""
    rng = np.random.default_rng(5)
    w = rng.normal(size=(4, 2, 3, 3)).astype(np.float32)
    model = save_model(tmp_path / "m.onnx", [helper.make_node("Conv", ["x", "w"], ["y"],
                                                              pads=[1, 1, 1, 1])],
                       [tensor("x", [1, 2, 6, 6])], ["y"], {"w": w})
    x = rng.normal(size=(1, 2, 6, 6))
    cli_import(model, "--input", *save_inputs(tmp_path, [x]), "-o", tmp_path / "out")
    _, layers = loaded(tmp_path / "out")
    layer = layers[("conv_0", 0)]
    reference = ort_outputs(model, {"x": np.float32(x)})["y"][0]
    check_output(layer, reference)
    from golden.layers import Layer
    flipped = Layer(kind="conv", weights=layer.weights[:, :, ::-1, ::-1],
                    activations=layer.activations, padding=layer.padding,
                    weight_bits=8, act_bits=8, act_signed=True,
                    weight_scale=layer.weight_scale, act_scale=layer.act_scale)
    with pytest.raises(AssertionError, match="max excess"):
        check_output(flipped, reference)


@pytest.mark.parametrize("shared", [False, True])
def test_conv_batchnorm(tmp_path, shared):
    """BN after a conv is folded (before quantization) unless the conv output is shared."""
    rng = np.random.default_rng(11)
    c, k = 3, 5
    w = rng.normal(size=(k, c, 3, 3)).astype(np.float32)
    b = rng.normal(size=k).astype(np.float32)
    gamma, beta = rng.normal(size=k) * 2, rng.normal(size=k)
    mean, var = rng.normal(size=k), rng.random(k) + 0.5
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "gamma", "beta", "mean", "var"],
                              ["n"], epsilon=1e-3),
             helper.make_node("Relu", ["n"], ["y"])]
    outputs = ["y", "n"]
    if shared:
        nodes.append(helper.make_node("Sigmoid", ["c"], ["side"]))
        outputs.append("side")
    model = save_model(tmp_path / "m.onnx", nodes, [tensor("x", [1, c, 7, 7])], outputs,
                       {"w": w, "b": b, "gamma": gamma, "beta": beta, "mean": mean, "var": var})
    x = rng.normal(size=(1, c, 7, 7))
    cli_import(model, "--input", *save_inputs(tmp_path, [x]), "-o", tmp_path / "out")
    manifest, layers = loaded(tmp_path / "out")
    layer = layers[("conv", 0)]
    ref = ort_outputs(model, {"x": np.float32(x)})
    factor = gamma / np.sqrt(var + 1e-3)
    if shared:
        assert manifest["layers"][0]["op_type"] == "Conv"
        conv_ref = conv_float(w.astype(np.float64), np.float64(x[0]), (1, 1), (1, 1, 1, 1), 1)
        check_output(layer, conv_ref + b[:, None, None], bias=b)
        check_quantization(layer, w, np.float32(x), 8, False)
    else:
        assert manifest["layers"][0]["op_type"] == "Conv+BatchNormalization"
        folded_bias = (b - mean) * factor + beta
        check_output(layer, ref["n"][0], bias=folded_bias, abs_tol=1e-5)
        check_quantization(layer, w * factor[:, None, None, None], np.float32(x), 8, False)
        assert np.allclose(layer.extra["bias"], folded_bias)


@pytest.mark.parametrize("auto_pad,kernel", [("SAME_UPPER", 3), ("SAME_LOWER", 4),
                                             ("VALID", 3), ("NOTSET", 3)])
def test_depthwise_and_grouped(tmp_path, auto_pad, kernel):
    rng = np.random.default_rng(kernel)
    c = 4
    dw = rng.normal(size=(c, 1, kernel, kernel)).astype(np.float32)
    gw = rng.normal(size=(6, 2, 1, 1)).astype(np.float32)
    attrs = dict(auto_pad=auto_pad) if auto_pad != "NOTSET" else dict(pads=[2, 0, 1, 1])
    nodes = [helper.make_node("Conv", ["x", "dw"], ["d"], name="dw", group=c, strides=[2, 2],
                              kernel_shape=[kernel, kernel], **attrs),
             helper.make_node("Conv", ["d", "gw"], ["y"], name="grouped", group=2)]
    model = save_model(tmp_path / "m.onnx", nodes, [tensor("x", [1, c, 9, 10])], ["y", "d"],
                       {"dw": dw, "gw": gw})
    x = rng.normal(size=(1, c, 9, 10))
    cli_import(model, "--input", *save_inputs(tmp_path, [x]), "-o", tmp_path / "out",
               "--per-channel")
    manifest, layers = loaded(tmp_path / "out")
    ref = ort_outputs(model, {"x": np.float32(x)})
    assert layers[("dw", 0)].groups == c and layers[("grouped", 0)].groups == 2
    check_output(layers[("dw", 0)], ref["d"][0])
    check_output(layers[("grouped", 0)], ref["y"][0])
    entries = manifest["layers"]
    assert entries[0]["output_shape"] == list(ref["d"].shape[1:])
    assert [e["macs"] for e in entries] == [macs(dw.shape, ref["d"].shape),
                                            macs(gw.shape, ref["y"].shape)]


def test_gemm_matmul_and_constant_weights(tmp_path):
    """Gemm transB=1 with alpha/beta, MatMul [C, K], Gemm transB=0 behind Identity, transA."""
    rng = np.random.default_rng(21)
    g1 = rng.normal(size=(10, 32)).astype(np.float32)
    c1 = rng.normal(size=10).astype(np.float32)
    m2 = rng.normal(size=(10, 7)).astype(np.float32)
    g3 = rng.normal(size=(7, 3)).astype(np.float32)
    g4 = rng.normal(size=(4, 3)).astype(np.float32)
    nodes = [helper.make_node("Flatten", ["x"], ["f"]),
             helper.make_node("Gemm", ["f", "g1", "c1"], ["h1"], name="fc1", transB=1,
                              alpha=0.5, beta=2.0),
             helper.make_node("Relu", ["h1"], ["r1"]),
             helper.make_node("Constant", [], ["m2c"], value=numpy_helper.from_array(m2)),
             helper.make_node("Identity", ["m2c"], ["m2i"]),
             helper.make_node("MatMul", ["r1", "m2i"], ["h2"], name="fc2"),
             helper.make_node("Identity", ["g3"], ["g3i"]),
             helper.make_node("Gemm", ["h2", "g3i"], ["h3"], name="fc3"),
             helper.make_node("Transpose", ["h3"], ["t3"], perm=[1, 0]),
             helper.make_node("Gemm", ["t3", "g4"], ["y"], name="fc4", transA=1, transB=1)]
    model = save_model(tmp_path / "m.onnx", nodes, [tensor("x", [1, 2, 4, 4])],
                       ["y", "f", "h1", "r1", "h2", "h3"], {"g1": g1, "c1": c1, "g3": g3, "g4": g4})
    images = [rng.normal(size=(1, 2, 4, 4)) for _ in range(3)]
    inputs = save_inputs(tmp_path, images)
    cli_import(model, "--input", *inputs, "-o", tmp_path / "out", "--bits", 16)
    refs = [ort_outputs(model, {"x": np.float32(x)}) for x in images]
    capture = import_onnx(model, inputs)
    fc1, fc2, fc3, fc4 = capture.layers
    assert np.array_equal(fc1.activations, np.stack([r["f"][0] for r in refs]))
    assert np.array_equal(fc2.activations, np.stack([r["r1"][0] for r in refs]))
    assert np.array_equal(fc4.activations, np.stack([r["h3"][0] for r in refs]))
    manifest, layers = loaded(tmp_path / "out")
    assert [(e["name"], e["kind"], e["weights_shape"], e["macs"]) for e in manifest["layers"]] \
        == [("fc1", "fc", [10, 32], 320), ("fc2", "fc", [7, 10], 70),
            ("fc3", "fc", [3, 7], 21), ("fc4", "fc", [4, 3], 12)]
    for j, ref in enumerate(refs):
        check_output(layers[("fc1", j)], ref["h1"][0], bias=2.0 * c1)
        check_output(layers[("fc2", j)], ref["h2"][0])
        check_output(layers[("fc3", j)], ref["h3"][0])
        check_output(layers[("fc4", j)], ref["y"][0])
    check_quantization(layers[("fc1", 0)], 0.5 * g1, fc1.activations, 16, False)
    check_quantization(layers[("fc2", 0)], m2.T, fc2.activations, 16, False)
    check_quantization(layers[("fc3", 0)], g3.T, fc3.activations, 16, False)


def test_matmul_rows_become_1x1_conv(tmp_path):
    rng = np.random.default_rng(4)
    b = rng.normal(size=(6, 4)).astype(np.float32)
    model = save_model(tmp_path / "m.onnx", [helper.make_node("MatMul", ["x", "b"], ["y"],
                                                              name="proj")],
                       [tensor("x", [1, 5, 6])], ["y"], {"b": b})
    x = rng.normal(size=(1, 5, 6))
    cli_import(model, "--input", *save_inputs(tmp_path, [x]), "-o", tmp_path / "out")
    manifest, layers = loaded(tmp_path / "out")
    layer = layers[("proj", 0)]
    assert layer.kind == "conv" and layer.weights.shape == (4, 6, 1, 1)
    assert layer.activations.shape == (6, 5, 1)
    y = ort_outputs(model, {"x": np.float32(x)})["y"][0]  # [5, 4] rows x outputs
    check_output(layer, y.T[:, :, None])
    assert manifest["layers"][0]["macs"] == 5 * 4 * 6


# ---------------------------------------------------------------------------------- inputs

def conv_model(tmp_path, shape, layout="nchw", name="m"):
    """A 1x1 identity-like conv whose captured input is exactly the model input."""
    c = shape[1] if layout == "nchw" else shape[3]
    w = np.ones((1, c, 1, 1), np.float32)
    nodes = [helper.make_node("Conv", ["xc", "w"], ["y"], name="conv")]
    if layout == "nhwc":
        nodes.insert(0, helper.make_node("Transpose", ["x"], ["xc"], perm=[0, 3, 1, 2]))
    else:
        nodes.insert(0, helper.make_node("Identity", ["x"], ["xc"]))
    return save_model(tmp_path / f"{name}.onnx", nodes, [tensor("x", shape)], ["y"], {"w": w})


def save_png(path, pixels):
    from PIL import Image

    Image.fromarray(pixels).save(path)
    return str(path)


def test_png_exact_size_and_range(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, size=(6, 7, 3), endpoint=True).astype(np.uint8)
    model = conv_model(tmp_path, [1, 3, 6, 7])
    png = save_png(tmp_path / "p.png", pixels)
    capture = import_onnx(model, [png], input_range=(-1.0, 1.0))
    expected = (pixels / 255.0 * 2 - 1).transpose(2, 0, 1)
    assert np.allclose(capture.layers[0].activations[0], expected, atol=1e-6)
    cli_import(model, "--input", png, "--input-range=-1,1", "-o", tmp_path / "out")
    manifest, _ = loaded(tmp_path / "out")
    assert manifest["extra"]["input"]["input_range"] == [-1.0, 1.0]


def test_image_resize_matches_onnxruntime_resize(tmp_path):
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 255, size=(9, 13, 3), endpoint=True).astype(np.uint8)
    png = save_png(tmp_path / "p.png", pixels)
    for size in ((5, 6), (16, 20)):  # down and up
        model = conv_model(tmp_path, [1, 3, *size])
        captured = import_onnx(model, [png]).layers[0].activations[0]
        resize = helper.make_node("Resize", ["img", "", "", "sizes"], ["out"], mode="linear",
                                  coordinate_transformation_mode="half_pixel")
        graph = helper.make_graph([resize], "r", [tensor("img", [1, 3, 9, 13])],
                                  [tensor("out")], [numpy_helper.from_array(
                                      np.array([1, 3, *size], np.int64), "sizes")])
        session = onnxruntime.InferenceSession(
            helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
            .SerializeToString(), providers=["CPUExecutionProvider"])
        (reference,) = session.run(None, {"img": (pixels / 255.0).transpose(2, 0, 1)[None]
                                          .astype(np.float32)})
        assert np.allclose(captured, reference[0], atol=1e-5)


def test_image_channels_and_nhwc(tmp_path):
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 255, size=(4, 5, 3), endpoint=True).astype(np.uint8)
    gray = rng.integers(0, 255, size=(4, 5), endpoint=True).astype(np.uint8)
    rgba = np.dstack([rgb, np.full((4, 5), 77, np.uint8)])
    model1 = conv_model(tmp_path, [1, 1, 4, 5])
    acts = import_onnx(model1, [save_png(tmp_path / "rgb.png", rgb)]).layers[0].activations
    luma = rgb @ np.array([0.299, 0.587, 0.114]) / 255.0
    assert np.allclose(acts[0, 0], luma, atol=1e-6)
    model3 = conv_model(tmp_path, [1, 4, 5, 3], layout="nhwc")
    captured = import_onnx(model3, [save_png(tmp_path / "gray.png", gray),
                                    save_png(tmp_path / "rgba.png", rgba)],
                           layout="nhwc").layers[0].activations
    assert np.allclose(captured[0], np.repeat(gray[None] / 255.0, 3, axis=0), atol=1e-6)
    assert np.allclose(captured[1], rgb.transpose(2, 0, 1) / 255.0, atol=1e-6)


def test_jpeg_input(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 255, size=(8, 8, 3), endpoint=True).astype(np.uint8)
    path = tmp_path / "p.jpg"
    Image.fromarray(pixels).save(path, quality=95)
    decoded = np.asarray(Image.open(path).convert("RGB")) / 255.0
    model = conv_model(tmp_path, [1, 3, 8, 8])
    acts = import_onnx(model, [str(path)]).layers[0].activations[0]
    assert np.allclose(acts, decoded.transpose(2, 0, 1), atol=1e-6)


# ---------------------------------------------------------------------------------- errors

def expect_error(pattern, *argv, error=ValueError):
    with pytest.raises(error, match=pattern):
        cli_import(*argv)


def test_unsupported_nodes(tmp_path):
    rng = np.random.default_rng(9)
    w = rng.normal(size=(2, 2, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("ConvTranspose", ["c", "w"], ["y"], name="deconv")]
    model = save_model(tmp_path / "m.onnx", nodes, [tensor("x", [1, 2, 5, 5])], ["y", "c"],
                       {"w": w})
    inputs = save_inputs(tmp_path, [rng.normal(size=(1, 2, 5, 5))])
    path = re.escape(model)
    expect_error(rf"^{path}: node 'deconv' \(ConvTranspose\): transposed convolution is not "
                 r"supported by the layer file format; rerun with --skip-unsupported to import "
                 r"the other layers$", model, "--input", *inputs, "-o", tmp_path / "a")
    cli_import(model, "--input", *inputs, "-o", tmp_path / "b", "--skip-unsupported")
    manifest, _ = loaded(tmp_path / "b")
    assert [e["name"] for e in manifest["layers"]] == ["conv"]
    assert manifest["extra"]["skipped"] == [{"name": "deconv", "op_type": "ConvTranspose",
                                             "reason": "transposed convolution is not supported "
                                                       "by the layer file format"}]

    dilated = save_model(tmp_path / "d.onnx", [helper.make_node(
        "Conv", ["x", "w"], ["y"], name="dil", dilations=[2, 2])], [tensor("x", [1, 2, 5, 5])],
        ["y"], {"w": w})
    expect_error(r"node 'dil' \(Conv\): dilated convolution \(dilations \[2, 2\]\) is not "
                 r"supported by the layer file format;", dilated, "-i", *inputs, "-o",
                 tmp_path / "c")
    computed = save_model(tmp_path / "e.onnx", [
        helper.make_node("Relu", ["w"], ["wr"]),
        helper.make_node("Conv", ["x", "wr"], ["y"], name="dyn")], [tensor("x", [1, 2, 5, 5])],
        ["y"], {"w": w})
    expect_error(r"node 'dyn' \(Conv\): the weights are not a constant tensor;", computed,
                 "-i", *inputs, "-o", tmp_path / "d")
    attention = save_model(tmp_path / "f.onnx", [
        helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["x", "xt"], ["y"], name="qk")], [tensor("x", [1, 3, 4])],
        ["y"])
    att_in = save_inputs(tmp_path, [rng.normal(size=(1, 3, 4))])
    expect_error(r"node 'qk' \(MatMul\): the second operand is not a constant tensor",
                 attention, "-i", *att_in, "-o", tmp_path / "e")


def test_bad_models_and_inputs(tmp_path):
    rng = np.random.default_rng(8)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\xffnot a protobuf" * 10)
    npy = save_inputs(tmp_path, [rng.normal(size=(1, 2, 5, 5))])
    expect_error(rf"^{re.escape(str(garbage))}: not a valid ONNX model", garbage, "-i", *npy,
                 "-o", tmp_path / "a")
    expect_error(r"^missing\.onnx: no such model file$", "missing.onnx", "-o", tmp_path / "a",
                 error=UsageError)
    relu = save_model(tmp_path / "relu.onnx", [helper.make_node("Relu", ["x"], ["y"])],
                      [tensor("x", [1, 2, 5, 5])], ["y"])
    expect_error(r": no Conv/Gemm/MatMul layers with constant weights found$", relu, "-i",
                 *npy, "-o", tmp_path / "a")
    w = np.ones((1, 2, 1, 1), np.float32)
    two = save_model(tmp_path / "two.onnx", [helper.make_node("Conv", ["x", "w"], ["c"]),
                                             helper.make_node("Add", ["c", "z"], ["y"])],
                     [tensor("x", [1, 2, 5, 5]), tensor("z", [1, 1, 5, 5])], ["y"], {"w": w})
    expect_error(r": the model has 2 inputs; Effectual imports models with exactly one$", two,
                 "-i", *npy, "-o", tmp_path / "a")
    conv = conv_model(tmp_path, [1, 2, 5, 5])
    wrong = save_inputs(tmp_path, [rng.normal(size=(1, 2, 5, 6))], prefix="wrong")
    expect_error(r"wrong0\.npy: tensor shape \[1, 2, 5, 6\] does not match the model input "
                 r"\[1, 2, 5, 5\]$", conv, "-i", *wrong, "-o", tmp_path / "a")
    expect_error(r"m\.onnx: ONNX import needs at least one --input image or \.npy$", conv, "-o",
                 tmp_path / "a")
    batch2 = conv_model(tmp_path, [2, 3, 4, 4], name="batch2")
    png = save_png(tmp_path / "p.png", np.zeros((4, 4, 3), np.uint8))
    expect_error(r"^the model input has batch size 2; Effectual runs one image at a time",
                 batch2, "-i", png, "-o", tmp_path / "a")
    not_image = tmp_path / "not.png"
    not_image.write_text("hello")
    expect_error(rf"^{re.escape(str(not_image))}: cannot read the image", conv_model(
        tmp_path, [1, 3, 4, 4], name="rgb"), "-i", not_image, "-o", tmp_path / "a")
    expect_error(r"^unknown model 'no-such-workload': expected an \.onnx or \.tflite file or a "
                 r"built-in workload \(", "no-such-workload", "-o", tmp_path / "a",
                 error=UsageError)
    text = tmp_path / "model.pt"
    text.write_text("x")
    expect_error(rf"^{re.escape(str(text))}: unsupported model file type '\.pt' \(expected "
                 r"\.onnx or \.tflite\)$", text, "-o", tmp_path / "a", error=UsageError)
    expect_error(r"^--skip-unsupported applies to ONNX models only$", "no-such-workload",
                 "--skip-unsupported", "-o", tmp_path / "a", error=UsageError)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "x.txt").write_text("keep")
    expect_error(r"is not empty and holds no network\.json; refusing to write a network there$",
                 conv, "-i", *npy, "-o", foreign)


def test_input_range_argument():
    parser = argparse.ArgumentParser()
    importers.add_arguments(parser)
    assert parser.parse_args(["m", "-o", "d", "--input-range=-1,1"]).input_range == (-1.0, 1.0)
    for bad in ("1", "1,0", "a,b"):
        with pytest.raises(SystemExit):
            parser.parse_args(["m", "-o", "d", f"--input-range={bad}"])


def test_written_files_are_valid_layer_files(tmp_path):
    """Every file the manifest lists loads on its own and names its image and layer."""
    rng = np.random.default_rng(6)
    model = conv_model(tmp_path, [1, 3, 5, 5])
    inputs = save_inputs(tmp_path, [rng.normal(size=(1, 3, 5, 5)) for _ in range(2)])
    cli_import(model, "-i", *inputs, "-o", tmp_path / "out")
    manifest = json.loads((tmp_path / "out" / "network.json").read_text())
    for entry in manifest["layers"]:
        for j, name in enumerate(entry["files"]):
            layer = load_layer(tmp_path / "out" / name)
            assert int(layer.extra["image"]) == j
            assert int(layer.extra["layer_index"]) == entry["index"]
            assert str(layer.extra["op_type"]) == entry["op_type"] == "Conv"


# ---------------------------------------------------------------------- --act-signedness

@pytest.mark.parametrize("bits", [8, 16])
def test_act_signedness_signed(tmp_path, bits):
    """``--act-signedness signed``: signed symmetric codes even for a ReLU output."""
    rng = np.random.default_rng(40 + bits)
    w1 = rng.normal(size=(5, 2, 3, 3)).astype(np.float32)
    w2 = rng.normal(size=(4, 5, 1, 1)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["y"], name="conv2")]
    model = save_model(tmp_path / "m.onnx", nodes, [tensor("x", [1, 2, 6, 7])], ["y", "r1"],
                       {"w1": w1, "w2": w2})
    images = [rng.normal(size=(1, 2, 6, 7)) for _ in range(3)]
    inputs = save_inputs(tmp_path, images)
    cli_import(model, "-i", *inputs, "--bits", bits, "--act-signedness", "signed",
               "-o", tmp_path / "signed")
    cli_import(model, "-i", *inputs, "--bits", bits, "-o", tmp_path / "auto")
    refs = [ort_outputs(model, {"x": np.asarray(x, np.float32)}) for x in images]
    relu = np.stack([np.float64(r["r1"][0]) for r in refs])  # conv2's input, >= 0
    assert relu.min() == 0 and relu.max() > 0

    manifest, layers = loaded(tmp_path / "signed")
    auto_manifest, auto_layers = loaded(tmp_path / "auto")
    assert manifest["act_signedness"] == "signed" and auto_manifest["act_signedness"] == "auto"
    assert [e["act_signed"] for e in manifest["layers"]] == [True, True]
    assert [e["act_signed"] for e in auto_manifest["layers"]] == [True, False]
    high = 2 ** (bits - 1) - 1
    scale = relu.max() / high  # the formula of the option, written out here
    for j in range(len(images)):
        layer, auto = layers[("conv2", j)], auto_layers[("conv2", j)]
        assert layer.act_signed and not auto.act_signed and layer.act_zero_point == 0
        assert np.isclose(layer.act_scale, scale, rtol=1e-12)
        assert np.isclose(auto.act_scale, relu.max() / (2 ** bits - 1), rtol=1e-12)
        # numpy's round is half to even, the importer's documented rounding
        assert np.array_equal(layer.activations, np.round(relu[j] / scale).astype(np.int64))
        assert layer.activations.min() == 0 and layer.activations.max() <= high
        check_output(layer, refs[j]["y"][0])
        # conv1's input is already signed: both modes give the same codes and scale
        assert np.array_equal(layers[("conv1", j)].activations,
                              auto_layers[("conv1", j)].activations)
        assert layers[("conv1", j)].act_scale == auto_layers[("conv1", j)].act_scale
        assert np.array_equal(layer.weights, auto.weights)
    # the maximum over the images maps onto the largest signed code
    assert max(layers[("conv2", j)].activations.max() for j in range(len(images))) == high


def test_act_signedness_bad_value(tmp_path, capsys):
    from effectual.cli import main
    from effectual.importers.common import Capture, write_network

    model = conv_model(tmp_path, [1, 3, 5, 5])
    inputs = save_inputs(tmp_path, [np.ones((1, 3, 5, 5))])
    out = tmp_path / "out"
    assert main(["import", model, "-i", *inputs, "--act-signedness", "unsigned",
                 "-o", str(out)]) == 2
    assert capsys.readouterr().err == ("effectual import: error: --act-signedness must be "
                                       "'auto' or 'signed', not 'unsigned'\n")
    assert not out.exists()
    capture = Capture(name="n", source="s", layers=[], images=[{"name": "a", "source": "b"}])
    with pytest.raises(ValueError, match=r"^act_signedness must be 'auto' or 'signed', "
                                         r"not 'Signed'$"):
        write_network(out, capture, bits=8, act_signedness="Signed", log=None)
    assert not out.exists()


# ---------------------------------------------------------------- --name, --input, Pad nodes

def test_name_option(tmp_path, capsys):
    """``--name`` labels the network (manifest, report); the default is the model's stem."""
    import csv

    from effectual.cli import main

    rng = np.random.default_rng(50)
    model = conv_model(tmp_path, [1, 3, 5, 5])
    inputs = save_inputs(tmp_path, [rng.normal(size=(1, 3, 5, 5))])
    cli_import(model, "-i", *inputs, "-o", tmp_path / "default")
    cli_import(model, "-i", *inputs, "--bits", 16, "--name", "m 16-bit", "-o", tmp_path / "named")
    assert loaded(tmp_path / "default")[0]["name"] == "m"
    assert loaded(tmp_path / "named")[0]["name"] == "m 16-bit"
    out = tmp_path / "report"
    assert main(["report", str(tmp_path / "default"), str(tmp_path / "named"), "-o",
                 str(out)]) == 0
    with open(out / "networks.csv", newline="") as handle:
        assert [(row["network"], row["bits"]) for row in csv.DictReader(handle)] == \
            [("m", "8"), ("m 16-bit", "16")]
    assert (out / "m.png").is_file() and (out / "m_16-bit.png").is_file()
    capsys.readouterr()
    for bad in ("", " m", "m "):
        assert main(["import", model, "-i", *inputs, "--name", bad, "-o",
                     str(tmp_path / "bad")]) == 2
        assert capsys.readouterr().err == (f"effectual import: error: --name must be a "
                                           f"non-empty name without leading or trailing "
                                           f"spaces, not {bad!r}\n")
    assert not (tmp_path / "bad").exists()


def test_input_help_says_model_comes_first(capsys):
    parser = argparse.ArgumentParser()
    importers.add_arguments(parser)
    help_text = " ".join(parser.format_help().split())
    assert ("--input takes every argument up to the next option, so give MODEL first: "
            "effectual import MODEL --input A B -o DIR") in help_text
    args = parser.parse_args(["m.onnx", "--input", "a.npy", "b.npy", "-o", "q"])
    assert (args.model, args.inputs, args.output) == ("m.onnx", ["a.npy", "b.npy"], "q")
    # the order the help warns about: MODEL is taken as one more input
    with pytest.raises(SystemExit):
        parser.parse_args(["--input", "a.npy", "b.npy", "m.onnx", "-o", "q"])
    assert "the following arguments are required: MODEL" in capsys.readouterr().err


def _pad_models(tmp_path, w1, w2, shape):
    """The same two-conv network twice: padding as Pad nodes (one behind an Identity), and as
    the convs' ``pads``. Conv1 pads top 1, left 2, bottom 2, right 1; conv2 pads 1 all round."""
    inits = [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2"),
             numpy_helper.from_array(np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64), "p1"),
             numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "p2")]
    by_op = [helper.make_node("Pad", ["x", "p1"], ["xp"]),
             helper.make_node("Identity", ["xp"], ["xpi"]),
             helper.make_node("Conv", ["xpi", "w1"], ["c1"], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Pad", ["r1", "p2"], ["rp"]),
             helper.make_node("Conv", ["rp", "w2"], ["y"], name="conv2")]
    on_conv = [helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 2, 2, 1]),
               helper.make_node("Relu", ["c1"], ["r1"]),
               helper.make_node("Conv", ["r1", "w2"], ["y"], name="conv2", pads=[1, 1, 1, 1])]
    paths = []
    for name, nodes, outputs in (("by_op", by_op, ["y", "xp", "rp"]),
                                 ("on_conv", on_conv, ["y", "r1"])):
        graph = helper.make_graph(nodes, name, [tensor("x", shape)],
                                  [tensor(o) for o in outputs], inits[:2] + (
                                      inits[2:] if name == "by_op" else []))
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        onnx.save(model, str(tmp_path / f"{name}.onnx"))
        paths.append(str(tmp_path / f"{name}.onnx"))
    return paths


def test_pad_node_before_conv(tmp_path):
    """A Pad node's output is captured as it is and flagged; stats count its border zeros."""
    from golden.designs import DESIGNS
    from golden.stats import layer_stats

    rng = np.random.default_rng(51)
    w1 = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    w2 = rng.normal(size=(5, 4, 3, 3)).astype(np.float32)
    shape = [1, 3, 6, 7]
    by_op, on_conv = _pad_models(tmp_path, w1, w2, shape)
    images = [rng.normal(size=shape) for _ in range(2)]
    inputs = save_inputs(tmp_path, images)
    cli_import(by_op, "-i", *inputs, "-o", tmp_path / "a")
    cli_import(on_conv, "-i", *inputs, "-o", tmp_path / "b")
    manifest_a, layers_a = loaded(tmp_path / "a")
    manifest_b, layers_b = loaded(tmp_path / "b")
    assert [e["input_padded_by_op"] for e in manifest_a["layers"]] == [True, True]
    assert [e["input_padded_by_op"] for e in manifest_b["layers"]] == [False, False]
    assert bool(layers_a[("conv1", 0)].extra["input_padded_by_op"]) is True
    assert [e["padding"] for e in manifest_a["layers"]] == [[0, 0, 0, 0]] * 2
    assert [e["padding"] for e in manifest_b["layers"]] == [[1, 2, 2, 1], [1, 1, 1, 1]]
    assert [e["macs"] for e in manifest_a["layers"]] == [e["macs"] for e in manifest_b["layers"]]

    # the captured values are the graph's own Pad outputs, unchanged
    capture = import_onnx(by_op, inputs)
    assert [layer.input_padded_by_op for layer in capture.layers] == [True, True]
    refs = [ort_outputs(by_op, {"x": np.float32(x)}) for x in images]
    assert np.array_equal(capture.layers[0].activations, np.stack([r["xp"][0] for r in refs]))
    assert np.array_equal(capture.layers[1].activations, np.stack([r["rp"][0] for r in refs]))
    assert not any(layer.input_padded_by_op for layer in import_onnx(on_conv, inputs).layers)

    for j, ref in enumerate(refs):
        check_output(layers_a[("conv2", j)], ref["y"][0])
        a, b = layers_a[("conv1", j)], layers_b[("conv1", j)]
        # same scale, so the codes are the conv's input codes with a border of zero codes
        assert a.act_scale == b.act_scale
        assert np.array_equal(a.activations, np.pad(b.activations, ((0, 0), (1, 2), (2, 1))))
        assert np.array_equal(layer_output(a), layer_output(b))
        stats_a, stats_b = layer_stats(a), layer_stats(b)
        # work, potentials and design cycles are the same; the stored-value statistics are not
        assert stats_a["work"] == stats_b["work"]
        assert stats_a["potentials"] == stats_b["potentials"]
        assert {n: d.cycles(a) for n, d in DESIGNS.items()} == \
            {n: d.cycles(b) for n, d in DESIGNS.items()}
        border = a.activations.size - b.activations.size
        zeros_b = int(np.count_nonzero(b.activations == 0))
        assert stats_b["stats"]["zero_acts"] == zeros_b / b.activations.size
        assert stats_a["stats"]["zero_acts"] == (zeros_b + border) / a.activations.size
        assert stats_a["stats"]["zero_acts"] > stats_b["stats"]["zero_acts"]
