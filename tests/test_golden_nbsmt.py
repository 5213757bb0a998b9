"""golden.nbsmt against transcriptions of the NB-SMT rules (the NB-SMT spec, section 2).

Squeezing is checked exhaustively (every uint8 activation, every int8 weight) against Python's
own round-half-to-even; the 2-thread PE exhaustively over every activation pair x every weight
pair from {-128, -1, 0, 1, 127} against the rule as the spec writes it; 4 threads against a
per-thread Python loop; the matrix form (inclusion-exclusion over thread activity) against the
direct per-step reference; layers against naive loops; the cycle model against its definition.
"""

import itertools

import numpy as np
import pytest

from golden.layers import Layer, layer_output
from golden.nbsmt import (gemm_cycles, layer_cycles, nbsmt_dot, nbsmt_layer_output,
                          nbsmt_matmul, nbsmt_step, reduce_activation, reduce_weight,
                          tile_cycles)
from hw.params import SySMTParams

WEIGHTS = [-128, -1, 0, 1, 127]


def naive_reduce_activation(a, rounding):
    if a < 16:
        return a
    nibble = round(a / 16) if rounding else a // 16  # Python's round: half to even
    return min(nibble, 15) * 16


def naive_reduce_weight(w, rounding):
    if -8 <= w <= 7:
        return w
    nibble = round(w / 16) if rounding else w // 16
    return min(nibble, 7) * 16


@pytest.mark.parametrize("rounding", [True, False])
def test_reduce_exhaustive(rounding):
    a = np.arange(256)
    assert reduce_activation(a, rounding=rounding).tolist() == \
        [naive_reduce_activation(v, rounding) for v in range(256)]
    w = np.arange(-128, 128)
    assert reduce_weight(w, rounding=rounding).tolist() == \
        [naive_reduce_weight(v, rounding) for v in range(-128, 128)]


def test_reduce_weight_examples():
    assert reduce_weight(np.array([127, 120, 119, 24, 40, -128, -24, -40, -9, 7]),
                         rounding=True).tolist() == [112, 112, 112, 32, 32, -128, -32, -32, -16,
                                                     7]
    assert reduce_weight(np.array([127, -9, -1]), rounding=False).tolist() == [112, -16, -1]


def two_thread_rule(a1, a2, w1, w2, params):
    """The spec's 2-thread rule, vectorized from naive squeeze tables."""
    ra = np.array([naive_reduce_activation(v, params.rounding) for v in range(256)])
    act1 = (a1 != 0) & ((w1 != 0) | (not params.skip_zero_weights))
    act2 = (a2 != 0) & ((w2 != 0) | (not params.skip_zero_weights))
    both = act1 & act2
    return np.where(both, ra[a1] * w1 + ra[a2] * w2,
                    np.where(act1, a1 * w1, 0) + np.where(act2, a2 * w2, 0)), both


@pytest.mark.parametrize("rounding", [True, False])
@pytest.mark.parametrize("skip", [True, False])
def test_two_threads_exhaustive(rounding, skip):
    params = SySMTParams(threads=2, rounding=rounding, skip_zero_weights=skip)
    a1, a2, w1, w2 = (v.ravel() for v in np.meshgrid(np.arange(256), np.arange(256), WEIGHTS,
                                                     WEIGHTS, indexing="ij"))
    total, active, squeezed = nbsmt_step(np.stack([a1, a2], -1), np.stack([w1, w2], -1), params)
    want, both = two_thread_rule(a1, a2, w1, w2, params)
    assert np.array_equal(total, want)
    assert np.array_equal(squeezed, 2 * both)
    act1 = (a1 != 0) & ((w1 != 0) | (not skip))
    act2 = (a2 != 0) & ((w2 != 0) | (not skip))
    assert np.array_equal(active, act1.astype(int) + act2)


def naive_four_threads(acts, weights, params):
    active = [a != 0 and (w != 0 or not params.skip_zero_weights)
              for a, w in zip(acts, weights)]
    count = sum(active)
    total = 0
    for a, w, on in zip(acts, weights, active):
        if not on:
            continue
        if count == 1:
            total += a * w
        elif count == 2:
            total += naive_reduce_activation(a, params.rounding) * w
        else:
            total += (naive_reduce_activation(a, params.rounding)
                      * naive_reduce_weight(w, params.rounding))
    return total, count, count * (count > 1)


