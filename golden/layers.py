"""The layer file: Effectual's interchange format for one conv/FC layer, and its exact output.

A *layer file* is one ``.npz`` (written with ``np.savez_compressed``, read with
``allow_pickle=False``) holding one convolution or fully-connected layer of a quantized network
together with the input activations it saw for one input image:

============== ========================= =========================================================
key            dtype / shape             meaning
============== ========================= =========================================================
kind           str, 0-d                  ``"conv"`` or ``"fc"``
weights        int, [K, C/groups, R, S]  conv weights (K output channels, R x S kernel), or
               int, [K, C]               fc weights; signed, ``weight_bits`` wide
activations    int, [C, H, W] or [C]     the layer's input (conv, channel-major) or (fc);
                                         ``act_bits`` wide, signed if ``act_signed``
stride         int, [2]                  (vertical, horizontal); fc: (1, 1)
padding        int, [4]                  (top, bottom, left, right), zeros added around the
                                         input; fc: (0, 0, 0, 0)
groups         int, 0-d                  1, C for depthwise, or any common divisor of C and K
weight_bits    int, 0-d                  2 .. 32
act_bits       int, 0-d                  1 .. 32
act_signed     bool, 0-d                 activations are two's-complement signed
weight_scale   float, 0-d or [K]         real weight = weights * weight_scale (per tensor or per
                                         output channel)
act_scale      float, 0-d                real activation = (activations - act_zero_point) *
                                         act_scale
act_zero_point int, 0-d                  0 for symmetric quantization (all Effectual importers)
name           str, 0-d (optional)       the layer's name (default: the file's stem)
============== ========================= =========================================================

Any other key is allowed: it is kept in ``Layer.extra`` and otherwise ignored (importers write
``op_type``, ``image``, ``layer_index``, a float ``bias`` and the bool ``input_padded_by_op``).
Integer arrays may be stored in any integer dtype (`save_layer` uses the narrowest of
int8/int16/int32 or uint8/uint16/uint32); they are int64 in memory.

Validation (`Layer` construction, `load_layer`): a missing key, a float or bool array where
integers are needed, a wrong rank or shape, channels that do not match ``groups``, a value
outside the range of its declared bits, a non-positive scale, or a kernel larger than the padded
input is a ``ValueError`` naming the key (and the file); nothing is ever wrapped around.

Exact output (`layer_output`), with ``A`` the activations minus ``act_zero_point``, zero-padded::

    conv: out[k, oh, ow] = sum_{c < C/groups, r < R, s < S}
                               W[k, c, r, s] * A[g*C/groups + c, oh*sv + r - top, ow*sh + s - left]
          with g = k // (K/groups), OH = (H + top + bottom - R) // sv + 1 (same for OW)
    fc:   out[k] = sum_c W[k, c] * A[c]

accumulated exactly in int64 (validation rejects bit widths whose worst case could overflow).

A *network directory* holds ``network.json`` (the manifest) and one layer file per layer and
per input image: ``DIR/image000/000_<name>.npz`` is layer 0 for image 0, ``DIR/image001/...``
holds the same layers (same weights) for image 1, and so on. See `save_network` for the manifest
(and an example that writes hand-made layers as a network) and `load_manifest` for the keys a
reader requires.
"""

import io
import itertools
import json
import os
import re
import zipfile
from dataclasses import InitVar, dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "Layer", "load_layer", "save_layer", "layer_output", "layer_patches", "layer_weight_matrix",
    "MANIFEST", "save_network", "load_manifest", "load_network",
]

#: keys every layer file must hold (``name`` is optional)
REQUIRED_KEYS = ("kind", "weights", "activations", "stride", "padding", "groups", "weight_bits",
                 "act_bits", "act_signed", "weight_scale", "act_scale", "act_zero_point")
KINDS = ("conv", "fc")
#: the manifest's file name inside a network directory
MANIFEST = "network.json"
FORMAT = "effectual-network"
VERSION = 1
# float64 holds every integer up to 2**53 exactly: below that bound a BLAS matmul is exact.
_FLOAT_EXACT = 1 << 53
# elements of one chunk of patches in layer_output (bounds memory to ~32 MB per chunk)
_CHUNK_ELEMENTS = 1 << 22


class _FieldError(Exception):
    """A problem with one key; turned into a ValueError naming the key and the file/layer."""

    def __init__(self, key, message):
        super().__init__(key, message)
        self.key = key
        self.message = message


def _int_array(value, key):
    array = np.asarray(value)
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        raise _FieldError(key, f"must hold integers, not dtype {array.dtype}")
    if array.dtype == np.uint64 and array.size and array.max() > np.iinfo(np.int64).max:
        raise _FieldError(key, "holds values beyond the int64 range")
    return array.astype(np.int64)


