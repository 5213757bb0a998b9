"""golden.fixedpoint against exact references: Python's decimal module and round() for the
rounding modes, plain Python for saturation and ranges, and error bounds for quantization."""

import decimal
import math
import re

import numpy as np
import pytest

from golden import fixedpoint

TRICKY = [0.0, -0.0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 0.49999999999999994,
          -0.49999999999999994, 0.5000000000000001, 1e-300, -1e-300, 2.0**52 + 1,
          -(2.0**52 + 1), 2.0**52 + 0.5, -(2.0**52 + 0.5), 2.0**53 - 1, 2.0**62, -(2.0**62),
          4503599627370495.5, -4503599627370495.5, 127.5, -128.5]


def sample_floats():
    rng = np.random.default_rng(11)
    ties = np.arange(-20, 20) + 0.5
    magnitudes = rng.normal(size=3000) * 10.0 ** rng.integers(-3, 16, 3000)
    return np.concatenate([TRICKY, ties, magnitudes, np.round(magnitudes, 1)])


def decimal_round(x, mode):
    return int(decimal.Decimal(float(x)).quantize(decimal.Decimal(1), rounding=mode))


@pytest.mark.parametrize("function, mode", [
    (fixedpoint.round_half_even, decimal.ROUND_HALF_EVEN),
    (fixedpoint.round_half_away, decimal.ROUND_HALF_UP),   # decimal's HALF_UP is away from 0
    (fixedpoint.truncate, decimal.ROUND_DOWN),             # toward zero
    (fixedpoint.floor, decimal.ROUND_FLOOR),
])
def test_rounding_modes_are_exact(function, mode):
    x = sample_floats()
    result = function(x)
    assert result.dtype == np.int64
    assert result.tolist() == [decimal_round(v, mode) for v in x]


def test_half_even_agrees_with_python_round():
    x = sample_floats()
    assert fixedpoint.round_half_even(x).tolist() == [round(v) for v in x.tolist()]


def test_roundings_table():
    assert fixedpoint.ROUNDINGS == {
        "half_even": fixedpoint.round_half_even, "half_away": fixedpoint.round_half_away,
        "truncate": fixedpoint.truncate, "floor": fixedpoint.floor,
        "stochastic": fixedpoint.round_stochastic}


def message(text):
    return "^" + re.escape(text) + "$"


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 2.0**63, -(2.0**64)])
def test_rounding_refuses_what_int64_cannot_hold(value):
    def stochastic(x):
        return fixedpoint.round_stochastic(x, np.random.default_rng(0))

    for function in (fixedpoint.round_half_even, fixedpoint.round_half_away,
                     fixedpoint.truncate, fixedpoint.floor, stochastic):
        with pytest.raises(ValueError, match=message(
                "cannot round NaN, infinity or a value beyond the int64 range to an integer")):
            function([1.0, value])


def test_stochastic_rounding_is_reproducible_and_picks_a_neighbour():
    x = sample_floats()
    x = x[np.abs(x) < 2.0**62]
    first = fixedpoint.round_stochastic(x, np.random.default_rng(5))
    again = fixedpoint.round_stochastic(x, np.random.default_rng(5))
    other = fixedpoint.round_stochastic(x, np.random.default_rng(6))
    assert first.dtype == np.int64 and np.array_equal(first, again)
    assert not np.array_equal(first, other)
    low = np.array([math.floor(v) for v in x.tolist()], dtype=object)
    assert np.all((first == low) | (first == low + 1))
    integral = x == np.floor(x)
    assert np.array_equal(first[integral], x[integral].astype(np.int64))


def test_stochastic_rounding_is_unbiased():
    # Each fraction f is rounded n times; the mean error of a correct rounder has standard
    # deviation sqrt(f (1 - f) / n) <= 0.5 / sqrt(n) = 7.1e-4. With a fixed seed the test is
    # deterministic; the 5-sigma bound (3.5e-3) rejects floor (bias f), round-to-nearest
    # (bias up to 0.5) and a rounder off by even 1 % of probability.
    n = 50_000
    x = np.repeat([0.1, 0.25, 0.5, 0.9, -0.3, -2.75, 1000.125, -7.0], n)
    rounded = fixedpoint.round_stochastic(x, np.random.default_rng(2024))
    bias = (rounded - x).reshape(-1, n).mean(axis=1)
    assert np.all(np.abs(bias) <= 5 * 0.5 / math.sqrt(n)), bias


