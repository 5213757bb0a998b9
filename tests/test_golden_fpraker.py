"""golden.fpraker against independent references.

* A scalar, per-term Python rendering of the PE (`naive_dot`): Python integers, terms from
  `golden.terms.encode_terms` walked most significant first with an explicit break at the first
  out-of-bounds term, cycles counted by stepping, and the float32 result rounded from the exact
  rational accumulator value by `Fraction` arithmetic. The vectorized model must equal it bit for
  bit, cycle for cycle, for both designs, every encoding, several lane counts and windows.
* Exact rational dot products (`fractions.Fraction`): both designs stay within the stated
  `golden.fpraker.error_bound`, which is derived from W in its docstring; the bound is checked to
  be tight enough to mean something (below a few units of 2**(3-W) of the operand scale).
* IEEE special values, rounding ties, overflow and flush-to-zero against hand-derived results.
"""

import math
from fractions import Fraction

import numpy as np
import pytest

from golden import bfloat, fpraker, terms
from hw.params import BF16MACParams, FPRakerParams

ONE, TWO, HALF, M_ONE = 0x3F80, 0x4000, 0x3F00, 0xBF80
PINF, NINF, QNAN, SNAN = 0x7F80, 0xFF80, 0x7FC0, 0x7F81
MAX, MIN_NORMAL, SUB = 0x7F7F, 0x0080, 0x0001


def round_f32(value):
    """Round a Fraction to a float32 pattern: ties to even, overflow to inf, flush below
    2**-126 to a signed zero, exact zero to +0 (the datapath's documented rules)."""
    if value == 0:
        return 0
    sign = 1 if value < 0 else 0
    x = abs(value)
    k = x.numerator.bit_length() - x.denominator.bit_length()
    if Fraction(2) ** k > x:
        k -= 1
    q = round(x / Fraction(2) ** (k - 23))
    if q == 1 << 24:
        q, k = q >> 1, k + 1
    biased = k + 127
    if biased >= 255:
        return (sign << 31) | 0x7F800000
    if biased <= 0:
        return sign << 31
    return (sign << 31) | (biased << 23) | (q - (1 << 23))


def naive_dot(a, b, *, lanes, acc_width, encoding):
    """Return ``(float32 pattern, cycles, accumulator Fraction)`` of one dot product."""
    w = acc_width
    a = list(a) + [0] * (-len(a) % lanes)
    b = list(b) + [0] * (-len(b) % lanes)
    sign, exp, mag = 0, None, 0          # exp None: zero accumulator
    nan = pinf = ninf = False
    cycles = 0
    for start in range(0, len(a), lanes):
        lane_data = []
        for x, y in zip(a[start:start + lanes], b[start:start + lanes]):
            cls_x, cls_y = (int(bfloat.classify(v)) for v in (x, y))
            zero_x = cls_x in (bfloat.ZERO, bfloat.SUBNORMAL)
            zero_y = cls_y in (bfloat.ZERO, bfloat.SUBNORMAL)
            s = (x >> 15) ^ (y >> 15)
            if bfloat.NAN in (cls_x, cls_y) or (cls_x == bfloat.INF and zero_y) or (
                    cls_y == bfloat.INF and zero_x):
                nan = True
            elif bfloat.INF in (cls_x, cls_y):
                pinf, ninf = pinf or not s, ninf or bool(s)
            elif not zero_x and not zero_y:
                lane_data.append((s, ((x >> 7) & 255) + ((y >> 7) & 255), 128 | (x & 127),
                                  128 | (y & 127)))
        refs = [e for _, e, _, _ in lane_data] + ([exp] if exp is not None else [])
        if not refs:
            cycles += 1
            continue
        e_ref = max(refs)
        total = 0
        if exp is not None:
            total = (mag >> (e_ref - exp)) * (-1 if sign else 1)
        counts = [0]
        for s, e, sig_a, sig_b in lane_data:
            d = e_ref - e
            if encoding is None:
                total += (-1) ** s * ((sig_a * sig_b << (w - 16)) >> d)
                continue
            t_sign, t_pos, count = terms.encode_terms(np.array([sig_a]), encoding=encoding,
                                                      width=8)
            lane_terms = sorted(zip(t_pos[0, :count[0]].tolist(), t_sign[0, :count[0]].tolist()),
                                reverse=True)                       # most significant first
            done = 0
            for p, t in lane_terms:
                shift = d + 8 - p
                if shift >= w:
                    break                                           # out of bounds: lane done
                total += (-1) ** s * t * ((sig_b << (w - 8)) >> shift)
                done += 1
            counts.append(done)
        cycles += 1 if encoding is None else max(1, max(counts))
        if total == 0:
            sign, exp, mag = 0, None, 0
            continue
        sign, m = int(total < 0), abs(total)
        length = m.bit_length()
        if length > w:
            mag, exp = m >> (length - w), e_ref + length - w
        else:
            mag, exp = m << (w - length), e_ref - (w - length)
    value = Fraction(0) if exp is None else (
        (-1) ** sign * mag * Fraction(2) ** (exp - 268 + 16 - w))
    if nan or (pinf and ninf):
        bits = 0x7FC00000
    elif pinf or ninf:
        bits = (ninf << 31) | 0x7F800000
    elif exp is None:
        bits = 0
    else:
        bits = round_f32(value)
        if bits & 0x7FFFFFFF == 0:
            bits = sign << 31
    return bits, cycles, value


