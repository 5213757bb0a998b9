"""cocotb on the emitted Verilog of the NB-SMT systolic array, on Icarus and on Verilator.

For 1, 2 and 4 threads, `sim/tb_sysmt.py` runs small whole layers (dense conv, sparse conv,
grouped strided conv, fc) through the array tile by tile, at full rate and with random idle
cycles and backpressure; the reassembled outputs must equal `golden.nbsmt.nbsmt_layer_output`
and the array's cycle counter `golden.nbsmt.layer_cycles` (at full rate also the wall clock).
"""

import os

import pytest

from hw.params import SySMTParams
from sim.runner import run_cocotb

CONFIGS = {
    "t1-3x2": SySMTParams(rows=3, cols=2, threads=1),
    "t2-3x2-raw-actzero": SySMTParams(rows=3, cols=2, threads=2, rounding=False,
                                      skip_zero_weights=False),
    "t4-2x3": SySMTParams(rows=2, cols=3, threads=4),
}
EXPECTED_TESTS = {"test_layers_full_rate", "test_layers_with_flow_control"}


@pytest.mark.cocotb
@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_cocotb_sysmt(simulator, config, tmp_path):
    results = run_cocotb("sysmt", CONFIGS[config], simulator=simulator, build_dir=tmp_path,
                         seed=int(os.environ.get("SEED", "1")))
    outcomes = {result.name.rsplit(".", 1)[-1]: result.outcome for result in results}
    assert outcomes == {name: "passed" for name in EXPECTED_TESTS}