def _int_scalar(value, key, low, high=None):
    array = _int_array(value, key)
    if array.ndim != 0:
        raise _FieldError(key, f"must be a single integer, not shape {array.shape}")
    number = int(array)
    if number < low or (high is not None and number > high):
        accepted = f"{low}..{high}" if high is not None else f">= {low}"
        raise _FieldError(key, f"must be an integer in {accepted}, not {number}")
    return number


def _int_tuple(value, key, length, low):
    array = _int_array(value, key)
    if array.shape != (length,):
        raise _FieldError(key, f"must hold {length} integers, not shape {array.shape}")
    if np.any(array < low):
        raise _FieldError(key, f"values must be >= {low}, not {array.tolist()}")
    return tuple(int(v) for v in array)


def _bool_scalar(value, key):
    array = np.asarray(value)
    if array.ndim != 0:
        raise _FieldError(key, f"must be a single boolean, not shape {array.shape}")
    if array.dtype == np.bool_:
        return bool(array)
    if np.issubdtype(array.dtype, np.integer) and int(array) in (0, 1):
        return bool(int(array))
    raise _FieldError(key, f"must be a boolean (or 0/1), not {array!r}")


def _str_scalar(value, key):
    array = np.asarray(value)
    if array.ndim != 0 or array.dtype.kind not in "US":
        raise _FieldError(key, f"must be a single string, not dtype {array.dtype} "
                               f"shape {array.shape}")
    text = array.item()
    return text.decode() if isinstance(text, bytes) else str(text)


def _scale(value, key, shapes):
    array = np.asarray(value)
    if array.dtype == np.bool_ or array.dtype.kind not in "fiu":
        raise _FieldError(key, f"must hold real numbers, not dtype {array.dtype}")
    array = array.astype(np.float64)
    if array.shape not in shapes:
        accepted = " or ".join(str(s) for s in shapes)
        raise _FieldError(key, f"must have shape {accepted}, not {array.shape}")
    if not np.all(np.isfinite(array) & (array > 0)):
        raise _FieldError(key, "must be finite and positive")
    return array


def _range(bits, signed):
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def _check_values(array, key, bits, signed):
    low, high = _range(bits, signed)
    if array.size and (array.min() < low or array.max() > high):
        kind = "signed" if signed else "unsigned"
        raise _FieldError(key, f"holds values {array.min()}..{array.max()} outside the {bits}-bit "
                               f"{kind} range {low}..{high}")


@dataclass(frozen=True, kw_only=True, eq=False)
class Layer:
    """One quantized conv or fully-connected layer and one input image's activations.

    Parameters (all keyword-only; see the module docstring for the exact meaning)
    ----------
    kind : ``"conv"`` or ``"fc"``
    weights : integers, conv ``[K, C/groups, R, S]``, fc ``[K, C]`` (stored as int64)
    activations : integers, conv ``[C, H, W]``, fc ``[C]`` (stored as int64)
    stride : (vertical, horizontal), default (1, 1)
    padding : (top, bottom, left, right), default (0, 0, 0, 0)
    groups : 1, C (depthwise) or a common divisor of C and K
    weight_bits, act_bits, act_signed : declared widths and activation signedness
        (weights are always signed)
    weight_scale : float, per tensor (0-d) or per output channel ``[K]``
    act_scale, act_zero_point : real activation = ``(activations - act_zero_point) * act_scale``
    name : the layer's name
    extra : extra keys (name -> array) carried along and written back by `save_layer`; ignored
        by every computation
    source : (init only) where the values come from, used in error messages

    Raises
    ------
    ValueError
        naming the key, for anything the module docstring lists as invalid.
    """

    kind: str
    weights: np.ndarray
    activations: np.ndarray
    stride: tuple = (1, 1)
    padding: tuple = (0, 0, 0, 0)
    groups: int = 1
    weight_bits: int = 8
    act_bits: int = 8
    act_signed: bool = False
    weight_scale: np.ndarray = 1.0
    act_scale: float = 1.0
    act_zero_point: int = 0
    name: str = ""
    extra: dict = field(default_factory=dict)
    source: InitVar[str | None] = None

    def __post_init__(self, source):
        where = source if source is not None else f"layer {self.name!r}"
        try:
            values = _validate(self)
        except _FieldError as error:
            raise ValueError(f"{where}: key {error.key!r} {error.message}") from None
        for key, value in values.items():
            object.__setattr__(self, key, value)

    @property
    def in_channels(self):
        """C, the number of input channels."""
        return self.activations.shape[0]

    @property
    def out_channels(self):
        """K, the number of output channels (fc: outputs)."""
        return self.weights.shape[0]

    @property
    def channels_per_group(self):
        """C / groups, the reduction channels of one output."""
        return self.weights.shape[1]

    @property
    def kernel_size(self):
        """(R, S); (1, 1) for fc."""
        return tuple(self.weights.shape[2:]) if self.kind == "conv" else (1, 1)

    @property
    def input_shape(self):
        """Shape of ``activations``."""
        return tuple(self.activations.shape)

    @property
    def output_shape(self):
        """Shape of `layer_output`: conv (K, OH, OW), fc (K,)."""
        if self.kind == "fc":
            return (self.out_channels,)
        return (self.out_channels,) + _output_hw(self.activations.shape, self.weights.shape,
                                                 self.stride, self.padding)

    @property
    def reduction_length(self):
        """Products summed per output value: C/groups * R * S (fc: C)."""
        r, s = self.kernel_size
        return self.channels_per_group * r * s

    @property
    def macs(self):
        """Multiply-accumulates of the layer for one image: outputs * reduction length."""
        return int(np.prod(self.output_shape)) * self.reduction_length


