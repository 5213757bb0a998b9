# amaranth: UnusedElaboratable=no
"""hw.sysmt: SySMTArray in amaranth.sim against golden.nbsmt.

* The PE of each thread count through a 2 x 1 array with one-step tiles: every combination of
  edge activations (0, 1, 15, 16, 0x88, 0x98, 255) and weights (-128, -1, 0, 1, 127) per thread
  for 1 and 2 threads, a seeded quarter of {0, 17, 255}^4 x {-128, 0, 127}^4 and 1500 random
  steps for 4 threads; each result equals `golden.nbsmt.nbsmt_step`. (The 2-thread datapath is
  SPARQ's 2opt datapath, swept over every activation pair in ``tests/test_cocotb_sparq.py``.)
* Whole small layers (`sim.tb_sysmt.small_layers`: dense, sparse, grouped strided conv, fc) for
  1, 2 and 4 threads, both rounding modes and both idle rules, with and without random idle
  cycles and backpressure: the reassembled output equals `golden.nbsmt.nbsmt_layer_output`, the
  cycle counter `golden.nbsmt.layer_cycles`, and at full rate the wall clock too.
* Construction, signature, parameter errors, Verilator -Wall lint.
"""

import dataclasses
import itertools

import numpy as np
import pytest
from amaranth.lib import stream
from amaranth.lib.wiring import In, Out

from effectual.hdl import write_block
from effectual.lint import lint_file
from golden.nbsmt import layer_cycles, nbsmt_layer_output, nbsmt_step
from hw.params import SySMTParams
from hw.sparq import pack_payloads, unpack_field
from hw.sysmt import SySMTArray, sysmt_input_layout, sysmt_output_layout
from sim.streams import random_pattern
from sim.tb_sysmt import assemble_output, layer_payloads, small_layers

from helpers import run_simulation, sim_top, stream_receive, stream_send

WEIGHTS = [-128, -1, 0, 1, 127]


def build(params):
    return SySMTArray(**dataclasses.asdict(params))


def run_payloads(params, payloads, rows_expected, *, idle=None, stall=None):
    """Stream ``payloads``; return ``(row bits, in_cycles, out_cycles, counter)``."""
    dut = build(params)
    top = sim_top(dut)
    result = {}

    async def source(ctx):
        result["in"] = await stream_send(ctx, dut.i_stream, payloads, cycle=top.cycle,
                                         idle=idle)

    async def sink(ctx):
        result["out"] = await stream_receive(ctx, dut.o_stream, rows_expected, cycle=top.cycle,
                                             stall=stall)
        result["cycles"] = ctx.get(dut.cycles)

    run_simulation(top, source, sink, vcd_name="sysmt")
    bits, out_cycles = result["out"]
    return bits, result["in"], out_cycles, result["cycles"]


def pe_sweep(params, acts, weights):
    """Run one-step tiles whose row 0 holds ``acts[n]``/column 0 ``weights[n]``; return sums."""
    count = len(acts)
    act = np.zeros((count, params.rows, params.threads), dtype=np.int64)
    act[:, 0] = acts
    weight = np.zeros((count, params.cols, params.threads), dtype=np.int64)
    weight[:, 0] = weights
    payloads = pack_payloads(sysmt_input_layout(params),
                             {"act": act, "weight": weight, "last": np.ones(count)})
    bits, _, _, _ = run_payloads(params, payloads, count * params.rows)
    rows = unpack_field(sysmt_output_layout(params), bits, "sum")
    return rows[0::params.rows, 0]


@pytest.mark.parametrize("threads", [1, 2, 4])
@pytest.mark.parametrize("rounding, skip", [(True, True), (False, False)])
def test_pe_edge_values_all_weight_combinations(threads, rounding, skip):
    params = SySMTParams(rows=2, cols=1, threads=threads, rounding=rounding,
                         skip_zero_weights=skip)
    values = [0, 1, 15, 16, 0x88, 0x98, 255] if threads < 4 else [0, 17, 255]
    weights = WEIGHTS if threads < 4 else [-128, 0, 127]
    acts = np.array(list(itertools.product(values, repeat=threads)))
    wts = np.array(list(itertools.product(weights, repeat=threads)))
    a = np.repeat(acts, len(wts), axis=0)
    w = np.tile(wts, (len(acts), 1))
    if threads == 4:  # 6561 combinations: a seeded quarter of them
        chosen = np.random.default_rng(0).permutation(len(a))[:1600]
        a, w = a[chosen], w[chosen]
    sums = pe_sweep(params, a, w)
    want, _, _ = nbsmt_step(a, w, params)
    np.testing.assert_array_equal(sums, want)


