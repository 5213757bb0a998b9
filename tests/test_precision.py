# amaranth: UnusedElaboratable=no
"""hw.precision: DynamicPrecisionDetector in amaranth.sim against golden.precision.

* Stream tests: every combination of group size {1, 2, 4, 16}, value width {1, 2, 8, 16, 32},
  signed/unsigned, trimming on/off and pipelined on/off, each fed edge cases and seeded random
  groups with random idle cycles and backpressure; every output is compared in order with
  `golden.precision.group_precision`, nothing may be lost or added, and the latency read from
  the component is checked against the cycles of the transfers.
* Exhaustive tests of the combinational datapath: every single value of every width up to 16
  bits and every group of two 8-bit values, signed and unsigned, trimming on and off. To make
  them fast, one simulation step evaluates `EXHAUSTIVE_LANES` detector instances side by side
  and no clock is simulated.
"""

import dataclasses
import itertools

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from golden.precision import group_precision
from hw.blocks import emit_verilog, verilog_ports
from hw.layouts import group_layout, pack_group, precision_layout, unpack_precision
from hw.params import PrecisionParams
from hw.precision import DynamicPrecisionDetector
from sim.streams import never, random_pattern
from sim.tb_precision import edge_case_groups, random_groups

from helpers import run_simulation, sim_top, stream_receive, stream_send

GROUP_SIZES = [1, 2, 4, 16]
VALUE_WIDTHS = [1, 2, 8, 16, 32]
EXHAUSTIVE_LANES = 16


def config_id(params):
    """Return a pytest id such as ``g16-w16-s-trim-pipe``."""
    return (f"g{params.group_size}-w{params.value_width}-{'s' if params.signed else 'u'}"
            f"-{'trim' if params.trim_lsb else 'notrim'}"
            f"-{'pipe' if params.pipelined else 'comb'}")


ALL_CONFIGS = [PrecisionParams(group_size=g, value_width=w, signed=s, trim_lsb=t, pipelined=p)
               for g, w, s, t, p in itertools.product(GROUP_SIZES, VALUE_WIDTHS, [True, False],
                                                      [False, True], [False, True])]


def golden(params, groups):
    """Return ``(width, lsb)`` of ``groups`` from the golden model."""
    return group_precision(np.asarray(groups, dtype=np.int64), value_width=params.value_width,
                           signed=params.signed, trim_lsb=params.trim_lsb)


def simulate_stream(params, groups, *, idle=None, stall=None):
    """Stream ``groups`` through a detector; return ``(width, lsb, in_cycles, out_cycles)``."""
    dut = DynamicPrecisionDetector(**dataclasses.asdict(params))
    top = sim_top(dut)
    result = {}

    async def source(ctx):
        payloads = [pack_group(params, group) for group in groups]
        result["in"] = await stream_send(ctx, dut.i_stream, payloads, cycle=top.cycle, idle=idle)

    async def sink(ctx):
        result["out"] = await stream_receive(ctx, dut.o_stream, len(groups), cycle=top.cycle,
                                             stall=stall)

    run_simulation(top, source, sink, vcd_name=f"precision-{config_id(params)}")
    payloads, out_cycles = result["out"]
    unpacked = np.array([unpack_precision(params, bits) for bits in payloads],
                        dtype=np.int64).reshape(-1, 2)
    return unpacked[:, 0], unpacked[:, 1], np.array(result["in"]), np.array(out_cycles)


def check_stream(params, groups, *, idle=None, stall=None):
    """Stream ``groups`` and check results, order, count and latency; return the cycles."""
    width, lsb, in_cycles, out_cycles = simulate_stream(params, groups, idle=idle, stall=stall)
    expected_width, expected_lsb = golden(params, groups)
    assert len(in_cycles) == len(groups) and len(width) == len(groups)
    bad = np.flatnonzero((width != expected_width) | (lsb != expected_lsb))
    assert bad.size == 0, (f"{bad.size} mismatches, first group #{bad[0]} "
                           f"{groups[bad[0]].tolist()}: got ({width[bad[0]]}, {lsb[bad[0]]}), "
                           f"expected ({expected_width[bad[0]]}, {expected_lsb[bad[0]]})")
    latency = DynamicPrecisionDetector(**dataclasses.asdict(params)).latency
    assert np.all(out_cycles - in_cycles >= latency)
    # The detector holds at most `latency` groups (one register stage or none), so group
    # k + latency is accepted no earlier than group k leaves; with latency 0, in the same cycle.
    assert np.all(in_cycles[latency:] >= out_cycles[:len(out_cycles) - latency])
    return in_cycles, out_cycles


