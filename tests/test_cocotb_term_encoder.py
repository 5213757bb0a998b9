"""cocotb on the emitted Verilog of the term encoder, on Icarus and on Verilator.

Each case emits the encoder into its own ``tmp_path``, builds it and runs
``sim/tb_term_encoder.py``: a sweep of activation values at full throughput (every beat checked
against `golden.terms.encode_terms`, beats back to back, latency exact), random rows with random
idle cycles and backpressure, and a reset test.

Coverage: every 8- and 16-bit value of the four configurations (signed and unsigned, NAF and
Booth) on both simulators, 16 runs. Icarus runs 4 lanes, Verilator 16 lanes. A 16-bit sweep
is about 90k beats on Icarus (28 s wall on the loaded 2-core machine) and 23k beats on
Verilator (about 5 s after a 15-30 s build). The file took 9 min 40 s wall, 5 min 12 s CPU, at
load 6.

Verilator builds use `sim.runner.run_cocotb`'s make flags with the default optimization (the
23k-beat sweeps run faster with it).
"""

import os

import pytest

from hw.params import TermEncoderParams
from sim.runner import run_cocotb

EXPECTED_TESTS = {"test_sweep_full_throughput", "test_random_traffic", "test_reset_empties"}


def _cases():
    cases = []
    for width in (8, 16):
        for signed in (False, True):
            for encoding in ("naf", "booth"):
                for simulator in ("icarus", "verilator"):
                    params = TermEncoderParams(lanes=16 if simulator == "verilator" else 4,
                                               act_width=width, act_signed=signed,
                                               encoding=encoding)
                    cases.append(pytest.param(
                        simulator, params,
                        id=f"{simulator}-w{width}-{'s' if signed else 'u'}-{encoding}"))
    return cases


@pytest.mark.cocotb
@pytest.mark.parametrize("simulator, params", _cases())
def test_cocotb_term_encoder(simulator, params, tmp_path):
    results = run_cocotb("term_encoder", params, simulator=simulator, build_dir=tmp_path,
                         seed=int(os.environ.get("SEED", "1")),
                         num_samples=int(os.environ.get("NUM_SAMPLES", "100")),
                         extra_env={"SWEEP": "all"})
    outcomes = {result.name.rsplit(".", 1)[-1]: result.outcome for result in results}
    assert outcomes == {name: "passed" for name in EXPECTED_TESTS}
