"""cocotb testbench of the emitted ``dpred_encoder`` against `golden.dpred.encode_words`.

Run through `sim.runner.run_cocotb` (``tests/test_cocotb_dpred.py``). The environment carries
the configuration (``PARAM_*`` of `hw.params.DPRedParams`, ``SEED``, ``NUM_SAMPLES``). Tensors
are sent back to back, each value with ``last`` on the tensor's final one; every received word
is compared, in order, with the golden words of its tensor and its ``last`` flag with the
tensor's final word. Each test ends by checking that every expected word arrived and nothing
else did.

The tensor generators `edge_case_tensors` and `random_tensors` are plain numpy and are shared
with the decoder testbench and the amaranth.sim unit tests (``tests/test_dpred.py``).
"""

import os

import numpy as np

import cocotb

from golden.dpred import encode_words
from hw.dpred import value_layout, word_layout
from hw.params import DPRedParams

from sim.streams import Clocking, StreamDriver, StreamMonitor, random_pattern

__all__ = ["edge_case_tensors", "random_tensors", "golden_words", "pack_values"]


def edge_case_tensors(params):
    """Return the edge-case tensors for ``params``: a list of 1-D ``int64`` arrays.

    One value; exactly one group of zeros; several all-zero groups; the most negative (signed)
    or largest (unsigned) value everywhere and alone among zeros; all ``-1`` (signed); a
    full-precision group next to a 1-bit group and the reverse; a partial last group (one value
    more than a group, and one less); every precision ``1..value_width`` once as a group.
    """
    g, v = params.group_size, params.value_width
    low, high = params.min_value, params.max_value
    extreme = low if params.signed else high
    tensors = [np.array([extreme]), np.zeros(g), np.zeros(3 * g), np.full(2 * g + 1, extreme),
               np.full(g + 1, high), np.concatenate([np.full(g, extreme), np.zeros(g)]),
               np.concatenate([np.zeros(g), np.full(g, extreme), np.ones(g)]),
               np.resize([low, high], 2 * g + max(g - 1, 1))]
    alone = np.zeros(2 * g)
    alone[g - 1] = extreme
    tensors.append(alone)
    if params.signed:
        tensors.append(np.full(g + 2, -1))
    ramp = []
    for width in range(1, v + 1):
        top = (1 << (width - 1)) if params.signed else (1 << width) - 1
        group = np.zeros(g)
        group[0] = -top if params.signed else top
        ramp.append(group)
    tensors.append(np.concatenate(ramp))
    return [np.asarray(t, dtype=np.int64) for t in tensors]


def random_tensors(params, count, rng, *, max_groups=4):
    """Return ``count`` random tensors (1-D ``int64``) for ``params``.

    Each has a random length from 1 to ``max_groups`` groups (so most end in a partial group);
    each group draws a precision from 1 to ``value_width`` and values of that width, a quarter
    of them zeroed.
    """
    g, v = params.group_size, params.value_width
    tensors = []
    for _ in range(count):
        length = int(rng.integers(1, max_groups * g + 1))
        groups = -(-length // g)
        widths = rng.integers(1, v + 1, size=(groups, 1))
        if params.signed:
            low, high = -(1 << (widths - 1)), (1 << (widths - 1)) - 1
        else:
            low, high = np.zeros_like(widths), (1 << widths) - 1
        values = low + (rng.random((groups, g)) * (high - low + 1)).astype(np.int64)
        values = np.minimum(values, high).ravel()[:length]
        values[rng.random(length) < 0.25] = 0
        tensors.append(values.astype(np.int64))
    return tensors


def golden_words(params, tensor):
    """Return the golden words of one flat tensor (``encode_words`` with ``params``)."""
    return encode_words(tensor, value_width=params.value_width, signed=params.signed,
                        group_size=params.group_size, word_width=params.word_width)


def pack_values(params, tensor):
    """Return the input payload bits of every value of ``tensor``, ``last`` on the final one."""
    layout = value_layout(params)
    return [layout.const({"value": int(value), "last": int(index == len(tensor) - 1)}).as_bits()
            for index, value in enumerate(tensor)]


def _config():
    params = DPRedParams.from_env(os.environ)
    return params, int(os.environ.get("SEED", "1")), int(os.environ.get("NUM_SAMPLES", "20"))


class EncoderTestbench:
    """Driver, monitor and in-order scoreboard around the encoder."""

    def __init__(self, dut, params, *, idle=None, stall=None):
        self.params = params
        self.clocking = Clocking(dut)
        self.driver = StreamDriver(dut, "i_stream", value_layout(params), self.clocking,
                                   idle=idle)
        self.monitor = StreamMonitor(dut, "o_stream", word_layout(params), self.clocking,
                                     stall=stall)
        self.expected = []

    async def start(self):
        """Start clock, reset, driver and monitor."""
        self.clocking.start()
        await self.clocking.reset()
        self.driver.start()
        self.monitor.start()

    def send(self, tensors):
        """Queue tensors and their expected words."""
        for tensor in tensors:
            words = golden_words(self.params, tensor)
            self.expected += [(int(word), int(index == len(words) - 1))
                              for index, word in enumerate(words)]
            for bits in pack_values(self.params, tensor):
                self.driver.send(bits)

    async def finish(self, *, timeout_cycles=1000):
        """Wait for every word, compare all in order and check that nothing else came."""
        await self.driver.wait_idle(timeout_cycles)
        await self.monitor.wait_for(len(self.expected), timeout_cycles)
        await self.clocking.cycles(3 * self.params.group_size + 20)
        assert not self.monitor.errors, self.monitor.errors
        got = [(int(payload.word), int(payload.last)) for payload, _ in self.monitor.received]
        assert len(got) == len(self.expected), \
            f"received {len(got)} words, expected {len(self.expected)}"
        for index, (word, want) in enumerate(zip(got, self.expected)):
            assert word == want, f"word #{index}: got (word, last) {word}, expected {want}"


@cocotb.test()
async def test_edge_cases_and_random(dut):
    """Edge cases and NUM_SAMPLES random tensors, random idle cycles and backpressure."""
    params, seed, num_samples = _config()
    rng = np.random.default_rng(seed)
    tb = EncoderTestbench(dut, params, idle=random_pattern(0.3, seed=seed * 2 + 1),
                          stall=random_pattern(0.3, seed=seed * 2 + 2))
    await tb.start()
    tensors = edge_case_tensors(params) + random_tensors(params, num_samples, rng)
    tb.send(tensors)
    await tb.finish()
    dut._log.info("checked %d words of %d tensors", len(tb.expected), len(tensors))


@cocotb.test()
async def test_full_throughput(dut):
    """No idle, no backpressure: one value per cycle while the words fit the port."""
    params, seed, _ = _config()
    rng = np.random.default_rng(seed + 1)
    tb = EncoderTestbench(dut, params)
    await tb.start()
    tensor = random_tensors(params, 1, rng, max_groups=8)[0]
    tensor = np.resize(tensor, 8 * params.group_size)
    tb.send([tensor])
    await tb.finish()
    cycles = [cycle for _, cycle in tb.driver.sent]
    if params.field_max <= params.word_width:
        assert cycles == list(range(cycles[0], cycles[0] + len(tensor))), \
            "the encoder did not take one value per cycle"