def _output_hw(act_shape, weight_shape, stride, padding):
    _, h, w = act_shape
    r, s = weight_shape[2:]
    top, bottom, left, right = padding
    return ((h + top + bottom - r) // stride[0] + 1, (w + left + right - s) // stride[1] + 1)


def _validate(layer):
    """Return the normalized field values of ``layer``; raise `_FieldError` on the first problem."""
    kind = _str_scalar(layer.kind, "kind")
    if kind not in KINDS:
        raise _FieldError("kind", f"must be 'conv' or 'fc', not {kind!r}")
    name = layer.name if isinstance(layer.name, str) else _str_scalar(layer.name, "name")
    weight_bits = _int_scalar(layer.weight_bits, "weight_bits", 2, 32)
    act_bits = _int_scalar(layer.act_bits, "act_bits", 1, 32)
    act_signed = _bool_scalar(layer.act_signed, "act_signed")
    weights = _int_array(layer.weights, "weights")
    activations = _int_array(layer.activations, "activations")
    rank_w, rank_a = (4, 3) if kind == "conv" else (2, 1)
    layout_w, layout_a = (("[K, C/groups, R, S]", "[C, H, W]") if kind == "conv"
                          else ("[K, C]", "[C]"))
    if weights.ndim != rank_w:
        raise _FieldError("weights", f"must have rank {rank_w} {layout_w} for {kind}, "
                                     f"not shape {weights.shape}")
    if activations.ndim != rank_a:
        raise _FieldError("activations", f"must have rank {rank_a} {layout_a} for {kind}, "
                                         f"not shape {activations.shape}")
    if 0 in weights.shape:
        raise _FieldError("weights", f"must not be empty, not shape {weights.shape}")
    if 0 in activations.shape:
        raise _FieldError("activations", f"must not be empty, not shape {activations.shape}")
    stride = _int_tuple(layer.stride, "stride", 2, 1)
    padding = _int_tuple(layer.padding, "padding", 4, 0)
    groups = _int_scalar(layer.groups, "groups", 1)
    k, c = weights.shape[0], activations.shape[0]
    if kind == "fc":
        if stride != (1, 1):
            raise _FieldError("stride", f"must be (1, 1) for fc, not {stride}")
        if padding != (0, 0, 0, 0):
            raise _FieldError("padding", f"must be (0, 0, 0, 0) for fc, not {padding}")
        if groups != 1:
            raise _FieldError("groups", f"must be 1 for fc, not {groups}")
    if weights.shape[1] * groups != c:
        raise _FieldError("groups", f"does not match the channels: activations have C={c}, "
                                    f"weights have C/groups={weights.shape[1]}, groups={groups}")
    if k % groups:
        raise _FieldError("groups", f"must divide the K={k} output channels, not {groups}")
    if kind == "conv":
        oh, ow = _output_hw(activations.shape, weights.shape, stride, padding)
        if oh < 1 or ow < 1:
            raise _FieldError("weights", f"kernel {weights.shape[2:]} is larger than the padded "
                                         f"input {activations.shape[1:]} + padding {padding}")
    _check_values(weights, "weights", weight_bits, True)
    _check_values(activations, "activations", act_bits, act_signed)
    weight_scale = _scale(layer.weight_scale, "weight_scale", [(), (k,)])
    act_scale = float(_scale(layer.act_scale, "act_scale", [()]))
    low, high = _range(act_bits, act_signed)
    act_zero_point = _int_scalar(layer.act_zero_point, "act_zero_point", low, high)
    reduction = int(np.prod(weights.shape[1:]))
    worst = (1 << (weight_bits - 1)) * ((1 << act_bits) - 1) * reduction
    if worst >= 1 << 63:
        raise _FieldError("weight_bits", f"{weight_bits} with act_bits {act_bits} and a reduction "
                                         f"of {reduction} could overflow the int64 accumulator")
    if not isinstance(layer.extra, dict):
        raise _FieldError("extra", f"must be a dict, not {type(layer.extra).__name__}")
    extra = {}
    for key, value in layer.extra.items():
        if not isinstance(key, str) or key in REQUIRED_KEYS or key == "name":
            raise _FieldError(str(key), "cannot be an extra key (it is a layer field)")
        value = np.asarray(value)
        if value.dtype.hasobject:
            raise _FieldError(key, "extra values must be plain arrays (no Python objects)")
        extra[key] = value
    return dict(kind=kind, name=name, weights=weights, activations=activations, stride=stride,
                padding=padding, groups=groups, weight_bits=weight_bits, act_bits=act_bits,
                act_signed=act_signed, weight_scale=weight_scale, act_scale=act_scale,
                act_zero_point=act_zero_point, extra=extra)


def _narrow_dtype(bits, signed):
    for dtype in ((np.int8, np.int16, np.int32, np.int64) if signed
                  else (np.uint8, np.uint16, np.uint32, np.uint64)):
        if bits <= np.iinfo(dtype).bits:
            return dtype
    raise AssertionError(bits)


def save_layer(path, layer, **extra):
    """Write ``layer`` to the layer file ``path`` (exactly that name) with ``np.savez_compressed``.

    ``layer.extra`` and the keyword arguments ``extra`` (which win) are written as extra keys.
    Integers are stored in the narrowest standard dtype that holds the declared bits.
    """
    merged = dict(layer.extra)
    merged.update(extra)
    # Validate the extras the same way the constructor does.
    for key, value in merged.items():
        if key in REQUIRED_KEYS or key == "name":
            raise ValueError(f"{path}: key {key!r} cannot be an extra key (it is a layer field)")
        if np.asarray(value).dtype.hasobject:
            raise ValueError(f"{path}: key {key!r} extra values must be plain arrays")
    arrays = {
        "kind": np.array(layer.kind),
        "name": np.array(layer.name),
        "weights": layer.weights.astype(_narrow_dtype(layer.weight_bits, True)),
        "activations": layer.activations.astype(_narrow_dtype(layer.act_bits, layer.act_signed)),
        "stride": np.array(layer.stride, dtype=np.int64),
        "padding": np.array(layer.padding, dtype=np.int64),
        "groups": np.array(layer.groups, dtype=np.int64),
        "weight_bits": np.array(layer.weight_bits, dtype=np.int64),
        "act_bits": np.array(layer.act_bits, dtype=np.int64),
        "act_signed": np.array(layer.act_signed, dtype=np.bool_),
        "weight_scale": np.asarray(layer.weight_scale, dtype=np.float64),
        "act_scale": np.array(layer.act_scale, dtype=np.float64),
        "act_zero_point": np.array(layer.act_zero_point, dtype=np.int64),
    }
    arrays.update({key: np.asarray(value) for key, value in merged.items()})
    with open(path, "wb") as file:
        np.savez_compressed(file, **arrays)


def load_layer(path):
    """Read and validate the layer file ``path``; return a `Layer`.

    Raises ``OSError`` if the file cannot be opened and ``ValueError`` (naming the file and the
    key) if it is not an ``.npz``, is corrupt, lacks a key or holds an invalid value.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path}: is a directory, not a layer file")
    with open(path, "rb") as file:
        content = file.read()
    if content[:2] != b"PK":
        raise ValueError(f"{path}: not an .npz layer file")
    raw = {}
    # Each member is read whole through zipfile, which checks its CRC-32: a corrupt file is an
    # error, never garbage values (np.load can stop reading before the CRC check).
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            for member in archive.namelist():
                key = member[:-4] if member.endswith(".npy") else member
                data = archive.read(member)
                try:
                    raw[key] = np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
                except ValueError as error:
                    if "allow_pickle" in str(error):
                        raise ValueError(f"{path}: key {key!r} holds Python objects (pickled "
                                         f"data), which layer files may not contain") from None
                    raise ValueError(f"{path}: key {key!r} is not a valid .npy array "
                                     f"({error})") from None
    except ValueError:
        raise
    except Exception as error:  # BadZipFile, zlib.error, EOFError...: anything undecodable
        raise ValueError(f"{path}: corrupt layer file ({type(error).__name__}: {error})") from None
    for key in REQUIRED_KEYS:
        if key not in raw:
            raise ValueError(f"{path}: key {key!r} is missing")
    try:
        name = _str_scalar(raw["name"], "name") if "name" in raw else Path(path).stem
    except _FieldError as error:
        raise ValueError(f"{path}: key {error.key!r} {error.message}") from None
    fields = {key: raw[key] for key in REQUIRED_KEYS}
    extra = {key: value for key, value in raw.items() if key not in REQUIRED_KEYS
             and key != "name"}
    return Layer(**fields, name=name, extra=extra, source=path)


def _padded(layer):
    top, bottom, left, right = layer.padding
    return np.pad(layer.activations, ((0, 0), (top, bottom), (left, right)),
                  constant_values=layer.act_zero_point)


def layer_patches(layer, *, rows=None):
    """Return the im2col patches of ``layer``: int64 ``[G, P, C/G * R * S]``.

    ``G`` is ``layer.groups``; ``P`` enumerates output positions row-major, ``p = oh * OW + ow``
    over the output rows selected by ``rows`` (a ``slice`` of ``range(OH)``; default all, so
    ``P = OH * OW``); the last axis is ordered ``(c, r, s)`` like ``weights[k].reshape(-1)``
    (``c`` within the group). Values are activation codes; padded positions hold
    ``act_zero_point`` (the code of a real zero). fc layers give ``[1, 1, C]`` (``rows`` ignored).
    With `layer_weight_matrix`, ``patches[g] @ weight_matrix[g].T`` is group ``g``'s output.
    """
    if layer.kind == "fc":
        return layer.activations.reshape(1, 1, -1)
    oh, ow = layer.output_shape[1:]
    if rows is None:
        rows = slice(None)
    if not isinstance(rows, slice):
        raise TypeError(f"rows must be a slice, not {rows!r}")
    rows = range(oh)[rows]
    if rows.step < 0:
        raise ValueError(f"rows must be a slice with a positive step, not {rows!r}")
    r, s = layer.kernel_size
    sv, sh = layer.stride
    g = layer.groups
    cg = layer.channels_per_group
    if len(rows) == 0:
        return np.zeros((g, 0, cg * r * s), dtype=np.int64)
    padded = _padded(layer)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (r, s), axis=(1, 2))
    first = rows.start * sv
    last = rows[-1] * sv
    windows = windows[:, first:last + 1:sv * rows.step, ::sh]
    windows = windows.reshape(g, cg, len(rows), ow, r, s).transpose(0, 2, 3, 1, 4, 5)
    return windows.reshape(g, len(rows) * ow, cg * r * s)


def layer_weight_matrix(layer):
    """Return the weights as int64 ``[G, K/G, C/G * R * S]`` (fc: ``[1, K, C]``).

    Output channel ``k = g * (K/G) + j`` is row ``j`` of group ``g``; columns follow the
    ``(c, r, s)`` order of `layer_patches`.
    """
    g = layer.groups
    return layer.weights.reshape(g, layer.out_channels // g, -1)


def layer_output(layer):
    """Return the exact integer output of ``layer`` (int64; conv ``[K, OH, OW]``, fc ``[K]``).

    The activations minus ``act_zero_point`` are multiplied by the weights and summed exactly
    (see the module docstring for the formula). Named steps: (1) zero point removed and
    zero-padding added, (2) im2col patches, (3) matrix product, computed in float64 by BLAS
    when ``max|w| * max|a| * reduction < 2**53`` (every partial sum is then an exactly
    representable integer, so the result is exact) and in int64 otherwise.
    """
    wm = layer_weight_matrix(layer)
    max_w = int(np.abs(layer.weights).max())
    if layer.kind == "fc":
        acts = layer.activations - layer.act_zero_point
        if max_w * int(np.abs(acts).max()) * acts.size < _FLOAT_EXACT:
            return np.rint(layer.weights.astype(np.float64) @ acts.astype(np.float64)
                           ).astype(np.int64)
        return layer.weights @ acts
    k, oh, ow = layer.output_shape
    g, kg, length = wm.shape
    max_a = int(np.abs(layer.activations - layer.act_zero_point).max())
    exact_float = max_w * max_a * length < _FLOAT_EXACT
    wt = wm.transpose(0, 2, 1)
    if exact_float:
        wt = wt.astype(np.float64)
    out = np.empty((g, kg, oh, ow), dtype=np.int64)
    chunk = max(1, _CHUNK_ELEMENTS // max(1, g * ow * length))
    for start in range(0, oh, chunk):
        stop = min(oh, start + chunk)
        patches = layer_patches(layer, rows=slice(start, stop)) - layer.act_zero_point
        if exact_float:
            part = np.rint(np.matmul(patches.astype(np.float64), wt)).astype(np.int64)
        else:
            part = np.matmul(patches, wt)
        out[:, :, start:stop, :] = part.transpose(0, 2, 1).reshape(g, kg, stop - start, ow)
    return out.reshape(k, oh, ow)


# --------------------------------------------------------------------------- network directory

def _safe_name(name):
    text = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._")
    return text[:80] or "layer"


def _image_dir(index):
    return f"image{index:03d}"


def _clear_previous(directory):
    """Delete the files of an earlier import in ``directory``; refuse unrelated contents."""
    manifest_path = directory / MANIFEST
    if not directory.exists():
        return
    if not directory.is_dir():
        raise NotADirectoryError(f"{directory}: exists and is not a directory")
    if not any(directory.iterdir()):
        return
    if not manifest_path.exists():
        raise ValueError(f"{directory}: is not empty and holds no {MANIFEST}; refusing to write "
                         f"a network there")
    try:
        old = json.loads(manifest_path.read_text())
        files = [f for entry in old.get("layers", []) for f in entry.get("files", [])]
    except (ValueError, AttributeError, TypeError):
        files = []
    for name in files:
        path = (directory / name)
        if _inside(directory, path) and path.suffix == ".npz" and path.is_file():
            path.unlink()
    for sub in directory.glob("image[0-9][0-9][0-9]"):
        if sub.is_dir() and not any(sub.iterdir()):
            sub.rmdir()
    manifest_path.unlink()


def _inside(directory, path):
    try:
        path.resolve().relative_to(directory.resolve())
    except ValueError:
        return False
    return True


def _same_layer(first, other):
    return (first.kind == other.kind and first.name == other.name
            and first.weights.shape == other.weights.shape
            and np.array_equal(first.weights, other.weights)
            and first.stride == other.stride and first.padding == other.padding
            and first.groups == other.groups and first.weight_bits == other.weight_bits
            and first.act_bits == other.act_bits and first.act_signed == other.act_signed
            and first.activations.shape == other.activations.shape
            and np.array_equal(first.weight_scale, other.weight_scale)
            and first.act_scale == other.act_scale
            and first.act_zero_point == other.act_zero_point)


def _layer_items(layers):
    """Yield each item of ``layers`` as a list of `Layer` (a bare `Layer` is one image)."""
    for item in layers:
        yield [item] if isinstance(item, Layer) else list(item)


def save_network(directory, layers, *, name, source="", bits=None, per_channel=None, images=None,
                 rounding="half_even", act_signedness=None, extra=None, progress=None):
    """Write a network directory; return its manifest (the dict written to ``network.json``).

    This is how hand-made `Layer` objects become a network that ``effectual stats`` and
    ``effectual report`` read (the importers call it too). One conv layer, one image::

        import numpy as np
        from golden.layers import Layer, save_network

        rng = np.random.default_rng(0)
        conv = Layer(kind="conv", name="conv1", padding=(1, 1, 1, 1),
                     weights=rng.integers(-128, 128, size=(16, 8, 3, 3)),  # [K, C, R, S] int8
                     activations=np.maximum(rng.integers(-255, 256, size=(8, 32, 32)), 0),
                     weight_bits=8, act_bits=8, act_signed=False)          # [C, H, W] uint8
        save_network("mynet", [conv], name="mynet")   # then: effectual stats mynet

    Parameters
    ----------
    directory : path; created if needed. If it holds an earlier network, that network's files
        are deleted first; a non-empty directory without ``network.json`` is refused.
    layers : iterable (a generator is fine) over the network's layers in order. Each item is a
        `Layer` (a network of one image) or a sequence of `Layer`, one per image, that share
        name, weights and every other field except the activations.
    name : the network's name (shown by ``stats``/``report``).
    source : where the network came from (model path, workload...); default ``""``.
    bits : the quantization width recorded as the manifest's ``bits``, ``weight_bits`` and
        ``act_bits``. Default ``None``: taken from the layers (manifest ``weight_bits`` and
        ``act_bits`` the largest of the layers', ``bits`` the larger of the two). The layer
        files keep each layer's own widths whatever this says.
    per_channel : whether weight scales are per output channel; default ``None``: true when
        some layer has a ``[K]`` ``weight_scale``. ``rounding`` : the rounding mode used.
    images : list of dicts with at least ``"name"`` and ``"source"``, one per image. Default
        ``None``: ``{"name": "image<j>", "source": source}`` for each image of the first layer.
    act_signedness : optional string, how the importer chose signed or unsigned activation codes
        (``"auto"`` or ``"signed"``, see `effectual.importers.common`); written as the manifest
        key ``act_signedness`` when given, omitted otherwise.
    extra : JSON-serializable dict stored under ``"extra"`` (e.g. a workload's accuracy).
    progress : optional callable wrapping the layer iterable (e.g. ``tqdm``).

    Manifest keys: ``format`` ("effectual-network"), ``version`` (1), ``name``, ``source``,
    ``bits``, ``weight_bits``, ``act_bits``, ``per_channel``, ``rounding``, ``images`` (list of
    ``{index, name, source, dir}``), ``layers`` (list of ``{index, name, kind, op_type, files,
    weights_shape, activations_shape, output_shape, stride, padding, groups, weight_bits,
    act_bits, act_signed, act_scale, macs, input_padded_by_op}``; ``files[j]`` is the layer file
    of image ``j``, relative to ``directory``; ``input_padded_by_op`` is the layer's extra key of
    that name, false without it: true when an importer captured the output of a separate pad
    operator, whose border zeros then count as stored activations), ``macs`` (per image, summed
    over layers), ``extra``, and ``act_signedness`` when given. `load_manifest` lists the keys
    a reader requires.
    """
    directory = Path(directory)
    items = _layer_items(layers)
    if images is None:
        first_item = next(items, None)
        count = len(first_item) if first_item is not None else 1
        images = [{"name": f"image{j}", "source": source} for j in range(count)]
        items = itertools.chain([first_item] if first_item is not None else [], items)
    images = [dict(image) for image in images]
    if not images:
        raise ValueError("images must list at least one image")
    for index, image in enumerate(images):
        if "name" not in image or "source" not in image:
            raise ValueError(f"images[{index}] needs 'name' and 'source'")
        image.update(index=index, dir=_image_dir(index))
    _clear_previous(directory)
    for image in images:
        (directory / image["dir"]).mkdir(parents=True, exist_ok=True)
    entries = []
    used_names = set()
    widths = {"weight_bits": 0, "act_bits": 0}
    any_per_channel = False
    iterable = progress(items) if progress is not None else items
    for index, per_image in enumerate(iterable):
        per_image = list(per_image)
        if len(per_image) != len(images):
            raise ValueError(f"layer {index}: {len(per_image)} images given, the network has "
                             f"{len(images)}")
        for layer in per_image:
            if not isinstance(layer, Layer):
                raise TypeError(f"layer {index}: items must be golden.layers.Layer objects, "
                                f"not {type(layer).__name__}")
        first = per_image[0]
        for other in per_image[1:]:
            if not _same_layer(first, other):
                raise ValueError(f"layer {index} ({first.name!r}): the images disagree on the "
                                 f"layer's name, weights or parameters")
        stem = f"{index:03d}_{_safe_name(first.name)}"
        if stem in used_names:
            raise AssertionError(stem)
        used_names.add(stem)
        files = []
        for image, layer in zip(images, per_image):
            relative = f"{image['dir']}/{stem}.npz"
            save_layer(directory / relative, layer, image=np.int64(image["index"]),
                       layer_index=np.int64(index))
            files.append(relative)
        op_type = first.extra.get("op_type")
        padded_by_op = first.extra.get("input_padded_by_op")
        widths["weight_bits"] = max(widths["weight_bits"], first.weight_bits)
        widths["act_bits"] = max(widths["act_bits"], first.act_bits)
        any_per_channel = any_per_channel or np.ndim(first.weight_scale) == 1
        entries.append({
            "index": index, "name": first.name, "kind": first.kind,
            "op_type": str(op_type) if op_type is not None else "",
            "files": files,
            "weights_shape": list(first.weights.shape),
            "activations_shape": list(first.activations.shape),
            "output_shape": list(first.output_shape),
            "stride": list(first.stride), "padding": list(first.padding),
            "groups": first.groups, "weight_bits": first.weight_bits,
            "act_bits": first.act_bits, "act_signed": first.act_signed,
            "act_scale": first.act_scale, "macs": first.macs,
            "input_padded_by_op": bool(padded_by_op) if padded_by_op is not None else False,
        })
    if not entries:
        raise ValueError(f"{directory}: a network needs at least one layer")
    if bits is None:
        weight_bits, act_bits = widths["weight_bits"], widths["act_bits"]
        bits = max(weight_bits, act_bits)
    else:
        weight_bits = act_bits = bits
    if per_channel is None:
        per_channel = any_per_channel
    manifest = {
        "format": FORMAT, "version": VERSION, "name": name, "source": source,
        "bits": bits, "weight_bits": weight_bits, "act_bits": act_bits,
        "per_channel": bool(per_channel),
        "rounding": rounding, "images": images, "layers": entries,
        "macs": sum(entry["macs"] for entry in entries), "extra": dict(extra or {}),
    }
    if act_signedness is not None:
        manifest["act_signedness"] = str(act_signedness)
    temporary = directory / (MANIFEST + ".tmp")
    temporary.write_text(json.dumps(manifest, indent=1) + "\n")
    os.replace(temporary, directory / MANIFEST)
    return manifest


_MANIFEST_KEYS = ("format", "version", "name", "source", "bits", "per_channel", "images",
                  "layers")
_ENTRY_KEYS = ("name", "kind", "files", "weights_shape", "activations_shape", "output_shape",
               "macs")


def load_manifest(directory):
    """Read and check ``directory/network.json``; return the manifest dict (see `save_network`).

    Required keys: ``format`` (``"effectual-network"``), ``version`` (1), ``name``, ``source``,
    ``bits``, ``per_channel``, ``images`` (a non-empty list, one item per image) and ``layers``,
    each entry with ``name``, ``kind``, ``files`` (one layer file per image), ``weights_shape``,
    ``activations_shape``, ``output_shape`` and ``macs`` (per image); `save_network` writes
    more (all optional for readers). Raises ``OSError`` if the file is missing and
    ``ValueError`` naming the file and key if it is not JSON, lacks a key, lists files outside
    the directory or a wrong number of files, or has a ``macs`` that is not a positive integer
    or an ``output_shape`` that is not a list of positive integers. `load_network` checks the
    entries against the layer files (readers ignore the top-level ``macs``).
    """
    path = Path(directory) / MANIFEST
    text = path.read_text()
    try:
        manifest = json.loads(text)
    except ValueError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(manifest, dict):
        raise ValueError(f"{path}: must hold a JSON object")
    for key in _MANIFEST_KEYS:
        if key not in manifest:
            raise ValueError(f"{path}: key {key!r} is missing")
    if manifest["format"] != FORMAT:
        raise ValueError(f"{path}: key 'format' must be {FORMAT!r}, not {manifest['format']!r}")
    if manifest["version"] != VERSION:
        raise ValueError(f"{path}: key 'version' {manifest['version']!r} is not supported "
                         f"(this reader knows version {VERSION})")
    images, layers = manifest["images"], manifest["layers"]
    if not isinstance(images, list) or not images:
        raise ValueError(f"{path}: key 'images' must be a non-empty list")
    if not isinstance(layers, list):
        raise ValueError(f"{path}: key 'layers' must be a list")
    for index, entry in enumerate(layers):
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: key 'layers'[{index}] must be an object")
        for key in _ENTRY_KEYS:
            if key not in entry:
                raise ValueError(f"{path}: key 'layers'[{index}].{key} is missing")
        files = entry["files"]
        if not isinstance(files, list) or len(files) != len(images):
            raise ValueError(f"{path}: key 'layers'[{index}].files must list one file per "
                             f"image ({len(images)})")
        for name in files:
            if (not isinstance(name, str) or os.path.isabs(name)
                    or ".." in Path(name).parts):
                raise ValueError(f"{path}: key 'layers'[{index}].files holds {name!r}, which "
                                 f"is not a relative path inside the directory")
        macs = entry["macs"]
        if isinstance(macs, bool) or not isinstance(macs, int) or macs < 1:
            raise ValueError(f"{path}: key 'layers'[{index}].macs must be a positive integer, "
                             f"not {macs!r}")
        shape = entry["output_shape"]
        if (not isinstance(shape, list) or not shape
                or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in shape)):
            raise ValueError(f"{path}: key 'layers'[{index}].output_shape must be a list of "
                             f"positive integers, not {shape!r}")
    return manifest


def load_network(directory, *, images=None):
    """Return ``(manifest, layers)`` for a network directory.

    ``layers`` is a lazy iterator of ``(entry, image_index, Layer)`` in manifest order, all
    images of layer 0 first, then layer 1, and so on (one layer file in memory at a time);
    ``entry`` is the layer's manifest dict. ``images`` selects images: ``None`` (all), an index,
    or a list of indices. A layer file that disagrees with its manifest entry (name, kind or
    shapes) is a ``ValueError`` naming the file; an entry whose ``output_shape`` or ``macs``
    is not the layer's (`Layer.output_shape`, `Layer.macs`) is a ``ValueError`` naming the
    manifest, the key and the layer file.
    """
    directory = Path(directory)
    manifest = load_manifest(directory)
    count = len(manifest["images"])
    if images is None:
        selected = list(range(count))
    else:
        selected = [images] if isinstance(images, (int, np.integer)) else list(images)
        for index in selected:
            if isinstance(index, bool) or not isinstance(index, (int, np.integer)) \
                    or not 0 <= index < count:
                raise ValueError(f"images must be indices in 0..{count - 1}, not {index!r}")

    manifest_path = directory / MANIFEST

    def generate():
        for index, entry in enumerate(manifest["layers"]):
            for image in selected:
                path = directory / entry["files"][image]
                layer = load_layer(path)
                checks = (("name", layer.name, entry["name"]), ("kind", layer.kind, entry["kind"]),
                          ("weights", list(layer.weights.shape), entry["weights_shape"]),
                          ("activations", list(layer.activations.shape),
                           entry["activations_shape"]))
                for key, found, listed in checks:
                    if found != listed:
                        raise ValueError(f"{path}: key {key!r} is {found!r} but {MANIFEST} "
                                         f"lists {listed!r}")
                derived = (("output_shape", list(layer.output_shape)), ("macs", layer.macs))
                for key, found in derived:
                    if entry[key] != found:
                        raise ValueError(f"{manifest_path}: key 'layers'[{index}].{key} is "
                                         f"{entry[key]!r} but the layer in "
                                         f"{entry['files'][image]} has {found!r}")
                yield entry, image, layer

    return manifest, generate()
