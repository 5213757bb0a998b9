"""cocotb testbench of the emitted TCLe tile (``tcle_small`` block) on whole small layers.

Run through `sim.runner.run_cocotb` (see ``tests/test_cocotb_tcle.py``). The environment carries
the tile configuration (``PARAM_*``, `hw.params.TCLeTileParams.to_env`) and ``SEED``. Each cocotb
test builds one small random layer (`small_layer`: conv dense, conv sparse, depthwise, FC) that
fits the tile, runs every pass of `golden.tcl.passes` through the tile (schedule rows loaded when
the filter tile changes, activation rows, results), and checks:

* every pass's F x W results equal the pass's golden outputs, and the assembled layer output
  equals `golden.layers.layer_output`;
* the tile's ``cycles`` counter equals `golden.pragmatic.schedule_cycles` for every pass, and
  their sum equals the registered golden design the tile implements on the layer
  (`golden.pragmatic.tile_design`: ``tcle``, or ``pragmatic`` without zero-weight gating);
* the first result is offered exactly ``cycles + latency`` cycles after the last activation
  transfer (without backpressure), ``done`` is high and ``busy`` low at the end.

`small_layer` is plain numpy and shared with the amaranth.sim tests (``tests/test_term_serial.py``).
"""

import os

import numpy as np

import cocotb

from golden.layers import Layer, layer_output
from golden.pragmatic import schedule_cycles
from golden.tcl import passes
from hw.params import TCLeTileParams

from sim.streams import Clocking, StreamDriver, StreamMonitor, random_pattern

__all__ = ["LAYER_CASES", "small_layer"]

#: layer cases: kind, channels C, filters K, groups, weight density
LAYER_CASES = {
    "conv_dense": dict(kind="conv", C=5, K=3, groups=1, density=1.0),
    "conv_sparse": dict(kind="conv", C=6, K=5, groups=1, density=0.25),
    "depthwise": dict(kind="conv", C=5, K=5, groups=5, density=0.8),
    "fc_sparse": dict(kind="fc", C=19, K=5, groups=1, density=0.4),
}


