"""cocotb on the emitted Verilog of the FPRaker tile (``fpraker_tile``), on Icarus and Verilator.

The default block (2 PEs x 4 lanes, 16 sets per pass) runs ``sim/tb_fpraker_tile.py`` on the
float view of two real layers: LeNet-digits ``conv1`` (16 filters, 9 pairs per output: 8 filter
blocks x the first 2 positions, B sets reused across the positions) and ``fc2`` (10 outputs of 64
pairs: 5 passes of 16 sets, with idle cycles and backpressure), image 0 of
``build/workloads/lenet-digits-8`` (``effectual import lenet-digits --bits 8 -o DIR``). Where
that directory has not been built (it needs the ``workloads`` extra), layers of the same shapes
with random 8-bit codes stand in. Every pass's results against `golden.fpraker_tile`, every
output against `golden.fpraker.fpraker_dot`, the cycle counter against the lock-step model, the
result latency exactly.

The Verilator model is compiled without optimization (``optimize=False``).
"""

import os
from pathlib import Path

import numpy as np
import pytest

from golden.layers import Layer, load_network, save_layer
from hw.blocks import BLOCKS
from sim.runner import run_cocotb

WORKLOAD = Path(__file__).resolve().parent.parent / "build" / "workloads" / "lenet-digits-8"
EXPECTED_TESTS = {"test_conv_slice", "test_fc_with_backpressure"}


def stand_in_layers():
    """LeNet-shaped conv1 and fc2 with random codes (when the workload is not built)."""
    rng = np.random.default_rng(7)
    conv = Layer(kind="conv", name="conv1", weights=rng.integers(-127, 128, (16, 1, 3, 3)),
                 activations=rng.integers(0, 256, (1, 8, 8)), padding=(1, 1, 1, 1),
                 act_bits=8, act_signed=False, weight_scale=0.004, act_scale=0.02)
    fc = Layer(kind="fc", name="fc2", weights=rng.integers(-127, 128, (10, 64)),
               activations=rng.integers(0, 256, 64) * (rng.random(64) < 0.6), act_bits=8,
               act_signed=False, weight_scale=0.003, act_scale=0.05)
    return {"conv1": conv, "fc2": fc}


@pytest.fixture(scope="module")
def layer_files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("fpraker_tile_layers")
    if (WORKLOAD / "network.json").exists():
        _, layers = load_network(WORKLOAD, images=0)
        chosen = {entry["name"]: layer for entry, _, layer in layers
                  if entry["name"] in ("conv1", "fc2")}
    else:
        chosen = stand_in_layers()
    paths = {}
    for name, layer in chosen.items():
        paths[name] = directory / f"{name}.npz"
        save_layer(paths[name], layer)
    return paths


@pytest.mark.cocotb
@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_cocotb_fpraker_tile(simulator, layer_files, tmp_path):
    params = BLOCKS["fpraker_tile"].default_params()
    results = run_cocotb("fpraker_tile", params, simulator=simulator, build_dir=tmp_path,
                         test_module="sim.tb_fpraker_tile", optimize=False,
                         seed=int(os.environ.get("SEED", "1")),
                         extra_env={"FPRAKER_TILE_CONV": str(layer_files["conv1"]),
                                    "FPRAKER_TILE_FC": str(layer_files["fc2"]),
                                    "FPRAKER_TILE_POSITIONS": "2"})
    outcomes = {result.name.rsplit(".", 1)[-1]: result.outcome for result in results}
    assert outcomes == {name: "passed" for name in EXPECTED_TESTS}
