"""cocotb testbench of the emitted ``dynamic_precision_detector`` against the golden model.

Run through `sim.runner.run_cocotb` (see ``tests/test_cocotb_precision.py``). The environment
carries the configuration: ``PARAM_*`` (`hw.params.PrecisionParams.to_env`), ``SEED`` and
``NUM_SAMPLES``. Every received precision is compared, in order, with
`golden.precision.group_precision` of the group that was sent; each test ends by checking that
every expected result arrived and nothing else did. The last two tests check the harness
itself: its timeouts count cycles without a transfer (so runs of any length pass) and report
what is still pending, and the driver rejects payload bits wider than the stream.

The vector generators `edge_case_groups` and `random_groups` are plain numpy and are shared with
the amaranth.sim unit tests (``tests/test_precision.py``).
"""

import itertools
import os

import numpy as np
import pytest

import cocotb

from golden.precision import group_precision
from hw.layouts import group_layout, pack_group, precision_layout
from hw.params import PrecisionParams

from sim.streams import Clocking, StreamDriver, StreamMonitor, random_pattern

__all__ = ["edge_case_groups", "random_groups"]


def edge_case_groups(params):
    """Return the edge-case groups for ``params`` as an ``int64`` array ``[N, group_size]``.

    All zero; all at the minimum and at the maximum value (all ``-1`` and the most negative
    value, signed); mixed signs (extremes alternating, ``-1`` next to ``1``); a single extreme
    among zeros at the first and the last position; and, for every bit position, groups of one
    power of two (alone, negated when signed, and paired with the next power) so each
    leading-one and trailing-one position is hit.
    """
    g, w = params.group_size, params.value_width
    low, high = params.min_value, params.max_value
    groups = [np.zeros(g), np.full(g, low), np.full(g, high), np.resize([low, high], g),
              np.resize([high, low], g), np.resize([-1, 1] if params.signed else [high, 1], g)]
    if params.signed:
        groups.append(np.full(g, -1))
    for extreme in (low, high, -1 if params.signed else 1):
        for position in (0, g - 1):
            group = np.zeros(g)
            group[position] = extreme
            groups.append(group)
    for bit in range(w):
        groups.append(np.full(g, 1 << bit))
        groups.append(np.full(g, -(1 << bit)))
        pair = np.zeros(g)
        pair[0], pair[-1] = 1 << bit, 1 << min(bit + 1, w - 1)
        groups.append(pair)
    groups = np.array(groups, dtype=np.int64)
    in_range = np.all((groups >= low) & (groups <= high), axis=1)
    return np.unique(groups[in_range], axis=0)


def random_groups(params, count, rng):
    """Return ``count`` random groups ``[count, group_size]`` (``int64``) for ``params``.

    Each group draws a target width ``p`` (1..value_width) and a trailing-zero count ``t``
    (0..p-1), then values of ``p - t`` bits shifted left by ``t``, so every precision and LSB
    position is likely; a quarter of the values are then zeroed and an eighth of the groups are
    uniform over the full range.
    """
    g, w = params.group_size, params.value_width
    p = rng.integers(1, w + 1, size=(count, 1))
    t = rng.integers(0, p)
    bits = p - t
    if params.signed:
        low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    else:
        low, high = np.zeros_like(bits), (1 << bits) - 1
    values = low + (rng.random((count, g)) * (high - low + 1)).astype(np.int64)
    values = np.minimum(values, high) << t
    values[rng.random((count, g)) < 0.25] = 0
    uniform = rng.random(count) < 0.125
    values[uniform] = rng.integers(params.min_value, params.max_value + 1,
                                   size=(int(uniform.sum()), g))
    return values.astype(np.int64)


def _config():
    params = PrecisionParams.from_env(os.environ)
    seed = int(os.environ.get("SEED", "1"))
    num_samples = int(os.environ.get("NUM_SAMPLES", "500"))
    return params, seed, num_samples


