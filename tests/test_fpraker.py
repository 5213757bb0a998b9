# amaranth: UnusedElaboratable=no
"""hw.fpraker in amaranth.sim against golden.fpraker, plus constructors and ports.

* `FPTermEncoder`: all 65,536 bfloat16 patterns streamed back to back (NAF) and every pattern
  that differs in what the encoder reads (Booth, binary), each beat compared with golden; random
  traffic with idle cycles and backpressure; one beat per cycle; latency.
* `FPRakerPE` and `BF16MAC`: every special class, seeded random dot products and a long
  accumulation with random idle cycles and backpressure, over lane counts 1..8, windows 16..48
  and all three encodings; every result bit-identical to golden and its ``cycles`` equal to the
  golden cycle model; with a steady source the set transfers are exactly those cycles apart.
"""

import dataclasses

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module, Signal, Value
from amaranth.lib import stream
from amaranth.lib.wiring import In, Out

from hw.blocks import emit_verilog, verilog_ports
from hw.fpraker import (BF16MAC, FPRakerPE, FPTermEncoder, bf16_layout, pack_bf16, pack_set,
                        result_layout, set_layout, term_layout, unpack_result, unpack_term)
from hw.params import BF16MACParams, FPRakerParams, FPTermEncoderParams
from sim.streams import random_pattern
from sim.tb_fp_term_encoder import expected_beats, sweep_patterns
from sim.tb_fpraker_pe import (golden_results, random_dot_products, set_payloads,
                               special_dot_products)

from helpers import run_simulation, sim_top, stream_receive, stream_send


def build(params):
    if isinstance(params, FPTermEncoderParams):
        return FPTermEncoder(**dataclasses.asdict(params))
    if isinstance(params, FPRakerParams):
        return FPRakerPE(**dataclasses.asdict(params))
    return BF16MAC(**dataclasses.asdict(params))


def pid(params):
    if isinstance(params, FPTermEncoderParams):
        return params.encoding
    kind = "pe" if isinstance(params, FPRakerParams) else "mac"
    encoding = f"-{params.encoding}" if kind == "pe" else ""
    return f"{kind}-n{params.lanes}-w{params.acc_width}{encoding}"


# --- construction ---------------------------------------------------------------------------

def test_constructors_properties_and_signatures():
    encoder = FPTermEncoder(encoding="booth")
    assert encoder.params == FPTermEncoderParams(encoding="booth")
    assert encoder.encoding == "booth" and encoder.latency == 1
    assert encoder.signature.members["i_stream"] == In(stream.Signature(bf16_layout))
    assert encoder.signature.members["o_stream"] == Out(stream.Signature(term_layout))
    pe = FPRakerPE(lanes=3, acc_width=20, encoding="binary")
    assert (pe.lanes, pe.acc_width, pe.encoding, pe.latency) == (3, 20, "binary", 2)
    assert pe.params == FPRakerParams(lanes=3, acc_width=20, encoding="binary")
    mac = BF16MAC(lanes=5, acc_width=33)
    assert (mac.lanes, mac.acc_width, mac.latency) == (5, 33, 2)
    for dut, params in ((pe, pe.params), (mac, mac.params)):
        assert dut.signature.members["i_stream"] == In(stream.Signature(set_layout(params)))
        assert dut.signature.members["o_stream"] == Out(stream.Signature(result_layout))
    assert FPRakerPE().params == FPRakerParams() and BF16MAC().params == BF16MACParams()
    assert FPTermEncoder().params == FPTermEncoderParams()
    with pytest.raises(TypeError):
        FPRakerPE(8)  # noqa: keyword-only
    for dut, name in ((pe, "lanes"), (mac, "acc_width"), (encoder, "encoding")):
        with pytest.raises(AttributeError):
            setattr(dut, name, 1)


@pytest.mark.parametrize("cls,kwargs,error,message", [
    (FPTermEncoder, {"encoding": "csd"}, ValueError,
     r"^encoding must be one of naf, booth, binary, not 'csd'$"),
    (FPTermEncoder, {"encoding": None}, TypeError,
     r"^encoding must be one of naf, booth, binary, not None$"),
    (FPRakerPE, {"lanes": 65}, ValueError, r"^lanes must be an integer from 1 to 64, not 65$"),
    (FPRakerPE, {"lanes": 2.0}, TypeError, r"^lanes must be an integer from 1 to 64, not 2\.0$"),
    (FPRakerPE, {"acc_width": 8}, ValueError,
     r"^acc_width must be an integer from 16 to 48, not 8$"),
    (FPRakerPE, {"encoding": "Booth"}, ValueError,
     r"^encoding must be one of naf, booth, binary, not 'Booth'$"),
    (BF16MAC, {"lanes": 0}, ValueError, r"^lanes must be an integer from 1 to 64, not 0$"),
    (BF16MAC, {"acc_width": True}, TypeError,
     r"^acc_width must be an integer from 16 to 48, not True$"),
])
def test_constructors_reject_invalid_params(cls, kwargs, error, message):
    with pytest.raises(error, match=message):
        cls(**kwargs)