def bf16(values):
    """bfloat16 patterns of float values (through float32, ties to even)."""
    return bfloat.f32_to_bf16(bfloat.float32_bits(np.asarray(values, dtype=np.float32)))


def random_vectors(rng, count, length, *, spread):
    """Random bfloat16 vectors: normal values scaled by 2**U(-spread, spread), some zeros,
    some exact negatives of neighbours (cancellation)."""
    x = rng.normal(size=(count, length)) * 2.0 ** rng.integers(-spread, spread + 1,
                                                                (count, length))
    x[rng.random((count, length)) < 0.15] = 0
    return bf16(x).astype(np.int64)


SPECIAL_POOL = [0, 0x8000, SUB, 0x8001, 0x007F, MIN_NORMAL, 0x8080, MAX, 0xFF7F, PINF, NINF,
                QNAN, SNAN, 0xFFC1, ONE, M_ONE, TWO, HALF, 0x4040, 0xC0A0]

CONFIGS = [
    ("pe", FPRakerParams()),
    ("pe", FPRakerParams(lanes=1, acc_width=16, encoding="booth")),
    ("pe", FPRakerParams(lanes=3, acc_width=24, encoding="binary")),
    ("pe", FPRakerParams(lanes=8, acc_width=48, encoding="booth")),
    ("pe", FPRakerParams(lanes=16, acc_width=20)),
    ("mac", BF16MACParams()),
    ("mac", BF16MACParams(lanes=3, acc_width=16)),
    ("mac", BF16MACParams(lanes=8, acc_width=48)),
]


def config_id(config):
    design, params = config
    encoding = getattr(params, "encoding", "")
    return f"{design}-n{params.lanes}-w{params.acc_width}{'-' + encoding if encoding else ''}"


