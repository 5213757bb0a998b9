"""Capture the conv and fully-connected layers of a TFLite model run on real images.

The model runs in ai-edge-litert's ``Interpreter`` with ``experimental_preserve_all_tensors=True``
(every intermediate tensor stays readable after ``invoke``) and the plain built-in kernels
(``BUILTIN_WITHOUT_DEFAULT_DELEGATES``; XNNPACK gives the same tensors, but would own them). The
graph (operators, their options, tensor indices) is read from the model's flatbuffer with the
schema module that ships in ai-edge-litert, so no private interpreter call is needed: the tensor
indices of subgraph 0 are the interpreter's tensor indices.

Captured operators and the layout conversions (TFLite keeps activations NHWC):

======================  =====================  ====================================================
TFLite op               TFLite weights         captured layer
======================  =====================  ====================================================
``CONV_2D``             ``[K, R, S, C/g]``     ``conv``, weights ``[K, C/g, R, S]``, ``groups = C /
                        (OHWI)                 (C/g)`` (1 unless the model uses grouped convolution)
``DEPTHWISE_CONV_2D``   ``[1, R, S, C*M]``     ``conv``, weights ``[C*M, 1, R, S]``, ``groups = C``;
                                               output channel ``c*M + m`` belongs to group ``c``,
                                               as in TFLite
``FULLY_CONNECTED``     ``[K, C]``             ``fc``, weights ``[K, C]``; an input with more than
                                               one row (``[..., rows, C]``) becomes a 1x1 ``conv``
                                               over ``[C, rows, 1]``, which performs the same MACs
======================  =====================  ====================================================

Activations are the op's input tensor, NHWC ``[1, H, W, C]`` -> ``[C, H, W]`` (stacked over the
images as ``[N, C, H, W]``). Weights and activations stored as integers in the model (int8/uint8
with scales) are dequantized to float with the tensor's own (per-axis) scale and zero point;
fp16 weights become float exactly. Weights that sit behind ``DEQUANTIZE`` (fp16 or int8 constants)
or ``DENSIFY`` (sparse constants) are followed to their constant source, and their values are the
interpreter's own dense float tensor, read after the first ``invoke`` (before it, such tensors
hold garbage); a weight tensor produced by any other op is an error.

Padding: ``VALID`` is no padding; ``SAME`` pads ``total = max((ceil(in/stride) - 1) * stride + R
- in, 0)`` rows with ``total // 2`` at the top and the rest at the bottom (TFLite puts the odd
extra row/column at the bottom/right); the same for columns. An explicit ``PAD`` operator before a
conv is a separate op: the captured input is then the padded tensor (its border zeros are real
input values of the conv and count as zero activations), and the conv's own padding is what its
options say (usually ``VALID``). A layer whose input is the output of ``PAD``, ``PADV2`` or
``MIRROR_PAD`` has ``input_padded_by_op: true`` in ``network.json`` (`CapturedLayer`'s
``input_padded_by_op``); the captured values are unchanged. The bias and the fused activation
(ReLU...) act on the op's output, not its input, so they do not change the captured layer; the
bias is kept as an ignored extra key. Dilated convolutions are not supported (ValueError).
"""

import math
import os

import numpy as np

__all__ = ["import_tflite", "capture_tflite", "tflite_padding", "CAPTURED_OPS",
           "DEFAULT_INPUT_RANGE"]

#: the TFLite builtin operators captured as layers
CAPTURED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")

#: input range of a float model when the user gives none (MediaPipe and most TFLite vision models)
DEFAULT_INPUT_RANGE = (-1.0, 1.0)

#: ops whose output, captured as a layer's input, holds padding as stored values
_PAD_OPS = ("PAD", "PADV2", "MIRROR_PAD")

#: ops through which a weight tensor is followed back to its constant source
_WEIGHT_PRODUCERS = ("DEQUANTIZE", "DENSIFY")

_MISSING_EXTRA = ("TFLite import needs the workloads extra: pip install -e '.[workloads]' "
                  "(ai-edge-litert)")


def _litert():
    """Return ``(Interpreter, OpResolverType, schema)`` or raise a one-line error."""
    try:
        from ai_edge_litert import schema_py_generated as schema
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError as error:
        from effectual.cli import UsageError
        raise UsageError(f"{_MISSING_EXTRA} ({error})") from None
    return Interpreter, OpResolverType, schema


def tflite_padding(kind, *, in_size, kernel, stride):
    """Return ``(before, after)`` padding of one spatial axis for TFLite ``SAME``/``VALID``.

    Parameters: ``kind`` "SAME" or "VALID"; ``in_size``, ``kernel``, ``stride`` positive ints.
    Returns two non-negative ints; ``SAME`` puts the odd extra element after (bottom/right).
    """
    if kind == "VALID":
        return 0, 0
    if kind != "SAME":
        raise ValueError(f"padding must be SAME or VALID, not {kind!r}")
    out_size = math.ceil(in_size / stride)
    total = max((out_size - 1) * stride + kernel - in_size, 0)
    return total // 2, total - total // 2


