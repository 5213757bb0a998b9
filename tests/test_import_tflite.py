"""TFLite import: layout conversion, padding, and the golden layer output vs the interpreter.

Two models: a tiny one built here with the TFLite flatbuffer schema (asymmetric SAME padding,
stride 2, a depthwise conv with multiplier 2 and fused ReLU behind an fp16 DEQUANTIZE, an FC whose
int8 weights sit behind DEQUANTIZE, an FC applied to every pixel), whose layouts are checked
element by element against the TFLite arrays, and MediaPipe BlazeFace short range from the
mediapipe wheel on a real photo. In both, every captured layer is quantized by
``write_network``; its exact golden output (``golden.layers.layer_output``), dequantized and with
the bias added, must match the tensor the TFLite interpreter itself computed for that op within a
bound derived from the quantization step sizes (independent float convolution below). Needs the
workloads extra (skipped without it).
"""

import importlib.util

import numpy as np
import pytest

litert = pytest.importorskip("ai_edge_litert.interpreter")
schema = pytest.importorskip("ai_edge_litert.schema_py_generated")
flatbuffers = pytest.importorskip("flatbuffers")

from effectual.cli import UsageError  # noqa: E402
from effectual.importers import tflite_import  # noqa: E402
from effectual.importers.common import write_network  # noqa: E402
from golden.layers import layer_output, load_network  # noqa: E402