def run(design, a, b, params):
    return (fpraker.fpraker_dot if design == "pe" else fpraker.bf16_mac_dot)(a, b, params)


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_vectorized_model_equals_naive_model(config):
    design, params = config
    rng = np.random.default_rng(params.lanes * 100 + params.acc_width)
    blocks = [random_vectors(rng, 60, 4 * params.lanes + 1, spread=s) for s in (0, 6, 40)]
    pool = rng.choice(SPECIAL_POOL, size=(60, 2 * params.lanes))
    mixed = random_vectors(rng, 60, 2 * params.lanes, spread=10)
    blocks.append(np.where(rng.random(mixed.shape) < 0.2, pool, mixed))
    encoding = getattr(params, "encoding", None) if design == "pe" else None
    for a_block, b_block in zip(blocks, blocks[1:] + blocks[:1]):
        length = min(a_block.shape[1], b_block.shape[1])
        a_block, b_block = a_block[:, :length], b_block[:, :length]
        result = run(design, a_block, b_block, params)
        for i in range(len(a_block)):
            bits, cycles, value = naive_dot(a_block[i].tolist(), b_block[i].tolist(),
                                            lanes=params.lanes, acc_width=params.acc_width,
                                            encoding=encoding)
            got = (int(result.bits[i]), int(result.cycles[i]))
            assert got == (bits, cycles), (f"dot #{i} a={a_block[i].tolist()} "
                                           f"b={b_block[i].tolist()}: got {got}, naive "
                                           f"({bits:#x}, {cycles})")
            acc = fpraker.accumulator_value(result.acc_sign[i], result.acc_exponent[i],
                                            result.acc_magnitude[i], acc_width=params.acc_width)
            assert acc == value


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_error_bound_against_exact_rationals(config):
    """|accumulator - exact| <= eps and |float32 result - exact| <= eps + ... (error_bound)."""
    design, params = config
    w = params.acc_width
    encoding = getattr(params, "encoding", None) if design == "pe" else None
    rng = np.random.default_rng(w)
    worst = Fraction(0)
    for spread, length in ((0, 5 * params.lanes), (8, 3 * params.lanes + 2), (30, 40)):
        a = random_vectors(rng, 40, length, spread=spread)
        b = random_vectors(rng, 40, length, spread=spread)
        half = length // 2                                 # exact cancellation of pairs
        flip = rng.random((40, half)) < 0.5
        a[:, 1:2 * half:2] = np.where(flip, a[:, 0:2 * half:2], a[:, 1:2 * half:2])
        b[:, 1:2 * half:2] = np.where(flip, b[:, 0:2 * half:2] ^ 0x8000, b[:, 1:2 * half:2])
        result = run(design, a, b, params)
        for i in range(len(a)):
            exact = fpraker.exact_dot(a[i], b[i])
            acc = fpraker.accumulator_value(result.acc_sign[i], result.acc_exponent[i],
                                            result.acc_magnitude[i], acc_width=w)
            eps, bound = fpraker.error_bound(a[i], b[i], lanes=params.lanes, acc_width=w,
                                             encoding=encoding)
            assert abs(acc - exact) <= eps, (i, float(acc), float(exact), float(eps))
            out = bfloat.to_fraction(int(result.bits[i]), bfloat.F32)
            assert abs(out - exact) <= bound, (i, float(out), float(exact), float(bound))
            scale = max(abs(bfloat.to_fraction(int(x), flush_subnormals=True)
                            * bfloat.to_fraction(int(y), flush_subnormals=True))
                        for x, y in zip(a[i], b[i]))
            if scale:
                worst = max(worst, eps / scale / (len(a[i]) / params.lanes + 1))
    # The bound means something: per set, a few dozen units of 2**(2-W) of the largest product
    # (plus the exact sum's own normalization term), not an arbitrary constant.
    assert worst <= Fraction(2) ** (2 - w) * 200


def test_exact_when_nothing_truncates():
    """Equal exponents, short significands: both designs give the correctly rounded sum."""
    rng = np.random.default_rng(1)
    a = bf16(rng.integers(-8, 9, (200, 8)).astype(np.float32))
    b = bf16(rng.integers(-8, 9, (200, 8)).astype(np.float32))
    for design, params in (("pe", FPRakerParams()), ("mac", BF16MACParams())):
        result = run(design, a, b, params)
        expected = [round_f32(fpraker.exact_dot(x, y)) for x, y in zip(a, b)]
        assert result.bits.tolist() == expected


