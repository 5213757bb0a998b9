"""Linear (uniform) fixed-point quantization with named rounding and saturation steps.

``quantize`` is the composition of named steps, each a function of its own:

1. ``x / scale`` in float64 (IEEE, deterministic); NaN is rejected,
2. clamp to ``[-2**62, 2**62]`` so that huge or infinite values reach saturation with the right
   sign instead of overflowing ``int64`` (this cannot change a result: the codes are at most
   32 bits wide, and ``zero_point`` must itself be a code, an integer in the ``bits``-wide
   range, so adding it to a clamped value neither overflows nor brings it back into range),
3. a rounding function from `ROUNDINGS` (round half to even, round half away from zero,
   truncate toward zero, floor, or stochastic rounding driven by a seeded generator),
4. ``+ zero_point`` (asymmetric quantization only),
5. `saturate` to the ``bits``-wide signed or unsigned range.

Every rounding function is exact for every finite float64 (no intermediate float rounding) and
raises ``ValueError`` for NaN, infinity or a result outside ``int64``.

Scales are per tensor (``axis=None``) or per channel (``axis`` = the channel axis); a per-channel
scale is a 1-D array with one entry per index along ``axis``.
"""

import numpy as np

from hw.params import check_int

from ._checks import check_axis, integer_bounds
from .precision import check_range

__all__ = [
    "round_half_even", "round_half_away", "truncate", "floor", "round_stochastic", "ROUNDINGS",
    "integer_range", "saturate", "symmetric_scale", "asymmetric_params", "quantize",
    "dequantize",
]


def _to_int64(rounded):
    """Convert integral float64 values to ``int64``, refusing what ``int64`` cannot hold."""
    if not np.all(np.abs(rounded) < 2.0**63):
        raise ValueError("cannot round NaN, infinity or a value beyond the int64 range "
                         "to an integer")
    return rounded.astype(np.int64)


def round_half_even(x):
    """Round to the nearest integer, ties to even (IEEE default, numpy ``rint``)."""
    return _to_int64(np.rint(np.asarray(x, dtype=np.float64)))


def round_half_away(x):
    """Round to the nearest integer, ties away from zero (TFLite's reference rounding)."""
    x = np.asarray(x, dtype=np.float64)
    whole = np.trunc(x)
    # x - trunc(x) is exact in float64, so the tie test is exact too (inf - inf is refused by
    # _to_int64, hence no warning).
    with np.errstate(invalid="ignore"):
        return _to_int64(whole + np.sign(x) * (np.abs(x - whole) >= 0.5))


def truncate(x):
    """Round toward zero (drop the fraction)."""
    return _to_int64(np.trunc(np.asarray(x, dtype=np.float64)))


def floor(x):
    """Round toward minus infinity (drop fraction bits of a two's-complement number)."""
    return _to_int64(np.floor(np.asarray(x, dtype=np.float64)))