@pytest.mark.parametrize("rounding", [True, False])
@pytest.mark.parametrize("skip", [True, False])
def test_four_threads_against_naive(rounding, skip):
    params = SySMTParams(threads=4, rounding=rounding, skip_zero_weights=skip)
    values = [0, 1, 15, 16, 40, 200, 255]
    weights = [0, -128, 7, -9, 127]
    rng = np.random.default_rng(0)
    acts = np.array(list(itertools.product(values, repeat=4)))
    acts = acts[rng.permutation(len(acts))]
    wts = np.array(weights)[rng.integers(0, len(weights), size=acts.shape)]
    total, active, squeezed = nbsmt_step(acts, wts, params)
    for i in range(len(acts)):
        assert (total[i], active[i], squeezed[i]) == naive_four_threads(acts[i].tolist(),
                                                                        wts[i].tolist(), params)


def test_one_thread_is_exact():
    rng = np.random.default_rng(1)
    acts = rng.integers(0, 256, size=(9, 23))
    weights = rng.integers(-128, 128, size=(7, 23))
    out, counts = nbsmt_matmul(acts, weights, SySMTParams(threads=1))
    assert np.array_equal(out, acts @ weights.T)
    assert counts["squeezed"] == 0
    assert counts["active"] == int(((acts != 0)[:, None] & (weights != 0)[None]).sum())


@pytest.mark.parametrize("threads", [1, 2, 4])
@pytest.mark.parametrize("rounding, skip", [(True, True), (False, False), (True, False)])
@pytest.mark.parametrize("length", [1, 3, 8, 13])
def test_matmul_equals_direct(threads, rounding, skip, length):
    params = SySMTParams(threads=threads, rounding=rounding, skip_zero_weights=skip)
    rng = np.random.default_rng(length * 10 + threads)
    acts = rng.integers(0, 256, size=(8, length))
    acts[rng.random(acts.shape) < 0.4] = 0
    weights = rng.integers(-128, 128, size=(6, length))
    weights[rng.random(weights.shape) < 0.3] = 0
    out, counts = nbsmt_matmul(acts, weights, params)
    dot, active, squeezed = nbsmt_dot(acts[:, None, :], weights[None], params)
    assert np.array_equal(out, dot)
    assert counts == {"macs": 8 * 6 * length, "active": int(active.sum()),
                      "squeezed": int(squeezed.sum())}


def naive_patches(layer):
    c_total, h, w = layer.activations.shape
    k, cg, rk, sk = layer.weights.shape
    top, _, left, _ = layer.padding
    oh, ow = layer.output_shape[1:]
    out = np.zeros((layer.groups, oh * ow, rk * sk * cg), dtype=np.int64)
    for g, y, x in itertools.product(range(layer.groups), range(oh), range(ow)):
        for index, (r, s, c) in enumerate(itertools.product(range(rk), range(sk), range(cg))):
            row, col = y * layer.stride[0] + r - top, x * layer.stride[1] + s - left
            if 0 <= row < h and 0 <= col < w:
                out[g, y * ow + x, index] = layer.activations[g * cg + c, row, col]
    return out


def naive_signed_dot(acts, weights, params):
    """Per-step loops; a signed activation is squeezed on its magnitude and keeps its sign."""
    t = params.threads
    acts = list(acts) + [0] * (-len(acts) % t)
    weights = list(weights) + [0] * (-len(weights) % t)
    total = 0
    for start in range(0, len(acts), t):
        step = list(zip(acts[start:start + t], weights[start:start + t]))
        active = [a != 0 and (w != 0 or not params.skip_zero_weights) for a, w in step]
        count = sum(active)
        for (a, w), on in zip(step, active):
            if not on:
                continue
            sign = -1 if a < 0 else 1
            ra = sign * naive_reduce_activation(abs(a), params.rounding)
            if count == 1:
                total += a * w
            elif count == 2:
                total += ra * w
            else:
                total += ra * naive_reduce_weight(w, params.rounding)
    return total


