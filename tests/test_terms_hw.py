# amaranth: UnusedElaboratable=no
"""hw.terms: TermEncoder in amaranth.sim against golden.terms, exhaustively for small widths.

* Every value of every 8-bit configuration (signed and unsigned; NAF, DNNsim Booth, binary) and
  of a few narrower widths goes through the encoder (64 lanes side by side, rows ordered by term
  count), with random idle cycles and backpressure on half of the runs. Every beat must equal
  the beat `golden.terms.encode_terms` predicts (`sim.tb_term_encoder.expected_beats`), and,
  independently of golden, the terms of each lane must add up to the value that was sent, with
  no zero term and positions strictly ascending (LSB first).
* Random 16-bit rows on a 3-lane encoder with idle cycles and backpressure; a full-throughput run
  checks the latency and that beats follow back to back.
* Invalid parameters raise TypeError / ValueError naming the parameter and its range.
"""

import dataclasses

import numpy as np
import pytest

from hw.blocks import emit_verilog, verilog_ports
from hw.params import TermEncoderParams
from hw.terms import TermEncoder, pack_act_row
from sim.streams import random_pattern
from sim.tb_term_encoder import (check_beats, decode_beats, expected_beats, random_rows,
                                 sweep_values, value_rows)

from helpers import run_simulation, sim_top, stream_receive, stream_send


def simulate(params, rows, *, idle=None, stall=None):
    """Stream ``rows`` through an encoder; return ``(payloads, in_cycles, out_cycles)``."""
    dut = TermEncoder(**dataclasses.asdict(params))
    top = sim_top(dut)
    beats = int(expected_beats(params, rows)[3].size)
    result = {}

    async def source(ctx):
        result["in"] = await stream_send(ctx, dut.i_stream,
                                         [pack_act_row(params, row) for row in rows],
                                         cycle=top.cycle, idle=idle)

    async def sink(ctx):
        result["out"] = await stream_receive(ctx, dut.o_stream, beats, cycle=top.cycle,
                                             stall=stall)

    run_simulation(top, source, sink, vcd_name="term_encoder")
    payloads, out_cycles = result["out"]
    return payloads, result["in"], out_cycles


def reconstruct(params, rows, payloads):
    """Return each lane's value rebuilt from the received terms, checking the term order.

    Independent of golden: it only reads the beats, splits them at ``last`` and sums the terms.
    """
    valid, negative, position, last = decode_beats(params, payloads)
    ends = np.flatnonzero(last) + 1
    assert len(ends) == len(rows), f"{len(ends)} rows ended, {len(rows)} sent"
    values = np.zeros(rows.shape, dtype=np.int64)
    for index, (start, stop) in enumerate(zip(np.concatenate([[0], ends[:-1]]), ends)):
        v, n, p = valid[start:stop], negative[start:stop], position[start:stop]
        # once a lane has no term it has none for the rest of the row; positions ascend
        assert np.all(np.diff(v, axis=0) <= 0), f"row {index}: a lane restarted after ending"
        p_valid = np.where(v == 1, p, np.iinfo(np.int64).max)
        assert np.all((np.diff(p_valid, axis=0) > 0) | (v[1:] == 0)), \
            f"row {index}: term positions not strictly ascending"
        assert np.all(p[v == 0] == 0) and np.all(n[v == 0] == 0)
        assert stop - start == max(1, int(v.sum(axis=0).max())), \
            f"row {index}: {stop - start} beats for at most {int(v.sum(axis=0).max())} terms"
        values[index] = np.sum(np.where(v == 1, np.where(n == 1, -1, 1) << p, 0), axis=0)
    return values


EXHAUSTIVE = [TermEncoderParams(lanes=64, act_width=w, act_signed=s, encoding=e)
              for w in (8,) for s in (False, True) for e in ("naf", "booth", "binary")]
EXHAUSTIVE += [TermEncoderParams(lanes=64, act_width=w, act_signed=s, encoding=e)
               for w in (2, 3, 5) for s in (False, True) for e in ("naf", "booth")]


def config_id(p):
    return f"w{p.act_width}-{'s' if p.act_signed else 'u'}-{p.encoding}-l{p.lanes}"


@pytest.mark.parametrize("params", EXHAUSTIVE, ids=config_id)
def test_every_value(params):
    values = sweep_values(params)
    assert values.size == params.max_value - params.min_value + 1
    rows = value_rows(params, values)
    stressed = params.act_width in (3, 8) and params.act_signed
    idle = random_pattern(0.3, seed=1) if stressed else None
    stall = random_pattern(0.3, seed=2) if stressed else None
    payloads, _, _ = simulate(params, rows, idle=idle, stall=stall)
    check_beats(params, rows, payloads)
    np.testing.assert_array_equal(reconstruct(params, rows, payloads), rows)


