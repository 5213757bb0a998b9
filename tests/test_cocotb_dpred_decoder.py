"""cocotb on the emitted Verilog of the DPRed decoder (Icarus and Verilator).

Each case emits the block into its own ``tmp_path``, builds it and runs
``sim/tb_dpred_decoder.py``: golden words decode to the exact tensor; corrupted words (bit
flips, missing and extra words, wrong lengths, over-wide and out-of-range headers) give the
`golden.dpred.scan_words` prefix of values and the error flag, never a hang; full throughput.
Both simulators run the configuration where out-of-range headers exist (12-bit values, 4-bit
headers, group size 5, 16-bit words). The encoder file and the loopback file
(``test_cocotb_dpred_loopback.py``, 16-bit values on both simulators) complete the round trip.
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
# The 16-bit configuration's decoder also runs, on both simulators, inside the loopback block
# (test_cocotb_dpred_loopback.py); corrupted 16-bit streams are covered by tests/test_dpred.py.
RUNS = [("icarus", "g5-w12-u-word16"), ("verilator", "g5-w12-u-word16")]
EXPECTED = {"test_round_trip_edge_cases_and_random", "test_corrupted_words_flag_errors",
            "test_full_throughput"}


@pytest.mark.cocotb
@pytest.mark.parametrize("simulator,config", RUNS, ids=[f"{s}-{c}" for s, c in RUNS])
def test_cocotb_dpred_decoder(simulator, config, tmp_path):
    results = run_cocotb("dpred_decoder", CONFIGS[config], simulator=simulator, build_dir=tmp_path,
                         seed=int(os.environ.get("SEED", "1")),
                         num_samples=int(os.environ.get("NUM_SAMPLES", "12")))
    outcomes = {result.name.rsplit(".", 1)[-1]: result.outcome for result in results}
    assert outcomes == {name: "passed" for name in EXPECTED}
