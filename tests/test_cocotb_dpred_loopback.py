"""cocotb on the emitted Verilog of ``dpred_loopback`` (encoder -> decoder), Icarus and Verilator.

``sim/tb_dpred_loopback.py``: the decoder's output equals every input tensor exactly (edge cases
and seeded random tensors back to back, random idle cycles on the input and backpressure on the
output) and the words tapped between the blocks equal `golden.dpred.encode_words` bit for bit;
a stall-free run delivers one value per cycle. This is the round trip and the bit-exact
encoder check on both simulators; the per-block files (``test_cocotb_dpred_encoder.py``,
``test_cocotb_dpred_decoder.py``, Icarus) add a second configuration and the corrupted-word
tests.
"""

import os

import pytest

from hw.params import DPRedParams
from sim.runner import run_cocotb

CONFIG = DPRedParams(group_size=16, value_width=16, signed=True, word_width=32)
EXPECTED = {"test_round_trip", "test_full_throughput"}


@pytest.mark.cocotb
@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_cocotb_dpred_loopback(simulator, tmp_path):
    results = run_cocotb("dpred_loopback", CONFIG, simulator=simulator, build_dir=tmp_path,
                         seed=int(os.environ.get("SEED", "1")),
                         num_samples=int(os.environ.get("NUM_SAMPLES", "12")))
    outcomes = {result.name.rsplit(".", 1)[-1]: result.outcome for result in results}
    assert outcomes == {name: "passed" for name in EXPECTED}
