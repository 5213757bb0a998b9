"""ONNX import: run a float ONNX model with onnxruntime and capture every conv/FC layer's input.

``import_onnx(model_path, inputs, ...)`` returns a `effectual.importers.common.Capture`.

What becomes a layer (in graph order, which ONNX requires to be topological):

* ``Conv`` with constant 4-D weights ``[K, C/group, R, S]``: ``group`` -> groups, ``strides``,
  ``pads`` (ONNX order ``[top, left, bottom, right]``, converted to top, bottom, left, right),
  ``auto_pad`` (``NOTSET``, ``VALID``, ``SAME_UPPER``, ``SAME_LOWER``, resolved from the
  captured input size; ``SAME_UPPER`` puts the odd extra row/column at the bottom/right).
  A ``BatchNormalization`` (inference form, constant parameters) that is the *only* consumer of
  the conv's output is folded into the conv in float64 *before* quantization:
  ``w' = w * gamma / sqrt(var + eps)`` per output channel, ``b' = (b - mean) * gamma /
  sqrt(var + eps) + beta``; the layer then stands for Conv+BN.
* ``Gemm`` ``Y = alpha * A' B' + beta * C`` with constant ``B``: ``transB`` handled (weights
  ``[K, C]`` = ``B`` if ``transB`` else ``B^T``), ``transA`` handled (the captured input is
  transposed), ``alpha`` folded into the weights, ``beta * C`` kept as the (informative) bias.
* ``MatMul`` ``A @ B`` with constant 2-D ``B`` ``[C, K]``: weights ``B^T``.

An explicit ``Pad`` node before a layer (``torch.nn.functional.pad`` exports one; so do converters
from frameworks with asymmetric padding) is a separate op, as for TFLite's ``PAD``: the captured
input is then the padded tensor, and the conv's own padding is its ``pads`` (usually none). For
zero padding (``mode="constant"``, value 0) the outputs are those of the conv with ``pads``, and
so are the MACs, the work-bound potentials and the design cycles (a padding zero and a stored
zero of an all-zero pixel cost the same), but the per-tensor value statistics count the border
zeros as stored activations: zero activations, group widths, zero bits and terms per value
include them (in one user's network 65.1 % zero activations instead of 55.8 % for the same
network exported with the pads on the conv). Such a layer has
``input_padded_by_op: true`` in ``network.json`` (and the extra key of that name in its layer
files); Identity nodes between the Pad and the layer are followed. The captured values are never
changed: they are what the graph computes.

A Gemm/MatMul whose input has one row (``[1, C]``, the usual classifier head) is an ``fc``
layer; an input with ``M > 1`` rows (``[..., M, C]``, e.g. tokens) is written as a 1x1 ``conv``
over an ``[C, M, 1]`` activation map, which computes exactly the same products.

Constant weights are initializers or ``Constant`` node outputs, followed through ``Identity``
chains. Each layer's input is captured by adding its tensor as a graph output and running the
unmodified graph with onnxruntime (CPU, graph optimizations off, so the values are those the
graph defines), one image at a time (batch 1).

Unsupported (a clear error naming the node, or, with ``skip_unsupported=True``, skipped with a
warning on stderr and listed under ``extra["skipped"]`` in the manifest): ``ConvTranspose``
(transposed convolution is not a layer of the layer-file format), dilated convolution
(``dilations != 1``; the layer file has no dilation), 1-D/3-D convolution, conv/FC with
non-constant weights (e.g. attention ``MatMul`` of two activations, or QDQ-quantized weights
behind ``DequantizeLinear``), and the integer operators ``QLinearConv``, ``ConvInteger``,
``QLinearMatMul``, ``MatMulInteger`` (import the float model instead). Models must have exactly
one non-constant input and fit in one protobuf (< 2 GB).
"""

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from effectual.importers.common import Capture, CapturedLayer, image_records, load_inputs

__all__ = ["import_onnx", "UNSUPPORTED_OPS"]

#: operators that compute a conv/FC but cannot be imported, with the reason
UNSUPPORTED_OPS = {
    "ConvTranspose": "transposed convolution is not supported by the layer file format",
    "QLinearConv": "quantized operator; import the float model instead",
    "ConvInteger": "quantized operator; import the float model instead",
    "QLinearMatMul": "quantized operator; import the float model instead",
    "MatMulInteger": "quantized operator; import the float model instead",
}


class _Unsupported(Exception):
    pass


@dataclass
class _Spec:
    """A conv/FC node found in the graph, before its input is captured."""

    name: str
    op_type: str
    input: str
    weights: np.ndarray          # conv [K, C/g, R, S]; fc-like [K, C]
    bias: np.ndarray | None
    stride: tuple = (1, 1)
    pads: tuple = (0, 0, 0, 0)   # top, bottom, left, right (NOTSET auto_pad)
    auto_pad: str = "NOTSET"
    groups: int = 1
    trans_a: bool = False
    padded_by_op: bool = False   # the input is the output of a Pad node (through Identity)


