"""FPRaker: bfloat16 dot products by term-serial multiply-accumulate, bit-exact, with cycle model.

FPRaker (Awad et al., MICRO'21) processes several floating-point MACs at once, turns one
operand's significand into signed powers of two on the fly and skips the terms that would fall
below the accumulator's precision. The paper's internals were not available; this is the
reconstruction the project implements (`hw.fpraker`), with every open choice stated. Both the
FPRaker PE (`fpraker_dot`) and the bit-parallel baseline (`bf16_mac_dot`) are defined here,
sharing one accumulator.

Inputs and sets
---------------
A dot product ``sum_k A_k * B_k`` of bfloat16 patterns is cut into *sets* of ``lanes`` (N) pairs
along ``k`` (the last set padded with ``+0`` pairs). The PE takes one set at a time; a dot
product starts from a zero accumulator.

Operand classes (`golden.bfloat`)
---------------------------------
* zero and subnormal operands are **flushed to zero** (a subnormal bfloat16 is below
  ``2**-126``; supporting them would need a leading-zero count per lane and a wider exponent
  path for an effect at the edge of the FP32 range). Such a lane has no terms.
* infinities and NaNs set sticky flags instead of entering the accumulator: NaN in either
  operand, or infinity times a (flushed) zero, sets ``nan``; otherwise an infinity sets ``pinf``
  or ``ninf`` by the product sign. The result is IEEE's: NaN if ``nan`` or both infinities
  occurred (``inf - inf``), else the infinity, else the finite sum. NaN results are the
  canonical quiet NaN ``0x7fc00000`` (payloads are not propagated).
* a lane with two normal operands is *finite*: product sign ``s = sA ^ sB``, product exponent
  ``e = eA + eB`` (biased fields added; the product is ``sigA * sigB * 2**(e - 268)`` with
  8-bit significands ``sig = 128 + m``).

Accumulator (W = ``acc_width`` bits)
------------------------------------
A floating-point value held as sign ``acc_sign``, exponent ``E`` and a normalized magnitude
``M`` with ``2**(W-1) <= M < 2**W``, value ``(-1)**acc_sign * M * 2**(E - 268 + 16 - W)``; zero is
``M = 0`` with ``E = ZERO_EXPONENT`` (below every real exponent). ``E`` is on the scale of the
product exponents: a single product of maximal exponent ``e`` fills the window from its top bit
``W - 1`` (where ``2**16`` of the product's integer significand lands) down. For one set:

1. *Exponent block*: ``e_max`` = largest ``e`` of the finite lanes (``ZERO_EXPONENT`` if none);
   ``e_ref = max(E, e_max)``; each finite lane's distance ``d = e_ref - e >= 0``.
2. *Alignment* (named step, truncation toward zero): ``M_al = M >> (e_ref - E)``.
3. *Terms*: A's significand is encoded into signed powers of two ``sigA = sum t * 2**p``
   (`golden.terms`, ``encoding``: ``"naf"`` canonical signed digit by default; positions
   ``p = 0..8``), processed most significant first. The term's contribution in accumulator
   units is ``t * ((sigB << (W - 8)) >> (d + 8 - p))`` with the product sign applied: B's
   significand shifted into the window and **truncated toward zero** (a named step; the
   shifter works on the magnitude). A term with ``d + 8 - p >= W`` contributes exactly 0: it is
   *out of bounds* and skipped, and because terms go most significant first every later term
   of that lane is out of bounds too, so the lane is done. The in-window terms are those with
   ``p >= d + 9 - W`` (`window_mask`).
4. *Adder tree and accumulate*: ``S = (-1)**acc_sign * M_al + sum of every contribution`` (exact
   integer sum; the order of terms does not matter).
5. *Normalization*: ``acc_sign = S < 0``; with ``L = bit_length(|S|)``: ``L > W`` shifts right by
   ``L - W`` (**truncation toward zero**, a named step) and ``E = e_ref + L - W``; ``L <= W`` shifts
   left (exact) and ``E = e_ref - (W - L)``; ``S = 0`` gives the zero accumulator.

The baseline (`bf16_mac_dot`) differs only in step 3: each lane multiplies the significands at
once and contributes ``(sigA * sigB << (W - 16)) >> d`` (one truncation per product instead of
one per term), so the two designs agree exactly when no truncation happens (for example, every
lane with ``d = 0``) and are otherwise both within `error_bound`.

Result (after the set flagged last)
-----------------------------------
Rounded to float32, **round to nearest, ties to even**, from the W-bit magnitude: the top 24 bits
are kept and the ``W - 24`` dropped bits decide (for ``W <= 24`` the magnitude is exact in 24
bits). A carry out renormalizes. The float32 biased exponent is ``E - 126``; 255 or more gives an
infinity of the accumulator's sign (overflow), 0 or less gives a zero of that sign (**outputs
flush to zero** like inputs). An exactly zero accumulator gives ``+0``. Note that the
accumulator truncated every intermediate step, so the rounding is of the W-bit accumulator, not
of the exact sum (see `error_bound`).

Cycle model
-----------
The PE spends ``max(1, max over lanes of the in-window terms)`` cycles on a set: every lane
handles one term per cycle, the slowest lane decides, zero lanes and out-of-bounds terms cost
nothing, and a set with no term at all still takes one cycle (alignment and normalization).
The baseline takes one cycle per set. `fpraker_dot` also reports the cycles without
out-of-bounds skipping (every term of every finite lane) and the *ideal* cycles, effectual terms
divided by N (no lane ever idle), as a lower bound.

``E`` needs 12 signed bits (`hw.params.FPRakerParams.EXP_WIDTH`): product exponents are at most
``254 + 254``, normalization adds ``log2`` of the sum's growth (below 2**1500 sets of any N) and
left shifts lower it to at least ``3 - W``; ``ZERO_EXPONENT = -2048`` is below all of them.
"""

