"""cocotb testbench: one layer file on the emitted ``sysmt_array`` (`hw.sysmt.SySMTArray`).

Run by ``effectual sim --design sysmt1|sysmt2|sysmt4`` (`effectual.simulate`) through
`sim.runner.run_cocotb`. The layer's im2col GEMMs (`golden.nbsmt.layer_gemm`), restricted to
the first N output positions (row-major), go through the array tile by tile exactly as
`golden.nbsmt.array_tiles` orders them (groups in order, positions tiled over the whole GEMM),
at full rate (no idle cycles, no backpressure). The testbench only drives and records: the
caller compares the results with the golden model.

Environment
-----------
``PARAM_*``
    The `hw.params.SySMTParams` (`SySMTParams.to_env`).
``SYSMT_LAYER``
    The layer file (`golden.layers` format; activations 0..255, weights -128..127).
``SYSMT_MAX_POSITIONS``
    Optional: run only the first N output positions.
``SYSMT_REPORT``
    Where to write the JSON report: ``tiles`` (per tile: ``group``, ``positions`` and
    ``channels`` as ``[first, count]``, ``rows``: the ``rows`` x ``cols`` received sums),
    ``cycles`` (the array's cycle counter after the last tile), ``sim_clock_cycles`` (clock
    cycles from the first input transfer to the last result row) and ``wall_seconds``.
"""

import json
import os
import time

import numpy as np

import cocotb

from golden.layers import load_layer
from golden.nbsmt import array_tiles, layer_gemm
from hw.params import SySMTParams
from hw.sparq import pack_payloads, unpack_field
from hw.sysmt import sysmt_input_layout, sysmt_output_layout

from sim.streams import Clocking, StreamDriver, StreamMonitor

__all__ = ["positions_gemm"]


def positions_gemm(layer, max_positions=None):
    """Yield ``(group, acts, weights)``: each group's GEMM of ``layer`` (`golden.nbsmt.
    layer_gemm` order), ``acts`` ``[P, L]`` holding the first ``max_positions`` output positions
    (all if ``None``), concatenated over `layer_gemm`'s row chunks."""
    ow = 1 if layer.kind == "fc" else layer.output_shape[2]
    parts = {}
    weights = {}
    for group, rows, acts, group_weights in layer_gemm(layer):
        if max_positions is not None and rows.start * ow >= max_positions:
            break
        parts.setdefault(group, []).append(acts)
        weights[group] = group_weights
    for group in sorted(parts):
        acts = np.concatenate(parts[group])
        yield group, acts if max_positions is None else acts[:max_positions], weights[group]


@cocotb.test()
async def test_layer(dut):
    """Send every tile of the layer; record the result rows and the cycle counter."""
    params = SySMTParams.from_env(os.environ)
    layer = load_layer(os.environ["SYSMT_LAYER"])
    limit = os.environ.get("SYSMT_MAX_POSITIONS")
    report_path = os.environ["SYSMT_REPORT"]
    clocking = Clocking(dut)
    driver = StreamDriver(dut, "i_stream", sysmt_input_layout(params), clocking)
    monitor = StreamMonitor(dut, "o_stream", sysmt_output_layout(params), clocking)
    clocking.start()
    await clocking.reset()
    driver.start()
    monitor.start()
    started = time.perf_counter()
    tiles = []
    for group, acts, weights in positions_gemm(layer, int(limit) if limit else None):
        for positions, channels, act_steps, weight_steps, _ in array_tiles(acts, weights,
                                                                           params):
            last = np.zeros(len(act_steps), dtype=np.int64)
            last[-1] = 1
            for payload in pack_payloads(sysmt_input_layout(params),
                                         {"act": act_steps, "weight": weight_steps,
                                          "last": last}):
                driver.send(payload)
            tiles.append({"group": group, "positions": [positions.start, len(positions)],
                          "channels": [channels.start, len(channels)]})
    await driver.wait_idle()
    await monitor.wait_for(len(tiles) * params.rows)
    await clocking.cycles(3)
    assert len(monitor.received) == len(tiles) * params.rows, "extra result rows"
    assert not monitor.errors, monitor.errors
    rows = unpack_field(sysmt_output_layout(params),
                        [payload.as_bits() for payload, _ in monitor.received], "sum")
    for index, tile in enumerate(tiles):
        tile["rows"] = rows[index * params.rows:(index + 1) * params.rows].tolist()
    report = {"tiles": tiles, "cycles": int(dut.cycles.value),
              "sim_clock_cycles": monitor.received[-1][1] - driver.sent[0][1] + 1 if tiles else 0,
              "wall_seconds": time.perf_counter() - started}
    with open(report_path, "w") as handle:
        json.dump(report, handle)
    dut._log.info("%d tiles, counter %d, %d clock cycles in %.1f s", len(tiles),
                  report["cycles"], report["sim_clock_cycles"], report["wall_seconds"])
