# amaranth: UnusedElaboratable=no
"""hw.term_serial: the term-serial inner-product unit in amaranth.sim against golden.

Rows of random activations (edge values included: zero rows, the most negative value, the
maximum) and weights go through `TermSerialInnerProduct` for every encoding, both signs, 8 and
16 bits, first-stage windows L1 = 0..3, with and without zero-weight gating. Checked:

* every result equals the sum of `golden.terms.term_serial_dot` over the rows of its dot
  product (and `numpy.dot`);
* every row takes exactly `golden.pragmatic.pe_cycles` cycles: with a source that never idles,
  row ``k + 1`` is accepted exactly ``c_k`` cycles after row ``k``, and the ``cycles`` counter
  ends at the sum;
* random idle cycles and backpressure change nothing but the timing.
"""

import numpy as np
import pytest

from golden.pragmatic import pe_cycles, term_masks
from golden.terms import term_serial_dot
from hw.term_serial import TermSerialInnerProduct, ipu_row_layout
from sim.streams import random_pattern

from helpers import run_simulation, sim_top, stream_receive, stream_send


def random_rows(rng, count, *, lanes, act_width, act_signed, weight_width):
    low = -(1 << (act_width - 1)) if act_signed else 0
    high = (1 << (act_width - 1)) - 1 if act_signed else (1 << act_width) - 1
    acts = rng.integers(low, high + 1, size=(count, lanes)) >> rng.integers(
        0, act_width, size=(count, lanes))
    acts[rng.random(acts.shape) < 0.2] = 0
    acts[rng.random(acts.shape) < 0.05] = low
    acts[rng.random(acts.shape) < 0.05] = high
    acts[0] = 0
    acts[1] = low if act_signed else high
    wlow, whigh = -(1 << (weight_width - 1)), (1 << (weight_width - 1)) - 1
    weights = rng.integers(wlow, whigh + 1, size=(count, lanes))
    weights[rng.random(weights.shape) < 0.3] = 0
    weights[2] = wlow
    last = rng.random(count) < 0.4
    last[-1] = True
    return acts.astype(np.int64), weights.astype(np.int64), last


def simulate(dut_kwargs, acts, weights, last, *, idle=None, stall=None):
    dut = TermSerialInnerProduct(**dut_kwargs)
    top = sim_top(dut)
    layout = ipu_row_layout(lanes=dut_kwargs["lanes"], weight_width=dut_kwargs["weight_width"],
                            act_width=dut_kwargs["act_width"],
                            act_signed=dut_kwargs["act_signed"])
    payloads = [layout.const({"acts": a.tolist(), "weights": w.tolist(), "last": int(z)})
                .as_bits() for a, w, z in zip(acts, weights, last)]
    result = {}

    async def source(ctx):
        result["in"] = await stream_send(ctx, dut.i_stream, payloads, cycle=top.cycle, idle=idle)

    async def sink(ctx):
        result["out"] = await stream_receive(ctx, dut.o_stream, int(last.sum()),
                                             cycle=top.cycle, stall=stall, timeout=200)
        result["cycles"] = ctx.get(dut.cycles)

    run_simulation(top, source, sink, vcd_name="term_serial")
    width = dut_kwargs["acc_width"]
    sign = 1 << (width - 1)
    out = [v if v < 0 else (v ^ sign) - sign for v in result["out"][0]]  # raw bits or signed
    return np.array(out, dtype=np.int64), np.array(result["in"]), result["cycles"]


def expected(kwargs, acts, weights, last):
    """Per dot product the golden result; per row the golden cycles."""
    per_row = term_serial_dot(acts, weights, encoding=kwargs["encoding"],
                              width=kwargs["act_width"])
    groups = np.cumsum(np.concatenate([[0], last[:-1]]))
    results = np.bincount(groups, weights=per_row).astype(np.int64)
    np.testing.assert_array_equal(results, np.bincount(
        groups, weights=(acts * weights).sum(axis=1)).astype(np.int64))
    masks = term_masks(acts, encoding=kwargs["encoding"], width=kwargs["act_width"],
                       signed=kwargs["act_signed"])
    if kwargs["gate_zero_weights"]:
        masks = np.where(weights != 0, masks, 0)
    return results, pe_cycles(masks, first_stage_bits=kwargs["first_stage_bits"])


