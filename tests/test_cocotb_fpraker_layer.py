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


@pytest.mark.cocotb
def test_effectual_sim_command(layer_file, tmp_path, capsys):
    import json

    from effectual.cli import main

    out = tmp_path / "y.npy"
    argv = ["sim", "--design", "fpraker", "--layer", str(layer_file), "--sim", "icarus",
            "--outputs", "5", "--json", "--out", str(out), "--build-dir", str(tmp_path / "b")]
    assert main(argv) == 0
    results = json.loads(capsys.readouterr().out)
    assert results["outputs"] == 5 and results["results_match"] and results["cycles_match"]
    a, b = layer_pairs(load_layer(layer_file), outputs=5)
    saved = np.load(out)
    assert saved.dtype == np.float32
    assert saved.view(np.uint32).tolist() == [int(fpraker_dot(a[i], b[i]).bits)
                                              for i in range(5)]


@pytest.mark.parametrize("extra,message", [
    (["--design", "fpraker", "--tile", "4x4x1"],
     "--tile does not apply to fpraker (use --outputs)"),
    (["--design", "bf16mac", "--windows", "3"],
     "--windows does not apply to bf16mac (use --outputs)"),
    (["--design", "fpraker", "--sim", "xsim"], "--sim must be icarus or verilator, not 'xsim'"),
    (["--design", "tclp", "--outputs", "3"],
     "--outputs applies to fpraker and bf16mac only, not tclp"),
])
def test_effectual_sim_errors(extra, message, layer_file, capsys):
    from effectual.cli import main

    argv = ["sim", "--layer", str(layer_file)] + extra
    if "--sim" not in extra:
        argv += ["--sim", "icarus"]
    assert main(argv) == 2
    assert capsys.readouterr().err == f"effectual sim: error: {message}\n"
