"""cocotb on the emitted Verilog of the precision detector, on Icarus and on Verilator.

Each case emits the detector with its parameters into its own ``tmp_path``, builds it with the
given simulator and runs ``sim/tb_precision.py`` (driver, monitor and scoreboard against
`golden.precision.group_precision`, with random idle cycles and backpressure, plus two tests of
the harness's timeouts and range check).
"""

import os

import pytest

from hw.params import PrecisionParams
from sim.runner import run_cocotb

CONFIGS = {
    "g16-w16-s-trim-pipe": PrecisionParams(group_size=16, value_width=16, signed=True,
                                           trim_lsb=True, pipelined=True),
    "g4-w8-u-notrim-comb": PrecisionParams(group_size=4, value_width=8, signed=False),
    "g3-w32-s-trim-comb": PrecisionParams(group_size=3, value_width=32, signed=True,
                                          trim_lsb=True),
}
EXPECTED_TESTS = {"test_random_traffic", "test_full_throughput_latency", "test_reset",
                  "test_timeouts_count_cycles_without_transfer",
                  "test_timeout_messages_and_send_range"}


@pytest.mark.cocotb
@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_cocotb_precision(simulator, config, tmp_path):
    results = run_cocotb("precision", CONFIGS[config], simulator=simulator,
                         build_dir=tmp_path, seed=int(os.environ.get("SEED", "1")),
                         num_samples=int(os.environ.get("NUM_SAMPLES", "400")))
    outcomes = {result.name.rsplit(".", 1)[-1]: result.outcome for result in results}
    assert outcomes == {name: "passed" for name in EXPECTED_TESTS}
