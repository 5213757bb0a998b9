# amaranth: UnusedElaboratable=no
"""hw.tile in amaranth.sim: the weight-skipping multiplexers, the inner-product units and both
tiles, against references written in this file from the contract text alone.

* `ActivationSelect`: exhaustive over every select value and every buffer position (one-hot
  buffers) for several patterns, F and N, for bit and word elements.
* `BitSerialInnerProduct` / `BitParallelInnerProduct`: exhaustive over every pair of weights
  and every pair of activations of small widths, signed and unsigned, planes fed back to back
  (the bit-serial unit also with the minimal precision of each pair, as the tile does), compared
  with Python integer dot products.
* `TCLpTile` / `BitParallelTile`: random passes (dense and sparse weights, all-zero rows,
  signed and unsigned activations, several patterns and shapes, schedule reuse with
  ``load_weights=0``, random idle cycles and backpressure) against an independent greedy
  scheduler (spec §1.3), the dense outputs and both cycle models; plus the latency, the
  ``busy``/``done`` protocol and that ``start`` is ignored while busy.

The reference scheduler here (`reference_schedule`) is deliberately a second, naive
implementation of the contract; the cocotb tests (tests/test_cocotb_tile.py) use
`golden.tcl.passes` instead, and `test_reference_matches_golden_tcl` cross-checks the two.
"""

import dataclasses
import itertools

import numpy as np
import pytest
from amaranth.hdl import Value
from amaranth.lib import stream
from amaranth.lib.wiring import In, Out

from hw.blocks import emit_verilog, verilog_ports
from hw.layouts import (act_row_layout, pack_act_row, pack_schedule_row, result_shape,
                        schedule_row_layout, unpack_result)
from hw.params import TileParams, parse_pattern
from hw.tile import (ActivationSelect, BitParallelInnerProduct, BitParallelTile,
                     BitSerialInnerProduct, TCLpTile)
from sim.streams import random_pattern

from helpers import run_simulation, sim_top, stream_receive, stream_send


# --- the independent reference (contract text only) -------------------------------------------

@dataclasses.dataclass
class RefSchedule:
    weight: np.ndarray  # [R, F, N]
    select: np.ndarray  # [R, F, N]
    skip: np.ndarray    # [R]
    step: np.ndarray    # [R]


def reference_schedule(dense, *, pattern, lanes):
    """Spec §1.3's greedy scheduler, loop by loop, on dense rows ``[T, F, N]``."""
    offsets = parse_pattern(pattern, lanes=lanes)
    h = max((dt for dt, _ in offsets), default=0)
    weights = np.array(dense, dtype=np.int64).copy()
    steps, filters, n = weights.shape
    src_t = np.broadcast_to(np.arange(steps)[:, None, None], weights.shape).copy()
    src_l = np.broadcast_to(np.arange(n)[None, None, :], weights.shape).copy()
    skips, executed = [], []
    skipped = 0
    for t in range(steps):
        if skipped < h and not weights[t].any():
            skipped += 1
            continue
        skips.append(skipped)
        skipped = 0
        for f in range(filters):
            while True:
                candidates = {}
                for lane in range(n):
                    if weights[t, f, lane] == 0:
                        found = [(t + dt, (lane + dl) % n) for dt, dl in offsets
                                 if t + dt < steps and weights[t + dt, f, (lane + dl) % n] != 0]
                        if found:
                            candidates[lane] = found
                if not candidates:
                    break
                fewest = min(len(c) for c in candidates.values())
                lane = min(lane for lane, c in candidates.items() if len(c) == fewest)
                tt, ll = candidates[lane][0]
                for array in (weights, src_t, src_l):
                    array[t, f, lane], array[tt, f, ll] = array[tt, f, ll], array[t, f, lane]
        executed.append(t)
    if not executed:  # golden.tcl: an all-zero tile with T <= h still executes its last step
        executed, skips = [steps - 1], [steps - 1]
    select = np.zeros((len(executed), filters, n), dtype=np.int64)
    for r, t in enumerate(executed):
        for f, lane in itertools.product(range(filters), range(n)):
            dt, ll = src_t[t, f, lane] - t, src_l[t, f, lane]
            if weights[t, f, lane] != 0 and (dt, ll) != (0, lane):
                select[r, f, lane] = next(k + 1 for k, (odt, odl) in enumerate(offsets)
                                          if odt == dt and (lane + odl) % n == ll)
    return RefSchedule(weight=weights[executed], select=select,
                       skip=np.array(skips, dtype=np.int64),
                       step=np.array(executed, dtype=np.int64))