class _Graph:
    """Operators of subgraph 0 of a TFLite flatbuffer, with names and producers."""

    def __init__(self, model_path, schema):
        with open(model_path, "rb") as handle:
            buffer = handle.read()
        try:
            model = schema.ModelT.InitFromPackedBuf(buffer, 0)
        except Exception as error:  # a corrupt flatbuffer raises anything from struct to index
            raise ValueError(f"{model_path}: not a readable TFLite model ({error})") from None
        if not model.subgraphs:
            raise ValueError(f"{model_path}: TFLite model has no subgraph")
        code_names = {value: key for key, value in vars(schema.BuiltinOperator).items()
                      if not key.startswith("_")}
        self.padding_names = {value: key for key, value in vars(schema.Padding).items()
                              if not key.startswith("_")}
        self.subgraph = model.subgraphs[0]
        self.op_names = []
        for op in self.subgraph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            # builtinCode replaced deprecatedBuiltinCode (int8) when codes passed 127
            number = max(code.builtinCode, code.deprecatedBuiltinCode)
            self.op_names.append(code_names.get(number, f"BUILTIN_{number}"))
        self.producer = {}
        for index, op in enumerate(self.subgraph.operators):
            for tensor in op.outputs:
                self.producer[int(tensor)] = index

    def tensor_name(self, index):
        name = self.subgraph.tensors[index].name
        return name.decode() if isinstance(name, bytes) else str(name or "")


def _float_tensor(interpreter, details, index):
    """Return tensor ``index`` as float32, dequantizing integer tensors with their own scales."""
    value = interpreter.get_tensor(index)
    if value.dtype.kind == "f":
        return value.astype(np.float32)
    quant = details[index]["quantization_parameters"]
    scales = np.asarray(quant["scales"], dtype=np.float64)
    zero_points = np.asarray(quant["zero_points"], dtype=np.int64)
    if scales.size == 0:
        raise ValueError(f"tensor {details[index]['name']!r} is {value.dtype} without "
                         f"quantization parameters; cannot map it to real values")
    if scales.size > 1:
        shape = [1] * value.ndim
        shape[quant["quantized_dimension"]] = scales.size
        scales = scales.reshape(shape)
        zero_points = zero_points.reshape(shape)
    return ((value.astype(np.int64) - zero_points) * scales).astype(np.float32)


def _weight_source(graph, index, op_label):
    """Follow ``index`` back through DEQUANTIZE/DENSIFY to a constant; return the source name."""
    seen = index
    while seen in graph.producer:
        producer = graph.producer[seen]
        if graph.op_names[producer] not in _WEIGHT_PRODUCERS:
            raise ValueError(f"{op_label}: weights are produced by {graph.op_names[producer]}, "
                             f"not a constant (only {'/'.join(_WEIGHT_PRODUCERS)} are followed)")
        seen = int(graph.subgraph.operators[producer].inputs[0])
    return graph.tensor_name(seen)


def _layer_name(graph, op_index, used):
    """Name a layer after its output tensor (last ';' part), unique within the network."""
    op = graph.subgraph.operators[op_index]
    name = graph.tensor_name(int(op.outputs[0])).split(";")[-1]
    if not name:
        name = f"{graph.op_names[op_index].lower()}_{op_index}"
    base, count = name, 1
    while name in used:
        count += 1
        name = f"{base}_{count}"
    used.add(name)
    return name