def _interpreter(path):
    it = litert.Interpreter(
        model_path=str(path), experimental_preserve_all_tensors=True,
        experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    return it


# --- a tiny model built from the schema ---------------------------------------------------------

RNG = np.random.default_rng(2024)
TINY_INPUT = (1, 5, 6, 3)                                        # NHWC
CONV_W = RNG.normal(size=(4, 2, 3, 3)).astype(np.float32)        # OHWI: K=4, R=2, S=3, C=3
CONV_B = RNG.normal(size=4).astype(np.float32)
DW_W16 = RNG.normal(size=(1, 3, 3, 8)).astype(np.float16)        # [1, R, S, C*M], C=4, M=2
DW_B = RNG.normal(size=8).astype(np.float32)
FC_Q = RNG.integers(-127, 128, size=(5, 72)).astype(np.int8)     # [K, C], dequantized * FC_SCALE
FC_SCALE = 0.01
FC_B = RNG.normal(size=5).astype(np.float32)
ROWS_W = RNG.normal(size=(3, 8)).astype(np.float32)              # FC applied to every pixel
ROWS_B = RNG.normal(size=3).astype(np.float32)


def _build_tiny(path, *, dilation=1):
    """Write the tiny model; return its path."""
    model = schema.ModelT()
    model.version = 3
    model.buffers = [schema.BufferT()]
    model.operatorCodes = []
    codes = {}
    tensors = []

    def tensor(name, shape, kind, data=None, scale=None):
        t = schema.TensorT()
        t.name, t.shape, t.type = name.encode(), np.array(shape, dtype=np.int32), kind
        t.buffer = 0
        if data is not None:
            buf = schema.BufferT()
            buf.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8)
            model.buffers.append(buf)
            t.buffer = len(model.buffers) - 1
        if scale is not None:
            q = schema.QuantizationParametersT()
            q.scale, q.zeroPoint = np.array([scale], np.float32), np.array([0], np.int64)
            t.quantization = q
        tensors.append(t)
        return len(tensors) - 1

    def op(name, inputs, outputs, options_type=0, options=None):
        if name not in codes:
            code = schema.OperatorCodeT()
            number = getattr(schema.BuiltinOperator, name)
            code.builtinCode, code.deprecatedBuiltinCode, code.version = number, number, 1
            model.operatorCodes.append(code)
            codes[name] = len(model.operatorCodes) - 1
        o = schema.OperatorT()
        o.opcodeIndex = codes[name]
        o.inputs, o.outputs = np.array(inputs, np.int32), np.array(outputs, np.int32)
        o.builtinOptionsType, o.builtinOptions = options_type, options
        return o

    f32 = schema.TensorType.FLOAT32
    x = tensor("input", TINY_INPUT, f32)
    cw = tensor("conv/weights", CONV_W.shape, f32, CONV_W)
    cb = tensor("conv/bias", CONV_B.shape, f32, CONV_B)
    cy = tensor("conv/out", (1, 3, 3, 4), f32)
    dw16 = tensor("dw/weights_fp16", DW_W16.shape, schema.TensorType.FLOAT16, DW_W16)
    dw = tensor("dw/weights", DW_W16.shape, f32)
    db = tensor("dw/bias", DW_B.shape, f32, DW_B)
    dy = tensor("dw/out", (1, 3, 3, 8), f32)
    fq = tensor("fc/weights_int8", FC_Q.shape, schema.TensorType.INT8, FC_Q, FC_SCALE)
    fw = tensor("fc/weights", FC_Q.shape, f32)
    fb = tensor("fc/bias", FC_B.shape, f32, FC_B)
    fy = tensor("fc/out", (1, 5), f32)
    rw = tensor("rows/weights", ROWS_W.shape, f32, ROWS_W)
    rb = tensor("rows/bias", ROWS_B.shape, f32, ROWS_B)
    ry = tensor("rows/out", (1, 3, 3, 3), f32)
    conv = schema.Conv2DOptionsT()
    conv.padding, conv.strideH, conv.strideW = schema.Padding.SAME, 2, 2
    depthwise = schema.DepthwiseConv2DOptionsT()
    depthwise.padding, depthwise.strideH, depthwise.strideW = schema.Padding.SAME, 1, 1
    depthwise.depthMultiplier = 2
    depthwise.fusedActivationFunction = schema.ActivationFunctionType.RELU
    depthwise.dilationHFactor = depthwise.dilationWFactor = dilation
    fc = schema.FullyConnectedOptionsT()
    rows = schema.FullyConnectedOptionsT()
    rows.keepNumDims = True
    graph = schema.SubGraphT()
    graph.tensors, graph.inputs, graph.outputs = tensors, np.array([x], np.int32), \
        np.array([fy, ry], np.int32)
    graph.operators = [
        op("CONV_2D", [x, cw, cb], [cy], schema.BuiltinOptions.Conv2DOptions, conv),
        op("DEQUANTIZE", [dw16], [dw]),
        op("DEPTHWISE_CONV_2D", [cy, dw, db], [dy],
           schema.BuiltinOptions.DepthwiseConv2DOptions, depthwise),
        op("DEQUANTIZE", [fq], [fw]),
        op("FULLY_CONNECTED", [dy, fw, fb], [fy], schema.BuiltinOptions.FullyConnectedOptions,
           fc),
        op("FULLY_CONNECTED", [dy, rw, rb], [ry], schema.BuiltinOptions.FullyConnectedOptions,
           rows),
    ]
    model.subgraphs = [graph]
    builder = flatbuffers.Builder(4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return _build_tiny(tmp_path_factory.mktemp("tiny") / "tiny.tflite")


def _tiny_images():
    rng = np.random.default_rng(7)
    return [rng.uniform(-1, 1, size=TINY_INPUT).astype(np.float32) for _ in range(2)]


def test_tflite_padding_rule():
    # SAME: ceil(in/stride) outputs with the least total padding, the odd element after;
    # the least padding is found by search here, exhaustively over small sizes.
    for in_size in range(1, 40):
        for kernel in range(1, 8):
            for stride in range(1, 5):
                before, after = tflite_import.tflite_padding(
                    "SAME", in_size=in_size, kernel=kernel, stride=stride)
                out = -(-in_size // stride)
                least = next(t for t in range(kernel + stride) if in_size + t >= kernel
                             and (in_size + t - kernel) // stride >= out - 1)
                assert (before + after, before) == (least, least // 2)
                assert (in_size + least - kernel) // stride + 1 == out
                assert tflite_import.tflite_padding(
                    "VALID", in_size=in_size, kernel=kernel, stride=stride) == (0, 0)
    with pytest.raises(ValueError, match=r"^padding must be SAME or VALID, not 'FULL'$"):
        tflite_import.tflite_padding("FULL", in_size=4, kernel=3, stride=1)


def test_tiny_layouts(tiny):
    images = _tiny_images()
    capture = tflite_import.capture_tflite(
        tiny, images, image_info=[{"name": f"r{i}", "source": "rng"} for i in range(2)])
    conv, dw, fc, rows = capture.layers
    assert [layer.kind for layer in capture.layers] == ["conv", "conv", "fc", "conv"]
    assert [layer.op_type for layer in capture.layers] == \
        ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "FULLY_CONNECTED"]
    assert [layer.name for layer in capture.layers] == \
        ["conv/out", "dw/out", "fc/out", "rows/out"]
    # conv: SAME, in 5x6, kernel 2x3, stride 2 -> rows (0, 1), cols (0, 1) (extra pad after)
    assert (conv.stride, conv.padding, conv.groups) == ((2, 2), (0, 1, 0, 1), 1)
    assert (dw.stride, dw.padding, dw.groups) == ((1, 1), (1, 1, 1, 1), 4)
    assert conv.weights.shape == (4, 3, 2, 3) and dw.weights.shape == (8, 1, 3, 3)
    assert fc.weights.shape == (5, 72)
    # FC over [1, 3, 3, 8] with keep_num_dims: a 1x1 conv over the 9 pixels as [C=8, 9, 1]
    assert (rows.weights.shape, rows.stride, rows.padding) == ((3, 8, 1, 1), (1, 1), (0, 0, 0, 0))
    np.testing.assert_array_equal(rows.weights[:, :, 0, 0], ROWS_W)
    for k in range(4):
        for c in range(3):
            for r in range(2):
                for s in range(3):
                    assert conv.weights[k, c, r, s] == CONV_W[k, r, s, c]
    for c in range(4):
        for m in range(2):
            for r in range(3):
                for s in range(3):
                    assert dw.weights[c * 2 + m, 0, r, s] == np.float32(DW_W16[0, r, s, c * 2 + m])
    np.testing.assert_array_equal(fc.weights, FC_Q.astype(np.float32) * np.float32(FC_SCALE))
    np.testing.assert_array_equal(conv.bias, CONV_B)
    # activations: NHWC [1, H, W, C] -> [C, H, W], stacked over the images
    assert conv.activations.shape == (2, 3, 5, 6)
    for n in range(2):
        for c in range(3):
            for h in range(5):
                for w in range(6):
                    assert conv.activations[n, c, h, w] == images[n][0, h, w, c]
    it = _interpreter(tiny)
    it.set_tensor(it.get_input_details()[0]["index"], images[1])
    it.invoke()
    names = {d["name"]: d["index"] for d in it.get_tensor_details()}
    np.testing.assert_array_equal(dw.activations[1], it.get_tensor(names["conv/out"])[0]
                                  .transpose(2, 0, 1))
    np.testing.assert_array_equal(fc.activations[1], it.get_tensor(names["dw/out"]).reshape(-1))
    dw_out = it.get_tensor(names["dw/out"])[0]
    assert rows.activations.shape == (2, 8, 9, 1)
    for pixel in range(9):
        np.testing.assert_array_equal(rows.activations[1, :, pixel, 0],
                                      dw_out[pixel // 3, pixel % 3])


def _float_conv(acts, weights, *, stride, padding, groups):
    """Naive float64 conv, NCHW/OIHW, zero padding (the test's independent reference)."""
    top, bottom, left, right = padding
    padded = np.pad(acts, ((0, 0), (top, bottom), (left, right)))
    k, cg, r, s = weights.shape
    windows = np.lib.stride_tricks.sliding_window_view(padded, (r, s), axis=(1, 2))
    windows = windows[:, ::stride[0], ::stride[1]]                  # [C, OH, OW, R, S]
    out = np.empty((k,) + windows.shape[1:3])
    per_group = k // groups
    for g in range(groups):
        part = windows[g * cg:(g + 1) * cg]
        out[g * per_group:(g + 1) * per_group] = np.einsum(
            "chwrs,kcrs->khw", part, weights[g * per_group:(g + 1) * per_group])
    return out


def _check_against_interpreter(capture, out_dir, outputs, *, bits, fused_relu=()):
    """Golden output of every written layer, dequantized, vs the interpreter's op outputs."""
    write_network(out_dir, capture, bits=bits, log=None)
    manifest, layers = load_network(out_dir)
    captured = {layer.name: layer for layer in capture.layers}
    checked = 0
    for entry, image, layer in layers:
        source = captured[entry["name"]]
        weights = np.asarray(layer.weight_scale) * layer.weights.astype(np.float64)
        exact = layer_output(layer).astype(np.float64)
        a = source.activations[image].astype(np.float64)
        w = source.weights.astype(np.float64)
        if layer.kind == "fc":
            got = exact * layer.act_scale * layer.weight_scale
            spread = np.abs(a).sum() * np.ones(len(w))
            magnitude = np.abs(w) @ np.abs(a)
            wsum = np.abs(weights).sum(axis=1)
        else:
            scale = np.reshape(layer.weight_scale, (-1, 1, 1))
            got = exact * layer.act_scale * scale
            conv = dict(stride=layer.stride, padding=layer.padding, groups=layer.groups)
            spread = _float_conv(np.abs(a), np.ones_like(w), **conv)
            magnitude = _float_conv(np.abs(a), np.abs(w), **conv)
            wsum = _float_conv(np.ones_like(a), np.abs(weights), **conv)
        bias = source.bias.reshape((-1,) + (1,) * (got.ndim - 1))
        got = got + bias
        if entry["name"] in fused_relu:
            got = np.maximum(got, 0)
        want = outputs[image][entry["name"]].astype(np.float64)
        # |sum a*w - sa*sw*sum qa*qw| <= sw/2 * sum|a| + sa/2 * sum|sw*qw| (+ fp32 accumulation)
        bound = (np.max(layer.weight_scale) / 2 * spread + layer.act_scale / 2 * wsum
                 + 1e-5 * magnitude + 1e-6)
        assert got.shape == want.shape, entry["name"]
        assert np.all(np.abs(got - want) <= bound), (entry["name"], np.max(np.abs(got - want)))
        checked += 1
    return manifest, checked


def _op_outputs(path, images, names, *, per_row=()):
    it = _interpreter(path)
    index = {d["name"].split(";")[-1]: d["index"] for d in it.get_tensor_details()}
    outputs = []
    for image in images:
        it.set_tensor(it.get_input_details()[0]["index"], image)
        it.invoke()
        outputs.append({})
        for name in names:
            value = it.get_tensor(index[name])[0]
            if name in per_row:                        # [H, W, K] -> [K, H*W, 1]
                value = value.reshape(-1, value.shape[-1]).T[:, :, None]
            elif value.ndim == 3:
                value = value.transpose(2, 0, 1)
            outputs[-1][name] = value
    return outputs


@pytest.mark.parametrize("bits", [8, 16])
def test_tiny_golden_matches_interpreter(tiny, tmp_path, bits):
    images = _tiny_images()
    capture = tflite_import.capture_tflite(
        tiny, images, image_info=[{"name": f"r{i}", "source": "rng"} for i in range(2)])
    outputs = _op_outputs(tiny, images, ["conv/out", "dw/out", "fc/out", "rows/out"],
                          per_row=("rows/out",))
    manifest, checked = _check_against_interpreter(capture, tmp_path / "net", outputs,
                                                   bits=bits, fused_relu=("dw/out",))
    assert checked == 8 and manifest["bits"] == bits


def test_import_tflite_reads_image_files(tiny, tmp_path):
    import matplotlib.image
    pixels = np.random.default_rng(3).integers(0, 256, size=(10, 12, 3)).astype(np.uint8)
    matplotlib.image.imsave(tmp_path / "p.png", pixels)
    capture = tflite_import.import_tflite(tiny, [str(tmp_path / "p.png")])
    assert capture.images == [{"name": "p", "source": str(tmp_path / "p.png")}]
    acts = capture.layers[0].activations
    assert acts.shape == (1, 3, 5, 6) and acts.min() >= -1 and acts.max() <= 1
    assert capture.extra["input_range"] == [-1.0, 1.0]
    with pytest.raises(UsageError, match=r"^importing a \.tflite model needs at least one "
                                         r"--input image$"):
        tflite_import.import_tflite(tiny, [])


def test_errors(tiny, tmp_path):
    dilated = _build_tiny(tmp_path / "dilated.tflite", dilation=2)
    info = [{"name": "r0", "source": "rng"}]
    with pytest.raises(ValueError, match=r"^op 2 \(DEPTHWISE_CONV_2D\): dilated convolution "
                                         r"\(2x2\) is not supported$"):
        tflite_import.capture_tflite(dilated, _tiny_images()[:1], image_info=info)
    with pytest.raises(OSError, match=r"no such TFLite model$"):
        tflite_import.capture_tflite(tmp_path / "missing.tflite", _tiny_images()[:1],
                                     image_info=info)
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(ValueError, match=r"garbage\.tflite: not a readable TFLite model \("):
        tflite_import.capture_tflite(garbage, _tiny_images()[:1], image_info=info)
    with pytest.raises(ValueError, match=r"^input image of shape \[1, 4, 4, 3\] does not fit "
                                         r"the model input \[1, 5, 6, 3\]$"):
        tflite_import.capture_tflite(tiny, [np.zeros((1, 4, 4, 3))], image_info=info)


# --- the real model -----------------------------------------------------------------------------

def test_blazeface_short_range(tmp_path):
    pytest.importorskip("skimage")
    if importlib.util.find_spec("mediapipe") is None:  # importing it needs cv2; only files used
        pytest.skip("mediapipe is not installed (pip install --no-deps mediapipe==0.10.14)")
    from effectual import workloads
    path = workloads.mediapipe_model_path("blazeface-short")
    image = workloads.prepare_photo(workloads.load_photo("astronaut"), size=128)
    capture = tflite_import.capture_tflite(path, [image],
                                           image_info=[{"name": "astronaut", "source": "skimage"}])
    layers = capture.layers
    assert len(layers) == 37
    assert sum(layer.op_type == "DEPTHWISE_CONV_2D" for layer in layers) == 16
    first = layers[0]
    assert first.weights.shape == (24, 3, 5, 5) and first.activations.shape == (1, 3, 128, 128)
    # SAME, 128 rows, kernel 5, stride 2: 64 outputs need 3 padded rows, 1 top and 2 bottom
    assert (first.stride, first.padding) == ((2, 2), (1, 2, 1, 2))
    np.testing.assert_array_equal(first.activations[0], image[0].transpose(2, 0, 1))
    for layer in layers:
        if layer.op_type == "DEPTHWISE_CONV_2D":
            assert layer.groups == layer.activations.shape[1] == layer.weights.shape[0]
            assert layer.weights.shape[1] == 1
        else:
            assert layer.groups == 1 and layer.weights.shape[1] == layer.activations.shape[1]
    # this model runs ReLU as separate ops: every op output is the pre-activation sum + bias
    outputs = _op_outputs(path, [image], [layer.name for layer in layers])
    manifest, checked = _check_against_interpreter(capture, tmp_path / "bf", outputs, bits=8)
    assert checked == 37 and len(manifest["layers"]) == 37


# --- a PAD op before a conv ---------------------------------------------------------------------

def _build_padded(path, conv_w, paddings):
    """Input [1, 4, 5, 2] -> PAD -> CONV_2D VALID -> out1; input -> CONV_2D SAME -> out2."""
    model = schema.ModelT()
    model.version = 3
    model.buffers = [schema.BufferT()]
    tensors = []

    def tensor(name, shape, kind, data=None):
        t = schema.TensorT()
        t.name, t.shape, t.type, t.buffer = name.encode(), np.array(shape, np.int32), kind, 0
        if data is not None:
            buf = schema.BufferT()
            buf.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8)
            model.buffers.append(buf)
            t.buffer = len(model.buffers) - 1
        tensors.append(t)
        return len(tensors) - 1

    codes = []
    for name in ("PAD", "CONV_2D"):
        code = schema.OperatorCodeT()
        number = getattr(schema.BuiltinOperator, name)
        code.builtinCode, code.deprecatedBuiltinCode, code.version = number, number, 1
        codes.append(code)
    model.operatorCodes = codes

    def op(code, inputs, outputs, options_type, options):
        o = schema.OperatorT()
        o.opcodeIndex, o.builtinOptionsType, o.builtinOptions = code, options_type, options
        o.inputs, o.outputs = np.array(inputs, np.int32), np.array(outputs, np.int32)
        return o

    f32 = schema.TensorType.FLOAT32
    (top, bottom), (left, right) = paddings
    x = tensor("input", (1, 4, 5, 2), f32)
    p = tensor("paddings", (4, 2), schema.TensorType.INT32,
               np.array([[0, 0], [top, bottom], [left, right], [0, 0]], np.int32))
    xp = tensor("padded", (1, 4 + top + bottom, 5 + left + right, 2), f32)
    w = tensor("weights", conv_w.shape, f32, conv_w)
    b = tensor("bias", (conv_w.shape[0],), f32, np.zeros(conv_w.shape[0], np.float32))
    y1 = tensor("out1", (1, 4 + top + bottom - 2, 5 + left + right - 2, conv_w.shape[0]), f32)
    y2 = tensor("out2", (1, 4, 5, conv_w.shape[0]), f32)
    valid, same = schema.Conv2DOptionsT(), schema.Conv2DOptionsT()
    valid.padding, valid.strideH, valid.strideW = schema.Padding.VALID, 1, 1
    same.padding, same.strideH, same.strideW = schema.Padding.SAME, 1, 1
    graph = schema.SubGraphT()
    graph.tensors, graph.inputs = tensors, np.array([x], np.int32)
    graph.outputs = np.array([y1, y2], np.int32)
    graph.operators = [
        op(0, [x, p], [xp], schema.BuiltinOptions.PadOptions, schema.PadOptionsT()),
        op(1, [xp, w, b], [y1], schema.BuiltinOptions.Conv2DOptions, valid),
        op(1, [x, w, b], [y2], schema.BuiltinOptions.Conv2DOptions, same),
    ]
    model.subgraphs = [graph]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))
    return path


def test_pad_op_input_is_flagged(tmp_path):
    """A conv fed by PAD: input_padded_by_op in the manifest, captured values unchanged."""
    rng = np.random.default_rng(7)
    conv_w = rng.normal(size=(3, 3, 3, 2)).astype(np.float32)        # OHWI
    path = _build_padded(tmp_path / "pad.tflite", conv_w, ((1, 1), (2, 0)))
    images = [rng.normal(size=(1, 4, 5, 2)).astype(np.float32) for _ in range(2)]
    capture = tflite_import.capture_tflite(
        path, images, image_info=[{"name": f"i{j}", "source": "rng"} for j in range(2)])
    padded, plain = capture.layers
    assert (padded.input_padded_by_op, plain.input_padded_by_op) == (True, False)
    assert padded.padding == (0, 0, 0, 0) and plain.padding == (1, 1, 1, 1)
    expected = np.stack([np.pad(x[0], ((1, 1), (2, 0), (0, 0))).transpose(2, 0, 1)
                         for x in images])
    np.testing.assert_array_equal(padded.activations, expected)
    manifest = write_network(tmp_path / "net", capture, bits=8, log=None)
    assert [e["input_padded_by_op"] for e in manifest["layers"]] == [True, False]
    _, items = load_network(tmp_path / "net")
    assert [bool(layer.extra["input_padded_by_op"]) for _, _, layer in items] == \
        [True, True, False, False]