def value_precision(value, *, signed):
    """Fewest bits (>= 1) holding ``value``."""
    bits = 1
    while not ((-(1 << (bits - 1)) <= value < (1 << (bits - 1))) if signed
               else value < (1 << bits)):
        bits += 1
    return bits


def bit_serial_cycles(schedule, acts, *, pattern, lanes, act_signed):
    """``sum_r max over windows and slots of the precision of the activation each slot reads``."""
    offsets = ((0, 0),) + parse_pattern(pattern, lanes=lanes)
    windows, steps, _ = acts.shape
    total = 0
    for r, t in enumerate(schedule.step):
        row = 1
        for w, f, lane in itertools.product(range(windows), range(schedule.select.shape[1]),
                                            range(lanes)):
            dt, dl = offsets[schedule.select[r, f, lane]]
            value = acts[w, t + dt, (lane + dl) % lanes] if t + dt < steps else 0
            row = max(row, value_precision(int(value), signed=act_signed))
        total += row
    return total


@dataclasses.dataclass
class RefPass:
    schedule: RefSchedule
    acts: np.ndarray      # [W, T, N]
    outputs: np.ndarray   # [F, W]
    cycles_bit_parallel: int
    cycles_bit_serial: int


def act_range(params):
    if params.act_signed:
        return -(1 << (params.act_width - 1)), (1 << (params.act_width - 1)) - 1
    return 0, (1 << params.act_width) - 1


def random_pass(params, rng, *, steps, density=0.5, zero_rows=0.2, extreme=False):
    """A random pass: weights non-zero with probability ``density``, whole zero rows, activations
    with a random precision per row (or only extreme values)."""
    f, n, w = params.filters, params.lanes, params.windows
    wlow, whigh = -(1 << (params.weight_width - 1)), (1 << (params.weight_width - 1)) - 1
    low, high = act_range(params)
    if extreme:  # the largest magnitude any output can have
        dense = np.full((steps, f, n), wlow)
        acts = np.full((w, steps, n), low if params.act_signed else high)
    else:
        dense = rng.integers(wlow, whigh + 1, size=(steps, f, n))
        width = rng.integers(1, params.act_width + 1, size=(w, steps, 1))
        if params.act_signed:
            acts = rng.integers(-(1 << (width - 1)), 1 << (width - 1), size=(w, steps, n))
        else:
            acts = rng.integers(0, 1 << width, size=(w, steps, n))
        acts = acts * (rng.random((w, steps, n)) < 0.7)
    dense = (dense * (rng.random((steps, f, n)) < density)).astype(np.int64)
    dense[rng.random(steps) < zero_rows] = 0
    acts = acts.astype(np.int64)
    schedule = reference_schedule(dense, pattern=params.pattern, lanes=n)
    outputs = np.einsum("tfn,wtn->fw", dense, acts)
    return RefPass(schedule=schedule, acts=acts, outputs=outputs,
                   cycles_bit_parallel=len(schedule.step),
                   cycles_bit_serial=bit_serial_cycles(schedule, acts, pattern=params.pattern,
                                                       lanes=n, act_signed=params.act_signed))


# --- tile driver --------------------------------------------------------------------------------

TILES = {"tclp": TCLpTile, "bit_parallel": BitParallelTile}


def tile_id(params):
    return (f"F{params.filters}N{params.lanes}W{params.windows}-w{params.weight_width}"
            f"a{params.act_width}{'s' if params.act_signed else 'u'}-{params.pattern}")