@pytest.mark.parametrize("call,error,message", [
    (lambda: pack_bf16(1 << 16), ValueError, r"^bfloat16 pattern must be from 0 to 0xffff, not "
                                             r"0x10000$"),
    (lambda: pack_set(FPRakerParams(lanes=2), [1], [1, 2], True), ValueError,
     r"^a set needs 2 patterns in a and in b, not 1 and 2$"),
    (lambda: pack_set(FPRakerParams(lanes=1), [1], [-1], True), ValueError,
     r"^b\[0\] = -1 is not a bfloat16 pattern \(0\.\.0xffff\)$"),
])
def test_pack_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_layout_packing_matches_the_bit_patterns():
    """bf16_layout bits are the bfloat16 pattern; set and result layouts place lanes in order."""
    assert all(pack_bf16(bits) == bits for bits in range(1 << 16))
    params = FPRakerParams(lanes=3)
    bits = pack_set(params, [1, 2, 3], [4, 5, 0xFFFF], True)
    assert bits == (1 | 2 << 16 | 3 << 32 | 4 << 48 | 5 << 64 | 0xFFFF << 80 | 1 << 96)
    assert unpack_result(0x12345678 | 99 << 32) == (0x12345678, 99)
    assert unpack_term(1 | 5 << 1 | 1 << 5 | 0 << 6) == (1, 5, 1, 0)


@pytest.mark.parametrize("name,params,module,widths", [
    ("fp_term_encoder", FPTermEncoderParams(), "fp_term_encoder", (16, 7)),
    ("fpraker_pe", FPRakerParams(lanes=3), "fpraker_pe", (97, 64)),
    ("bf16_mac", BF16MACParams(), "bf16_mac", (257, 64)),
])
def test_verilog_ports(name, params, module, widths):
    text, _ = emit_verilog(name, params)
    ports = {p["name"]: (p["direction"], p["width"]) for p in verilog_ports(text, module)}
    assert ports == {"clk": ("input", 1), "rst": ("input", 1),
                     "i_stream__payload": ("input", widths[0]),
                     "i_stream__valid": ("input", 1), "i_stream__ready": ("output", 1),
                     "o_stream__payload": ("output", widths[1]),
                     "o_stream__valid": ("output", 1), "o_stream__ready": ("input", 1)}


# --- term encoder -----------------------------------------------------------------------------

def encode_stream(params, patterns, *, idle=None, stall=None):
    """Stream ``patterns`` through the encoder; return beats ``[B, 4]`` and transfer cycles."""
    dut = build(params)
    top = sim_top(dut)
    expected = expected_beats(patterns, params.encoding)
    result = {}

    async def source(ctx):
        result["in"] = await stream_send(ctx, dut.i_stream, [int(p) for p in patterns],
                                         cycle=top.cycle, idle=idle)

    async def sink(ctx):
        result["out"] = await stream_receive(ctx, dut.o_stream, len(expected), cycle=top.cycle,
                                             stall=stall)

    run_simulation(top, source, sink)
    beats = np.array([unpack_term(bits) for bits in result["out"][0]])
    return beats, expected, np.array(result["in"]), np.array(result["out"][1])


class EncoderLanes(Elaboratable):
    """Test-only: ``count`` encoders side by side, fed in lockstep so one simulated cycle
    encodes ``count`` values. Lane ``k`` takes its payload from ``values`` bits ``16k..``; a
    lane's ``i_stream.valid`` is ``valid`` and every lane ready (so all lanes accept together);
    the sink is ready for all. ``in_ready``, ``out_valid``, ``out_last`` and ``out_beats`` (7
    bits per lane) expose every lane, so a lane that leaves lockstep is seen."""

    def __init__(self, params, count):
        self.lanes = [build(params) for _ in range(count)]
        self.values = Signal(16 * count)
        self.valid = Signal()
        self.in_ready = Signal(count)
        self.out_valid = Signal(count)
        self.out_beats = Signal(term_layout.size * count)

    def elaborate(self, platform):
        m = Module()
        all_ready = self.in_ready.all()
        for k, lane in enumerate(self.lanes):
            m.submodules[f"lane{k}"] = lane
            m.d.comb += [
                lane.i_stream.payload.eq(self.values.word_select(k, 16)),
                lane.i_stream.valid.eq(self.valid & all_ready),
                lane.o_stream.ready.eq(1),
                self.in_ready[k].eq(lane.i_stream.ready),
                self.out_valid[k].eq(lane.o_stream.valid),
                self.out_beats.word_select(k, term_layout.size).eq(
                    Value.cast(lane.o_stream.payload)),
            ]
        return m


