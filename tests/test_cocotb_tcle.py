"""cocotb on the emitted Verilog of the TCLe tile, on Icarus and on Verilator.

Each case emits the ``tcle_small`` block with the given parameters into its own ``tmp_path``,
builds it and runs ``sim/tb_tcle.py``: four whole small layers (dense and sparse convolutions,
a depthwise convolution, a sparse FC layer; one with random idle cycles and backpressure), every
pass's results against `golden.tcl.passes`, the layer output against
`golden.layers.layer_output`, the tile's cycle counter against `golden.pragmatic.schedule_cycles`
per pass and against the registered golden design (``tcle`` or ``pragmatic``) per layer.

Three tile configurations cover unsigned and signed activations, both encodings, both column
synchronizations and both designs: 8-bit unsigned TCLe with DNNsim's Booth terms, T<2,5>,
L1 = 2 and columns running up to 2 rows ahead; 16-bit signed TCLe with NAF terms, L<2,1>,
L1 = 1, lock-step; and 8-bit signed Pragmatic (pattern ``none``, zero weights not gated). All
run on Icarus; Verilator runs the 16-bit one by default and all with ``TCLE_FULL=1``: a
Verilator build of the tile costs ~50 s on the shared machine even at ``-O0``, and the file
must stay near ~60 s.

The Verilator model is compiled without optimization (``run_cocotb(..., optimize=False)``),
which halves the build (~100 s to ~50 s wall on the shared machine) of a short simulation.
"""

import os

import pytest

from hw.params import TCLeTileParams
from sim.runner import run_cocotb

CONFIGS = {
    "u8-booth-T25-L2-A2": TCLeTileParams(filters=3, lanes=4, windows=2, weight_width=8,
                                         act_width=8, act_signed=False, pattern="T<2,5>",
                                         encoding="booth", first_stage_bits=2, run_ahead=2,
                                         weight_rows=32, act_rows=32),
    "s16-naf-L21-L1": TCLeTileParams(filters=2, lanes=4, windows=2, weight_width=8,
                                     act_width=16, act_signed=True, pattern="L<2,1>",
                                     encoding="naf", first_stage_bits=1, weight_rows=32,
                                     act_rows=32),
    "s8-booth-pragmatic": TCLeTileParams(filters=2, lanes=4, windows=2, weight_width=8,
                                         act_width=8, act_signed=True, pattern="none",
                                         encoding="booth", gate_zero_weights=False,
                                         weight_rows=32, act_rows=32),
}
EXPECTED_TESTS = {"test_conv_dense", "test_conv_sparse_with_backpressure", "test_depthwise",
                  "test_fc_sparse"}


FULL = os.environ.get("TCLE_FULL", "") not in ("", "0")
CASES = [(simulator, config) for simulator in ("icarus", "verilator") for config in CONFIGS
         if FULL or simulator == "icarus" or config == "s16-naf-L21-L1"]


@pytest.mark.cocotb
@pytest.mark.parametrize("simulator, config", CASES)
def test_cocotb_tcle(simulator, config, tmp_path):
    results = run_cocotb("tcle_small", CONFIGS[config], simulator=simulator,
                         build_dir=tmp_path, test_module="sim.tb_tcle", optimize=False,
                         seed=int(os.environ.get("SEED", "1")))
    outcomes = {result.name.rsplit(".", 1)[-1]: result.outcome for result in results}
    assert outcomes == {name: "passed" for name in EXPECTED_TESTS}