class _Constants:
    """Resolve tensor names to constant numpy arrays (initializers, Constant, Identity)."""

    def __init__(self, graph):
        from onnx import numpy_helper

        self._to_array = numpy_helper.to_array
        self.initializers = {t.name: t for t in graph.initializer}
        self.producer = {out: node for node in graph.node for out in node.output}

    def get(self, name, _depth=0):
        """Return the constant value of tensor ``name`` as float64, or None if not constant."""
        import onnx

        if not name or _depth > 100:
            return None
        if name in self.initializers:
            return self._to_array(self.initializers[name]).astype(np.float64)
        node = self.producer.get(name)
        if node is None:
            return None
        if node.op_type == "Identity":
            return self.get(node.input[0], _depth + 1)
        if node.op_type == "Constant":
            for attribute in node.attribute:
                value = onnx.helper.get_attribute_value(attribute)
                if attribute.name == "value":
                    return self._to_array(value).astype(np.float64)
                if attribute.name in ("value_float", "value_int", "value_floats",
                                      "value_ints"):
                    return np.asarray(value, dtype=np.float64)
        return None


def _attributes(node):
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def _conv_spec(node, name, constants):
    attrs = _attributes(node)
    weights = constants.get(node.input[1]) if len(node.input) > 1 else None
    if weights is None:
        raise _Unsupported("the weights are not a constant tensor")
    if weights.ndim != 4:
        raise _Unsupported(f"only 2-D convolution is supported (weights of rank {weights.ndim})")
    dilations = tuple(attrs.get("dilations", (1, 1)))
    if any(d != 1 for d in dilations):
        raise _Unsupported(f"dilated convolution (dilations {list(dilations)}) is not supported "
                           f"by the layer file format")
    bias = constants.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    pads = tuple(attrs.get("pads", (0, 0, 0, 0)))
    return _Spec(name=name, op_type="Conv", input=node.input[0], weights=weights, bias=bias,
                 stride=tuple(attrs.get("strides", (1, 1))),
                 pads=(pads[0], pads[2], pads[1], pads[3]),
                 auto_pad=_text(attrs.get("auto_pad", "NOTSET")),
                 groups=int(attrs.get("group", 1)))


def _fold_batchnorm(spec, bn, constants):
    """Fold inference BatchNormalization ``bn`` into conv ``spec``; return True if folded."""
    attrs = _attributes(bn)
    if len(bn.output) > 1 and any(bn.output[1:]) or attrs.get("training_mode", 0):
        return False
    params = [constants.get(n) for n in bn.input[1:5]]
    if len(params) != 4 or any(p is None for p in params):
        return False
    gamma, beta, mean, var = (p.reshape(-1) for p in params)
    k = spec.weights.shape[0]
    if not all(p.size == k for p in (gamma, beta, mean, var)):
        return False
    factor = gamma / np.sqrt(var + float(attrs.get("epsilon", 1e-5)))
    bias = spec.bias.reshape(-1) if spec.bias is not None else np.zeros(k)
    spec.weights = spec.weights * factor[:, None, None, None]
    spec.bias = (bias - mean) * factor + beta
    spec.op_type = "Conv+BatchNormalization"
    return True


def _gemm_spec(node, name, constants):
    attrs = _attributes(node)
    if constants.get(node.input[0]) is not None:
        raise _Unsupported("the first operand is constant (only activation x constant weights)")
    b = constants.get(node.input[1])
    if b is None:
        raise _Unsupported("the weights (B) are not a constant tensor")
    if b.ndim != 2:
        raise _Unsupported(f"Gemm B must be 2-D, not shape {list(b.shape)}")
    weights = (b if attrs.get("transB", 0) else b.T) * float(attrs.get("alpha", 1.0))
    bias = None
    if len(node.input) > 2 and node.input[2]:
        c = constants.get(node.input[2])
        if c is not None and c.size in (1, weights.shape[0]):
            bias = np.broadcast_to(c.reshape(-1), (weights.shape[0],)) * \
                float(attrs.get("beta", 1.0))
    return _Spec(name=name, op_type="Gemm", input=node.input[0], weights=weights, bias=bias,
                 trans_a=bool(attrs.get("transA", 0)))


