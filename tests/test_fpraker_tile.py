# amaranth: UnusedElaboratable=no
"""The FPRaker tile (hw.fpraker_tile) and its golden pass model (golden.fpraker_tile).

References: every PE's result against `golden.fpraker.fpraker_dot` of its own pairs (the PE's
golden model, run per PE), the lock-step cycle model against a naive per-set simulation that
uses only whole-dot-product cycle totals, the row packing against Amaranth's layout packing
(`hw.layouts.pack_schedule_row` / `pack_act_row`), the layer passes against
`golden.fpraker_layers.layer_pairs`.
"""

import dataclasses

import numpy as np
import pytest

from golden.fpraker import fpraker_dot
from golden.fpraker_layers import layer_pairs
from golden.fpraker_tile import (layer_passes, lockstep_cycles, make_pass, pack_act_rows,
                                 pack_weight_rows, pass_result, selftest_pass)
from golden.layers import Layer
from hw.blocks import emit_verilog, verilog_ports
from hw.fpraker_tile import FPRakerTile
from hw.layouts import (pack_act_row, pack_schedule_row, result_shape, schedule_row_layout,
                        unpack_result)
from hw.params import FPRakerTileParams, TileParams
from hw.tile import TCLpTile
from sim.streams import random_pattern

from helpers import run_simulation, sim_top, stream_receive, stream_send

SPECIALS = [0x0000, 0x8000, 0x0001, 0x807F, 0x7F80, 0xFF80, 0x7FC0, 0xFFC1]


def random_bf16(rng, shape, *, exponents=(110, 140), zeros=0.15):
    """Random normal bfloat16 patterns (exponent fields in ``exponents``), some +-0."""
    sign = rng.integers(0, 2, size=shape)
    exponent = rng.integers(exponents[0], exponents[1] + 1, size=shape)
    fraction = rng.integers(0, 128, size=shape)
    bits = (sign << 15) | (exponent << 7) | fraction
    return np.where(rng.random(shape) < zeros, sign << 15, bits).astype(np.int64)


def random_pass(params, rng, *, rows, specials=False):
    a = random_bf16(rng, (rows, params.lanes))
    b = random_bf16(rng, (params.filters, rows, params.lanes))
    if specials:  # a few lanes of some PEs get zero/subnormal/inf/NaN operands
        for _ in range(3):
            p, r, lane = (rng.integers(0, s) for s in b.shape)
            b[p, r, lane] = SPECIALS[rng.integers(0, len(SPECIALS))]
        r, lane = rng.integers(0, rows), rng.integers(0, params.lanes)
        a[r, lane] = SPECIALS[rng.integers(0, 4)]  # zero and subnormals in A (all PEs)
    return a, b


# --- parameters ---------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, error, message", [
    (dict(windows=2), ValueError, r"^windows of an FPRaker tile must be 1, not 2$"),
    (dict(pattern="T<2,5>"), ValueError,
     r"^pattern of an FPRaker tile must be 'none', not 'T<2,5>'$"),
    (dict(weight_width=8), ValueError, r"^weight_width of an FPRaker tile must be 16, not 8$"),
    (dict(act_width=8), ValueError, r"^act_width of an FPRaker tile must be 16, not 8$"),
    (dict(act_signed=True), ValueError,
     r"^act_signed of an FPRaker tile must be False, not True$"),
    (dict(act_signed=0), ValueError, r"^act_signed of an FPRaker tile must be False, not 0$"),
    (dict(filters=0), ValueError, r"^filters must be an integer from 1 to 64, not 0$"),
    (dict(filters=17), ValueError, r"^filters must be an integer from 1 to 16, not 17$"),
    (dict(lanes=17), ValueError, r"^lanes must be an integer from 1 to 16, not 17$"),
    (dict(lanes=2.0), TypeError, r"^lanes must be an integer from 1 to 64, not 2.0$"),
    (dict(weight_rows=8, act_rows=16), ValueError,
     r"^weight_rows and act_rows of an FPRaker tile must be equal \(the sets per pass\), "
     r"not 8 and 16$"),
    (dict(weight_rows=0, act_rows=0), ValueError,
     r"^weight_rows must be an integer from 1 to 65536, not 0$"),
    (dict(fp_acc_width=15), ValueError, r"^fp_acc_width must be an integer from 16 to 48, "
                                        r"not 15$"),
    (dict(fp_acc_width=49), ValueError, r"^fp_acc_width must be an integer from 16 to 48, "
                                        r"not 49$"),
    (dict(encoding="csd"), ValueError, r"^encoding must be one of naf, booth, binary, "
                                       r"not 'csd'$"),
    (dict(encoding=1), TypeError, r"^encoding must be one of naf, booth, binary, not 1$"),
])
def test_bad_parameters(kwargs, error, message):
    with pytest.raises(error, match=message):
        FPRakerTileParams(**kwargs)
    with pytest.raises(error, match=message):
        FPRakerTile(**kwargs)


