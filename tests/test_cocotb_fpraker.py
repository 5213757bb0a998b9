"""cocotb on the emitted Verilog of the FPRaker blocks, on Icarus and on Verilator.

* ``fp_term_encoder``: all 65,536 bfloat16 patterns back to back (``SWEEP=all``, about 225,000
  cycles per simulator; the environment variable ``FPRAKER_SWEEP=relevant`` shortens it to the
  1,280 patterns that differ in what the encoder reads, for quick local runs), random traffic
  with idle cycles and backpressure, and reset (``sim/tb_fp_term_encoder.py``).
* ``fpraker_pe`` and ``bf16_mac``: special values, random dot products with idle cycles and
  backpressure, two 150-set accumulations, cycle counts and set spacing against the golden cycle
  model, and reset (``sim/tb_fpraker_pe.py``, ``sim/tb_bf16_mac.py``); results bit-identical to
  `golden.fpraker`.
"""

import os

import pytest

from hw.params import BF16MACParams, FPRakerParams, FPTermEncoderParams
from sim.runner import run_cocotb

ENCODER_TESTS = {"test_sweep_full_throughput", "test_random_traffic", "test_reset_drops_a_value"}
PE_TESTS = {"test_special_values", "test_random_traffic", "test_long_accumulation",
            "test_cycles_equal_the_cycle_model", "test_reset_clears_the_accumulator"}

CONFIGS = {
    "encoder-naf": ("fp_term_encoder", FPTermEncoderParams(), ENCODER_TESTS),
    "pe-n8-w28-naf": ("fpraker_pe", FPRakerParams(), PE_TESTS),
    "pe-n3-w20-booth": ("fpraker_pe", FPRakerParams(lanes=3, acc_width=20, encoding="booth"),
                        PE_TESTS),
    "mac-n8-w28": ("bf16_mac", BF16MACParams(), PE_TESTS),
}


#: (simulator, config) runs: every config on Icarus; on Verilator, whose C++ build of a PE takes
#: most of a minute, the encoder and the default PE and MAC (the small Booth PE adds coverage of
#: the encoding, which does not depend on the simulator)
RUNS = [("icarus", config) for config in CONFIGS] + [
    ("verilator", config) for config in ("encoder-naf", "pe-n8-w28-naf", "mac-n8-w28")]


@pytest.mark.cocotb
@pytest.mark.parametrize("simulator,config", RUNS, ids=[f"{s}-{c}" for s, c in RUNS])
def test_cocotb_fpraker(simulator, config, tmp_path):
    block, params, expected = CONFIGS[config]
    # optimize=False: the Verilator model compiles at -O0, about three times faster, which
    # matters more here than the simulation speed
    results = run_cocotb(block, params, simulator=simulator, build_dir=tmp_path, optimize=False,
                         seed=int(os.environ.get("SEED", "1")),
                         num_samples=int(os.environ.get("NUM_SAMPLES", "60")),
                         extra_env={"SWEEP": os.environ.get("FPRAKER_SWEEP", "all")})
    outcomes = {result.name.rsplit(".", 1)[-1]: result.outcome for result in results}
    assert outcomes == {name: "passed" for name in expected}