# --- construction ---------------------------------------------------------------------------

@pytest.mark.parametrize("params", [PrecisionParams(),
                                    PrecisionParams(group_size=3, value_width=5, signed=False,
                                                    trim_lsb=True, pipelined=True)],
                         ids=config_id)
def test_constructor_properties_and_signature(params):
    kwargs = dataclasses.asdict(params)
    dut = DynamicPrecisionDetector(**kwargs)
    assert dut.params == params
    for name, value in kwargs.items():
        assert getattr(dut, name) == value
    assert dut.latency == (1 if params.pipelined else 0)
    assert dut.signature.members["i_stream"] == In(stream.Signature(group_layout(params)))
    assert dut.signature.members["o_stream"] == Out(stream.Signature(precision_layout(params)))
    element = group_layout(params).elem_shape
    assert (element.width, element.signed) == (params.value_width, params.signed)
    assert group_layout(params).length == params.group_size
    fields = {name: field.shape for name, field in precision_layout(params)}
    assert list(fields) == (["width", "lsb"] if params.trim_lsb else ["width"])
    assert fields["width"].width == params.width_bits
    if params.trim_lsb:
        assert fields["lsb"].width == params.lsb_bits
    for name in kwargs:
        with pytest.raises(AttributeError):
            setattr(dut, name, kwargs[name])


def test_constructor_defaults_and_keyword_only():
    assert DynamicPrecisionDetector().params == PrecisionParams()
    with pytest.raises(TypeError):
        DynamicPrecisionDetector(16)  # noqa: keyword-only


@pytest.mark.parametrize("kwargs,error,message", [
    ({"group_size": 0}, ValueError, r"^group_size must be an integer from 1 to 256, not 0$"),
    ({"group_size": "4"}, TypeError, r"^group_size must be an integer from 1 to 256, not '4'$"),
    ({"value_width": 33}, ValueError, r"^value_width must be an integer from 1 to 32, not 33$"),
    ({"value_width": 8.0}, TypeError, r"^value_width must be an integer from 1 to 32, not 8\.0$"),
    ({"signed": 1}, TypeError, r"^signed must be True or False, not 1$"),
    ({"trim_lsb": None}, TypeError, r"^trim_lsb must be True or False, not None$"),
    ({"pipelined": "yes"}, TypeError, r"^pipelined must be True or False, not 'yes'$"),
])
def test_constructor_rejects_invalid_params(kwargs, error, message):
    with pytest.raises(error, match=message):
        DynamicPrecisionDetector(**kwargs)


@pytest.mark.parametrize("params", [PrecisionParams(),
                                    PrecisionParams(group_size=3, value_width=5, signed=False,
                                                    trim_lsb=True, pipelined=True)],
                         ids=config_id)
def test_verilog_ports(params):
    text, _ = emit_verilog("precision", params)
    ports = {port["name"]: (port["direction"], port["width"])
             for port in verilog_ports(text, "dynamic_precision_detector")}
    out_width = params.width_bits + (params.lsb_bits if params.trim_lsb else 0)
    expected = {
        "i_stream__payload": ("input", params.group_size * params.value_width),
        "i_stream__valid": ("input", 1), "i_stream__ready": ("output", 1),
        "o_stream__payload": ("output", out_width),
        "o_stream__valid": ("output", 1), "o_stream__ready": ("input", 1),
    }
    if params.pipelined:
        expected |= {"clk": ("input", 1), "rst": ("input", 1)}
    assert ports == expected


U8 = PrecisionParams(group_size=2, value_width=8, signed=False)
S8 = PrecisionParams(group_size=2, value_width=8, signed=True)
S32 = PrecisionParams(group_size=1, value_width=32, signed=True)