def test_params_env_round_trip_and_derived_fields():
    params = FPRakerTileParams(filters=3, lanes=5, weight_rows=9, act_rows=9, fp_acc_width=24,
                               encoding="booth")
    assert FPRakerTileParams.from_env(params.to_env()) == params
    assert params.acc_width == 33
    assert (params.pe_params.lanes, params.pe_params.acc_width,
            params.pe_params.encoding) == (5, 24, "booth")


def test_ports_are_the_integer_tiles():
    params = FPRakerTileParams(filters=3, lanes=2, weight_rows=12, act_rows=12)
    tile = FPRakerTile(**dataclasses.asdict(params))
    fields = {f.name for f in dataclasses.fields(TileParams)}
    reference = TCLpTile(**{k: v for k, v in dataclasses.asdict(params).items() if k in fields})
    ours, theirs = tile.signature.members, reference.signature.members
    assert set(ours) == set(theirs)
    for name in theirs:
        assert ours[name].flow == theirs[name].flow, name
        if name == "results":  # a float32 pattern, not an integer sum: signed(33)
            assert ours[name].signature.members["payload"].shape == result_shape(params)
            assert result_shape(params).width == 33
        else:
            assert ours[name] == theirs[name], name
    assert schedule_row_layout(params).size == 3 * 2 * 16
    text, _ = emit_verilog("fpraker_tile", params)
    ports = {p["name"]: p["width"] for p in verilog_ports(text, "fpraker_tile")}
    assert ports["weights__payload"] == 96 and ports["acts__payload"] == 32
    assert ports["results__payload"] == 33 and ports["cycles"] == 32


# --- golden model ---------------------------------------------------------------------------

def naive_pass(params, a, b):
    """Per-PE results and lock-step cycles from whole-dot-product figures only: PE ``p``'s
    cycles on set ``r`` are the growth of its total cycles from the first ``r`` sets to the
    first ``r + 1`` sets (the prefix ends at a set boundary, so the accumulator is the same)."""
    pe = params.pe_params
    rows = b.shape[1]
    results, per_set = [], np.zeros((params.filters, rows), dtype=np.int64)
    for p in range(params.filters):
        results.append(int(fpraker_dot(a.ravel(), b[p].ravel(), pe).bits))
        previous = 0
        for r in range(rows):
            total = int(fpraker_dot(a[:r + 1].ravel(), b[p, :r + 1].ravel(), pe).cycles)
            per_set[p, r] = total - previous
            previous = total
    total = sum(max(per_set[p, r] for p in range(params.filters)) for r in range(rows))
    return results, total, per_set


@pytest.mark.parametrize("params", [
    FPRakerTileParams(filters=3, lanes=4, weight_rows=12, act_rows=12),
    FPRakerTileParams(filters=4, lanes=2, weight_rows=9, act_rows=9, fp_acc_width=16,
                      encoding="binary"),
    FPRakerTileParams(filters=1, lanes=1, weight_rows=5, act_rows=5, fp_acc_width=48,
                      encoding="booth"),
])
def test_golden_pass_against_naive_per_set_simulation(params):
    rng = np.random.default_rng(params.filters * 7 + params.lanes)
    lockstep_wins = 0
    for trial in range(12):
        rows = int(rng.integers(1, params.weight_rows + 1))
        a, b = random_pass(params, rng, rows=rows, specials=trial % 3 == 2)
        res = pass_result(params, a, b)
        results, total, per_set = naive_pass(params, a, b)
        assert [int(x) for x in res.results] == results
        assert res.cycles == total
        assert np.array_equal(res.set_cycles, per_set)
        assert np.array_equal(res.pe_cycles, per_set.sum(1))
        lockstep_wins += res.cycles > res.pe_cycles.max()
    if params.filters > 1:  # lock-step costs more than the slowest PE alone somewhere
        assert lockstep_wins > 0


