"""What every importer shares: captured float layers, quantization, writing, input images.

An importer (ONNX, TFLite, a built-in workload) runs a real float model on real inputs and
returns a `Capture`: the network's conv/FC layers in order, each a `CapturedLayer` holding its
float weights and the float input activations it saw for every image. `write_network` quantizes
them with `golden.fixedpoint` and writes a network directory of layer files
(see `golden.layers`).

Quantization (the choices every network directory records in its manifest):

* weights: symmetric, signed, ``bits`` wide, scale ``max|w| / (2**(bits-1) - 1)`` per tensor, or
  per output channel (axis 0) with ``per_channel``; an all-zero tensor/channel gets scale 1;
* activations (each layer's input): symmetric, per tensor, zero point 0, scale from the maximum
  magnitude over *all* captured images; with ``act_signedness="auto"`` (the default)
  **unsigned** codes (``max / (2**bits - 1)``) when every captured value is >= 0, else signed
  codes (``max|a| / (2**(bits-1) - 1)``); with ``act_signedness="signed"`` signed codes for
  every tensor, even a non-negative one (the convention of ``shared/realdata.md``'s figures:
  a ReLU output then uses only the codes ``0 .. 2**(bits-1) - 1``);
* rounding: round half to even (`golden.fixedpoint.round_half_even`); saturation cannot trigger
  because the scale maps the maximum to the largest code;
* folding (e.g. BatchNorm into conv weights) happens in float64 *before* quantization.

Inputs (`load_inputs`): image files (PNG, JPEG, ... through ``matplotlib.image.imread``) or
``.npy`` tensors. An image is read as RGB(A) or gray, scaled to ``[0, 1]`` (integer pixels
divided by their dtype's maximum; matplotlib already gives PNGs in ``[0, 1]``), its alpha channel
dropped, converted to the model's channel count (gray -> 3 copies; RGB -> 1 luma channel
``0.299 R + 0.587 G + 0.114 B``), resized to the model's static height and width with bilinear
interpolation (half-pixel centres, no antialiasing, no aspect-ratio preservation), mapped
linearly to ``input_range = (lo, hi)`` and laid out as ``nchw`` or ``nhwc`` with a batch axis of
1. No mean/std normalization: for models that need one, save the exact tensor as ``.npy``. A
``.npy`` is used as-is (cast to float32, a missing batch axis added) and must match the model's
static input dimensions.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["CapturedLayer", "Capture", "write_network", "load_inputs", "load_image",
           "resize_bilinear", "quantize_layer", "image_records", "ACT_SIGNEDNESS"]

#: the accepted ``act_signedness`` values (see the module docstring)
ACT_SIGNEDNESS = ("auto", "signed")


def _check_act_signedness(value, name="act_signedness"):
    if not isinstance(value, str) or value not in ACT_SIGNEDNESS:
        raise ValueError(f"{name} must be 'auto' or 'signed', not {value!r}")
    return value


@dataclass(kw_only=True, eq=False)
class CapturedLayer:
    """One conv/FC layer of a float model and its float inputs for every image.

    Parameters
    ----------
    name : the layer's name (unique within the network).
    kind : ``"conv"`` or ``"fc"``.
    weights : float, conv ``[K, C/groups, R, S]`` (OIHW), fc ``[K, C]``; any folding (BatchNorm,
        Gemm alpha) already applied.
    activations : float, the layer's input for every image: conv ``[N, C, H, W]`` (NCHW), fc
        ``[N, C]``, ``N`` = number of images of the `Capture`.
    stride : (vertical, horizontal).
    padding : (top, bottom, left, right).
    groups : 1, C (depthwise) or a common divisor of C and K.
    op_type : the source operator (``"Conv"``, ``"Gemm"``, ``"CONV_2D"``...), informative.
    bias : optional float ``[K]``; kept as an extra key of the layer files, never used by
        designs.
    input_padded_by_op : the captured input is the output of a separate pad operator (ONNX
        ``Pad``, TFLite ``PAD``...), so its border zeros are stored activations; written as the
        extra key and manifest entry ``input_padded_by_op``. Informative: nothing else changes.
    """

    name: str
    kind: str
    weights: np.ndarray
    activations: np.ndarray
    stride: tuple = (1, 1)
    padding: tuple = (0, 0, 0, 0)
    groups: int = 1
    op_type: str = ""
    bias: np.ndarray | None = None
    input_padded_by_op: bool = False


@dataclass(kw_only=True, eq=False)
class Capture:
    """What an importer returns: a float network's layers captured on real inputs.

    Parameters
    ----------
    name : the network's name (manifest ``name``).
    source : the model file or a description of the workload (manifest ``source``).
    layers : the `CapturedLayer` objects in network order; a list or a one-shot iterator.
    images : one dict per image, at least ``{"name": str, "source": str}``, in the order of the
        activations' leading axis.
    extra : JSON-serializable facts for the manifest's ``extra`` (accuracy, skipped nodes...).
    """

    name: str
    source: str
    layers: object
    images: list
    extra: dict = field(default_factory=dict)


def _check_captured(layer, image_count):
    where = f"layer {layer.name!r}"
    if layer.kind not in ("conv", "fc"):
        raise ValueError(f"{where}: kind must be 'conv' or 'fc', not {layer.kind!r}")
    weights = np.asarray(layer.weights, dtype=np.float64)
    acts = np.asarray(layer.activations, dtype=np.float64)
    rank_w, rank_a = (4, 4) if layer.kind == "conv" else (2, 2)
    if weights.ndim != rank_w:
        raise ValueError(f"{where}: weights must have rank {rank_w}, not shape {weights.shape}")
    if acts.ndim != rank_a or acts.shape[0] != image_count:
        raise ValueError(f"{where}: activations must have shape [N={image_count}, ...] of rank "
                         f"{rank_a}, not {acts.shape}")
    for key, array in (("weights", weights), ("activations", acts)):
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{where}: {key} hold non-finite values (NaN or infinity)")
    return weights, acts


def quantize_layer(layer, *, bits, per_channel=False, rounding="half_even", image_count=None,
                   act_signedness="auto"):
    """Quantize one `CapturedLayer`; return a list of `golden.layers.Layer`, one per image.

    See the module docstring for the choices. ``image_count`` (default: the activations'
    leading axis) is checked against the activations. ``act_signedness`` is ``"auto"``
    (unsigned codes for a tensor without negative values, signed otherwise) or ``"signed"``
    (signed codes for every tensor); anything else is a ``ValueError``.
    """
    from golden import fixedpoint
    from golden.layers import Layer

    _check_act_signedness(act_signedness)
    if image_count is None:
        image_count = np.asarray(layer.activations).shape[0]
    weights, acts = _check_captured(layer, image_count)
    axis = 0 if per_channel else None
    weight_scale = fixedpoint.symmetric_scale(weights, bits=bits, signed=True, axis=axis)
    q_weights = fixedpoint.quantize(weights, weight_scale, bits=bits, signed=True,
                                    rounding=rounding, axis=axis)
    act_signed = act_signedness == "signed" or bool(acts.size and acts.min() < 0)
    act_scale = fixedpoint.symmetric_scale(acts, bits=bits, signed=act_signed)
    q_acts = fixedpoint.quantize(acts, act_scale, bits=bits, signed=act_signed,
                                 rounding=rounding)
    extra = {"op_type": np.array(layer.op_type),
             "input_padded_by_op": np.array(bool(layer.input_padded_by_op))}
    if layer.bias is not None:
        extra["bias"] = np.asarray(layer.bias, dtype=np.float64)
    return [Layer(kind=layer.kind, name=layer.name, weights=q_weights, activations=q_acts[j],
                  stride=tuple(layer.stride), padding=tuple(layer.padding), groups=layer.groups,
                  weight_bits=bits, act_bits=bits, act_signed=act_signed,
                  weight_scale=weight_scale, act_scale=float(act_scale), act_zero_point=0,
                  extra=extra)
            for j in range(image_count)]


def write_network(out_dir, capture, *, bits, per_channel=False, rounding="half_even",
                  act_signedness="auto", log=print):
    """Quantize ``capture`` (a `Capture`) and write it as a network directory ``out_dir``.

    Returns the manifest dict (see `golden.layers.save_network`); prints a short summary through
    ``log`` (``None`` for silence). ``bits`` is the width of weights and activations (2 .. 16);
    ``per_channel`` selects per-output-channel weight scales; ``act_signedness`` (``"auto"`` or
    ``"signed"``, see the module docstring) is recorded as the manifest's ``act_signedness``.
    """
    from golden.layers import save_network

    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 2 <= bits <= 16:
        raise ValueError(f"bits must be an integer from 2 to 16, not {bits!r}")
    _check_act_signedness(act_signedness)
    images = list(capture.images)
    totals = {"layers": 0, "conv": 0, "fc": 0, "signed": 0, "weights": 0, "zero_weights": 0,
              "acts": 0, "zero_acts": 0}

    def quantized():
        for captured in capture.layers:
            per_image = quantize_layer(captured, bits=bits, per_channel=per_channel,
                                       rounding=rounding, image_count=len(images),
                                       act_signedness=act_signedness)
            first = per_image[0]
            totals["layers"] += 1
            totals[first.kind] += 1
            totals["signed"] += first.act_signed
            totals["weights"] += first.weights.size
            totals["zero_weights"] += int(np.count_nonzero(first.weights == 0))
            for layer in per_image:
                totals["acts"] += layer.activations.size
                totals["zero_acts"] += int(np.count_nonzero(layer.activations == 0))
            yield per_image

    progress = None
    if log is not None:
        try:
            from tqdm import tqdm
        except ImportError:  # tqdm is a dependency, but a progress bar is never essential
            tqdm = None
        if tqdm is not None:
            total = len(capture.layers) if hasattr(capture.layers, "__len__") else None
            def progress(iterable):
                return tqdm(iterable, total=total, desc="quantize+write", unit="layer",
                            disable=None, leave=False)
    manifest = save_network(out_dir, quantized(), name=capture.name, source=capture.source,
                            bits=int(bits), per_channel=per_channel, images=images,
                            rounding=rounding, act_signedness=act_signedness,
                            extra=capture.extra, progress=progress)
    if log is not None:
        kinds = f"{totals['conv']} conv, {totals['fc']} fc"
        log(f"wrote {capture.name}: {totals['layers']} layers ({kinds}) x {len(images)} "
            f"image(s) to {out_dir}")
        log(f"  {bits}-bit, {'per-channel' if per_channel else 'per-tensor'} weight scales; "
            f"activation signedness {act_signedness}: signed in {totals['signed']} layer(s), "
            f"unsigned in {totals['layers'] - totals['signed']}; "
            f"{manifest['macs'] / 1e6:.3f} M MACs/image")
        log(f"  zero weights {100 * totals['zero_weights'] / max(totals['weights'], 1):.1f} %, "
            f"zero activations {100 * totals['zero_acts'] / max(totals['acts'], 1):.1f} %")
    return manifest


# ------------------------------------------------------------------------------------ inputs

def resize_bilinear(image, height, width):
    """Resize ``image`` ``[H, W, C]`` (float) to ``[height, width, C]``, bilinear, half-pixel.

    Output pixel ``y`` samples source row ``(y + 0.5) * H / height - 0.5`` clamped to the image
    (the convention of OpenCV ``INTER_LINEAR`` and ``align_corners=False``); no antialiasing.
    """
    image = np.asarray(image, dtype=np.float64)

    def axis_weights(size_in, size_out):
        position = (np.arange(size_out) + 0.5) * size_in / size_out - 0.5
        position = np.clip(position, 0, size_in - 1)
        low = np.floor(position).astype(np.int64)
        high = np.minimum(low + 1, size_in - 1)
        return low, high, position - low

    y0, y1, fy = axis_weights(image.shape[0], height)
    x0, x1, fx = axis_weights(image.shape[1], width)
    rows = image[y0] * (1 - fy)[:, None, None] + image[y1] * fy[:, None, None]
    return rows[:, x0] * (1 - fx)[None, :, None] + rows[:, x1] * fx[None, :, None]


def load_image(path, *, height=None, width=None, channels=None, input_range=(0.0, 1.0)):
    """Read an image file; return float32 ``[height, width, channels]`` in ``input_range``.

    ``None`` for height/width/channels keeps the image's own (an alpha channel is always
    dropped). See the module docstring for every step.
    """
    import matplotlib.image

    try:
        pixels = matplotlib.image.imread(path)
    except (OSError, ValueError, SyntaxError) as error:
        raise ValueError(f"{path}: cannot read the image ({error})") from None
    pixels = np.asarray(pixels)
    if np.issubdtype(pixels.dtype, np.integer):
        pixels = pixels.astype(np.float64) / np.iinfo(pixels.dtype).max
    pixels = np.clip(np.asarray(pixels, dtype=np.float64), 0.0, 1.0)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"{path}: unsupported image shape {pixels.shape}")
    if pixels.shape[2] in (2, 4):
        pixels = pixels[:, :, :-1]
    if channels is not None and channels != pixels.shape[2]:
        if channels == 3 and pixels.shape[2] == 1:
            pixels = np.repeat(pixels, 3, axis=2)
        elif channels == 1 and pixels.shape[2] == 3:
            pixels = pixels @ np.array([0.299, 0.587, 0.114])[:, None]
        else:
            raise ValueError(f"{path}: the model wants {channels} channels, the image has "
                             f"{pixels.shape[2]}; give a .npy tensor instead")
    if (height is not None and height != pixels.shape[0]) or \
            (width is not None and width != pixels.shape[1]):
        pixels = resize_bilinear(pixels, height or pixels.shape[0], width or pixels.shape[1])
    lo, hi = input_range
    return (lo + (hi - lo) * pixels).astype(np.float32)


def _static(dim):
    return dim if isinstance(dim, (int, np.integer)) and dim > 0 else None


def load_inputs(paths, *, shape, layout="nchw", input_range=(0.0, 1.0)):
    """Return one float32 model input (batch 1) per path in ``paths``.

    Parameters
    ----------
    paths : image files or ``.npy`` tensors.
    shape : the model input's shape including the batch axis; ``None`` or a non-positive entry
        is a dynamic dimension (an image then keeps its own size).
    layout : ``"nchw"`` or ``"nhwc"`` (images need a rank-4 input); ignored for ``.npy``.
    input_range : ``(lo, hi)`` the image's ``[0, 1]`` is mapped to.
    """
    shape = [_static(d) for d in shape]
    if shape and shape[0] not in (None, 1):
        raise ValueError(f"the model input has batch size {shape[0]}; Effectual runs one image "
                         f"at a time and needs batch 1 or a dynamic batch")
    if layout not in ("nchw", "nhwc"):
        raise ValueError(f"layout must be 'nchw' or 'nhwc', not {layout!r}")
    inputs = []
    for path in paths:
        path = str(path)
        if path.lower().endswith(".npy"):
            try:
                tensor = np.load(path, allow_pickle=False)
            except ValueError as error:
                raise ValueError(f"{path}: not a numeric .npy tensor ({error})") from None
            if tensor.dtype.kind not in "fiub":
                raise ValueError(f"{path}: not a numeric tensor (dtype {tensor.dtype})")
            tensor = np.asarray(tensor, dtype=np.float32)
            if tensor.ndim == len(shape) - 1:
                tensor = tensor[None]
            if tensor.ndim != len(shape) or any(
                    want is not None and want != got for want, got in zip(shape, tensor.shape)):
                wanted = ["?" if d is None else d for d in shape]
                raise ValueError(f"{path}: tensor shape {list(tensor.shape)} does not match the "
                                 f"model input {wanted}")
            inputs.append(tensor)
            continue
        if len(shape) != 4:
            raise ValueError(f"{path}: the model input has rank {len(shape)}; images need a "
                             f"rank-4 input, give a .npy tensor instead")
        if layout == "nchw":
            channels, height, width = shape[1:]
        else:
            height, width, channels = shape[1:]
        image = load_image(path, height=height, width=width, channels=channels,
                           input_range=input_range)
        if layout == "nchw":
            image = image.transpose(2, 0, 1)
        inputs.append(image[None])
    return inputs


def image_records(paths):
    """Return the manifest's image list for input files: ``{"name": stem, "source": path}``."""
    return [{"name": Path(p).stem, "source": str(p)} for p in paths]
