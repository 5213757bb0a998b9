"""golden.sparq against literal transcriptions of SPARQ's kernel rules (spec section 1.2-1.3).

Every window is checked exhaustively (all 256 uint8 values, every mode), every activation pair
exhaustively (all 65536 pairs, every mode) against a per-element Python transcription of the
pairing rule, the MSE table of the spec, dot products and whole layers against naive loops.
"""

import itertools

import numpy as np
import pytest

from golden.layers import Layer, layer_output
from golden.sparq import (bsparq, layer_reduction_order, sparq_activations, sparq_dot,
                          sparq_layer_output, sparq_matmul, vsparq_pairs, window)
from hw.params import SPARQ_PLACEMENTS, SparqParams, sparq_modes

MODES = sparq_modes()


def literal_bsparq(x, n, offsets, round_mode):
    """The spec's pseudocode, one value at a time."""
    if x == 0:
        return 0
    s = min(o for o in offsets if x < 2 ** (o + n))
    h = x & (((1 << n) - 1) << s)
    if round_mode and s > 0:
        g = (x >> (s - 1)) & 1
        sticky = (x & ((1 << (s - 1)) - 1)) != 0
        lsb = (x >> s) & 1
        if g and (sticky or lsb):
            h += 1 << s
            if h == 1 << (s + n):
                h = ((1 << n) - 1) << s
    return h


def literal_tables(mode):
    """(n-bit table, survivor table) over 0..255 from the literal transcription."""
    n = mode.window_width
    small = [literal_bsparq(x, n, mode.offsets, mode.rounding) for x in range(256)]
    wide = [literal_bsparq(x, 2 * n, range(8 - 2 * n + 1), mode.rounding) for x in range(256)]
    return small, wide


@pytest.mark.parametrize("mode", MODES, ids=lambda p: p.name)
def test_window_exhaustive(mode):
    x = np.arange(256)
    small, _ = literal_tables(mode)
    value, shift, field = window(x, width=mode.window_width, offsets=mode.offsets,
                                 rounding=mode.rounding)
    assert value.tolist() == small
    assert bsparq(x, mode).tolist() == small
    assert np.array_equal(field << shift, value)
    assert field.max() < 1 << mode.window_width
    assert set(shift.tolist()) <= set(mode.offsets)


def test_placement_sets_are_the_kernels():
    assert SparqParams(placements=5).offsets == (0, 1, 2, 3, 4)
    assert SparqParams(placements=3).offsets == (0, 2, 4)
    assert SparqParams(placements=2).offsets == (0, 4)
    assert SparqParams(window_width=3, placements=6).offsets == (0, 1, 2, 3, 4, 5)
    assert SparqParams(window_width=2, placements=7).offsets == (0, 1, 2, 3, 4, 5, 6)
    assert SparqParams(window_width=3, placements=6).survivor_offsets == (0, 1, 2)
    assert SparqParams(window_width=2, placements=7).survivor_offsets == (0, 1, 2, 3, 4)
    assert SparqParams().survivor_offsets == (0,)
    assert len(MODES) == 2 * len(SPARQ_PLACEMENTS)


@pytest.mark.parametrize("name, mse", [("5opt-round", 16.3), ("5opt-raw", 43.8),
                                       ("3opt-round", 20.0), ("3opt-raw", 59.0),
                                       ("2opt-round", 23.8), ("2opt-raw", 72.9)])
def test_mse_table_of_the_spec(name, mse):
    mode = next(m for m in MODES if m.name == name)
    x = np.arange(1, 256)
    error = bsparq(x, mode) - x
    assert abs(np.mean(error ** 2) - mse) <= 0.051
    assert np.abs(error).max() == 15


@pytest.mark.parametrize("x, mode_name, expected", [
    (255, "5opt-round", 240), (255, "5opt-raw", 240), (0x7F, "5opt-round", 0x78),
    (0x7C, "5opt-round", 0x78), (0x74, "5opt-round", 0x70), (0x3A, "5opt-round", 0x38),
    (0x1B, "5opt-round", 0x1C), (0x3B, "5opt-round", 0x3C), (0x88, "2opt-round", 0x80),
    (0x98, "2opt-round", 0xA0), (0x17, "2opt-raw", 0x10), (15, "2opt-raw", 15),
    (0x4F, "3opt-round", 0x50), (0x2F, "3opt-round", 0x30), (0x3F, "3opt-round", 0x3C)])
def test_hand_examples(x, mode_name, expected):
    mode = next(m for m in MODES if m.name == mode_name)
    assert int(bsparq(np.array([x]), mode)[0]) == expected