@pytest.mark.parametrize("encoding", ["naf", "booth"])
def test_random_16_bit_rows_with_backpressure(encoding):
    params = TermEncoderParams(lanes=3, act_width=16, act_signed=True, encoding=encoding)
    rows = random_rows(params, 60, np.random.default_rng(5))
    payloads, _, _ = simulate(params, rows, idle=random_pattern(0.4, seed=3),
                              stall=random_pattern(0.4, seed=4))
    check_beats(params, rows, payloads)
    np.testing.assert_array_equal(reconstruct(params, rows, payloads), rows)


def test_full_throughput_and_latency():
    params = TermEncoderParams(lanes=4, act_width=16, act_signed=False, encoding="naf")
    rows = random_rows(params, 40, np.random.default_rng(6))
    payloads, in_cycles, out_cycles = simulate(params, rows)
    check_beats(params, rows, payloads)
    _, _, _, last = expected_beats(params, rows)
    assert out_cycles == list(range(out_cycles[0], out_cycles[0] + len(out_cycles)))
    first_beats = np.flatnonzero(np.concatenate([[1], last[:-1]]))
    assert [out_cycles[b] - i for b, i in zip(first_beats, in_cycles)] == [1] * len(rows)
    assert TermEncoder(lanes=4).latency == 1


def test_verilog_ports():
    params = TermEncoderParams(lanes=5, act_width=8, act_signed=True, encoding="booth")
    text, _ = emit_verilog("term_encoder", params)
    ports = {p["name"]: (p["direction"], p["width"]) for p in verilog_ports(text, "term_encoder")}
    assert ports == {"clk": ("input", 1), "rst": ("input", 1),
                     "i_stream__valid": ("input", 1), "i_stream__ready": ("output", 1),
                     "i_stream__payload": ("input", 5 * 8),
                     "o_stream__valid": ("output", 1), "o_stream__ready": ("input", 1),
                     "o_stream__payload": ("output", 5 * (2 + 4) + 1)}


@pytest.mark.parametrize("kwargs, error, message", [
    ({"lanes": 0}, ValueError, r"^lanes must be an integer from 1 to 64, not 0$"),
    ({"lanes": 65}, ValueError, r"^lanes must be an integer from 1 to 64, not 65$"),
    ({"lanes": 2.0}, TypeError, r"^lanes must be an integer from 1 to 64, not 2\.0$"),
    ({"act_width": 1}, ValueError, r"^act_width must be an integer from 2 to 16, not 1$"),
    ({"act_width": 17}, ValueError, r"^act_width must be an integer from 2 to 16, not 17$"),
    ({"act_signed": 1}, TypeError, r"^act_signed must be True or False, not 1$"),
    ({"encoding": "csd"}, ValueError,
     r"^encoding must be one of naf, booth, binary, not 'csd'$"),
    ({"encoding": None}, TypeError, r"^encoding must be one of naf, booth, binary, not None$"),
])
def test_bad_parameters(kwargs, error, message):
    with pytest.raises(error, match=message):
        TermEncoder(**kwargs)
    with pytest.raises(error, match=message):
        TermEncoderParams(**kwargs)


def test_pack_act_row_checks_range():
    params = TermEncoderParams(lanes=2, act_width=8, act_signed=True)
    assert pack_act_row(params, [-128, 127]) == 0x7F80
    with pytest.raises(ValueError, match=r"^values\[1\] = 128 is out of range: must be from "
                                         r"-128 to 127$"):
        pack_act_row(params, [0, 128])
    with pytest.raises(ValueError, match=r"^a row needs 2 values, not 3$"):
        pack_act_row(params, [0, 1, 2])


@pytest.mark.parametrize("params", [
    TermEncoderParams(),
    TermEncoderParams(lanes=3, act_width=16, act_signed=False, encoding="naf"),
    TermEncoderParams(lanes=2, act_width=8, act_signed=True, encoding="binary"),
    TermEncoderParams(lanes=2, act_width=8, act_signed=False, encoding="booth"),
    TermEncoderParams(lanes=1, act_width=2, act_signed=True, encoding="naf"),
    TermEncoderParams(lanes=1, act_width=2, act_signed=False, encoding="booth"),
], ids=config_id)
def test_verilog_lints_clean(params, tmp_path):
    from effectual.hdl import write_block
    from effectual.lint import lint_file

    path = tmp_path / "term_encoder.v"
    write_block("term_encoder", params, path)
    ok, output = lint_file(path)
    assert ok, output
