"""cocotb testbench of the emitted ``term_encoder`` against `golden.terms.encode_terms`.

Run through `sim.runner.run_cocotb` (see ``tests/test_cocotb_term_encoder.py``). The environment
carries the configuration: ``PARAM_*`` (`hw.params.TermEncoderParams.to_env`), ``SEED``,
``NUM_SAMPLES`` (random rows) and ``SWEEP`` (``all``: every value of the activation range;
an integer ``k``: every ``k``-th value of the range, always with the minimum, the maximum, zero
and every power of two and its negation).

Every received beat is compared, in order, with the beats golden predicts for the rows that were
sent (`expected_beats`): per lane the ``b``-th term of `golden.terms.encode_terms` (LSB first)
or ``valid = 0`` once the lane is done, ``max(1, T)`` beats per row and ``last`` only on the
row's final beat. The helpers `sweep_values`, `value_rows`, `expected_beats` and `decode_beats`
are plain numpy and shared with the amaranth.sim tests (``tests/test_terms_hw.py``).
"""

import os

import numpy as np

import cocotb

from golden.terms import encode_terms, term_count
from hw.params import TermEncoderParams

from sim.streams import Clocking, StreamDriver, StreamMonitor, random_pattern

__all__ = ["sweep_values", "value_rows", "random_rows", "expected_beats", "decode_beats",
           "check_beats"]


def sweep_values(params, step=1):
    """Return every ``step``-th value of the activation range plus the edge values (int64).

    Edge values: the minimum, the maximum, 0, 1, -1 (signed) and every power of two and its
    negation that fits. The values are sorted by their term count (so rows of lanes hold values
    with equal counts and the sweep takes few beats), ties by value.
    """
    values = np.arange(params.min_value, params.max_value + 1, step, dtype=np.int64)
    powers = np.array([1 << k for k in range(params.act_width)], dtype=np.int64)
    edges = np.concatenate([[params.min_value, params.max_value, 0, 1, -1], powers, -powers])
    edges = edges[(edges >= params.min_value) & (edges <= params.max_value)]
    values = np.unique(np.concatenate([values, edges]))
    counts = term_count(values, encoding=params.encoding, width=params.act_width)
    return values[np.lexsort((values, counts))]


