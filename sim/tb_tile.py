"""cocotb testbench of the emitted Bit-Tactical tiles (``tclp*``, ``bit_parallel*`` and
``tcle*`` blocks).

Run through `sim.runner.run_cocotb` (tests/test_cocotb_tile.py, ``effectual sim``). Whole layers
go through the tile pass by pass exactly as `golden.tcl.passes` lowers them: for every pass the
testbench pulses ``start`` (``load_weights`` only on the first pass of each filter tile: the
schedule stays in the weight memory for the tile's other window chunks), sends the packed
schedule (`golden.tcl.Schedule.pack`) and the ``W*T`` activation rows
(`golden.tcl.pack_act_rows`), takes the ``F*W`` results and reads the tile's ``cycles``
counter once ``done`` is high. Every result must equal the pass's golden outputs and every
counter value the golden cycle model of the back end (``cycles_bit_serial``,
``cycles_bit_parallel`` or, for the TCLe tile, `golden.pragmatic.schedule_cycles`), exactly.

Environment
-----------
``PARAM_*``
    The `hw.params.TileParams` (`TileParams.to_env`); `hw.params.TCLeTileParams` for
    ``term_serial``.
``TILE_BACKEND``
    ``bit_serial`` (TCLp / Dynamic Stripes), ``bit_parallel`` or ``term_serial`` (TCLe): which
    cycle model applies.
``TILE_LAYERS``
    Layer files (`golden.layers` format), separated by ``os.pathsep``.
``TILE_MAX_WINDOWS``
    Optional: run only the first N windows of each layer.
``TILE_REPORT``
    Optional: write a JSON report there: per layer and pass the results and the measured and
    expected cycles, plus the simulated clock cycles and wall time.
``TILE_STRICT``
    ``1`` (default): fail on the first mismatch. ``0``: record mismatches in the report only.
``TILE_TRAFFIC``
    ``random``: random idle cycles on the inputs and backpressure on the results (seeded by
    ``SEED``); default: none (fastest).
"""

import json
import os
import time

import numpy as np

import cocotb

from golden.layers import load_layer
from golden.pragmatic import schedule_cycles
from golden.tcl import pack_act_rows, passes
from hw.layouts import act_row_layout, result_shape, schedule_row_layout, unpack_result
from hw.params import TCLeTileParams, TileParams
from amaranth.lib import data

from sim.streams import Clocking, StreamDriver, StreamMonitor, random_pattern

__all__ = []

BACKENDS = ("bit_serial", "bit_parallel", "term_serial")


def _config():
    backend = os.environ.get("TILE_BACKEND", "bit_serial")
    if backend not in BACKENDS:
        raise ValueError(f"TILE_BACKEND must be one of {', '.join(BACKENDS)}, not {backend!r}")
    params = (TCLeTileParams if backend == "term_serial" else TileParams).from_env(os.environ)
    layers = [p for p in os.environ.get("TILE_LAYERS", "").split(os.pathsep) if p]
    max_windows = os.environ.get("TILE_MAX_WINDOWS")
    return (params, backend, layers, int(max_windows) if max_windows else None,
            os.environ.get("TILE_REPORT"), os.environ.get("TILE_STRICT", "1") == "1",
            os.environ.get("TILE_TRAFFIC", "none"), int(os.environ.get("SEED", "1")))