def round_stochastic(x, rng):
    """Round up with probability equal to the fraction of ``x``, down otherwise.

    ``floor(x) + (u < x - floor(x))`` with ``u = rng.random(x.shape)`` uniform in ``[0, 1)``
    (multiples of ``2**-53``): integers are never changed, and the expected result is ``x`` up
    to ``2**-53``. ``rng`` must be a ``numpy.random.Generator``; the result is a pure function
    of ``x`` and the generator's state, so a seeded generator makes it reproducible.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, not {rng!r}")
    x = np.asarray(x, dtype=np.float64)
    whole = np.floor(x)
    with np.errstate(invalid="ignore"):
        return _to_int64(whole + (rng.random(x.shape) < x - whole))


#: rounding mode name -> function of (x) or, for "stochastic", of (x, rng)
ROUNDINGS = {
    "half_even": round_half_even,
    "half_away": round_half_away,
    "truncate": truncate,
    "floor": floor,
    "stochastic": round_stochastic,
}


def integer_range(*, bits, signed):
    """Return ``(low, high)``, the range of ``bits``-wide signed or unsigned integers.

    ``bits`` must be an integer from 1 to 32 (``TypeError`` for another type, ``ValueError``
    out of range).
    """
    return integer_bounds(check_int("bits", bits, 1, 32), signed)


def saturate(q, *, bits, signed):
    """Clamp integers to the ``bits``-wide signed or unsigned range."""
    low, high = integer_range(bits=bits, signed=signed)
    return np.clip(np.asarray(q, dtype=np.int64), low, high)


def _reduce_axes(x, axis):
    axis = check_axis(axis, x.ndim)
    if axis is None:
        return None
    return tuple(a for a in range(x.ndim) if a != axis)


def _broadcast(param, x, axis, name):
    param = np.asarray(param, dtype=np.float64 if np.asarray(param).dtype.kind == "f" else None)
    axis = check_axis(axis, x.ndim)
    if axis is None or param.ndim == 0:
        return param
    if param.shape != (x.shape[axis],):
        raise ValueError(f"{name} must be a scalar or have shape ({x.shape[axis]},) for axis "
                         f"{axis}, not {param.shape}")
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    return param.reshape(shape)


def symmetric_scale(x, *, bits, signed=True, axis=None):
    """Return the scale mapping ``max |x|`` to the largest code (per tensor or per channel).

    Signed codes use ``2**(bits-1) - 1`` as the largest magnitude (the range is symmetric, the
    most negative code is unused); unsigned codes (for non-negative ``x``) use ``2**bits - 1``.
    A tensor or channel that is all zero gets scale 1.0.
    """
    x = np.asarray(x, dtype=np.float64)
    _, high = integer_range(bits=bits, signed=signed)
    if not signed and x.size and x.min() < 0:
        raise ValueError("unsigned symmetric quantization needs non-negative x")
    peak = np.max(np.abs(x), axis=_reduce_axes(x, axis)) if x.size else np.float64(0)
    peak = np.asarray(peak, dtype=np.float64)
    if high == 0:
        raise ValueError("bits must be at least 2 for signed symmetric quantization")
    return np.where(peak > 0, peak / high, 1.0)


def asymmetric_params(x, *, bits, axis=None):
    """Return ``(scale, zero_point)`` mapping ``[min(x, 0), max(x, 0)]`` onto unsigned codes.

    The range always contains zero so that zero is exactly representable; ``zero_point`` is an
    ``int64`` code in ``0 .. 2**bits - 1`` found by `round_half_even`.
    """
    x = np.asarray(x, dtype=np.float64)
    _, high = integer_range(bits=bits, signed=False)
    axes = _reduce_axes(x, axis)
    low_value = np.minimum(np.min(x, axis=axes), 0.0)
    high_value = np.maximum(np.max(x, axis=axes), 0.0)
    span = high_value - low_value
    scale = np.where(span > 0, span / high, 1.0)
    zero_point = np.clip(round_half_even(-low_value / scale), 0, high)
    return scale, zero_point


def quantize(x, scale, zero_point=0, *, bits, signed, rounding="half_even", rng=None, axis=None):
    """Return ``saturate(rounding(clamp(x / scale)) + zero_point)`` as ``int64`` codes.

    The steps are listed in the module docstring; ``scale`` and ``zero_point`` are scalars or,
    with ``axis``, per-channel 1-D arrays. ``zero_point`` must be an integer (integer dtype,
    ``TypeError`` otherwise) in `integer_range` of ``bits`` and ``signed`` (``ValueError``
    otherwise). ``rng`` (a seeded ``numpy.random.Generator``) is required by, and only used for,
    ``rounding="stochastic"``.
    """
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {', '.join(ROUNDINGS)}, not {rounding!r}")
    bits = check_int("bits", bits, 1, 32)
    x = np.asarray(x, dtype=np.float64)
    scale = _broadcast(np.asarray(scale, dtype=np.float64), x, axis, "scale")
    if np.any(~(scale > 0)):
        raise ValueError("scale must be positive")
    zero_point = check_range(zero_point, value_width=bits, signed=signed, name="zero_point")
    zero_point = _broadcast(zero_point, x, axis, "zero_point")
    scaled = x / scale
    if np.any(np.isnan(scaled)):
        raise ValueError("x must not contain NaN")
    scaled = np.clip(scaled, -2.0**62, 2.0**62)
    if rounding == "stochastic":
        if rng is None:
            raise ValueError("stochastic rounding needs rng (a seeded numpy.random.Generator)")
        rounded = round_stochastic(scaled, rng)
    else:
        rounded = ROUNDINGS[rounding](scaled)
    return saturate(rounded + zero_point, bits=bits, signed=signed)


def dequantize(q, scale, zero_point=0, *, axis=None):
    """Return ``(q - zero_point) * scale`` in float64.

    ``zero_point`` must be an integer (integer dtype, ``TypeError`` otherwise) that fits
    ``int64`` (``ValueError`` otherwise); with no ``bits`` here, its code range is not checked.
    """
    q = np.asarray(q, dtype=np.int64)
    scale = _broadcast(np.asarray(scale, dtype=np.float64), q, axis, "scale")
    zero_point = check_range(zero_point, value_width=64, signed=True, name="zero_point")
    zero_point = _broadcast(zero_point, q, axis, "zero_point")
    return (q - zero_point).astype(np.float64) * scale
