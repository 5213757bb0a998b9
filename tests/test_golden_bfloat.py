"""golden.bfloat against independent references: every bfloat16 pattern decoded through the
host's float32 (numpy view, math.frexp), a Fraction-based round-to-nearest-even, and torch's own
bfloat16 conversion when torch is installed."""

import math
import struct
from fractions import Fraction

import numpy as np
import pytest

from golden import bfloat

ALL_BF16 = np.arange(1 << 16)


def host_float(bits16):
    """Return the value of a bfloat16 pattern through the host float32 (struct, no numpy)."""
    return struct.unpack("<f", struct.pack("<I", int(bits16) << 16))[0]


def naive_round_to_bf16(bits32):
    """Round one float32 pattern to bfloat16 by exact rational arithmetic (ties to even)."""
    value = struct.unpack("<f", struct.pack("<I", int(bits32)))[0]
    sign = int(bits32) >> 31
    if math.isnan(value):
        return (sign << 15) | 0x7FC0
    if math.isinf(value) or value == 0:
        return int(bits32) >> 16
    x = abs(Fraction(value))
    exponent = max(math.floor(math.log2(x)), -126)
    while Fraction(2) ** exponent > x and exponent > -126:
        exponent -= 1
    while Fraction(2) ** (exponent + 1) <= x:
        exponent += 1
    quantum = Fraction(2) ** (exponent - 7)           # bfloat16 spacing in this binade
    q = round(x / quantum)                             # Fraction.__round__: ties to even
    rounded = q * quantum
    if rounded >= Fraction(2) ** 128:
        return (sign << 15) | 0x7F80
    if rounded < Fraction(2) ** -126:                 # subnormal result
        return (sign << 15) | int(rounded / Fraction(2) ** -133)
    e = math.floor(math.log2(rounded))
    while Fraction(2) ** e > rounded:
        e -= 1
    while Fraction(2) ** (e + 1) <= rounded:
        e += 1
    fraction = int(rounded / Fraction(2) ** (e - 7)) - 128
    return (sign << 15) | ((e + 127) << 7) | fraction


def test_unpack_pack_every_bf16_pattern_against_the_host_float():
    sign, exponent, fraction = bfloat.unpack(ALL_BF16)
    assert np.array_equal(bfloat.pack(sign, exponent, fraction), ALL_BF16.astype(np.uint16))
    host = np.array([host_float(b) for b in range(1 << 16)])
    finite = np.isfinite(host)
    mantissa, power = np.frexp(np.abs(host[finite]))
    normal = exponent[finite] != 0
    # frexp: |x| = mantissa * 2**power with mantissa in [0.5, 1): field = power + 126
    assert np.array_equal(exponent[finite][normal], power[normal] + 126)
    assert np.array_equal(fraction[finite][normal],
                          (mantissa[normal] * 256).astype(np.int64) - 128)
    assert np.array_equal(sign.astype(bool), np.signbit(host))


def test_classify_every_bf16_pattern():
    host = np.array([host_float(b) for b in range(1 << 16)])
    code = bfloat.classify(ALL_BF16)
    expected = np.full(1 << 16, bfloat.NORMAL)
    expected[host == 0] = bfloat.ZERO
    expected[(host != 0) & (np.abs(host) < 2.0 ** -126)] = bfloat.SUBNORMAL
    expected[np.isinf(host)] = bfloat.INF
    expected[np.isnan(host)] = bfloat.NAN
    assert np.array_equal(code, expected)
    assert [int((code == c).sum()) for c in range(5)] == [2, 254, 2 * 254 * 128, 2, 254]


def test_classify_float32_edges():
    patterns = [0, 0x80000000, 1, 0x807FFFFF, 0x00800000, 0x7F7FFFFF, 0x7F800000, 0xFF800000,
                0x7F800001, 0xFFC00000]
    expected = [bfloat.ZERO, bfloat.ZERO, bfloat.SUBNORMAL, bfloat.SUBNORMAL, bfloat.NORMAL,
                bfloat.NORMAL, bfloat.INF, bfloat.INF, bfloat.NAN, bfloat.NAN]
    assert bfloat.classify(patterns, bfloat.F32).tolist() == expected


def test_significand_flushes_subnormals():
    sig = bfloat.significand(ALL_BF16)
    _, exponent, fraction = bfloat.unpack(ALL_BF16)
    assert np.array_equal(sig, np.where(exponent == 0, 0, 128 + fraction))