def _matmul_spec(node, name, constants):
    if constants.get(node.input[0]) is not None:
        raise _Unsupported("the first operand is constant (only activation x constant weights)")
    b = constants.get(node.input[1])
    if b is None:
        raise _Unsupported("the second operand is not a constant tensor (activation x "
                           "activation products are not conv/FC layers)")
    if b.ndim != 2:
        raise _Unsupported(f"MatMul weights must be 2-D [C, K], not shape {list(b.shape)}")
    return _Spec(name=name, op_type="MatMul", input=node.input[0], weights=b.T, bias=None)


def _produced_by_pad(name, constants):
    """Return True if tensor ``name`` is the output of a Pad node (Identity chains followed)."""
    for _ in range(100):
        node = constants.producer.get(name)
        if node is None or node.op_type != "Identity":
            return node is not None and node.op_type == "Pad"
        name = node.input[0]
    return False


def _find_layers(graph, constants, skip_unsupported, model_path):
    """Return (specs, skipped) for the graph's conv/FC nodes in order."""
    consumers = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    graph_outputs = {o.name for o in graph.output}
    specs, skipped, names = [], [], set()
    for index, node in enumerate(graph.node):
        op = node.op_type
        if op not in ("Conv", "Gemm", "MatMul") and op not in UNSUPPORTED_OPS:
            continue
        name = node.name or f"{op.lower()}_{index}"
        base, suffix = name, 2
        while name in names:
            name, suffix = f"{base}_{suffix}", suffix + 1
        names.add(name)
        try:
            if op in UNSUPPORTED_OPS:
                raise _Unsupported(UNSUPPORTED_OPS[op])
            if op == "Conv":
                spec = _conv_spec(node, name, constants)
                users = consumers.get(node.output[0], [])
                if (len(users) == 1 and users[0].op_type == "BatchNormalization"
                        and users[0].input[0] == node.output[0]
                        and node.output[0] not in graph_outputs):
                    _fold_batchnorm(spec, users[0], constants)
            elif op == "Gemm":
                spec = _gemm_spec(node, name, constants)
            else:
                spec = _matmul_spec(node, name, constants)
        except _Unsupported as error:
            if not skip_unsupported:
                raise ValueError(f"{model_path}: node {name!r} ({op}): {error}; rerun with "
                                 f"--skip-unsupported to import the other layers") from None
            print(f"warning: skipped node {name!r} ({op}): {error}", file=sys.stderr)
            skipped.append({"name": name, "op_type": op, "reason": str(error)})
            continue
        spec.padded_by_op = _produced_by_pad(spec.input, constants)
        specs.append(spec)
    return specs, skipped


def _same_pads(size, kernel, stride, mode):
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    small, large = total // 2, total - total // 2
    return (small, large) if mode == "SAME_UPPER" else (large, small)


def _captured_layer(spec, acts, model_path):
    """Build a CapturedLayer from a spec and its input for every image (leading axis N)."""
    where = f"{model_path}: node {spec.name!r} ({spec.op_type})"
    if spec.op_type.startswith("Conv"):
        if acts.ndim != 5 or acts.shape[1] != 1:
            raise ValueError(f"{where}: expected a [1, C, H, W] input, got "
                             f"{list(acts.shape[1:])}")
        acts = acts[:, 0]
        k, cg, r, s = spec.weights.shape
        if cg * spec.groups != acts.shape[1]:
            raise ValueError(f"{where}: weights [{k}, {cg}, {r}, {s}] with group {spec.groups} "
                             f"do not match the input's {acts.shape[1]} channels")
        if spec.auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            top, bottom = _same_pads(acts.shape[2], r, spec.stride[0], spec.auto_pad)
            left, right = _same_pads(acts.shape[3], s, spec.stride[1], spec.auto_pad)
            padding = (top, bottom, left, right)
        elif spec.auto_pad == "VALID":
            padding = (0, 0, 0, 0)
        elif spec.auto_pad == "NOTSET":
            padding = spec.pads
        else:
            raise ValueError(f"{where}: unknown auto_pad {spec.auto_pad!r}")
        return CapturedLayer(name=spec.name, kind="conv", op_type=spec.op_type,
                             weights=spec.weights, activations=acts, stride=spec.stride,
                             padding=padding, groups=spec.groups, bias=spec.bias,
                             input_padded_by_op=spec.padded_by_op)
    if spec.trans_a:
        if acts.ndim != 3:
            raise ValueError(f"{where}: expected a 2-D input, got {list(acts.shape[1:])}")
        acts = acts.transpose(0, 2, 1)
    k, c = spec.weights.shape
    if acts.ndim < 3 or acts.shape[-1] != c:
        raise ValueError(f"{where}: the input {list(acts.shape[1:])} does not end in the "
                         f"weights' {c} input features")
    rows = acts.reshape(acts.shape[0], -1, c)
    if rows.shape[1] == 1:
        return CapturedLayer(name=spec.name, kind="fc", op_type=spec.op_type,
                             weights=spec.weights, activations=rows[:, 0], bias=spec.bias,
                             input_padded_by_op=spec.padded_by_op)
    return CapturedLayer(name=spec.name, kind="conv", op_type=spec.op_type,
                         weights=spec.weights[:, :, None, None],
                         activations=rows.transpose(0, 2, 1)[:, :, :, None], bias=spec.bias,
                         input_padded_by_op=spec.padded_by_op)