def small_layer(rng, *, kind, act_bits, act_signed, density, C=5, K=3, groups=1):
    """Return a small random layer: conv ``[C, 4, 3]`` input, 2x2 kernel, padding (1, 0, 0, 1),
    or FC; activations with random magnitudes (a third zero, the extreme value once), weights
    in -127..127 kept with probability ``density``."""
    low = -(1 << (act_bits - 1)) if act_signed else 0
    high = (1 << (act_bits - 1)) if act_signed else (1 << act_bits)
    shape = (C,) if kind == "fc" else (C, 4, 3)
    acts = rng.integers(low, high, size=shape) >> rng.integers(0, act_bits, size=shape)
    acts[rng.random(shape) < 0.3] = 0
    acts.flat[0] = low if act_signed else high - 1
    w_shape = (K, C) if kind == "fc" else (K, C // groups, 2, 2)
    weights = rng.integers(-127, 128, size=w_shape) * (rng.random(w_shape) < density)
    if kind == "fc":
        return Layer(kind="fc", weights=weights, activations=acts, act_bits=act_bits,
                     act_signed=act_signed)
    return Layer(kind="conv", weights=weights, activations=acts, padding=(1, 0, 0, 1),
                 groups=groups, act_bits=act_bits, act_signed=act_signed)


async def run_layer(dut, case, *, stressed):
    """Run layer ``case`` through the tile and check it (module docstring)."""
    from amaranth.hdl import unsigned
    from amaranth.lib import data

    from hw.layouts import act_row_layout, pack_act_row, pack_schedule_row, \
        schedule_row_layout, unpack_result

    params = TCLeTileParams.from_env(os.environ)
    seed = int(os.environ.get("SEED", "1"))
    rng = np.random.default_rng([seed, list(LAYER_CASES).index(case)])
    layer = small_layer(rng, act_bits=params.act_width, act_signed=params.act_signed,
                        **LAYER_CASES[case])
    jobs = list(passes(layer, params))

    clocking = Clocking(dut)
    idle = random_pattern(0.3, seed=seed) if stressed else None
    stall = random_pattern(0.3, seed=seed + 1) if stressed else None
    weights = StreamDriver(dut, "weights", schedule_row_layout(params), clocking, idle=idle)
    acts = StreamDriver(dut, "acts", act_row_layout(params), clocking, idle=idle)
    results = StreamMonitor(dut, "results", data.StructLayout({"value":
                                                               unsigned(params.acc_width)}),
                            clocking, stall=stall)
    dut.start.value = 0
    clocking.start()
    await clocking.reset()
    weights.start()
    acts.start()
    import dataclasses

    from hw.term_serial import TCLeTile

    latency = TCLeTile(**dataclasses.asdict(params)).latency
    shape = layer_output(layer).shape
    out = np.zeros((shape[0], int(np.prod(shape[1:], dtype=np.int64))), dtype=np.int64)
    total = 0
    previous_tile = None
    for index, job in enumerate(jobs):
        s = job.schedule
        load = job.tile != previous_tile
        previous_tile = job.tile
        await clocking.next_cycle()
        # Icarus leaves `busy` (set only inside FSM states of the shared front end) at X until
        # the FSM first changes state, so before the first start it must merely not be 1.
        busy = dut.busy.value
        assert (str(busy) != "1") if index == 0 else (int(busy) == 0)
        dut.rows.value = s.rows
        dut.steps.value = s.steps
        dut.load_weights.value = int(load)
        dut.start.value = 1
        await clocking.next_cycle()
        dut.start.value = 0
        # Icarus leaves the outputs set only inside FSM states (results.valid, busy) at X until
        # the FSM first changes state, so the monitor starts once the first start is taken.
        results.start()
        if load:
            for r in range(s.rows):
                weights.send(pack_schedule_row(params, s.weight[r].ravel(),
                                               s.select[r].ravel(), s.skip[r]))
            await weights.wait_idle(timeout_cycles=2000)
        first_act = len(acts.sent)
        for w in range(params.windows):
            for t in range(s.steps):
                acts.send(pack_act_row(params, job.acts[w, t]))
        await acts.wait_idle(timeout_cycles=2000)
        first_result = len(results.received)
        await results.wait_for(first_result + params.filters * params.windows,
                               timeout_cycles=20000)
        await clocking.next_cycle()
        got = np.array([unpack_result(params, payload.value)
                        for payload, _ in results.received[first_result:]], dtype=np.int64)
        got = got.reshape(params.windows, params.filters).T
        assert np.array_equal(got, job.outputs), \
            f"{case} pass {job.tile}/{job.chunk}: results\n{got}\nexpected\n{job.outputs}"
        cycles = int(dut.cycles.value)
        want = schedule_cycles(s, job.acts, encoding=params.encoding,
                               act_width=params.act_width, act_signed=params.act_signed,
                               first_stage_bits=params.first_stage_bits,
                               run_ahead=params.run_ahead,
                               gate_zero_weights=params.gate_zero_weights)
        assert cycles == want, f"{case} pass {job.tile}/{job.chunk}: {cycles} cycles, " \
                               f"golden {want}"
        if not stressed:
            gap = results.received[first_result][1] - acts.sent[-1][1]
            assert gap == cycles + latency, f"{case}: result {gap} cycles after the last " \
                                            f"activation, expected {cycles} + {latency}"
        assert int(dut.done.value) == 1 and int(dut.busy.value) == 0
        assert len(acts.sent) - first_act == params.windows * s.steps
        total += cycles
        for f, k in enumerate(job.filters):
            for w, window in enumerate(job.windows):
                if k >= 0 and window >= 0:
                    out[k, window] = got[f, w]
    assert not results.errors, results.errors
    assert np.array_equal(out.reshape(shape), layer_output(layer)), f"{case}: layer output"
    from golden import designs
    import golden.pragmatic  # noqa: F401  (registers the design)
    name, options = golden.pragmatic.tile_design(params)
    golden_total = designs.get_design(name).cycles(layer, **options)
    assert total == golden_total, f"{case}: {total} cycles, golden {name} {golden_total}"
    dut._log.info("%s: %d passes, %d cycles = golden", case, len(jobs), total)


@cocotb.test()
async def test_conv_dense(dut):
    """A dense convolution, no idle cycles or backpressure (exact result latency)."""
    await run_layer(dut, "conv_dense", stressed=False)


@cocotb.test()
async def test_conv_sparse_with_backpressure(dut):
    """A sparse convolution with random idle cycles on the inputs and result backpressure."""
    await run_layer(dut, "conv_sparse", stressed=True)


@cocotb.test()
async def test_depthwise(dut):
    """A depthwise convolution (diagonal lane mapping)."""
    await run_layer(dut, "depthwise", stressed=False)


@cocotb.test()
async def test_fc_sparse(dut):
    """A sparse fully connected layer (one window)."""
    await run_layer(dut, "fc_sparse", stressed=False)
