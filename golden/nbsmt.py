"""NB-SMT / SySMT (Shomron and Weiser, MICRO 2020): threads sharing one 8b x 8b MAC per PE.

The paper body was not available; this is a reconstruction (spec section 2) with every open
choice a documented parameter of `hw.params.SySMTParams`.

**Threads.** A processing element (PE) serves ``T`` (1, 2 or 4) threads, each an (activation,
weight) pair of the *same* dot product: step ``i`` of a dot product of length ``L`` takes the
reduction elements ``i*T .. i*T + T - 1`` (the reduction is zero-padded to a multiple of ``T``).
In a layer the reduction is ordered kernel-position-major, channel-minor (as SPARQ, see
`golden.sparq.layer_reduction_order`), so the threads are adjacent input channels of one tap.

**Idle threads.** A thread is *active* when its activation is non-zero and, with
``skip_zero_weights`` (default, NB-SMT), its weight is non-zero too. An idle thread needs no
multiplier slot.

**Squeeze rule** (never a stall). With ``m`` other active threads in the same PE and cycle, an
active thread's product is

========  =====================  ========================================================
threads   m                      product
========  =====================  ========================================================
any       0                      ``a * w`` exact (the whole 8b x 8b MAC)
2         1                      ``R(a) * w``: activation squeezed to 4 bits, weight 8 bits
4         1                      ``R(a) * w`` (two 4b x 4b units per thread)
4         2 or 3                 ``R(a) * Rw(w)``: both squeezed to 4 bits (one unit each)
========  =====================  ========================================================

``R`` is SPARQ's 2opt window (`reduce_activation`): values below 16 stay exact, larger ones keep
their high nibble (``nibble << 4``). ``Rw`` is the signed analogue (`reduce_weight`): weights in
-8..7 stay exact, others keep ``w >> 4`` (``nibble << 4``, nibble in -8..7). With ``rounding``
both round half to even on the dropped four bits and saturate in the 4-bit window; without it
they truncate (the activation's low bits are dropped; the weight is shifted arithmetically,
i.e. rounded toward minus infinity).

**Signed activations** in a layer are squeezed on their magnitude and keep their sign (the PE
itself takes uint8 activations).

**Cycles** of an output-stationary R x C array (`tile_cycles`, `layer_cycles`): each tile of R
output positions by C output channels takes ``ceil(L / T)`` input steps, then ``R + C - 2``
flush cycles (the skew of the array), then ``R`` cycles to emit its rows. NB-SMT never stalls,
so cycles do not depend on the data; the data decide how many products are squeezed.
"""

import math
from itertools import combinations

import numpy as np

from hw.params import SySMTParams

from .layers import Layer, layer_patches, layer_weight_matrix
from .sparq import _exact_matmul, layer_reduction_order, window

__all__ = ["reduce_activation", "reduce_weight", "thread_class", "nbsmt_step", "nbsmt_dot",
           "nbsmt_matmul", "nbsmt_layer_output", "tile_cycles", "gemm_cycles", "layer_cycles",
           "layer_gemm", "array_tiles"]

#: offsets of the 4-bit activation window (SPARQ 2opt)
ACT_OFFSETS = (0, 4)
#: class of an active thread's product by the number of other active threads (0 exact,
#: 1 activation squeezed, 2 activation and weight squeezed), per thread count
THREAD_CLASSES = {1: (0,), 2: (0, 1), 4: (0, 1, 2, 2)}


def _check_params(params):
    if not isinstance(params, SySMTParams):
        raise TypeError(f"params must be a hw.params.SySMTParams, not {params!r}")


def _int_array(x, name):
    x = np.asarray(x)
    if x.dtype == np.bool_ or not np.issubdtype(x.dtype, np.integer):
        raise TypeError(f"{name} must be integers, not dtype {x.dtype}")
    return x.astype(np.int64)


def reduce_activation(a, *, rounding):
    """Return the 4-bit squeezed value of uint8 activations ``a`` (SPARQ 2opt window)."""
    return window(a, width=4, offsets=ACT_OFFSETS, rounding=rounding)[0]


