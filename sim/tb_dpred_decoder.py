"""cocotb testbench of the emitted ``dpred_decoder`` against `golden.dpred.scan_words`.

Run through `sim.runner.run_cocotb` (``tests/test_cocotb_dpred.py``); configuration from the
environment as in `sim.tb_dpred_encoder`. Each tensor's golden words (`encode_words`) are sent
with ``last`` on the final word, after the tensor's size on ``i_length``; the decoder's values
must equal the tensor exactly and be followed by one status beat with ``error`` 0. Corrupted
streams (bit flips, missing or extra words, a wrong ``length``, an over-wide header, an
out-of-range header when ``value_width`` is not a power of two) must produce exactly the values
`scan_words` decodes before its first error and a status beat whose ``error`` says whether
``scan_words`` found one;
a decoder that stops answering fails the monitor's timeout instead of hanging the test.
"""

import os

import numpy as np

import cocotb

from golden.dpred import scan_words
from golden.precision import group_precision
from hw.dpred import decoded_layout, length_layout, word_layout
from hw.params import DPRedParams

from sim.streams import Clocking, StreamDriver, StreamMonitor, random_pattern
from sim.tb_dpred_encoder import edge_case_tensors, golden_words, random_tensors

__all__ = ["corrupted_streams", "golden_scan", "widened_stream"]


def golden_scan(params, words, length):
    """Return ``(values, error)`` of `scan_words` for ``params``."""
    return scan_words(np.asarray(words, dtype=np.uint64), count=length,
                      value_width=params.value_width, signed=params.signed,
                      group_size=params.group_size, word_width=params.word_width)