@pytest.mark.parametrize("params,values,message", [
    (U8, [300, -1], r"^values\[0\] = 300 is out of range for unsigned 8-bit values: must be "
                    r"from 0 to 255$"),
    (U8, [255, -1], r"^values\[1\] = -1 is out of range for unsigned 8-bit values: must be "
                    r"from 0 to 255$"),
    (S8, [-128, 128], r"^values\[1\] = 128 is out of range for signed 8-bit values: must be "
                      r"from -128 to 127$"),
    (S8, [-129, 0], r"^values\[0\] = -129 is out of range for signed 8-bit values: must be "
                    r"from -128 to 127$"),
    (S32, [-(1 << 31) - 1], r"^values\[0\] = -2147483649 is out of range for signed 32-bit "
                            r"values: must be from -2147483648 to 2147483647$"),
], ids=["u8-300", "u8-neg", "s8-128", "s8-neg129", "s32-low"])
def test_pack_group_rejects_out_of_range_values(params, values, message):
    with pytest.raises(ValueError, match=message):
        pack_group(params, values)


@pytest.mark.parametrize("params", [U8, S8, S32], ids=["u8", "s8", "s32"])
def test_pack_group_accepts_the_extremes(params):
    values = [params.min_value, params.max_value][:params.group_size]
    bits = pack_group(params, values)
    width = params.value_width
    fields = [(bits >> (k * width)) & ((1 << width) - 1) for k in range(params.group_size)]
    assert fields == [value & ((1 << width) - 1) for value in values]


# --- streams vs golden ----------------------------------------------------------------------

@pytest.mark.parametrize("params", ALL_CONFIGS, ids=config_id)
def test_stream_random_idle_and_backpressure(params):
    rng = np.random.default_rng(params.group_size * 1000 + params.value_width)
    groups = np.concatenate([edge_case_groups(params), random_groups(params, 48, rng)])
    groups = groups[rng.permutation(len(groups))]
    check_stream(params, groups, idle=random_pattern(0.3, seed=rng),
                 stall=random_pattern(0.4, seed=rng))


@pytest.mark.parametrize("params", [PrecisionParams(trim_lsb=True, pipelined=True),
                                    PrecisionParams(group_size=4, value_width=8, signed=False),
                                    PrecisionParams(group_size=2, value_width=32, trim_lsb=True)],
                         ids=config_id)
def test_stream_long_random(params):
    rng = np.random.default_rng(7)
    groups = random_groups(params, 1500, rng)
    check_stream(params, groups, idle=random_pattern(0.2, seed=rng),
                 stall=random_pattern(0.2, seed=rng))


@pytest.mark.parametrize("pipelined", [False, True], ids=["comb", "pipe"])
@pytest.mark.parametrize("group_size,value_width", [(16, 16), (1, 1)])
def test_latency_and_full_throughput(group_size, value_width, pipelined):
    params = PrecisionParams(group_size=group_size, value_width=value_width, trim_lsb=True,
                             pipelined=pipelined)
    latency = DynamicPrecisionDetector(**dataclasses.asdict(params)).latency
    groups = random_groups(params, 64, np.random.default_rng(3))
    in_cycles, out_cycles = check_stream(params, groups, idle=never(), stall=never())
    assert in_cycles.tolist() == list(range(in_cycles[0], in_cycles[0] + len(groups)))
    assert (out_cycles - in_cycles).tolist() == [latency] * len(groups)


@pytest.mark.parametrize("pipelined", [False, True], ids=["comb", "pipe"])
def test_long_backpressure_bursts(pipelined):
    params = PrecisionParams(group_size=4, value_width=16, trim_lsb=True, pipelined=pipelined)
    groups = random_groups(params, 60, np.random.default_rng(5))
    stall = itertools.cycle([True] * 9 + [False] * 3)
    in_cycles, out_cycles = check_stream(params, groups, stall=stall)
    # Nothing moves while the sink stalls: 3 of every 12 cycles carry a transfer.
    assert len(set(out_cycles % 12)) == 3


