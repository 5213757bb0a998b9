"""golden.designs: the registry, and every design's cycles against a naive per-step simulation."""

import itertools
import sys

import numpy as np
import pytest

from golden.designs import (BASELINE, DESIGNS, Design, get_design, layer_cycles, register,
                            tile_schedule)
from golden.layers import Layer
from golden.stats import layer_stats


# ---------------------------------------------------------------------------------------------
# Independent naive schedule and per-step simulation (plain Python, from the documented mapping)
# ---------------------------------------------------------------------------------------------

def naive_width(values, signed, trim_lsb=False):
    """Smallest p >= 1 so that every value (shifted right by the common trailing zeros) fits."""
    lsb = 0
    if trim_lsb and any(values):
        lsb = min((v & -v).bit_length() - 1 for v in values if v)
    values = [v >> lsb for v in values]
    p = 1
    while not all((-(1 << (p - 1)) <= v < (1 << (p - 1))) if signed else (0 <= v < (1 << p))
                  for v in values):
        p += 1
    return p


def naive_tiles(layer, lanes, filters):
    """List of filter tiles; each is a list of per-step lane channel lists (None = zero lane)."""
    K = layer.weights.shape[0]
    if layer.kind == "fc":
        C = layer.weights.shape[1]
        steps = [[c0 + l if c0 + l < C else None for l in range(lanes)]
                 for c0 in range(0, C, lanes)]
        return [steps for _ in range(0, K, filters)]
    Cg, groups = layer.weights.shape[1], layer.groups
    Kg = K // groups
    if groups > 1 and Cg == 1:
        per_tile = min(lanes, filters)
        tiles = []
        for k0 in range(0, K, per_tile):
            lane_channels = [None] * lanes
            for i in range(per_tile):
                if k0 + i < K:
                    lane_channels[i] = (k0 + i) // Kg
            tiles.append([lane_channels])
        return tiles
    tiles = []
    for g in range(groups):
        for _ in range(0, Kg, filters):
            tiles.append([[g * Cg + c0 + l if c0 + l < Cg else None for l in range(lanes)]
                          for c0 in range(0, Cg, lanes)])
    return tiles