def run_tile(kind, params, jobs, *, idle=None, stall=None):
    """Run ``jobs`` (``(RefPass, load_weights)``) through one tile; return per pass
    ``(outputs [F, W], cycles, first_result - last_act cycle, done, busy)`` and the tile."""
    dut = TILES[kind](**dataclasses.asdict(params))
    top = sim_top(dut)
    results = []

    async def testbench(ctx):
        for job, load in jobs:
            s = job.schedule
            rows, steps = len(s.step), job.acts.shape[1]
            ctx.set(dut.rows, rows)
            ctx.set(dut.steps, steps)
            ctx.set(dut.load_weights, load)
            assert not ctx.get(dut.busy)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            assert ctx.get(dut.busy) and not ctx.get(dut.done)
            if load:
                words = [pack_schedule_row(params, s.weight[r].ravel(), s.select[r].ravel(),
                                           s.skip[r]) for r in range(rows)]
                await stream_send(ctx, dut.weights, words, cycle=top.cycle, idle=idle)
            words = [pack_act_row(params, job.acts[w, t]) for w in range(params.windows)
                     for t in range(steps)]
            act_cycles = await stream_send(ctx, dut.acts, words, cycle=top.cycle, idle=idle)
            # a start pulse while busy is ignored
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            payloads, result_cycles = await stream_receive(
                ctx, dut.results, params.filters * params.windows, cycle=top.cycle, stall=stall,
                timeout=100000)
            got = np.array([unpack_result(params, bits) for bits in payloads], dtype=np.int64)
            results.append((got.reshape(params.windows, params.filters).T, ctx.get(dut.cycles),
                            result_cycles[0] - act_cycles[-1], ctx.get(dut.done),
                            ctx.get(dut.busy)))

    run_simulation(top, testbench, vcd_name=f"tile-{kind}")
    return results, dut


def check_tile(kind, params, jobs, **kwargs):
    results, dut = run_tile(kind, params, jobs, **kwargs)
    assert len(results) == len(jobs)
    for index, ((job, _), (got, cycles, gap, done, busy)) in enumerate(zip(jobs, results)):
        expected = job.cycles_bit_serial if kind == "tclp" else job.cycles_bit_parallel
        assert np.array_equal(got, job.outputs), \
            f"pass {index}: outputs\n{got}\nexpected\n{job.outputs}"
        assert cycles == expected, f"pass {index}: cycles {cycles}, expected {expected}"
        if not kwargs.get("stall"):
            assert gap == cycles + dut.latency, f"pass {index}: {gap} != {cycles} + latency"
        assert done == 1 and busy == 0
    return results, dut


TILE_CONFIGS = [
    TileParams(filters=3, lanes=4, windows=2, weight_width=8, act_width=8, act_signed=True,
               pattern="T<2,5>", weight_rows=24, act_rows=24),
    TileParams(filters=2, lanes=4, windows=3, weight_width=8, act_width=8, act_signed=False,
               pattern="T<2,5>", weight_rows=24, act_rows=24),
    TileParams(filters=4, lanes=4, windows=2, weight_width=6, act_width=5, act_signed=True,
               pattern="none", weight_rows=20, act_rows=20),
    TileParams(filters=2, lanes=3, windows=2, weight_width=5, act_width=7, act_signed=False,
               pattern="L<1,2>", weight_rows=20, act_rows=20),
    TileParams(filters=2, lanes=4, windows=1, weight_width=4, act_width=4, act_signed=True,
               pattern="(3,1),(1,-1),(2,0)", weight_rows=20, act_rows=20),
    TileParams(filters=1, lanes=1, windows=2, weight_width=3, act_width=3, act_signed=True,
               pattern="L<2,0>", weight_rows=16, act_rows=16),
]


@pytest.mark.parametrize("kind", list(TILES))
@pytest.mark.parametrize("params", TILE_CONFIGS, ids=tile_id)
def test_tile_random_passes(kind, params):
    rng = np.random.default_rng(abs(hash(tile_id(params))) % 2**32)
    jobs = []
    for density, zero_rows in [(0.2, 0.3), (0.9, 0.0), (0.0, 0.0), (0.5, 0.5)]:
        steps = int(rng.integers(1, params.act_rows + 1))
        job = random_pass(params, rng, steps=steps, density=density, zero_rows=zero_rows)
        jobs.append((job, 1))
        # the same schedule again with new activations, without reloading the weights
        again = random_pass(params, rng, steps=steps)
        dense_like = dataclasses.replace(
            again, schedule=job.schedule,
            outputs=np.einsum("rfn,wrfn->fw", job.schedule.weight,
                              gather(job.schedule, again.acts, params)))
        dense_like.cycles_bit_parallel = len(job.schedule.step)
        dense_like.cycles_bit_serial = bit_serial_cycles(
            job.schedule, again.acts, pattern=params.pattern, lanes=params.lanes,
            act_signed=params.act_signed)
        jobs.append((dense_like, 0))
    check_tile(kind, params, jobs)