def test_stochastic_needs_a_generator():
    with pytest.raises(TypeError, match=message("rng must be a numpy.random.Generator, not 5")):
        fixedpoint.round_stochastic([0.5], 5)


@pytest.mark.parametrize("signed", [True, False])
def test_integer_range_and_saturate(signed):
    for bits in range(1, 33):
        low, high = fixedpoint.integer_range(bits=bits, signed=signed)
        assert (low, high) == ((-(2**(bits - 1)), 2**(bits - 1) - 1) if signed
                               else (0, 2**bits - 1))
        q = [low - 2**40, low - 1, low, low + 1, 0, high - 1, high, high + 1, high + 2**40]
        expected = [min(max(v, low), high) for v in q]
        assert fixedpoint.saturate(q, bits=bits, signed=signed).tolist() == expected


def test_bits_errors():
    for bits in (0, 33):
        with pytest.raises(ValueError, match=message(f"bits must be an integer from 1 to 32, "
                                                     f"not {bits}")):
            fixedpoint.integer_range(bits=bits, signed=True)
    for bits, shown in (("8", "'8'"), (8.0, "8.0"), (True, "True")):
        with pytest.raises(TypeError, match=message(f"bits must be an integer from 1 to 32, "
                                                    f"not {shown}")):
            fixedpoint.saturate([0], bits=bits, signed=True)


def channel_data(rng, signed):
    x = rng.normal(size=(4, 6, 5)) * np.array([0.01, 1.0, 300.0, 0.0, 2.0, 1e-6])[:, None]
    return x if signed else np.abs(x)


def round_trip_bound(x, scale):
    # |x - q*scale| <= scale/2 exactly; x/scale and q*scale each add a few ulps of |x|.
    return scale / 2 + 4 * np.finfo(np.float64).eps * np.abs(x)


@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("bits", [2, 4, 8, 16])
def test_symmetric_round_trip(bits, signed):
    rng = np.random.default_rng(bits)
    x = channel_data(rng, signed)
    high = 2**(bits - 1) - 1 if signed else 2**bits - 1
    for axis in (None, 1, -2):
        scale = fixedpoint.symmetric_scale(x, bits=bits, signed=signed, axis=axis)
        if axis is None:
            assert scale == np.abs(x).max() / high
        else:
            peaks = np.abs(x).max(axis=(0, 2))
            assert np.array_equal(scale, np.where(peaks > 0, peaks / high, 1.0))
        q = fixedpoint.quantize(x, scale, bits=bits, signed=signed, axis=axis)
        assert q.dtype == np.int64
        assert q.min() >= (-high if signed else 0) and q.max() <= high
        shaped = scale if axis is None else scale[:, None]
        back = fixedpoint.dequantize(q, scale, axis=axis)
        assert np.all(np.abs(back - x) <= round_trip_bound(x, shaped))


@pytest.mark.parametrize("bits", [2, 4, 8, 16])
def test_asymmetric_round_trip(bits):
    rng = np.random.default_rng(bits)
    x = channel_data(rng, True) + np.array([0, 5, -400, 0, 0, 0])[:, None]
    for axis in (None, 1):
        scale, zero_point = fixedpoint.asymmetric_params(x, bits=bits, axis=axis)
        assert zero_point.dtype == np.int64
        assert np.all((zero_point >= 0) & (zero_point <= 2**bits - 1))
        q = fixedpoint.quantize(x, scale, zero_point, bits=bits, signed=False, axis=axis)
        assert q.min() >= 0 and q.max() <= 2**bits - 1
        back = fixedpoint.dequantize(q, scale, zero_point, axis=axis)
        shaped = scale if axis is None else scale[:, None]
        assert np.all(np.abs(back - x) <= round_trip_bound(x, shaped) + 1e-300)
        # zero is exactly representable
        zeros = np.zeros_like(x)
        assert not fixedpoint.dequantize(fixedpoint.quantize(
            zeros, scale, zero_point, bits=bits, signed=False, axis=axis), scale, zero_point,
            axis=axis).any()


