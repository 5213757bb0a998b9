# amaranth: UnusedElaboratable=no
"""hw.sparq: SparqPE and SparqBank in amaranth.sim against golden.sparq.

* Every mode (placement set, window width, rounding): the edge activation pairs of
  `sim.tb_sparq_bank.edge_pairs` times {-128, -1, 0, 1, 127} (one-pair dot products) plus
  seeded random multi-pair dot products with random idle cycles and backpressure; every sum is
  compared in order with `golden.sparq` and the latency read from the component is checked.
  (The exhaustive sweep of all 65536 activation pairs runs on Verilator in
  ``tests/test_cocotb_sparq.py``: amaranth.sim runs about 6,000 cycles/s, far too slow for it.)
* SparqBank: the same stream into every mode at once.
* Construction: properties, signature, parameter errors; Verilator -Wall lint of the emitted
  Verilog of every mode and of the bank.
"""

import dataclasses

import numpy as np
import pytest
from amaranth.lib import stream
from amaranth.lib.wiring import In, Out

from effectual.hdl import write_block
from effectual.lint import lint_file
from golden.sparq import sparq_dot, vsparq_pairs
from hw.params import SparqBankParams, SparqParams, sparq_modes
from hw.sparq import (SparqBank, SparqPE, bank_output_layout, pack_payloads,
                      sparq_input_layout, sparq_output_layout, unpack_field)
from sim.streams import random_pattern
from sim.tb_sparq_bank import WEIGHTS, edge_pairs, sweep_vectors

from helpers import run_simulation, sim_top, stream_receive, stream_send

MODES = sparq_modes()


def pe_kwargs(mode):
    return {f.name: getattr(mode, f.name) for f in dataclasses.fields(mode)}