@pytest.mark.parametrize("threads", [1, 2, 4])
@pytest.mark.parametrize("signed", [False, True])
def test_conv_layer_against_naive(threads, signed):
    params = SySMTParams(threads=threads)
    rng = np.random.default_rng(threads)
    acts = rng.integers(-128 if signed else 0, 128 if signed else 256, size=(6, 5, 5))
    acts[rng.random(acts.shape) < 0.4] = 0
    weights = rng.integers(-128, 128, size=(4, 3, 3, 3))
    weights[rng.random(weights.shape) < 0.3] = 0
    layer = Layer(kind="conv", weights=weights, activations=acts, padding=(1, 0, 1, 1),
                  stride=(1, 2), groups=2, act_signed=signed)
    out, counts = nbsmt_layer_output(layer, params)
    patches = naive_patches(layer)
    k, oh, ow = layer.output_shape
    expected = np.zeros((k, oh * ow), dtype=np.int64)
    for j in range(k):
        wj = layer.weights[j].transpose(1, 2, 0).reshape(-1)
        for p in range(oh * ow):
            expected[j, p] = naive_signed_dot(patches[j // 2, p].tolist(), wj.tolist(), params)
    assert np.array_equal(out, expected.reshape(k, oh, ow))
    assert counts["macs"] == layer.macs
    if threads == 1:
        assert np.array_equal(out, layer_output(layer))


def test_fc_layer_and_dense_small_values_exact():
    rng = np.random.default_rng(2)
    weights = rng.integers(1, 8, size=(5, 12)) * rng.choice([-1, 1], size=(5, 12))
    layer = Layer(kind="fc", weights=weights,
                  activations=rng.integers(1, 16, size=12))
    for threads in (1, 2, 4):
        out, counts = nbsmt_layer_output(layer, SySMTParams(threads=threads))
        assert np.array_equal(out, layer_output(layer))  # 4-bit operands are never changed
        assert counts["squeezed"] == (0 if threads == 1 else counts["active"])


@pytest.mark.parametrize("rows, cols, threads", [(2, 1, 1), (4, 4, 2), (3, 5, 4), (2, 7, 1)])
def test_cycle_model(rows, cols, threads):
    params = SySMTParams(rows=rows, cols=cols, threads=threads)
    for length in (1, 2, 5, 64):
        steps = -(-length // threads)
        assert tile_cycles(length, params) == steps + (rows + cols - 2) + rows
        tiles = 3 * -(-10 // rows) * -(-9 // cols)
        assert gemm_cycles(10, 9, length, params, groups=3) == tiles * tile_cycles(length, params)
    layer = Layer(kind="conv", weights=np.ones((6, 2, 3, 3), dtype=np.int64),
                  activations=np.ones((4, 6, 6), dtype=np.int64), groups=2)
    assert layer_cycles(layer, params) == 2 * -(-16 // rows) * -(-3 // cols) * \
        tile_cycles(18, params)


def test_errors():
    params = SySMTParams()
    with pytest.raises(TypeError, match=r"^params must be a hw\.params\.SySMTParams, not None$"):
        nbsmt_step(np.zeros((1, 2)), np.zeros((1, 2)), None)
    with pytest.raises(ValueError, match=r"^the last axis must hold the 2 threads, not 3$"):
        nbsmt_step(np.zeros((1, 3), dtype=int), np.zeros((1, 3), dtype=int), params)
    with pytest.raises(ValueError, match=r"^weights must be signed 8-bit \(-128\.\.127\), not "
                                         r"0\.\.128$"):
        reduce_weight(np.array([0, 128]), rounding=True)
    with pytest.raises(ValueError, match=r"^acts \[M, L\] and weights \[N, L\] must share L, "
                                         r"not \(2, 3\) and \(2, 4\)$"):
        nbsmt_matmul(np.zeros((2, 3), dtype=int), np.zeros((2, 4), dtype=int), params)
    layer = Layer(kind="fc", weights=np.ones((2, 3), dtype=np.int64),
                  activations=np.array([1, 2, 3]), act_zero_point=1)
    with pytest.raises(ValueError, match=r"^layer '': NB-SMT needs act_zero_point 0, not 1$"):
        nbsmt_layer_output(layer, params)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(threads=3), ValueError, r"^threads must be 1, 2 or 4, not 3$"),
    (dict(threads=8), ValueError, r"^threads must be an integer from 1 to 4, not 8$"),
    (dict(rows=1), ValueError, r"^rows must be an integer from 2 to 16, not 1$"),
    (dict(cols=17), ValueError, r"^cols must be an integer from 1 to 16, not 17$"),
    (dict(rows=2.0), TypeError, r"^rows must be an integer from 2 to 16, not 2\.0$"),
    (dict(cols=0), ValueError, r"^cols must be an integer from 1 to 16, not 0$"),
    (dict(skip_zero_weights="yes"), TypeError, r"^skip_zero_weights must be True or False, "
                                               r"not 'yes'$"),
    (dict(acc_width=49), ValueError, r"^acc_width must be an integer from 18 to 48, not 49$"),
])
def test_params_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        SySMTParams(**kwargs)
