"""``effectual sim --design fpraker|bf16mac``: a layer's float view through the emitted
``fpraker_pe`` / ``bf16_mac`` under cocotb (``sim/tb_fpraker_layer.py``), on Icarus and on
Verilator: results bit-identical to golden, PE cycle counters equal to the cycle model."""

import numpy as np
import pytest

from effectual.sim_fpraker import simulate_float_layer
from golden.fpraker import bf16_mac_dot, fpraker_dot
from golden.fpraker_layers import layer_pairs, pe_cycles
from golden.layers import Layer, load_layer, save_layer


@pytest.fixture(scope="module")
def layer_file(tmp_path_factory):
    rng = np.random.default_rng(5)
    weights = rng.integers(-127, 128, (3, 5, 3, 3)) * (rng.random((3, 5, 3, 3)) < 0.8)
    acts = rng.integers(0, 256, (5, 4, 4)) >> rng.integers(0, 8, (5, 4, 4))
    layer = Layer(kind="conv", name="sim", weights=weights, activations=acts,
                  padding=(1, 1, 1, 1), weight_scale=rng.uniform(0.001, 0.02, 3),
                  act_scale=0.03, act_zero_point=2)
    path = tmp_path_factory.mktemp("fpsim") / "sim.npz"
    save_layer(path, layer)
    return path


#: (design, simulator): both designs on Icarus, FPRaker on Verilator (its build takes ~30 s)
RUNS = [("fpraker", "icarus"), ("bf16mac", "icarus"), ("fpraker", "verilator")]


@pytest.mark.cocotb
@pytest.mark.parametrize("design,simulator", RUNS, ids=[f"{d}-{s}" for d, s in RUNS])
def test_sim_float_layer(design, simulator, layer_file, tmp_path):
    outputs = 9
    results = simulate_float_layer(layer_file, design, simulator, outputs=outputs, pes=4,
                                   build_dir=tmp_path)
    a, b = layer_pairs(load_layer(layer_file), outputs=outputs)
    run = fpraker_dot if design == "fpraker" else bf16_mac_dot
    per_output = [run(a[i], b[i]) for i in range(outputs)]   # one golden call per output
    assert results["output"] == [int(p.bits) for p in per_output]
    rtl_cycles = np.load(tmp_path / "results.npy")[:, 1]
    assert rtl_cycles.tolist() == [int(p.cycles) for p in per_output]
    assert results["results_match"] and results["cycles_match"]
    assert results["cycles"] == results["model_cycles"] == pe_cycles(rtl_cycles, 4)
    if design == "fpraker":
        assert max(rtl_cycles) > -(-a.shape[1] // 8)  # some set needed more than one cycle