def gather(schedule, acts, params):
    """The activation each slot of each row reads in each window: ``[W, R, F, N]``."""
    offsets = ((0, 0),) + params.offsets
    windows, steps, n = acts.shape
    out = np.zeros((windows,) + schedule.weight.shape, dtype=np.int64)
    for r, t in enumerate(schedule.step):
        for f, lane in itertools.product(range(params.filters), range(n)):
            dt, dl = offsets[schedule.select[r, f, lane]]
            if t + dt < steps:
                out[:, r, f, lane] = acts[:, t + dt, (lane + dl) % n]
    return out


@pytest.mark.parametrize("kind", list(TILES))
def test_tile_flow_control_full_memories_and_extremes(kind):
    """Random idle/backpressure; R = weight_rows and T = act_rows (memories full); extreme
    values with the minimal accumulator width."""
    params = TileParams(filters=2, lanes=4, windows=2, weight_width=8, act_width=8,
                        act_signed=True, pattern="T<2,5>", weight_rows=12, act_rows=12)
    rng = np.random.default_rng(5)
    jobs = [(random_pass(params, rng, steps=12, density=1.0, zero_rows=0.0, extreme=True), 1),
            (random_pass(params, rng, steps=12, density=0.9, zero_rows=0.0), 1),
            (random_pass(params, rng, steps=12, density=0.3, zero_rows=0.4), 1)]
    assert len(jobs[0][0].schedule.step) == params.weight_rows
    assert jobs[0][0].outputs.min() > 1 << (params.acc_width - 3)  # near the accumulator's range
    check_tile(kind, params, jobs, idle=random_pattern(0.3, seed=rng),
               stall=random_pattern(0.4, seed=rng))


@pytest.mark.parametrize("kind", list(TILES))
def test_tile_single_step_and_all_zero(kind):
    params = TileParams(filters=2, lanes=2, windows=2, weight_width=4, act_width=4,
                        act_signed=False, pattern="L<2,1>", weight_rows=8, act_rows=8)
    rng = np.random.default_rng(9)
    jobs = [(random_pass(params, rng, steps=1), 1),
            (random_pass(params, rng, steps=2, density=0.0), 1),   # all zero, T <= h
            (random_pass(params, rng, steps=7, density=0.0), 1)]   # all zero: skips h of h+1
    # 7 zero steps, h = 2: steps 0, 1 skipped, 2 executed, 3, 4 skipped, 5 executed, 6 skipped
    assert [len(job.schedule.step) for job, _ in jobs] == [1, 1, 2]
    check_tile(kind, params, jobs)


def test_tile_cycles_independent_of_backend_for_one_bit_rows():
    """Activations of precision 1 everywhere: TCLp takes one cycle per row like bit-parallel."""
    params = TileParams(filters=2, lanes=4, windows=2, weight_width=4, act_width=6,
                        act_signed=False, pattern="T<2,5>", weight_rows=16, act_rows=16)
    rng = np.random.default_rng(3)
    job = random_pass(params, rng, steps=16, density=0.4)
    job.acts = (job.acts != 0).astype(np.int64)
    job.outputs = np.einsum("rfn,wrfn->fw", job.schedule.weight,
                            gather(job.schedule, job.acts, params))
    job.cycles_bit_serial = len(job.schedule.step)
    check_tile("tclp", params, [(job, 1)])


def test_reference_matches_golden_tcl():
    """The reference scheduler here and golden.tcl agree on random dense rows."""
    tcl = pytest.importorskip("golden.tcl")
    rng = np.random.default_rng(21)
    for pattern in ("T<2,5>", "L<1,2>", "none", "(3,1),(1,-1),(2,0)"):
        for _ in range(20):
            steps = int(rng.integers(1, 12))
            dense = rng.integers(-3, 4, size=(steps, 3, 4)) * (rng.random((steps, 3, 4)) < 0.4)
            dense[rng.random(steps) < 0.3] = 0
            mine = reference_schedule(dense, pattern=pattern, lanes=4)
            theirs = tcl.schedule(dense.astype(np.int64), pattern)
            for field in ("weight", "select", "skip", "step"):
                assert np.array_equal(getattr(mine, field), getattr(theirs, field)), \
                    (pattern, field, dense)


# --- protocol -------------------------------------------------------------------------------