class PrecisionTestbench:
    """Driver, monitor and in-order scoreboard around the detector.

    ``idle`` and ``stall`` are the driver's idle and the monitor's backpressure patterns
    (`sim.streams.StreamDriver`, `sim.streams.StreamMonitor`); None means never.
    """

    def __init__(self, dut, params, *, idle=None, stall=None):
        self.dut = dut
        self.params = params
        self.clocking = Clocking(dut)
        self.driver = StreamDriver(dut, "i_stream", group_layout(params), self.clocking,
                                   idle=idle)
        self.monitor = StreamMonitor(dut, "o_stream", precision_layout(params), self.clocking,
                                     stall=stall)
        self.groups = []

    async def start(self):
        """Start clock, reset, driver and monitor."""
        self.clocking.start()
        await self.clocking.reset()
        self.driver.start()
        self.monitor.start()

    def send(self, groups):
        """Queue groups (``[N, group_size]`` integers)."""
        for group in groups:
            self.groups.append(group)
            self.driver.send(pack_group(self.params, group))

    async def finish(self, *, drain_cycles=10, timeout_cycles=1000):
        """Wait for every result, check them all against golden and check nothing else came.

        Fails if nothing is transferred for ``timeout_cycles`` consecutive cycles meanwhile.
        """
        await self.driver.wait_idle(timeout_cycles)
        await self.monitor.wait_for(len(self.groups), timeout_cycles)
        await self.clocking.cycles(drain_cycles)
        self.check()

    def check(self):
        """Compare every transfer with the golden model, in order, and the latency contract."""
        assert not self.monitor.errors, self.monitor.errors
        expected_width, expected_lsb = group_precision(
            np.array(self.groups, dtype=np.int64).reshape(-1, self.params.group_size),
            value_width=self.params.value_width, signed=self.params.signed,
            trim_lsb=self.params.trim_lsb)
        received = self.monitor.received
        assert len(self.driver.sent) == len(self.groups), \
            f"sent {len(self.driver.sent)} of {len(self.groups)} groups"
        assert len(received) == len(self.groups), \
            f"received {len(received)} results for {len(self.groups)} groups"
        for index, ((payload, out_cycle), (_, in_cycle)) in enumerate(
                zip(received, self.driver.sent)):
            got = (int(payload.width), int(payload.lsb) if self.params.trim_lsb else 0)
            want = (int(expected_width[index]), int(expected_lsb[index]))
            assert got == want, (f"group #{index} {[int(v) for v in self.groups[index]]}: got "
                                 f"(width, lsb) {got}, expected {want}")
            assert out_cycle >= in_cycle + self.params.latency, (
                f"group #{index} accepted in cycle {in_cycle} came out in cycle {out_cycle}, "
                f"before the latency of {self.params.latency}")


@cocotb.test()
async def test_random_traffic(dut):
    """Edge cases and NUM_SAMPLES random groups, with random idle cycles and backpressure."""
    params, seed, num_samples = _config()
    rng = np.random.default_rng(seed)
    tb = PrecisionTestbench(dut, params, idle=random_pattern(0.3, seed=seed * 2 + 1),
                            stall=random_pattern(0.3, seed=seed * 2 + 2))
    await tb.start()
    tb.send(edge_case_groups(params))
    tb.send(random_groups(params, num_samples, rng))
    await tb.finish()
    dut._log.info("checked %d groups against golden (%s)", len(tb.groups), params)


@cocotb.test()
async def test_full_throughput_latency(dut):
    """Without idle or backpressure: one group per cycle, each result exactly `latency` later."""
    params, seed, num_samples = _config()
    rng = np.random.default_rng(seed + 1)
    tb = PrecisionTestbench(dut, params)
    await tb.start()
    count = min(num_samples, 200)
    tb.send(random_groups(params, count, rng))
    await tb.finish()
    in_cycles = [cycle for _, cycle in tb.driver.sent]
    out_cycles = [cycle for _, cycle in tb.monitor.received]
    assert in_cycles == list(range(in_cycles[0], in_cycles[0] + count)), \
        "the detector did not accept one group per cycle"
    assert [o - i for i, o in zip(in_cycles, out_cycles)] == [params.latency] * count


