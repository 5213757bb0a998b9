"""golden.pragmatic: the Pragmatic and TCLe cycle models against a naive per-step simulation.

The reference here is written independently of golden/pragmatic.py: plain Python loops over
passes, rows, columns, PEs and cycles, following spec section 1.5 literally (per PE: base = the
smallest pending term position, every lane whose next term lies within ``2**L1`` positions of it
consumes one, one cycle; a row takes at least one cycle), with the two-stage shifter's datapath
(lane terms shifted by ``position - base``, summed, the sum shifted by ``base``). The TCL front
end (lowering and schedule) is `golden.tcl`'s, taken through `golden.tcl.passes`; the outputs are
compared with `golden.layers.layer_output`, the dense reference. Cycles are compared for
lock-step and run-ahead columns, with and without the first-stage window, on conv, depthwise
and FC layers, dense and sparse, signed and unsigned, 8 and 16 bits, for all encodings.
"""

import math

import numpy as np
import pytest

from golden import designs, pragmatic
from golden.layers import Layer, layer_output
from golden.tcl import passes
from golden.terms import encode_terms, term_count
from hw.params import TileParams

F, N, W = 3, 4, 3


def random_layer(rng, *, kind="conv", C=5, H=5, Wd=4, K=4, R=3, S=3, stride=(1, 1),
                 padding=(1, 0, 0, 1), groups=1, act_bits=8, act_signed=False, density=0.5):
    low = -(1 << (act_bits - 1)) if act_signed else 0
    high = (1 << (act_bits - 1)) if act_signed else (1 << act_bits)
    shape = (C,) if kind == "fc" else (C, H, Wd)
    acts = rng.integers(low, high, size=shape) >> rng.integers(0, act_bits, size=shape)
    acts[rng.random(shape) < 0.3] = 0
    acts[rng.random(shape) < 0.05] = low if act_signed else high - 1
    acts = np.clip(acts, low, high - 1)
    w_shape = (K, C) if kind == "fc" else (K, C // groups, R, S)
    weights = rng.integers(-127, 128, size=w_shape) * (rng.random(w_shape) < density)
    if kind == "fc":
        return Layer(kind="fc", weights=weights, activations=acts, act_bits=act_bits,
                     act_signed=act_signed)
    return Layer(kind="conv", weights=weights, activations=acts, stride=stride, padding=padding,
                 groups=groups, act_bits=act_bits, act_signed=act_signed)


LAYERS = {
    "conv-u8-sparse": dict(act_bits=8, density=0.3),
    "conv-s8-dense": dict(act_bits=8, act_signed=True, density=1.0, stride=(2, 1)),
    "conv-u16": dict(act_bits=16, C=6, density=0.5),
    "conv-s16-sparse": dict(act_bits=16, act_signed=True, density=0.2, K=5),
    "depthwise-s8": dict(C=5, K=5, groups=5, act_bits=8, act_signed=True, density=0.7),
    "fc-u16": dict(kind="fc", C=13, K=7, act_bits=16, density=0.4),
}


def layer_for(name):
    return random_layer(np.random.default_rng(sorted(LAYERS).index(name) + 11), **LAYERS[name])


# ---------------------------------------------------------------------------------------------
# The naive reference
# ---------------------------------------------------------------------------------------------

def value_terms(value, encoding, width):
    """``[(sign, position), ...]`` of one value, LSB first."""
    sign, position, count = encode_terms(np.array([value]), encoding=encoding, width=width)
    return [(int(sign[0, k]), int(position[0, k])) for k in range(int(count[0]))]


def naive_pe(lanes, first_stage_bits):
    """Run one PE on one row: ``lanes`` is a list of ``(weight, terms)``; return
    ``(cycles, partial sum)`` following spec section 1.5 step by step."""
    pending = [(weight, list(terms)) for weight, terms in lanes if terms]
    cycles, total = 0, 0
    while any(terms for _, terms in pending):
        base = min(terms[0][1] for _, terms in pending if terms)
        tree = 0
        for weight, terms in pending:
            if terms and (first_stage_bits is None
                          or terms[0][1] <= base + 2 ** first_stage_bits - 1):
                sign, position = terms.pop(0)
                tree += sign * (weight << (position - base))  # first-stage shift
        total += tree << base                                  # shared second-stage shift
        cycles += 1
    return max(cycles, 1), total


def naive_run(layer, *, tcle, encoding, first_stage_bits, run_ahead):
    """Return ``(cycles, output)`` of the design on ``layer`` by stepping every PE."""
    params = TileParams(filters=F, lanes=N, windows=W, weight_width=8,
                        act_width=int(layer.act_bits), act_signed=bool(layer.act_signed),
                        pattern="T<2,5>" if tcle else "none", weight_rows=4096,
                        act_rows=4096)
    shape = layer_output(layer).shape
    out = np.zeros((shape[0], int(np.prod(shape[1:], dtype=np.int64))), dtype=np.int64)
    total_cycles = 0
    cache = {}
    for p in passes(layer, params):
        sched = p.schedule
        steps, lanes = sched.read_positions()
        R = sched.rows
        cost = [[0] * R for _ in range(W)]
        results = np.zeros((F, W), dtype=np.int64)
        for w in range(W):
            for r in range(R):
                worst = 0
                for f in range(F):
                    pe = []
                    for lane in range(N):
                        weight = int(sched.weight[r, f, lane])
                        if tcle:
                            t, l = int(steps[r, f, lane]), int(lanes[r, f, lane])
                            value = int(p.acts[w, t, l]) if t < sched.steps else 0
                            if weight == 0:
                                value = 0
                        else:
                            value = int(p.acts[w, int(sched.step[r]), lane])
                        key = value
                        if key not in cache:
                            cache[key] = value_terms(value, encoding, int(layer.act_bits))
                        pe.append((weight, cache[key]))
                    cycles, partial = naive_pe(pe, first_stage_bits)
                    worst = max(worst, cycles)
                    results[f, w] += partial
                cost[w][r] = worst
        # columns: lock-step, or run-ahead by A rows
        end = [0] * W
        finished = []  # finished[r]: when the last column finished row r
        for r in range(R):
            all_done = max(end)
            new_end = []
            for c in range(W):
                if run_ahead == 0:
                    start = all_done  # lock-step: every column starts a row together
                else:
                    start = end[c]
                    if r - 1 - run_ahead >= 0:
                        start = max(start, finished[r - 1 - run_ahead])
                new_end.append(start + cost[c][r])
            end = new_end
            finished.append(max(end))
        total_cycles += max(end)
        for f, k in enumerate(p.filters):
            for w, window in enumerate(p.windows):
                if k >= 0 and window >= 0:
                    out[int(k), int(window)] = results[f, w]
    return total_cycles, out.reshape(shape)


def naive_ideal(layer, *, tcle, encoding):
    """Terms of every MAC the design processes, over ``F * N * W`` slots per cycle."""
    terms = term_count(np.asarray(layer.activations), encoding=encoding,
                       width=int(layer.act_bits))
    wts = np.asarray(layer.weights)
    if layer.kind == "fc":
        macs = (wts != 0) if tcle else np.ones_like(wts, dtype=bool)
        work = int((macs * terms[None, :]).sum())
    else:
        K, Cg, R, S = wts.shape
        top, bottom, left, right = layer.padding
        C, H, Wd = layer.activations.shape
        padded = np.zeros((C, H + top + bottom, Wd + left + right), dtype=np.int64)
        padded[:, top:top + H, left:left + Wd] = terms
        _, OH, OW = layer.output_shape
        sh, sw = layer.stride
        work = 0
        for k in range(K):
            g = k // (K // layer.groups)
            for c in range(Cg):
                for r in range(R):
                    for s in range(S):
                        if tcle and wts[k, c, r, s] == 0:
                            continue
                        work += int(padded[g * Cg + c, r:r + sh * (OH - 1) + 1:sh,
                                           s:s + sw * (OW - 1) + 1:sw].sum())
    return math.ceil(work / (F * N * W))


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------

def naive_pe_cycles(masks, first_stage_bits):
    lanes = [(1, [(1, k) for k in range(32) if int(m) >> k & 1]) for m in masks]
    return naive_pe(lanes, first_stage_bits)[0]


@pytest.mark.parametrize("first_stage_bits", [0, 1, 2, 3, None])
def test_pe_cycles_against_naive(first_stage_bits):
    rng = np.random.default_rng(first_stage_bits or 7)
    for lanes in (1, 3, 16):
        masks = rng.integers(0, 1 << 17, size=(300, lanes)) & rng.integers(0, 1 << 17,
                                                                          size=(300, lanes))
        masks[rng.random(masks.shape) < 0.3] = 0
        masks[:5] = 0
        got = pragmatic.pe_cycles(masks.astype(np.uint32), first_stage_bits=first_stage_bits)
        want = [naive_pe_cycles(row, first_stage_bits) for row in masks]
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("design", ["pragmatic", "tcle"])
def test_cycles_and_output_against_naive(name, design):
    layer = layer_for(name)
    encoding = ["booth", "naf", "binary"][sorted(LAYERS).index(name) % 3]
    tcle = design == "tcle"
    model = designs.get_design(design)
    options = dict(filters=F, lanes=N, windows=W, encoding=encoding)
    for first_stage_bits, run_ahead in ((2, 0), (None, 0), (1, 2)):
        cycles, output = naive_run(layer, tcle=tcle, encoding=encoding,
                                   first_stage_bits=first_stage_bits, run_ahead=run_ahead)
        assert model.cycles(layer, first_stage_bits=first_stage_bits, run_ahead=run_ahead,
                            **options) == cycles, (first_stage_bits, run_ahead)
        np.testing.assert_array_equal(output, layer_output(layer))
    np.testing.assert_array_equal(model.output(layer, **options), layer_output(layer))
    assert model.ideal(layer, **options) == naive_ideal(layer, tcle=tcle, encoding=encoding)


@pytest.mark.parametrize("design", ["pragmatic", "tcle"])
def test_loss_breakdown_orders(design):
    layer = layer_for("conv-s16-sparse")
    options = dict(filters=F, lanes=N, windows=W, encoding="booth")
    result = pragmatic.loss_breakdown(layer, design=design, **options)
    model = designs.get_design(design)
    assert result["cycles"] == model.cycles(layer, **options)
    assert result["no_window"] == model.cycles(layer, first_stage_bits=None, **options)
    # removing a loss never costs cycles; the ideal bounds everything from below
    assert result["ideal"] <= result["no_window_no_sync"] <= result["no_sync"] \
        <= result["cycles"]
    assert result["no_window_no_sync"] <= result["no_window"] <= result["cycles"]


def test_naf_never_slower_than_binary_without_window():
    layer = layer_for("conv-u16")
    cycles = {e: pragmatic.pragmatic_cycles(layer, filters=F, lanes=N, windows=W, encoding=e,
                                            first_stage_bits=None)
              for e in ("naf", "booth", "binary")}
    assert cycles["naf"] <= cycles["booth"] <= cycles["binary"]


def test_designs_are_registered():
    assert designs.DESIGNS["pragmatic"].cycles is pragmatic.pragmatic_cycles
    assert designs.DESIGNS["tcle"].cycles is pragmatic.tcle_cycles


@pytest.mark.parametrize("function", [pragmatic.pragmatic_cycles, pragmatic.tcle_cycles,
                                      pragmatic.pragmatic_ideal, pragmatic.tcle_ideal])
@pytest.mark.parametrize("kwargs, error, message", [
    ({"encoding": "csd"}, ValueError, r"^encoding must be one of booth, naf, binary, not 'csd'$"),
    ({"first_stage_bits": 5}, ValueError,
     r"^first_stage_bits must be an integer from 0 to 4, not 5$"),
    ({"first_stage_bits": 1.5}, TypeError,
     r"^first_stage_bits must be an integer from 0 to 4, not 1\.5$"),
    ({"run_ahead": -1}, ValueError, r"^run_ahead must be an integer from 0 to 65536, not -1$"),
    ({"windows": 0}, ValueError, r"^windows must be an integer from 1 to 4096, not 0$"),
])
def test_bad_options(function, kwargs, error, message):
    with pytest.raises(error, match=message):
        function(layer_for("fc-u16"), **kwargs)


def test_bad_pattern_and_design():
    with pytest.raises(ValueError, match=r"^pattern must be"):
        pragmatic.tcle_cycles(layer_for("fc-u16"), pattern="X")
    with pytest.raises(ValueError, match=r"^design must be 'pragmatic' or 'tcle', not 'x'$"):
        pragmatic.loss_breakdown(layer_for("fc-u16"), design="x")