def test_start_is_ignored_while_busy_and_done_protocol():
    params = TileParams(filters=1, lanes=2, windows=1, weight_width=4, act_width=4,
                        act_signed=True, pattern="none", weight_rows=4, act_rows=4)
    dut = BitParallelTile(**dataclasses.asdict(params))
    top = sim_top(dut)

    async def testbench(ctx):
        assert (ctx.get(dut.busy), ctx.get(dut.done)) == (0, 0)
        assert (ctx.get(dut.weights.ready), ctx.get(dut.acts.ready),
                ctx.get(dut.results.valid)) == (0, 0, 0)
        ctx.set(dut.rows, 1)
        ctx.set(dut.steps, 1)
        ctx.set(dut.load_weights, 1)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        assert ctx.get(dut.weights.ready) and not ctx.get(dut.acts.ready)
        await stream_send(ctx, dut.weights, [pack_schedule_row(params, [3, -2], [0, 0], 0)],
                          cycle=top.cycle)
        # while waiting for activations, start and the results stream do nothing
        ctx.set(dut.start, 1)
        ctx.set(dut.rows, 3)
        for _ in range(3):
            await ctx.tick()
            assert ctx.get(dut.acts.ready) and not ctx.get(dut.weights.ready)
            assert ctx.get(dut.busy) and not ctx.get(dut.results.valid)
        ctx.set(dut.start, 0)
        await stream_send(ctx, dut.acts, [pack_act_row(params, [5, -7])], cycle=top.cycle)
        payloads, _ = await stream_receive(ctx, dut.results, 1, cycle=top.cycle)
        assert unpack_result(params, payloads[0]) == 3 * 5 + 2 * 7
        assert (ctx.get(dut.busy), ctx.get(dut.done), ctx.get(dut.cycles)) == (0, 1, 1)
        ctx.set(dut.start, 1)
        ctx.set(dut.load_weights, 0)
        await ctx.tick()
        ctx.set(dut.start, 0)
        assert (ctx.get(dut.busy), ctx.get(dut.done), ctx.get(dut.cycles)) == (1, 0, 0)
        assert ctx.get(dut.acts.ready) and not ctx.get(dut.weights.ready)
        await stream_send(ctx, dut.acts, [pack_act_row(params, [-8, 7])], cycle=top.cycle)
        payloads, _ = await stream_receive(ctx, dut.results, 1, cycle=top.cycle)
        assert unpack_result(params, payloads[0]) == 3 * -8 - 2 * 7

    run_simulation(top, testbench)


# --- ActivationSelect -----------------------------------------------------------------------

SELECT_CONFIGS = [(2, 4, "T<2,5>"), (1, 4, "L<1,2>"), (2, 3, "(1,0),(1,1)"), (3, 2, "none"),
                  (1, 5, "(3,-4),(1,4),(2,2),(2,-2)"), (2, 1, "L<3,0>")]


@pytest.mark.parametrize("element_width", [1, 3])
@pytest.mark.parametrize("filters,lanes,pattern", SELECT_CONFIGS)
def test_activation_select_exhaustive(filters, lanes, pattern, element_width):
    """Every select value (also those above len(offsets)) x every one-hot buffer position."""
    dut = ActivationSelect(filters=filters, lanes=lanes, pattern=pattern,
                           element_width=element_width)
    offsets = parse_pattern(pattern, lanes=lanes)
    rows = max((dt for dt, _ in offsets), default=0) + 1
    select_bits = len(offsets).bit_length()
    slots = filters * lanes
    value = (1 << element_width) - 1
    rng = np.random.default_rng(0)

    def expected(select, position, lane):
        if select > len(offsets):
            return 0
        dt, dl = (((0, 0),) + offsets)[select]
        return value if position == (dt, (lane + dl) % lanes) else 0

    async def testbench(ctx):
        checked = 0
        for select in range(1 << select_bits):
            # per-slot selects: all the same, then each slot a different random one
            for selects in ([select] * slots, rng.integers(0, 1 << select_bits, slots).tolist()):
                if select_bits:
                    ctx.set(dut.select, sum(k << (s * select_bits) for s, k in enumerate(selects)))
                for dt, lane in itertools.product(range(rows), range(lanes)):
                    ctx.set(dut.window, value << ((dt * lanes + lane) * element_width))
                    got = ctx.get(Value.cast(dut.selected))
                    for s in range(slots):
                        field = (got >> (s * element_width)) & value
                        assert field == expected(selects[s], (dt, lane), s % lanes), \
                            (selects[s], dt, lane, s)
                        checked += 1
        assert checked == (1 << select_bits) * 2 * rows * lanes * slots

    run_simulation(dut, testbench, clocked=False)


