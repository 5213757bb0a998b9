# amaranth: UnusedElaboratable=no
"""hw.uart: UARTTx / UARTRx in amaranth.sim against an independent bit-level line model.

* Transmitter: the whole ``tx`` waveform, cycle by cycle, equals the model's (start bit, 8 data
  bits LSB first, stop bit, ``divisor`` cycles each, idle high) for random bytes with random
  idle cycles, and ``ready`` is high exactly when the model says the line is free (full
  throughput: one byte every ``10 * divisor`` cycles).
* Receiver: the model draws the line for random bytes, random gaps and a bit period off by
  -3 %, 0 and +3 %; every byte comes out in order, nothing else; the latency of the exact-rate
  case equals ``latency``. Framing errors, a break, a glitch shorter than half a bit and an
  overrun behave as documented.
* Loopback: all 256 byte values through TX then RX (exhaustive).
"""

import numpy as np
import pytest
from amaranth.hdl import Module

from hw.uart import UARTRx, UARTTx, baud_divisor

from helpers import run_simulation


def line_model(frames, *, period, length):
    """The line level in each cycle: ``frames`` is ``[(start_cycle, byte, stop_bit)]``.

    Bit ``j`` of a character (0 = start, 1..8 = data, 9 = stop) covers cycles
    ``round(start + j * period) .. round(start + (j + 1) * period) - 1``; the line is 1 elsewhere.
    """
    line = np.ones(length, dtype=np.int64)
    for start, byte, stop in frames:
        bits = [0] + [(byte >> i) & 1 for i in range(8)] + [stop]
        for j, bit in enumerate(bits):
            line[round(start + j * period):round(start + (j + 1) * period)] = bit
    return line


# --- transmitter --------------------------------------------------------------------------------

@pytest.mark.parametrize("divisor", [4, 5, 13])
def test_tx_waveform_and_ready(divisor):
    rng = np.random.default_rng(divisor)
    data = rng.integers(0, 256, 40).tolist()
    idle = rng.random(4000) < 0.6
    dut = UARTTx(divisor=divisor)
    trace = {"tx": [], "ready": [], "transfers": []}
    total = 40 * 10 * divisor * 3

    async def bench(ctx):
        pending = list(data)
        for cycle in range(total):
            offer = bool(pending) and not idle[cycle % len(idle)]
            ctx.set(dut.i_stream.valid, offer)
            ctx.set(dut.i_stream.payload, pending[0] if pending else 0)
            _, _, ready = await ctx.tick().sample(dut.i_stream.ready)
            trace["ready"].append(ready)
            if offer and ready:
                trace["transfers"].append((cycle, pending.pop(0)))
            trace["tx"].append(ctx.get(dut.tx))
        assert not pending, "not every byte was sent"

    run_simulation(_wrap(dut), bench)
    # Model: a byte taken at edge c drives the line from c on (values after each edge).
    frames = [(c, byte, 1) for c, byte in trace["transfers"]]
    expected = line_model(frames, period=divisor, length=total)
    assert [b for _, b in trace["transfers"]] == data
    np.testing.assert_array_equal(np.array(trace["tx"]), expected)
    free_from = 0
    for cycle, ready in enumerate(trace["ready"]):
        assert ready == (cycle >= free_from), f"ready at cycle {cycle}"
        if trace["transfers"] and trace["transfers"][0][0] == cycle:
            trace["transfers"].pop(0)
            free_from = cycle + 10 * divisor


def _wrap(dut):
    m = Module()
    m.submodules.dut = dut
    return m


# --- receiver -----------------------------------------------------------------------------------

def run_rx(divisor, line, *, ready=None):
    """Drive ``line`` into an `UARTRx`; return received ``[(cycle, byte)]`` and pulse cycles."""
    dut = UARTRx(divisor=divisor)
    got = {"bytes": [], "frame_error": [], "overrun": []}

    async def bench(ctx):
        for cycle, level in enumerate(line):
            ctx.set(dut.rx, int(level))
            take = True if ready is None else bool(ready[cycle])
            ctx.set(dut.o_stream.ready, take)
            _, _, valid, payload, ferr, ovr = await ctx.tick().sample(
                dut.o_stream.valid, dut.o_stream.payload, dut.frame_error, dut.overrun)
            if valid and take:
                got["bytes"].append((cycle, payload))
            if ferr:
                got["frame_error"].append(cycle)
            if ovr:
                got["overrun"].append(cycle)

    run_simulation(_wrap(dut), bench)
    return got, dut