CONFIGS = [
    dict(lanes=4, weight_width=8, act_width=8, act_signed=False, encoding="booth",
         first_stage_bits=2, gate_zero_weights=False, acc_width=32),
    dict(lanes=4, weight_width=8, act_width=8, act_signed=True, encoding="naf",
         first_stage_bits=1, gate_zero_weights=True, acc_width=32),
    dict(lanes=3, weight_width=16, act_width=16, act_signed=True, encoding="booth",
         first_stage_bits=2, gate_zero_weights=True, acc_width=48),
    dict(lanes=5, weight_width=16, act_width=16, act_signed=False, encoding="naf",
         first_stage_bits=0, gate_zero_weights=False, acc_width=48),
    dict(lanes=2, weight_width=4, act_width=16, act_signed=True, encoding="binary",
         first_stage_bits=3, gate_zero_weights=False, acc_width=40),
    dict(lanes=16, weight_width=16, act_width=16, act_signed=True, encoding="booth",
         first_stage_bits=2, gate_zero_weights=False, acc_width=48),
]


@pytest.mark.parametrize("kwargs", CONFIGS, ids=lambda k: (
    f"n{k['lanes']}-a{k['act_width']}{'s' if k['act_signed'] else 'u'}-{k['encoding']}"
    f"-L{k['first_stage_bits']}{'-gate' if k['gate_zero_weights'] else ''}"))
def test_results_and_cycles(kwargs):
    rng = np.random.default_rng(kwargs["lanes"] * 7 + kwargs["first_stage_bits"])
    acts, weights, last = random_rows(rng, 60, lanes=kwargs["lanes"],
                                      act_width=kwargs["act_width"],
                                      act_signed=kwargs["act_signed"],
                                      weight_width=kwargs["weight_width"])
    want, row_cycles = expected(kwargs, acts, weights, last)
    got, accepted, cycles = simulate(kwargs, acts, weights, last)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.diff(accepted), row_cycles[:-1])
    assert cycles == int(row_cycles.sum())
    # the same rows with idle cycles and backpressure: same results
    got, _, cycles = simulate(kwargs, acts, weights, last, idle=random_pattern(0.3, seed=1),
                              stall=random_pattern(0.5, seed=2))
    np.testing.assert_array_equal(got, want)
    assert cycles == int(row_cycles.sum())


@pytest.mark.parametrize("kwargs, error, message", [
    ({"lanes": 0}, ValueError, r"^lanes must be an integer from 1 to 64, not 0$"),
    ({"weight_width": 17}, ValueError, r"^weight_width must be an integer from 2 to 16, not 17$"),
    ({"act_width": 1}, ValueError, r"^act_width must be an integer from 2 to 16, not 1$"),
    ({"act_signed": None}, TypeError, r"^act_signed must be True or False, not None$"),
    ({"encoding": "csd"}, ValueError, r"^encoding must be one of naf, booth, binary, not 'csd'$"),
    ({"encoding": 1}, TypeError, r"^encoding must be one of naf, booth, binary, not 1$"),
    ({"first_stage_bits": 4}, ValueError,
     r"^first_stage_bits must be an integer from 0 to 3, not 4$"),
    ({"gate_zero_weights": 0}, TypeError, r"^gate_zero_weights must be True or False, not 0$"),
    ({"acc_width": 65}, ValueError, r"^acc_width must be an integer from 8 to 64, not 65$"),
])
def test_bad_parameters(kwargs, error, message):
    with pytest.raises(error, match=message):
        TermSerialInnerProduct(**kwargs)


# ---------------------------------------------------------------------------------------------
# The TCLe tile on whole small layers (amaranth.sim)
# ---------------------------------------------------------------------------------------------

import dataclasses  # noqa: E402

from golden.layers import layer_output  # noqa: E402
from golden.pragmatic import schedule_cycles  # noqa: E402
from golden.tcl import passes  # noqa: E402
from hw.layouts import pack_act_row, pack_schedule_row, unpack_result  # noqa: E402
from hw.params import TCLeTileParams  # noqa: E402
from hw.term_serial import TCLeTile  # noqa: E402
from sim.tb_tcle import small_layer  # noqa: E402  (plain numpy, shared with sim.tb_tcle)


