"""Term encodings of integers and the serial dot products built on them (Stripes, Pragmatic, TCLe).

A *term* is a signed power of two, ``sign * 2**position`` with ``sign`` in ``{-1, +1}``. A value
is the sum of its terms. Three encodings are provided, each a function of the magnitude ``|v|``;
a negative value is encoded as its magnitude with every term sign negated (sign-magnitude, as
term-serial hardware sees it after the sign is split off):

``"binary"``
    One ``+1`` term per set bit of ``|v|`` (Pragmatic's plain "oneffsets").

``"naf"``
    Canonical signed digit / non-adjacent form: no two adjacent non-zero digits, and the
    minimal number of non-zero digits of any signed-binary representation. Computed in closed
    form (``x = |v|``, ``h = x >> 1``, ``c = h ^ (x + h)``; ``+1`` digits are ``(x + h) & c``,
    ``-1`` digits are ``h & c``).

``"booth"``
    DNNsim's Booth-like encoding, mirrored bit for bit from ``generateBoothEncodingEntry`` in
    DNNsim ``core/src/Utils.cpp`` (repository isakedo/DNNsim). That function scans the bits of
    ``|v|`` from the MSB down with a window of three bits ``(b[j], b[j-1], b[j-2])`` (bits below
    0 read as 0) and one state bit, "inside a run":

    * outside a run, ``111`` starts a run and emits ``+2**(j+1)``; otherwise a set ``b[j]``
      emits a plain ``+2**j``. Runs of one or two ones therefore stay plain bits;
    * inside a run, a zero bit (always an isolated zero: two zeros end the run first) emits
      ``-2**j`` and the run goes on; ``100`` (the run's lowest one, followed by two zeros) emits
      ``-2**j`` and ends the run; any other window emits nothing.

    So a run of three or more ones, which may continue across isolated single zeros, becomes
    ``+2**(msb+1) - 2**lsb`` minus one term per isolated zero. The ``+2**(msb+1)`` "carry" lands
    on a zero bit and is never merged with the ones above it, e.g. ``0b1101111`` becomes
    ``2**6 + 2**5 + 2**4 - 2**0`` (4 terms; NAF needs 3), and ``0b110110`` stays 4 plain terms
    (NAF: 3). DNNsim returns only the term positions (a bit mask), with signs implied by the
    rule; here the signs are explicit. DNNsim tabulates 15-bit magnitudes in a 16-bit mask; the
    rule itself does not depend on the width, and here a term at position ``width`` is kept
    (``width + 1`` digit positions) instead of being dropped by a 16-bit mask.

Digit arrays are ``int8`` of shape ``values.shape + (width + 1,)`` with digits in ``{-1, 0, 1}``,
least significant first, so ``sum(d[k] * 2**k) == v``. Every function is vectorized: the loops
run over bit positions or term slots, never over values.
"""

import functools

import numpy as np

from hw.params import check_bool, check_int

from .precision import check_range

__all__ = [
    "ENCODINGS", "MAX_WIDTH", "naf_digits", "booth_digits", "term_count", "encode_terms",
    "bit_serial_dot", "term_serial_dot",
]

#: names accepted by the ``encoding`` parameter
ENCODINGS = ("binary", "naf", "booth")

#: largest supported magnitude width in bits
MAX_WIDTH = 32

# Magnitudes up to this many bits are Booth-encoded through a cached table built by the scan.
_BOOTH_TABLE_BITS = 16


def _check_values(values, width):
    """Return ``(magnitude uint64, negative bool)`` of integers ``values``, ``|v| < 2**width``."""
    values = np.asarray(values)
    if values.dtype == np.bool_ or not np.issubdtype(values.dtype, np.integer):
        raise TypeError(f"values must be an integer array, not dtype {values.dtype}")
    limit = (1 << width) - 1
    if values.size and (values.min() < -limit or values.max() > limit):
        raise ValueError(f"values must satisfy |v| < 2**{width} ({-limit}..{limit}); "
                         f"found {values.min()}..{values.max()}")
    values = values.astype(np.int64)
    return np.abs(values).astype(np.uint64), values < 0