def test_four_thread_pe_random():
    params = SySMTParams(rows=2, cols=1, threads=4)
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, size=(1500, 4))
    a[rng.random(a.shape) < 0.4] = 0
    w = rng.integers(-128, 128, size=(1500, 4))
    w[rng.random(w.shape) < 0.3] = 0
    sums = pe_sweep(params, a, w)
    want, _, _ = nbsmt_step(a, w, params)
    np.testing.assert_array_equal(sums, want)


CONFIGS = [SySMTParams(rows=3, cols=2, threads=1),
           SySMTParams(rows=2, cols=3, threads=2),
           SySMTParams(rows=2, cols=2, threads=2, rounding=False, skip_zero_weights=False),
           SySMTParams(rows=2, cols=3, threads=4),
           SySMTParams(rows=3, cols=1, threads=4, rounding=False)]


def config_id(p):
    return (f"t{p.threads}-{p.rows}x{p.cols}{'' if p.rounding else '-raw'}"
            f"{'' if p.skip_zero_weights else '-actzero'}")


@pytest.mark.parametrize("params", CONFIGS, ids=config_id)
@pytest.mark.parametrize("flow_control", [False, True])
def test_layers(params, flow_control):
    for layer in small_layers(seed=5):
        payloads, tiles = layer_payloads(layer, params)
        idle = random_pattern(0.3, seed=1) if flow_control else None
        stall = random_pattern(0.3, seed=2) if flow_control else None
        bits, in_cycles, out_cycles, counter = run_payloads(
            params, payloads, len(tiles) * params.rows, idle=idle, stall=stall)
        out = assemble_output(layer, params, tiles, bits)
        expected, _ = nbsmt_layer_output(layer, params)
        np.testing.assert_array_equal(out, expected)
        assert counter == layer_cycles(layer, params)
        if not flow_control:
            assert out_cycles[-1] - in_cycles[0] + 1 == counter
        # every tile's first row comes exactly `latency` cycles after its last step at full
        # rate, never earlier with flow control
        lasts = np.flatnonzero([b >> (sysmt_input_layout(params).size - 1) for b in payloads])
        firsts = np.array(out_cycles)[::params.rows]
        delay = firsts - np.array(in_cycles)[lasts]
        assert np.all(delay == params.latency) if not flow_control else \
            np.all(delay >= params.latency)


def test_constructor_properties_and_signature():
    params = SySMTParams(rows=3, cols=2, threads=4, rounding=False, skip_zero_weights=False,
                         acc_width=24)
    dut = build(params)
    assert dut.params == params
    for name, value in dataclasses.asdict(params).items():
        assert getattr(dut, name) == value
        with pytest.raises(AttributeError):
            setattr(dut, name, value)
    assert dut.latency == 3 + 2 - 1
    assert dut.signature.members["i_stream"] == In(stream.Signature(sysmt_input_layout(params)))
    assert dut.signature.members["o_stream"] == Out(
        stream.Signature(sysmt_output_layout(params)))
    assert dut.signature.members["cycles"] == Out(32)
    assert sysmt_input_layout(params).size == 3 * 4 * 8 + 2 * 4 * 8 + 1


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(threads=3), ValueError, r"^threads must be 1, 2 or 4, not 3$"),
    (dict(rows=1), ValueError, r"^rows must be an integer from 2 to 16, not 1$"),
    (dict(cols="2"), TypeError, r"^cols must be an integer from 1 to 16, not '2'$"),
    (dict(rounding=None), TypeError, r"^rounding must be True or False, not None$"),
])
def test_constructor_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        SySMTArray(**kwargs)


@pytest.mark.parametrize("params", [SySMTParams(rows=2, cols=3, threads=t) for t in (1, 2, 4)]
                         + [SySMTParams(rows=2, cols=1, threads=4, rounding=False,
                                        skip_zero_weights=False)],
                         ids=lambda p: config_id(p))
def test_verilog_lints_clean(params, tmp_path):
    path = tmp_path / "sysmt_array.v"
    write_block("sysmt", params, path)
    ok, output = lint_file(path)
    assert ok, output
