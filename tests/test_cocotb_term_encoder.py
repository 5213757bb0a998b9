"""cocotb on the emitted Verilog of the term encoder, on Icarus and on Verilator.

Each case emits the encoder into its own ``tmp_path``, builds it and runs
``sim/tb_term_encoder.py``: a sweep of activation values at full throughput (every beat checked
against `golden.terms.encode_terms`, beats back to back, latency exact), random rows with random
idle cycles and backpressure, and a reset test.

Coverage in the default run, with the reason for each cut:

* Verilator: every 16-bit value of signed Booth and of unsigned NAF (2 builds). Verilator runs
  the big sweeps (23k beats per configuration on 16 lanes in about 5 s); the other two 16-bit
  configurations (signed NAF, unsigned Booth) are swept exhaustively on Verilator only with
  ``TERM_ENCODER_FULL=1``: each build costs ~15-30 s of CPU, and all four took the file to
  ~110 s of CPU, over the suite's budget of ~60 s per test file. (All four passed exhaustively
  when this was written.)
* Icarus: every 8-bit value, signed and unsigned, NAF and Booth (4 builds); and 16-bit signed
  and unsigned, NAF and Booth with ``SWEEP=61``: every 61st value of the range plus the minimum,
  the maximum, 0, +-1 and every power of two and its negation (about 1100 values each). A full
  16-bit sweep on Icarus costs about 90k cycles at ~0.7 ms each (4 lanes), about a minute per
  configuration, too long for the suite.
* 8-bit on Verilator: each Verilator build costs ~15 s of CPU for the fixed runtime files
  alone, so the 8-bit configurations (exhaustively checked on Icarus and, in amaranth.sim, in
  ``tests/test_terms_hw.py``) are not rebuilt on Verilator by default.

``TERM_ENCODER_FULL=1`` runs the whole matrix instead: every 8- and 16-bit value of all four
configurations on both simulators (16 runs, several minutes).

Verilator builds use `sim.runner.run_cocotb`'s make flags with the default optimization (the
23k-beat sweeps run faster with it).
"""

import os

import pytest

from hw.params import TermEncoderParams
from sim.runner import run_cocotb

FULL = os.environ.get("TERM_ENCODER_FULL", "") not in ("", "0")
EXPECTED_TESTS = {"test_sweep_full_throughput", "test_random_traffic", "test_reset_empties"}


def _cases():
    cases = []
    for width in (8, 16):
        for signed in (False, True):
            for encoding in ("naf", "booth"):
                for simulator in ("icarus", "verilator"):
                    lanes = 16 if simulator == "verilator" else 4
                    exhaustive = FULL or (simulator == "verilator") == (width == 16)
                    if not exhaustive and simulator == "verilator":
                        continue  # 8-bit on Verilator: only with TERM_ENCODER_FULL (docstring)
                    if simulator == "verilator" and not FULL and signed == (encoding == "naf"):
                        continue  # 16-bit: two of the four on Verilator by default (docstring)
                    sweep = "all" if exhaustive else "61"
                    params = TermEncoderParams(lanes=lanes, act_width=width, act_signed=signed,
                                               encoding=encoding)
                    cases.append(pytest.param(
                        simulator, params, sweep,
                        id=f"{simulator}-w{width}-{'s' if signed else 'u'}-{encoding}-{sweep}"))
    return cases


@pytest.mark.cocotb
@pytest.mark.parametrize("simulator, params, sweep", _cases())
def test_cocotb_term_encoder(simulator, params, sweep, tmp_path):
    results = run_cocotb("term_encoder", params, simulator=simulator, build_dir=tmp_path,
                         seed=int(os.environ.get("SEED", "1")),
                         num_samples=int(os.environ.get("NUM_SAMPLES", "100")),
                         extra_env={"SWEEP": sweep})
    outcomes = {result.name.rsplit(".", 1)[-1]: result.outcome for result in results}
    assert outcomes == {name: "passed" for name in EXPECTED_TESTS}