def _check_encoding(encoding):
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}, not {encoding!r}")
    return encoding


def _naf_masks(magnitude):
    """Return the ``+1`` and ``-1`` digit masks of the non-adjacent form of ``magnitude``."""
    half = magnitude >> np.uint64(1)
    three_halves = magnitude + half
    changed = half ^ three_halves
    return three_halves & changed, half & changed


def _booth_masks_scan(magnitude, width):
    """Return DNNsim's Booth ``+1`` and ``-1`` term masks by the MSB-first scan (module docs)."""
    plus = np.zeros(magnitude.shape, dtype=np.uint64)
    minus = np.zeros(magnitude.shape, dtype=np.uint64)
    in_run = np.zeros(magnitude.shape, dtype=bool)

    def bit(position):
        if position < 0:
            return np.zeros(magnitude.shape, dtype=bool)
        return ((magnitude >> np.uint64(position)) & np.uint64(1)).astype(bool)

    below1, below2 = bit(width - 1), bit(width - 2)
    for j in range(width - 1, -1, -1):
        current, below1, below2 = below1, below2, bit(j - 2)
        starts = ~in_run & current & below1 & below2
        plain = ~in_run & current & ~starts
        ends = in_run & current & ~below1 & ~below2
        zero_in_run = in_run & ~current
        plus |= starts * np.uint64(1 << (j + 1)) | plain * np.uint64(1 << j)
        minus |= (ends | zero_in_run) * np.uint64(1 << j)
        in_run = (in_run | starts) & ~ends
    return plus, minus


@functools.cache
def _booth_table():
    """Return the Booth masks of every magnitude below ``2**_BOOTH_TABLE_BITS`` (read-only)."""
    magnitudes = np.arange(1 << _BOOTH_TABLE_BITS, dtype=np.uint64)
    plus, minus = _booth_masks_scan(magnitudes, _BOOTH_TABLE_BITS)
    plus.flags.writeable = False
    minus.flags.writeable = False
    return plus, minus


def _booth_masks(magnitude, width):
    if width <= _BOOTH_TABLE_BITS:
        plus, minus = _booth_table()
        return plus[magnitude], minus[magnitude]
    return _booth_masks_scan(magnitude, width)


def _term_masks(values, encoding, width):
    """Return ``(plus, minus)`` uint64 masks: bit ``k`` set where the term at ``k`` is +1 / -1."""
    width = check_int("width", width, 1, MAX_WIDTH)
    encoding = _check_encoding(encoding)
    magnitude, negative = _check_values(values, width)
    if encoding == "binary":
        plus, minus = magnitude, np.zeros_like(magnitude)
    elif encoding == "naf":
        plus, minus = _naf_masks(magnitude)
    else:
        plus, minus = _booth_masks(magnitude, width)
    return np.where(negative, minus, plus), np.where(negative, plus, minus), width


def _digits(plus, minus, width):
    """Return the ``int8`` digits ``[..., width + 1]`` of the ``plus``/``minus`` masks."""
    digits = np.empty(plus.shape + (width + 1,), dtype=np.int8)
    bits = np.empty(plus.shape, dtype=np.uint64)     # reused buffers: no per-digit temporaries
    negative = np.empty(plus.shape, dtype=np.int8)
    for k in range(width + 1):
        column = digits[..., k]
        column[...] = np.bitwise_and(np.right_shift(plus, k, out=bits), 1, out=bits)
        negative[...] = np.bitwise_and(np.right_shift(minus, k, out=bits), 1, out=bits)
        column -= negative
    return digits