def test_pe_and_mac_agree_when_all_distances_are_zero():
    """With d = 0 in every lane, no term or product is truncated: identical accumulators."""
    rng = np.random.default_rng(2)
    exponent = rng.integers(100, 150, (300, 1))
    a = (rng.integers(0, 2, (300, 8)) << 15 | exponent << 7 | rng.integers(0, 128, (300, 8)))
    b = (rng.integers(0, 2, (300, 8)) << 15 | (254 - exponent) << 7
         | rng.integers(0, 128, (300, 8)))
    pe, mac = fpraker.fpraker_dot(a, b), fpraker.bf16_mac_dot(a, b)
    assert np.array_equal(pe.bits, mac.bits)
    assert np.array_equal(pe.acc_magnitude, mac.acc_magnitude)
    assert pe.effectual.sum() == pe.terms.sum() > 0


@pytest.mark.parametrize("a,b,expected", [
    ([ONE, QNAN], [ONE, ONE], 0x7FC00000),
    ([SNAN], [0], 0x7FC00000),
    ([PINF], [0], 0x7FC00000),                      # inf * 0
    ([PINF], [SUB], 0x7FC00000),                    # inf * subnormal (flushed to zero)
    ([PINF, ONE], [ONE, ONE], 0x7F800000),
    ([PINF], [M_ONE], 0xFF800000),
    ([NINF, MAX], [NINF, MAX], 0x7F800000),        # (-inf)(-inf) = +inf; the huge rest ignored
    ([PINF, NINF], [ONE, ONE], 0x7FC00000),         # inf - inf
    ([PINF, ONE, PINF], [ONE, ONE, M_ONE], 0x7FC00000),  # across lanes of one set
    ([MAX, MAX], [MAX, MAX], 0x7F800000),          # finite overflow
    ([MAX, 0xFF7F], [MAX, MAX], 0),                 # cancels exactly: +0
    ([ONE, M_ONE], [ONE, ONE], 0),
    ([M_ONE], [0], 0),                              # zero result is +0
    ([SUB, 0x8001], [MAX, MAX], 0),                 # subnormal inputs flushed
    ([MIN_NORMAL], [HALF], 0),                      # 2**-127 flushes to zero
    ([0x8080], [HALF], 0x80000000),                 # ... to a zero of its sign
    ([MIN_NORMAL], [ONE], 0x00800000),              # smallest normal result
    ([ONE] * 20, [ONE] * 20, 0x41A00000),           # long accumulation: 20.0
])
@pytest.mark.parametrize("design", ["pe", "mac"])
def test_special_values(design, a, b, expected):
    params = FPRakerParams(lanes=8) if design == "pe" else BF16MACParams(lanes=8)
    result = run(design, np.array(a), np.array(b), params)
    assert int(result.bits) == expected
    if expected != 0x7FC00000:
        # negating every A negates the result (sign-magnitude truncation); only an exactly
        # zero accumulator (no sign) stays +0, a flushed underflow keeps its sign
        negated = int(run(design, np.array(a) ^ 0x8000, np.array(b), params).bits)
        exact_zero = expected == 0 and int(result.acc_magnitude) == 0
        assert negated == (expected if exact_zero else expected ^ 0x80000000)


def test_round_accumulator_against_exact_rounding():
    """Every W from 16 to 48, random magnitudes, every tie and the carry into the exponent."""
    rng = np.random.default_rng(3)
    for w in range(16, 49):
        magnitude = rng.integers(1 << (w - 1), 1 << w, 400, dtype=np.int64)
        if w > 24:
            drop = w - 24
            ties = (rng.integers(1 << 23, 1 << 24, 40) << drop) | (1 << (drop - 1))
            magnitude = np.concatenate([magnitude, ties, [(1 << w) - 1]])
        exponent = rng.integers(-60, 600, magnitude.shape)
        sign = rng.integers(0, 2, magnitude.shape)
        got = fpraker.round_accumulator(sign, exponent, magnitude, acc_width=w)
        expected = []
        for s, e, m in zip(sign.tolist(), exponent.tolist(), magnitude.tolist()):
            value = fpraker.accumulator_value(s, e, m, acc_width=w)
            bits = round_f32(value)
            expected.append(bits if bits & 0x7FFFFFFF else s << 31)
        assert got.tolist() == expected, w


