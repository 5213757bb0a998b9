"""SPARQ (Shomron et al., NeurIPS 2021): sparsity-aware 4-bit windows of 8-bit activations.

bSPARQ keeps an ``n``-bit window of a non-zero uint8 activation ``x``. The window is placed at
the lowest allowed offset ``s`` (from the placement set ``P``, `hw.params.SPARQ_PLACEMENTS`)
whose window still holds the leading one: ``s = min(o in P : x < 2**(o + n))``. Named steps
(`window`), exactly as the authors' CUDA kernel computes them:

1. *placement*: ``s`` as above,
2. *truncate* (RAW): ``h = x & (((1 << n) - 1) << s)``,
3. *round* (ROUND only): round half to even on the window: add ``1 << s`` when ``s > 0``, the
   guard bit ``x[s-1]`` is set and either a sticky bit below it or the window's LSB ``x[s]`` is,
4. *saturate* (ROUND only): a carry out of the window (``h == 1 << (s + n)``) gives the
   all-ones window ``((1 << n) - 1) << s``; the window never moves up.

vSPARQ pairs reduction elements ``(2i, 2i+1)``. When both activations are non-zero each gets its
``n``-bit window; when one is zero the survivor gets a ``2n``-bit window with offsets
``0 .. 8 - 2n`` (for ``n = 4`` that is the exact value), rounded the same way. Only activation
zeros count (weights are never tested). An odd reduction length gets a zero partner at the end.

In a layer, SPARQ orders each output's reduction kernel-position-major, channel-minor (the
``(r, s, c)`` order), so that a pair is two adjacent input channels at one kernel tap
(`layer_reduction_order`). Signed activations are windowed on their magnitude and keep their
sign (a documented choice: SPARQ itself only sees post-ReLU uint8 activations).
"""

import numpy as np

from hw.params import SparqParams

from .layers import Layer, layer_patches, layer_weight_matrix

__all__ = ["window", "bsparq", "vsparq_pairs", "sparq_activations", "sparq_dot",
           "sparq_matmul", "layer_reduction_order", "sparq_layer_output"]

# float64 holds every integer below 2**53 exactly: below it a BLAS matmul is exact.
_FLOAT_EXACT = 1 << 53


def _check_params(params):
    if not isinstance(params, SparqParams):
        raise TypeError(f"params must be a hw.params.SparqParams, not {params!r}")


def _check_uint8(x, name="activations"):
    x = np.asarray(x)
    if x.dtype == np.bool_ or not np.issubdtype(x.dtype, np.integer):
        raise TypeError(f"{name} must be integers, not dtype {x.dtype}")
    x = x.astype(np.int64)
    if x.size and (x.min() < 0 or x.max() > 255):
        raise ValueError(f"{name} must be unsigned 8-bit (0..255), not {x.min()}..{x.max()}")
    return x


def window(x, *, width, offsets, rounding):
    """Return ``(value, shift, field)`` of the ``width``-bit window of uint8 values ``x``.

    ``value = field << shift`` is the windowed activation; ``shift`` is the chosen offset and
    ``field`` the ``width``-bit window contents after rounding and saturation. Zero gives
    ``(0, min(offsets), 0)``. Vectorized over any shape; int64 results.
    """
    x = _check_uint8(x)
    offsets = sorted(int(o) for o in offsets)
    shift = np.full(x.shape, offsets[-1], dtype=np.int64)
    for offset in reversed(offsets):  # placement: the lowest window that holds the leading one
        shift = np.where(x < (1 << (offset + width)), offset, shift)
    mask = ((1 << width) - 1) << shift
    value = x & mask  # truncate
    if rounding:
        below = np.maximum(shift - 1, 0)
        guard = ((x >> below) & 1) == 1
        sticky = (x & ((1 << below) - 1)) != 0
        lsb = ((x >> shift) & 1) == 1
        up = (shift > 0) & guard & (sticky | lsb)
        value = np.where(up, value + (1 << shift), value)  # round half to even
        value = np.where(value == (1 << (shift + width)), mask, value)  # saturate
    return value, shift, value >> shift


def bsparq(x, params):
    """Return the bSPARQ value of uint8 activations ``x`` (``params.window_width`` bits)."""
    _check_params(params)
    return window(x, width=params.window_width, offsets=params.offsets,
                  rounding=params.rounding)[0]


def vsparq_pairs(a1, a2, params):
    """Return ``(h1, h2)``: the values vSPARQ multiplies for activation pairs ``(a1, a2)``.

    Both non-zero: each its bSPARQ window; one zero: the other its ``2 * window_width``-bit
    window (exact for 4-bit windows); both zero: zeros. Vectorized, broadcasting ``a1``/``a2``.
    """
    _check_params(params)
    a1, a2 = np.broadcast_arrays(_check_uint8(a1), _check_uint8(a2))
    n = params.window_width
    b1, b2 = bsparq(a1, params), bsparq(a2, params)
    s1 = window(a1, width=2 * n, offsets=params.survivor_offsets, rounding=params.rounding)[0]
    s2 = window(a2, width=2 * n, offsets=params.survivor_offsets, rounding=params.rounding)[0]
    both = (a1 != 0) & (a2 != 0)
    return np.where(both, b1, s1), np.where(both, b2, s2)