class TileTestbench:
    """Clock, reset, stream driver/monitors and the pass sequence around one tile."""

    def __init__(self, dut, params, *, traffic, seed):
        self.dut = dut
        self.params = params
        self.clocking = Clocking(dut)
        idle = random_pattern(0.2, seed=seed) if traffic == "random" else None
        stall = random_pattern(0.3, seed=seed + 1) if traffic == "random" else None
        self.weights = StreamDriver(dut, "weights", schedule_row_layout(params), self.clocking,
                                    idle=idle)
        self.acts = StreamDriver(dut, "acts", act_row_layout(params), self.clocking, idle=idle)
        self.results = StreamMonitor(dut, "results", data.ArrayLayout(result_shape(params), 1),
                                     self.clocking, stall=stall)
        self.first_pass = True  # no start taken yet (see run_pass)

    async def start(self):
        self.clocking.start()
        self.dut.start.value = 0
        self.dut.rows.value = 0
        self.dut.steps.value = 0
        self.dut.load_weights.value = 0
        await self.clocking.reset()
        self.weights.start()
        self.acts.start()

    async def run_pass(self, one_pass, *, load_weights, expected_cycles):
        """Run one `golden.tcl.Pass`; return ``(results [F, W], cycles counter)``."""
        p = self.params
        dut = self.dut
        schedule = one_pass.schedule
        await self.clocking.next_cycle()
        # Icarus leaves outputs set only inside FSM states (TCLe's busy, results.valid) at X
        # until the FSM first changes state: before the first start busy must merely not be 1,
        # and the results monitor starts once the first start is taken.
        busy = dut.busy.value
        assert (str(busy) != "1") if self.first_pass else int(busy) == 0, "tile busy before start"
        dut.rows.value = schedule.rows
        dut.steps.value = one_pass.acts.shape[1]
        dut.load_weights.value = int(load_weights)
        dut.start.value = 1
        await self.clocking.next_cycle()
        dut.start.value = 0
        self.results.start()
        self.first_pass = False
        if load_weights:
            for word in schedule.pack(p):
                self.weights.send(word)
        for word in pack_act_rows(one_pass.acts, p):
            self.acts.send(word)
        before = len(self.results.received)
        quiet = expected_cycles + 4 * (schedule.rows + one_pass.acts.size) + 200
        await self.weights.wait_idle(quiet)
        await self.acts.wait_idle(quiet)
        await self.results.wait_for(before + p.filters * p.windows, quiet)
        while not int(dut.done.value):
            await self.clocking.next_cycle()
        got = [unpack_result(p, payload.as_bits())
               for payload, _ in self.results.received[before:]]
        return (np.array(got, dtype=np.int64).reshape(p.windows, p.filters).T,
                int(dut.cycles.value))


def _expected_cycles(one_pass, params, backend):
    """The golden cycle count of ``one_pass`` on the tile of ``backend``."""
    if backend == "bit_serial":
        return one_pass.cycles_bit_serial
    if backend == "bit_parallel":
        return one_pass.cycles_bit_parallel
    return schedule_cycles(one_pass.schedule, one_pass.acts, encoding=params.encoding,
                           act_width=params.act_width, act_signed=params.act_signed,
                           first_stage_bits=params.first_stage_bits, run_ahead=params.run_ahead,
                           gate_zero_weights=params.gate_zero_weights)


@cocotb.test()
async def test_layers(dut):
    """Every pass of every layer in TILE_LAYERS: results and cycle counter against golden."""
    params, backend, layers, max_windows, report_path, strict, traffic, seed = _config()
    assert layers, "TILE_LAYERS names no layer file"
    tb = TileTestbench(dut, params, traffic=traffic, seed=seed)
    await tb.start()
    report = {"params": {k: v for k, v in params.to_env().items()}, "backend": backend,
              "layers": []}
    for path in layers:
        layer = load_layer(path)
        start_cycle, start_time = tb.clocking.cycle(), time.perf_counter()
        entries = []
        loaded_tile = None
        for one_pass in passes(layer, params, max_windows=max_windows):
            expected = _expected_cycles(one_pass, params, backend)
            load = one_pass.tile != loaded_tile
            got, cycles = await tb.run_pass(one_pass, load_weights=load,
                                            expected_cycles=expected)
            loaded_tile = one_pass.tile
            outputs_ok = bool(np.array_equal(got, one_pass.outputs))
            entries.append({"tile": one_pass.tile, "chunk": one_pass.chunk,
                            "cycles": cycles, "expected_cycles": expected,
                            "cycles_bit_parallel": one_pass.cycles_bit_parallel,
                            "outputs_match": outputs_ok, "results": got.tolist()})
            if strict:
                assert outputs_ok, (f"{path} tile {one_pass.tile} chunk {one_pass.chunk}: "
                                    f"results\n{got}\nexpected\n{one_pass.outputs}")
                assert cycles == expected, (f"{path} tile {one_pass.tile} chunk "
                                            f"{one_pass.chunk}: cycle counter {cycles}, "
                                            f"golden {expected}")
        report["layers"].append({
            "layer": path, "passes": entries,
            "sim_clock_cycles": tb.clocking.cycle() - start_cycle,
            "wall_seconds": time.perf_counter() - start_time})
        dut._log.info("%s: %d passes, %d counted cycles, %d clock cycles simulated in %.1f s",
                      path, len(entries), sum(e["cycles"] for e in entries),
                      report["layers"][-1]["sim_clock_cycles"],
                      report["layers"][-1]["wall_seconds"])
    assert not tb.results.errors, tb.results.errors
    if report_path:
        with open(report_path, "w") as handle:
            json.dump(report, handle)