import dataclasses
import functools
from fractions import Fraction

import numpy as np

from hw.params import BF16MACParams, FP_ENCODINGS, FPRakerParams

from .precision import bit_length
from . import bfloat, terms

__all__ = ["ZERO_EXPONENT", "POSITIONS", "term_masks", "window_mask", "split_sets",
           "DotResult", "fpraker_dot", "bf16_mac_dot", "round_accumulator", "accumulator_value",
           "exact_dot", "error_bound", "set_statistics"]

#: accumulator exponent of a zero accumulator (and ``e_max`` of a set without finite lanes)
ZERO_EXPONENT = -(1 << (FPRakerParams.EXP_WIDTH - 1))
#: term positions of an 8-bit significand: 0..8 (a signed-digit encoding may carry into bit 8)
POSITIONS = 9
_F32_INF = 0x7F800000
_PRODUCT_BIAS = 268  # 2 * 127 + 2 * 7


@functools.cache
def _mask_table(encoding):
    """Return read-only ``(plus, minus)`` 9-bit masks for every significand 0..255."""
    values = np.arange(256)
    if encoding == "binary":
        plus, minus = values.copy(), np.zeros(256, dtype=np.int64)
    else:
        digits = (terms.naf_digits if encoding == "naf" else terms.booth_digits)(values, width=8)
        weights = 1 << np.arange(POSITIONS)
        plus = ((digits == 1) * weights).sum(-1).astype(np.int64)
        minus = ((digits == -1) * weights).sum(-1).astype(np.int64)
    plus.flags.writeable = False
    minus.flags.writeable = False
    return plus, minus


def term_masks(sig, *, encoding="naf"):
    """Return ``(plus, minus)`` masks (``int64``, bits 0..8) of the terms of significands ``sig``.

    Bit ``p`` of ``plus`` (``minus``) is set when ``sig`` has the term ``+2**p`` (``-2**p``) under
    ``encoding`` (`golden.terms`); ``sig`` in 0..255 (0 has no terms).
    """
    if encoding not in FP_ENCODINGS:
        raise ValueError(f"encoding must be one of {', '.join(FP_ENCODINGS)}, not {encoding!r}")
    sig = np.asarray(sig).astype(np.int64)
    plus, minus = _mask_table(encoding)
    return plus[sig], minus[sig]


def window_mask(distance, *, acc_width):
    """Return the 9-bit mask of term positions inside the window for exponent distances ``d``.

    A term at position ``p`` of a lane ``d`` below the reference exponent lands in the window
    when ``d + 8 - p < acc_width``, i.e. ``p >= d + 9 - acc_width``.
    """
    distance = np.asarray(distance).astype(np.int64)
    threshold = np.clip(distance + 9 - acc_width, 0, POSITIONS)
    return ((1 << POSITIONS) - 1) ^ ((1 << threshold) - 1)


