# amaranth: UnusedElaboratable=no
"""hw.dpred: DPRedEncoder and DPRedDecoder in amaranth.sim against golden.dpred.

* Construction: properties, signatures, keyword-only, every parameter error message.
* Encoder: words bit for bit equal to `golden.dpred.encode_words` over a grid of group sizes,
  value widths, signedness and word widths, with edge-case and random tensors sent back to back,
  random idle cycles and backpressure.
* Round trip: encoder -> decoder in one test top; the decoder's values equal the input exactly,
  every tensor ends with a clean status beat. Exhaustive over every tensor of 1 to 4 two-bit
  values (signed and unsigned, group size 2).
* Decoder on corrupted words: exactly `golden.dpred.scan_words`'s values, then the error flag,
  and the next tensor decodes correctly (no hang, no leftover state).
* Throughput and latency: one value per cycle on both sides when a field fits a word; the
  ``latency`` properties measured.
"""

import dataclasses
import sys

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from golden import dpred
from hw.blocks import emit_verilog, verilog_ports
from hw.dpred import (DPRedDecoder, DPRedEncoder, DPRedLoopback, decoded_layout, length_layout,
                      value_layout, word_layout)
from hw.params import DPRedParams
from sim.streams import never, random_pattern
from sim.tb_dpred_decoder import corrupted_streams, golden_scan, widened_stream
from sim.tb_dpred_encoder import edge_case_tensors, golden_words, pack_values, random_tensors

from helpers import run_simulation, sim_top, stream_receive, stream_send


def config_id(params):
    return (f"g{params.group_size}-v{params.value_width}-{'s' if params.signed else 'u'}"
            f"-w{params.word_width}")


CONFIGS = [
    DPRedParams(),
    DPRedParams(group_size=16, value_width=8, signed=True, word_width=32),
    DPRedParams(group_size=16, value_width=8, signed=False, word_width=8),
    DPRedParams(group_size=1, value_width=2, signed=True, word_width=8),
    DPRedParams(group_size=3, value_width=12, signed=False, word_width=16),
    DPRedParams(group_size=7, value_width=32, signed=True, word_width=64),
    DPRedParams(group_size=32, value_width=16, signed=False, word_width=16),
    DPRedParams(group_size=256, value_width=8, signed=True, word_width=64),
]


# The precision detector ORs a group as one linear chain of `|`; with 256 values amaranth.sim's
# recursive expression compiler needs more than Python's default recursion limit.
sys.setrecursionlimit(max(sys.getrecursionlimit(), 20000))


def component(cls, params):
    return cls(**dataclasses.asdict(params))


# --- construction ---------------------------------------------------------------------------

@pytest.mark.parametrize("cls", [DPRedEncoder, DPRedDecoder])
@pytest.mark.parametrize("params", [DPRedParams(), CONFIGS[4]], ids=config_id)
def test_properties_and_signature(cls, params):
    dut = component(cls, params)
    assert dut.params == params
    for name, value in dataclasses.asdict(params).items():
        assert getattr(dut, name) == value
        with pytest.raises(AttributeError):
            setattr(dut, name, value)
    members = dut.signature.members
    if cls is DPRedEncoder:
        assert members["i_stream"] == In(stream.Signature(value_layout(params)))
        assert members["o_stream"] == Out(stream.Signature(word_layout(params)))
        assert dut.latency == 3
    else:
        assert members["i_stream"] == In(stream.Signature(word_layout(params)))
        assert members["i_length"] == In(stream.Signature(length_layout(params)))
        assert members["o_stream"] == Out(stream.Signature(decoded_layout(params)))
        assert dut.latency == 2
    value = value_layout(params)["value"].shape
    assert (value.width, value.signed) == (params.value_width, params.signed)
    assert word_layout(params)["word"].shape.width == params.word_width
    with pytest.raises(TypeError):
        cls(16)  # noqa: keyword-only