@pytest.mark.parametrize("mode", MODES, ids=lambda p: p.name)
def test_pairs_exhaustive(mode):
    small, wide = literal_tables(mode)
    expected = np.empty((256, 256, 2), dtype=np.int64)
    for a1, a2 in itertools.product(range(256), repeat=2):
        if a1 == 0:
            expected[a1, a2] = (0, wide[a2])
        elif a2 == 0:
            expected[a1, a2] = (wide[a1], 0)
        else:
            expected[a1, a2] = (small[a1], small[a2])
    a1, a2 = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    h1, h2 = vsparq_pairs(a1, a2, mode)
    assert np.array_equal(h1, expected[..., 0])
    assert np.array_equal(h2, expected[..., 1])
    if mode.window_width == 4:  # the survivor of a zero partner is exact
        assert np.array_equal(h1[:, 0], np.arange(256))


def naive_dot(acts, weights, mode):
    small, wide = literal_tables(mode)
    acts = list(acts) + ([0] if len(acts) % 2 else [])
    weights = list(weights) + ([0] if len(weights) % 2 else [])
    total = 0
    for k in range(0, len(acts), 2):
        a1, a2, b1, b2 = acts[k], acts[k + 1], weights[k], weights[k + 1]
        if a1 == 0:
            total += wide[a2] * b2
        elif a2 == 0:
            total += wide[a1] * b1
        else:
            total += small[a1] * b1 + small[a2] * b2
    return total


@pytest.mark.parametrize("mode", MODES, ids=lambda p: p.name)
@pytest.mark.parametrize("length", [1, 2, 7, 16])
def test_dot_and_matmul_against_naive(mode, length):
    rng = np.random.default_rng(length)
    acts = rng.integers(0, 256, size=(6, length))
    acts[rng.random(acts.shape) < 0.4] = 0
    weights = rng.integers(-128, 128, size=(5, length))
    out = sparq_matmul(acts, weights, mode)
    for i, j in itertools.product(range(6), range(5)):
        expected = naive_dot(acts[i].tolist(), weights[j].tolist(), mode)
        assert out[i, j] == expected
        assert sparq_dot(acts[i], weights[j], mode) == expected
    assert sparq_activations(acts, mode).shape == acts.shape


def naive_conv_patches(layer):
    """Patches [G, OH*OW, L] in (r, s, c) order by explicit loops (zero padding)."""
    c_total, h, w = layer.activations.shape
    k, cg, r_size, s_size = layer.weights.shape
    top, _, left, _ = layer.padding
    oh, ow = layer.output_shape[1:]
    patches = np.zeros((layer.groups, oh * ow, r_size * s_size * cg), dtype=np.int64)
    for g in range(layer.groups):
        for y, x in itertools.product(range(oh), range(ow)):
            column = 0
            for r, s, c in itertools.product(range(r_size), range(s_size), range(cg)):
                row, col = y * layer.stride[0] + r - top, x * layer.stride[1] + s - left
                if 0 <= row < h and 0 <= col < w:
                    patches[g, y * ow + x, column] = layer.activations[g * cg + c, row, col]
                column += 1
    return patches


def naive_layer(layer, mode):
    k = layer.out_channels
    kg = k // layer.groups
    if layer.kind == "fc":
        return np.array([naive_signed_dot(layer.activations.tolist(), layer.weights[j].tolist(),
                                          mode) for j in range(k)])
    patches = naive_conv_patches(layer)
    oh, ow = layer.output_shape[1:]
    out = np.zeros((k, oh * ow), dtype=np.int64)
    for j in range(k):
        g = j // kg
        weights = layer.weights[j].transpose(1, 2, 0).reshape(-1).tolist()
        for p in range(oh * ow):
            out[j, p] = naive_signed_dot(patches[g, p].tolist(), weights, mode)
    return out.reshape(k, oh, ow)


def naive_signed_dot(acts, weights, mode):
    """Sign-magnitude: window the magnitudes, put the sign back on the weight."""
    magnitudes = [abs(a) for a in acts]
    signed_weights = [w * (-1 if a < 0 else 1) for a, w in zip(acts, weights)]
    return naive_dot(magnitudes, signed_weights, mode)


def make_conv(rng, *, c, k, size, kernel, stride, padding, groups, signed=False):
    acts = rng.integers(-128 if signed else 0, 128 if signed else 256, size=(c, size, size))
    acts[rng.random(acts.shape) < 0.4] = 0
    return Layer(kind="conv", name="conv", weights=rng.integers(-128, 128,
                                                                size=(k, c // groups, kernel,
                                                                      kernel)),
                 activations=acts, stride=stride, padding=padding, groups=groups,
                 act_signed=signed)