def reduce_weight(w, *, rounding):
    """Return the 4-bit squeezed value of int8 weights ``w``.

    Named steps: weights in -8..7 are kept (a signed nibble at offset 0); otherwise the signed
    nibble ``w >> 4`` (arithmetic shift: truncation toward minus infinity), then with
    ``rounding`` round half to even on the four dropped bits and saturate to 7 (only 127..120
    can carry out: they give 112), and the value is ``nibble << 4``.
    """
    w = _int_array(w, "weights")
    if w.size and (w.min() < -128 or w.max() > 127):
        raise ValueError(f"weights must be signed 8-bit (-128..127), not {w.min()}..{w.max()}")
    small = (w >= -8) & (w <= 7)
    nibble = w >> 4
    if rounding:
        rest = w & 15
        up = (rest > 8) | ((rest == 8) & ((nibble & 1) == 1))
        nibble = np.minimum(nibble + up, 7)
    return np.where(small, w, nibble << 4)


def thread_class(others, threads):
    """Return the product class (0, 1, 2) of an active thread with ``others`` other active
    threads in a PE of ``threads`` threads."""
    return np.asarray(THREAD_CLASSES[threads])[np.asarray(others)]


def _active(a, w, params):
    active = a != 0
    if params.skip_zero_weights:
        active = active & (w != 0)
    return active


def nbsmt_step(acts, weights, params):
    """Return ``(sum, active, squeezed)`` of one PE cycle: the direct reference.

    ``acts`` (uint8) and ``weights`` (int8) are ``[..., T]``, ``T = params.threads``: one value
    per thread. ``sum`` is the cycle's contribution to the accumulator, ``active`` the number of
    active threads and ``squeezed`` the number of active threads whose operands were squeezed.
    """
    _check_params(params)
    a, w = np.broadcast_arrays(_int_array(acts, "activations"), _int_array(weights, "weights"))
    if a.shape[-1] != params.threads:
        raise ValueError(f"the last axis must hold the {params.threads} threads, not "
                         f"{a.shape[-1]}")
    if a.size and (a.min() < 0 or a.max() > 255):
        raise ValueError("activations must be unsigned 8-bit (0..255)")
    active = _active(a, w, params)
    count = active.sum(axis=-1, keepdims=True)
    cls = thread_class(np.maximum(count - 1, 0), params.threads)
    ra = reduce_activation(a, rounding=params.rounding)
    rw = reduce_weight(w, rounding=params.rounding)
    product = np.where(cls == 0, a * w, np.where(cls == 1, ra * w, ra * rw))
    total = np.sum(np.where(active, product, 0), axis=-1)
    squeezed = np.sum(active & (count > 1), axis=-1)
    return total, count[..., 0], squeezed


def _steps(x, threads):
    length = x.shape[-1]
    pad = -length % threads
    if pad:
        x = np.concatenate([x, np.zeros(x.shape[:-1] + (pad,), dtype=np.int64)], axis=-1)
    return x.reshape(x.shape[:-1] + (-1, threads))


def nbsmt_dot(acts, weights, params):
    """Return ``(dot, active, squeezed)`` of dot products over the last axis (direct reference).

    ``acts`` ``[..., L]`` (uint8) and ``weights`` ``[..., L]`` (int8) broadcast; step ``i`` takes
    elements ``i*T .. i*T + T - 1`` (zero-padded). ``active`` and ``squeezed`` are the thread
    counts summed over the steps.
    """
    _check_params(params)
    a, w = np.broadcast_arrays(_int_array(acts, "activations"), _int_array(weights, "weights"))
    total, active, squeezed = nbsmt_step(_steps(a, params.threads), _steps(w, params.threads),
                                         params)
    return total.sum(axis=-1), active.sum(axis=-1), squeezed.sum(axis=-1)


def _mobius(indicator, size):
    """Coefficients ``c[k]`` with ``indicator(m) = sum_k c[k] * C(m, k)`` for ``m < size``."""
    return [sum((-1) ** (k - i) * math.comb(k, i) * indicator[i] for i in range(k + 1))
            for k in range(size)]


def nbsmt_matmul(acts, weights, params):
    """Return ``(out, counts)``: NB-SMT products of ``acts`` ``[M, L]`` and ``weights`` ``[N, L]``.

    ``out[i, j]`` equals ``nbsmt_dot(acts[i], weights[j])[0]``, computed with matrix products:
    the class of a thread's product depends on which other threads are active, and each
    activity indicator is a product of an activation factor and a weight factor, so the
    inclusion-exclusion expansion over the subsets of the other threads is a sum of
    ``(activation term) @ (weight term).T`` products (exact, int64 results). ``counts`` holds
    ``macs`` (``M * N * L``), ``active`` (active thread-operations) and ``squeezed`` (those
    squeezed), as Python ints.
    """
    _check_params(params)
    a = _int_array(acts, "activations")
    w = _int_array(weights, "weights")
    if a.ndim != 2 or w.ndim != 2 or a.shape[1] != w.shape[1]:
        raise ValueError(f"acts [M, L] and weights [N, L] must share L, not {a.shape} and "
                         f"{w.shape}")
    if a.size and (a.min() < 0 or a.max() > 255):
        raise ValueError("activations must be unsigned 8-bit (0..255)")
    return _matmul(a, w, params)


