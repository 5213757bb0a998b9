"""cocotb on the emitted Verilog of the SPARQ bank (every SparqPE mode), Icarus and Verilator.

`sim/tb_sparq_bank.py` sends activation pairs times the weights {-128, -1, 0, 1, 127}, one
transfer per cycle, and compares every mode's result with `golden.sparq.vsparq_pairs`, then
random multi-pair dot products with idle cycles and backpressure against
`golden.sparq.sparq_dot`.

* Verilator runs the EXHAUSTIVE sweep: all 65536 activation pairs x 5 weight combinations per
  pair (327,680 transfers, 10 modes each), about 20 s of simulation after a ~40 s build.
* Icarus runs a seeded subset (the 841 edge pairs of `sim.tb_sparq_bank.edge_pairs` plus 300
  random pairs, x 5 weights): Icarus simulates this 10-PE bank at about 1,500 cycles/s, so the
  full 327,680-cycle sweep would take about 4 minutes there.
"""

import os

import pytest

from hw.params import SparqBankParams
from sim.runner import run_cocotb

EXPECTED_TESTS = {"test_activation_pairs_x_weights", "test_dot_products_with_flow_control"}
#: pairs swept per simulator (>= 65536: every activation pair)
PAIRS = {"icarus": 300, "verilator": 1 << 16}


@pytest.mark.cocotb
@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_cocotb_sparq_bank(simulator, tmp_path):
    results = run_cocotb("sparq_bank", SparqBankParams(), simulator=simulator,
                         build_dir=tmp_path, seed=int(os.environ.get("SEED", "1")),
                         num_samples=PAIRS[simulator])
    outcomes = {result.name.rsplit(".", 1)[-1]: result.outcome for result in results}
    assert outcomes == {name: "passed" for name in EXPECTED_TESTS}
