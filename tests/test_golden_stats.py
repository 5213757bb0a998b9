"""golden.stats: every statistic and work count against plain-Python loops over every MAC."""

import itertools
import math
import zlib

import numpy as np
import pytest

from golden.layers import Layer
from golden.stats import (POTENTIALS, STATISTICS, activation_groups, combine_images,
                          layer_stats, network_stats, weight_groups)


# ---------------------------------------------------------------------------------------------
# Independent scalar references
# ---------------------------------------------------------------------------------------------

def naive_width(values, signed):
    """Smallest p >= 1 such that every value fits p-bit two's complement (or unsigned)."""
    p = 1
    while True:
        low, high = (-(1 << (p - 1)), (1 << (p - 1)) - 1) if signed else (0, (1 << p) - 1)
        if all(low <= v <= high for v in values):
            return p
        p += 1


def naive_magnitude(values):
    return max(abs(v) for v in values).bit_length()


def naive_naf_count(v):
    """Classic right-to-left NAF recoding; count the non-zero digits."""
    x, count = abs(v), 0
    while x:
        if x & 1:
            x -= 2 - (x & 3)  # digit +1 when x = 1 mod 4, -1 when x = 3 mod 4
            count += 1
        x >>= 1
    return count


def naive_booth_count(v):
    """DNNsim's generateBoothEncodingEntry as a scalar MSB-first scan with a run state."""
    x, count, in_run = abs(v), 0, False

    def bit(j):
        return (x >> j) & 1 if j >= 0 else 0

    for j in range(x.bit_length(), -1, -1):
        current, below1, below2 = bit(j), bit(j - 1), bit(j - 2)
        if not in_run:
            if current and below1 and below2:
                count, in_run = count + 1, True
            elif current:
                count += 1
        elif not current:
            count += 1
        elif not below1 and not below2:
            count, in_run = count + 1, False
    return count


def test_naive_booth_examples():
    # Examples stated in the spec (DNNsim): 0b110110 keeps 4 terms; 0b1101111 gives 4 terms
    # (NAF: 3 each); a run of three ones becomes two terms.
    assert naive_booth_count(0b110110) == 4 and naive_naf_count(0b110110) == 3
    assert naive_booth_count(0b1101111) == 4 and naive_naf_count(0b1101111) == 3
    assert naive_booth_count(0b111) == 2 and naive_booth_count(0b11) == 2


def popcount(v):
    return bin(abs(v)).count("1")


def naive_activation(layer, c, y, x):
    """Activation at channel c, input pixel (y, x); None inside the padding."""
    _, H, W = layer.activations.shape
    if 0 <= y < H and 0 <= x < W:
        return int(layer.activations[c, y, x])
    return None