def run_tcle_tile(params, jobs, *, idle=None, stall=None):
    """Run ``jobs`` (``(Pass, load_weights)``) through a TCLe tile; per pass return
    ``(outputs [F, W], cycles, first result - last activation cycle)``."""
    dut = TCLeTile(**dataclasses.asdict(params))
    top = sim_top(dut)
    results = []

    async def testbench(ctx):
        for job, load in jobs:
            s = job.schedule
            ctx.set(dut.rows, s.rows)
            ctx.set(dut.steps, s.steps)
            ctx.set(dut.load_weights, load)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            if load:
                words = [pack_schedule_row(params, s.weight[r].ravel(), s.select[r].ravel(),
                                           s.skip[r]) for r in range(s.rows)]
                await stream_send(ctx, dut.weights, words, cycle=top.cycle, idle=idle)
            words = [pack_act_row(params, job.acts[w, t]) for w in range(params.windows)
                     for t in range(s.steps)]
            act_cycles = await stream_send(ctx, dut.acts, words, cycle=top.cycle, idle=idle)
            payloads, result_cycles = await stream_receive(
                ctx, dut.results, params.filters * params.windows, cycle=top.cycle,
                stall=stall, timeout=100000)
            got = np.array([unpack_result(params, bits) for bits in payloads], dtype=np.int64)
            results.append((got.reshape(params.windows, params.filters).T, ctx.get(dut.cycles),
                            result_cycles[0] - act_cycles[-1]))
            assert ctx.get(dut.done) and not ctx.get(dut.busy)

    run_simulation(top, testbench, vcd_name="tcle-tile")
    return results, dut


TCLE_CASES = {
    "conv-u8-booth-sparse": (TCLeTileParams(filters=2, lanes=4, windows=2, weight_width=8,
                                            act_width=8, act_signed=False, encoding="booth",
                                            weight_rows=32, act_rows=32),
                             dict(kind="conv", density=0.3)),
    "conv-s8-naf-dense": (TCLeTileParams(filters=2, lanes=4, windows=2, weight_width=8,
                                         act_width=8, act_signed=True, encoding="naf",
                                         first_stage_bits=1, weight_rows=32, act_rows=32),
                          dict(kind="conv", density=1.0)),
    "depthwise-s16-booth": (TCLeTileParams(filters=3, lanes=3, windows=3, weight_width=8,
                                           act_width=16, act_signed=True, encoding="booth",
                                           pattern="L<2,1>", weight_rows=32, act_rows=32),
                            dict(kind="conv", C=6, K=6, groups=6, density=0.7)),
    "fc-u16-naf-sparse": (TCLeTileParams(filters=3, lanes=4, windows=1, weight_width=8,
                                         act_width=16, act_signed=False, encoding="naf",
                                         weight_rows=32, act_rows=32),
                          dict(kind="fc", C=19, K=4, density=0.4)),
    "conv-u8-booth-run-ahead": (TCLeTileParams(filters=2, lanes=4, windows=3, weight_width=8,
                                               act_width=8, act_signed=False, encoding="booth",
                                               run_ahead=2, weight_rows=32, act_rows=32),
                                dict(kind="conv", C=7, K=4, density=0.5)),
    "conv-s8-naf-run-ahead-1": (TCLeTileParams(filters=2, lanes=3, windows=2, weight_width=8,
                                               act_width=8, act_signed=True, encoding="naf",
                                               pattern="L<2,1>", run_ahead=1, weight_rows=32,
                                               act_rows=32),
                                dict(kind="conv", C=5, K=3, density=0.6)),
    "pragmatic-s8-booth": (TCLeTileParams(filters=2, lanes=4, windows=2, weight_width=8,
                                          act_width=8, act_signed=True, encoding="booth",
                                          pattern="none", gate_zero_weights=False,
                                          weight_rows=32, act_rows=32),
                           dict(kind="conv", density=0.4)),
}


