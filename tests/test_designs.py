"""golden.designs: the registry, and every design's cycles, ideal cycles and output against a naive
per-step simulation written here from the documented mapping and the spec's scheduler pseudo-code
(plain Python lists, no numpy in the reference)."""

import math
import sys
from fractions import Fraction

import numpy as np
import pytest

from golden.designs import (BASELINE, DESIGNS, Design, combine_errors, design_output,
                            get_design, layer_cycles, layer_results, load_designs,
                            output_error, profiled_precision, register)
from golden.layers import Layer, layer_output
from golden.stats import layer_stats
from hw.params import parse_pattern

load_designs()
#: the tile designs of golden/designs.py itself
TILE_DESIGNS = [BASELINE, "stripes", "dstripes", "wskip", "tclp"]
#: the systolic designs of golden/approx_designs.py
SYSTOLIC_DESIGNS = ["sysmt1", "sysmt2", "sysmt4", "sparq"]

# ---------------------------------------------------------------------------------------------
# Independent naive reference
# ---------------------------------------------------------------------------------------------


def naive_width(values, signed):
    """Smallest p >= 1 such that every value fits p-bit two's complement (or unsigned)."""
    p = 1
    while not all((-(1 << (p - 1)) <= v < (1 << (p - 1))) if signed else (0 <= v < (1 << p))
                  for v in values):
        p += 1
    return p