def _plan_layer(graph, op_index, interpreter, details, used):
    """Return the static description of one captured op (everything but the activations)."""
    op = graph.subgraph.operators[op_index]
    op_name = graph.op_names[op_index]
    act_index, weight_index = int(op.inputs[0]), int(op.inputs[1])
    label = f"op {op_index} ({op_name})"
    _weight_source(graph, weight_index, label)
    weights = _float_tensor(interpreter, details, weight_index)
    bias = None
    if len(op.inputs) > 2 and int(op.inputs[2]) >= 0:
        bias = _float_tensor(interpreter, details, int(op.inputs[2])).reshape(-1)
    in_shape = tuple(int(x) for x in details[act_index]["shape"])
    out_shape = tuple(int(x) for x in details[int(op.outputs[0])]["shape"])
    producer = graph.producer.get(act_index)
    plan = {"op_index": op_index, "op_type": op_name, "act_index": act_index, "bias": bias,
            "name": _layer_name(graph, op_index, used), "output_shape": out_shape,
            "input_padded_by_op": producer is not None and graph.op_names[producer] in _PAD_OPS}
    if op_name == "FULLY_CONNECTED":
        if weights.ndim != 2:
            raise ValueError(f"{label}: weights must be [K, C], not {list(weights.shape)}")
        channels = weights.shape[1]
        rows = int(np.prod(in_shape)) // channels
        if rows * channels != int(np.prod(in_shape)):
            raise ValueError(f"{label}: input {list(in_shape)} is not a multiple of C={channels}")
        plan["rows"] = rows
        if rows == 1:
            plan.update(kind="fc", weights=weights, stride=(1, 1), padding=(0, 0, 0, 0), groups=1)
        else:
            plan.update(kind="conv", weights=weights[:, :, None, None], stride=(1, 1),
                        padding=(0, 0, 0, 0), groups=1)
        return plan
    options = op.builtinOptions
    if (options.dilationHFactor, options.dilationWFactor) != (1, 1):
        raise ValueError(f"{label}: dilated convolution "
                         f"({options.dilationHFactor}x{options.dilationWFactor}) is not supported")
    if len(in_shape) != 4 or in_shape[0] != 1:
        raise ValueError(f"{label}: input must be NHWC with batch 1, not {list(in_shape)}")
    _, height, width, channels = in_shape
    if op_name == "CONV_2D":
        kernels, rows_r, cols_s, per_group = weights.shape
        if channels % per_group:
            raise ValueError(f"{label}: input channels {channels} not a multiple of the weights' "
                             f"{per_group}")
        groups = channels // per_group
        converted = weights.transpose(0, 3, 1, 2)                    # OHWI -> OIHW
    else:
        _, rows_r, cols_s, kernels = weights.shape
        if kernels % channels:
            raise ValueError(f"{label}: depthwise outputs {kernels} not a multiple of C={channels}")
        groups = channels
        converted = weights[0].transpose(2, 0, 1)[:, None]          # [1,R,S,C*M] -> [C*M,1,R,S]
    stride = (int(options.strideH), int(options.strideW))
    kind = graph.padding_names.get(options.padding, str(options.padding))
    top, bottom = tflite_padding(kind, in_size=height, kernel=rows_r, stride=stride[0])
    left, right = tflite_padding(kind, in_size=width, kernel=cols_s, stride=stride[1])
    expect = ((height + top + bottom - rows_r) // stride[0] + 1,
              (width + left + right - cols_s) // stride[1] + 1)
    if out_shape[1:3] != expect or out_shape[3] != kernels:
        raise ValueError(f"{label}: output {list(out_shape)} does not match the converted layer "
                         f"({expect[0]}x{expect[1]}x{kernels})")
    plan.update(kind="conv", weights=converted, stride=stride, padding=(top, bottom, left, right),
                groups=groups)
    return plan


def _capture_input(plan, value):
    """Return one image's input of a planned layer in the CapturedLayer layout."""
    if plan["op_type"] == "FULLY_CONNECTED":
        rows = value.reshape(plan["rows"], -1)
        return rows[0] if plan["kind"] == "fc" else rows.T[:, :, None]
    return value[0].transpose(2, 0, 1)                                 # NHWC -> CHW


def _set_input(interpreter, detail, image):
    """Write one float image (real values) into the model input, quantizing integer inputs."""
    image = np.asarray(image, dtype=np.float32)
    shape = tuple(int(x) for x in detail["shape"])
    if image.shape != shape:
        if image.size != int(np.prod(shape)):
            raise ValueError(f"input image of shape {list(image.shape)} does not fit the model "
                             f"input {list(shape)}")
        image = image.reshape(shape)
    dtype = np.dtype(detail["dtype"])
    if dtype.kind != "f":
        scale, zero_point = detail["quantization"]
        if not scale:
            raise ValueError(f"model input is {dtype} without quantization parameters")
        info = np.iinfo(dtype)
        image = np.clip(np.rint(image / scale) + zero_point, info.min, info.max)
    interpreter.set_tensor(detail["index"], image.astype(dtype))


def capture_tflite(model_path, images, *, image_info, name=None, source=None,
                   input_range=None, extra=None, after_invoke=None):
    """Run a TFLite model on prepared images and return an ``importers.common.Capture``.

    Parameters
    ----------
    model_path : str
        The ``.tflite`` file.
    images : list of float arrays
        Model inputs in real values, already laid out and sized as the input tensor (NHWC, batch
        1; a missing batch axis is added).
    image_info : list of dict
        ``{"name", "source"}`` per image, same order (goes to the manifest).
    name, source : str, optional
        Network name and source for the manifest (default: file stem and path).
    input_range : (lo, hi), optional
        Recorded in ``extra`` only (the images are already in real values).
    extra : dict, optional
        More manifest ``extra`` entries.
    after_invoke : callable, optional
        ``after_invoke(interpreter, image_index)`` runs after each ``invoke`` (e.g. to read the
        model's outputs); ``extra`` may be updated in place until this function returns.

    Returns
    -------
    Capture with one CapturedLayer per CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED op in
    execution order, activations stacked over the images.
    """
    from effectual.importers.common import Capture, CapturedLayer
    Interpreter, OpResolverType, schema = _litert()
    model_path = os.fspath(model_path)
    if not os.path.isfile(model_path):
        raise OSError(f"{model_path}: no such TFLite model")
    if len(images) == 0:
        raise ValueError("TFLite import needs at least one input image")
    if len(image_info) != len(images):
        raise ValueError(f"image_info has {len(image_info)} entries for {len(images)} images")
    graph = _Graph(model_path, schema)
    try:
        interpreter = Interpreter(
            model_path=model_path, experimental_preserve_all_tensors=True,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        interpreter.allocate_tensors()
    except (RuntimeError, ValueError) as error:  # e.g. a custom op the runtime does not have
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"{model_path}: the TFLite runtime cannot run this model "
                         f"({first})") from None
    inputs = interpreter.get_input_details()
    if len(inputs) != 1:
        raise ValueError(f"{model_path}: models with {len(inputs)} inputs are not supported")
    details = interpreter.get_tensor_details()
    if not any(op_name in CAPTURED_OPS for op_name in graph.op_names):
        raise ValueError(f"{model_path}: no CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED op")
    plans = None
    for index, image in enumerate(images):
        _set_input(interpreter, inputs[0], image)
        try:
            interpreter.invoke()
        except RuntimeError as error:
            raise ValueError(f"{model_path}: the TFLite runtime failed on image {index} "
                             f"({str(error).strip().splitlines()[0]})") from None
        if after_invoke is not None:
            after_invoke(interpreter, index)
        if plans is None:
            # weights behind DEQUANTIZE/DENSIFY hold their values only once the graph has run
            used = set()
            plans = [_plan_layer(graph, op, interpreter, details, used)
                     for op, op_name in enumerate(graph.op_names) if op_name in CAPTURED_OPS]
            captured = [[] for _ in plans]
        for plan, store in zip(plans, captured):
            store.append(_capture_input(plan, _float_tensor(interpreter, details,
                                                            plan["act_index"])))
    layers = [CapturedLayer(name=plan["name"], kind=plan["kind"], weights=plan["weights"],
                            activations=np.stack(store), stride=plan["stride"],
                            padding=plan["padding"], groups=plan["groups"],
                            op_type=plan["op_type"], bias=plan["bias"],
                            input_padded_by_op=plan["input_padded_by_op"])
              for plan, store in zip(plans, captured)]
    stem = os.path.splitext(os.path.basename(model_path))[0]
    info = {"format": "tflite", "input_range": None if input_range is None
            else [float(input_range[0]), float(input_range[1])]}
    info.update(extra or {})
    return Capture(name=name or stem, source=source or model_path, layers=layers,
                   images=[dict(entry) for entry in image_info], extra=info)


def import_tflite(model_path, inputs, *, input_range=None, layout=None):
    """Import a ``.tflite`` model on the images in ``inputs`` (the ``effectual import`` entry).

    ``inputs`` are image paths (PNG/JPEG or .npy) loaded by ``importers.common.load_inputs``,
    resized to the model input and mapped from [0, 1] to ``input_range`` (default
    `DEFAULT_INPUT_RANGE`, (-1, 1), for a float input; for an int8/uint8 input, the range its
    quantization parameters represent). ``layout`` is the layout of the model input tensor
    ("nhwc", TFLite's, by default). Returns a ``Capture`` (see `capture_tflite`).
    """
    from effectual.cli import UsageError
    from effectual.importers.common import load_inputs
    if not inputs:
        raise UsageError("importing a .tflite model needs at least one --input image")
    Interpreter, _, _ = _litert()
    model_path = os.fspath(model_path)
    if not os.path.isfile(model_path):
        raise OSError(f"{model_path}: no such TFLite model")
    try:
        probe = Interpreter(model_path=model_path)
    except ValueError as error:
        raise ValueError(f"{model_path}: not a readable TFLite model ({error})") from None
    detail = probe.get_input_details()[0]
    if input_range is None:
        input_range = DEFAULT_INPUT_RANGE
        dtype = np.dtype(detail["dtype"])
        scale, zero_point = detail["quantization"]
        if dtype.kind != "f" and scale:
            info = np.iinfo(dtype)
            input_range = (scale * (info.min - zero_point), scale * (info.max - zero_point))
    shape = [int(x) for x in detail["shape"]]
    images = load_inputs(list(inputs), shape=shape, layout=layout or "nhwc",
                         input_range=input_range)
    image_info = [{"name": os.path.splitext(os.path.basename(os.fspath(path)))[0],
                   "source": os.fspath(path)} for path in inputs]
    return capture_tflite(model_path, images, image_info=image_info, input_range=input_range)