def value_rows(params, values):
    """Return ``values`` as rows ``[R, lanes]``, the last row padded with zeros."""
    values = np.asarray(values, dtype=np.int64)
    rows = -(-values.size // params.lanes)
    padded = np.zeros(rows * params.lanes, dtype=np.int64)
    padded[:values.size] = values
    return padded.reshape(rows, params.lanes)


def random_rows(params, count, rng):
    """Return ``count`` random rows: uniform values, a quarter of them zeroed, some all-zero,
    all-minimum and all-maximum rows."""
    rows = rng.integers(params.min_value, params.max_value + 1, size=(count, params.lanes))
    rows[rng.random(rows.shape) < 0.25] = 0
    special = [np.zeros(params.lanes), np.full(params.lanes, params.min_value),
               np.full(params.lanes, params.max_value)]
    return np.concatenate([np.array(special, dtype=np.int64), rows.astype(np.int64)])


def expected_beats(params, rows):
    """Return the golden beats of ``rows`` ``[R, lanes]``: ``(valid, negative, position, last)``.

    ``valid``, ``negative`` and ``position`` are ``int64 [B, lanes]`` and ``last`` ``[B]``, with
    ``B = sum over rows of max(1, largest term count)``.
    """
    rows = np.asarray(rows, dtype=np.int64)
    sign, position, count = encode_terms(rows, encoding=params.encoding,
                                         width=params.act_width)
    beats = np.maximum(count.max(axis=1), 1)
    slots = max(int(beats.max()), sign.shape[-1])
    pad = slots - sign.shape[-1]
    sign = np.pad(sign, ((0, 0), (0, 0), (0, pad)))
    position = np.pad(position, ((0, 0), (0, 0), (0, pad)), constant_values=-1)
    keep = np.arange(slots)[None, :] < beats[:, None]                       # [R, slots]
    valid = np.moveaxis(sign != 0, 2, 1)[keep].astype(np.int64)             # [B, lanes]
    negative = np.moveaxis(sign < 0, 2, 1)[keep].astype(np.int64)
    position = np.maximum(np.moveaxis(position, 2, 1)[keep], 0).astype(np.int64)
    last = (np.arange(slots)[None, :] == beats[:, None] - 1)[keep].astype(np.int64)
    return valid, negative, position, last


def decode_beats(params, payloads):
    """Return ``(valid, negative, position, last)`` arrays of raw beat payloads (ints)."""
    lane_bits = 2 + params.position_bits
    total = params.lanes * lane_bits + 1
    nbytes = (total + 7) // 8
    raw = np.frombuffer(b"".join(int(p).to_bytes(nbytes, "little") for p in payloads),
                        dtype=np.uint8).reshape(len(payloads), nbytes)
    bits = np.unpackbits(raw, axis=1, bitorder="little")[:, :total].astype(np.int64)
    lanes = bits[:, :params.lanes * lane_bits].reshape(len(payloads), params.lanes, lane_bits)
    weights = 1 << np.arange(params.position_bits, dtype=np.int64)
    position = (lanes[:, :, 2:] * weights).sum(axis=2)
    return lanes[:, :, 0], lanes[:, :, 1], position, bits[:, -1]


def check_beats(params, rows, payloads):
    """Assert that ``payloads`` (raw beat bits, in order) are exactly the golden beats of
    ``rows``; the message names the first differing beat and its row."""
    want = expected_beats(params, rows)
    got = decode_beats(params, payloads)
    assert len(payloads) == len(want[3]), \
        f"received {len(payloads)} beats, golden predicts {len(want[3])} for {len(rows)} rows"
    names = ("valid", "negative", "position", "last")
    for name, g, w in zip(names, got, want):
        bad = np.flatnonzero((np.asarray(g) != np.asarray(w)).reshape(len(payloads), -1)
                             .any(axis=1))
        if bad.size:
            beat = int(bad[0])
            row = int(np.searchsorted(np.cumsum(want[3]), beat, side="right"))
            raise AssertionError(f"beat #{beat} (row #{row} {rows[row].tolist()}): {name} "
                                 f"got {np.asarray(g)[beat].tolist()}, expected "
                                 f"{np.asarray(w)[beat].tolist()}")


def _config():
    params = TermEncoderParams.from_env(os.environ)
    seed = int(os.environ.get("SEED", "1"))
    num_samples = int(os.environ.get("NUM_SAMPLES", "200"))
    sweep = os.environ.get("SWEEP", "all")
    return params, seed, num_samples, (1 if sweep == "all" else int(sweep))


class TermEncoderTestbench:
    """Driver and monitor around the encoder; `finish` checks every beat against golden."""

    def __init__(self, dut, params, *, idle=None, stall=None):
        from hw.terms import act_row_layout, term_beat_layout

        self.params = params
        self.clocking = Clocking(dut)
        self.driver = StreamDriver(dut, "i_stream", act_row_layout(params), self.clocking,
                                   idle=idle)
        self.monitor = StreamMonitor(dut, "o_stream", term_beat_layout(params), self.clocking,
                                     stall=stall)
        self.rows = []

    async def start(self):
        """Start clock, reset, driver and monitor."""
        self.clocking.start()
        await self.clocking.reset()
        self.driver.start()
        self.monitor.start()

    def send(self, rows):
        """Queue rows ``[R, lanes]``."""
        from hw.terms import pack_act_row

        for row in rows:
            self.rows.append(np.asarray(row, dtype=np.int64))
            self.driver.send(pack_act_row(self.params, row))

    async def finish(self, *, timeout_cycles=200):
        """Wait for every beat golden predicts, then a few more cycles; check them all."""
        beats = int(expected_beats(self.params, np.array(self.rows))[3].size)
        await self.driver.wait_idle(timeout_cycles)
        await self.monitor.wait_for(beats, timeout_cycles)
        await self.clocking.cycles(10)
        assert not self.monitor.errors, self.monitor.errors
        check_beats(self.params, np.array(self.rows),
                    [payload.as_bits() for payload, _ in self.monitor.received])


async def stream_rows_fast(dut, clocking, payloads, *, timeout_cycles=200):
    """Offer ``payloads`` back to back with the sink always ready; return the transfers.

    One trigger per cycle (the falling edge, where every input is driven and, the design being
    synchronous, every output has settled): a row is transferred in a cycle when ``valid`` and
    ``ready`` are both high there, and the sink takes every offered beat. Used for the long
    sweeps, where the general driver and monitor (two triggers each per cycle) are too slow.
    Returns ``(in_cycles, beats)`` with ``beats`` a list of ``(payload bits, cycle)``.
    """
    dut.o_stream__ready.value = 1
    index, in_cycles, beats, quiet, offering = 0, [], [], 0, None
    while index < len(payloads) or quiet < 4:
        await clocking.next_cycle()
        cycle = clocking.cycle()
        offered = int(dut.o_stream__valid.value)
        if offered:
            beats.append((int(dut.o_stream__payload.value), cycle))
            quiet = 0
        else:
            quiet += 1
            assert quiet < timeout_cycles, f"no beat for {timeout_cycles} cycles"
        if index < len(payloads):
            # i_stream.ready does not depend on i_stream.valid (the encoder's contract), so the
            # value read before driving is the one the next rising edge sees.
            if offering != index:
                dut.i_stream__payload.value = payloads[index]
                dut.i_stream__valid.value = 1
                offering = index
            if int(dut.i_stream__ready.value):
                in_cycles.append(cycle)
                index += 1
        elif offering is not None:
            dut.i_stream__valid.value = 0
            offering = None
    return in_cycles, beats


@cocotb.test()
async def test_sweep_full_throughput(dut):
    """Every (SWEEP-th) value, no idle or backpressure: beats back to back, exact latency."""
    from hw.terms import pack_act_row

    params, _, _, step = _config()
    rows = value_rows(params, sweep_values(params, step))
    clocking = Clocking(dut)
    dut.i_stream__valid.value = 0
    dut.o_stream__ready.value = 0
    clocking.start()
    await clocking.reset()
    in_cycles, beats = await stream_rows_fast(dut, clocking,
                                              [pack_act_row(params, row) for row in rows])
    assert len(in_cycles) == len(rows), f"{len(in_cycles)} of {len(rows)} rows accepted"
    check_beats(params, rows, [bits for bits, _ in beats])
    _, _, _, last = expected_beats(params, rows)
    out_cycles = [cycle for _, cycle in beats]
    assert out_cycles == list(range(out_cycles[0], out_cycles[0] + len(out_cycles))), \
        "beats were not offered back to back"
    first_beats = np.flatnonzero(np.concatenate([[1], last[:-1]]))
    assert [out_cycles[b] - i for b, i in zip(first_beats, in_cycles)] == \
        [params.latency] * len(rows), "a row's first beat did not follow its input by latency"
    dut._log.info("checked %d values in %d rows, %d beats (%s)", rows.size, len(rows),
                  len(out_cycles), params)


@cocotb.test()
async def test_random_traffic(dut):
    """NUM_SAMPLES random rows with random idle cycles and backpressure."""
    params, seed, num_samples, _ = _config()
    rng = np.random.default_rng(seed)
    tb = TermEncoderTestbench(dut, params, idle=random_pattern(0.3, seed=seed * 2 + 1),
                              stall=random_pattern(0.3, seed=seed * 2 + 2))
    await tb.start()
    tb.send(random_rows(params, num_samples, rng))
    await tb.finish()


@cocotb.test()
async def test_reset_empties(dut):
    """Reset in the middle of a row drops it; only the rows sent afterwards come out."""
    params, seed, _, _ = _config()
    from hw.terms import pack_act_row

    tb = TermEncoderTestbench(dut, params)
    tb.clocking.start()
    await tb.clocking.reset()
    tb.driver.send(pack_act_row(params, [params.max_value] * params.lanes))
    tb.driver.start()
    await tb.driver.wait_idle()
    await tb.clocking.next_cycle()
    assert int(dut.o_stream__valid.value) == 1, "accepted row not offered on the output"
    await tb.clocking.reset(cycles=1)
    await tb.clocking.next_cycle()
    assert int(dut.o_stream__valid.value) == 0, "reset did not empty the encoder"
    tb.driver.sent.clear()
    tb.monitor.start()
    tb.send(random_rows(params, 5, np.random.default_rng(seed + 1)))
    await tb.finish()