def widened_stream(params, tensor, extra=1):
    """Return the words of ``tensor`` with group 0 written ``extra`` bits wider than it needs
    (a well-formed stream whose first header is not minimal), or None if that exceeds
    ``value_width``."""
    g, header = params.group_size, params.header_width
    padded = np.zeros(-(-len(tensor) // g) * g, dtype=np.int64)
    padded[:len(tensor)] = tensor
    groups = padded.reshape(-1, g)
    widths = group_precision(groups, value_width=params.value_width, signed=params.signed)[0]
    if widths[0] + extra > params.value_width:
        return None
    widths[0] += extra
    bits, position = 0, 0
    for group, width in zip(groups, widths.tolist()):
        bits |= (width - 1) << position
        position += header
        for value in group.tolist():
            bits |= (value & ((1 << width) - 1)) << position
            position += width
    count = -(-position // params.word_width)
    mask = (1 << params.word_width) - 1
    return [(bits >> (k * params.word_width)) & mask for k in range(count)]


def corrupted_streams(params, tensors, rng):
    """Return ``[(words, length)]``: corrupted variants of the golden streams of ``tensors``.

    For each tensor: one random bit flipped, the last word dropped (if there are two or more),
    one and three extra zero words and an extra random word appended, ``length`` one too large and one too
    small (if above 1), ``length`` 0, and the first group written one bit wider than it needs
    (`widened_stream`, if possible); with ``value_width`` not a power of two, the first
    header set to an out-of-range precision.
    """
    streams = []
    header = params.header_width
    for tensor in tensors:
        words = [int(word) for word in golden_words(params, tensor)]
        length = len(tensor)
        flipped = list(words)
        bit = int(rng.integers(0, len(words) * params.word_width))
        flipped[bit // params.word_width] ^= 1 << (bit % params.word_width)
        streams.append((flipped, length))
        if len(words) > 1:
            streams.append((words[:-1], length))
        streams.append((words + [0], length))
        streams.append((words + [0] * 3, length))   # the groups end well before ``last``
        streams.append((words + [int(rng.integers(1, 1 << params.word_width))], length))
        streams.append((words, length + 1))
        if length > 1:
            streams.append((words, length - 1))
        streams.append((words, 0))
        widened = widened_stream(params, tensor)
        if widened is not None:
            streams.append((widened, length))
        if (1 << header) > params.value_width:
            bad = list(words)
            bad[0] = (bad[0] & ~((1 << header) - 1)) | ((1 << header) - 1)
            streams.append((bad, length))
    return streams


def _config():
    params = DPRedParams.from_env(os.environ)
    return params, int(os.environ.get("SEED", "1")), int(os.environ.get("NUM_SAMPLES", "20"))


class DecoderTestbench:
    """Driver, monitor and per-tensor scoreboard around the decoder."""

    def __init__(self, dut, params, *, idle=None, stall=None):
        self.dut = dut
        self.params = params
        self.clocking = Clocking(dut)
        self.driver = StreamDriver(dut, "i_stream", word_layout(params), self.clocking,
                                   idle=idle)
        self.monitor = StreamMonitor(dut, "o_stream", decoded_layout(params), self.clocking,
                                     stall=stall)
        self.lengths = StreamDriver(dut, "i_length", length_layout(params), self.clocking)
        self.word_layout = word_layout(params)
        self.length_layout = length_layout(params)
        self.checked = 0

    async def start(self):
        """Start clock, reset, driver and monitor."""
        self.clocking.start()
        await self.clocking.reset()
        self.driver.start()
        self.lengths.start()
        self.monitor.start()

    async def run(self, words, length, *, timeout_cycles=500):
        """Send one tensor's words with ``length``; check its output against `scan_words`."""
        values, error = golden_scan(self.params, words, length)
        self.lengths.send(self.length_layout.const({"length": length}).as_bits())
        start = len(self.monitor.received)
        for index, word in enumerate(words):
            self.driver.send(self.word_layout.const(
                {"word": word, "last": int(index == len(words) - 1)}).as_bits())
        await self.monitor.wait_for(start + len(values) + 1, timeout_cycles)
        await self.driver.wait_idle(timeout_cycles)
        got = self.monitor.received[start:]
        assert len(got) == len(values) + 1, (len(got), len(values))
        got_values = [int(payload.value) for payload, _ in got[:-1]]
        assert got_values == values.tolist(), f"values {got_values} != {values.tolist()}"
        assert all(not int(p.last) and not int(p.error) for p, _ in got[:-1])
        status = got[-1][0]
        assert int(status.last) == 1 and int(status.value) == 0
        assert int(status.error) == (error is not None), \
            f"error flag {int(status.error)}, golden says {error!r}"
        self.checked += 1


@cocotb.test()
async def test_round_trip_edge_cases_and_random(dut):
    """Golden words of edge cases and random tensors decode exactly; idle and backpressure."""
    params, seed, num_samples = _config()
    rng = np.random.default_rng(seed)
    tb = DecoderTestbench(dut, params, idle=random_pattern(0.3, seed=seed * 2 + 1),
                          stall=random_pattern(0.3, seed=seed * 2 + 2))
    await tb.start()
    for tensor in edge_case_tensors(params) + random_tensors(params, num_samples, rng):
        values, error = golden_scan(params, golden_words(params, tensor), len(tensor))
        assert error is None and np.array_equal(values, tensor)
        await tb.run([int(w) for w in golden_words(params, tensor)], len(tensor))
    dut._log.info("decoded %d tensors", tb.checked)


@cocotb.test()
async def test_corrupted_words_flag_errors(dut):
    """Every corrupted stream: the golden prefix of values, then the error flag; no hang."""
    params, seed, num_samples = _config()
    rng = np.random.default_rng(seed + 5)
    tb = DecoderTestbench(dut, params, idle=random_pattern(0.2, seed=seed * 2 + 3),
                          stall=random_pattern(0.2, seed=seed * 2 + 4))
    await tb.start()
    tensors = random_tensors(params, max(2, num_samples // 4), rng)
    streams = corrupted_streams(params, tensors, rng)
    errors = 0
    for words, length in streams:
        errors += golden_scan(params, words, length)[1] is not None
        await tb.run(words, length)
    assert errors >= len(streams) // 2, "too few corrupt streams are errors to be meaningful"
    # a good tensor still decodes after all of them
    tensor = random_tensors(params, 1, rng)[0]
    await tb.run([int(w) for w in golden_words(params, tensor)], len(tensor))


@cocotb.test()
async def test_full_throughput(dut):
    """No idle, no backpressure: one value per cycle once the words flow."""
    params, seed, _ = _config()
    rng = np.random.default_rng(seed + 7)
    tb = DecoderTestbench(dut, params)
    await tb.start()
    tensor = np.resize(random_tensors(params, 1, rng, max_groups=8)[0], 8 * params.group_size)
    await tb.run([int(w) for w in golden_words(params, tensor)], len(tensor))
    cycles = [cycle for _, cycle in tb.monitor.received[:-1]]
    if params.field_max <= params.word_width:
        assert cycles == list(range(cycles[0], cycles[0] + len(tensor))), \
            "the decoder did not send one value per cycle"
