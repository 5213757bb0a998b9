"""Linear (uniform) fixed-point quantization with named rounding and saturation steps.

``quantize`` is the composition of named steps, each a function of its own:

1. ``x / scale`` in float64 (IEEE, deterministic),
2. a rounding function from `ROUNDINGS` (round half to even, round half away from zero,
   truncate toward zero, floor, or stochastic rounding driven by a seeded generator),
3. ``+ zero_point`` (asymmetric quantization only),
4. `saturate` to the ``bits``-wide signed or unsigned range.

Scales are per tensor (``axis=None``) or per channel (``axis`` = the channel axis); a per-channel
scale is a 1-D array with one entry per index along ``axis``.
"""

import numpy as np

__all__ = [
    "round_half_even", "round_half_away", "truncate", "floor", "round_stochastic", "ROUNDINGS",
    "integer_range", "saturate", "symmetric_scale", "asymmetric_params", "quantize",
    "dequantize",
]


def round_half_even(x):
    """Round to the nearest integer, ties to even (IEEE default, numpy ``rint``)."""
    return np.rint(np.asarray(x, dtype=np.float64)).astype(np.int64)


def round_half_away(x):
    """Round to the nearest integer, ties away from zero (TFLite's reference rounding)."""
    x = np.asarray(x, dtype=np.float64)
    return (np.sign(x) * np.floor(np.abs(x) + 0.5)).astype(np.int64)


def truncate(x):
    """Round toward zero (drop the fraction)."""
    return np.trunc(np.asarray(x, dtype=np.float64)).astype(np.int64)


def floor(x):
    """Round toward minus infinity (drop fraction bits of a two's-complement number)."""
    return np.floor(np.asarray(x, dtype=np.float64)).astype(np.int64)


def round_stochastic(x, rng):
    """Round down or up with probability equal to the distance to the other neighbour.

    ``rng`` must be a ``numpy.random.Generator``; the result is a pure function of ``x`` and the
    generator's state, so a seeded generator makes it reproducible.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, not {rng!r}")
    x = np.asarray(x, dtype=np.float64)
    return np.floor(x + rng.random(x.shape)).astype(np.int64)


#: rounding mode name -> function of (x) or, for "stochastic", of (x, rng)
ROUNDINGS = {
    "half_even": round_half_even,
    "half_away": round_half_away,
    "truncate": truncate,
    "floor": floor,
    "stochastic": round_stochastic,
}


def _check_bits(bits):
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= 32:
        raise ValueError(f"bits must be an integer from 1 to 32, not {bits!r}")
    return int(bits)


def integer_range(*, bits, signed):
    """Return ``(low, high)``, the range of ``bits``-wide signed or unsigned integers."""
    bits = _check_bits(bits)
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def saturate(q, *, bits, signed):
    """Clamp integers to the ``bits``-wide signed or unsigned range."""
    low, high = integer_range(bits=bits, signed=signed)
    return np.clip(np.asarray(q, dtype=np.int64), low, high)


def _reduce_axes(x, axis):
    if axis is None:
        return None
    axis = axis % x.ndim
    return tuple(a for a in range(x.ndim) if a != axis)


def _broadcast(param, x, axis):
    param = np.asarray(param, dtype=np.float64 if np.asarray(param).dtype.kind == "f" else None)
    if axis is None or param.ndim == 0:
        return param
    axis = axis % x.ndim
    if param.shape != (x.shape[axis],):
        raise ValueError(f"per-channel parameter must have shape ({x.shape[axis]},), "
                         f"not {param.shape}")
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
    """Return ``saturate(rounding(x / scale) + zero_point)`` as ``int64`` codes."""
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {', '.join(ROUNDINGS)}, not {rounding!r}")
    x = np.asarray(x, dtype=np.float64)
    scale = _broadcast(np.asarray(scale, dtype=np.float64), x, axis)
    if np.any(~(scale > 0)):
        raise ValueError("scale must be positive")
    zero_point = _broadcast(np.asarray(zero_point, dtype=np.int64), x, axis)
    scaled = x / scale
    if rounding == "stochastic":
        if rng is None:
            raise ValueError("stochastic rounding needs rng (a seeded numpy.random.Generator)")
        rounded = round_stochastic(scaled, rng)
    else:
        rounded = ROUNDINGS[rounding](scaled)
    return saturate(rounded + zero_point, bits=bits, signed=signed)


def dequantize(q, scale, zero_point=0, *, axis=None):
    """Return ``(q - zero_point) * scale`` in float64."""
    q = np.asarray(q, dtype=np.int64)
    scale = _broadcast(np.asarray(scale, dtype=np.float64), q, axis)
    zero_point = _broadcast(np.asarray(zero_point, dtype=np.int64), q, axis)
    return (q - zero_point).astype(np.float64) * scale