@pytest.mark.parametrize("cls", [DPRedEncoder, DPRedDecoder, DPRedParams])
@pytest.mark.parametrize("kwargs,error,message", [
    ({"group_size": 0}, ValueError, r"^group_size must be an integer from 1 to 256, not 0$"),
    ({"group_size": 257}, ValueError, r"^group_size must be an integer from 1 to 256, not 257$"),
    ({"group_size": "4"}, TypeError, r"^group_size must be an integer from 1 to 256, not '4'$"),
    ({"value_width": 1}, ValueError, r"^value_width must be an integer from 2 to 32, not 1$"),
    ({"value_width": 33}, ValueError, r"^value_width must be an integer from 2 to 32, not 33$"),
    ({"signed": 1}, TypeError, r"^signed must be True or False, not 1$"),
    ({"word_width": 24}, ValueError, r"^word_width must be one of 8, 16, 32, 64, not 24$"),
    ({"word_width": 32.0}, TypeError, r"^word_width must be one of 8, 16, 32, 64, not 32\.0$"),
    ({"word_width": True}, TypeError, r"^word_width must be one of 8, 16, 32, 64, not True$"),
    ({"length_width": 0}, ValueError, r"^length_width must be an integer from 1 to 32, not 0$"),
    ({"length_width": 33}, ValueError,
     r"^length_width must be an integer from 1 to 32, not 33$"),
])
def test_invalid_parameters(cls, kwargs, error, message):
    with pytest.raises(error, match=message):
        cls(**kwargs)


@pytest.mark.parametrize("layout", [value_layout, word_layout, length_layout, decoded_layout])
def test_layouts_need_params(layout):
    with pytest.raises(TypeError, match=r"^params must be a DPRedParams, not 16$"):
        layout(16)


def test_params_derived_widths():
    for v in range(2, 33):
        params = DPRedParams(value_width=v)
        assert params.header_width == dpred.header_width(v)
        assert 1 << params.header_width >= v > 1 << (params.header_width - 1)
        assert params.field_max == params.header_width + v
        assert params.buffer_width == params.word_width + params.field_max - 1
    params = DPRedParams(group_size=5, value_width=12, signed=False, word_width=16)
    assert DPRedParams.from_env(params.to_env()) == params


@pytest.mark.parametrize("block,module", [("dpred_encoder", "dpred_encoder"),
                                          ("dpred_decoder", "dpred_decoder")])
def test_verilog_ports(block, module):
    params = DPRedParams(group_size=4, value_width=8, word_width=16, length_width=12)
    text, _ = emit_verilog(block, params)
    ports = {port["name"]: (port["direction"], port["width"])
             for port in verilog_ports(text, module)}
    values, words = 8 + 1, 16 + 1
    if block == "dpred_encoder":
        expected = {"i_stream__payload": ("input", values), "o_stream__payload": ("output", words)}
    else:
        expected = {"i_stream__payload": ("input", words), "o_stream__payload": ("output", 10),
                    "i_length__payload": ("input", 12), "i_length__valid": ("input", 1),
                    "i_length__ready": ("output", 1)}
    expected |= {"i_stream__valid": ("input", 1), "i_stream__ready": ("output", 1),
                 "o_stream__valid": ("output", 1), "o_stream__ready": ("input", 1),
                 "clk": ("input", 1), "rst": ("input", 1)}
    assert ports == expected


# --- simulation harness ---------------------------------------------------------------------

def simulate_encoder(params, tensors, *, idle=None, stall=None):
    """Send ``tensors`` back to back; return ``(words, lasts, in_cycles, out_cycles)``."""
    dut = component(DPRedEncoder, params)
    top = sim_top(dut)
    expected = sum(len(golden_words(params, t)) for t in tensors)
    payloads = [bits for tensor in tensors for bits in pack_values(params, tensor)]
    result = {}

    async def source(ctx):
        result["in"] = await stream_send(ctx, dut.i_stream, payloads, cycle=top.cycle,
                                         idle=idle)

    async def sink(ctx):
        result["out"] = await stream_receive(ctx, dut.o_stream, expected, cycle=top.cycle,
                                             stall=stall, drain_cycles=3 * params.group_size + 8)

    run_simulation(top, source, sink)
    layout = word_layout(params)
    received = [layout.from_bits(bits) for bits in result["out"][0]]
    return ([int(word.word) for word in received], [int(word.last) for word in received],
            np.array(result["in"]), np.array(result["out"][1]))


def expected_words(params, tensors):
    words, lasts = [], []
    for tensor in tensors:
        golden = golden_words(params, tensor).tolist()
        words += golden
        lasts += [0] * (len(golden) - 1) + [1]
    return words, lasts


class RoundTrip(Elaboratable):
    """Test-only: encoder -> decoder; the decoder's length stream is driven by the test."""

    def __init__(self, params):
        self.encoder = component(DPRedEncoder, params)
        self.decoder = component(DPRedDecoder, params)

    def elaborate(self, platform):
        m = Module()
        m.submodules.encoder = self.encoder
        m.submodules.decoder = self.decoder
        wiring.connect(m, encoder=self.encoder.o_stream, decoder=self.decoder.i_stream)
        return m


