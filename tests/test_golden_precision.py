"""golden.precision against a naive plain-Python reference: every single value of every width
1..16, every group of two 8-bit values, and seeded random groups with the edge cases."""

import itertools
import re

import numpy as np
import pytest

from golden import precision


def fits(value, width, signed):
    if signed:
        return -(1 << (width - 1)) <= value <= (1 << (width - 1)) - 1
    return 0 <= value <= (1 << width) - 1


def naive_width(values, signed):
    """Smallest p >= 1 such that every value fits p bits."""
    width = 1
    while not all(fits(v, width, signed) for v in values):
        width += 1
    return width


def naive_trimmed(values, signed):
    """(width, lsb): lsb = trailing zeros common to all values (0 if all zero), then the
    smallest width that holds every value >> lsb."""
    lsb = 0
    if any(values):
        while all(v % (1 << (lsb + 1)) == 0 for v in values):
            lsb += 1
    return naive_width([v >> lsb for v in values], signed), lsb


def value_range(width, signed):
    if signed:
        return np.arange(-(1 << (width - 1)), 1 << (width - 1))
    return np.arange(1 << width)


@pytest.mark.parametrize("signed", [True, False])
def test_every_single_value_of_every_width(signed):
    widest = value_range(16, signed)
    naive = {int(v): naive_width([int(v)], signed) for v in widest}
    naive_trim = {int(v): naive_trimmed([int(v)], signed) for v in widest}
    for value_width in range(1, 17):
        values = value_range(value_width, signed)
        width, lsb = precision.group_precision(values[:, None], value_width=value_width,
                                               signed=signed)
        assert width.dtype == np.int64 and lsb.dtype == np.int64
        assert width.tolist() == [naive[int(v)] for v in values]
        assert not lsb.any()
        width, lsb = precision.group_precision(values[:, None], value_width=value_width,
                                               signed=signed, trim_lsb=True)
        assert list(zip(width.tolist(), lsb.tolist())) == [naive_trim[int(v)] for v in values]
        assert precision.value_precision(values, signed=signed).tolist() == [
            naive[int(v)] for v in values]


@pytest.mark.parametrize("trim_lsb", [False, True])
@pytest.mark.parametrize("signed", [True, False])
def test_every_pair_of_8_bit_values(signed, trim_lsb):
    values = value_range(8, signed).tolist()
    pairs = list(itertools.product(values, values))
    width, lsb = precision.group_precision(np.array(pairs), value_width=8, signed=signed,
                                           trim_lsb=trim_lsb)
    if trim_lsb:
        expected = [naive_trimmed(pair, signed) for pair in pairs]
    else:
        expected = [(naive_width(pair, signed), 0) for pair in pairs]
    assert list(zip(width.tolist(), lsb.tolist())) == expected


def edge_groups(group_size, value_width, signed):
    low, high = (-(1 << (value_width - 1)), (1 << (value_width - 1)) - 1) if signed else (
        0, (1 << value_width) - 1)
    groups = [[0] * group_size, [high] * group_size, [low] * group_size,
              [1] + [0] * (group_size - 1), [0] * (group_size - 1) + [high]]
    if signed:
        groups += [[-1] * group_size, ([high, low] * group_size)[:group_size],
                   ([-1, 1] * group_size)[:group_size], [-1] + [0] * (group_size - 1)]
    for shift in range(value_width):   # powers of two and their negatives, for trimming
        groups.append(([1 << shift, 0] * group_size)[:group_size])
        if signed:
            groups.append([-(1 << shift)] * group_size)
    return [group for group in groups if all(low <= v <= high for v in group)]