def test_encoder_every_bf16_pattern_back_to_back():
    """All 65,536 patterns (NAF) through 16 encoders in lockstep, each one fed values with
    equal beat counts back to back: one beat per cycle per lane, every beat as golden."""
    params = FPTermEncoderParams()
    count = 16
    patterns = sweep_patterns("all")
    expected_all = expected_beats(patterns, params.encoding)
    ends = np.flatnonzero(expected_all[:, 2])
    beats_per_value = np.diff(np.concatenate([[-1], ends]))
    groups = []                                   # rows of equal beat counts, each group
    for beats in np.unique(beats_per_value):     # padded by repeating its first values
        group = patterns[beats_per_value == beats]
        groups.append(np.resize(group, -(-len(group) // count) * count))
    rows = np.concatenate(groups).reshape(-1, count)
    assert np.array_equal(np.unique(rows), patterns)
    wrapper = EncoderLanes(params, count)
    top = sim_top(wrapper)
    got = [[] for _ in range(count)]
    meta = {}

    async def testbench(ctx):
        row_bits = [sum(int(v) << (16 * k) for k, v in enumerate(row)) for row in rows]
        sent = 0
        total = sum(len(expected_beats(row[:1], params.encoding)) for row in rows) * count
        received = 0
        while received < total:
            ctx.set(wrapper.valid, sent < len(rows))
            if sent < len(rows):
                ctx.set(wrapper.values, row_bits[sent])
            _, _, ready, valid, beats, now = await ctx.tick().sample(
                wrapper.in_ready, wrapper.out_valid, wrapper.out_beats, top.cycle)
            assert ready in (0, (1 << count) - 1), f"lanes left lockstep at cycle {now}"
            assert valid in (0, (1 << count) - 1), f"lanes left lockstep at cycle {now}"
            if sent < len(rows) and ready:
                meta.setdefault("first_in", now)
                sent += 1
            if valid:
                meta.setdefault("first_out", now)
                for k in range(count):
                    got[k].append(unpack_term((beats >> (term_layout.size * k))
                                              & ((1 << term_layout.size) - 1)))
                received += count
            else:
                assert received == 0, f"bubble after {received} beats at cycle {now}"

    run_simulation(top, testbench)
    for k in range(count):
        expected = expected_beats(rows[:, k], params.encoding)
        assert np.array_equal(np.array(got[k]), expected), f"lane {k}"
    assert meta["first_out"] - meta["first_in"] == wrapper.lanes[0].latency


@pytest.mark.parametrize("encoding", ["booth", "binary", "naf"])
def test_encoder_relevant_patterns_with_idle_and_backpressure(encoding):
    params = FPTermEncoderParams(encoding=encoding)
    rng = np.random.default_rng(len(encoding))
    patterns = sweep_patterns("relevant")[rng.permutation(1280)]
    beats, expected, _, _ = encode_stream(params, patterns, idle=random_pattern(0.3, seed=rng),
                                          stall=random_pattern(0.4, seed=rng))
    assert np.array_equal(beats, expected)


def test_encoder_expected_beats_reassemble_the_significand():
    """The golden beat list itself: terms sum to the signed significand, zero beats alone."""
    patterns = sweep_patterns("all")
    for encoding in ("naf", "booth", "binary"):
        beats = expected_beats(patterns, encoding)
        ends = np.flatnonzero(beats[:, 2]) + 1
        starts = np.concatenate([[0], ends[:-1]])
        assert len(ends) == len(patterns)
        values = np.add.reduceat(np.where(beats[:, 3] == 1, 0, (1 - 2 * beats[:, 0])
                                          << beats[:, 1]), starts)
        significand = np.where(((patterns >> 7) & 0xFF) == 0, 0, (patterns & 0x7F) | 0x80)
        assert np.array_equal(values, np.where(patterns >> 15, -significand, significand))
        # positions strictly decrease within a value (most significant first)
        same = np.ones(len(beats), bool)
        same[starts] = False
        assert np.all(np.diff(beats[:, 1])[same[1:]] < 0)


# --- PE and MAC -------------------------------------------------------------------------------

def run_dots(params, dots, *, idle=None, stall=None):
    """Stream ``dots`` through the PE/MAC; return results, cycles and transfer cycles."""
    dut = build(params)
    top = sim_top(dut)
    payloads = set_payloads(params, dots)
    result = {}

    async def source(ctx):
        result["in"] = await stream_send(ctx, dut.i_stream, payloads, cycle=top.cycle,
                                         idle=idle)

    async def sink(ctx):
        result["out"] = await stream_receive(ctx, dut.o_stream, len(dots), cycle=top.cycle,
                                             stall=stall, timeout=5000)

    run_simulation(top, source, sink)
    got = [unpack_result(bits) for bits in result["out"][0]]
    return got, np.array(result["in"]), np.array(result["out"][1])


def check_dots(params, dots, **kwargs):
    got, in_cycles, out_cycles = run_dots(params, dots, **kwargs)
    results, cycles = golden_results(params, dots)
    for index, ((result, count), want, want_cycles) in enumerate(zip(got, results, cycles)):
        assert (result, count) == (want, want_cycles), (
            f"dot product #{index} a={dots[index][0].tolist()} b={dots[index][1].tolist()}: "
            f"got ({result:#010x}, {count}), golden ({want:#010x}, {want_cycles})")
    return cycles, in_cycles, out_cycles


CONFIGS = [
    FPRakerParams(lanes=8, acc_width=28, encoding="naf"),
    FPRakerParams(lanes=1, acc_width=16, encoding="booth"),
    FPRakerParams(lanes=3, acc_width=24, encoding="binary"),
    FPRakerParams(lanes=4, acc_width=48, encoding="booth"),
    BF16MACParams(lanes=8, acc_width=28),
    BF16MACParams(lanes=1, acc_width=16),
    BF16MACParams(lanes=3, acc_width=48),
]


@pytest.mark.parametrize("params", CONFIGS, ids=pid)
def test_special_and_random_with_idle_and_backpressure(params):
    rng = np.random.default_rng(params.lanes * 7 + params.acc_width)
    dots = special_dot_products(params) + random_dot_products(params, 40, rng)
    order = rng.permutation(len(dots))
    check_dots(params, [dots[i] for i in order], idle=random_pattern(0.3, seed=rng),
               stall=random_pattern(0.5, seed=rng))


@pytest.mark.parametrize("params", [CONFIGS[0], CONFIGS[2], CONFIGS[4]], ids=pid)
def test_cycles_equal_the_cycle_model_at_full_rate(params):
    """Steady source, ready sink: dot product k starts exactly cycles[k-1] after k-1, and a
    result comes 2 cycles after its last set (more when that set takes more cycles)."""
    rng = np.random.default_rng(11)
    dots = random_dot_products(params, 40, rng, max_sets=3)
    cycles, in_cycles, out_cycles = check_dots(params, dots)
    starts = in_cycles[np.concatenate([[0], np.cumsum([a.shape[0] for a, _ in dots])[:-1]])]
    assert np.diff(starts).tolist() == cycles[:-1]
    # a result is offered the cycle after the dot product's last cycle of work, which is the
    # cycle the next dot product's first set is taken
    assert (out_cycles[:-1] - starts[1:]).tolist() == [1] * (len(dots) - 1)
    ends = in_cycles[np.cumsum([a.shape[0] for a, _ in dots]) - 1]
    assert (out_cycles - ends).min() >= 2
    if isinstance(params, BF16MACParams):
        assert (out_cycles - ends).tolist() == [2] * len(dots)
        assert cycles == [a.shape[0] for a, _ in dots]


@pytest.mark.parametrize("params", [CONFIGS[0], CONFIGS[4]], ids=pid)
def test_long_accumulation_and_sink_stalls(params):
    """A 200-set dot product and results held by long backpressure bursts."""
    rng = np.random.default_rng(13)
    parts = random_dot_products(params, 200, rng, max_sets=1)
    long = (np.concatenate([a for a, _ in parts]), np.concatenate([b for _, b in parts]))
    short = random_dot_products(params, 12, rng, max_sets=1)
    stall = iter(([True] * 30 + [False]) * 100)
    _, _, out_cycles = check_dots(params, [long] + short, stall=stall)
    assert np.all(np.diff(out_cycles) >= 1)


def test_pe_equals_mac_when_nothing_truncates():
    """Same-exponent lanes: the two designs give identical results, FPRaker in more cycles."""
    rng = np.random.default_rng(17)
    exponent = rng.integers(110, 140, (20, 1, 1))
    shape = (20, 2, 8)
    a = rng.integers(0, 2, shape) << 15 | exponent << 7 | rng.integers(0, 128, shape)
    b = rng.integers(0, 2, shape) << 15 | (254 - exponent) << 7 | rng.integers(0, 128, shape)
    dots = list(zip(a, b))
    pe, _, _ = run_dots(FPRakerParams(), dots)
    mac, _, _ = run_dots(BF16MACParams(), dots)
    assert [r for r, _ in pe] == [r for r, _ in mac]
    assert all(c > 2 for _, c in pe) and all(c == 2 for _, c in mac)