@pytest.mark.parametrize("divisor", [4, 7, 16])
@pytest.mark.parametrize("skew", [0.97, 1.0, 1.03])
def test_rx_random_bytes_and_rate_tolerance(divisor, skew):
    rng = np.random.default_rng(divisor * 100 + int(skew * 100))
    data = rng.integers(0, 256, 30).tolist()
    period = divisor * skew
    frames, start = [], 5
    for byte in data:
        frames.append((start, byte, 1))
        start += 10 * period + int(rng.integers(0, 3 * divisor))  # stop bit + random gap
    length = int(start + 12 * divisor)
    got, dut = run_rx(divisor, line_model(frames, period=period, length=length))
    assert [b for _, b in got["bytes"]] == data
    assert got["frame_error"] == [] and got["overrun"] == []
    if skew == 1.0:
        # The line level set in cycle s is seen at edge s; valid is sampled latency edges later.
        assert [c - s for (c, _), (s, _, _) in zip(got["bytes"], frames)] == \
            [dut.latency] * len(data)


def test_rx_frame_error_break_glitch_recovery():
    d = 8
    frames = [(5, 0x5A, 1), (5 + 11 * d, 0x33, 0), (5 + 40 * d, 0xC4, 1)]
    line = line_model(frames, period=d, length=70 * d)
    line[22 * d:32 * d] = 0                    # a break: 10 bit periods low
    line[33 * d:33 * d + d // 2 - 1] = 0       # glitch shorter than half a bit
    line[36 * d:36 * d + d // 2 - 2] = 0
    got, _ = run_rx(d, line)
    assert [b for _, b in got["bytes"]] == [0x5A, 0xC4]
    assert len(got["frame_error"]) == 2        # the bad stop bit, then the break (once)


def test_rx_overrun_keeps_first_byte():
    d = 4
    frames = [(3, 0x11, 1), (3 + 10 * d, 0x22, 1), (3 + 30 * d, 0x44, 1)]
    line = line_model(frames, period=d, length=45 * d)
    ready = np.zeros(len(line), dtype=bool)
    ready[25 * d:26 * d] = True                # take a byte only once, after the second ended
    ready[40 * d:] = True
    got, _ = run_rx(d, line, ready=ready)
    assert [b for _, b in got["bytes"]] == [0x11, 0x44]
    assert len(got["overrun"]) == 1 and 20 * d < got["overrun"][0] < 25 * d


def test_loopback_every_byte():
    d = 4
    tx, rx = UARTTx(divisor=d), UARTRx(divisor=d)
    m = Module()
    m.submodules.tx, m.submodules.rx = tx, rx
    m.d.comb += rx.rx.eq(tx.tx)
    received = []

    async def source(ctx):
        for byte in range(256):
            ctx.set(tx.i_stream.valid, 1)
            ctx.set(tx.i_stream.payload, byte)
            await ctx.tick().until(tx.i_stream.ready)
        ctx.set(tx.i_stream.valid, 0)

    async def sink(ctx):
        ctx.set(rx.o_stream.ready, 1)
        while len(received) < 256:
            _, _, valid, payload, ferr = await ctx.tick().sample(
                rx.o_stream.valid, rx.o_stream.payload, rx.frame_error)
            assert not ferr
            if valid:
                received.append(payload)

    run_simulation(m, source, sink)
    assert received == list(range(256))


# --- parameters ---------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", [UARTTx, UARTRx])
def test_divisor_validation(cls):
    with pytest.raises(ValueError, match=r"^divisor must be an integer from 4 to 65535, not 3$"):
        cls(divisor=3)
    with pytest.raises(TypeError, match=r"^divisor must be an integer from 4 to 65535, "
                                        r"not '8'$"):
        cls(divisor="8")
    assert cls(divisor=65535).divisor == 65535


def test_baud_divisor():
    assert baud_divisor(12e6, 115200) == 104
    assert baud_divisor(25e6, 115200) == 217
    assert baud_divisor(12e6, 1_000_000) == 12
    assert baud_divisor(12e6, 3_000_000) == 4
    with pytest.raises(ValueError, match=r"^baud 2500000 at 12 MHz is off by 4\.0 % "
                                         r"\(divisor 5\); at most 2 % is accepted$"):
        baud_divisor(12e6, 2_500_000)
    with pytest.raises(ValueError, match=r"^baud 100 at 12 MHz needs a divisor of 120000; "
                                         r"it must be from 4 to 65535$"):
        baud_divisor(12e6, 100)
    with pytest.raises(ValueError, match=r"^baud must be a positive integer, not 0$"):
        baud_divisor(12e6, 0)