def test_golden_steps_other_than_rows():
    params = FPRakerTileParams(filters=2, lanes=3, weight_rows=8, act_rows=8)
    rng = np.random.default_rng(3)
    a, b = random_pass(params, rng, rows=6)
    short = pass_result(params, a[:4], b)          # sets 4, 5 use A = +0
    padded = np.concatenate([a[:4], np.zeros((2, 3), dtype=np.int64)])
    assert np.array_equal(short.results, pass_result(params, padded, b).results)
    assert short.cycles == naive_pass(params, padded, b)[1]
    extra = np.concatenate([a, random_bf16(rng, (2, 3))])
    longer = pass_result(params, extra, b)         # rows 6, 7 unused
    assert np.array_equal(longer.results, pass_result(params, a, b).results)
    with pytest.raises(ValueError, match=r"^rows must be an integer from 1 to 8, not 9$"):
        pass_result(params, a, np.zeros((2, 9, 3), dtype=np.int64))
    with pytest.raises(ValueError, match=r"^b_sets must have shape \(2, 6, 3\), not \(2, 6, 2\)$"):
        pass_result(params, a, b[..., :2])


def test_lockstep_cycles_by_enumeration():
    rng = np.random.default_rng(0)
    c = rng.integers(1, 6, size=(5, 3, 7))
    want = [sum(max(c[i, p, r] for p in range(3)) for r in range(7)) for i in range(5)]
    assert lockstep_cycles(c).tolist() == want


def test_packing_matches_the_layouts():
    params = FPRakerTileParams(filters=3, lanes=2, weight_rows=4, act_rows=4)
    rng = np.random.default_rng(1)
    b = rng.integers(0, 1 << 16, size=(3, 4, 2))
    a = rng.integers(0, 1 << 16, size=(4, 2))
    signed = np.where(b >= 1 << 15, b - (1 << 16), b)
    for r, word in enumerate(pack_weight_rows(params, b)):
        assert word == pack_schedule_row(params, signed[:, r].ravel(), [0] * 6, 0)
    for r, word in enumerate(pack_act_rows(params, a)):
        assert word == pack_act_row(params, a[r])


# --- layer passes ---------------------------------------------------------------------------