def test_reset_empties_pipeline():
    params = PrecisionParams(group_size=4, value_width=8, trim_lsb=True, pipelined=True)
    dut = DynamicPrecisionDetector(**dataclasses.asdict(params))
    top = sim_top(dut)
    groups = random_groups(params, 2, np.random.default_rng(11))
    result = {}

    async def testbench(ctx):
        ctx.set(dut.o_stream.ready, 0)
        ctx.set(dut.i_stream.valid, 1)
        ctx.set(dut.i_stream.payload.as_value(), pack_group(params, groups[0]))
        await ctx.tick()
        ctx.set(dut.i_stream.valid, 0)
        assert ctx.get(dut.o_stream.valid) == 1
        assert ctx.get(dut.i_stream.ready) == 0, "a full stage with a stalled sink accepted data"
        await ctx.tick().repeat(3)
        assert ctx.get(dut.o_stream.valid) == 1, "valid dropped without a transfer"
        ctx.set(top.domain.rst, 1)
        await ctx.tick()
        ctx.set(top.domain.rst, 0)
        assert ctx.get(dut.o_stream.valid) == 0, "reset did not empty the stage"
        assert ctx.get(dut.i_stream.ready) == 1
        result["in"] = await stream_send(ctx, dut.i_stream, [pack_group(params, groups[1])],
                                         cycle=top.cycle)

    async def sink(ctx):
        for _ in range(6):  # (ctx.tick().repeat() would raise DomainReset during the reset)
            await ctx.tick()
        result["out"] = await stream_receive(ctx, dut.o_stream, 1, cycle=top.cycle)

    run_simulation(top, testbench, sink)
    (bits,), _ = result["out"]
    expected_width, expected_lsb = golden(params, groups[1:])
    assert unpack_precision(params, bits) == (expected_width[0], expected_lsb[0])


def test_combinational_flow_control_passes_through():
    params = PrecisionParams(group_size=2, value_width=4, trim_lsb=True)
    dut = DynamicPrecisionDetector(**dataclasses.asdict(params))

    async def testbench(ctx):
        for valid, ready in itertools.product([0, 1], repeat=2):
            ctx.set(dut.i_stream.valid, valid)
            ctx.set(dut.o_stream.ready, ready)
            assert (ctx.get(dut.o_stream.valid), ctx.get(dut.i_stream.ready)) == (valid, ready)

    run_simulation(dut, testbench, clocked=False)


# --- exhaustive -----------------------------------------------------------------------------

class DetectorLanes(Elaboratable):
    """Test-only: ``lanes`` combinational detectors side by side behind two wide signals.

    ``groups`` holds the payload of lane ``k`` at bits ``k * group_bits``; ``precisions`` the
    output payload of lane ``k`` at bits ``k * precision_bits``.
    """

    def __init__(self, params, lanes):
        assert not params.pipelined
        self.params = params
        self.lanes = [DynamicPrecisionDetector(**dataclasses.asdict(params))
                      for _ in range(lanes)]
        self.group_bits = group_layout(params).size
        self.precision_bits = precision_layout(params).size
        self.groups = Signal(self.group_bits * lanes)
        self.precisions = Signal(self.precision_bits * lanes)

    def elaborate(self, platform):
        m = Module()
        for k, lane in enumerate(self.lanes):
            m.submodules[f"lane{k}"] = lane
            m.d.comb += [
                lane.i_stream.payload.eq(self.groups.word_select(k, self.group_bits)),
                self.precisions.word_select(k, self.precision_bits).eq(
                    lane.o_stream.payload.as_value()),
            ]
        return m


def pack_groups(params, groups):
    """Return the payload bits of each group (``uint64``), by the offsets of the group layout."""
    layout = group_layout(params)
    mask = (1 << layout.elem_shape.width) - 1
    bits = np.zeros(len(groups), dtype=np.uint64)
    for k in range(layout.length):
        offset = k * layout.elem_shape.width
        bits |= (groups[:, k].astype(np.uint64) & np.uint64(mask)) << np.uint64(offset)
    return bits


def unpack_precisions(params, bits):
    """Return ``(width, lsb)`` arrays from precision payload bits, by the layout's offsets."""
    layout = precision_layout(params)
    fields = {name: (bits >> np.uint64(field.offset)) & np.uint64((1 << field.width) - 1)
              for name, field in layout}
    lsb = fields.get("lsb", np.zeros_like(bits))
    return fields["width"].astype(np.int64), lsb.astype(np.int64)


