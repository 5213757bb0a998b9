"""cocotb testbench of the emitted ``fp_term_encoder`` against `golden.fpraker.term_masks`.

Run through `sim.runner.run_cocotb` (see ``tests/test_cocotb_fpraker.py``). The environment
carries ``PARAM_ENCODING`` (`hw.params.FPTermEncoderParams.to_env`), ``SEED``, ``NUM_SAMPLES``
and ``SWEEP``: ``all`` streams every one of the 65,536 bfloat16 patterns, ``relevant`` every
pattern that differs in what the encoder reads (128 fractions x 2 signs x exponent fields 0, 1,
127, 254 and 255). Every received beat is compared, in order, with `expected_beats`.

`expected_beats` and `sweep_patterns` are plain numpy, shared with the amaranth.sim tests
(``tests/test_fpraker.py``).
"""

import os

import numpy as np

import cocotb
from cocotb.triggers import ReadOnly

from golden.fpraker import term_masks
from hw.fpraker import bf16_layout, term_layout
from hw.params import FPTermEncoderParams

from sim.streams import Clocking, StreamDriver, StreamMonitor, random_pattern

__all__ = ["expected_beats", "sweep_patterns"]


def sweep_patterns(kind):
    """Return the bfloat16 patterns of a sweep: ``"all"`` (65,536) or ``"relevant"`` (1,280)."""
    if kind == "all":
        return np.arange(1 << 16, dtype=np.int64)
    if kind != "relevant":
        raise ValueError(f"sweep must be 'all' or 'relevant', not {kind!r}")
    sign, exponent, fraction = np.meshgrid([0, 1], [0, 1, 127, 254, 255], np.arange(128),
                                           indexing="ij")
    return (sign << 15 | exponent << 7 | fraction).ravel().astype(np.int64)


def expected_beats(patterns, encoding):
    """Return the golden beats of ``patterns`` as ``int64 [B, 4]`` rows ``(negative, position,
    last, zero)``: a zero/subnormal value gives ``(0, 0, 1, 1)``, any other value its
    significand's terms, most significant first, with the value's sign applied."""
    patterns = np.asarray(patterns, dtype=np.int64)
    sign = patterns >> 15
    zero = ((patterns >> 7) & 0xFF) == 0
    plus, minus = term_masks((patterns & 0x7F) | 0x80, encoding=encoding)
    negatives = np.where(sign == 1, plus, minus)
    mask = plus | minus
    rows = []
    for p in range(8, -1, -1):                     # beats in order, per value, MSB first
        present = ((mask >> p) & 1).astype(bool) & ~zero
        below = (mask & ((1 << p) - 1)) != 0
        rows.append(np.stack([np.where(present, (negatives >> p) & 1, -1),
                              np.full(patterns.shape, p), (~below).astype(np.int64),
                              np.zeros(patterns.shape, dtype=np.int64)], -1))
    beats = np.stack(rows, 1)                       # [values, 9, 4]; negative -1 = no beat
    keep = beats[:, :, 0] >= 0
    zero_beat = np.zeros_like(beats[:, :1])
    zero_beat[:, 0] = (0, 0, 1, 1)
    beats = np.concatenate([np.where(zero[:, None, None], zero_beat, -1), beats], 1)
    keep = np.concatenate([zero[:, None], keep], 1)
    return beats[keep]


def _config():
    params = FPTermEncoderParams.from_env(os.environ)
    return (params, int(os.environ.get("SEED", "1")), int(os.environ.get("NUM_SAMPLES", "500")),
            os.environ.get("SWEEP", "all"))


def _beat(bits):
    value = term_layout.from_bits(int(bits))
    return (int(value.negative), int(value.position), int(value.last), int(value.zero))