def simulate_decoder(params, streams, *, idle=None, stall=None, round_trip=False):
    """Decode ``streams`` (``[(payloads, length)]``) back to back; return the output beats.

    With ``round_trip`` the payloads are encoder input values and go through the encoder;
    otherwise they are decoder words.
    """
    if round_trip:
        top_dut = RoundTrip(params)
        dut, inlet = top_dut.decoder, top_dut.encoder.i_stream
    else:
        top_dut = dut = component(DPRedDecoder, params)
        inlet = dut.i_stream
    top = sim_top(top_dut)
    lengths = [length_layout(params).const({"length": length}).as_bits()
               for _, length in streams]
    payloads = [bits for stream_payloads, _ in streams for bits in stream_payloads]
    result = {}

    async def source(ctx):
        result["in"] = await stream_send(ctx, inlet, payloads, cycle=top.cycle, idle=idle)

    async def length_source(ctx):
        # lengths wait for their tensors by design: only the data streams time out
        await stream_send(ctx, dut.i_length, lengths, cycle=top.cycle, timeout=1 << 30)

    async def sink(ctx):
        expected = sum(len(golden_scan(params, *stream_and_length)[0]) + 1
                       for stream_and_length in result["golden"])
        result["out"] = await stream_receive(ctx, dut.o_stream, expected, cycle=top.cycle,
                                             stall=stall)

    layout = word_layout(params)
    result["golden"] = []
    for stream_payloads, length in streams:
        if round_trip:
            values = np.array([int(value_layout(params).from_bits(bits).value)
                               for bits in stream_payloads], dtype=np.int64)
            words = golden_words(params, values).tolist()
        else:
            words = [int(layout.from_bits(bits).word) for bits in stream_payloads]
        result["golden"].append((words, length))
    run_simulation(top, source, length_source, sink)
    beats = [decoded_layout(params).from_bits(bits) for bits in result["out"][0]]
    return beats, result["golden"], np.array(result["in"]), np.array(result["out"][1])


def word_payloads(params, words):
    layout = word_layout(params)
    return [layout.const({"word": int(word), "last": int(index == len(words) - 1)}).as_bits()
            for index, word in enumerate(words)]


def check_decoded(params, beats, golden):
    """Split ``beats`` per tensor and compare each with `scan_words` of its words."""
    position = 0
    for words, length in golden:
        values, error = golden_scan(params, words, length)
        got = beats[position:position + len(values) + 1]
        position += len(values) + 1
        assert [int(b.value) for b in got[:-1]] == values.tolist()
        assert all(not int(b.last) and not int(b.error) for b in got[:-1])
        assert (int(got[-1].last), int(got[-1].value)) == (1, 0)
        assert int(got[-1].error) == (error is not None), (error, words, length)
    assert position == len(beats)


def sample_tensors(params, rng):
    """Edge cases and random tensors; fewer for large groups (simulation time)."""
    if params.group_size > 64:
        edge = edge_case_tensors(params)
        return edge[:2] + [edge[-1][:2 * params.group_size]] + random_tensors(params, 1, rng)
    return edge_case_tensors(params) + random_tensors(params, 10, rng)


# --- encoder --------------------------------------------------------------------------------

@pytest.mark.parametrize("params", CONFIGS, ids=config_id)
def test_encoder_matches_golden_words(params):
    rng = np.random.default_rng(params.group_size * 100 + params.value_width)
    tensors = sample_tensors(params, rng)
    words, lasts, _, _ = simulate_encoder(params, tensors, idle=random_pattern(0.3, seed=rng),
                                          stall=random_pattern(0.4, seed=rng))
    want_words, want_lasts = expected_words(params, tensors)
    assert lasts == want_lasts
    assert words == want_words


def test_encoder_long_backpressure_bursts():
    params = DPRedParams(group_size=4, value_width=16, word_width=16)
    tensors = random_tensors(params, 10, np.random.default_rng(3))
    stall = iter(([True] * 9 + [False] * 3) * 10000)
    words, lasts, _, out_cycles = simulate_encoder(params, tensors, stall=stall)
    assert (words, lasts) == expected_words(params, tensors)
    assert len(set(out_cycles % 12)) <= 3


# --- round trip and decoder -----------------------------------------------------------------

