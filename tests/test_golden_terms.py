"""golden.terms against independent references: exhaustive digit checks, a brute-force minimal
signed-digit weight, a per-value Python rendering of DNNsim's Booth rule, and np.dot."""

import re

import numpy as np
import pytest

from golden import terms

ALL_16 = np.arange(-(1 << 16) + 1, 1 << 16)   # every value with |v| < 2**16


def reconstruct(digits):
    """Return sum(d[k] * 2**k) over the last axis, in Python integers (no overflow)."""
    weights = np.array([1 << k for k in range(digits.shape[-1])], dtype=object)
    return (digits.astype(object) * weights).sum(axis=-1)


def booth_reference(value):
    """Return {position: sign} for |value| by DNNsim's rule, walked run by run (module docs of
    golden.terms): a run starts at three consecutive ones and extends down while the next bit
    or the one after it is set; it costs +2**(top+1), -2**z per zero inside, and -2**bottom."""
    magnitude = abs(value)

    def bit(k):
        return (magnitude >> k) & 1 if k >= 0 else 0

    found = {}
    j = magnitude.bit_length() - 1
    while j >= 0:
        if not bit(j):
            j -= 1
        elif bit(j - 1) and bit(j - 2):
            bottom = j
            while bit(bottom - 1) or bit(bottom - 2):
                bottom -= 1
            found[j + 1] = 1
            found.update({z: -1 for z in range(bottom, j) if not bit(z)})
            found[bottom] = -1
            j = bottom - 1
        else:
            found[j] = 1
            j -= 1
    sign = -1 if value < 0 else 1
    return {position: sign * s for position, s in found.items()}


def reference_digits(found, width):
    digits = [0] * (width + 1)
    for position, sign in found.items():
        digits[position] = sign
    return digits


@pytest.mark.parametrize("encoding", ["naf", "booth"])
def test_digits_reconstruct_every_16_bit_value(encoding):
    digits = getattr(terms, f"{encoding}_digits")(ALL_16, width=16)
    assert digits.dtype == np.int8 and digits.shape == (ALL_16.size, 17)
    assert set(np.unique(digits)) <= {-1, 0, 1}
    assert np.array_equal(reconstruct(digits), ALL_16.astype(object))
    # negation symmetry: the digits of -v are the digits of v negated
    assert np.array_equal(digits[::-1], -digits)


@pytest.mark.parametrize("encoding", ["naf", "booth"])
def test_digits_do_not_depend_on_width(encoding):
    function = getattr(terms, f"{encoding}_digits")
    wide = function(ALL_16, width=16)
    for width in range(1, 16):
        inside = np.abs(ALL_16) < (1 << width)
        narrow = function(ALL_16[inside], width=width)
        assert narrow.shape == (inside.sum(), width + 1)
        assert np.array_equal(narrow, wide[inside, :width + 1])
        assert not wide[inside, width + 1:].any()


def test_naf_is_non_adjacent():
    digits = terms.naf_digits(ALL_16, width=16)
    assert not np.any((digits[:, 1:] != 0) & (digits[:, :-1] != 0))