def sparq_activations(acts, params):
    """Return the vSPARQ values of activation vectors ``acts`` (pairs along the last axis).

    ``acts`` is ``[..., L]`` uint8; the result has the same shape. An odd ``L`` pairs the last
    element with a zero (so it stays exact for 4-bit windows).
    """
    _check_params(params)
    acts = _check_uint8(acts)
    length = acts.shape[-1]
    if length % 2:
        acts = np.concatenate([acts, np.zeros(acts.shape[:-1] + (1,), dtype=np.int64)], axis=-1)
    h1, h2 = vsparq_pairs(acts[..., 0::2], acts[..., 1::2], params)
    out = np.empty(acts.shape, dtype=np.int64)
    out[..., 0::2], out[..., 1::2] = h1, h2
    return out[..., :length]


def _exact_matmul(a, b):
    """Return ``a @ b`` exactly (float64 BLAS when every partial sum is below 2**53)."""
    if a.size == 0 or b.size == 0:
        return np.matmul(a, b)
    bound = int(np.abs(a).max()) * int(np.abs(b).max()) * a.shape[-1]
    if bound < _FLOAT_EXACT:
        return np.rint(np.matmul(a.astype(np.float64), b.astype(np.float64))).astype(np.int64)
    return np.matmul(a, b)


def sparq_dot(acts, weights, params):
    """Return the vSPARQ dot products over the last axis (int64).

    ``acts`` ``[..., L]`` uint8 and ``weights`` ``[..., L]`` integers broadcast against each
    other; the activations of each pair ``(2i, 2i+1)`` are windowed as `sparq_activations` does
    and multiplied by their weights exactly.
    """
    h = sparq_activations(acts, params)
    weights = np.asarray(weights)
    if weights.dtype == np.bool_ or not np.issubdtype(weights.dtype, np.integer):
        raise TypeError(f"weights must be integers, not dtype {weights.dtype}")
    return np.sum(h * weights.astype(np.int64), axis=-1)


def sparq_matmul(acts, weights, params):
    """Return ``sparq(acts) @ weights.T`` exactly: ``acts`` ``[M, L]``, ``weights`` ``[N, L]``."""
    h = sparq_activations(acts, params)
    return _exact_matmul(h, np.asarray(weights, dtype=np.int64).T)


def layer_reduction_order(layer):
    """Return the permutation of a reduction axis from ``(c, r, s)`` to SPARQ's ``(r, s, c)``.

    ``patches[..., order]`` (`golden.layers.layer_patches`) and ``weights[..., order]``
    (`golden.layers.layer_weight_matrix`) put channel pairs of one kernel tap next to each other.
    """
    r, s = layer.kernel_size
    cg = layer.channels_per_group
    return np.arange(cg * r * s).reshape(cg, r, s).transpose(1, 2, 0).reshape(-1)


def _signed_sparq(patches, params):
    magnitude = np.abs(patches)
    if magnitude.size and magnitude.max() > 255:
        raise ValueError("signed activations must have magnitudes up to 255")
    return np.sign(patches) * sparq_activations(magnitude, params)


def sparq_layer_output(layer, params, *, rows_per_chunk=None):
    """Return the output of ``layer`` computed with vSPARQ activations (int64, `layer_output`'s
    shape).

    Named steps: (1) im2col patches (`layer_patches`), (2) reduction reordered to ``(r, s, c)``
    (`layer_reduction_order`), (3) vSPARQ on each output's activation vector (sign-magnitude for
    signed activations), (4) exact product with the weights. Requires ``act_zero_point == 0``
    (a zero code must be a real zero) and activations of at most 8 bits (unsigned) or 9 bits
    (signed, magnitude up to 255).
    """
    _check_params(params)
    if not isinstance(layer, Layer):
        raise TypeError(f"layer must be a golden.layers.Layer, not {type(layer).__name__}")
    if layer.act_zero_point != 0:
        raise ValueError(f"layer {layer.name!r}: SPARQ needs act_zero_point 0, not "
                         f"{layer.act_zero_point}")
    if layer.act_bits > (9 if layer.act_signed else 8):
        raise ValueError(f"layer {layer.name!r}: SPARQ needs 8-bit activations, not "
                         f"act_bits {layer.act_bits}")
    order = layer_reduction_order(layer)
    wm = layer_weight_matrix(layer)[:, :, order]
    if layer.kind == "fc":
        patches = layer.activations.reshape(1, 1, -1)[:, :, order]
        trim = _signed_sparq(patches, params) if layer.act_signed else \
            sparq_activations(patches, params)
        return _exact_matmul(trim[0], wm[0].T).reshape(layer.output_shape)
    k, oh, ow = layer.output_shape
    g, kg, length = wm.shape
    out = np.empty((g, kg, oh, ow), dtype=np.int64)
    chunk = rows_per_chunk or max(1, (1 << 22) // max(1, g * ow * length))
    for start in range(0, oh, chunk):
        stop = min(oh, start + chunk)
        patches = layer_patches(layer, rows=slice(start, stop))[:, :, order]
        trim = _signed_sparq(patches, params) if layer.act_signed else \
            sparq_activations(patches, params)
        part = _exact_matmul(trim, wm.transpose(0, 2, 1))
        out[:, :, start:stop, :] = part.transpose(0, 2, 1).reshape(g, kg, stop - start, ow)
    return out.reshape(k, oh, ow)