def naive_tiles(layer, lanes, filters):
    """List of filter tiles: (filter of each filter lane or None, dense rows [T][F][N],
    lane_channel(step, lane) -> channel or None, tap(step) -> (r, s) or None)."""
    W = layer.weights.tolist()
    K = len(W)
    tiles = []
    if layer.kind == "fc":
        C = len(W[0])
        blocks = list(range(0, C, lanes))
        for k0 in range(0, K, filters):
            ks = [k0 + f if k0 + f < K else None for f in range(filters)]
            rows = [[[W[k][c0 + l] if k is not None and c0 + l < C else 0 for l in range(lanes)]
                     for k in ks] for c0 in blocks]
            tiles.append((ks, rows, lambda t, l, b=blocks, C=C: b[t] + l if b[t] + l < C
                          else None, lambda t: None))
        return tiles
    Cg, groups = len(W[0]), layer.groups
    R, S = len(W[0][0]), len(W[0][0][0])
    Kg = K // groups
    taps = [(r, s) for r in range(R) for s in range(S)]
    if groups > 1 and Cg == 1:
        per_tile = min(lanes, filters)
        for k0 in range(0, K, per_tile):
            ks = [k0 + f if f < per_tile and k0 + f < K else None for f in range(filters)]
            rows = [[[W[k][0][r][s] if k is not None and l == f else 0 for l in range(lanes)]
                     for f, k in enumerate(ks)] for r, s in taps]
            chans = [(k0 + l) // Kg if l < per_tile and k0 + l < K else None
                     for l in range(lanes)]
            tiles.append((ks, rows, lambda t, l, chans=chans: chans[l],
                          lambda t, taps=taps: taps[t]))
        return tiles
    blocks = list(range(0, Cg, lanes))
    for g in range(groups):
        for k0 in range(0, Kg, filters):
            ks = [g * Kg + k0 + f if k0 + f < Kg else None for f in range(filters)]
            rows = [[[W[k][c0 + l][r][s] if k is not None and c0 + l < Cg else 0
                      for l in range(lanes)] for k in ks] for r, s in taps for c0 in blocks]
            tiles.append((ks, rows, lambda t, l, g=g, b=blocks, Cg=Cg: (
                g * Cg + b[t % len(b)] + l if b[t % len(b)] + l < Cg else None),
                lambda t, b=blocks: taps[t // len(b)]))
    return tiles


def naive_windows(layer):
    if layer.kind == "fc":
        return [None]
    _, H, W = layer.activations.shape
    R, S = layer.weights.shape[2:]
    top, bottom, left, right = layer.padding
    sh, sw = layer.stride
    return [(oy, ox) for oy in range((H + top + bottom - R) // sh + 1)
            for ox in range((W + left + right - S) // sw + 1)]


def naive_act(layer, tile, window, step, lane):
    """The activation a lane reads at a dense step of a window (0: padding, unused, missing)."""
    _, rows, lane_channel, tap = tile
    if window is False or step >= len(rows):
        return 0
    channel = lane_channel(step, lane)
    if channel is None:
        return 0
    if layer.kind == "fc":
        return int(layer.activations[channel])
    (oy, ox), (r, s) = window, tap(step)
    _, H, W = layer.activations.shape
    y = oy * layer.stride[0] + r - layer.padding[0]
    x = ox * layer.stride[1] + s - layer.padding[2]
    return int(layer.activations[channel, y, x]) if 0 <= y < H and 0 <= x < W else 0


def naive_schedule(rows, offsets):
    """The spec's greedy pseudo-code, literally: list of (step, skip, weights[F][N], select)."""
    T, F, N = len(rows), len(rows[0]), len(rows[0][0])
    h = max((dt for dt, _ in offsets), default=0)
    Wm = [[list(r) for r in row] for row in rows]
    SRC = [[[(t, l) for l in range(N)] for _ in range(F)] for t in range(T)]
    out, skip = [], 0
    for t in range(T):
        if skip < h and all(Wm[t][f][l] == 0 for f in range(F) for l in range(N)):
            skip += 1
            continue
        for f in range(F):
            while True:
                cand = {}
                for l in range(N):
                    if Wm[t][f][l] != 0:
                        continue
                    c = [(t + dt, (l + dl) % N) for dt, dl in offsets
                         if t + dt < T and Wm[t + dt][f][(l + dl) % N] != 0]
                    if c:
                        cand[l] = c
                if not cand:
                    break
                k = min(len(c) for c in cand.values())
                l = min(lane for lane in cand if len(cand[lane]) == k)
                tt, ll = cand[l][0]
                Wm[t][f][l], Wm[tt][f][ll] = Wm[tt][f][ll], Wm[t][f][l]
                SRC[t][f][l], SRC[tt][f][ll] = SRC[tt][f][ll], SRC[t][f][l]
        select = [[0] * N for _ in range(F)]
        for f in range(F):
            for l in range(N):
                if Wm[t][f][l] != 0:
                    st, sl = SRC[t][f][l]
                    select[f][l] = 0 if (st, sl) == (t, l) else 1 + next(
                        k for k, (dt, dl) in enumerate(offsets)
                        if st == t + dt and sl == (l + dl) % N)
        out.append((t, skip, [list(r) for r in Wm[t]], select))
        skip = 0
    if not out:
        out.append((T - 1, T - 1, [list(r) for r in Wm[T - 1]], [[0] * N for _ in range(F)]))
    return out


def naive_truncate(value, p, signed):
    """Rebuild a value from its bit planes 0..p-1, LSB first, the sign plane subtracted."""
    bits = value & ((1 << p) - 1)
    total = 0
    for b in range(p):
        if (bits >> b) & 1:
            total += -(1 << b) if signed and b == p - 1 else (1 << b)
    return total


def naive_run_ahead(costs, run_ahead):
    """Cycle-by-cycle simulation of columns with per-row costs ``costs[c][r]``: a column starts
    row r when it is idle, has finished r-1 and every column has finished row r-1-run_ahead."""
    columns, rows = len(costs), len(costs[0])
    done = [[False] * rows for _ in costs]
    current = [None] * columns  # (row, cycles left)
    nxt = [0] * columns
    cycle = 0
    while not all(all(d) for d in done):
        for c in range(columns):
            if current[c] is None and nxt[c] < rows:
                r = nxt[c]
                gate = r - 1 - run_ahead
                if gate < 0 or all(done[o][gate] for o in range(columns)):
                    current[c] = (r, costs[c][r])
                    nxt[c] += 1
        cycle += 1
        for c in range(columns):
            if current[c] is not None:
                r, left = current[c]
                current[c] = (r, left - 1) if left > 1 else None
                if left == 1:
                    done[c][r] = True
    return cycle


def naive_design(layer, *, filters=16, lanes=16, windows=1, pattern="none", cost="parallel",
                 precision=None, run_ahead=0):
    """Return (cycles, ideal, output) by stepping through every pass, row and slot."""
    offsets = parse_pattern(pattern, lanes=lanes)
    signed = layer.act_signed
    if cost == "layer" and precision is None:
        precision = naive_width([int(v) for v in layer.activations.ravel()], signed)
    wins = naive_windows(layer)
    K = layer.weights.shape[0]
    depthwise = layer.kind == "conv" and layer.groups > 1 and layer.weights.shape[1] == 1
    out = [[0] * len(wins) for _ in range(K)]
    cycles = work = 0
    for tile in naive_tiles(layer, lanes, filters):
        ks, rows, _, _ = tile
        sched = naive_schedule(rows, offsets)
        T = len(rows)
        for t in range(T):  # the work of the ideal count, over every window
            for w in wins:
                dense = [naive_act(layer, tile, w, t, l) for l in range(lanes)]
                for f, k in enumerate(ks):
                    for l in range(lanes):
                        if pattern == "none":  # every MAC of the layer (padding included)
                            valid = k is not None and (l == f if depthwise
                                                       else tile[2](t, l) is not None)
                        else:  # the MACs with a non-zero weight
                            valid = rows[t][f][l] != 0
                        if not valid:
                            continue
                        work += {"parallel": 1, "layer": precision,
                                 "dynamic": naive_width(dense, signed)}[cost]
        for c0 in range(0, len(wins), windows):
            chunk = [wins[i] if i < len(wins) else False for i in range(c0, c0 + windows)]
            costs = [[0] * len(sched) for _ in chunk]
            for r, (t, _, weights, select) in enumerate(sched):
                for c, w in enumerate(chunk):
                    read = []
                    for f in range(filters):
                        for l in range(lanes):
                            dt, dl = (0, 0) if select[f][l] == 0 else offsets[select[f][l] - 1]
                            read.append((f, weights[f][l],
                                         naive_act(layer, tile, w, t + dt, (l + dl) % lanes)))
                    p = {"parallel": None, "layer": precision,
                         "dynamic": naive_width([a for _, _, a in read], signed)}[cost]
                    costs[c][r] = 1 if p is None else p
                    if w is False:
                        continue
                    for f, weight, a in read:
                        if ks[f] is not None:
                            value = a if p is None else naive_truncate(a, p, signed)
                            out[ks[f]][wins.index(w)] += weight * value
            if cost == "parallel":
                cycles += len(sched)
            elif run_ahead == 0:
                cycles += sum(max(costs[c][r] for c in range(len(chunk)))
                              for r in range(len(sched)))
            else:
                cycles += naive_run_ahead(costs, run_ahead)
    ideal = -(-work // (filters * lanes * windows))
    return cycles, ideal, np.array(out, dtype=np.int64).reshape(layer.output_shape)


#: design -> (naive keyword arguments, whether bit-serial: default windows = act_bits)
NAIVE = {
    "baseline": (dict(cost="parallel"), False),
    "stripes": (dict(cost="layer"), True),
    "dstripes": (dict(cost="dynamic"), True),
    "wskip": (dict(cost="parallel", pattern="T<2,5>"), False),
    "tclp": (dict(cost="dynamic", pattern="T<2,5>"), True),
}

# ---------------------------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------------------------


def random_layer(rng, *, kind="conv", C=5, H=6, W=5, K=4, R=3, S=3, stride=(1, 1),
                 padding=(0, 0, 0, 0), groups=1, act_bits=8, act_signed=False, density=0.4):
    low = -(1 << (act_bits - 1)) if act_signed else 0
    high = (1 << (act_bits - 1)) if act_signed else (1 << act_bits)
    shape = (C,) if kind == "fc" else (C, H, W)
    acts = rng.integers(low, high, size=shape) >> rng.integers(0, act_bits, size=shape)
    acts[rng.random(shape) < 0.3] = 0
    acts = np.clip(acts, low, high - 1)
    w_shape = (K, C) if kind == "fc" else (K, C // groups, R, S)
    weights = rng.integers(-127, 128, size=w_shape) * (rng.random(w_shape) < density)
    if kind == "fc":
        return Layer(kind="fc", weights=weights, activations=acts, act_bits=act_bits,
                     act_signed=act_signed)
    return Layer(kind="conv", weights=weights, activations=acts, stride=stride, padding=padding,
                 groups=groups, act_bits=act_bits, act_signed=act_signed)


CASES = {
    "conv-pad-stride": dict(C=21, H=6, W=5, K=18, R=3, S=3, stride=(2, 1),
                            padding=(1, 2, 0, 1)),
    "conv-signed": dict(C=6, H=5, W=5, K=3, R=2, S=3, padding=(1, 0, 1, 1), act_signed=True,
                        act_bits=6),
    "depthwise": dict(C=20, H=5, W=5, K=20, R=3, S=3, stride=(2, 2), padding=(1, 1, 1, 1),
                      groups=20),
    "depthwise-multiplier": dict(C=5, H=4, W=4, K=10, R=3, S=2, padding=(0, 1, 1, 0), groups=5,
                                 act_signed=True),
    "grouped": dict(C=8, H=4, W=5, K=6, R=2, S=2, stride=(1, 2), padding=(1, 1, 0, 1), groups=2),
    "dense-1x1": dict(C=9, H=3, W=4, K=5, R=1, S=1, density=1.0),
    "fc": dict(kind="fc", C=37, K=40, density=0.2),
    "fc-signed": dict(kind="fc", C=19, K=5, act_signed=True, act_bits=16),
}
TILES = [dict(filters=4, lanes=8), dict(filters=3, lanes=4, windows=5),
         dict(filters=8, lanes=5, windows=2)]


@pytest.mark.parametrize("tile", range(len(TILES)))
@pytest.mark.parametrize("case", list(CASES))
def test_designs_match_naive_simulation(case, tile):
    rng = np.random.default_rng([len(case), tile, sum(map(ord, case))])
    layer = random_layer(rng, **CASES[case])
    reference = layer_output(layer)
    for name, (naive_options, serial) in NAIVE.items():
        options = dict(TILES[tile])
        if "T<2,5>" in naive_options.get("pattern", "") and options["lanes"] < 4:
            continue
        design = get_design(name)
        expected = naive_design(layer, **{"windows": layer.act_bits if serial else 1,
                                          **options, **naive_options})
        assert design.cycles(layer, **options) == expected[0], name
        assert design.ideal(layer, **options) == expected[1], name
        output = design.output(layer, **options)
        assert output.dtype == np.int64
        assert np.array_equal(output, expected[2]), name
        assert np.array_equal(output, reference), name


@pytest.mark.parametrize("case", ["conv-pad-stride", "depthwise", "fc-signed"])
def test_options_match_naive_simulation(case):
    """Stripes' explicit precision, other patterns and tclp's run-ahead."""
    layer = random_layer(np.random.default_rng(len(case)), **CASES[case])
    tile = dict(filters=4, lanes=8, windows=3)
    for precision in (profiled_precision(layer), layer.act_bits):
        assert get_design("stripes").cycles(layer, precision=precision, **tile) == \
            naive_design(layer, cost="layer", precision=precision, **tile)[0]
    for pattern in ("L<1,3>", "(2,1),(1,0),(3,-2)"):
        naive = naive_design(layer, cost="dynamic", pattern=pattern, **tile)
        assert get_design("tclp").cycles(layer, pattern=pattern, **tile) == naive[0]
        assert get_design("tclp").ideal(layer, pattern=pattern, **tile) == naive[1]
        assert np.array_equal(get_design("wskip").output(layer, pattern=pattern, **tile),
                              naive[2])
    for run_ahead in (1, 2, 50):
        assert get_design("tclp").cycles(layer, run_ahead=run_ahead, **tile) == \
            naive_design(layer, cost="dynamic", pattern="T<2,5>", run_ahead=run_ahead,
                         **tile)[0]


def test_default_tile_on_a_sparse_layer():
    """The default 16 x 16 tiles (W = 1 or act_bits) against the naive simulation."""
    layer = random_layer(np.random.default_rng(7), C=20, H=3, W=4, K=20, R=3, S=3,
                         padding=(1, 1, 1, 1), density=0.3)
    for name, (naive_options, serial) in NAIVE.items():
        cycles, ideal, output = naive_design(layer, windows=8 if serial else 1, **naive_options)
        assert (get_design(name).cycles(layer), get_design(name).ideal(layer)) == (cycles, ideal)
        assert np.array_equal(get_design(name).output(layer), output)
    assert layer_results(layer)["tclp"] == {"cycles": get_design("tclp").cycles(layer),
                                            "ideal": get_design("tclp").ideal(layer)}


def test_baseline_closed_form():
    # 32 filters x 40 channels, 3x3, 10x10 output: ceil(32/16) * ceil(40/16) * 9 * 100 cycles.
    layer = Layer(kind="conv", weights=np.ones((32, 40, 3, 3), int),
                  activations=np.ones((40, 12, 12), int))
    assert get_design(BASELINE).cycles(layer) == 2 * 3 * 9 * 100
    assert get_design(BASELINE).ideal(layer) == -(-layer.macs // 256)
    # Depthwise 40 channels: ceil(40/16) diagonal tiles, 9 steps per window.
    dw = Layer(kind="conv", weights=np.ones((40, 1, 3, 3), int),
               activations=np.ones((40, 12, 12), int), groups=40)
    assert get_design(BASELINE).cycles(dw) == 3 * 9 * 100
    assert get_design(BASELINE).ideal(dw) == -(-dw.macs // 256)


def test_dstripes_equals_precision_potential_when_aligned():
    """With aligned 16-channel blocks, 16-filter tiles and one column, Dynamic Stripes' speedup
    over the baseline is exactly golden.stats' Ap potential (group size 16)."""
    rng = np.random.default_rng(5)
    layer = random_layer(rng, C=32, H=6, W=7, K=32, R=3, S=3, padding=(1, 1, 2, 0),
                         stride=(1, 2), density=1.0)
    cycles = layer_cycles(layer)
    dynamic = get_design("dstripes").cycles(layer, windows=1)
    assert cycles[BASELINE][0] * layer.act_bits / dynamic == layer_stats(layer)["potentials"]["Ap"]
    assert get_design("dstripes").ideal(layer, windows=1) == dynamic  # no waste at one column


def test_full_precision_bit_serial_matches_baseline():
    # Windows = act_bits and every group needing all act_bits: equal throughput, equal cycles
    # (16 windows = 2 full chunks of 8 columns); no zero weight: nothing to skip.
    acts = np.full((16, 4, 4), 255)
    layer = Layer(kind="conv", weights=np.ones((16, 16, 1, 1), int), activations=acts)
    cycles = layer_cycles(layer, TILE_DESIGNS)
    assert set(cycles.values()) == {(16, 1.0)}
    assert {get_design(n).ideal(layer) for n in TILE_DESIGNS} == {16}


def test_bit_serial_fc_uses_one_column():
    layer = Layer(kind="fc", weights=np.ones((40, 20), int), activations=np.full(20, 255))
    # 3 filter tiles x 2 steps x 8 bits on one column each; 7 of the 8 columns idle
    assert get_design("stripes").cycles(layer) == get_design("dstripes").cycles(layer) == 48
    assert get_design("tclp").cycles(layer) == 48
    assert get_design("dstripes").ideal(layer) == -(-40 * 20 * 8 // (16 * 16 * 8))


def test_tclp_run_ahead_never_slower():
    layer = random_layer(np.random.default_rng(3), C=16, H=6, W=6, K=16, R=3, S=3, density=0.5)
    lockstep = get_design("tclp").cycles(layer)
    ahead = [get_design("tclp").cycles(layer, run_ahead=a) for a in (1, 2, 4, 1000)]
    assert lockstep >= ahead[0] >= ahead[1] >= ahead[2] >= ahead[3]
    assert ahead[3] >= get_design("tclp").ideal(layer)


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------

def test_registry_contents_and_order():
    # other modules may register more designs (in any order): check the relative order
    assert [n for n in DESIGNS if n in TILE_DESIGNS + SYSTOLIC_DESIGNS] == \
        TILE_DESIGNS + SYSTOLIC_DESIGNS
    assert list(DESIGNS)[:5] == TILE_DESIGNS
    assert BASELINE == "baseline"
    for name, design in DESIGNS.items():
        assert design.name == name and design.description
    assert [n for n in TILE_DESIGNS + SYSTOLIC_DESIGNS if not DESIGNS[n].exact] == \
        ["sysmt2", "sysmt4", "sparq"]
    assert {n: DESIGNS[n].relative_to for n in SYSTOLIC_DESIGNS} == \
        {"sysmt1": None, "sysmt2": "sysmt1", "sysmt4": "sysmt1", "sparq": "sysmt1"}
    assert all(DESIGNS[n].relative_to is None and DESIGNS[n].unsupported is None
               for n in TILE_DESIGNS)


def test_register_adds_a_design_to_layer_cycles():
    layer = Layer(kind="fc", weights=np.ones((20, 40), int), activations=np.ones(40, int))
    design = Design("test-half", "half the baseline",
                    lambda layer, **options: get_design(BASELINE).cycles(layer) // 2,
                    lambda layer, **options: 1, layer_output)
    try:
        assert register(design) is design
        assert get_design("test-half") is design
        result = layer_cycles(layer)
        assert result["test-half"] == (3, 2.0)  # baseline: ceil(20/16) * ceil(40/16) = 6
        with pytest.raises(ValueError, match=r"^a design named 'test-half' is already registered$"):
            register(Design("test-half", "again", design.cycles, design.ideal, design.output))
    finally:
        DESIGNS.pop("test-half", None)
    assert "test-half" not in layer_cycles(layer)


def test_registry_errors():
    with pytest.raises(ValueError) as error:
        get_design("nope")
    assert str(error.value) == f"unknown design 'nope'; known: {', '.join(DESIGNS)}"
    assert str(error.value).startswith("unknown design 'nope'; known: baseline, stripes, "
                                       "dstripes, wskip, tclp, ")
    with pytest.raises(TypeError, match=r"^register\(\) takes a Design, not 'x'$"):
        register("x")
    with pytest.raises(TypeError, match=r"^Design name must be a non-empty string, not ''$"):
        Design("", "d", len, len, len)
    with pytest.raises(TypeError, match=r"^Design description must be a string, not None$"):
        Design("x", None, len, len, len)
    with pytest.raises(TypeError, match=r"^Design cycles must be callable, not 3$"):
        Design("x", "d", 3, len, len)
    with pytest.raises(TypeError, match=r"^Design ideal must be callable, not 3$"):
        Design("x", "d", len, 3, len)
    with pytest.raises(TypeError, match=r"^Design output must be callable, not 3$"):
        Design("x", "d", len, len, 3)
    with pytest.raises(TypeError, match=r"^Design exact must be a bool, not 1$"):
        Design("x", "d", len, len, len, exact=1)
    with pytest.raises(TypeError, match=r"^Design output_counts must be callable or None, "
                                        r"not 'f'$"):
        Design("x", "d", len, len, len, output_counts="f")
    with pytest.raises(TypeError, match=r"^Design unsupported must be callable or None, not 2$"):
        Design("x", "d", len, len, len, unsupported=2)
    with pytest.raises(TypeError, match=r"^Design relative_to must be a design name or None, "
                                        r"not ''$"):
        Design("x", "d", len, len, len, relative_to="")


def test_option_errors():
    layer = Layer(kind="fc", weights=np.ones((2, 3), int), activations=np.ones(3, int))
    with pytest.raises(ValueError, match=r"^lanes must be an integer from 1 to 4096, not 0$"):
        get_design(BASELINE).cycles(layer, lanes=0)
    with pytest.raises(TypeError, match=r"^filters must be an integer from 1 to 4096, not 'a'$"):
        get_design("stripes").cycles(layer, filters="a")
    with pytest.raises(ValueError, match=r"^windows must be an integer from 1 to 4096, not -1$"):
        get_design("dstripes").cycles(layer, windows=-1)
    small = Layer(kind="fc", weights=np.ones((2, 3), int), activations=np.array([0, 5, 1]))
    with pytest.raises(ValueError, match=r"^precision must be an integer from 3 to 8, not 2$"):
        get_design("stripes").cycles(small, precision=2)
    with pytest.raises(ValueError, match=r"^run_ahead must be an integer from 0 to 65536, "
                                         r"not -1$"):
        get_design("tclp").cycles(layer, run_ahead=-1)
    with pytest.raises(ValueError, match=r"^pattern must be 'none', 'L<h,d>', 'T<2,5>' or a list"):
        get_design("wskip").cycles(layer, pattern="Q")
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'pattern'"):
        get_design("dstripes").cycles(layer, pattern="none")
    shifted = Layer(kind="fc", weights=np.ones((2, 3), int), activations=np.ones(3, int),
                    act_zero_point=1)
    with pytest.raises(ValueError, match=r"^layer '': act_zero_point must be 0 for the tile"):
        get_design("tclp").cycles(shifted)


def test_load_designs_imports_listed_modules(tmp_path, monkeypatch):
    import golden.designs

    (tmp_path / "extra_design_for_test.py").write_text(
        "from golden.designs import Design, register\n"
        "register(Design('test-extra', 'from a module', lambda layer, **options: 1,\n"
        "                lambda layer, **options: 1, lambda layer, **options: None))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(golden.designs, "DESIGN_MODULES", ("extra_design_for_test",))
    try:
        assert "test-extra" in golden.designs.load_designs()
        assert get_design("test-extra").cycles(None) == 1
    finally:
        DESIGNS.pop("test-extra", None)
        sys.modules.pop("extra_design_for_test", None)


# ---------------------------------------------------------------------------------------------
# Systolic designs (golden/approx_designs.py) against a naive reference written from the spec
# ---------------------------------------------------------------------------------------------

def naive_reductions(layer):
    """``{(k, oy, ox): (acts, weights)}``: each output's reduction in (r, s, c) order (fc:
    ``{(k,): ...}``), padding pixels as zero activations, with plain loops."""
    acts, w = layer.activations.tolist(), layer.weights.tolist()
    if layer.kind == "fc":
        return {(k,): (list(acts), list(w[k])) for k in range(len(w))}
    K, cg, R, S = layer.weights.shape
    C, H, W = layer.activations.shape
    top, bottom, left, right = layer.padding
    sh, sw = layer.stride
    OH, OW = (H + top + bottom - R) // sh + 1, (W + left + right - S) // sw + 1
    per_group = K // layer.groups
    out = {}
    for k in range(K):
        g = k // per_group
        for oy in range(OH):
            for ox in range(OW):
                a_vec, w_vec = [], []
                for r in range(R):
                    for s in range(S):
                        for c in range(cg):
                            y, x = oy * sh + r - top, ox * sw + s - left
                            inside = 0 <= y < H and 0 <= x < W
                            a_vec.append(acts[g * cg + c][y][x] if inside else 0)
                            w_vec.append(w[k][c][r][s])
                out[(k, oy, ox)] = (a_vec, w_vec)
    return out


def naive_window(x, shift, width=4):
    """Round half to even of ``x / 2**shift`` kept in ``width`` bits (saturating), times
    ``2**shift``."""
    return min(round(Fraction(x, 1 << shift)), (1 << width) - 1) << shift


def naive_squeeze_act(a):
    """SPARQ 2opt 4-bit window with rounding, on the magnitude (sign kept)."""
    m = abs(a)
    value = m if m < 16 else naive_window(m, 4)
    return -value if a < 0 else value


def naive_squeeze_weight(w):
    """Weights in -8..7 exact, else the signed nibble of w / 16 rounded half to even (max 7)."""
    return w if -8 <= w <= 7 else min(round(Fraction(w, 16)), 7) * 16


def naive_nbsmt(layer, threads):
    """``(output dict, active, squeezed)`` of NB-SMT as the spec's table states it."""
    out, active_total, squeezed_total = {}, 0, 0
    for key, (a_vec, w_vec) in naive_reductions(layer).items():
        length = -(-len(a_vec) // threads) * threads
        a_vec = a_vec + [0] * (length - len(a_vec))
        w_vec = w_vec + [0] * (length - len(w_vec))
        total = 0
        for i in range(0, length, threads):
            pairs = list(zip(a_vec[i:i + threads], w_vec[i:i + threads]))
            active = [(a, w) for a, w in pairs if a != 0 and w != 0]
            others = len(active) - 1
            for a, w in active:
                if others == 0:
                    total += a * w
                elif threads == 2 or others == 1:
                    total += naive_squeeze_act(a) * w
                else:
                    total += naive_squeeze_act(a) * naive_squeeze_weight(w)
            active_total += len(active)
            squeezed_total += len(active) if len(active) > 1 else 0
        out[key] = total
    return out, active_total, squeezed_total


def naive_sparq_value(x):
    """bSPARQ 5opt ROUND: the lowest offset whose 4-bit window holds the leading one."""
    shift = next(s for s in range(5) if x < 1 << (s + 4))
    return naive_window(x, shift)


def naive_sparq(layer):
    out = {}
    for key, (a_vec, w_vec) in naive_reductions(layer).items():
        if len(a_vec) % 2:
            a_vec, w_vec = a_vec + [0], w_vec + [0]
        total = 0
        for i in range(0, len(a_vec), 2):
            for j in (i, i + 1):
                a, partner = a_vec[j], a_vec[i + 1 if j == i else i]
                value = naive_sparq_value(abs(a)) if partner != 0 else abs(a)
                total += (-value if a < 0 else value) * w_vec[j]
        out[key] = total
    return out


def naive_array_cycles(layer, rows, cols, threads):
    """Tiles of R positions x C channels per group, each ceil(L/T) + (R + C - 2) + R cycles."""
    positions = 1 if layer.kind == "fc" else layer.output_shape[1] * layer.output_shape[2]
    per_group = layer.weights.shape[0] // layer.groups
    length = len(next(iter(naive_reductions(layer).values()))[0])
    tiles = 0
    for _ in range(layer.groups):
        for _p0 in range(0, positions, rows):
            for _k0 in range(0, per_group, cols):
                tiles += 1
    return tiles * (math.ceil(length / threads) + rows + cols - 2 + rows)


def naive_macs(layer):
    return sum(len(a) for a, _ in naive_reductions(layer).values())


def as_array(layer, values):
    out = np.zeros(layer.output_shape, dtype=np.int64)
    for key, value in values.items():
        out[key] = value
    return out


SYSTOLIC_CASES = ["conv-pad-stride", "depthwise-multiplier", "grouped", "fc", "conv-signed"]
ARRAYS = [dict(rows=3, cols=2), dict(rows=2, cols=5), dict()]


@pytest.mark.parametrize("array", range(len(ARRAYS)))
@pytest.mark.parametrize("case", SYSTOLIC_CASES)
def test_systolic_designs_match_naive_reference(case, array):
    rng = np.random.default_rng([array, sum(map(ord, case))])
    spec = dict(CASES[case])
    spec["act_bits"] = 8  # the systolic datapaths take 8-bit activations
    layer = random_layer(rng, **spec)
    options = ARRAYS[array]
    rows, cols = options.get("rows", 16), options.get("cols", 16)
    exact = layer_output(layer)
    for threads in (1, 2, 4):
        design = get_design(f"sysmt{threads}")
        assert design.cycles(layer, **options) == naive_array_cycles(layer, rows, cols, threads)
        assert design.ideal(layer, **options) == \
            math.ceil(naive_macs(layer) / (threads * rows * cols))
        expected, active, squeezed = naive_nbsmt(layer, threads)
        output, counts = design_output(design, layer, **options)
        assert output.dtype == np.int64
        assert np.array_equal(output, as_array(layer, expected)), threads
        assert np.array_equal(design.output(layer, **options), output)
        assert counts == {"macs": naive_macs(layer), "active": active, "squeezed": squeezed}
        if threads == 1:
            assert np.array_equal(output, exact)
    sparq = get_design("sparq")
    assert sparq.cycles(layer, **options) == naive_array_cycles(layer, rows, cols, 2)
    assert sparq.ideal(layer, **options) == math.ceil(naive_macs(layer) / (2 * rows * cols))
    output, counts = design_output(sparq, layer, **options)
    assert np.array_equal(output, as_array(layer, naive_sparq(layer))) and counts == {}


def test_systolic_designs_are_approximate_on_real_values():
    """Dense 8-bit values collide: the approximate designs differ from the exact output."""
    layer = random_layer(np.random.default_rng(4), C=8, H=5, W=5, K=4, density=1.0)
    exact = layer_output(layer)
    assert np.array_equal(get_design("sysmt1").output(layer), exact)
    for name in ("sysmt2", "sysmt4", "sparq"):
        assert not np.array_equal(get_design(name).output(layer), exact), name


def test_systolic_unsupported_layers():
    wide = Layer(kind="fc", name="wide", weights=np.full((2, 3), 300),
                 activations=np.ones(3, int), weight_bits=16)
    shifted = Layer(kind="fc", name="shifted", weights=np.ones((2, 3), int),
                    activations=np.ones(3, int), act_zero_point=1)
    acts16 = Layer(kind="fc", name="a16", weights=np.ones((2, 3), int),
                   activations=np.full(3, 1000), act_bits=16)
    signed9 = Layer(kind="fc", name="s9", weights=np.ones((2, 3), int),
                    activations=np.array([-256, 3, 0]), act_bits=9, act_signed=True)
    reasons = {"wide": "weights must be 8-bit, not 16-bit",
               "shifted": "act_zero_point must be 0, not 1",
               "a16": "activations must be unsigned 8-bit, not 16-bit",
               "s9": "signed activations need magnitudes up to 255"}
    for layer in (wide, shifted, acts16, signed9):
        for name in SYSTOLIC_DESIGNS:
            design = get_design(name)
            assert design.why_unsupported(layer) == reasons[layer.name]
            assert design.cycles(layer) == naive_array_cycles(layer, 16, 16, 1 if name ==
                                                              "sysmt1" else 4 if name ==
                                                              "sysmt4" else 2)
            with pytest.raises(ValueError, match=rf"^layer '{layer.name}': {name} cannot run "
                                                 rf"it: {reasons[layer.name]}$"):
                design_output(design, layer)
            with pytest.raises(ValueError, match=rf"^layer '{layer.name}': {name} cannot run "
                                                 rf"it: "):
                design.output(layer)
    ok = Layer(kind="fc", weights=np.ones((2, 3), int), activations=np.array([-255, 3, 0]),
               act_bits=9, act_signed=True)
    assert all(get_design(n).why_unsupported(ok) is None for n in SYSTOLIC_DESIGNS)
    assert all(get_design(n).why_unsupported(wide) is None for n in TILE_DESIGNS)


def test_systolic_array_option_errors():
    layer = Layer(kind="fc", weights=np.ones((2, 3), int), activations=np.ones(3, int))
    for name in SYSTOLIC_DESIGNS:
        design = get_design(name)
        with pytest.raises(ValueError, match=r"^rows must be an integer from 2 to 16, not 1$"):
            design.cycles(layer, rows=1)
        with pytest.raises(ValueError, match=r"^cols must be an integer from 1 to 16, not 17$"):
            design.ideal(layer, cols=17)
        with pytest.raises(ValueError, match=r"^rows must be an integer from 2 to 16, not 0$"):
            design.output(layer, rows=0)
        with pytest.raises(TypeError, match=r"unexpected keyword argument 'filters'"):
            design.cycles(layer, filters=16)


def test_output_error_and_combine():
    expected = np.array([[3, -4], [0, 0]])
    output = np.array([[3, -1], [2, 0]])
    error = output_error(output, expected)
    assert error == {"values": 4, "differing": 2, "max_abs_error": 3,
                     "rel_rms_error": math.sqrt(9 + 4) / 5}
    assert output_error(np.array([1, -1]), np.zeros(2, int))["rel_rms_error"] == math.sqrt(2)
    with pytest.raises(ValueError, match=r"^output shape \[2\] is not the expected \[3\]$"):
        output_error(np.zeros(2, int), np.zeros(3, int))
    second = output_error(np.array([5]), np.array([5]))
    combined = combine_errors([error, second], [{"active": 10, "squeezed": 4, "macs": 20},
                                                {"active": 6, "squeezed": 0, "macs": 3}])
    assert combined == {"evaluated": 2, "values": 5, "differing": 2, "differ_fraction": 0.4,
                        "max_abs_error": 3, "rel_rms_error": (math.sqrt(13) / 5 + 0) / 2,
                        "squeezed_fraction": 4 / 16,
                        "counts": {"active": 16, "squeezed": 4, "macs": 23}}
    assert combine_errors([second])["squeezed_fraction"] is None
    assert combine_errors([]) is None