@pytest.mark.parametrize("trim_lsb", [False, True])
@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("group_size", [1, 2, 3, 16, 17, 64, 256])
def test_random_and_edge_groups(group_size, signed, trim_lsb):
    rng = np.random.default_rng(group_size * 4 + signed * 2 + trim_lsb)
    for value_width in (1, 2, 5, 8, 13, 16, 24, 32):
        low, high = (-(1 << (value_width - 1)), 1 << (value_width - 1)) if signed else (
            0, 1 << value_width)
        count = max(4, 1024 // group_size)
        # random magnitudes (shifted down) and random trailing zeros, so widths vary
        groups = rng.integers(low, high, (count, group_size))
        groups >>= rng.integers(0, value_width, (count, 1))
        groups = (groups >> (tz := rng.integers(0, 4, (count, 1)))) << tz
        groups = np.clip(groups, low, high - 1)
        groups = np.concatenate([groups, np.array(edge_groups(group_size, value_width,
                                                              signed))])
        width, lsb = precision.group_precision(groups, value_width=value_width, signed=signed,
                                               trim_lsb=trim_lsb)
        if trim_lsb:
            expected = [naive_trimmed(g, signed) for g in groups.tolist()]
        else:
            expected = [(naive_width(g, signed), 0) for g in groups.tolist()]
        assert list(zip(width.tolist(), lsb.tolist())) == expected


def test_group_axis_is_the_last_axis():
    groups = np.array([[[1, 2], [-3, 0]], [[0, 0], [-1, -1]]])
    width, lsb = precision.group_precision(groups, value_width=4, signed=True)
    assert width.shape == lsb.shape == (2, 2)
    assert width.tolist() == [[naive_width(g, True) for g in row] for row in groups.tolist()]


def test_all_zero_and_all_minus_one_cost_one_bit():
    for group_size in (1, 16):
        zeros = np.zeros((1, group_size), dtype=np.int64)
        for signed in (True, False):
            for trim_lsb in (True, False):
                assert precision.group_precision(zeros, value_width=16, signed=signed,
                                                 trim_lsb=trim_lsb) == ([1], [0])
        assert precision.group_precision(zeros - 1, value_width=16, signed=True,
                                         trim_lsb=True) == ([1], [0])


def test_bit_length_and_trailing_zeros_match_python():
    rng = np.random.default_rng(7)
    values = np.concatenate([rng.integers(0, 1 << 63, 2000, dtype=np.int64)
                             >> rng.integers(0, 63, 2000), np.arange(1025),
                             [2**62, 2**63 - 1]])
    assert precision.bit_length(values).tolist() == [int(v).bit_length() for v in values]
    signed = np.concatenate([values, -values, [-(2**63)]])
    expected = [((v & -v).bit_length() - 1) if v else 0 for v in map(int, signed)]
    assert precision.trailing_zeros(signed).tolist() == expected


def message(text):
    return "^" + re.escape(text) + "$"


def test_check_range():
    assert precision.check_range(np.array([-8, 7], dtype=np.int8), value_width=4,
                                 signed=True).dtype == np.int64
    assert precision.check_range(np.array([], dtype=np.uint64), value_width=4,
                                 signed=False).size == 0
    with pytest.raises(TypeError, match=message("groups must be an integer array, not dtype "
                                                "float64")):
        precision.group_precision([[1.0]], value_width=4, signed=True)
    with pytest.raises(TypeError, match=message("values must be an integer array, not dtype "
                                                "bool")):
        precision.check_range([True], value_width=4, signed=False)
    with pytest.raises(ValueError, match=message("groups must fit 4-bit signed (-8..7); "
                                                 "found -9..7")):
        precision.group_precision([[7, -9]], value_width=4, signed=True)
    with pytest.raises(ValueError, match=message("acts must fit 4-bit unsigned (0..15); "
                                                 "found -1..3")):
        precision.check_range([3, -1], value_width=4, signed=False, name="acts")
    with pytest.raises(ValueError, match=message("values must fit 4-bit unsigned (0..15); "
                                                 "found 0..16")):
        precision.check_range([0, 16], value_width=4, signed=False)
    with pytest.raises(ValueError, match=message("values holds values outside the 64-bit "
                                                 "signed range")):
        precision.check_range(np.array([2**63], dtype=np.uint64), value_width=64, signed=False)
    for value_width in (0, 65):
        with pytest.raises(ValueError, match=message(f"value_width must be an integer from 1 "
                                                     f"to 64, not {value_width}")):
            precision.check_range([0], value_width=value_width, signed=True)
    with pytest.raises(TypeError, match=message("value_width must be an integer from 1 to 64, "
                                                "not 4.0")):
        precision.check_range([0], value_width=4.0, signed=True)
    with pytest.raises(ValueError, match=message("groups must have at least one axis (the "
                                                 "group axis)")):
        precision.group_precision(np.int64(3), value_width=4, signed=True)


def test_value_precision_errors():
    with pytest.raises(ValueError, match=message("values must be non-negative when signed is "
                                                 "False; found -3")):
        precision.value_precision([-3], signed=False)
    with pytest.raises(ValueError, match=message("values must be non-negative when signed is "
                                                 "False; found -9")):
        precision.value_precision(np.array([[5, -9], [0, -1]], dtype=np.int8), signed=False)
    for values, dtype in (([2.7], "float64"), ([2.0], "float64"), ([True], "bool"),
                          (["3"], "<U1")):
        with pytest.raises(TypeError, match=message(f"values must be an integer array, not "
                                                    f"dtype {dtype}")):
            precision.value_precision(values, signed=True)
    with pytest.raises(ValueError, match=message("values holds values outside the 64-bit "
                                                 "signed range")):
        precision.value_precision(np.array([2**63], dtype=np.uint64), signed=False)
    # the int64 extremes and unsigned dtypes are still accepted (naive reference)
    extremes = [-(2**63), -1, 0, 2**63 - 1]
    assert precision.value_precision(np.array(extremes), signed=True).tolist() == [
        naive_width([v], True) for v in extremes]
    unsigned = np.array([0, 1, 255, 2**63 - 1], dtype=np.uint64)
    assert precision.value_precision(unsigned, signed=False).tolist() == [
        naive_width([int(v)], False) for v in unsigned]