def naf_digits(values, *, width):
    """Return the non-adjacent form (canonical signed digits) of each value.

    Parameters
    ----------
    values : integer array_like
        Signed or unsigned values with ``|v| < 2**width``.
    width : int, 1..32
        Magnitude width in bits.

    Returns
    -------
    ``int8`` array of shape ``values.shape + (width + 1,)``: digits in ``{-1, 0, 1}``, least
    significant first, no two adjacent digits non-zero, ``sum(d[k] * 2**k) == v``. A negative
    value gets the digits of its magnitude negated.

    Raises
    ------
    TypeError for a non-integer array or width; ValueError for an out-of-range width or value.
    """
    plus, minus, width = _term_masks(values, "naf", width)
    return _digits(plus, minus, width)


def booth_digits(values, *, width):
    """Return DNNsim's Booth-like signed digits of each value (rule in the module docstring).

    Parameters
    ----------
    values : integer array_like
        Signed or unsigned values with ``|v| < 2**width``.
    width : int, 1..32
        Magnitude width in bits.

    Returns
    -------
    ``int8`` array of shape ``values.shape + (width + 1,)``: digits in ``{-1, 0, 1}``, least
    significant first, ``sum(d[k] * 2**k) == v``. A negative value gets the digits of its
    magnitude negated.

    Raises
    ------
    TypeError for a non-integer array or width; ValueError for an out-of-range width or value.
    """
    plus, minus, width = _term_masks(values, "booth", width)
    return _digits(plus, minus, width)


def term_count(values, *, encoding, width):
    """Return the number of non-zero terms of each value under ``encoding``.

    Parameters
    ----------
    values : integer array_like
        Signed or unsigned values with ``|v| < 2**width``.
    encoding : {"binary", "naf", "booth"}
        ``"binary"`` counts the set bits of ``|v|``; the others count non-zero digits.
    width : int, 1..32
        Magnitude width in bits.

    Returns
    -------
    ``int64`` array of shape ``values.shape`` (0 for a zero value).
    """
    plus, minus, _ = _term_masks(values, encoding, width)
    return np.bitwise_count(plus | minus).astype(np.int64)


def encode_terms(values, *, encoding, width):
    """Return each value as a list of signed power-of-two terms, least significant first.

    Parameters
    ----------
    values : integer array_like
        Signed or unsigned values with ``|v| < 2**width``.
    encoding : {"binary", "naf", "booth"}
        The term encoding (module docstring).
    width : int, 1..32
        Magnitude width in bits.

    Returns
    -------
    sign : ``int8`` array of shape ``values.shape + (T,)``
        ``+1`` or ``-1`` for each term, ``0`` in padding slots.
    position : ``int8`` array of the same shape
        The term's bit position (``0..width``), ascending; ``-1`` in padding slots.
    count : ``int64`` array of shape ``values.shape``
        Number of terms of each value; slots ``count..T-1`` are padding.

    ``T`` is the largest term count among ``values`` (0 when every value is zero or there are no
    values), so ``v == sum(sign * 2**position)`` over the non-padding slots.
    """
    plus, minus, _ = _term_masks(values, encoding, width)
    remaining = plus | minus
    count = np.bitwise_count(remaining).astype(np.int64)
    slots = int(count.max()) if count.size else 0
    sign = np.empty(plus.shape + (slots,), dtype=np.int8)
    position = np.empty(plus.shape + (slots,), dtype=np.int8)
    one = np.uint64(1)
    for slot in range(slots):
        lowest = remaining & (~remaining + one)       # lowest set bit, 0 once none is left
        remaining ^= lowest
        sign[..., slot] = ((plus & lowest) != 0).view(np.int8) - ((minus & lowest) != 0)
        # popcount(lowest - 1) is the index of the lowest set bit
        position[..., slot] = np.where(lowest != 0, np.bitwise_count(lowest - one), -1)
    return sign, position, count