@pytest.mark.parametrize("case", list(TCLE_CASES))
def test_tcle_tile_whole_layer(case):
    params, layer_kwargs = TCLE_CASES[case]
    rng = np.random.default_rng(list(TCLE_CASES).index(case) + 3)
    layer = small_layer(rng, act_bits=params.act_width, act_signed=params.act_signed,
                        **layer_kwargs)
    jobs = list(passes(layer, params))
    loads = [1] + [int(a.tile != b.tile) for a, b in zip(jobs, jobs[1:])]
    stressed = case.startswith("conv-u8")
    results, dut = run_tcle_tile(params, list(zip(jobs, loads)),
                                 idle=random_pattern(0.3, seed=5) if stressed else None,
                                 stall=random_pattern(0.3, seed=6) if stressed else None)
    out = np.zeros(layer_output(layer).reshape(len(layer.weights), -1).shape, dtype=np.int64)
    total = 0
    for job, (got, cycles, gap) in zip(jobs, results):
        np.testing.assert_array_equal(got, job.outputs)
        want = schedule_cycles(job.schedule, job.acts, encoding=params.encoding,
                               act_width=params.act_width, act_signed=params.act_signed,
                               first_stage_bits=params.first_stage_bits,
                               run_ahead=params.run_ahead,
                               gate_zero_weights=params.gate_zero_weights)
        assert cycles == want
        if not stressed:
            assert gap == cycles + dut.latency
        total += cycles
        for f, k in enumerate(job.filters):
            for w, window in enumerate(job.windows):
                if k >= 0 and window >= 0:
                    out[k, window] = got[f, w]
    np.testing.assert_array_equal(out.reshape(layer_output(layer).shape), layer_output(layer))
    # the whole layer's cycles equal the registered golden design's (tcle or pragmatic)
    from golden import designs
    from golden.pragmatic import tile_design
    name, options = tile_design(params)
    assert name == ("tcle" if params.gate_zero_weights else "pragmatic")
    assert total == designs.get_design(name).cycles(layer, **options)
    if params.run_ahead:  # the case exercises run-ahead: lock-step would take longer
        assert total > 0 and total < designs.get_design(name).cycles(
            layer, **{**options, "run_ahead": 0})


@pytest.mark.parametrize("kwargs, error, message", [
    ({"encoding": "csd"}, ValueError, r"^encoding must be one of naf, booth, binary, not 'csd'$"),
    ({"encoding": 3}, TypeError, r"^encoding must be one of naf, booth, binary, not 3$"),
    ({"first_stage_bits": 4}, ValueError,
     r"^first_stage_bits must be an integer from 0 to 3, not 4$"),
    ({"first_stage_bits": "2"}, TypeError,
     r"^first_stage_bits must be an integer from 0 to 3, not '2'$"),
    ({"filters": 0}, ValueError, r"^filters must be an integer from 1 to 64, not 0$"),
    ({"run_ahead": 9}, ValueError, r"^run_ahead must be an integer from 0 to 8, not 9$"),
    ({"run_ahead": 1.0}, TypeError, r"^run_ahead must be an integer from 0 to 8, not 1.0$"),
    ({"gate_zero_weights": 1}, TypeError, r"^gate_zero_weights must be True or False, not 1$"),
    ({"gate_zero_weights": False}, ValueError,
     r"^gate_zero_weights=False \(the Pragmatic tile\) needs pattern 'none', not 'T<2,5>'$"),
])
def test_tcle_tile_bad_parameters(kwargs, error, message):
    with pytest.raises(error, match=message):
        TCLeTile(**kwargs)
    with pytest.raises(error, match=message):
        TCLeTileParams(**kwargs)


def test_tcle_tile_params_round_trip_and_ports():
    params = TCLeTileParams(filters=2, lanes=4, windows=2, weight_width=6, act_width=5,
                            encoding="naf", first_stage_bits=1, run_ahead=3, pattern="none",
                            gate_zero_weights=False, weight_rows=8, act_rows=8)
    assert TCLeTileParams.from_env(params.to_env()) == params
    tile = TCLeTile(**dataclasses.asdict(params))
    assert tile.params == params and tile.latency == 5
    assert set(tile.signature.members) == {"weights", "acts", "results", "start", "rows",
                                           "steps", "load_weights", "busy", "done", "cycles"}


@pytest.mark.parametrize("options", [dict(run_ahead=2),
                                     dict(pattern="none", gate_zero_weights=False)],
                         ids=["run-ahead-2", "pragmatic"])
def test_tcle_tile_variants_lint_clean(options, tmp_path):
    """The run-ahead and Pragmatic variants of ``tcle_small`` (the lint sweep of
    tests/test_lint.py covers the default) are Verilator -Wall clean with the waivers."""
    from effectual.hdl import write_block
    from effectual.lint import lint_file
    from hw.blocks import BLOCKS

    params = dataclasses.replace(BLOCKS["tcle_small"].default, **options)
    path = tmp_path / "tcle_tile_small.v"
    write_block("tcle_small", params, path)
    ok, output = lint_file(path)
    assert ok, output