def test_cycle_model_and_statistics():
    """Cycles per set = slowest lane's in-window terms (at least 1); out-of-window terms are
    counted as skipped, zero lanes as zero-lane terms; ideal = effectual / N."""
    # lane 0: A = 1.0 (1 term), B = 1.0 at exponent 127; lane 1: A = 0b11101101 / 128 (NAF
    # 10-10-10-101 -> terms at 8, 5(-), 4(-)... counted by golden.terms), B tiny: far below.
    far = 127 - 30
    a = np.array([[ONE, 0x3F6D, 0x3F6D, 0]])
    b = np.array([[ONE, far << 7, ONE, ONE]])
    params = FPRakerParams(lanes=4, acc_width=24)
    result = fpraker.fpraker_dot(a, b, params)
    sig = 0x80 | 0x6D
    n = int(terms.term_count(sig, encoding="naf", width=8))
    # lane 1: d = 30 -> in window only positions p >= 30 + 9 - 24 = 15: none
    assert int(result.terms.sum()) == 1 + 2 * n
    assert int(result.effectual.sum()) == 1 + n
    assert int(result.cycles.sum()) == n
    assert int(result.cycles_no_skip.sum()) == n
    stats = fpraker.set_statistics(result, 4)
    assert stats["skipped_terms"] == n and stats["ideal_cycles"] == (1 + n) / 4
    assert stats["zero_lane_terms"] == 0
    empty = fpraker.fpraker_dot(np.array([[0, ONE, ONE]]), np.array([[ONE, 0, SUB]]), params)
    assert int(empty.cycles.sum()) == 1 and int(empty.zero_lane_terms.sum()) == 2
    mac = fpraker.bf16_mac_dot(np.zeros((5, 17), dtype=np.int64), np.zeros((5, 17),
                                                                           dtype=np.int64))
    assert mac.cycles.tolist() == [3] * 5 and mac.sets == 3


def test_window_mask_and_term_masks():
    for w in (16, 28):
        for d in range(0, 45):
            mask = int(fpraker.window_mask(d, acc_width=w))
            assert mask == sum(1 << p for p in range(9) if d + 8 - p < w)
    for encoding in ("naf", "booth", "binary"):
        plus, minus = fpraker.term_masks(np.arange(256), encoding=encoding)
        values = np.array([sum(((int(pl) >> k) & 1) - ((int(mi) >> k) & 1) << k
                               for k in range(9)) for pl, mi in zip(plus, minus)])
        assert np.array_equal(values, np.arange(256))
        assert np.array_equal(np.bitwise_count(plus | minus),
                              terms.term_count(np.arange(256), encoding=encoding, width=8))


def test_shapes_and_padding():
    rng = np.random.default_rng(4)
    a = random_vectors(rng, 6, 11, spread=3).reshape(2, 3, 11)
    b = random_vectors(rng, 6, 11, spread=3).reshape(2, 3, 11)
    result = fpraker.fpraker_dot(a, b)
    assert result.bits.shape == (2, 3) and result.sets == 2
    zeros = np.zeros((2, 3, 5), dtype=np.int64)
    padded = fpraker.fpraker_dot(np.concatenate([a, zeros], -1), np.concatenate([b, zeros], -1))
    assert np.array_equal(padded.bits, result.bits) and np.array_equal(padded.cycles,
                                                                       result.cycles)