def test_quantize_composes_the_named_steps():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 50)) * 40
    scale = np.array([0.5, 0.25, 1.0])
    zero_point = np.array([3, -2, 0])
    for rounding in ("half_even", "half_away", "truncate", "floor"):
        q = fixedpoint.quantize(x, scale, zero_point, bits=6, signed=True, rounding=rounding,
                                axis=0)
        function = fixedpoint.ROUNDINGS[rounding]
        expected = fixedpoint.saturate(function(x / scale[:, None]) + zero_point[:, None],
                                       bits=6, signed=True)
        assert np.array_equal(q, expected)
    q = fixedpoint.quantize(x, scale, bits=6, signed=True, rounding="stochastic",
                            rng=np.random.default_rng(9), axis=0)
    expected = fixedpoint.saturate(fixedpoint.round_stochastic(
        x / scale[:, None], np.random.default_rng(9)), bits=6, signed=True)
    assert np.array_equal(q, expected)


def test_quantize_saturates_huge_and_infinite_values_to_the_right_end():
    x = np.array([1e30, -1e30, np.inf, -np.inf, 1e300, 3.0])
    assert fixedpoint.quantize(x, 1.0, bits=8, signed=True).tolist() == [
        127, -128, 127, -128, 127, 3]
    assert fixedpoint.quantize(x, 1.0, 2, bits=8, signed=False).tolist() == [
        255, 0, 255, 0, 255, 5]


@pytest.mark.parametrize("signed", [True, False])
def test_quantize_with_extreme_zero_points_saturates_like_python(signed):
    """Any zero point in the code range, with values far beyond it: plain Python reference
    (clamp to +-2**62, round() ties to even, add, clip)."""
    x = [math.inf, -math.inf, 1e300, -1e300, 2.0**62, -(2.0**62), 2.0**40 + 0.5, -2.5, 0.5, 0.0]
    for bits in (1, 2, 8, 31, 32):
        low, high = (-(2**(bits - 1)), 2**(bits - 1) - 1) if signed else (0, 2**bits - 1)
        for zero_point in (low, high, np.int64(low), np.uint32(high) if not signed else low):
            expected = [min(max(round(min(max(v, -(2.0**62)), 2.0**62)) + int(zero_point), low),
                            high) for v in x]
            assert fixedpoint.quantize(x, 1.0, zero_point, bits=bits,
                                       signed=signed).tolist() == expected
        per_channel = fixedpoint.quantize([x, x], 1.0, [low, high], bits=bits, signed=signed,
                                          axis=0)
        assert per_channel.tolist() == [
            [min(max(round(min(max(v, -(2.0**62)), 2.0**62)) + zp, low), high) for v in x]
            for zp in (low, high)]


def test_zero_point_errors():
    with pytest.raises(TypeError, match=message("zero_point must be an integer array, not dtype "
                                                "float64")):
        fixedpoint.quantize([0.0], 1.0, 3.7, bits=8, signed=False)
    with pytest.raises(TypeError, match=message("zero_point must be an integer array, not dtype "
                                                "float64")):
        fixedpoint.quantize([0.0], 1.0, 3.0, bits=8, signed=False)
    with pytest.raises(TypeError, match=message("zero_point must be an integer array, not dtype "
                                                "bool")):
        fixedpoint.quantize([0.0], 1.0, True, bits=8, signed=True)
    with pytest.raises(ValueError, match=message("zero_point must fit 8-bit signed (-128..127); "
                                                 "found 4611686018427387904..4611686018427387904")):
        fixedpoint.quantize([2.0**62], 1.0, 2**62, bits=8, signed=True)
    with pytest.raises(ValueError, match=message("zero_point must fit 8-bit signed (-128..127); "
                                                 "found -129..-129")):
        fixedpoint.quantize([0.0], 1.0, -129, bits=8, signed=True)
    with pytest.raises(ValueError, match=message("zero_point must fit 4-bit unsigned (0..15); "
                                                 "found -1..16")):
        fixedpoint.quantize(np.zeros((3, 2)), 1.0, [-1, 3, 16], bits=4, signed=False, axis=0)
    with pytest.raises(ValueError, match=message("bits must be an integer from 1 to 32, "
                                                 "not 33")):
        fixedpoint.quantize([0.0], 1.0, 0, bits=33, signed=True)
    with pytest.raises(TypeError, match=message("zero_point must be an integer array, not dtype "
                                                "float64")):
        fixedpoint.dequantize([1], 1.0, 0.5)
    with pytest.raises(ValueError, match=message("zero_point holds values outside the 64-bit "
                                                 "signed range")):
        fixedpoint.dequantize([1], 1.0, np.uint64(2**63))
    # dequantize has no code range: any int64 zero point is accepted
    assert fixedpoint.dequantize([1], 0.5, 2**40).tolist() == [(1 - 2**40) * 0.5]