def _check_weights(weights, acts_shape):
    """Return ``weights`` as ``int64`` and the shape of the dot products with ``acts``."""
    weights = np.asarray(weights)
    if weights.dtype == np.bool_ or not np.issubdtype(weights.dtype, np.integer):
        raise TypeError(f"weights must be an integer array, not dtype {weights.dtype}")
    if len(acts_shape) == 0 or weights.ndim == 0:
        raise ValueError("acts and weights must have at least one axis (the dot-product axis)")
    if weights.shape[-1] != acts_shape[-1]:
        raise ValueError(f"acts and weights must have the same last axis length; "
                         f"found {acts_shape[-1]} and {weights.shape[-1]}")
    try:
        result_shape = np.broadcast_shapes(acts_shape, weights.shape)[:-1]
    except ValueError:
        raise ValueError(f"acts shape {acts_shape} and weights shape {weights.shape} "
                         f"do not broadcast") from None
    return weights.astype(np.int64), result_shape


def bit_serial_dot(acts, weights, *, act_width, act_signed):
    """Return the dot product over the last axis, computed bit-serially as Stripes does.

    The activations are split into ``act_width`` two's-complement bit planes, processed least
    significant first: each step adds ``(sum over lanes of bit_b(a) * w) << b`` to the
    accumulator, except that the sign plane ``b = act_width - 1`` of signed activations is
    subtracted (its weight is ``-2**(act_width-1)``). The result equals ``np.dot`` in ``int64``.

    Parameters
    ----------
    acts : integer array_like, shape ``(..., L)``
        Activations fitting ``act_width``-bit signed or unsigned.
    weights : integer array_like, shape broadcastable with ``acts``, last axis ``L``
        Bit-parallel weights.
    act_width : int, 1..32
        Number of activation bit planes (cycles).
    act_signed : bool
        Activations are two's complement (the top plane is negated) or unsigned.

    Returns
    -------
    ``int64`` of shape ``broadcast(acts, weights).shape[:-1]`` (a numpy scalar for 1-D inputs).
    Exact as long as the true dot product and partial sums fit in ``int64``.
    """
    act_width = check_int("act_width", act_width, 1, MAX_WIDTH)
    act_signed = check_bool("act_signed", act_signed)
    acts = check_range(acts, value_width=act_width, signed=act_signed, name="acts")
    weights, result_shape = _check_weights(weights, acts.shape)
    total = np.zeros(result_shape, dtype=np.int64)
    for plane in range(act_width):
        bits = (acts >> plane) & 1
        partial = np.sum(bits * weights, axis=-1)
        if act_signed and plane == act_width - 1:
            partial = -partial
        total += partial << plane
    return total[()]


def term_serial_dot(acts, weights, *, encoding, width):
    """Return the dot product over the last axis, computed term-serially as Pragmatic does.

    Each activation is turned into its terms (`encode_terms`); step ``t`` takes the ``t``-th
    term (least significant first) of every lane and adds ``sum over lanes of
    sign * (w << position)`` to the accumulator; lanes whose terms are used up contribute 0.
    The number of steps is the largest term count. The result equals ``np.dot`` in ``int64``.

    Parameters
    ----------
    acts : integer array_like, shape ``(..., L)``
        Activations with ``|a| < 2**width`` (signed or unsigned).
    weights : integer array_like, shape broadcastable with ``acts``, last axis ``L``
        Bit-parallel weights.
    encoding : {"binary", "naf", "booth"}
        The activation term encoding.
    width : int, 1..32
        Activation magnitude width in bits.

    Returns
    -------
    ``int64`` of shape ``broadcast(acts, weights).shape[:-1]`` (a numpy scalar for 1-D inputs).
    Exact as long as the true dot product and the shifted weights fit in ``int64``.
    """
    weights, result_shape = _check_weights(weights, np.shape(acts))
    sign, position, _ = encode_terms(acts, encoding=encoding, width=width)
    total = np.zeros(result_shape, dtype=np.int64)
    for slot in range(sign.shape[-1]):
        shift = np.maximum(position[..., slot], 0).astype(np.int64)
        total += np.sum(sign[..., slot] * (weights << shift), axis=-1)
    return total[()]