def _matmul(a, w, params):
    """`nbsmt_matmul` without checks, batched over leading axes (``a`` ``[..., M, L]``, ``w``
    ``[..., N, L]``); signed activations are squeezed on their magnitude."""
    t = params.threads
    macs = int(np.prod(a.shape[:-1])) * w.shape[-2] * a.shape[-1]
    a_steps, w_steps = _steps(a, t), _steps(w, t)
    ra = np.sign(a_steps) * reduce_activation(np.abs(a_steps), rounding=params.rounding)
    rw = reduce_weight(w_steps, rounding=params.rounding)
    xa = (a_steps != 0).astype(np.int64)
    xw = (w_steps != 0).astype(np.int64) if params.skip_zero_weights else \
        np.ones_like(w_steps)
    classes = THREAD_CLASSES[t]
    values = [(a_steps, w_steps), (ra, w_steps), (ra, rw)]
    out = np.zeros(a.shape[:-1] + (w.shape[-2],), dtype=np.int64)
    active = 0
    squeezed = 0
    squeeze_coeffs = _mobius([int(c > 0) for c in classes], t)
    class_coeffs = [_mobius([int(c == cls) for c in classes], t) for cls in range(3)]
    for thread in range(t):
        others = [j for j in range(t) if j != thread]
        for size in range(t):
            for subset in combinations(others, size):
                fa = np.prod(xa[..., list(subset)], axis=-1) if subset else 1
                fw = np.prod(xw[..., list(subset)], axis=-1) if subset else 1
                for cls, (va, vw) in enumerate(values):
                    coeff = class_coeffs[cls][size]
                    if coeff:
                        out += coeff * _exact_matmul(va[..., thread] * fa,
                                                     np.swapaxes(vw[..., thread] * fw, -1, -2))
                # active pairs summed over outputs: sum_s (sum_m fa) * (sum_n fw)
                count = int(np.sum(np.sum(xa[..., thread] * fa, axis=-2)
                                   * np.sum(xw[..., thread] * fw, axis=-2)))
                if size == 0:
                    active += count
                if squeeze_coeffs[size]:
                    squeezed += squeeze_coeffs[size] * count
    return out, {"macs": macs, "active": active, "squeezed": squeezed}