@cocotb.test()
async def test_sweep_full_throughput(dut):
    """The SWEEP patterns back to back with a ready sink: one beat per cycle, first beat one
    cycle after the first transfer, every beat equal to golden."""
    params, _, _, sweep = _config()
    patterns = sweep_patterns(sweep)
    expected = expected_beats(patterns, params.encoding)
    clocking = Clocking(dut)
    dut.i_stream__valid.value = 0                  # driven from the start: Icarus is 4-state
    dut.o_stream__ready.value = 1
    clocking.start()
    await clocking.reset()
    # A tight loop instead of StreamDriver/StreamMonitor (65,536 values are ~225k cycles, one
    # await each): at the falling edge that starts a cycle, the registered outputs and
    # ``i_stream.ready`` (a function of registers only, the sink being always ready) already
    # hold their values for the whole cycle; they are read, then the cycle's inputs written.
    got = np.zeros((len(expected), 4), dtype=np.int64)
    received, sent = 0, 0
    dut.o_stream__ready.value = 1
    first_in = first_out = None
    values = patterns.tolist()   # the bf16_layout bits are the pattern bits (tests check it)
    in_valid = dut.i_stream__valid
    in_payload = dut.i_stream__payload
    in_ready = dut.i_stream__ready
    out_valid = dut.o_stream__valid
    out_payload = dut.o_stream__payload
    while received < len(expected):
        await clocking.next_cycle()
        cycle = clocking.cycle()
        ready = int(in_ready.value)
        if int(out_valid.value):
            first_out = cycle if first_out is None else first_out
            got[received] = _beat(int(out_payload.value))
            received += 1
        else:
            assert received == 0, f"bubble after beat {received} in cycle {cycle}"
        if sent < len(values):
            in_valid.value = 1
            in_payload.value = values[sent]
            if ready:                      # taken at the rising edge that ends this cycle
                first_in = cycle if first_in is None else first_in
                sent += 1
        else:
            in_valid.value = 0
    assert first_out - first_in == params.latency
    bad = np.flatnonzero((got != expected).any(1))
    assert bad.size == 0, (f"{bad.size} beats differ, first #{bad[0]}: got {got[bad[0]]}, "
                           f"expected {expected[bad[0]]}")
    assert bf16_layout.size == 16
    dut._log.info("checked %d beats of %d patterns (%s)", len(expected), len(values), params)


@cocotb.test()
async def test_random_traffic(dut):
    """NUM_SAMPLES random patterns with random idle cycles and backpressure."""
    params, seed, num_samples, _ = _config()
    rng = np.random.default_rng(seed)
    patterns = rng.integers(0, 1 << 16, num_samples)
    clocking = Clocking(dut)
    driver = StreamDriver(dut, "i_stream", bf16_layout, clocking,
                          idle=random_pattern(0.3, seed=seed + 1))
    monitor = StreamMonitor(dut, "o_stream", term_layout, clocking,
                            stall=random_pattern(0.4, seed=seed + 2))
    clocking.start()
    await clocking.reset()
    driver.start()
    monitor.start()
    for bits in patterns.tolist():
        driver.send(int(bits))
    expected = expected_beats(patterns, params.encoding)
    await driver.wait_idle()
    await monitor.wait_for(len(expected))
    await clocking.cycles(10)
    got = np.array([[int(p.negative), int(p.position), int(p.last), int(p.zero)]
                    for p, _ in monitor.received])
    assert got.shape == expected.shape, f"received {len(got)} beats, expected {len(expected)}"
    assert np.array_equal(got, expected)


@cocotb.test()
async def test_reset_drops_a_value(dut):
    """Reset while a value's beats are pending: only the values sent afterwards come out."""
    params, _, _, _ = _config()
    clocking = Clocking(dut)
    dut.i_stream__valid.value = 0
    dut.o_stream__ready.value = 0
    clocking.start()
    await clocking.reset()
    dut.i_stream__valid.value = 1
    dut.i_stream__payload.value = 0x3FFF            # several terms
    await clocking.next_cycle()
    dut.i_stream__valid.value = 0
    await clocking.next_cycle()
    await ReadOnly()
    assert int(dut.o_stream__valid.value) == 1
    await clocking.reset(cycles=1)
    await clocking.next_cycle()
    await ReadOnly()
    assert int(dut.o_stream__valid.value) == 0, "reset did not empty the encoder"
    await clocking.next_cycle()
    driver = StreamDriver(dut, "i_stream", bf16_layout, clocking)
    monitor = StreamMonitor(dut, "o_stream", term_layout, clocking)
    driver.start()
    monitor.start()
    driver.send(0xC0A0)
    expected = expected_beats([0xC0A0], params.encoding)
    await monitor.wait_for(len(expected))
    await clocking.cycles(5)
    assert [_beat(p.as_bits()) for p, _ in monitor.received] == [tuple(r) for r in
                                                                  expected.tolist()]
