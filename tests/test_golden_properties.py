"""Property-based checks of the golden core (hypothesis), each against plain-Python definitions.

The examples are derandomized so every run checks the same cases; the exhaustive and seeded
tests in the other ``test_golden_*`` files cover the small spaces completely.
"""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from golden import dpred, fixedpoint, terms
from golden.precision import group_precision

PROPERTY = settings(max_examples=200, deadline=None, derandomize=True)


@st.composite
def value_groups(draw, max_width=32, max_group=32):
    """A (groups, value_width, signed) triple: 1..4 groups of 1..max_group values."""
    value_width = draw(st.integers(1, max_width))
    signed = draw(st.booleans())
    low = -(1 << (value_width - 1)) if signed else 0
    high = (1 << (value_width - 1)) - 1 if signed else (1 << value_width) - 1
    group_size = draw(st.integers(1, max_group))
    count = draw(st.integers(1, 4))
    values = draw(st.lists(st.integers(low, high), min_size=group_size * count,
                           max_size=group_size * count))
    return np.array(values, dtype=np.int64).reshape(count, group_size), value_width, signed


def _fits(value, width, signed):
    if signed:
        return -(1 << (width - 1)) <= value < (1 << (width - 1))
    return 0 <= value < (1 << width)


@PROPERTY
@given(value_groups(), st.booleans())
def test_group_precision_is_the_minimal_exact_field(case, trim_lsb):
    groups, value_width, signed = case
    width, lsb = group_precision(groups, value_width=value_width, signed=signed,
                                 trim_lsb=trim_lsb)
    for group, p, k in zip(groups.tolist(), width.tolist(), lsb.tolist()):
        assert 1 <= p and 0 <= k and p + k <= value_width
        assert all(v % (1 << k) == 0 for v in group)                # the dropped bits are zero
        assert all(_fits(v >> k, p, signed) for v in group)          # the field holds the rest
        if p > 1:                                                    # and no narrower one does
            assert not all(_fits(v >> k, p - 1, signed) for v in group)
        if trim_lsb and any(group):
            assert any((v >> k) & 1 for v in group)                  # no common zero bit left
        if not trim_lsb:
            assert k == 0


@PROPERTY
@given(value_groups(max_width=16, max_group=8), st.integers(1, 20), st.booleans())
def test_dpred_round_trip_and_size(case, group_size, zero_skip):
    values, value_width, signed = case
    encoded = dpred.encode(values, value_width=value_width, signed=signed,
                           group_size=group_size, zero_skip=zero_skip, axis=1)
    np.testing.assert_array_equal(dpred.decode(encoded), values)
    size = dpred.encoded_size(values, value_width=value_width, signed=signed,
                              group_size=group_size, zero_skip=zero_skip, axis=1)
    assert size == encoded.size
    assert len(encoded.data) == -(-size.compressed_bits // 8)


@PROPERTY
@given(st.lists(st.integers(-(1 << 20) + 1, (1 << 20) - 1), min_size=1, max_size=64))
def test_term_encodings_reconstruct_and_naf_is_minimal(values):
    values = np.array(values, dtype=np.int64)
    naf = terms.naf_digits(values, width=20).astype(np.int64)
    booth = terms.booth_digits(values, width=20).astype(np.int64)
    powers = 1 << np.arange(21, dtype=np.int64)
    np.testing.assert_array_equal(naf @ powers, values)
    np.testing.assert_array_equal(booth @ powers, values)
    assert not np.any((naf[:, 1:] != 0) & (naf[:, :-1] != 0))      # non-adjacent
    naf_count = terms.term_count(values, encoding="naf", width=20)
    binary_count = np.array([bin(abs(int(v))).count("1") for v in values])
    assert np.all(naf_count <= terms.term_count(values, encoding="booth", width=20))
    assert np.all(naf_count <= binary_count)
    np.testing.assert_array_equal(terms.term_count(values, encoding="binary", width=20),
                                  binary_count)


@PROPERTY
@given(st.integers(1, 16), st.booleans(), st.integers(1, 24), st.integers(0, 2**32 - 1))
def test_serial_dot_products_equal_the_integer_dot_product(act_width, act_signed, lanes, seed):
    rng = np.random.default_rng(seed)
    low = -(1 << (act_width - 1)) if act_signed else 0
    high = (1 << (act_width - 1)) if act_signed else (1 << act_width)
    acts = rng.integers(low, high, size=(3, lanes))
    weights = rng.integers(-(1 << 15), 1 << 15, size=lanes)
    expected = [sum(int(a) * int(w) for a, w in zip(row, weights)) for row in acts]
    assert bit_list(terms.bit_serial_dot(acts, weights, act_width=act_width,
                                         act_signed=act_signed)) == expected
    for encoding in terms.ENCODINGS:
        assert bit_list(terms.term_serial_dot(acts, weights, encoding=encoding,
                                              width=act_width)) == expected


def bit_list(array):
    return [int(x) for x in np.asarray(array).ravel()]


@PROPERTY
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=64),
       st.integers(2, 16))
def test_symmetric_quantization_error_is_at_most_half_a_step(values, bits):
    x = np.array(values)
    scale = fixedpoint.symmetric_scale(x, bits=bits)
    q = fixedpoint.quantize(x, scale, bits=bits, signed=True)
    error = np.abs(fixedpoint.dequantize(q, scale) - x)
    assert np.all(error <= scale / 2 * (1 + 1e-12) + 1e-300)
    low, high = fixedpoint.integer_range(bits=bits, signed=True)
    assert np.all((q >= low + 1) & (q <= high))                     # symmetric: -2**(b-1) unused
