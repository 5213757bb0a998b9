"""cocotb testbench of the emitted FPRaker tile (``fpraker_tile`` block) on slices of real layers.

Run through `sim.runner.run_cocotb` (see ``tests/test_cocotb_fpraker_tile.py``). Environment:
the tile configuration (``PARAM_*``, `hw.params.FPRakerTileParams.to_env`), ``SEED``,
``FPRAKER_TILE_CONV`` and ``FPRAKER_TILE_FC`` (layer files, `golden.layers.save_layer`) and
``FPRAKER_TILE_POSITIONS`` (positions per filter block of the convolution). Each cocotb test runs
the passes of `golden.fpraker_tile.layer_passes` of one layer's float view through the tile
with the host protocol of the integer tiles (``start`` with ``rows`` = ``steps`` = R and
``load_weights`` on the first pass of each filter block, schedule rows, activation rows,
results) and checks:

* each pass's P results equal the pass's golden results, and every real output equals
  `golden.fpraker.fpraker_dot` of that output's pairs (`golden.fpraker_layers.layer_pairs`);
* the tile's ``cycles`` equals the golden lock-step cycles of the pass;
* without stress, the first result is offered exactly ``cycles + latency`` cycles after the last
  activation transfer; ``done`` is high and ``busy`` low after every pass.
"""

import dataclasses
import os

import numpy as np

import cocotb

from golden.fpraker import fpraker_dot
from golden.fpraker_layers import layer_pairs
from golden.fpraker_tile import layer_passes
from golden.layers import load_layer
from hw.params import FPRakerTileParams

from sim.streams import Clocking, StreamDriver, StreamMonitor, random_pattern


async def run_layer(dut, variable, *, stressed, max_positions=None):
    """Run the passes of the layer file in environment ``variable`` (module docstring)."""
    from amaranth.hdl import unsigned
    from amaranth.lib import data

    from hw.fpraker_tile import FPRakerTile
    from hw.layouts import act_row_layout, schedule_row_layout, unpack_result

    params = FPRakerTileParams.from_env(os.environ)
    seed = int(os.environ.get("SEED", "1"))
    layer = load_layer(os.environ[variable])
    jobs = list(layer_passes(layer, params, max_positions=max_positions))
    a, b = layer_pairs(layer)

    clocking = Clocking(dut)
    idle = random_pattern(0.3, seed=seed) if stressed else None
    stall = random_pattern(0.4, seed=seed + 1) if stressed else None
    weights = StreamDriver(dut, "weights", schedule_row_layout(params), clocking, idle=idle)
    acts = StreamDriver(dut, "acts", act_row_layout(params), clocking, idle=idle)
    results = StreamMonitor(dut, "results",
                            data.StructLayout({"value": unsigned(params.acc_width)}), clocking,
                            stall=stall)
    dut.start.value = 0
    clocking.start()
    await clocking.reset()
    weights.start()
    acts.start()
    latency = FPRakerTile(**dataclasses.asdict(params)).latency
    total = 0
    for index, job in enumerate(jobs):
        await clocking.next_cycle()
        busy = dut.busy.value
        assert (str(busy) != "1") if index == 0 else (int(busy) == 0)
        dut.rows.value = job.rows
        dut.steps.value = job.steps
        dut.load_weights.value = int(job.load_weights)
        dut.start.value = 1
        await clocking.next_cycle()
        dut.start.value = 0
        results.start()
        if job.load_weights:
            for word in job.schedule:
                weights.send(word)
            await weights.wait_idle(timeout_cycles=2000)
        for word in job.acts:
            acts.send(word)
        await acts.wait_idle(timeout_cycles=2000)
        first = len(results.received)
        await results.wait_for(first + params.filters, timeout_cycles=20000)
        await clocking.next_cycle()
        got = [unpack_result(params, payload.value) for payload, _ in results.received[first:]]
        assert got == job.results, f"pass {index}: results {got}, golden {job.results}"
        for value, output in zip(got, job.outputs):
            if output >= 0:
                want = int(fpraker_dot(a[output], b[output], params.pe_params).bits)
                assert value == want, f"output {output}: {value:#x}, fpraker_dot {want:#x}"
        cycles = int(dut.cycles.value)
        assert cycles == job.cycles, f"pass {index}: {cycles} cycles, golden {job.cycles}"
        if not stressed:
            gap = results.received[first][1] - acts.sent[-1][1]
            assert gap == cycles + latency, f"pass {index}: result {gap} cycles after the " \
                                            f"last activation, expected {cycles} + {latency}"
        assert int(dut.done.value) == 1 and int(dut.busy.value) == 0
        total += cycles
    assert not results.errors, results.errors
    dut._log.info("%s: %d passes, %d outputs, %d cycles = golden", layer.name, len(jobs),
                  sum(int((job.outputs >= 0).sum()) for job in jobs), total)


@cocotb.test()
async def test_conv_slice(dut):
    """The first positions of every filter block of a convolution, exact result latency."""
    await run_layer(dut, "FPRAKER_TILE_CONV", stressed=False,
                    max_positions=int(os.environ.get("FPRAKER_TILE_POSITIONS", "2")))


@cocotb.test()
async def test_fc_with_backpressure(dut):
    """A whole fully connected layer with random idle cycles and result backpressure."""
    await run_layer(dut, "FPRAKER_TILE_FC", stressed=True)