def test_quantize_and_scale_errors():
    x = np.ones((2, 3))
    with pytest.raises(ValueError, match=message("rounding must be one of half_even, half_away, "
                                                 "truncate, floor, stochastic, not 'nearest'")):
        fixedpoint.quantize(x, 1.0, bits=8, signed=True, rounding="nearest")
    for scale in (0.0, -1.0, math.nan, [1.0, 0.0, 1.0]):
        with pytest.raises(ValueError, match=message("scale must be positive")):
            fixedpoint.quantize(x, scale, bits=8, signed=True, axis=1)
    with pytest.raises(ValueError, match=message("scale must be a scalar or have shape (3,) for "
                                                 "axis 1, not (2,)")):
        fixedpoint.quantize(x, [1.0, 2.0], bits=8, signed=True, axis=1)
    with pytest.raises(ValueError, match=message("zero_point must be a scalar or have shape "
                                                 "(2,) for axis 0, not (3,)")):
        fixedpoint.dequantize(x.astype(int), 1.0, [0, 0, 0], axis=0)
    with pytest.raises(ValueError, match=message("axis must be None or an integer from -2 to 1 "
                                                 "for a 2-dimensional array, not 2")):
        fixedpoint.quantize(x, [1.0, 1.0], bits=8, signed=True, axis=2)
    with pytest.raises(ValueError, match=message("axis must be None or an integer from -2 to 1 "
                                                 "for a 2-dimensional array, not -3")):
        fixedpoint.symmetric_scale(x, bits=8, axis=-3)
    with pytest.raises(TypeError, match=message("axis must be None or an integer, not 1.0")):
        fixedpoint.asymmetric_params(x, bits=8, axis=1.0)
    with pytest.raises(TypeError, match=message("axis must be None or an integer, not True")):
        fixedpoint.quantize(x, 1.0, bits=8, signed=True, axis=True)
    with pytest.raises(ValueError, match=message("axis must be None for a 0-dimensional array, "
                                                 "not 0")):
        fixedpoint.quantize(1.0, 1.0, bits=8, signed=True, axis=0)
    with pytest.raises(ValueError, match=message("x must not contain NaN")):
        fixedpoint.quantize([1.0, math.nan], 1.0, bits=8, signed=True)
    with pytest.raises(ValueError, match=message("stochastic rounding needs rng (a seeded "
                                                 "numpy.random.Generator)")):
        fixedpoint.quantize(x, 1.0, bits=8, signed=True, rounding="stochastic")
    with pytest.raises(ValueError, match=message("unsigned symmetric quantization needs "
                                                 "non-negative x")):
        fixedpoint.symmetric_scale([-1.0], bits=8, signed=False)
    with pytest.raises(ValueError, match=message("bits must be at least 2 for signed symmetric "
                                                 "quantization")):
        fixedpoint.symmetric_scale([1.0], bits=1)
    with pytest.raises(ValueError, match=message("bits must be an integer from 1 to 32, not 0")):
        fixedpoint.asymmetric_params([1.0], bits=0)