def naive_windows(layer):
    _, H, W = layer.activations.shape
    R, S = layer.weights.shape[2:]
    top, bottom, left, right = layer.padding
    sh, sw = layer.stride
    return [(oy, ox) for oy in range((H + top + bottom - R) // sh + 1)
            for ox in range((W + left + right - S) // sw + 1)]


def lane_values(layer, lane_channels, window, tap):
    """The activation each lane reads for one window at one kernel position (0 for padding)."""
    if layer.kind == "fc":
        return [0 if c is None else int(layer.activations[c]) for c in lane_channels]
    (oy, ox), (r, s) = window, tap
    _, H, W = layer.activations.shape
    y = oy * layer.stride[0] + r - layer.padding[0]
    x = ox * layer.stride[1] + s - layer.padding[2]
    inside = 0 <= y < H and 0 <= x < W
    return [int(layer.activations[c, y, x]) if c is not None and inside else 0
            for c in lane_channels]


def simulate(layer, *, step_cost, lanes=16, filters=16, columns=1):
    """Sum of ``step_cost(list of per-column lane values)`` over the documented schedule."""
    tiles = naive_tiles(layer, lanes, filters)
    cycles = 0
    if layer.kind == "fc":
        for chunk_start in range(0, len(tiles), columns):
            chunk = tiles[chunk_start:chunk_start + columns]
            for step in range(len(chunk[0])):
                cycles += step_cost([lane_values(layer, tile[step], None, None)
                                     for tile in chunk])
        return cycles
    R, S = layer.weights.shape[2:]
    windows = naive_windows(layer)
    for tile in tiles:
        for chunk_start in range(0, len(windows), columns):
            chunk = windows[chunk_start:chunk_start + columns]
            for tap in itertools.product(range(R), range(S)):
                for lane_channels in tile:
                    cycles += step_cost([lane_values(layer, lane_channels, w, tap)
                                         for w in chunk])
    return cycles


def naive_baseline(layer, lanes=16, filters=16):
    return simulate(layer, step_cost=lambda groups: 1, lanes=lanes, filters=filters)


def naive_stripes(layer, lanes=16, filters=16, columns=None, precision=None):
    columns = layer.act_bits if columns is None else columns
    if precision is None:
        precision = naive_width([int(v) for v in layer.activations.ravel()], layer.act_signed)
    return simulate(layer, step_cost=lambda groups: precision, lanes=lanes, filters=filters,
                    columns=columns)


def naive_dynamic(layer, lanes=16, filters=16, columns=None, trim_lsb=False):
    columns = layer.act_bits if columns is None else columns
    return simulate(layer, lanes=lanes, filters=filters, columns=columns,
                    step_cost=lambda groups: max(naive_width(g, layer.act_signed, trim_lsb)
                                                 for g in groups))


# ---------------------------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------------------------

def random_layer(rng, *, kind="conv", C=5, H=6, W=5, K=4, R=3, S=3, stride=(1, 1),
                 padding=(0, 0, 0, 0), groups=1, act_bits=8, act_signed=False):
    low = -(1 << (act_bits - 1)) if act_signed else 0
    high = (1 << (act_bits - 1)) if act_signed else (1 << act_bits)
    shape = (C,) if kind == "fc" else (C, H, W)
    acts = rng.integers(low, high, size=shape) >> rng.integers(0, act_bits, size=shape)
    acts[rng.random(shape) < 0.3] = 0
    acts[..., :2] <<= rng.integers(0, 3)  # some common trailing zeros for trim_lsb
    acts = np.clip(acts, low, high - 1)
    w_shape = (K, C) if kind == "fc" else (K, C // groups, R, S)
    weights = rng.integers(-127, 128, size=w_shape)
    if kind == "fc":
        return Layer(kind="fc", weights=weights, activations=acts, act_bits=act_bits,
                     act_signed=act_signed)
    return Layer(kind="conv", weights=weights, activations=acts, stride=stride, padding=padding,
                 groups=groups, act_bits=act_bits, act_signed=act_signed)


CASES = {
    "conv-pad-stride": dict(C=21, H=7, W=6, K=18, R=3, S=3, stride=(2, 1),
                            padding=(1, 2, 0, 1)),
    "conv-signed": dict(C=6, H=5, W=5, K=3, R=2, S=3, padding=(1, 0, 1, 1), act_signed=True,
                        act_bits=6),
    "depthwise": dict(C=20, H=6, W=5, K=20, R=3, S=3, stride=(2, 2), padding=(1, 1, 1, 1),
                      groups=20),
    "depthwise-multiplier": dict(C=5, H=5, W=4, K=10, R=3, S=2, padding=(0, 1, 1, 0), groups=5,
                                 act_signed=True),
    "grouped": dict(C=8, H=4, W=5, K=6, R=2, S=2, stride=(1, 2), padding=(1, 1, 0, 1), groups=2),
    "one-channel": dict(C=1, H=6, W=6, K=6, R=3, S=3, padding=(1, 1, 1, 1)),
    "fc": dict(kind="fc", C=37, K=40),
    "fc-signed": dict(kind="fc", C=19, K=5, act_signed=True, act_bits=16),
}
TILES = [dict(), dict(lanes=4, filters=3, columns=5), dict(lanes=3, filters=8, columns=2)]


@pytest.mark.parametrize("tile", range(len(TILES)))
@pytest.mark.parametrize("case", list(CASES))
def test_cycles_match_naive_simulation(case, tile):
    rng = np.random.default_rng([len(case), tile, sum(map(ord, case))])
    layer = random_layer(rng, **CASES[case])
    options = TILES[tile]
    lanes, filters = options.get("lanes", 16), options.get("filters", 16)
    columns = options.get("columns")
    assert get_design(BASELINE).cycles(layer, lanes=lanes, filters=filters) \
        == naive_baseline(layer, lanes, filters)
    assert get_design("stripes").cycles(layer, **options) \
        == naive_stripes(layer, lanes, filters, columns)
    assert get_design("stripes").cycles(layer, precision=layer.act_bits, **options) \
        == naive_stripes(layer, lanes, filters, columns, layer.act_bits)
    for trim_lsb in (False, True):
        assert get_design("dynamic-stripes").cycles(layer, trim_lsb=trim_lsb, **options) \
            == naive_dynamic(layer, lanes, filters, columns, trim_lsb)


@pytest.mark.parametrize("tile", range(len(TILES)))
@pytest.mark.parametrize("case", list(CASES))
def test_tile_schedule_matches_naive_tiles(case, tile):
    """Every field of the schedule against the naive tile list and window enumeration."""
    layer = random_layer(np.random.default_rng(len(case)), **CASES[case])
    lanes, filters = TILES[tile].get("lanes", 16), TILES[tile].get("filters", 16)
    plan = tile_schedule(layer, lanes=lanes, filters=filters)
    tiles = naive_tiles(layer, lanes, filters)
    assert plan.filter_tiles == len(tiles)
    rows = [[None if c < 0 else int(c) for c in row]
            for repeats, channels in plan.entries for _ in range(repeats) for row in channels]
    assert rows == [step for steps in tiles for step in steps]
    if layer.kind == "fc":
        assert (plan.windows, plan.taps) == (1, 1)
    else:
        assert plan.windows == len(naive_windows(layer))
        assert plan.taps == layer.weights.shape[2] * layer.weights.shape[3]


def test_baseline_closed_form():
    # 32 filters x 40 channels, 3x3, 10x10 output: ceil(32/16) * ceil(40/16) * 9 * 100 cycles.
    layer = Layer(kind="conv", weights=np.ones((32, 40, 3, 3), int),
                  activations=np.ones((40, 12, 12), int))
    assert get_design(BASELINE).cycles(layer) == 2 * 3 * 9 * 100
    # Depthwise 40 channels: ceil(40/16) diagonal tiles, 9 steps per window.
    dw = Layer(kind="conv", weights=np.ones((40, 1, 3, 3), int),
               activations=np.ones((40, 12, 12), int), groups=40)
    assert get_design(BASELINE).cycles(dw) == 3 * 9 * 100


def test_dynamic_stripes_equals_precision_potential_when_aligned():
    """With aligned 16-channel blocks, 16-filter tiles and one column, Dynamic Stripes' speedup
    over the baseline is exactly golden.stats' Ap potential (group size 16)."""
    rng = np.random.default_rng(5)
    layer = random_layer(rng, C=32, H=6, W=7, K=32, R=3, S=3, padding=(1, 1, 2, 0), stride=(1, 2))
    cycles = layer_cycles(layer)
    dynamic = get_design("dynamic-stripes").cycles(layer, columns=1)
    assert cycles[BASELINE][0] * layer.act_bits / dynamic == layer_stats(layer)["potentials"]["Ap"]
    stripes_cycles, stripes_speedup = cycles["stripes"]
    assert dynamic * 1.0 >= cycles["dynamic-stripes"][0]  # more columns cannot be slower per window
    assert stripes_cycles >= cycles["dynamic-stripes"][0]
    assert stripes_speedup == cycles[BASELINE][0] / stripes_cycles


def test_full_precision_bit_serial_matches_baseline():
    # Columns = act_bits and every group needing all act_bits: equal throughput, equal cycles
    # (16 windows = 2 full chunks of 8 columns).
    acts = np.full((16, 4, 4), 255)
    layer = Layer(kind="conv", weights=np.ones((16, 16, 1, 1), int), activations=acts)
    cycles = layer_cycles(layer)
    assert cycles["stripes"] == cycles["dynamic-stripes"] == cycles[BASELINE] == (16, 1.0)


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------

def test_registry_contents_and_order():
    assert list(DESIGNS)[:3] == [BASELINE, "stripes", "dynamic-stripes"]
    for name, design in DESIGNS.items():
        assert design.name == name and design.description


def test_register_adds_a_design_to_layer_cycles():
    layer = Layer(kind="fc", weights=np.ones((20, 40), int), activations=np.ones(40, int))
    design = Design("test-half", "half the baseline",
                    lambda layer, **options: get_design(BASELINE).cycles(layer) // 2)
    try:
        assert register(design) is design
        assert get_design("test-half") is design
        result = layer_cycles(layer)
        assert result["test-half"] == (3, 2.0)  # baseline: ceil(20/16) * ceil(40/16) = 6
        with pytest.raises(ValueError, match=r"^a design named 'test-half' is already registered$"):
            register(Design("test-half", "again", design.cycles))
    finally:
        DESIGNS.pop("test-half", None)
    assert "test-half" not in layer_cycles(layer)


def test_registry_errors():
    with pytest.raises(ValueError, match=r"^unknown design 'nope'; known: bit-parallel, "):
        get_design("nope")
    with pytest.raises(TypeError, match=r"^register\(\) takes a Design, not 'x'$"):
        register("x")
    with pytest.raises(TypeError, match=r"^Design name must be a non-empty string, not ''$"):
        Design("", "d", len)
    with pytest.raises(TypeError, match=r"^Design description must be a string, not None$"):
        Design("x", None, len)
    with pytest.raises(TypeError, match=r"^Design cycles must be callable, not 3$"):
        Design("x", "d", 3)


def test_option_errors():
    layer = Layer(kind="fc", weights=np.ones((2, 3), int), activations=np.ones(3, int))
    with pytest.raises(ValueError, match=r"^lanes must be an integer from 1 to 4096, not 0$"):
        get_design(BASELINE).cycles(layer, lanes=0)
    with pytest.raises(TypeError, match=r"^filters must be an integer from 1 to 4096, not 'a'$"):
        get_design("stripes").cycles(layer, filters="a")
    with pytest.raises(ValueError, match=r"^columns must be an integer from 1 to 4096, not -1$"):
        get_design("dynamic-stripes").cycles(layer, columns=-1)
    small = Layer(kind="fc", weights=np.ones((2, 3), int), activations=np.array([0, 5, 1]))
    with pytest.raises(ValueError, match=r"^precision must be an integer from 3 to 8, not 2$"):
        get_design("stripes").cycles(small, precision=2)
    with pytest.raises(TypeError, match=r"^trim_lsb must be True or False, not 1$"):
        get_design("dynamic-stripes").cycles(layer, trim_lsb=1)


def test_load_designs_imports_listed_modules(tmp_path, monkeypatch):
    import golden.designs

    (tmp_path / "extra_design_for_test.py").write_text(
        "from golden.designs import Design, register\n"
        "register(Design('test-extra', 'from a module', lambda layer, **options: 1))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(golden.designs, "DESIGN_MODULES", ("extra_design_for_test",))
    try:
        assert "test-extra" in golden.designs.load_designs()
        assert get_design("test-extra").cycles(None) == 1
    finally:
        DESIGNS.pop("test-extra", None)
        sys.modules.pop("extra_design_for_test", None)