@pytest.mark.parametrize("params", CONFIGS, ids=config_id)
def test_round_trip_exact(params):
    rng = np.random.default_rng(params.group_size * 7 + params.word_width)
    tensors = sample_tensors(params, rng)
    streams = [(pack_values(params, tensor), len(tensor)) for tensor in tensors]
    beats, golden, _, _ = simulate_decoder(params, streams, idle=random_pattern(0.3, seed=rng),
                                           stall=random_pattern(0.3, seed=rng), round_trip=True)
    check_decoded(params, beats, golden)
    position = 0
    for tensor in tensors:
        assert [int(b.value) for b in beats[position:position + len(tensor)]] == tensor.tolist()
        assert int(beats[position + len(tensor)].error) == 0
        position += len(tensor) + 1


@pytest.mark.parametrize("signed", [True, False], ids=["s", "u"])
def test_round_trip_exhaustive_small(signed):
    """Every tensor of 1..4 two-bit values, group size 2, through encoder and decoder."""
    params = DPRedParams(group_size=2, value_width=2, signed=signed, word_width=8)
    alphabet = range(params.min_value, params.max_value + 1)
    tensors = []
    for length in range(1, 5):
        grid = np.stack(np.meshgrid(*[list(alphabet)] * length, indexing="ij"), axis=-1)
        tensors += list(grid.reshape(-1, length).astype(np.int64))
    assert len(tensors) == 4 + 16 + 64 + 256
    words, lasts, _, _ = simulate_encoder(params, tensors)
    assert (words, lasts) == expected_words(params, tensors)
    streams = [(pack_values(params, tensor), len(tensor)) for tensor in tensors]
    beats, _, _, _ = simulate_decoder(params, streams, round_trip=True)
    expected = [value for tensor in tensors for value in tensor.tolist() + ["end"]]
    got = ["end" if int(b.last) else int(b.value) for b in beats]
    assert got == expected
    assert not any(int(b.error) for b in beats)


@pytest.mark.parametrize("params", [DPRedParams(group_size=4, value_width=8, word_width=16),
                                    DPRedParams(group_size=5, value_width=12, signed=False,
                                                word_width=16),
                                    DPRedParams(group_size=3, value_width=6, word_width=8)],
                         ids=config_id)
def test_decoder_corrupted_words(params):
    rng = np.random.default_rng(params.value_width)
    tensors = random_tensors(params, 8, rng)
    corrupted = corrupted_streams(params, tensors, rng)
    # a good tensor after every corrupt one: no state survives an error
    streams = []
    for words, length in corrupted:
        streams.append((word_payloads(params, words), length))
        good = random_tensors(params, 1, rng)[0]
        streams.append((word_payloads(params, golden_words(params, good)), len(good)))
    beats, golden, _, _ = simulate_decoder(params, streams, idle=random_pattern(0.2, seed=rng),
                                           stall=random_pattern(0.2, seed=rng))
    check_decoded(params, beats, golden)
    errors = sum(golden_scan(params, words, length)[1] is not None for words, length in golden)
    assert errors >= len(corrupted) // 2


def test_decoder_out_of_range_header_sends_no_value():
    params = DPRedParams(group_size=2, value_width=5, word_width=8)
    # header 7 -> p = 8 > 5 in the first group: nothing of it may come out
    beats, _, _, _ = simulate_decoder(params, [(word_payloads(params, [0b111, 0xFF]), 2)])
    assert [(int(b.value), int(b.last), int(b.error)) for b in beats] == [(0, 1, 1)]
    _, error = golden_scan(params, [0b111, 0xFF], 2)
    assert error.startswith("corrupt header: group 0 has precision 8")


# --- throughput and latency -----------------------------------------------------------------

@pytest.mark.parametrize("params", [DPRedParams(), DPRedParams(group_size=3, value_width=8,
                                                               word_width=16)], ids=config_id)
def test_full_throughput_and_latency(params):
    rng = np.random.default_rng(11)
    tensor = np.resize(random_tensors(params, 1, rng, max_groups=6)[0], 6 * params.group_size)
    _, _, in_cycles, out_cycles = simulate_encoder(params, [tensor], idle=never(), stall=never())
    assert in_cycles.tolist() == list(range(in_cycles[0], in_cycles[0] + len(tensor)))
    streams = [(word_payloads(params, golden_words(params, tensor)), len(tensor))]
    beats, _, word_cycles, value_cycles = simulate_decoder(params, streams)
    values = value_cycles[:-1]
    assert values.tolist() == list(range(values[0], values[0] + len(tensor)))
    decoder = component(DPRedDecoder, params)
    # the first value is complete in the first word
    assert values[0] - word_cycles[0] == decoder.latency