def test_activation_select_random_words():
    dut = ActivationSelect(filters=2, lanes=4, pattern="T<2,5>", element_width=5)
    offsets = ((0, 0),) + parse_pattern("T<2,5>", lanes=4)
    rng = np.random.default_rng(1)

    async def testbench(ctx):
        for _ in range(200):
            window = rng.integers(0, 32, size=(3, 4))
            selects = rng.integers(0, 8, size=8)
            ctx.set(dut.window, sum(int(v) << (5 * i) for i, v in enumerate(window.ravel())))
            ctx.set(dut.select, sum(int(k) << (3 * s) for s, k in enumerate(selects)))
            got = ctx.get(Value.cast(dut.selected))
            for s, k in enumerate(selects):
                dt, dl = offsets[k]
                assert (got >> (5 * s)) & 31 == window[dt, (s % 4 + dl) % 4]

    run_simulation(dut, testbench, clocked=False)


# --- inner-product units ----------------------------------------------------------------------

def _pairs(low, high):
    values = np.arange(low, high + 1)
    return np.stack(np.meshgrid(values, values, indexing="ij"), -1).reshape(-1, 2)


@pytest.mark.parametrize("minimal", [False, True], ids=["full", "minimal"])
@pytest.mark.parametrize("act_signed", [True, False], ids=["s", "u"])
def test_bit_serial_inner_product_exhaustive(act_signed, minimal):
    """All 2x3-bit weight pairs x all 2x3-bit activation pairs, planes back to back."""
    ww, aw = 3, 3
    dut = BitSerialInnerProduct(lanes=2, weight_width=ww, act_width=aw, act_signed=act_signed,
                                acc_width=ww + aw + 1)
    weights = _pairs(-4, 3)
    acts = _pairs(-4, 3) if act_signed else _pairs(0, 7)
    cases = [(w, a) for w in weights for a in acts]
    assert len(cases) == 4096
    top = sim_top(dut)
    mask = (1 << dut.acc_width) - 1

    async def testbench(ctx):
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        for w, a in cases:
            p = aw
            if minimal:
                p = max(value_precision(int(v), signed=act_signed) for v in a)
            ctx.set(dut.weights, sum((int(v) & 7) << (3 * i) for i, v in enumerate(w)))
            ctx.set(dut.en, 1)
            for plane in range(p):
                bits = sum(((int(v) >> plane) & 1) << i for i, v in enumerate(a))
                ctx.set(dut.bits, bits)
                ctx.set(dut.plane, plane)
                ctx.set(dut.last, plane == p - 1)
                await ctx.tick()
            ctx.set(dut.en, 0)
            await ctx.tick().repeat(2)
            got = ctx.get(dut.acc)
            want = int(w[0]) * int(a[0]) + int(w[1]) * int(a[1])
            assert got & mask == want & mask, (w, a, got, want)
            ctx.set(dut.clear, 1)
            await ctx.tick()
            ctx.set(dut.clear, 0)

    run_simulation(top, testbench)


def test_bit_serial_accumulates_and_clear_drops_in_flight():
    dut = BitSerialInnerProduct(lanes=3, weight_width=4, act_width=4, act_signed=True,
                                acc_width=16)
    top = sim_top(dut)
    rng = np.random.default_rng(2)

    async def testbench(ctx):
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        total = 0
        for _ in range(100):  # back to back, no gaps; acc checked with latency 2
            w = rng.integers(-8, 8, 3)
            a = rng.integers(-8, 8, 3)
            ctx.set(dut.weights, sum((int(v) & 15) << (4 * i) for i, v in enumerate(w)))
            ctx.set(dut.en, 1)
            for plane in range(4):
                ctx.set(dut.bits, sum(((int(v) >> plane) & 1) << i for i, v in enumerate(a)))
                ctx.set(dut.plane, plane)
                ctx.set(dut.last, plane == 3)
                await ctx.tick()
            total += int(np.dot(w, a))
        ctx.set(dut.en, 0)
        assert ctx.get(dut.acc) != total  # one cycle after the last plane: still in flight
        await ctx.tick()
        assert ctx.get(dut.acc) == total  # two cycles after it: included
        # a clear drops the plane presented with it and the one in the pipeline
        ctx.set(dut.weights, 0b0001_0001_0001)
        ctx.set(dut.bits, 0b111)
        ctx.set(dut.plane, 0)
        ctx.set(dut.last, 0)
        ctx.set(dut.en, 1)
        await ctx.tick()
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        ctx.set(dut.en, 0)
        await ctx.tick().repeat(3)
        assert ctx.get(dut.acc) == 0

    run_simulation(top, testbench)