def split_sets(values, lanes):
    """Return ``values`` (``[..., K]`` bfloat16 patterns) as sets ``[..., ceil(K/lanes), lanes]``,
    padding the last set with ``+0`` (pattern 0)."""
    values = np.asarray(values)
    if values.ndim == 0 or values.shape[-1] == 0:
        raise ValueError("a dot product needs at least one pair along the last axis")
    k = values.shape[-1]
    sets = -(-k // lanes)
    padded = np.zeros(values.shape[:-1] + (sets * lanes,), dtype=np.int64)
    padded[..., :k] = values
    return padded.reshape(values.shape[:-1] + (sets, lanes))


@dataclasses.dataclass(frozen=True)
class DotResult:
    """Results of `fpraker_dot` / `bf16_mac_dot` for dot products of shape ``shape``.

    Attributes
    ----------
    bits : ``uint32`` array
        float32 result patterns.
    cycles : ``int64`` array
        PE cycles per dot product (the cycle model; the baseline: one per set).
    sets : int
        Sets per dot product.
    acc_sign, acc_exponent, acc_magnitude : ``int64`` arrays
        The final accumulator (before rounding to float32).
    nan, pinf, ninf : ``bool`` arrays
        The sticky special-value flags.
    terms : ``int64`` array
        Terms of A's significand over the finite lanes (0 for the baseline).
    effectual : ``int64`` array
        In-window terms, the ones processed (0 for the baseline).
    zero_lane_terms : ``int64`` array
        Terms of A in lanes whose product is zero or special (skipped by zero detection).
    cycles_no_skip : ``int64`` array
        Cycles if out-of-bounds terms were not skipped (equal to ``cycles`` for the baseline).
    set_cycles : ``int64`` array, shape ``shape + (sets,)``
        PE cycles of every set (the cycle model per set; ``cycles`` is their sum), used by the
        lock-step tile model (`golden.fpraker_tile`).
    """

    bits: np.ndarray
    cycles: np.ndarray
    sets: int
    acc_sign: np.ndarray
    acc_exponent: np.ndarray
    acc_magnitude: np.ndarray
    nan: np.ndarray
    pinf: np.ndarray
    ninf: np.ndarray
    terms: np.ndarray
    effectual: np.ndarray
    zero_lane_terms: np.ndarray
    cycles_no_skip: np.ndarray
    set_cycles: np.ndarray = None


def _check_pairs(a, b):
    a, b = np.asarray(a), np.asarray(b)
    for name, x in (("a", a), ("b", b)):
        if x.dtype == np.bool_ or not np.issubdtype(x.dtype, np.integer):
            raise TypeError(f"{name} must be an integer array of bfloat16 patterns, "
                            f"not dtype {x.dtype}")
        if x.size and (x.min() < 0 or x.max() > 0xFFFF):
            raise ValueError(f"{name} must hold bfloat16 patterns from 0 to 0xffff; found "
                             f"{int(x.min())}..{int(x.max())}")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape; found {a.shape} and {b.shape}")
    return a, b


def _lanes(x):
    """Decode bfloat16 patterns ``x`` (int64): sign, exponent field, significand, classes."""
    sign = x >> 15
    exponent = (x >> 7) & 0xFF
    fraction = x & 0x7F
    zero = exponent == 0
    special = exponent == 0xFF
    return sign, exponent, fraction | 0x80, zero, special & (fraction == 0), special & (
        fraction != 0)


def _set_lanes(a, b):
    """Return per-lane ``(sign, e, sigA, sigB, finite, nan, inf)`` of one set [P, N]."""
    sa, ea, siga, za, ia, na = _lanes(a)
    sb, eb, sigb, zb, ib, nb = _lanes(b)
    nan = na | nb | (ia & zb) | (ib & za)
    inf = (ia | ib) & ~nan
    finite = ~(za | zb | ia | ib | na | nb)
    return sa ^ sb, ea + eb, siga, sigb, finite, nan, inf


def _normalize(total, e_ref, width):
    """Normalization (step 5): return ``(sign, E, M)`` of the in-set sums ``total``."""
    sign = (total < 0).astype(np.int64)
    magnitude = np.abs(total)
    length = bit_length(magnitude)
    right = np.maximum(length - width, 0)
    left = np.maximum(width - length, 0)
    normalized = (magnitude >> right) << left  # named step: truncation toward zero (right)
    zero = magnitude == 0
    exponent = np.where(zero, ZERO_EXPONENT, e_ref + right - left)
    return np.where(zero, 0, sign), exponent, normalized


def _shift_right(value, amount):
    """``value >> amount`` for non-negative values and amounts, with amounts of 63+ giving 0."""
    return value >> np.minimum(amount, 63)


def _accumulate(a, b, *, lanes, acc_width, encoding):
    """Run the shared accumulator over dot products; ``encoding`` None is the baseline."""
    a, b = _check_pairs(a, b)
    w = acc_width
    a_sets, b_sets = split_sets(a, lanes), split_sets(b, lanes)
    shape = a_sets.shape[:-2]
    count, sets = int(np.prod(shape, dtype=np.int64)), a_sets.shape[-2]
    a_sets = a_sets.reshape(count, sets, lanes)
    b_sets = b_sets.reshape(count, sets, lanes)
    sign = np.zeros(count, dtype=np.int64)
    exponent = np.full(count, ZERO_EXPONENT, dtype=np.int64)
    magnitude = np.zeros(count, dtype=np.int64)
    nan = np.zeros(count, dtype=bool)
    pinf, ninf = np.zeros(count, dtype=bool), np.zeros(count, dtype=bool)
    stats = {name: np.zeros(count, dtype=np.int64)
             for name in ("cycles", "terms", "effectual", "zero_lane_terms", "cycles_no_skip")}
    set_cycles = np.zeros((count, sets), dtype=np.int64)
    for j in range(sets):
        psign, e, siga, sigb, finite, nan_lane, inf_lane = _set_lanes(a_sets[:, j],
                                                                     b_sets[:, j])
        nan |= nan_lane.any(-1)
        pinf |= (inf_lane & (psign == 0)).any(-1)
        ninf |= (inf_lane & (psign == 1)).any(-1)
        # 1. exponent block
        e_max = np.where(finite, e, ZERO_EXPONENT).max(-1)
        e_ref = np.maximum(exponent, e_max)
        d = np.where(finite, e_ref[:, None] - e, 0)
        # 2. alignment (truncation toward zero)
        aligned = _shift_right(magnitude, e_ref - exponent)
        total = np.where(sign == 1, -aligned, aligned)
        # 3. terms (or products)
        if encoding is None:
            product = (siga * sigb) << (w - 16)
            contribution = np.where(finite, _shift_right(product, d), 0)
            set_cycles[:, j] = 1
            stats["cycles_no_skip"] += 1
        else:
            plus, minus = term_masks(siga, encoding=encoding)
            all_terms = np.bitwise_count(plus | minus).astype(np.int64)
            window = np.where(finite, window_mask(d, acc_width=w), 0)
            plus, minus = plus & window, minus & window
            effectual = np.bitwise_count(plus | minus).astype(np.int64)
            contribution = np.zeros(d.shape, dtype=np.int64)
            shifted_b = sigb << (w - 8)
            for p in range(POSITIONS):
                digit = ((plus >> p) & 1) - ((minus >> p) & 1)
                contribution += digit * _shift_right(shifted_b, d + 8 - p)  # truncation
            stats["terms"] += np.where(finite, all_terms, 0).sum(-1)
            stats["effectual"] += effectual.sum(-1)
            a_nonzero = ((a_sets[:, j] >> 7) & 0xFF) != 0
            stats["zero_lane_terms"] += np.where(~finite & a_nonzero, all_terms, 0).sum(-1)
            set_cycles[:, j] = np.maximum(effectual.max(-1), 1)
            stats["cycles_no_skip"] += np.maximum(np.where(finite, all_terms, 0).max(-1), 1)
        # 4. adder tree and accumulate
        total = total + np.where(psign == 1, -contribution, contribution).sum(-1)
        # 5. normalization
        sign, exponent, magnitude = _normalize(total, e_ref, w)
    stats["cycles"] = set_cycles.sum(-1)
    bits = round_accumulator(sign, exponent, magnitude, acc_width=w, nan=nan, pinf=pinf,
                             ninf=ninf)

    def shaped(x):
        return x.reshape(shape)

    return DotResult(bits=shaped(bits), sets=sets, acc_sign=shaped(sign),
                     acc_exponent=shaped(exponent), acc_magnitude=shaped(magnitude),
                     nan=shaped(nan), pinf=shaped(pinf), ninf=shaped(ninf),
                     set_cycles=set_cycles.reshape(shape + (sets,)),
                     **{name: shaped(value) for name, value in stats.items()})


def fpraker_dot(a, b, params=None):
    """Return the FPRaker PE's dot products of bfloat16 patterns ``a`` and ``b`` (module docs).

    Parameters
    ----------
    a, b : integer array_like, same shape ``(..., K)``, K >= 1
        bfloat16 patterns; ``a`` is the term-serial operand. The last axis is one dot product.
    params : `hw.params.FPRakerParams`, optional
        Lanes, accumulator width and encoding (defaults if None).

    Returns
    -------
    `DotResult` over the leading axes.
    """
    params = FPRakerParams() if params is None else params
    if not isinstance(params, FPRakerParams):
        raise TypeError(f"params must be an FPRakerParams, not {params!r}")
    return _accumulate(a, b, lanes=params.lanes, acc_width=params.acc_width,
                       encoding=params.encoding)


def bf16_mac_dot(a, b, params=None):
    """Return the bit-parallel bfloat16 MAC's dot products (same accumulator; module docs).

    Parameters
    ----------
    a, b : integer array_like, same shape ``(..., K)``, K >= 1
        bfloat16 patterns.
    params : `hw.params.BF16MACParams` or `hw.params.FPRakerParams`, optional
        Lanes and accumulator width (the encoding of an `FPRakerParams` is ignored).

    Returns
    -------
    `DotResult` (``cycles`` = sets; the term statistics are 0).
    """
    params = BF16MACParams() if params is None else params
    if not isinstance(params, (BF16MACParams, FPRakerParams)):
        raise TypeError(f"params must be a BF16MACParams or FPRakerParams, not {params!r}")
    return _accumulate(a, b, lanes=params.lanes, acc_width=params.acc_width, encoding=None)


def round_accumulator(sign, exponent, magnitude, *, acc_width, nan=False, pinf=False,
                      ninf=False):
    """Return float32 patterns (``uint32``) of accumulators, with the special flags applied.

    Round to nearest, ties to even, from the W-bit normalized magnitude; overflow to infinity,
    underflow (biased exponent <= 0 after rounding) to a zero of the accumulator's sign, a zero
    accumulator to ``+0``; then NaN for ``nan`` or ``pinf & ninf``, else the flagged infinity.
    """
    sign, exponent, magnitude = (np.asarray(x).astype(np.int64)
                                 for x in (sign, exponent, magnitude))
    if acc_width > 24:
        drop = acc_width - 24
        kept = magnitude >> drop
        rest = magnitude & ((1 << drop) - 1)
        half = 1 << (drop - 1)
        round_up = (rest > half) | ((rest == half) & ((kept & 1) == 1))
        kept = kept + round_up
    else:
        kept = magnitude << (24 - acc_width)
    carry = kept >> 24
    kept = kept >> carry
    biased = exponent - 126 + carry
    bits = (sign << 31) | (np.clip(biased, 0, 255) << 23) | (kept & 0x7FFFFF)
    bits = np.where(biased >= 255, (sign << 31) | _F32_INF, bits)
    bits = np.where(biased <= 0, sign << 31, bits)
    bits = np.where(magnitude == 0, 0, bits)
    nan, pinf, ninf = (np.asarray(x, dtype=bool) for x in (nan, pinf, ninf))
    bits = np.where(pinf, _F32_INF, bits)
    bits = np.where(ninf, (1 << 31) | _F32_INF, bits)
    bits = np.where(nan | (pinf & ninf), bfloat.F32_QNAN, bits)
    return bits.astype(np.uint32)


def accumulator_value(sign, exponent, magnitude, *, acc_width):
    """Return the exact value of one accumulator as a `fractions.Fraction`."""
    magnitude = int(magnitude)
    if magnitude == 0:
        return Fraction(0)
    value = magnitude * Fraction(2) ** (int(exponent) - _PRODUCT_BIAS + 16 - acc_width)
    return -value if int(sign) else value


def exact_dot(a, b):
    """Return the exact dot product of one pair of bfloat16 pattern vectors as a `Fraction`,
    with subnormal operands flushed to zero (the datapath's view); None if any product involves
    an infinity or NaN."""
    total = Fraction(0)
    for x, y in zip(np.asarray(a).ravel().tolist(), np.asarray(b).ravel().tolist()):
        try:
            total += (bfloat.to_fraction(x, flush_subnormals=True)
                      * bfloat.to_fraction(y, flush_subnormals=True))
        except ValueError:
            return None
    return total


def error_bound(a, b, *, lanes, acc_width, encoding):
    """Return ``(accumulator_bound, result_bound)`` for one finite dot product, as Fractions.

    ``encoding`` None bounds the baseline. Derivation (module docs for the steps): in set ``j``
    the accumulator unit is ``u = 2**(e_ref - 268 + 16 - W)``. Either ``e_ref`` is a product
    exponent, whose product is at least ``2**14`` units of ``2**(e_ref - 268)``, or it is ``E``
    of the normalized accumulator, which is at least ``2**(W-1) u``; so
    ``u <= U_j = 2**(2-W) * max(max |p_ij|, |acc_{j-1}|)``. Alignment truncates by less than
    ``u``; each term (FPRaker: every term of a finite lane, skipped ones included, since a
    skipped term is below one unit) or each product (baseline) by less than ``u``; so before
    normalization the error grows by less than ``(1 + T_j) U_j`` (``T_j`` terms or finite
    lanes). Normalization truncates below the new unit, at most ``2**(1-W) |S_j|``. With the
    exact partial sums ``X_j`` and ``|acc_{j-1}| <= |X_{j-1}| + eps_{j-1}``:

    ``delta_j = eps_{j-1} + (1 + T_j) * U_j`` and ``eps_j = delta_j + 2**(1-W) (|X_j| + delta_j)``.

    The float32 rounding adds at most ``2**-24`` of the accumulator's magnitude, and flushing an
    underflow adds at most ``2**-126``: ``result_bound = eps + 2**-24 (|X| + eps) + 2**-126``
    (valid when the result does not overflow).
    """
    a_sets, b_sets = split_sets(a, lanes), split_sets(b, lanes)
    unit = Fraction(2) ** (2 - acc_width)
    norm = Fraction(2) ** (1 - acc_width)
    partial, eps = Fraction(0), Fraction(0)
    for a_set, b_set in zip(a_sets.reshape(-1, lanes), b_sets.reshape(-1, lanes)):
        products = [bfloat.to_fraction(int(x), flush_subnormals=True)
                    * bfloat.to_fraction(int(y), flush_subnormals=True)
                    for x, y in zip(a_set, b_set)]
        if encoding is None:
            count = sum(p != 0 for p in products)
        else:
            sig = np.where(np.array(products) != 0, bfloat.significand(a_set), 0)
            count = int(terms.term_count(sig, encoding=encoding, width=8).sum())
        scale = max([abs(p) for p in products] + [abs(partial) + eps])
        delta = eps + (1 + count) * unit * scale
        partial += sum(products)
        eps = delta + norm * (abs(partial) + delta)
    result = eps + Fraction(1, 1 << 24) * (abs(partial) + eps) + Fraction(2) ** -126
    return eps, result


def set_statistics(result, lanes):
    """Return a dict of totals from a `DotResult` (for reports): sets, cycles, cycles without
    skipping, ideal cycles (effectual terms / lanes), terms, effectual and skipped terms."""
    count = int(np.prod(result.cycles.shape, dtype=np.int64))
    effectual = int(result.effectual.sum())
    return {
        "dot_products": count,
        "sets": count * result.sets,
        "cycles": int(result.cycles.sum()),
        "cycles_no_skip": int(result.cycles_no_skip.sum()),
        "ideal_cycles": effectual / lanes,
        "terms": int(result.terms.sum()),
        "effectual_terms": effectual,
        "skipped_terms": int(result.terms.sum()) - effectual,
        "zero_lane_terms": int(result.zero_lane_terms.sum()),
    }