def naive_group_of(layer, c, y, x, G):
    """Values of the activation group (c // G) at pixel (y, x) (conv) or position c (fc)."""
    C = layer.activations.shape[0]
    members = range((c // G) * G, min(C, (c // G + 1) * G))
    if layer.kind == "fc":
        return [int(layer.activations[m]) for m in members]
    return [int(layer.activations[m, y, x]) for m in members]


def naive_macs(layer):
    """Yield (weight, activation or None for padding, channel, y, x) for every MAC tuple."""
    w = layer.weights
    if layer.kind == "fc":
        for k in range(w.shape[0]):
            for c in range(w.shape[1]):
                yield int(w[k, c]), int(layer.activations[c]), c, 0, 0
        return
    K, Cg, R, S = w.shape
    C, H, W = layer.activations.shape
    sh, sw = layer.stride
    top, bottom, left, right = layer.padding
    OH = (H + top + bottom - R) // sh + 1
    OW = (W + left + right - S) // sw + 1
    Kg = K // layer.groups
    for k, cg, r, s, oy, ox in itertools.product(range(K), range(Cg), range(R), range(S),
                                                 range(OH), range(OW)):
        c = (k // Kg) * Cg + cg
        y, x = oy * sh + r - top, ox * sw + s - left
        yield int(w[k, cg, r, s]), naive_activation(layer, c, y, x), c, y, x


def naive_weight_groups(layer, G):
    """Weight groups as lists, by the documented rule, with plain loops."""
    w = layer.weights
    groups = []
    if layer.kind == "fc":
        for k in range(w.shape[0]):
            for c0 in range(0, w.shape[1], G):
                groups.append([int(v) for v in w[k, c0:c0 + G]])
        return groups
    K, Cg, R, S = w.shape
    if Cg == 1:
        for r, s in itertools.product(range(R), range(S)):
            for k0 in range(0, K, G):
                groups.append([int(w[k, 0, r, s]) for k in range(k0, min(K, k0 + G))])
        return groups
    for k, r, s in itertools.product(range(K), range(R), range(S)):
        for c0 in range(0, Cg, G):
            groups.append([int(w[k, c, r, s]) for c in range(c0, min(Cg, c0 + G))])
    return groups


def naive_activation_groups(layer, G):
    acts = layer.activations
    if layer.kind == "fc":
        return [[int(v) for v in acts[c0:c0 + G]] for c0 in range(0, acts.shape[0], G)]
    C, H, W = acts.shape
    return [[int(acts[c, y, x]) for c in range(c0, min(C, c0 + G))]
            for y in range(H) for x in range(W) for c0 in range(0, C, G)]


def naive_layer(layer, G):
    """Every count and work figure of golden.stats, from the definitions, with plain loops."""
    a_bits, w_bits, signed = layer.act_bits, layer.weight_bits, layer.act_signed
    acts = [int(v) for v in layer.activations.ravel()]
    weights = [int(v) for v in layer.weights.ravel()]
    a_mag = a_bits - 1 if signed else a_bits
    counts = {
        "acts": len(acts), "zero_acts": sum(v == 0 for v in acts),
        "act_zero_bits": sum(a_mag - popcount(v) for v in acts if v),
        "act_nonzero_bits": sum(a_mag for v in acts if v),
        "act_naf_terms": sum(map(naive_naf_count, acts)),
        "act_booth_terms": sum(map(naive_booth_count, acts)),
        "weights": len(weights), "zero_weights": sum(v == 0 for v in weights),
        "weight_zero_bits": sum(w_bits - 1 - popcount(v) for v in weights if v),
        "weight_nonzero_bits": sum(w_bits - 1 for v in weights if v),
        "weight_naf_terms": sum(map(naive_naf_count, weights)),
        "weight_booth_terms": sum(map(naive_booth_count, weights)),
    }
    a_groups = naive_activation_groups(layer, G)
    w_groups = naive_weight_groups(layer, G)
    counts.update(
        act_groups=len(a_groups),
        act_group_width_sum=sum(naive_width(g, signed) for g in a_groups),
        act_group_magnitude_sum=sum(naive_magnitude(g) for g in a_groups),
        weight_groups=len(w_groups),
        weight_group_width_sum=sum(naive_width(g, True) for g in w_groups),
        weight_group_magnitude_sum=sum(naive_magnitude(g) for g in w_groups))
    work = dict.fromkeys(["macs", "act_nonzero_macs", "weight_nonzero_macs", "both_nonzero_macs",
                          "act_width_bits", "act_naf_terms", "act_booth_terms",
                          "weight_nonzero_act_width_bits", "weight_nonzero_act_naf_terms"], 0)
    for weight, act, c, y, x in naive_macs(layer):
        width = 1 if act is None else naive_width(naive_group_of(layer, c, y, x, G), signed)
        act = 0 if act is None else act
        naf = naive_naf_count(act)
        work["macs"] += 1
        work["act_nonzero_macs"] += act != 0
        work["weight_nonzero_macs"] += weight != 0
        work["both_nonzero_macs"] += act != 0 and weight != 0
        work["act_width_bits"] += width
        work["act_naf_terms"] += naf
        work["act_booth_terms"] += naive_booth_count(act)
        if weight:
            work["weight_nonzero_act_width_bits"] += width
            work["weight_nonzero_act_naf_terms"] += naf
    work["baseline_bits"] = work["macs"] * a_bits
    return counts, work


# ---------------------------------------------------------------------------------------------
# Small random layers
# ---------------------------------------------------------------------------------------------

def random_layer(rng, *, kind="conv", C=5, H=6, W=5, K=4, R=3, S=3, stride=(1, 1),
                 padding=(0, 0, 0, 0), groups=1, act_bits=8, weight_bits=8, act_signed=False,
                 zero_fraction=0.3, name="layer"):
    """A layer with random values (full range incl. the most negative code) and some zeros."""
    a_low = -(1 << (act_bits - 1)) if act_signed else 0
    a_high = (1 << (act_bits - 1)) if act_signed else (1 << act_bits)
    shape = (C,) if kind == "fc" else (C, H, W)
    # Mix of small and full-range magnitudes so that group widths vary.
    scale = rng.integers(1, act_bits + 1, size=shape)
    acts = rng.integers(a_low, a_high, size=shape) >> (act_bits - scale)
    acts = np.clip(acts, a_low, a_high - 1)
    acts[rng.random(shape) < zero_fraction] = 0
    w_shape = (K, C) if kind == "fc" else (K, C // groups, R, S)
    weights = rng.integers(-(1 << (weight_bits - 1)), 1 << (weight_bits - 1), size=w_shape)
    weights[rng.random(w_shape) < zero_fraction] = 0
    if kind == "fc":
        return Layer(kind="fc", weights=weights, activations=acts, weight_bits=weight_bits,
                     act_bits=act_bits, act_signed=act_signed, name=name)
    return Layer(kind="conv", weights=weights, activations=acts, stride=stride, padding=padding,
                 groups=groups, weight_bits=weight_bits, act_bits=act_bits, act_signed=act_signed,
                 name=name)


CASES = {
    "conv-pad-stride": dict(C=5, H=7, W=6, K=4, R=3, S=3, stride=(2, 1), padding=(1, 2, 0, 1)),
    "conv-signed-16b": dict(C=6, H=5, W=5, K=3, R=2, S=3, padding=(1, 0, 1, 1), act_bits=16,
                            weight_bits=16, act_signed=True),
    "conv-1x1-C20": dict(C=20, H=3, W=4, K=5, R=1, S=1),
    "depthwise": dict(C=6, H=6, W=6, K=6, R=3, S=3, stride=(2, 2), padding=(1, 1, 1, 1),
                      groups=6),
    "depthwise-multiplier": dict(C=3, H=5, W=4, K=6, R=3, S=2, padding=(0, 1, 1, 0), groups=3,
                                 act_signed=True),
    "grouped": dict(C=8, H=4, W=5, K=6, R=2, S=2, stride=(1, 2), padding=(1, 1, 0, 1),
                    groups=2),
    "one-channel": dict(C=1, H=7, W=7, K=6, R=3, S=3, padding=(1, 1, 1, 1)),
    "fc": dict(kind="fc", C=37, K=7),
    "fc-signed": dict(kind="fc", C=19, K=5, act_signed=True, act_bits=6, weight_bits=5),
}


@pytest.mark.parametrize("group_size", [16, 4, 3])
@pytest.mark.parametrize("case", list(CASES))
def test_layer_stats_match_naive_loops(case, group_size):
    rng = np.random.default_rng([zlib.crc32(case.encode()), group_size])
    layer = random_layer(rng, **CASES[case])
    result = layer_stats(layer, group_size=group_size)
    counts, work = naive_layer(layer, group_size)
    assert result["counts"] == counts
    assert result["work"] == work
    assert result["macs"] == layer.macs == work["macs"]
    assert result["group_size"] == group_size and result["images"] == 1
    for key, (num, den) in {"zero_weights": ("zero_weights", "weights"),
                            "zero_acts": ("zero_acts", "acts"),
                            "act_group_width": ("act_group_width_sum", "act_groups"),
                            "act_group_magnitude": ("act_group_magnitude_sum", "act_groups"),
                            "weight_group_width": ("weight_group_width_sum", "weight_groups"),
                            "act_zero_bits": ("act_zero_bits", "act_nonzero_bits"),
                            "act_booth_terms": ("act_booth_terms", "acts"),
                            "weight_naf_terms": ("weight_naf_terms", "weights")}.items():
        assert result["stats"][key] == counts[num] / counts[den]
    assert set(result["stats"]) == set(STATISTICS)
    assert result["potentials"]["A"] == work["macs"] / work["act_nonzero_macs"]
    assert result["potentials"]["W+A"] == work["macs"] / work["both_nonzero_macs"]
    assert result["potentials"]["Ap"] == work["baseline_bits"] / work["act_width_bits"]
    assert result["potentials"]["W+Ae"] == (work["baseline_bits"]
                                            / work["weight_nonzero_act_naf_terms"])
    assert set(result["potentials"]) == set(POTENTIALS)


def test_exhaustive_tiny_fc():
    """Every 3-value input of 3-bit signed activations, against the naive loops."""
    weights = np.array([[1, 0, -3], [0, 0, 2]])
    for values in itertools.product(range(-4, 4), repeat=3):
        layer = Layer(kind="fc", weights=weights, activations=np.array(values), act_bits=3,
                      weight_bits=3, act_signed=True)
        result = layer_stats(layer, group_size=2)
        counts, work = naive_layer(layer, 2)
        assert result["counts"] == counts and result["work"] == work, values


def test_exhaustive_tiny_conv_with_padding():
    """Every 2x2 unsigned 2-bit image through a padded 2x2 kernel, stride 1."""
    weights = np.array([[[[1, 0], [2, -1]]]])
    for values in itertools.product(range(4), repeat=4):
        layer = Layer(kind="conv", weights=weights, activations=np.array(values).reshape(1, 2, 2),
                      padding=(1, 0, 0, 1), act_bits=2, weight_bits=3)
        result = layer_stats(layer, group_size=1)
        counts, work = naive_layer(layer, 1)
        assert result["counts"] == counts and result["work"] == work, values


def test_groups_layout():
    rng = np.random.default_rng(1)
    layer = random_layer(rng, C=5, H=2, W=3, K=2, R=1, S=2)
    groups = activation_groups(layer, 4)
    assert groups.shape == (2, 3, 2, 4)
    assert groups[1, 2, 1].tolist() == [int(layer.activations[4, 1, 2]), 0, 0, 0]
    assert groups[0, 1, 0].tolist() == layer.activations[:4, 0, 1].tolist()
    w = weight_groups(layer, 4)
    assert w.shape == (2, 1, 2, 2, 4)
    assert w[1, 0, 1, 0].tolist() == layer.weights[1, :4, 0, 1].tolist()


# ---------------------------------------------------------------------------------------------
# Constructed layers with known answers
# ---------------------------------------------------------------------------------------------

def test_all_zero_activation_channel_halves_the_work():
    acts = np.stack([np.zeros((4, 4), int), np.full((4, 4), 5)])
    layer = Layer(kind="conv", weights=np.ones((3, 2, 1, 1), int), activations=acts)
    p = layer_stats(layer)["potentials"]
    assert p["A"] == 2.0 and p["W"] == 1.0 and p["W+A"] == 2.0
    # One group of two channels per pixel holding {0, 5}: width 3 unsigned for every MAC.
    assert p["Ap"] == 8 / 3
    # NAF(5) = 101: 2 terms on half the MACs, 0 on the other half.
    assert p["Ae_naf"] == 8 / 1


def test_padding_zeros_are_skippable_work():
    # 4x4 image, 3x3 kernel, padding 1: per axis the taps see 3 + 4 + 3 = 10 of 12 positions
    # inside the image, so 100 of the 144 (tap, output) pairs read a real activation.
    layer = Layer(kind="conv", weights=np.ones((1, 1, 3, 3), int),
                  activations=np.full((1, 4, 4), 7), padding=(1, 1, 1, 1))
    p = layer_stats(layer)["potentials"]
    assert p["A"] == 144 / 100
    # Width 3 (value 7, unsigned) on 100 MACs, width 1 (all-zero padding group) on 44.
    assert p["Ap"] == 144 * 8 / (100 * 3 + 44 * 1)
    # NAF(7) = 100-1: 2 terms; Booth: the run 111 becomes 2 terms as well.
    assert p["Ae_naf"] == p["Ae_booth"] == 144 * 8 / (100 * 2)


def test_zero_weight_filter_and_weight_precision():
    weights = np.ones((4, 3, 2, 2), int) * 3
    weights[1] = 0  # one filter of four is all zero
    layer = Layer(kind="conv", weights=weights, activations=np.full((3, 3, 3), -2),
                  act_signed=True, act_bits=4)
    result = layer_stats(layer, group_size=16)
    assert result["potentials"]["W"] == 4 / 3
    # -2 needs 2 bits two's complement; group of the three channels.
    assert result["potentials"]["W+Ap"] == 4 / 3 * 4 / 2
    assert result["stats"]["zero_weights"] == 0.25
    # Weight groups of the 3 channels: {3,3,3} -> width 3 (signed), magnitude 2; {0,0,0} -> 1, 0.
    assert result["stats"]["weight_group_width"] == (3 * 3 * 4 + 1 * 4) / 16
    assert result["stats"]["weight_group_magnitude"] == (2 * 12 + 0) / 16
    # Activations: magnitude 2 -> 3 magnitude bits, one set: 2 zero bits of 3.
    assert result["stats"]["act_zero_bits"] == 2 / 3


def test_all_zero_layer_gives_infinite_potentials():
    layer = Layer(kind="fc", weights=np.ones((2, 3), int), activations=np.zeros(3, int))
    result = layer_stats(layer)
    assert result["potentials"]["A"] == math.inf
    assert result["potentials"]["Ae_naf"] == math.inf
    assert result["potentials"]["Ap"] == 8.0  # zero groups still cost one bit
    assert math.isnan(result["stats"]["act_zero_bits"])  # no non-zero activation


# ---------------------------------------------------------------------------------------------
# Images and networks
# ---------------------------------------------------------------------------------------------

def test_combine_images_pools_counts():
    rng = np.random.default_rng(7)
    first = random_layer(rng, **CASES["conv-pad-stride"])
    second = Layer(kind="conv", weights=first.weights, activations=rng.integers(0, 3, (5, 7, 6)),
                   stride=first.stride, padding=first.padding, name=first.name)
    a, b = layer_stats(first), layer_stats(second)
    both = combine_images([a, b])
    assert both["images"] == 2 and both["macs"] == a["macs"]
    assert both["potentials"]["A"] == (2 * a["macs"]) / (a["work"]["act_nonzero_macs"]
                                                         + b["work"]["act_nonzero_macs"])
    assert both["stats"]["zero_weights"] == a["stats"]["zero_weights"]
    assert both["stats"]["zero_acts"] == ((a["counts"]["zero_acts"] + b["counts"]["zero_acts"])
                                          / (2 * first.activations.size))
    with pytest.raises(ValueError, match=r"^combine_images: macs differs between images"):
        combine_images([a, layer_stats(random_layer(rng, **CASES["depthwise"]))])
    with pytest.raises(ValueError, match=r"^combine_images needs at least one result$"):
        combine_images([])


def test_network_totals_weight_layers_by_macs():
    # Layer 1: 1x1 conv, half its activations zero -> A = 2 over 4*2*3*3 = 72 MACs.
    acts = np.stack([np.zeros((3, 3), int), np.ones((3, 3), int)])
    one = Layer(kind="conv", weights=np.ones((4, 2, 1, 1), int), activations=acts, name="one")
    # Layer 2: fc, no zero -> A = 1 over 2*9 = 18 MACs.
    two = Layer(kind="fc", weights=np.ones((2, 9), int), activations=np.arange(1, 10), name="two")
    s1, s2 = layer_stats(one), layer_stats(two)
    net = network_stats([s1, s2])
    assert net["macs"] == 72 + 18 and net["layers"] == 2
    assert net["potentials"]["A"] == (72 + 18) / (36 + 18)
    assert net["stats"]["zero_acts"] == (72 * 0.5 + 18 * 0.0) / 90
    assert net["pooled_stats"]["zero_acts"] == 9 / (18 + 9)
    assert net["stats"]["act_naf_terms"] == (72 * s1["stats"]["act_naf_terms"]
                                             + 18 * s2["stats"]["act_naf_terms"]) / 90
    with pytest.raises(ValueError, match=r"^network_stats needs at least one layer$"):
        network_stats([])


def test_invalid_group_size():
    layer = Layer(kind="fc", weights=np.ones((2, 3), int), activations=np.ones(3, int))
    with pytest.raises(ValueError, match=r"^group_size must be an integer from 1 to 256, not 0$"):
        layer_stats(layer, group_size=0)
    with pytest.raises(TypeError, match=r"^group_size must be an integer from 1 to 256, not 2\.0$"):
        layer_stats(layer, group_size=2.0)


# ---------------------------------------------------------------------------------------------
# act_grouping="flat": runs of the flattened NHWC tensor (shared/realdata.md's grpP)
# ---------------------------------------------------------------------------------------------

def naive_flat_activation_groups(layer, G):
    """Runs of G values of the activations read in NHWC memory order, with plain loops."""
    acts = layer.activations
    if layer.kind == "fc":
        flat = [int(v) for v in acts]
    else:
        C, H, W = acts.shape
        flat = [int(acts[c, y, x]) for y in range(H) for x in range(W) for c in range(C)]
    return [flat[i:i + G] for i in range(0, len(flat), G)]


@pytest.mark.parametrize("group_size", [16, 4, 3])
@pytest.mark.parametrize("case", list(CASES))
def test_flat_grouping_matches_naive_runs(case, group_size):
    rng = np.random.default_rng([zlib.crc32(case.encode()), group_size, 1])
    layer = random_layer(rng, **CASES[case])
    result = layer_stats(layer, group_size=group_size, act_grouping="flat")
    counts, work = naive_layer(layer, group_size)
    runs = naive_flat_activation_groups(layer, group_size)
    counts.update(act_groups=len(runs),
                  act_group_width_sum=sum(naive_width(g, layer.act_signed) for g in runs),
                  act_group_magnitude_sum=sum(naive_magnitude(g) for g in runs))
    assert result["counts"] == counts
    assert result["work"] == work  # the potentials keep the per-pixel groups of the hardware
    assert result["act_grouping"] == "flat"
    assert result["stats"]["act_group_magnitude"] == \
        counts["act_group_magnitude_sum"] / counts["act_groups"]
    assert result["stats"]["act_group_width"] == counts["act_group_width_sum"] / len(runs)
    pixel = layer_stats(layer, group_size=group_size)
    assert pixel["act_grouping"] == "pixel" and pixel["potentials"] == result["potentials"]
    C = layer.activations.shape[0]
    if layer.kind == "fc" or C % group_size == 0:  # then both groupings are the same groups
        assert pixel["counts"] == result["counts"]


def test_flat_grouping_crosses_pixels():
    # C = 3 at two pixels, G = 4. Pixel groups: {1, 2, 3} -> bit length 2, {100, 0, 0} -> 7.
    # Flat runs: {1, 2, 3, 100} -> 7, {0, 0} -> 0 (all-zero group).
    acts = np.array([[[1, 100]], [[2, 0]], [[3, 0]]])  # [C=3, H=1, W=2]
    layer = Layer(kind="conv", weights=np.ones((1, 3, 1, 1), int), activations=acts)
    assert activation_groups(layer, 4, "flat").tolist() == [[1, 2, 3, 100], [0, 0, 0, 0]]
    flat = layer_stats(layer, group_size=4, act_grouping="flat")["stats"]
    pixel = layer_stats(layer, group_size=4)["stats"]
    assert flat["act_group_magnitude"] == (7 + 0) / 2
    assert pixel["act_group_magnitude"] == (2 + 7) / 2
    # unsigned widths: flat {7, 1 (all zero)}, pixel {2, 7}
    assert flat["act_group_width"] == (7 + 1) / 2 and pixel["act_group_width"] == (2 + 7) / 2


def test_invalid_grouping_and_mixed_images():
    layer = Layer(kind="fc", weights=np.ones((2, 3), int), activations=np.ones(3, int),
                  name="layer")
    with pytest.raises(ValueError, match=r"^act_grouping must be 'pixel' or 'flat', "
                                         r"not 'channel'$"):
        layer_stats(layer, act_grouping="channel")
    with pytest.raises(ValueError, match=r"^grouping must be 'pixel' or 'flat', not None$"):
        activation_groups(layer, 4, None)
    with pytest.raises(ValueError, match=r"^combine_images: act_grouping differs between "
                                         r"images of layer 'layer'"):
        combine_images([layer_stats(layer), layer_stats(layer, act_grouping="flat")])


def test_pooled_network_stats_count_every_value_once():
    """pooled_stats against plain loops over the values and groups of all layers."""
    rng = np.random.default_rng(11)
    layers = [random_layer(rng, **CASES["conv-pad-stride"], name="a"),
              random_layer(rng, **CASES["depthwise"], name="b"),
              random_layer(rng, **CASES["fc"], name="c")]
    for grouping in ("pixel", "flat"):
        net = network_stats([layer_stats(x, act_grouping=grouping) for x in layers])
        acts = [int(v) for x in layers for v in x.activations.ravel()]
        weights = [int(v) for x in layers for v in x.weights.ravel()]
        naive_groups = (naive_activation_groups if grouping == "pixel"
                        else naive_flat_activation_groups)
        groups = [g for x in layers for g in naive_groups(x, 16)]
        pooled = net["pooled_stats"]
        assert pooled["zero_acts"] == sum(v == 0 for v in acts) / len(acts)
        assert pooled["zero_weights"] == sum(v == 0 for v in weights) / len(weights)
        assert pooled["act_naf_terms"] == sum(map(naive_naf_count, acts)) / len(acts)
        assert pooled["act_group_magnitude"] == sum(map(naive_magnitude, groups)) / len(groups)


def test_group_width_is_unsigned_for_unsigned_tensors():
    """act_group_width is the minimal unsigned width of unsigned groups (as documented), the
    two's-complement width (sign bit included) of signed ones."""
    values = [255, 0, 3, 0, 1, 0, 0, 0, 0, 0, 0, 0]
    weights = np.ones((1, len(values)), dtype=np.int64)
    unsigned = Layer(kind="fc", weights=weights, activations=np.array(values), act_bits=8)
    signed = Layer(kind="fc", weights=weights, activations=np.array(values), act_bits=9,
                   act_signed=True)
    groups = [values[i:i + 4] for i in range(0, len(values), 4)]
    assert [naive_width(g, False) for g in groups] == [8, 1, 1]
    assert [naive_width(g, True) for g in groups] == [9, 2, 1]
    assert layer_stats(unsigned, group_size=4)["stats"]["act_group_width"] == 10 / 3
    assert layer_stats(signed, group_size=4)["stats"]["act_group_width"] == 12 / 3
    description = STATISTICS["act_group_width"][1]
    assert "two's complement (sign bit included) if signed, unsigned otherwise" in description