@pytest.mark.parametrize("act_signed", [True, False], ids=["s", "u"])
def test_bit_parallel_inner_product_exhaustive(act_signed):
    ww, aw = 3, 3
    dut = BitParallelInnerProduct(lanes=2, weight_width=ww, act_width=aw, act_signed=act_signed,
                                  acc_width=ww + aw + 1)
    weights = _pairs(-4, 3)
    acts = _pairs(-4, 3) if act_signed else _pairs(0, 7)
    top = sim_top(dut)
    mask = (1 << dut.acc_width) - 1

    async def testbench(ctx):
        total = 0
        pending = []
        ctx.set(dut.en, 1)
        for w in weights:
            for a in acts:
                ctx.set(dut.weights, sum((int(v) & 7) << (3 * i) for i, v in enumerate(w)))
                ctx.set(dut.acts, sum((int(v) & 7) << (3 * i) for i, v in enumerate(a)))
                total += int(w[0]) * int(a[0]) + int(w[1]) * int(a[1])
                pending.append(total)
                await ctx.tick()
                if len(pending) > 1:  # latency 2: one cycle after row i, acc holds rows < i
                    assert ctx.get(dut.acc) & mask == pending[-2] & mask
        assert len(pending) == 4096
        ctx.set(dut.en, 0)
        await ctx.tick()
        assert ctx.get(dut.acc) & mask == pending[-1] & mask

    run_simulation(top, testbench)


# --- construction ---------------------------------------------------------------------------

@pytest.mark.parametrize("cls,kwargs,error,message", [
    (TCLpTile, {"filters": 0}, ValueError, r"^filters must be an integer from 1 to 64, not 0$"),
    (BitParallelTile, {"windows": "2"}, TypeError,
     r"^windows must be an integer from 1 to 64, not '2'$"),
    (TCLpTile, {"act_width": 17}, ValueError,
     r"^act_width must be an integer from 2 to 16, not 17$"),
    (TCLpTile, {"act_signed": 1}, TypeError, r"^act_signed must be True or False, not 1$"),
    (BitParallelTile, {"pattern": "X"}, ValueError, r"^pattern must be 'none', 'L<h,d>'"),
    (TCLpTile, {"weight_rows": 0}, ValueError,
     r"^weight_rows must be an integer from 1 to 65536, not 0$"),
    (ActivationSelect, {"element_width": 0}, ValueError,
     r"^element_width must be an integer from 1 to 64, not 0$"),
    (ActivationSelect, {"lanes": 2, "pattern": "T<2,5>"}, ValueError,
     r"^pattern 'T<2,5>': offset \(2,-2\) needs dt from 1 to 7 and dl from -1 to 1$"),
    (BitSerialInnerProduct, {"acc_width": 35}, ValueError,
     r"^acc_width must be an integer from 36 to 64, not 35$"),
    (BitParallelInnerProduct, {"lanes": 4, "weight_width": 8, "act_width": 8, "acc_width": 8.0},
     TypeError, r"^acc_width must be an integer from 18 to 64, not 8\.0$"),
    (BitSerialInnerProduct, {"act_signed": None}, TypeError,
     r"^act_signed must be True or False, not None$"),
])
def test_constructors_reject_invalid_params(cls, kwargs, error, message):
    with pytest.raises(error, match=message):
        cls(**kwargs)


def test_constructors_are_keyword_only_and_expose_params():
    with pytest.raises(TypeError):
        TCLpTile(4)  # noqa: keyword-only
    params = TILE_CONFIGS[0]
    for cls in TILES.values():
        dut = cls(**dataclasses.asdict(params))
        assert dut.params == params
        members = dut.signature.members
        assert members["weights"] == In(stream.Signature(schedule_row_layout(params)))
        assert members["acts"] == In(stream.Signature(act_row_layout(params)))
        assert members["results"] == Out(stream.Signature(result_shape(params)))
        assert members["cycles"] == Out(32)
    assert TCLpTile(**dataclasses.asdict(params)).latency == 5
    assert BitParallelTile(**dataclasses.asdict(params)).latency == 4
    select = ActivationSelect(filters=2, lanes=4, pattern="T<2,5>", element_width=3)
    assert (select.filters, select.lanes, select.element_width, select.latency) == (2, 4, 3, 0)
    assert select.candidates(0) == [(0, 0), (1, 0), (2, 0), (1, 3), (2, 2), (1, 1), (2, 2),
                                    (1, 1)]