def layer_gemm(layer):
    """Yield ``(group, rows, acts, weights)``: each group's GEMM of ``layer`` in NB-SMT order.

    ``acts`` is ``[P_chunk, L]`` (output positions of the rows ``rows`` (a slice of the output
    rows; fc: ``slice(0, 1)``), reduction in ``(r, s, c)`` order), ``weights`` ``[K/G, L]``.
    """
    order = layer_reduction_order(layer)
    wm = layer_weight_matrix(layer)[:, :, order]
    if layer.kind == "fc":
        yield 0, slice(0, 1), layer.activations.reshape(1, -1)[:, order], wm[0]
        return
    oh, ow = layer.output_shape[1:]
    g, _, length = wm.shape
    chunk = max(1, (1 << 20) // max(1, g * ow * length))
    for start in range(0, oh, chunk):
        stop = min(oh, start + chunk)
        patches = layer_patches(layer, rows=slice(start, stop))[:, :, order]
        for group in range(g):
            yield group, slice(start, stop), patches[group], wm[group]


def nbsmt_layer_output(layer, params):
    """Return ``(out, counts)``: ``layer``'s output under NB-SMT (`layer_output`'s shape) and
    the summed ``macs``, ``active`` and ``squeezed`` counts (see `nbsmt_matmul`).

    Requires ``act_zero_point == 0`` and 8-bit activations (signed: magnitude up to 255).
    """
    _check_params(params)
    if not isinstance(layer, Layer):
        raise TypeError(f"layer must be a golden.layers.Layer, not {type(layer).__name__}")
    if layer.act_zero_point != 0:
        raise ValueError(f"layer {layer.name!r}: NB-SMT needs act_zero_point 0, not "
                         f"{layer.act_zero_point}")
    if layer.act_bits > (9 if layer.act_signed else 8) or layer.weight_bits > 8:
        raise ValueError(f"layer {layer.name!r}: NB-SMT needs 8-bit operands, not act_bits "
                         f"{layer.act_bits}, weight_bits {layer.weight_bits}")
    order = layer_reduction_order(layer)
    wm = layer_weight_matrix(layer)[:, :, order]
    if layer.kind == "fc":
        acts = layer.activations.reshape(1, 1, -1)[:, :, order]
        _check_magnitude(layer, acts)
        out, counts = _matmul(acts, wm, params)
        return out.reshape(layer.output_shape), counts
    k, oh, ow = layer.output_shape
    g, kg, length = wm.shape
    out = np.empty((g, kg, oh, ow), dtype=np.int64)
    totals = {"macs": 0, "active": 0, "squeezed": 0}
    chunk = max(1, (1 << 20) // max(1, g * ow * length))
    for start in range(0, oh, chunk):
        stop = min(oh, start + chunk)
        patches = layer_patches(layer, rows=slice(start, stop))[:, :, order]
        _check_magnitude(layer, patches)
        part, counts = _matmul(patches, wm, params)
        out[:, :, start:stop, :] = np.swapaxes(part, 1, 2).reshape(g, kg, stop - start, ow)
        for key in totals:
            totals[key] += counts[key]
    return out.reshape(layer.output_shape), totals


def _check_magnitude(layer, acts):
    if layer.act_signed and acts.size and np.abs(acts).max() > 255:
        raise ValueError(f"layer {layer.name!r}: activation magnitudes must be up to 255")


def array_tiles(acts, weights, params):
    """Yield the tiles of the GEMM ``acts @ weights.T`` on the array, in the order it runs them.

    ``acts`` ``[P, L]`` (uint8), ``weights`` ``[K, L]`` (int8). Tiles go channel block by
    channel block within each position block. Each item is ``(positions, channels, act_steps,
    weight_steps, expected)``: the ``range`` of output positions (rows) and channels (columns)
    the tile covers, ``act_steps`` ``[S, rows, T]`` and ``weight_steps`` ``[S, cols, T]`` (the
    stream payloads, zero-padded; ``S = ceil(L / T)``), and ``expected`` ``[rows, cols]``: the
    tile's result rows (`nbsmt_matmul`; padding rows and columns are zero).
    """
    _check_params(params)
    a = _int_array(acts, "activations")
    w = _int_array(weights, "weights")
    r, c, t = params.rows, params.cols, params.threads
    steps = -(-a.shape[1] // t)
    for p0 in range(0, a.shape[0], r):
        block_a = np.zeros((r, steps * t), dtype=np.int64)
        part = a[p0:p0 + r]
        block_a[:len(part), :a.shape[1]] = part
        for k0 in range(0, w.shape[0], c):
            block_w = np.zeros((c, steps * t), dtype=np.int64)
            wpart = w[k0:k0 + c]
            block_w[:len(wpart), :w.shape[1]] = wpart
            expected, _ = nbsmt_matmul(block_a, block_w, params)
            yield (range(p0, p0 + len(part)), range(k0, k0 + len(wpart)),
                   block_a.reshape(r, steps, t).transpose(1, 0, 2),
                   block_w.reshape(c, steps, t).transpose(1, 0, 2), expected)


def tile_cycles(length, params):
    """Return the cycles of one R x C tile with reduction length ``length``:
    ``ceil(length / T)`` steps + ``R + C - 2`` flush + ``R`` output rows."""
    _check_params(params)
    return -(-length // params.threads) + params.rows + params.cols - 2 + params.rows


def gemm_cycles(positions, channels, length, params, *, groups=1):
    """Return the array cycles of ``groups`` GEMMs of ``positions`` x ``channels`` outputs with
    reduction ``length``: every group is tiled into ``ceil(positions / R) * ceil(channels / C)``
    tiles, each `tile_cycles`."""
    _check_params(params)
    tiles = groups * -(-positions // params.rows) * -(-channels // params.cols)
    return tiles * tile_cycles(length, params)


def layer_cycles(layer, params):
    """Return the cycles of ``layer`` on the array (`gemm_cycles` of its im2col GEMM)."""
    positions = 1 if layer.kind == "fc" else int(np.prod(layer.output_shape[1:]))
    return gemm_cycles(positions, layer.out_channels // layer.groups, layer.reduction_length,
                       params, groups=layer.groups)
