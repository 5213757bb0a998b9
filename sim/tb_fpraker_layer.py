"""cocotb testbench: the dot products of a layer's float view through the emitted ``fpraker_pe``
(or ``bf16_mac``), for ``effectual sim --design fpraker|bf16mac`` (`effectual.sim_fpraker`).

Environment: the block's ``PARAM_*``, ``FPRAKER_VECTORS`` (an ``.npz`` with ``a`` and ``b``,
bfloat16 patterns ``[O, L]``, one dot product per row, as `golden.fpraker_layers.layer_pairs`
gives) and ``FPRAKER_RESULTS`` (where the received ``(result, cycles)`` pairs are written as an
int64 ``.npy`` ``[O, 2]``). The dot products are sent back to back with a ready sink; every
received result and cycle count is compared, in order, with `golden.fpraker` (through
`sim.tb_fpraker_pe.PETestbench`), and the caller compares the written file with the golden
layer model again.
"""

import os

import numpy as np

import cocotb

from golden.fpraker import split_sets
from sim.tb_fpraker_pe import PETestbench, _params_from_env, golden_results


@cocotb.test()
async def test_layer_outputs(dut):
    """Every dot product of ``FPRAKER_VECTORS``: results and cycles equal to golden."""
    params = _params_from_env()
    vectors = np.load(os.environ["FPRAKER_VECTORS"])
    a_sets = split_sets(vectors["a"], params.lanes)
    b_sets = split_sets(vectors["b"], params.lanes)
    dots = [(a_sets[i], b_sets[i]) for i in range(a_sets.shape[0])]
    _, cycles = golden_results(params, dots)
    tb = PETestbench(dut, params)
    await tb.start()
    tb.send(dots)
    await tb.finish(timeout_cycles=sum(cycles) + 10 * len(dots) + 100)
    received = [(int(payload.result), int(payload.cycles))
                for payload, _ in tb.monitor.received]
    np.save(os.environ["FPRAKER_RESULTS"], np.array(received, dtype=np.int64).reshape(-1, 2))