def rounding_patterns():
    """float32 patterns around every interesting rounding case, plus random ones."""
    rng = np.random.default_rng(5)
    kept = np.concatenate([rng.integers(0, 1 << 16, 3000), [0, 1, 0x7F7F, 0x7F7E, 0x007F, 0x0080,
                                                             0x8000, 0xFF7F, 0x3F80, 0x3F7F]])
    low = np.array([0, 1, 0x7FFF, 0x8000, 0x8001, 0xFFFF])
    patterns = (kept[:, None] << 16 | low[None, :]).ravel()
    patterns = np.concatenate([patterns, rng.integers(0, 1 << 32, 3000, dtype=np.int64),
                               [0x7F800000, 0xFF800000, 0x7FC00000, 0x7F800001, 0xFF812345]])
    return patterns.astype(np.int64)


def test_f32_to_bf16_against_exact_rounding():
    patterns = rounding_patterns()
    got = bfloat.f32_to_bf16(patterns)
    expected = np.array([naive_round_to_bf16(p) for p in patterns.tolist()])
    bad = np.flatnonzero(got != expected)
    assert bad.size == 0, (f"{bad.size} mismatches, first {patterns[bad[0]]:#x}: "
                           f"{int(got[bad[0]]):#x} != {int(expected[bad[0]]):#x}")


def test_f32_to_bf16_against_torch():
    torch = pytest.importorskip("torch")
    patterns = rounding_patterns()
    finite = bfloat.classify(patterns, bfloat.F32) != bfloat.NAN
    values = torch.from_numpy(bfloat.bits_float32(patterns[finite]).copy())
    expected = values.to(torch.bfloat16).view(torch.int16).numpy().astype(np.int64) & 0xFFFF
    assert np.array_equal(bfloat.f32_to_bf16(patterns[finite]), expected)


def test_bf16_to_f32_is_exact_and_inverse():
    wide = bfloat.bf16_to_f32(ALL_BF16)
    assert np.array_equal(wide, (ALL_BF16 << 16).astype(np.uint32))
    not_nan = bfloat.classify(ALL_BF16) != bfloat.NAN
    assert np.array_equal(bfloat.f32_to_bf16(wide)[not_nan], ALL_BF16[not_nan])


def test_float32_bits_round_trip():
    values = np.array([1.0, -2.5, 3.0e38, 1.0e-40, -0.0], dtype=np.float32)
    bits = bfloat.float32_bits(values)
    assert bits.tolist() == [struct.unpack("<I", struct.pack("<f", v))[0]
                             for v in values.tolist()]
    assert np.array_equal(bfloat.bits_float32(bits).view(np.uint32), bits)


def test_to_fraction_every_finite_bf16_pattern():
    host = [host_float(b) for b in range(1 << 16)]
    for bits, value in zip(range(1 << 16), host):
        if math.isfinite(value):
            assert bfloat.to_fraction(bits) == Fraction(value)
    assert bfloat.to_fraction(0x0001, flush_subnormals=True) == 0
    assert bfloat.to_fraction(0x0001) == Fraction(2) ** -133
    assert bfloat.to_fraction(0x3F800001, bfloat.F32) == 1 + Fraction(2) ** -23


@pytest.mark.parametrize("call,error,message", [
    (lambda: bfloat.unpack([1.0]), TypeError, r"^bits must be an integer array, not dtype "
                                              r"float64$"),
    (lambda: bfloat.unpack([1 << 16]), ValueError, r"^bits must be bfloat16 patterns from 0 to "
                                                   r"0xffff; found 0x10000\.\.0x10000$"),
    (lambda: bfloat.unpack([-1], bfloat.F32), ValueError, r"^bits must be float32 patterns from "
                                                          r"0 to 0xffffffff; found -0x1\.\.-0x1$"),
    (lambda: bfloat.unpack([1], "bf16"), TypeError, r"^fmt must be golden\.bfloat\.BF16 or "
                                                    r"golden\.bfloat\.F32, not 'bf16'$"),
    (lambda: bfloat.pack(0, 256, 0), ValueError, r"^exponent must be from 0 to 255 for "
                                                 r"bfloat16; found 256\.\.256$"),
    (lambda: bfloat.pack(2, 0, 0), ValueError, r"^sign must be from 0 to 1 for bfloat16; found "
                                               r"2\.\.2$"),
    (lambda: bfloat.pack(0, 0, 128), ValueError, r"^fraction must be from 0 to 127 for "
                                                 r"bfloat16; found 128\.\.128$"),
    (lambda: bfloat.to_fraction(0x7F80), ValueError, r"^bfloat16 pattern 0x7f80 is an infinity "
                                                     r"or NaN and has no rational value$"),
])
def test_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()