@pytest.mark.parametrize("call,error,message", [
    (lambda: fpraker.fpraker_dot([1.0], [1.0]), TypeError,
     r"^a must be an integer array of bfloat16 patterns, not dtype float64$"),
    (lambda: fpraker.fpraker_dot([1], [1 << 16]), ValueError,
     r"^b must hold bfloat16 patterns from 0 to 0xffff; found 65536\.\.65536$"),
    (lambda: fpraker.fpraker_dot([1, 2], [1]), ValueError,
     r"^a and b must have the same shape; found \(2,\) and \(1,\)$"),
    (lambda: fpraker.fpraker_dot(np.zeros((2, 0), int), np.zeros((2, 0), int)), ValueError,
     r"^a dot product needs at least one pair along the last axis$"),
    (lambda: fpraker.fpraker_dot([1], [1], BF16MACParams()), TypeError,
     r"^params must be an FPRakerParams, not BF16MACParams\(lanes=8, acc_width=28\)$"),
    (lambda: fpraker.bf16_mac_dot([1], [1], 3), TypeError,
     r"^params must be a BF16MACParams or FPRakerParams, not 3$"),
    (lambda: fpraker.term_masks([1], encoding="csd"), ValueError,
     r"^encoding must be one of naf, booth, binary, not 'csd'$"),
    (lambda: FPRakerParams(lanes=0), ValueError, r"^lanes must be an integer from 1 to 64, "
                                                 r"not 0$"),
    (lambda: FPRakerParams(acc_width=15), ValueError,
     r"^acc_width must be an integer from 16 to 48, not 15$"),
    (lambda: FPRakerParams(acc_width=49), ValueError,
     r"^acc_width must be an integer from 16 to 48, not 49$"),
    (lambda: FPRakerParams(encoding="csd"), ValueError,
     r"^encoding must be one of naf, booth, binary, not 'csd'$"),
    (lambda: FPRakerParams(encoding=1), TypeError,
     r"^encoding must be one of naf, booth, binary, not 1$"),
    (lambda: BF16MACParams(lanes="8"), TypeError, r"^lanes must be an integer from 1 to 64, "
                                                  r"not '8'$"),
    (lambda: BF16MACParams(acc_width=50), ValueError,
     r"^acc_width must be an integer from 16 to 48, not 50$"),
])
def test_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_params_env_round_trip():
    for params in (FPRakerParams(lanes=3, acc_width=20, encoding="booth"),
                   BF16MACParams(lanes=5, acc_width=33)):
        assert type(params).from_env(params.to_env()) == params
    assert math.isclose(FPRakerParams().sum_width, 28 + 3 + 4)


@pytest.mark.parametrize("kind", ["conv", "fc"])
def test_bench_operation_pairs_against_torch(kind):
    """The bench's dot products (im2col and its transposes) sum to torch's own forward output,
    input gradient and weight gradient of a 3x3/pad-1 convolution or a linear layer."""
    torch = pytest.importorskip("torch")
    from effectual.bench_fpraker import operation_pairs

    rng = np.random.default_rng(9)
    if kind == "conv":
        act = rng.normal(size=(2, 3, 5, 4)).astype(np.float32)
        weight = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
        module = torch.nn.Conv2d(3, 4, 3, padding=1, bias=False)
    else:
        act = rng.normal(size=(3, 6)).astype(np.float32)
        weight = rng.normal(size=(5, 6)).astype(np.float32)
        module = torch.nn.Linear(6, 5, bias=False)
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(weight))
    x = torch.from_numpy(act).double().requires_grad_()
    module = module.double()
    out = module(x)
    grad = rng.normal(size=tuple(out.shape))
    out.backward(torch.from_numpy(grad))
    layer = {"kind": kind, "act": act.astype(np.float64), "weight": weight.astype(np.float64),
             "grad": grad}
    expected = {"forward": out.detach().numpy(), "input_gradient": x.grad.numpy(),
                "weight_gradient": module.weight.grad.numpy()}
    for operation, want in expected.items():
        first, second = operation_pairs(layer, operation)
        got = (first * second).sum(-1)
        if kind == "conv" and operation != "weight_gradient":
            n, k, h, w = want.shape
            want = want.reshape(n, k, h * w)     # dot products are ordered [N, K, HW]
        np.testing.assert_allclose(got, want.ravel(), rtol=1e-9, atol=1e-9, err_msg=operation)