def random_dot_products(seed, count):
    """Return ``(act, weight, last, lengths)`` of ``count`` dot products of 1..9 pairs."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 10, size=count)
    act = rng.integers(0, 256, size=(int(lengths.sum()), 2))
    act[rng.random(act.shape) < 0.35] = 0
    weight = rng.integers(-128, 128, size=act.shape)
    last = np.zeros(len(act), dtype=np.int64)
    last[np.cumsum(lengths) - 1] = 1
    return act, weight, last, lengths


def simulate(dut, act, weight, last, *, out_layout, idle=None, stall=None):
    """Stream the pairs through ``dut``; return ``(sums [N, ...], in_cycles, out_cycles)``."""
    top = sim_top(dut)
    payloads = pack_payloads(sparq_input_layout(), {"act": act, "weight": weight, "last": last})
    result = {}

    async def source(ctx):
        result["in"] = await stream_send(ctx, dut.i_stream, payloads, cycle=top.cycle,
                                         idle=idle)

    async def sink(ctx):
        result["out"] = await stream_receive(ctx, dut.o_stream, int(last.sum()),
                                             cycle=top.cycle, stall=stall)

    run_simulation(top, source, sink, vcd_name="sparq")
    bits, out_cycles = result["out"]
    in_cycles = np.array(result["in"])[np.flatnonzero(last)]
    return unpack_field(out_layout, bits, "sum"), in_cycles, np.array(out_cycles)


@pytest.mark.parametrize("mode", MODES, ids=lambda p: p.name)
def test_pe_edge_pairs_times_weights(mode):
    act, weight = sweep_vectors(0, seed=1)  # 0 random pairs: only the edge pairs
    assert len(act) == len(edge_pairs()) * len(WEIGHTS)
    dut = SparqPE(**pe_kwargs(mode))
    sums, in_cycles, out_cycles = simulate(dut, act, weight, np.ones(len(act), dtype=np.int64),
                                           out_layout=sparq_output_layout(mode))
    h0, h1 = vsparq_pairs(act[:, 0], act[:, 1], mode)
    np.testing.assert_array_equal(sums, h0 * weight[:, 0] + h1 * weight[:, 1])
    # full throughput: one pair per cycle, each result exactly `latency` later
    assert np.array_equal(np.diff(in_cycles), np.ones(len(act) - 1))
    assert np.all(out_cycles - in_cycles == dut.latency)


@pytest.mark.parametrize("mode", MODES, ids=lambda p: p.name)
def test_pe_dot_products_with_flow_control(mode):
    act, weight, last, lengths = random_dot_products(seed=7, count=60)
    dut = SparqPE(**pe_kwargs(mode))
    sums, in_cycles, out_cycles = simulate(
        dut, act, weight, last, out_layout=sparq_output_layout(mode),
        idle=random_pattern(0.3, seed=1), stall=random_pattern(0.3, seed=2))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    want = [int(sparq_dot(act[s:s + n].reshape(-1), weight[s:s + n].reshape(-1), mode))
            for s, n in zip(starts, lengths)]
    assert sums.tolist() == want
    assert np.all(out_cycles - in_cycles >= dut.latency)


def test_accumulator_wraps_at_acc_width():
    """The accumulator is acc_width bits: the golden sum modulo 2**acc_width, sign-extended."""
    mode = SparqParams(acc_width=18)
    count = 40
    act = np.full((count, 2), 255)
    weight = np.full((count, 2), 127)
    last = np.zeros(count, dtype=np.int64)
    last[-1] = 1
    sums, _, _ = simulate(SparqPE(**pe_kwargs(mode)), act, weight, last,
                          out_layout=sparq_output_layout(mode))
    exact = int(sparq_dot(act.reshape(-1), weight.reshape(-1), mode))
    assert exact >= 1 << 17  # the test overflows
    wrapped = (exact + (1 << 17)) % (1 << 18) - (1 << 17)
    assert sums.tolist() == [wrapped]


def test_bank_runs_every_mode():
    params = SparqBankParams()
    act, weight, last, lengths = random_dot_products(seed=8, count=25)
    sums, _, _ = simulate(SparqBank(), act, weight, last, out_layout=bank_output_layout(params),
                          idle=random_pattern(0.2, seed=3), stall=random_pattern(0.2, seed=4))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    for column, mode in enumerate(params.modes):
        want = [int(sparq_dot(act[s:s + n].reshape(-1), weight[s:s + n].reshape(-1), mode))
                for s, n in zip(starts, lengths)]
        assert sums[:, column].tolist() == want, mode.name


@pytest.mark.parametrize("mode", [SparqParams(), SparqParams(window_width=2, placements=7,
                                                             rounding=False, acc_width=24)],
                         ids=lambda p: p.name)
def test_constructor_properties_and_signature(mode):
    kwargs = pe_kwargs(mode)
    dut = SparqPE(**kwargs)
    assert dut.params == mode
    for name, value in kwargs.items():
        assert getattr(dut, name) == value
        with pytest.raises(AttributeError):
            setattr(dut, name, value)
    assert dut.latency == 1
    assert dut.signature.members["i_stream"] == In(stream.Signature(sparq_input_layout()))
    assert dut.signature.members["o_stream"] == Out(stream.Signature(sparq_output_layout(mode)))
    bank = SparqBank(acc_width=mode.acc_width)
    assert bank.modes == sparq_modes(acc_width=mode.acc_width)
    assert bank.latency == 1
    assert bank_output_layout(bank.params)["sum"].shape.length == len(MODES)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(placements=4), ValueError, r"^placements must be 5, 3, 2 for window_width 4, not 4$"),
    (dict(window_width=1), ValueError, r"^window_width must be an integer from 2 to 4, not 1$"),
    (dict(rounding="yes"), TypeError, r"^rounding must be True or False, not 'yes'$"),
    (dict(acc_width=64), ValueError, r"^acc_width must be an integer from 18 to 48, not 64$"),
])
def test_constructor_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        SparqPE(**kwargs)


def test_bank_constructor_error():
    with pytest.raises(TypeError, match=r"^acc_width must be an integer from 18 to 48, "
                                        r"not 3\.0$"):
        SparqBank(acc_width=3.0)


def test_pack_payloads_checks_ranges():
    layout = sparq_input_layout()
    with pytest.raises(ValueError, match=r"^field act\.0 holds values outside 0\.\.255$"):
        pack_payloads(layout, {"act": np.array([[256, 0]]), "weight": np.zeros((1, 2)),
                               "last": np.zeros(1)})
    bits = pack_payloads(layout, {"act": np.array([[3, 200]]), "weight": np.array([[-1, 5]]),
                                  "last": np.array([1])})
    const = layout.const({"act": [3, 200], "weight": [-1, 5], "last": 1})
    assert bits == [const.as_bits()]


@pytest.mark.parametrize("block, params", [("sparq", mode) for mode in MODES]
                         + [("sparq_bank", SparqBankParams())],
                         ids=[m.name for m in MODES] + ["bank"])
def test_verilog_lints_clean(block, params, tmp_path):
    path = tmp_path / ("sparq_pe.v" if block == "sparq" else "sparq_bank.v")
    write_block(block, params, path)
    ok, output = lint_file(path)
    assert ok, output


def test_mac_pe_is_exact():
    from hw.params import MacParams
    from hw.sparq import MacPE, mac_input_layout

    rng = np.random.default_rng(9)
    count = 400
    act = rng.integers(0, 256, size=count)
    weight = rng.integers(-128, 128, size=count)
    last = (rng.random(count) < 0.2).astype(np.int64)
    last[-1] = 1
    dut = MacPE()
    top = sim_top(dut)
    payloads = pack_payloads(mac_input_layout(), {"act": act, "weight": weight, "last": last})
    result = {}

    async def source(ctx):
        await stream_send(ctx, dut.i_stream, payloads, cycle=top.cycle,
                          idle=random_pattern(0.2, seed=5))

    async def sink(ctx):
        result["out"] = await stream_receive(ctx, dut.o_stream, int(last.sum()), cycle=top.cycle,
                                             stall=random_pattern(0.2, seed=6))

    run_simulation(top, source, sink)
    sums = unpack_field(sparq_output_layout(MacParams()), result["out"][0], "sum")
    ends = np.flatnonzero(last)
    starts = np.concatenate([[0], ends[:-1] + 1])
    want = [sum(int(a) * int(w) for a, w in zip(act[s:e + 1], weight[s:e + 1]))
            for s, e in zip(starts, ends)]
    assert sums.tolist() == want
    assert dut.latency == 1 and dut.acc_width == 32
    path_ok, output = _lint("mac", MacParams())
    assert path_ok, output


def _lint(block, params):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "mac_pe.v"
        write_block(block, params, path)
        return lint_file(path)
