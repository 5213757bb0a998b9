"""golden.tcl: the scheduler's invariants (hypothesis), the packed row words against an independent
bit-slicing unpack and Amaranth's own layout, execution, row precision and the per-pass view."""

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_designs import (CASES, naive_run_ahead, naive_schedule, naive_tiles, naive_truncate,
                          naive_width, random_layer)

from golden.designs import get_design
from golden.layers import Layer, layer_output
from golden.precision import group_precision
from golden.tcl import (bit_serial_value, execute, lower, pack_act_rows, pass_cycles, passes,
                        row_precision, schedule)
from hw.params import TileParams, parse_pattern

PATTERNS = ["none", "L<1,0>", "L<2,3>", "T<2,5>", "(1,1),(3,-1)", "(2,0),(1,-2),(1,2)",
            "L<3,1>"]


@st.composite
def tiles(draw):
    """Dense rows [T, F, N] with many zeros (whole zero rows too) and a pattern."""
    T = draw(st.integers(1, 9))
    F = draw(st.integers(1, 4))
    N = draw(st.integers(4, 8))
    density = draw(st.sampled_from([0.0, 0.1, 0.3, 0.6, 1.0]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    rows = rng.integers(-8, 9, size=(T, F, N)) * (rng.random((T, F, N)) < density)
    rows[rng.random(T) < 0.3] = 0
    return rows, draw(st.sampled_from(PATTERNS))


def check_invariants(rows, pattern, sched):
    T, F, N = rows.shape
    offsets = parse_pattern(pattern, lanes=N)
    h = max((dt for dt, _ in offsets), default=0)
    R = sched.rows
    assert sched.weight.shape == sched.select.shape == (R, F, N) and R >= 1
    assert sched.offsets == offsets and sched.steps == T
    # rows advance by 1 + skip, skip in 0..h, trailing zero steps at most h
    assert np.all((0 <= sched.skip) & (sched.skip <= h))
    assert np.array_equal(sched.step, np.cumsum(sched.skip + 1) - 1)
    assert sched.step[-1] < T and T - 1 - sched.step[-1] <= h
    # select 0 on every zero slot, selects in range
    assert np.all(sched.select[sched.weight == 0] == 0)
    assert np.all((0 <= sched.select) & (sched.select <= len(offsets)))
    # every non-zero weight exactly once, paired with its original (step, lane)
    seen = set()
    for r, f, l in zip(*np.nonzero(sched.weight)):
        k = sched.select[r, f, l]
        dt, dl = (0, 0) if k == 0 else offsets[k - 1]
        t, lane = sched.step[r] + dt, (l + dl) % N
        assert t < T and rows[t, f, lane] == sched.weight[r, f, l]
        assert (t, f, lane) not in seen
        seen.add((t, f, lane))
    assert seen == set(zip(*[a.tolist() for a in np.nonzero(rows)]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tiles())
def test_scheduler_invariants_and_naive_pseudocode(tile):
    rows, pattern = tile
    sched = schedule(rows, pattern)
    check_invariants(rows, pattern, sched)
    offsets = parse_pattern(pattern, lanes=rows.shape[2])
    naive = naive_schedule(rows.tolist(), offsets)
    assert sched.step.tolist() == [t for t, _, _, _ in naive]
    assert sched.skip.tolist() == [s for _, s, _, _ in naive]
    assert sched.weight.tolist() == [w for _, _, w, _ in naive]
    assert sched.select.tolist() == [s for _, _, _, s in naive]
    # execution equals the dense product, for random activations including the extreme values
    rng = np.random.default_rng(int(np.abs(rows).sum()))
    acts = rng.integers(-(1 << 15), 1 << 15, size=(3,) + rows.shape[::2])
    dense = np.einsum("wtn,tfn->fw", acts, rows)
    assert np.array_equal(execute(sched, acts), dense)


def test_skip_limit_and_all_zero_tiles():
    rows = np.zeros((7, 2, 4), dtype=np.int64)
    rows[6, 1, 2] = 5
    # h = 2, and only row 4 could take the weight (it is skipped): skip 0-1, run the zero row 2,
    # skip 3-4, run 5 (a zero row: the skip limit) and 6
    sched = schedule(rows, "(2,1)")
    assert sched.step.tolist() == [2, 5, 6] and sched.skip.tolist() == [2, 2, 0]
    sched = schedule(rows, "T<2,5>")  # the weight at step 6 is promoted into row 5
    assert sched.step.tolist() == [2, 5] and sched.skip.tolist() == [2, 2]
    assert sched.weight[1, 1].tolist() == [0, 0, 5, 0] and sched.select[1, 1, 2] == 1
    empty = schedule(np.zeros((2, 3, 4), dtype=np.int64), "T<2,5>")  # T <= h: keep the last
    assert empty.step.tolist() == [1] and empty.skip.tolist() == [1] and not empty.weight.any()
    assert schedule(np.zeros((2, 3, 4), dtype=np.int64), "none").rows == 2


def test_least_flexible_hole_first():
    """Lane 0 has two candidates, lane 1 one: lane 1 is filled first, from its only source."""
    rows = np.zeros((3, 1, 4), dtype=np.int64)
    rows[0, 0, 2:] = 1
    rows[1, 0, 0] = 7  # reachable from hole (0, 0) by (1, 0) and from hole (0, 1) by (1, -1)
    rows[2, 0, 0] = 9  # reachable from hole (0, 0) by (2, 0) only
    sched = schedule(rows, "(1,0),(2,0),(1,-1)")
    # counts: lane 0 -> {(1,0), (2,0)} = 2, lane 1 -> {(1,-1)} = 1: lane 1 takes the 7 first,
    # then lane 0 (now one candidate) takes the 9.
    assert sched.weight[0, 0].tolist() == [9, 7, 1, 1]
    assert sched.select[0, 0].tolist() == [2, 3, 0, 0]
    assert sched.rows == 1 and sched.skip.tolist() == [0]


# ---------------------------------------------------------------------------------------------
# Packing
# ---------------------------------------------------------------------------------------------

def unpack(word, params):
    """Slice a row word as a bit string (LSB first): weights, selects, skip."""
    slots = params.filters * params.lanes
    ww, sb, ab = params.weight_width, params.select_bits, params.advance_bits
    total = slots * (ww + sb) + ab
    assert 0 <= word < 1 << total
    bits = format(word, f"0{total}b")[::-1]

    def field(start, width):
        return int(bits[start:start + width][::-1] or "0", 2)

    weights = [field(s * ww, ww) for s in range(slots)]
    weights = [w - (1 << ww) if w >> (ww - 1) else w for w in weights]
    selects = [field(slots * ww + s * sb, sb) for s in range(slots)]
    return weights, selects, field(slots * (ww + sb), ab)


@pytest.mark.parametrize("pattern,filters,lanes,width", [
    ("T<2,5>", 3, 8, 8), ("none", 2, 4, 16), ("L<1,2>", 4, 5, 5), ("(3,1),(1,-1)", 1, 6, 12)])
def test_pack_round_trip(pattern, filters, lanes, width):
    rng = np.random.default_rng(width)
    rows = rng.integers(-(1 << (width - 1)), 1 << (width - 1), size=(11, filters, lanes))
    rows *= rng.random(rows.shape) < 0.3
    rows[[3, 4, 5]] = 0
    rows[0, 0, 0] = -(1 << (width - 1))
    params = TileParams(filters=filters, lanes=lanes, windows=2, weight_width=width,
                        act_width=8, pattern=pattern)
    sched = schedule(rows, pattern)
    words = sched.pack(params)
    assert len(words) == sched.rows
    for r, word in enumerate(words):
        weights, selects, skip = unpack(word, params)
        assert weights == sched.weight[r].ravel().tolist()
        assert selects == sched.select[r].ravel().tolist()
        assert skip == sched.skip[r]


def test_pack_matches_amaranth_layout():
    from amaranth.hdl import signed, unsigned
    from amaranth.lib import data

    params = TileParams(filters=2, lanes=4, windows=1, weight_width=6, act_width=4)
    rows = np.random.default_rng(1).integers(-32, 32, size=(6, 2, 4))
    rows *= np.random.default_rng(2).random(rows.shape) < 0.4
    sched = schedule(rows, params.pattern)
    layout = data.StructLayout({
        "weight": data.ArrayLayout(signed(6), 8),
        "select": data.ArrayLayout(unsigned(params.select_bits), 8),
        "skip": unsigned(params.advance_bits)})
    for r, word in enumerate(sched.pack(params)):
        const = layout.const({"weight": sched.weight[r].ravel().tolist(),
                              "select": sched.select[r].ravel().tolist(),
                              "skip": int(sched.skip[r])})
        assert const.as_bits() == word
    act_layout = data.ArrayLayout(unsigned(4), 4)
    acts = np.arange(8).reshape(2, 4) + 5
    assert pack_act_rows(acts, TileParams(lanes=4, act_width=4, act_signed=False)) == \
        [act_layout.const(row.tolist()).as_bits() for row in acts]


def test_pack_errors():
    sched = schedule(np.ones((2, 2, 4), dtype=np.int64), "T<2,5>")
    with pytest.raises(TypeError, match=r"^params must be a TileParams, not 3$"):
        sched.pack(3)
    with pytest.raises(ValueError, match=r"^params has filters x lanes = 16 x 16, the schedule "
                                         r"2 x 4$"):
        sched.pack(TileParams())
    with pytest.raises(ValueError, match=r"^params pattern 'none' is not the schedule's offsets"):
        sched.pack(TileParams(filters=2, lanes=4, pattern="none"))
    big = schedule(np.full((1, 2, 4), 40), "T<2,5>")
    with pytest.raises(ValueError, match=r"^schedule weights must fit 6-bit signed"):
        big.pack(TileParams(filters=2, lanes=4, weight_width=6))
    with pytest.raises(ValueError, match=r"^acts must have 16 lanes, not 4$"):
        pack_act_rows(np.zeros((1, 4), dtype=np.int64), TileParams())
    with pytest.raises(ValueError, match=r"^dense_rows must be a non-empty \[T, F, N\] array, "
                                         r"not shape \(2, 3\)$"):
        schedule(np.zeros((2, 3)), "none")


# ---------------------------------------------------------------------------------------------
# Precision, bit-serial reconstruction, run-ahead
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("signed", [False, True])
def test_row_precision_against_group_precision(signed):
    rng = np.random.default_rng(int(signed))
    rows = rng.integers(-5, 6, size=(8, 3, 6)) * (rng.random((8, 3, 6)) < 0.35)
    sched = schedule(rows, "T<2,5>")
    low, high = (-128, 128) if signed else (0, 256)
    acts = rng.integers(low, high, size=(5, 8, 6)) >> rng.integers(0, 8, size=(5, 8, 6))
    p = row_precision(sched, acts, act_width=8, act_signed=signed)
    offsets = sched.offsets
    for w, r in itertools.product(range(5), range(sched.rows)):
        read = []
        for f, l in itertools.product(range(3), range(6)):
            k = sched.select[r, f, l]
            dt, dl = (0, 0) if k == 0 else offsets[k - 1]
            t = sched.step[r] + dt
            read.append(acts[w, t, (l + dl) % 6] if t < 8 else 0)
        assert p[w, r] == naive_width([int(v) for v in read], signed)
        assert p[w, r] == group_precision(np.array(read), value_width=8, signed=signed)[0]
    with pytest.raises(ValueError, match=r"^act_width must be an integer from 1 to 32, not 33$"):
        row_precision(sched, acts, act_width=33, act_signed=signed)
    with pytest.raises(ValueError, match=r"^acts must fit 4-bit"):
        row_precision(sched, acts, act_width=4, act_signed=signed)
    with pytest.raises(ValueError, match=r"^acts must have shape \[W, 8, 6\], not \(5, 7, 6\)$"):
        row_precision(sched, acts[:, :7], act_width=8, act_signed=signed)


@pytest.mark.parametrize("signed", [False, True])
def test_bit_serial_value_exhaustive(signed):
    values = np.arange(-128, 128) if signed else np.arange(256)
    for p in range(1, 9):
        got = bit_serial_value(values, np.full(values.shape, p), signed=signed)
        assert got.tolist() == [naive_truncate(int(v), p, signed) for v in values]
        fits = (values >= -(1 << (p - 1))) & (values < (1 << (p - 1))) if signed \
            else values < (1 << p)
        assert np.array_equal(got[fits], values[fits]) and not np.any(got[~fits] == values[~fits])


def test_pass_cycles_against_cycle_by_cycle_simulation():
    rng = np.random.default_rng(4)
    for _ in range(40):
        P, W, R = rng.integers(1, 4), rng.integers(1, 5), rng.integers(1, 8)
        p = rng.integers(1, 9, size=(P, W, R))
        for run_ahead in (0, 1, 2, 5):
            got = pass_cycles(p, run_ahead=run_ahead)
            assert got.tolist() == [naive_run_ahead(p[i].tolist(), run_ahead) for i in range(P)]
    with pytest.raises(ValueError, match=r"^run_ahead must be an integer from 0 to 65536, "
                                         r"not -2$"):
        pass_cycles(p, run_ahead=-2)


# ---------------------------------------------------------------------------------------------
# Layers: lowering and passes
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", list(CASES))
def test_lowering_matches_naive_tiles(case):
    layer = random_layer(np.random.default_rng(len(case)), **CASES[case])
    lowering = lower(layer, filters=3, lanes=5)
    tiles = naive_tiles(layer, 5, 3)
    assert lowering.tiles == len(tiles)
    for tile, (ks, rows, _, _) in enumerate(tiles):
        assert lowering.dense_rows(tile).tolist() == rows
        assert lowering.tile_filters[tile].tolist() == [-1 if k is None else k for k in ks]
    macs = sum(int(lowering.valid_slots(t).sum()) for t in range(lowering.tiles))
    assert macs * lowering.windows == layer.macs


@pytest.mark.parametrize("pattern", ["T<2,5>", "none"])
@pytest.mark.parametrize("case", ["conv-pad-stride", "depthwise-multiplier", "grouped", "fc"])
def test_passes_reassemble_the_layer(case, pattern):
    layer = random_layer(np.random.default_rng(len(case) + 1), **CASES[case])
    params = TileParams(filters=4, lanes=8, windows=3, weight_width=8, act_width=layer.act_bits,
                        act_signed=layer.act_signed, pattern=pattern, weight_rows=64,
                        act_rows=64)
    out = np.zeros((layer.out_channels, int(np.prod(layer.output_shape[1:]))), dtype=np.int64)
    parallel = serial = 0
    lowering = lower(layer, filters=4, lanes=8)
    for item in passes(layer, params):
        assert item.acts.shape == (3, lowering.steps, 8) and item.outputs.shape == (4, 3)
        assert np.array_equal(item.outputs, execute(item.schedule, item.acts))
        assert np.array_equal(item.outputs, np.einsum("wtn,tfn->fw", item.acts,
                                                      item.dense_rows))
        assert not item.acts[item.windows < 0].any() and not item.outputs[:, item.windows < 0].any()
        assert item.cycles_bit_parallel == item.schedule.rows
        p = row_precision(item.schedule, item.acts, act_width=params.act_width,
                          act_signed=params.act_signed)
        assert item.cycles_bit_serial == int(p.max(axis=0).sum())
        for f, k in enumerate(item.filters):
            for w, window in enumerate(item.windows):
                if k >= 0 and window >= 0:
                    out[k, window] = item.outputs[f, w]
        parallel += item.cycles_bit_parallel
        serial += item.cycles_bit_serial
    assert np.array_equal(out.reshape(layer.output_shape), layer_output(layer))
    tile = dict(filters=4, lanes=8, windows=3)
    if pattern == "none":  # the baseline's and Dynamic Stripes' counts, per pass
        assert parallel == get_design("baseline").cycles(layer, **tile)
        assert serial == get_design("dstripes").cycles(layer, **tile)
    assert parallel == get_design("wskip").cycles(layer, pattern=pattern, **tile)
    assert serial == get_design("tclp").cycles(layer, pattern=pattern, **tile)
    first = list(passes(layer, params, max_windows=2))
    assert len(first) == lowering.tiles and all(p.windows.tolist() == [0, 1, -1] for p in first) \
        or layer.kind == "fc"


def test_passes_errors():
    layer = random_layer(np.random.default_rng(0), **CASES["conv-signed"])  # 6-bit signed
    ok = dict(filters=2, lanes=4, windows=2, weight_width=8, act_width=6, act_signed=True)
    with pytest.raises(TypeError, match=r"^params must be a TileParams, not None$"):
        next(passes(layer, None))
    with pytest.raises(ValueError, match=r"^act_signed: the layer's activations are signed, "
                                         r"the tile's are not$"):
        next(passes(layer, TileParams(**{**ok, "act_signed": False})))
    with pytest.raises(ValueError, match=r"^act_width 5 is narrower than the layer's act_bits 6$"):
        next(passes(layer, TileParams(**{**ok, "act_width": 5})))
    with pytest.raises(ValueError, match=r"^weight_width 7 is narrower than the layer's "
                                         r"weight_bits 8$"):
        next(passes(layer, TileParams(**{**ok, "weight_width": 7})))
    with pytest.raises(ValueError, match=r"^act_rows 5 is less than the layer's 12 steps per "
                                         r"window$"):
        next(passes(layer, TileParams(**{**ok, "act_rows": 5})))
    with pytest.raises(ValueError, match=r"^weight_rows 1 is less than the \d+ schedule rows of "
                                         r"filter tile 0$"):
        next(passes(layer, TileParams(**{**ok, "weight_rows": 1})))
    with pytest.raises(ValueError, match=r"^max_windows must be an integer from 1 to"):
        next(passes(layer, TileParams(**ok), max_windows=0))
    shifted = Layer(kind="fc", weights=np.ones((2, 3), int), activations=np.ones(3, int),
                    act_zero_point=2, name="s")
    with pytest.raises(ValueError, match=r"^layer 's': act_zero_point must be 0 for the tile"):
        lower(shifted)


def test_layer_cache_does_not_keep_layers_alive():
    import gc
    import weakref

    from golden import tcl

    layer = random_layer(np.random.default_rng(9), **CASES["grouped"])
    get_design("tclp").cycles(layer)
    assert layer in tcl._MODELS
    ref = weakref.ref(layer)
    del layer
    gc.collect()
    assert ref() is None
