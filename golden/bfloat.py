"""bfloat16 and float32 at the bit level: pack, unpack, classify, convert, exact values.

Values are carried as their IEEE bit patterns (``uint16`` for bfloat16, ``uint32`` for float32)
and taken apart with integer operations only, so nothing here depends on how numpy (or the
host FPU) rounds floats. Formats:

=========  ====  ========  ========  ====  ====================================================
format     bits  exponent  fraction  bias  value of a normal number
=========  ====  ========  ========  ====  ====================================================
bfloat16   16    8         7         127   ``(-1)**s * (128 + m) * 2**(e - 127 - 7)``
float32    32    8         23        127   ``(-1)**s * (2**23 + m) * 2**(e - 127 - 23)``
=========  ====  ========  ========  ====  ====================================================

Classes (`classify`): exponent field 0 with fraction 0 is `ZERO`, with fraction != 0
`SUBNORMAL`; exponent field all ones with fraction 0 is `INF`, otherwise `NAN`; anything else
`NORMAL`. The FPRaker datapath (`golden.fpraker`) flushes subnormals to zero; `significand`
reflects that.

Conversion float32 -> bfloat16 (`f32_to_bf16`) is round to nearest, ties to even, on the bit
pattern: keep the top 16 bits and add one unit in the last place when the 16 dropped bits are
above half, or exactly half with an odd kept pattern. The carry may ripple into the exponent
(rounding up to the next binade or to infinity), exactly as IEEE rounding does. NaN becomes
the quiet NaN with the same sign (``0x7fc0`` / ``0xffc0``). Subnormal float32 values round to
subnormal bfloat16 patterns (no flushing at conversion time).
"""

from fractions import Fraction

import numpy as np

__all__ = [
    "ZERO", "SUBNORMAL", "NORMAL", "INF", "NAN", "CLASS_NAMES", "BF16", "F32", "FloatFormat",
    "unpack", "pack", "classify", "significand", "f32_to_bf16", "bf16_to_f32",
    "float32_bits", "bits_float32", "to_fraction", "BF16_QNAN", "F32_QNAN",
]

#: class codes returned by `classify`
ZERO, SUBNORMAL, NORMAL, INF, NAN = range(5)
CLASS_NAMES = ("zero", "subnormal", "normal", "inf", "nan")

#: canonical quiet NaN patterns
BF16_QNAN = 0x7FC0
F32_QNAN = 0x7FC00000


class FloatFormat:
    """A binary interchange format: ``exponent_bits`` and ``fraction_bits`` (bias implied)."""

    def __init__(self, name, exponent_bits, fraction_bits, dtype):
        self.name = name
        self.exponent_bits = exponent_bits
        self.fraction_bits = fraction_bits
        self.bits = 1 + exponent_bits + fraction_bits
        self.bias = (1 << (exponent_bits - 1)) - 1
        self.max_exponent = (1 << exponent_bits) - 1
        self.dtype = dtype

    def __repr__(self):
        return f"FloatFormat({self.name})"


BF16 = FloatFormat("bfloat16", 8, 7, np.uint16)
F32 = FloatFormat("float32", 8, 23, np.uint32)


def _check_format(fmt):
    if fmt is not BF16 and fmt is not F32:
        raise TypeError(f"fmt must be golden.bfloat.BF16 or golden.bfloat.F32, not {fmt!r}")
    return fmt


def _bits(bits, fmt):
    """Return ``bits`` as ``int64`` after checking they are integer patterns of ``fmt``."""
    bits = np.asarray(bits)
    if bits.dtype == np.bool_ or not np.issubdtype(bits.dtype, np.integer):
        raise TypeError(f"bits must be an integer array, not dtype {bits.dtype}")
    bits = bits.astype(np.int64)
    if bits.size and (bits.min() < 0 or bits.max() >= 1 << fmt.bits):
        raise ValueError(f"bits must be {fmt.name} patterns from 0 to {(1 << fmt.bits) - 1:#x}; "
                         f"found {int(bits.min()):#x}..{int(bits.max()):#x}")
    return bits


def unpack(bits, fmt=BF16):
    """Return ``(sign, exponent, fraction)`` fields of bit patterns, each ``int64``.

    Parameters
    ----------
    bits : integer array_like
        Patterns of ``fmt`` (``0 .. 2**fmt.bits - 1``).
    fmt : `BF16` or `F32`
    """
    fmt = _check_format(fmt)
    bits = _bits(bits, fmt)
    fraction = bits & ((1 << fmt.fraction_bits) - 1)
    exponent = (bits >> fmt.fraction_bits) & fmt.max_exponent
    sign = bits >> (fmt.bits - 1)
    return sign, exponent, fraction