def small_float_layer(rng, kind, *, groups=1):
    if kind == "fc":
        return Layer(kind="fc", weights=rng.integers(-127, 128, size=(5, 11)),
                     activations=rng.integers(0, 256, size=11), act_bits=8, act_signed=False,
                     weight_scale=0.013, act_scale=0.021)
    return Layer(kind="conv", weights=rng.integers(-127, 128, size=(6, 4 // groups, 2, 2)),
                 activations=rng.integers(0, 256, size=(4, 3, 3)), padding=(1, 0, 0, 1),
                 groups=groups, act_bits=8, act_signed=False, weight_scale=0.013,
                 act_scale=0.021)


@pytest.mark.parametrize("kind, groups", [("conv", 1), ("conv", 2), ("fc", 1)])
def test_layer_passes_cover_the_layer(kind, groups):
    params = FPRakerTileParams(filters=4, lanes=3, weight_rows=8, act_rows=8)
    rng = np.random.default_rng(groups)
    layer = small_float_layer(rng, kind, groups=groups)
    a, b = layer_pairs(layer)
    seen = np.zeros(len(a), dtype=int)
    previous = None
    for job in layer_passes(layer, params):
        assert job.rows == job.steps == -(-a.shape[1] // 3)
        assert job.load_weights == (previous is None or previous.schedule != job.schedule)
        ref = make_pass(params, job.a_sets, job.b_sets)
        assert (job.schedule, job.acts, job.results, job.cycles) == \
            (ref.schedule, ref.acts, ref.results, ref.cycles)
        for p, index in enumerate(job.outputs):
            pairs_b = job.b_sets[p].ravel()[:a.shape[1]]
            if index < 0:
                assert not pairs_b.any() and job.results[p] == 0
                continue
            seen[index] += 1
            assert np.array_equal(job.a_sets.ravel()[:a.shape[1]], a[index])
            assert np.array_equal(pairs_b, b[index])
            assert job.results[p] == int(fpraker_dot(a[index], b[index],
                                                     params.pe_params).bits)
        previous = job
    assert (seen == 1).all()


def test_layer_passes_limits():
    rng = np.random.default_rng(5)
    layer = small_float_layer(rng, "conv")
    params = FPRakerTileParams(filters=4, lanes=3, weight_rows=8, act_rows=8)
    jobs = list(layer_passes(layer, params, max_positions=2))
    assert len(jobs) == 2 * 2  # two filter blocks (6 filters on 4 PEs) x 2 positions
    small = FPRakerTileParams(filters=4, lanes=3, weight_rows=5, act_rows=5)
    with pytest.raises(ValueError, match=r"needs 6 sets of 3 pairs per output; the tile "
                                         r"holds weight_rows = 5$"):
        next(layer_passes(layer, small))
    with pytest.raises(ValueError, match=r"^max_positions must be an integer from 1 to"):
        next(layer_passes(layer, params, max_positions=0))


# --- RTL --------------------------------------------------------------------------------------

def run_tile(params, jobs, *, idle=None, stall=None):
    """Run ``jobs`` (`golden.fpraker_tile.TilePass`) through the tile; return per pass
    ``(results, cycles, first result - last act cycle, done, busy)`` and the tile."""
    dut = FPRakerTile(**dataclasses.asdict(params))
    top = sim_top(dut)
    out = []

    async def testbench(ctx):
        for job in jobs:
            ctx.set(dut.rows, job.rows)
            ctx.set(dut.steps, job.steps)
            ctx.set(dut.load_weights, job.load_weights)
            assert not ctx.get(dut.busy)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            assert ctx.get(dut.busy) and not ctx.get(dut.done)
            if job.load_weights:
                await stream_send(ctx, dut.weights, job.schedule, cycle=top.cycle, idle=idle)
            act_cycles = await stream_send(ctx, dut.acts, job.acts, cycle=top.cycle,
                                           idle=idle)
            ctx.set(dut.start, 1)  # ignored while busy
            await ctx.tick()
            ctx.set(dut.start, 0)
            payloads, result_cycles = await stream_receive(
                ctx, dut.results, params.filters, cycle=top.cycle, stall=stall,
                timeout=10000)
            out.append(([unpack_result(params, x) for x in payloads], ctx.get(dut.cycles),
                        result_cycles[0] - act_cycles[-1], ctx.get(dut.done),
                        ctx.get(dut.busy)))

    run_simulation(top, testbench, vcd_name="fpraker-tile")
    return out, dut


def check_tile(params, jobs, **kwargs):
    out, dut = run_tile(params, jobs, **kwargs)
    assert len(out) == len(jobs)
    for index, (job, (results, cycles, gap, done, busy)) in enumerate(zip(jobs, out)):
        # independent reference: each PE's own golden dot product, the naive lock-step count
        steps = np.zeros((job.rows, params.lanes), dtype=np.int64)
        used = min(job.rows, len(job.a_sets))
        steps[:used] = job.a_sets[:used]
        want_results, want_cycles, _ = naive_pass(params, steps, job.b_sets)
        assert results == want_results == job.results, f"pass {index}"
        assert cycles == want_cycles == job.cycles, f"pass {index}: cycles {cycles}"
        if not kwargs.get("stall"):
            assert gap == cycles + dut.latency, f"pass {index}: {gap} != {cycles} + latency"
        assert done == 1 and busy == 0
    return out


def reuse_jobs(params, rng, *, count, specials):
    """Passes in pairs: new B sets (loaded), then the same B sets with new A sets (reused)."""
    jobs = []
    for index in range(count):
        rows = int(rng.integers(1, params.weight_rows + 1))
        if index % 2 == 0:
            a, b = random_pass(params, rng, rows=rows, specials=specials and index % 4 == 2)
            jobs.append(make_pass(params, a, b, load_weights=True))
        else:
            b = jobs[-1].b_sets
            a = random_bf16(rng, (b.shape[1], params.lanes))
            jobs.append(make_pass(params, a, b, load_weights=False))
    return jobs


@pytest.mark.parametrize("params", [
    FPRakerTileParams(filters=3, lanes=4, weight_rows=10, act_rows=10),
    FPRakerTileParams(filters=2, lanes=2, weight_rows=6, act_rows=6, fp_acc_width=18,
                      encoding="booth"),
])
def test_tile_passes_with_reuse_and_specials(params):
    rng = np.random.default_rng(params.lanes)
    check_tile(params, reuse_jobs(params, rng, count=6, specials=True))


def test_tile_idle_and_backpressure():
    params = FPRakerTileParams(filters=2, lanes=3, weight_rows=8, act_rows=8)
    rng = np.random.default_rng(11)
    jobs = reuse_jobs(params, rng, count=4, specials=True)
    check_tile(params, jobs, idle=random_pattern(0.4, seed=1), stall=random_pattern(0.5, seed=2))


def test_tile_single_pe_single_lane_and_full_memory():
    params = FPRakerTileParams(filters=1, lanes=1, weight_rows=4, act_rows=4, fp_acc_width=48)
    rng = np.random.default_rng(4)
    a, b = random_pass(params, rng, rows=4)
    one = make_pass(params, a[:1], b[:, :1])
    check_tile(params, [make_pass(params, a, b), one])


def test_tile_special_value_lanes():
    """Every special operand class in a lane of some PE: zero, subnormal (flushed), inf, NaN,
    inf x 0, and +inf + -inf across sets."""
    params = FPRakerTileParams(filters=4, lanes=2, weight_rows=3, act_rows=3)
    one = 0x3F80
    a = np.array([[one, 0x0001], [one, one], [0x4000, one]])
    b = np.full((4, 3, 2), one)
    b[0, 0, 1] = 0x7F80   # +inf x subnormal (flushed): NaN
    b[1, 1, 0] = 0x7F80   # +inf
    b[1, 2, 1] = 0xFF80   # -inf too: NaN
    b[2, 0, 0] = 0x807F   # subnormal B: flushed, product 0
    b[3, 2, 0] = 0x7FC1   # NaN
    job = make_pass(params, a, b)
    assert job.results == [0x7FC00000, 0x7FC00000, 0x40A00000, 0x7FC00000]
    check_tile(params, [job])


def test_tile_steps_fewer_than_rows():
    params = FPRakerTileParams(filters=2, lanes=2, weight_rows=6, act_rows=6)
    rng = np.random.default_rng(8)
    a, b = random_pass(params, rng, rows=5)
    full = make_pass(params, a, b)
    short = dataclasses.replace(full, steps=3, acts=full.acts[:3], a_sets=a[:3],
                                load_weights=False)
    res = pass_result(params, a[:3], b)
    short = dataclasses.replace(short, results=[int(x) for x in res.results],
                                cycles=res.cycles)
    check_tile(params, [full, short])


def test_selftest_pass_is_deterministic_and_runs():
    params = FPRakerTileParams(filters=2, lanes=4, weight_rows=16, act_rows=16)
    job = selftest_pass(params, seed=3)
    again = selftest_pass(params, seed=3)
    assert (job.schedule, job.acts, job.results, job.cycles) == \
        (again.schedule, again.acts, again.results, again.cycles)
    assert job.rows == job.steps == 4 and job.load_weights
    assert selftest_pass(params, seed=4).results != job.results
    with pytest.raises(ValueError, match=r"^rows must be an integer from 1 to 16, not 17$"):
        selftest_pass(params, rows=17)
    check_tile(params, [job, selftest_pass(params, rows=16, seed=1)])