def _load_model(model_path):
    import onnx
    from google.protobuf.message import DecodeError

    path = Path(model_path)
    if not path.is_file():
        raise FileNotFoundError(f"{model_path}: no such model file")
    try:
        return onnx.load(str(path))
    except (DecodeError, ValueError, RuntimeError, UnicodeDecodeError) as error:
        raise ValueError(f"{model_path}: not a valid ONNX model ({type(error).__name__})") \
            from None


def _value_types(model):
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # inference is only a convenience for output element types
        inferred = model
    graph = inferred.graph
    return {info.name: info.type.tensor_type.elem_type
            for info in list(graph.value_info) + list(graph.input) + list(graph.output)
            if info.type.HasField("tensor_type")}


def import_onnx(model_path, inputs, *, input_range=None, layout=None, skip_unsupported=False):
    """Capture the conv/FC layers of an ONNX model on real inputs; return a `Capture`.

    Parameters
    ----------
    model_path : path of the ``.onnx`` file.
    inputs : image files or ``.npy`` tensors (at least one), see
        `effectual.importers.common.load_inputs`.
    input_range : ``(lo, hi)`` an image's ``[0, 1]`` is mapped to; default ``(0.0, 1.0)``.
    layout : ``"nchw"`` (default) or ``"nhwc"``, the layout of the model's image input.
    skip_unsupported : skip unsupported conv/FC-like nodes with a warning instead of failing.

    Raises ``ValueError`` (bad or unsupported model, mismatched input) and ``OSError``
    (missing file), each with a one-line message.
    """
    import onnx
    import onnxruntime

    inputs = [str(p) for p in inputs]
    if not inputs:
        raise ValueError(f"{model_path}: ONNX import needs at least one --input image or .npy")
    model = _load_model(model_path)
    graph = model.graph
    constants = _Constants(graph)
    model_inputs = [i for i in graph.input if i.name not in constants.initializers]
    if len(model_inputs) != 1:
        raise ValueError(f"{model_path}: the model has {len(model_inputs)} inputs; Effectual "
                         f"imports models with exactly one")
    model_input = model_inputs[0]
    tensor_type = model_input.type.tensor_type
    shape = [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
    input_dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)
    specs, skipped = _find_layers(graph, constants, skip_unsupported, model_path)
    if not specs:
        raise ValueError(f"{model_path}: no Conv/Gemm/MatMul layers with constant weights found")
    layout = layout or "nchw"
    input_range = tuple(input_range) if input_range is not None else (0.0, 1.0)
    tensors = load_inputs(inputs, shape=shape, layout=layout, input_range=input_range)

    wanted = list(dict.fromkeys(spec.input for spec in specs if spec.input != model_input.name))
    capture_model = onnx.ModelProto()
    capture_model.CopyFrom(model)
    types = _value_types(model)
    existing = {o.name for o in capture_model.graph.output}
    for name in wanted:
        if name not in existing:
            capture_model.graph.output.append(onnx.helper.make_tensor_value_info(
                name, types.get(name) or onnx.TensorProto.FLOAT, None))
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 2
    options.log_severity_level = 3
    try:
        session = onnxruntime.InferenceSession(capture_model.SerializeToString(), options,
                                               providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own exception types
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"{model_path}: onnxruntime cannot load the model ({first})") from None
    captured = {name: [] for name in wanted + [model_input.name]}
    for path, tensor in zip(inputs, tensors):
        try:
            values = session.run(wanted, {model_input.name: tensor.astype(input_dtype)})
        except Exception as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else \
                type(error).__name__
            raise ValueError(f"{path}: onnxruntime failed on this input ({first})") from None
        for name, value in zip(wanted, values):
            captured[name].append(np.asarray(value))
        captured[model_input.name].append(tensor)
    layers = [_captured_layer(spec, np.stack(captured[spec.input]).astype(np.float64),
                              model_path) for spec in specs]
    extra = {"input": {"name": model_input.name, "shape": ["?" if d is None else d
                                                           for d in shape],
                       "layout": layout, "input_range": list(input_range)}}
    if skipped:
        extra["skipped"] = skipped
    return Capture(name=Path(model_path).stem, source=str(model_path), layers=layers,
                   images=image_records(inputs), extra=extra)