def pack(sign, exponent, fraction, fmt=BF16):
    """Return the bit patterns (``fmt.dtype``) of the fields; raise if a field does not fit."""
    fmt = _check_format(fmt)
    fields = np.broadcast_arrays(*(np.asarray(f).astype(np.int64)
                                   for f in (sign, exponent, fraction)))
    limits = {"sign": 1, "exponent": fmt.max_exponent, "fraction": (1 << fmt.fraction_bits) - 1}
    for (name, limit), field in zip(limits.items(), fields):
        if field.size and (field.min() < 0 or field.max() > limit):
            raise ValueError(f"{name} must be from 0 to {limit} for {fmt.name}; found "
                             f"{int(field.min())}..{int(field.max())}")
    sign, exponent, fraction = fields
    return ((sign << (fmt.bits - 1)) | (exponent << fmt.fraction_bits) | fraction).astype(
        fmt.dtype)


def classify(bits, fmt=BF16):
    """Return the class code (`ZERO`, `SUBNORMAL`, `NORMAL`, `INF`, `NAN`) of each pattern."""
    _, exponent, fraction = unpack(bits, fmt)
    special = exponent == fmt.max_exponent
    tiny = exponent == 0
    code = np.full(exponent.shape, NORMAL, dtype=np.int8)
    code[tiny & (fraction == 0)] = ZERO
    code[tiny & (fraction != 0)] = SUBNORMAL
    code[special & (fraction == 0)] = INF
    code[special & (fraction != 0)] = NAN
    return code


def significand(bits, fmt=BF16):
    """Return the integer significand ``2**fraction_bits + fraction`` of each pattern, with
    subnormals flushed: 0 for zeros and subnormals. Infinities and NaNs keep their fields
    (callers handle them by class)."""
    _, exponent, fraction = unpack(bits, fmt)
    return np.where(exponent == 0, 0, fraction | (1 << fmt.fraction_bits))


def f32_to_bf16(bits):
    """Round float32 patterns to bfloat16 patterns, to nearest with ties to even (module docs)."""
    bits = _bits(bits, F32)
    kept = bits >> 16
    dropped = bits & 0xFFFF
    round_up = (dropped > 0x8000) | ((dropped == 0x8000) & ((kept & 1) == 1))
    rounded = kept + round_up
    is_nan = (((bits >> 23) & 0xFF) == 0xFF) & ((bits & 0x7FFFFF) != 0)
    rounded = np.where(is_nan, (bits >> 31 << 15) | BF16_QNAN, rounded)
    return rounded.astype(np.uint16)


def bf16_to_f32(bits):
    """Return the float32 patterns of bfloat16 patterns (exact: the low 16 bits are zero)."""
    return (_bits(bits, BF16) << 16).astype(np.uint32)


def float32_bits(values):
    """Return the float32 bit patterns of ``values`` (``uint32``).

    ``values`` must be a float32 array (or Python floats/other float arrays, which numpy
    first rounds to float32 by IEEE rules: this is the only host rounding involved).
    """
    return np.ascontiguousarray(np.asarray(values, dtype=np.float32)).view(np.uint32)


def bits_float32(bits):
    """Return float32 values of float32 patterns (a reinterpretation, no rounding)."""
    return np.ascontiguousarray(_bits(bits, F32).astype(np.uint32)).view(np.float32)


def to_fraction(bits, fmt=BF16, *, flush_subnormals=False):
    """Return the exact value of one finite pattern as a `fractions.Fraction`.

    Parameters
    ----------
    bits : int
        One pattern of ``fmt``.
    fmt : `BF16` or `F32`
    flush_subnormals : bool
        Return 0 for a subnormal (the FPRaker datapath's view of it).

    Raises
    ------
    ValueError for an infinity or NaN (no rational value).
    """
    sign, exponent, fraction = (int(f) for f in unpack(int(bits), fmt))
    if exponent == fmt.max_exponent:
        raise ValueError(f"{fmt.name} pattern {int(bits):#x} is an infinity or NaN and has no "
                         f"rational value")
    if exponent == 0:
        if flush_subnormals:
            return Fraction(0)
        magnitude = Fraction(fraction) * Fraction(2) ** (1 - fmt.bias - fmt.fraction_bits)
    else:
        magnitude = (Fraction(fraction | (1 << fmt.fraction_bits))
                     * Fraction(2) ** (exponent - fmt.bias - fmt.fraction_bits))
    return -magnitude if sign else magnitude