@pytest.mark.parametrize("mode", [MODES[0], MODES[5], MODES[7]], ids=lambda p: p.name)
@pytest.mark.parametrize("shape", [
    dict(c=3, k=4, size=5, kernel=3, stride=(1, 1), padding=(1, 1, 1, 1), groups=1),
    dict(c=4, k=4, size=6, kernel=3, stride=(2, 1), padding=(0, 1, 1, 0), groups=4),
    dict(c=6, k=4, size=4, kernel=1, stride=(1, 1), padding=(0, 0, 0, 0), groups=2),
    dict(c=5, k=3, size=4, kernel=2, stride=(1, 2), padding=(1, 0, 0, 1), groups=1,
         signed=True),
])
def test_conv_layer_against_naive(mode, shape):
    layer = make_conv(np.random.default_rng(3), **shape)
    assert np.array_equal(sparq_layer_output(layer, mode), naive_layer(layer, mode))
    assert np.array_equal(sparq_layer_output(layer, mode, rows_per_chunk=1),
                          naive_layer(layer, mode))


@pytest.mark.parametrize("signed", [False, True])
def test_fc_layer_against_naive(signed):
    rng = np.random.default_rng(4)
    acts = rng.integers(-128 if signed else 0, 128 if signed else 256, size=11)
    acts[rng.random(11) < 0.3] = 0
    layer = Layer(kind="fc", weights=rng.integers(-128, 128, size=(5, 11)), activations=acts,
                  act_signed=signed)
    for mode in MODES:
        assert np.array_equal(sparq_layer_output(layer, mode), naive_layer(layer, mode))


def test_small_activations_are_exact_with_2opt():
    """Activations below 16 fit the low window: SPARQ 2opt changes nothing (layer_output)."""
    rng = np.random.default_rng(5)
    layer = Layer(kind="conv", weights=rng.integers(-128, 128, size=(4, 3, 3, 3)),
                  activations=rng.integers(0, 16, size=(3, 6, 6)), padding=(1, 1, 1, 1))
    mode = SparqParams(placements=2, rounding=True)
    assert np.array_equal(sparq_layer_output(layer, mode), layer_output(layer))


def test_reduction_order_pairs_channels_of_one_tap():
    layer = make_conv(np.random.default_rng(6), c=4, k=2, size=3, kernel=2, stride=(1, 1),
                      padding=(0, 0, 0, 0), groups=1)
    order = layer_reduction_order(layer)
    # original (c, r, s) index = c * 4 + r * 2 + s; in SPARQ order consecutive entries are
    # consecutive channels of the same (r, s)
    assert order[:8].tolist() == [0, 4, 8, 12, 1, 5, 9, 13]


def test_errors():
    mode = SparqParams()
    with pytest.raises(TypeError, match=r"^params must be a hw\.params\.SparqParams, not 3$"):
        bsparq(np.arange(3), 3)
    with pytest.raises(ValueError, match=r"^activations must be unsigned 8-bit \(0\.\.255\), "
                                         r"not 0\.\.256$"):
        bsparq(np.array([0, 256]), mode)
    with pytest.raises(TypeError, match=r"^activations must be integers, not dtype float64$"):
        bsparq(np.array([1.0]), mode)
    with pytest.raises(TypeError, match=r"^weights must be integers, not dtype float64$"):
        sparq_dot(np.array([1, 2]), np.array([1.0, 2.0]), mode)
    layer = Layer(kind="fc", weights=np.ones((2, 3), dtype=np.int64),
                  activations=np.array([1, 2, 3]), act_zero_point=1)
    with pytest.raises(ValueError, match=r"^layer '': SPARQ needs act_zero_point 0, not 1$"):
        sparq_layer_output(layer, mode)
    wide = Layer(kind="fc", weights=np.ones((2, 3), dtype=np.int64),
                 activations=np.array([1, 2, 3]), act_bits=16)
    with pytest.raises(ValueError, match=r"^layer '': SPARQ needs 8-bit activations, not "
                                         r"act_bits 16$"):
        sparq_layer_output(wide, mode)
    with pytest.raises(TypeError, match=r"^layer must be a golden\.layers\.Layer, not int$"):
        sparq_layer_output(3, mode)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(window_width=5), ValueError, r"^window_width must be an integer from 2 to 4, not 5$"),
    (dict(window_width="4"), TypeError, r"^window_width must be an integer from 2 to 4, "
                                        r"not '4'$"),
    (dict(placements=4), ValueError, r"^placements must be 5, 3, 2 for window_width 4, "
                                     r"not 4$"),
    (dict(window_width=3, placements=5), ValueError, r"^placements must be 6 for window_width "
                                                     r"3, not 5$"),
    (dict(placements=8), ValueError, r"^placements must be an integer from 2 to 7, not 8$"),
    (dict(rounding=1), TypeError, r"^rounding must be True or False, not 1$"),
    (dict(acc_width=17), ValueError, r"^acc_width must be an integer from 18 to 48, not 17$"),
])
def test_params_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        SparqParams(**kwargs)
