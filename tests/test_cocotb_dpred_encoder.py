"""cocotb on the emitted Verilog of the DPRed encoder (Icarus).

Each case emits the block into its own ``tmp_path``, builds it and runs
``sim/tb_dpred_encoder.py``: words bit for bit against `golden.dpred.encode_words`, edge cases and
seeded random tensors back to back, random idle cycles and backpressure, full throughput. On
Verilator the same words are checked on the tap of the loopback block
(``test_cocotb_dpred_loopback.py``, which also closes the round trip on both simulators); the
decoder file adds the decoder alone, corrupted words included, on both simulators.
"""

import os

import pytest

from hw.params import DPRedParams
from sim.runner import run_cocotb

CONFIGS = {
    "g16-w16-s-word32": DPRedParams(group_size=16, value_width=16, signed=True, word_width=32),
    "g5-w12-u-word16": DPRedParams(group_size=5, value_width=12, signed=False, word_width=16,
                                   length_width=10),
}
# Verilator checks the same words through the loopback block (test_cocotb_dpred_loopback.py).
RUNS = [("icarus", name) for name in CONFIGS]
EXPECTED = {"test_edge_cases_and_random", "test_full_throughput"}


@pytest.mark.cocotb
@pytest.mark.parametrize("simulator,config", RUNS, ids=[f"{s}-{c}" for s, c in RUNS])
def test_cocotb_dpred_encoder(simulator, config, tmp_path):
    results = run_cocotb("dpred_encoder", CONFIGS[config], simulator=simulator, build_dir=tmp_path,
                         seed=int(os.environ.get("SEED", "1")),
                         num_samples=int(os.environ.get("NUM_SAMPLES", "12")))
    outcomes = {result.name.rsplit(".", 1)[-1]: result.outcome for result in results}
    assert outcomes == {name: "passed" for name in EXPECTED}
