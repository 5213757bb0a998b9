"""Dynamic precision of value groups (Dynamic Stripes / DPRed / Bit-Tactical TCLp).

Definitions (bit-exact, and the contract the hardware detector is checked against):

* ``width`` of a signed group: the smallest ``p >= 1`` such that every value lies in
  ``[-2**(p-1), 2**(p-1) - 1]`` (minimal two's-complement width).
* ``width`` of an unsigned group: the smallest ``p >= 1`` such that every value lies in
  ``[0, 2**p - 1]``.
* An all-zero group (and, signed, an all-minus-one group) is charged ``width = 1``: one bit is the
  narrowest field that still reconstructs the values, and a bit-serial unit spends at least one
  cycle on any group it is given. (DNNsim charges ``1 + signed``; we do not copy that, nor its
  sign-magnitude undercount.)
* With LSB trimming, ``lsb`` is the number of trailing zero bits common to every non-zero value
  of the group (0 for an all-zero group), and ``width`` is reduced by ``lsb``. Every value is then
  exactly ``sign_extend(field, width) << lsb`` (or zero-extended, unsigned), where ``field`` holds
  bits ``lsb .. lsb+width-1`` of the value. Without trimming ``lsb`` is always 0.
"""

import numpy as np

from hw.params import check_int

from ._checks import integer_bounds

__all__ = ["bit_length", "trailing_zeros", "check_range", "group_precision", "value_precision"]


def bit_length(x):
    """Return the bit length of each non-negative integer in ``x`` (0 for 0), as ``int64``."""
    x = np.asarray(x).astype(np.uint64)
    n = np.zeros(x.shape, dtype=np.int64)
    for step in (32, 16, 8, 4, 2, 1):
        high = x >> np.uint64(step)
        nonzero = high != 0
        n += nonzero * step
        x = np.where(nonzero, high, x)
    return n + (x != 0)


def trailing_zeros(x):
    """Return the number of trailing zero bits of each integer in ``x`` (0 for 0), as ``int64``.

    Negative integers are taken in two's complement, which has the same trailing zeros as the
    magnitude.
    """
    x = np.asarray(x).astype(np.int64).astype(np.uint64)
    lowest = x & (~x + np.uint64(1))
    return np.maximum(bit_length(lowest) - 1, 0)


def check_range(values, *, value_width, signed, name="values"):
    """Return ``values`` as ``int64`` after checking they are integers that fit the width.

    Raises ``TypeError`` for a non-integer array and ``ValueError`` for any value outside the
    range of ``value_width``-bit signed or unsigned numbers; the message names ``name``.
    ``value_width`` must be an integer from 1 to 64 (``TypeError``/``ValueError`` otherwise).
    """
    value_width = check_int("value_width", value_width, 1, 64)
    values = np.asarray(values)
    if values.dtype == np.bool_ or not np.issubdtype(values.dtype, np.integer):
        raise TypeError(f"{name} must be an integer array, not dtype {values.dtype}")
    if values.dtype == np.uint64 and values.size and values.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name} holds values outside the 64-bit signed range")
    values = values.astype(np.int64)
    low, high = integer_bounds(value_width, signed)
    if values.size and (values.min() < low or values.max() > high):
        kind = "signed" if signed else "unsigned"
        raise ValueError(f"{name} must fit {value_width}-bit {kind} ({low}..{high}); "
                         f"found {values.min()}..{values.max()}")
    return values


def value_precision(values, *, signed):
    """Return the minimal width (>= 1) of each single value (a group of one), as ``int64``.

    ``values`` must be an integer array (``TypeError`` otherwise) whose values fit ``int64``,
    and, unsigned, be non-negative (``ValueError`` otherwise).
    """
    values = check_range(values, value_width=64, signed=True, name="values")
    if not signed and values.size and values.min() < 0:
        raise ValueError(f"values must be non-negative when signed is False; "
                         f"found {values.min()}")
    if signed:
        return bit_length(np.where(values < 0, ~values, values)) + 1
    return np.maximum(bit_length(values), 1)


def group_precision(groups, *, value_width, signed, trim_lsb=False):
    """Return ``(width, lsb)`` of each group along the last axis of ``groups``.

    Both results are ``int64`` arrays of shape ``groups.shape[:-1]``. See the module docstring
    for the exact definitions; ``lsb`` is all zeros when ``trim_lsb`` is false.
    """
    groups = check_range(groups, value_width=value_width, signed=signed, name="groups")
    if groups.ndim == 0:
        raise ValueError("groups must have at least one axis (the group axis)")
    if signed:
        magnitude_bits = np.bitwise_or.reduce(np.where(groups < 0, ~groups, groups), axis=-1)
        width = bit_length(magnitude_bits) + 1
    else:
        width = np.maximum(bit_length(np.bitwise_or.reduce(groups, axis=-1)), 1)
    if trim_lsb:
        lsb = trailing_zeros(np.bitwise_or.reduce(groups, axis=-1))
    else:
        lsb = np.zeros_like(width)
    return width - lsb, lsb