def simulate_exhaustive(params, groups, lanes=EXHAUSTIVE_LANES):
    """Return ``(width, lsb)`` of every group, from `lanes` combinational detectors at once."""
    pad = -len(groups) % lanes
    payloads = pack_groups(params, np.concatenate([groups, groups[:pad]])).tolist()
    top = DetectorLanes(params, lanes)
    outputs = []

    async def testbench(ctx):
        for start in range(0, len(payloads), lanes):
            word = 0
            for k, payload in enumerate(payloads[start:start + lanes]):
                word |= payload << (k * top.group_bits)
            ctx.set(top.groups, word)
            word = ctx.get(top.precisions)
            mask = (1 << top.precision_bits) - 1
            outputs.extend((word >> (k * top.precision_bits)) & mask for k in range(lanes))

    run_simulation(top, testbench, clocked=False)
    return unpack_precisions(params, np.array(outputs[:len(groups)], dtype=np.uint64))


def check_exhaustive(params, groups):
    width, lsb = simulate_exhaustive(params, groups)
    expected_width, expected_lsb = golden(params, groups)
    bad = np.flatnonzero((width != expected_width) | (lsb != expected_lsb))
    assert bad.size == 0, (f"{bad.size} mismatches, first group {groups[bad[0]].tolist()}: got "
                           f"({width[bad[0]]}, {lsb[bad[0]]}), expected "
                           f"({expected_width[bad[0]]}, {expected_lsb[bad[0]]})")


@pytest.mark.parametrize("trim_lsb", [False, True], ids=["notrim", "trim"])
@pytest.mark.parametrize("signed", [True, False], ids=["s", "u"])
def test_exhaustive_single_values(signed, trim_lsb):
    for value_width in range(1, 17):
        params = PrecisionParams(group_size=1, value_width=value_width, signed=signed,
                                 trim_lsb=trim_lsb)
        values = np.arange(params.min_value, params.max_value + 1, dtype=np.int64)
        assert len(values) == 2 ** value_width
        check_exhaustive(params, values[:, None])


@pytest.mark.parametrize("trim_lsb", [False, True], ids=["notrim", "trim"])
@pytest.mark.parametrize("signed", [True, False], ids=["s", "u"])
def test_exhaustive_pairs_of_8_bit_values(signed, trim_lsb):
    params = PrecisionParams(group_size=2, value_width=8, signed=signed, trim_lsb=trim_lsb)
    values = np.arange(params.min_value, params.max_value + 1, dtype=np.int64)
    pairs = np.stack(np.meshgrid(values, values, indexing="ij"), axis=-1).reshape(-1, 2)
    assert len(np.unique(pairs, axis=0)) == 65536
    check_exhaustive(params, pairs)



# --- the harness itself must be able to fail ---------------------------------------------------

class _RuleBreakingSource(wiring.Component):
    """Test-only: a stream whose payload changes every cycle and whose valid may drop."""

    o_stream: Out(stream.Signature(8))
    drop_valid: In(1)

    def elaborate(self, platform):
        m = Module()
        counter = Signal(8)
        m.d.sync += counter.eq(counter + 1)
        m.d.comb += [self.o_stream.payload.eq(counter), self.o_stream.valid.eq(~self.drop_valid)]
        return m


@pytest.mark.parametrize("drop_valid,message", [(0, "payload changed"), (1, "valid dropped")])
def test_stream_receive_detects_rule_violations(drop_valid, message):
    dut = _RuleBreakingSource()
    top = sim_top(dut)

    async def sink(ctx):
        with pytest.raises(AssertionError, match=message):
            # Stalled in the first cycle, so the offered payload must be held into the second.
            stall = itertools.chain([True], never())
            await stream_receive(ctx, dut.o_stream, 2, cycle=top.cycle, stall=stall)

    async def source_control(ctx):
        await ctx.tick()
        ctx.set(dut.drop_valid, drop_valid)

    run_simulation(top, sink, source_control)