@cocotb.test()
async def test_reset(dut):
    """Clocked: reset empties a held result; combinational: no clock or reset port at all."""
    params, seed, _ = _config()
    tb = PrecisionTestbench(dut, params)
    assert tb.clocking.clocked == (params.latency > 0), \
        f"clk port present={tb.clocking.clocked} but latency={params.latency}"
    if not tb.clocking.clocked:
        assert tb.clocking.rst is None
        return
    rng = np.random.default_rng(seed + 2)
    groups = random_groups(params, 2, rng)
    tb.clocking.start()
    await tb.clocking.reset()
    # Offer one group while the output is not ready: it is accepted and held in the register.
    tb.driver.send(pack_group(params, groups[0]))
    tb.driver.start()
    await tb.driver.wait_idle()
    await tb.clocking.next_cycle()
    assert int(dut.o_stream__valid.value) == 1, "accepted group not offered on the output"
    await tb.clocking.reset(cycles=1)
    await tb.clocking.next_cycle()
    assert int(dut.o_stream__valid.value) == 0, "reset did not empty the pipeline register"
    # After reset only the next group comes out.
    tb.driver.sent.clear()
    tb.send(groups[1:])
    tb.monitor.start()
    await tb.finish()


def _switch(flag):
    """Return an endless pattern yielding ``flag[0]``, which the test may change meanwhile."""
    while True:
        yield flag[0]


@cocotb.test()
async def test_timeouts_count_cycles_without_transfer(dut):
    """A run many times longer than the timeout passes while transfers keep coming."""
    params, seed, _ = _config()
    timeout = 12
    # valid after two idle cycles, ready one cycle in four: transfers are at most ~8 apart.
    tb = PrecisionTestbench(dut, params, idle=itertools.cycle([True, True, False]),
                            stall=itertools.cycle([True, True, True, False]))
    await tb.start()
    start = tb.clocking.cycle()
    tb.send(random_groups(params, 50, np.random.default_rng(seed + 3)))
    await tb.finish(timeout_cycles=timeout)
    assert tb.clocking.cycle() - start > 10 * timeout


@cocotb.test()
async def test_timeout_messages_and_send_range(dut):
    """Timeouts fire after exactly `timeout_cycles` quiet cycles, naming what is pending."""
    params, seed, _ = _config()
    hold_valid, hold_ready = [True], [True]
    tb = PrecisionTestbench(dut, params, idle=_switch(hold_valid), stall=_switch(hold_ready))
    size = group_layout(params).size
    for bits in (-1, 1 << size):
        with pytest.raises(ValueError, match=rf"^StreamDriver\.send: bits {bits:#x} out of range: "
                                             rf"must be from 0 to {(1 << size) - 1:#x} "
                                             rf"\({size} bits\)$"):
            tb.driver.send(bits)
    with pytest.raises(TypeError, match=r"^StreamDriver\.send: bits must be an int, not \[1\]$"):
        tb.driver.send([1])
    assert tb.driver.pending == 0
    groups = random_groups(params, 3, np.random.default_rng(seed + 4))
    await tb.start()
    tb.send(groups)
    # Nothing offered yet: all three groups are pending.
    await tb.clocking.next_cycle()
    before = tb.clocking.cycle()
    with pytest.raises(AssertionError, match=r"^StreamDriver: 3 payloads still pending, none "
                                             r"transferred for 10 cycles$"):
        await tb.driver.wait_idle(timeout_cycles=10)
    assert tb.clocking.cycle() - before == 10
    # Offered, but the output is never ready: the detector takes `latency` groups at most.
    hold_valid[0] = False
    await tb.clocking.cycles(5)
    assert len(tb.driver.sent) == params.latency
    with pytest.raises(AssertionError, match=rf"^StreamDriver: {3 - params.latency} payloads "
                                             rf"still pending, none transferred for 10 cycles$"):
        await tb.driver.wait_idle(timeout_cycles=10)
    with pytest.raises(AssertionError, match=r"^StreamMonitor: received 0 of 3 payloads, then "
                                             r"nothing for 10 cycles$"):
        await tb.monitor.wait_for(3, timeout_cycles=10)
    hold_ready[0] = False
    await tb.finish()
