"""cocotb testbench of the emitted ``sysmt_array`` (`hw.sysmt.SySMTArray`) on whole layers.

Run through `sim.runner.run_cocotb` (see ``tests/test_cocotb_sysmt.py``). Environment:
``PARAM_*`` (`hw.params.SySMTParams.to_env`), ``SEED``. Each test runs the small layers of
`small_layers` (dense and sparse conv, grouped conv, fc) through the array tile by tile
(`golden.nbsmt.array_tiles` over `golden.nbsmt.layer_gemm`), reassembles the layer output
from the received rows and compares it with `golden.nbsmt.nbsmt_layer_output`, and compares
the array's ``cycles`` counter with `golden.nbsmt.layer_cycles`.

* `test_layers_full_rate`: no idle cycles, no backpressure: additionally the wall-clock
  cycles of every layer equal the counter (and the golden model).
* `test_layers_with_flow_control`: random idle cycles and backpressure; the counter still
  equals the golden model (it counts busy cycles only).
"""

import os

import numpy as np

import cocotb

from golden.layers import Layer
from golden.nbsmt import array_tiles, layer_cycles, layer_gemm, nbsmt_layer_output
from hw.params import SySMTParams
from hw.sparq import pack_payloads, unpack_field
from hw.sysmt import sysmt_input_layout, sysmt_output_layout

from sim.streams import Clocking, StreamDriver, StreamMonitor, random_pattern

__all__ = ["small_layers", "layer_payloads", "assemble_output"]


def small_layers(seed):
    """Return small unsigned-activation layers: dense conv, sparse conv (activations and
    weights), grouped strided conv, fc."""
    rng = np.random.default_rng(seed)

    def acts(shape, zeros):
        values = rng.integers(1, 256, size=shape)
        values[rng.random(shape) < zeros] = 0
        return values

    def weights(shape, zeros):
        values = rng.integers(-128, 128, size=shape)
        values[rng.random(shape) < zeros] = 0
        return values

    return [
        Layer(kind="conv", name="dense", weights=weights((3, 3, 3, 3), 0.0),
              activations=acts((3, 4, 4), 0.0), padding=(1, 1, 1, 1)),
        Layer(kind="conv", name="sparse", weights=weights((4, 4, 3, 3), 0.4),
              activations=acts((4, 4, 4), 0.6), padding=(1, 0, 0, 1)),
        Layer(kind="conv", name="grouped", weights=weights((4, 2, 2, 2), 0.2),
              activations=acts((4, 5, 5), 0.3), stride=(2, 2), groups=2),
        Layer(kind="fc", name="fc", weights=weights((5, 13), 0.2), activations=acts(13, 0.3)),
    ]


def layer_payloads(layer, params):
    """Return ``(payload bits, tiles)`` of ``layer`` on the array, in the order it runs them.

    ``tiles`` lists ``(group, first_position, positions, channels, expected)`` per tile (see
    `golden.nbsmt.array_tiles`); positions count from the first output row of the chunk.
    """
    layout = sysmt_input_layout(params)
    bits, tiles = [], []
    ow = 1 if layer.kind == "fc" else layer.output_shape[2]
    for group, rows, acts, weights in layer_gemm(layer):
        for positions, channels, act_steps, weight_steps, expected in array_tiles(
                acts, weights, params):
            last = np.zeros(len(act_steps), dtype=np.int64)
            last[-1] = 1
            bits += pack_payloads(layout, {"act": act_steps, "weight": weight_steps,
                                           "last": last})
            tiles.append((group, rows.start * ow, positions, channels, expected))
    return bits, tiles


def assemble_output(layer, params, tiles, row_bits):
    """Return the layer output (`nbsmt_layer_output`'s shape) from the received rows.

    Also checks every tile against its expected rows (padding rows and columns included).
    """
    layout = sysmt_output_layout(params)
    rows = unpack_field(layout, row_bits, "sum")
    kg = layer.out_channels // layer.groups
    positions_total = 1 if layer.kind == "fc" else int(np.prod(layer.output_shape[1:]))
    out = np.zeros((layer.groups, kg, positions_total), dtype=np.int64)
    for index, (group, first, positions, channels, expected) in enumerate(tiles):
        block = rows[index * params.rows:(index + 1) * params.rows]
        assert np.array_equal(block, expected), f"tile {index}: {block} != {expected}"
        for i, position in enumerate(positions):
            for j, channel in enumerate(channels):
                out[group, channel, first + position] = block[i, j]
    return out.reshape(layer.output_shape)


def _config():
    return SySMTParams.from_env(os.environ), int(os.environ.get("SEED", "1"))


async def _run(dut, params, seed, *, flow_control):
    clocking = Clocking(dut)
    idle = random_pattern(0.3, seed=seed * 2 + 1) if flow_control else None
    stall = random_pattern(0.3, seed=seed * 2 + 2) if flow_control else None
    driver = StreamDriver(dut, "i_stream", sysmt_input_layout(params), clocking, idle=idle)
    monitor = StreamMonitor(dut, "o_stream", sysmt_output_layout(params), clocking,
                            stall=stall)
    clocking.start()
    await clocking.reset()
    driver.start()
    monitor.start()
    for layer in small_layers(seed):
        bits, tiles = layer_payloads(layer, params)
        counter_before = int(dut.cycles.value)
        received_before = len(monitor.received)
        sent_before = len(driver.sent)
        for payload in bits:
            driver.send(payload)
        await driver.wait_idle()
        await monitor.wait_for(received_before + len(tiles) * params.rows)
        await clocking.cycles(3)
        received = monitor.received[received_before:]
        assert len(received) == len(tiles) * params.rows, "extra result rows"
        out = assemble_output(layer, params, tiles,
                              [payload.as_bits() for payload, _ in received])
        expected, _ = nbsmt_layer_output(layer, params)
        assert np.array_equal(out, expected), f"layer {layer.name}: output differs"
        busy = int(dut.cycles.value) - counter_before
        assert busy == layer_cycles(layer, params), \
            f"layer {layer.name}: counter {busy}, model {layer_cycles(layer, params)}"
        if not flow_control:
            first_in = driver.sent[sent_before][1]
            last_out = received[-1][1]
            assert last_out - first_in + 1 == busy, \
                f"layer {layer.name}: wall clock {last_out - first_in + 1}, counter {busy}"
        dut._log.info("layer %s: %d cycles, output equal to golden", layer.name, busy)
    assert not monitor.errors, monitor.errors


@cocotb.test()
async def test_layers_full_rate(dut):
    """Every layer at full rate: outputs, counter and wall clock against the golden model."""
    params, seed = _config()
    await _run(dut, params, seed, flow_control=False)


@cocotb.test()
async def test_layers_with_flow_control(dut):
    """Every layer with random idle cycles and backpressure: outputs and counter."""
    params, seed = _config()
    await _run(dut, params, seed + 1, flow_control=True)