def test_naf_weight_is_minimal_by_brute_force_up_to_10_bits():
    # Every signed-digit vector of 12 digits (3**12 of them): the lightest one per value.
    length = 12
    codes = np.arange(3 ** length)
    digits = np.stack([(codes // 3 ** k) % 3 - 1 for k in range(length)], axis=-1)
    values = digits @ (1 << np.arange(length))
    weights = np.count_nonzero(digits, axis=-1)
    keep = (values >= 0) & (values < 1 << 10)
    minimal = np.full(1 << 10, length + 1)
    np.minimum.at(minimal, values[keep], weights[keep])
    naf_weight = terms.term_count(np.arange(1 << 10), encoding="naf", width=10)
    assert np.array_equal(naf_weight, minimal)


def test_naf_matches_textbook_algorithm():
    def naf(n):
        digits = []
        while n:
            digit = 2 - (n % 4) if n % 2 else 0
            digits.append(digit)
            n = (n - digit) // 2
        return digits + [0] * (17 - len(digits))

    positive = np.arange(1 << 16)
    expected = np.array([naf(int(n)) for n in positive], dtype=np.int8)
    assert np.array_equal(terms.naf_digits(positive, width=16), expected)


def test_booth_matches_per_value_reference_for_every_16_bit_value():
    positive = np.arange(1 << 16)
    expected = np.array([reference_digits(booth_reference(int(v)), 16) for v in positive],
                        dtype=np.int8)
    assert np.array_equal(terms.booth_digits(positive, width=16), expected)
    assert np.array_equal(terms.booth_digits(-positive, width=16), -expected)


@pytest.mark.parametrize("width", [17, 20, 24, 31, 32])
def test_booth_beyond_16_bits_matches_reference(width):
    rng = np.random.default_rng(width)
    # long runs, isolated zeros and plain bits, plus uniform values and the extremes
    patterned = rng.integers(0, 1 << width, 300) | rng.integers(0, 1 << width, 300)
    uniform = rng.integers(-(1 << width) + 1, 1 << width, 300)
    values = np.concatenate([patterned, uniform, [(1 << width) - 1, -(1 << width) + 1, 0]])
    expected = np.array([reference_digits(booth_reference(int(v)), width) for v in values],
                        dtype=np.int8)
    assert np.array_equal(terms.booth_digits(values, width=width), expected)


def test_spec_examples():
    # tcl-dpred-fpraker.md §1.5: 0b110110 is 4 terms in DNNsim's encoding, 3 in NAF
    assert terms.term_count([0b110110], encoding="booth", width=6)[0] == 4
    assert terms.term_count([0b110110], encoding="naf", width=6)[0] == 3
    # the carry of a run is not merged with the ones above it: 2**6 + 2**5 + 2**4 - 2**0
    assert terms.booth_digits([0b1101111], width=7).tolist() == [[-1, 0, 0, 0, 1, 1, 1, 0]]


def test_booth_and_naf_counts_differ_on_6147_positive_15_bit_values():
    # Cross-check from tcl-dpred-fpraker.md §1.5 ("differs from NAF on 6147 of the 32767
    # positive 15-bit values").
    positive = np.arange(1, 1 << 15)
    booth = terms.term_count(positive, encoding="booth", width=15)
    naf = terms.term_count(positive, encoding="naf", width=15)
    assert np.count_nonzero(booth != naf) == 6147
    assert np.all(booth >= naf)   # NAF is minimal


def test_binary_term_count_is_popcount():
    expected = np.array([bin(int(v)).count("1") for v in ALL_16])
    assert np.array_equal(terms.term_count(ALL_16, encoding="binary", width=16), expected)


@pytest.mark.parametrize("encoding", ["binary", "naf", "booth"])
def test_encode_terms_lists_the_non_zero_digits(encoding):
    sign, position, count = terms.encode_terms(ALL_16, encoding=encoding, width=16)
    assert sign.dtype == np.int8 and position.dtype == np.int8
    assert sign.shape == position.shape == (ALL_16.size, count.max())
    assert np.array_equal(count, terms.term_count(ALL_16, encoding=encoding, width=16))
    slot = np.arange(sign.shape[1])
    used = slot < count[:, None]
    assert np.all(sign[~used] == 0) and np.all(position[~used] == -1)
    assert np.all(np.abs(sign[used]) == 1)
    # ascending positions: least significant first
    assert np.all(np.diff(position.astype(int), axis=1)[used[:, 1:]] > 0)
    if encoding == "binary":
        digits = np.stack([(np.abs(ALL_16) >> k) & 1 for k in range(17)], axis=1)
        digits = digits * np.sign(ALL_16)[:, None]
    else:
        digits = getattr(terms, f"{encoding}_digits")(ALL_16, width=16)
    rebuilt = np.zeros_like(digits)
    rows = np.nonzero(used)[0]
    rebuilt[rows, position[used]] = sign[used]
    assert np.array_equal(rebuilt, digits)


def test_encode_terms_shapes_and_empty_cases():
    sign, position, count = terms.encode_terms(np.zeros((2, 3), dtype=np.int64),
                                               encoding="naf", width=4)
    assert sign.shape == position.shape == (2, 3, 0) and count.tolist() == [[0] * 3] * 2
    sign, position, count = terms.encode_terms(np.array([], dtype=np.int64),
                                               encoding="booth", width=4)
    assert sign.shape == (0, 0) and count.shape == (0,)
    values = np.array([[7, -5], [0, 1]])
    sign, position, count = terms.encode_terms(values, encoding="naf", width=3)
    assert sign.shape == (2, 2, 2) and count.tolist() == [[2, 2], [0, 1]]
    assert position[0, 0].tolist() == [0, 3] and sign[0, 0].tolist() == [-1, 1]


def random_operands(rng, width, signed, shape, weight_shape=None):
    low, high = (-(1 << (width - 1)), 1 << (width - 1)) if signed else (0, 1 << width)
    acts = rng.integers(low, high, shape)
    weights = rng.integers(-(1 << 15), 1 << 15, weight_shape or shape)
    return acts, weights


def exact_dot(acts, weights):
    acts, weights = np.broadcast_arrays(acts, weights)
    return (acts.astype(object) * weights.astype(object)).sum(axis=-1)


@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("width", [1, 2, 3, 5, 8, 12, 16, 24, 32])
def test_bit_serial_dot_equals_dot(width, signed):
    rng = np.random.default_rng(width * 2 + signed)
    acts, weights = random_operands(rng, width, signed, (50, 16))
    result = terms.bit_serial_dot(acts, weights, act_width=width, act_signed=signed)
    assert result.dtype == np.int64 and result.shape == (50,)
    assert np.array_equal(result, exact_dot(acts, weights))
    # shared weights broadcast over a batch of activation vectors
    shared = weights[0]
    assert np.array_equal(terms.bit_serial_dot(acts, shared, act_width=width, act_signed=signed),
                          exact_dot(acts, shared))
    assert terms.bit_serial_dot(acts[0], shared, act_width=width,
                                act_signed=signed) == exact_dot(acts[0], shared)


@pytest.mark.parametrize("signed", [True, False])
def test_bit_serial_dot_extremes(signed):
    for width in (1, 8, 16):
        low, high = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0,
                                                                                (1 << width) - 1)
        acts = np.array([[low] * 7, [high] * 7, [low, high] * 3 + [0], [0] * 7])
        weights = np.array([-(1 << 15), (1 << 15) - 1, -1, 1, 0, 12345, -32768])
        assert np.array_equal(terms.bit_serial_dot(acts, weights, act_width=width,
                                                   act_signed=signed), exact_dot(acts, weights))
    assert terms.bit_serial_dot(np.zeros((3, 0), dtype=int), np.zeros(0, dtype=int),
                                act_width=4, act_signed=True).tolist() == [0, 0, 0]


@pytest.mark.parametrize("encoding", ["binary", "naf", "booth"])
@pytest.mark.parametrize("width", [1, 2, 4, 8, 15, 16, 20, 32])
def test_term_serial_dot_equals_dot(encoding, width):
    rng = np.random.default_rng(width)
    limit = 1 << width
    acts = rng.integers(-limit + 1, limit, (40, 16))
    acts[0] = limit - 1
    acts[1] = -limit + 1
    acts[2] = 0
    weights = rng.integers(-(1 << 15), 1 << 15, (40, 16))
    result = terms.term_serial_dot(acts, weights, encoding=encoding, width=width)
    assert result.dtype == np.int64 and np.array_equal(result, exact_dot(acts, weights))
    unsigned = np.abs(acts)
    assert np.array_equal(terms.term_serial_dot(unsigned, weights[3], encoding=encoding,
                                                width=width), exact_dot(unsigned, weights[3]))
    zeros = terms.term_serial_dot(np.zeros((5, 16), dtype=int), weights[:5], encoding=encoding,
                                  width=width)
    assert zeros.shape == (5,) and not zeros.any()


def message(text):
    return "^" + re.escape(text) + "$"


def test_errors():
    with pytest.raises(TypeError, match=message("width must be an integer from 1 to 32, "
                                                "not '8'")):
        terms.naf_digits([1], width="8")
    with pytest.raises(TypeError, match=message("width must be an integer from 1 to 32, "
                                                "not True")):
        terms.booth_digits([1], width=True)
    for width in (0, 33):
        with pytest.raises(ValueError, match=message(f"width must be an integer from 1 to 32, "
                                                     f"not {width}")):
            terms.term_count([1], encoding="naf", width=width)
    with pytest.raises(ValueError, match=message("encoding must be one of binary, naf, booth, "
                                                 "not 'csd'")):
        terms.encode_terms([1], encoding="csd", width=4)
    with pytest.raises(TypeError, match=message("values must be an integer array, not dtype "
                                                "float64")):
        terms.naf_digits([1.0], width=4)
    with pytest.raises(TypeError, match=message("values must be an integer array, not dtype "
                                                "bool")):
        terms.naf_digits([True], width=4)
    with pytest.raises(ValueError, match=message("values must satisfy |v| < 2**4 (-15..15); "
                                                 "found -16..3")):
        terms.booth_digits([3, -16], width=4)
    with pytest.raises(ValueError, match=message("act_width must be an integer from 1 to 32, "
                                                 "not 0")):
        terms.bit_serial_dot([1], [1], act_width=0, act_signed=True)
    with pytest.raises(TypeError, match=message("act_signed must be True or False, not 1")):
        terms.bit_serial_dot([1], [1], act_width=4, act_signed=1)
    with pytest.raises(ValueError, match=message("acts must fit 4-bit signed (-8..7); "
                                                 "found 0..8")):
        terms.bit_serial_dot([0, 8], [1, 1], act_width=4, act_signed=True)
    with pytest.raises(TypeError, match=message("weights must be an integer array, not dtype "
                                                "float64")):
        terms.bit_serial_dot([1], [1.5], act_width=4, act_signed=True)
    with pytest.raises(ValueError, match=message("acts and weights must have the same last axis "
                                                 "length; found 2 and 3")):
        terms.term_serial_dot([1, 2], [1, 2, 3], encoding="naf", width=4)
    with pytest.raises(ValueError, match=message("acts and weights must have at least one axis "
                                                 "(the dot-product axis)")):
        terms.bit_serial_dot(1, [1], act_width=4, act_signed=True)
    with pytest.raises(ValueError, match=message("acts shape (2, 3) and weights shape (4, 3) do "
                                                 "not broadcast")):
        terms.term_serial_dot(np.ones((2, 3), dtype=int), np.ones((4, 3), dtype=int),
                              encoding="booth", width=4)