@pytest.mark.parametrize("block", ["tclp_small", "bit_parallel_small"])
def test_verilog_ports(block):
    from hw.blocks import get_block

    params = get_block(block).default_params()
    text, _ = emit_verilog(block, params)
    ports = {p["name"]: (p["direction"], p["width"])
             for p in verilog_ports(text, get_block(block).module_name)}
    assert ports == {
        "clk": ("input", 1), "rst": ("input", 1),
        "weights__payload": ("input", schedule_row_layout(params).size),
        "weights__valid": ("input", 1), "weights__ready": ("output", 1),
        "acts__payload": ("input", params.lanes * params.act_width),
        "acts__valid": ("input", 1), "acts__ready": ("output", 1),
        "results__payload": ("output", params.acc_width),
        "results__valid": ("output", 1), "results__ready": ("input", 1),
        "start": ("input", 1), "rows": ("input", params.weight_rows.bit_length()),
        "steps": ("input", params.act_rows.bit_length()), "load_weights": ("input", 1),
        "busy": ("output", 1), "done": ("output", 1), "cycles": ("output", 32),
    }


# --- layouts ----------------------------------------------------------------------------------

@pytest.mark.parametrize("call,message", [
    (lambda p: pack_schedule_row(p, [0] * 7, [0] * 8, 0), r"^weight must have 8 elements, not 7$"),
    (lambda p: pack_schedule_row(p, [128] + [0] * 7, [0] * 8, 0),
     r"^weight\[0\] = 128 is out of range: must be from -128 to 127$"),
    (lambda p: pack_schedule_row(p, [0] * 8, [0] * 7 + [8], 0),
     r"^select\[7\] = 8 is out of range: must be from 0 to 7$"),
    (lambda p: pack_schedule_row(p, [0] * 8, [0] * 8, 3),
     r"^skip\[0\] = 3 is out of range: must be from 0 to 2$"),
    (lambda p: pack_act_row(p, [0, 0, 0, -129]),
     r"^values\[3\] = -129 is out of range: must be from -128 to 127$"),
])
def test_packing_rejects_bad_values(call, message):
    params = TileParams(filters=2, lanes=4, windows=1, weight_width=8, act_width=8)
    with pytest.raises(ValueError, match=message):
        call(params)


def test_packing_matches_golden_offsets():
    """Field offsets by hand from the contract: weights, then selects, then skip, LSB first."""
    params = TileParams(filters=1, lanes=2, windows=1, weight_width=4, act_width=3,
                        act_signed=False, pattern="L<2,1>")
    word = pack_schedule_row(params, [-1, 5], [3, 1], 2)
    assert word == 0xF | (5 << 4) | (3 << 8) | (1 << 10) | (2 << 12)
    assert pack_act_row(params, [7, 2]) == 7 | (2 << 3)
    assert unpack_result(params, (1 << params.acc_width) - 3) == -3


# --- Verilator lint ---------------------------------------------------------------------------

LINT_CONFIGS = [
    ("tclp_small", None), ("bit_parallel_small", None),
    ("tclp", TileParams(filters=3, lanes=3, windows=1, weight_width=5, act_width=6,
                        act_signed=False, pattern="none", weight_rows=7, act_rows=9)),
    ("bit_parallel", TileParams(filters=2, lanes=3, windows=3, weight_width=4, act_width=3,
                                act_signed=True, pattern="(1,1),(3,-2)", weight_rows=16,
                                act_rows=5)),
    ("bit_parallel", TileParams(filters=2, lanes=3, windows=2, weight_width=5, act_width=6,
                                act_signed=False, pattern="L<1,1>", weight_rows=9, act_rows=7)),
]


@pytest.mark.parametrize("block,params", LINT_CONFIGS,
                         ids=[f"{b}-{i}" for i, (b, _) in enumerate(LINT_CONFIGS)])
def test_tiles_lint_clean(block, params, tmp_path):
    """Verilator -Wall with the project waivers: the small blocks and three odd configurations
    (the paper configurations are left to `make lint`: minutes of Verilator on 2 cores)."""
    from effectual.hdl import write_block
    from effectual.lint import lint_file
    from hw.blocks import get_block

    spec = get_block(block)
    path = tmp_path / f"{spec.module_name}.v"
    write_block(block, params or spec.default_params(), path)
    ok, output = lint_file(path)
    assert ok, output