def test_encoder_latency_single_value_group():
    params = DPRedParams(group_size=1, value_width=8, word_width=8)
    encoder = component(DPRedEncoder, params)
    # p - 1 = 7 (3 bits) and 8 value bits: the header word is full after the first push
    _, _, in_cycles, out_cycles = simulate_encoder(params, [np.array([-128, 5])],
                                                   idle=never(), stall=never())
    assert out_cycles[0] - in_cycles[0] == encoder.latency


@pytest.mark.parametrize("params", [DPRedParams(), DPRedParams(group_size=3, value_width=8,
                                                               word_width=64),
                                    DPRedParams(group_size=4, value_width=16, word_width=8),
                                    DPRedParams(group_size=1, value_width=2, signed=False,
                                                word_width=8)],
                         ids=config_id)
def test_cycles_equal_the_golden_cycle_model(params):
    """Without idle cycles or backpressure every transfer happens in the modelled cycle."""
    rng = np.random.default_rng(params.group_size + params.word_width)
    kwargs = dict(value_width=params.value_width, signed=params.signed,
                  group_size=params.group_size, word_width=params.word_width)
    for tensor in random_tensors(params, 3, rng, max_groups=5) + edge_case_tensors(params)[:3]:
        _, _, in_cycles, out_cycles = simulate_encoder(params, [tensor])
        want_in, want_out = dpred.encoder_cycles(tensor, **kwargs)
        assert in_cycles.tolist() == want_in.tolist()
        assert out_cycles.tolist() == want_out.tolist()
        streams = [(word_payloads(params, golden_words(params, tensor)), len(tensor))]
        _, _, word_cycles, value_cycles = simulate_decoder(params, streams)
        want_words, want_values = dpred.decoder_cycles(tensor, **kwargs)
        assert word_cycles.tolist() == want_words.tolist()
        assert value_cycles.tolist() == want_values.tolist()


def test_loopback_block_round_trip_and_tap():
    params = DPRedParams(group_size=4, value_width=8, word_width=16)
    dut = component(DPRedLoopback, params)
    assert dut.latency == 5 and dut.params == params
    assert dut.signature.members["tap"] == Out(word_layout(params))
    rng = np.random.default_rng(21)
    tensors = edge_case_tensors(params)[:4] + random_tensors(params, 6, rng)
    top = sim_top(dut)
    result = {"tap": []}
    payloads = [bits for tensor in tensors for bits in pack_values(params, tensor)]
    lengths = [length_layout(params).const({"length": len(t)}).as_bits() for t in tensors]
    expected_beats = sum(len(t) + 1 for t in tensors)

    async def source(ctx):
        await stream_send(ctx, dut.i_stream, payloads, cycle=top.cycle,
                          idle=random_pattern(0.3, seed=1))

    async def length_source(ctx):
        await stream_send(ctx, dut.i_length, lengths, cycle=top.cycle, timeout=1 << 30)

    async def sink(ctx):
        result["out"] = await stream_receive(ctx, dut.o_stream, expected_beats, cycle=top.cycle,
                                             stall=random_pattern(0.3, seed=2))
        result["done"] = True

    async def tap(ctx):
        while "done" not in result:
            _, _, valid, word = await ctx.tick().sample(dut.tap_valid, dut.tap)
            if valid:
                result["tap"].append((int(word.word), int(word.last)))

    run_simulation(top, source, length_source, sink, tap)
    beats = [decoded_layout(params).from_bits(bits) for bits in result["out"][0]]
    assert ["end" if int(b.last) else int(b.value) for b in beats] == [
        v for t in tensors for v in t.tolist() + ["end"]]
    assert not any(int(b.error) for b in beats)
    assert result["tap"] == list(zip(*expected_words(params, tensors)))


@pytest.mark.parametrize("signed", [True, False], ids=["s", "u"])
def test_decoder_over_wide_headers_exhaustive(signed):
    """Every pair of 3-bit values written with every width that holds them: the decoder flags
    exactly the non-minimal headers, after sending the first value only."""
    params = DPRedParams(group_size=2, value_width=3, signed=signed, word_width=8)
    alphabet = range(params.min_value, params.max_value + 1)
    streams = []
    for a in alphabet:
        for b in alphabet:
            tensor = np.array([a, b])
            streams.append((word_payloads(params, golden_words(params, tensor)), 2))
            for extra in (1, 2):
                widened = widened_stream(params, tensor, extra)
                if widened is not None:
                    streams.append((word_payloads(params, widened), 2))
    beats, golden, _, _ = simulate_decoder(params, streams)
    check_decoded(params, beats, golden)
    flagged = sum(golden_scan(params, *stream)[1] is not None for stream in golden)
    assert flagged == len(streams) - len(alphabet) ** 2

