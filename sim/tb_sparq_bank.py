"""cocotb testbench of the emitted ``sparq_bank`` (every `hw.sparq.SparqPE` mode side by side).

Run through `sim.runner.run_cocotb` (see ``tests/test_cocotb_sparq.py``). Environment:
``PARAM_ACC_WIDTH`` (`hw.params.SparqBankParams`), ``SEED`` and ``NUM_SAMPLES``: the number of
activation pairs of the sweep; ``NUM_SAMPLES >= 65536`` sweeps every uint8 activation pair,
fewer draws that many seeded random pairs (always including the edge pairs of `edge_pairs`).

* `test_activation_pairs_x_weights`: each pair ``(a0, a1)`` is sent five times, as a dot product
  of one pair each (``last`` set), with ``weight[0]`` taking every value of `WEIGHTS` and
  ``weight[1]`` rotated by the pair's index, so every activation pair meets every weight in
  each slot and every weight combination occurs. One transfer per cycle (no idle, no
  backpressure); every result of every mode is compared with `golden.sparq.vsparq_pairs`.
* `test_dot_products_with_flow_control`: random dot products of 1..9 pairs (sparse activations,
  random weights) with random idle cycles and backpressure; sums compared with
  `golden.sparq.sparq_dot`, in order, nothing lost or added.
"""

import os

import numpy as np

import cocotb

from golden.sparq import sparq_dot, vsparq_pairs
from hw.params import SparqBankParams
from hw.sparq import bank_output_layout, pack_payloads, sparq_input_layout, unpack_field

from sim.streams import Clocking, StreamDriver, StreamMonitor, random_pattern

__all__ = ["WEIGHTS", "edge_pairs", "sweep_vectors", "expected_sums"]

#: the weights every activation pair is multiplied with
WEIGHTS = np.array([-128, -1, 0, 1, 127], dtype=np.int64)


def edge_pairs():
    """Return edge-case activation pairs ``[N, 2]``: zeros, 255, RNE ties and carries
    (0x7F, 0x7C, 0x78, 0x18, 0x08, 0xF8, 0xFC), powers of two, each alone and combined."""
    values = np.array([0, 1, 7, 8, 15, 16, 17, 24, 31, 32, 63, 64, 0x78, 0x7C, 0x7F, 0x80,
                       0x88, 0xF8, 0xFC, 0xFE, 255] + [1 << b for b in range(8)],
                      dtype=np.int64)
    a0, a1 = np.meshgrid(values, values, indexing="ij")
    return np.unique(np.stack([a0.ravel(), a1.ravel()], axis=1), axis=0)


def sweep_vectors(num_pairs, seed):
    """Return ``(act [N, 2], weight [N, 2])`` of the pair sweep (see the module docstring)."""
    if num_pairs >= 1 << 16:
        a0, a1 = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
        pairs = np.stack([a0.ravel(), a1.ravel()], axis=1)
    else:
        rng = np.random.default_rng(seed)
        random = rng.integers(0, 256, size=(num_pairs, 2))
        random[rng.random(random.shape) < 0.2] = 0
        pairs = np.concatenate([edge_pairs(), random])
    count = len(pairs)
    act = np.repeat(pairs, len(WEIGHTS), axis=0)
    step = np.tile(np.arange(len(WEIGHTS)), count)
    rotation = np.repeat(np.arange(count), len(WEIGHTS))
    weight = np.stack([WEIGHTS[step], WEIGHTS[(step + rotation) % len(WEIGHTS)]], axis=1)
    return act, weight


def expected_sums(params, act, weight):
    """Return the golden sums ``[N, modes]`` of single-pair dot products."""
    columns = []
    for mode in params.modes:
        h0, h1 = vsparq_pairs(act[:, 0], act[:, 1], mode)
        columns.append(h0 * weight[:, 0] + h1 * weight[:, 1])
    return np.stack(columns, axis=1)


def _decode_sums(params, bits):
    """Decode bank outputs (list of int) to int64 ``[N, modes]``."""
    width = params.acc_width
    count = len(params.modes)
    if width in (8, 16, 32, 64):
        raw = b"".join(b.to_bytes(width * count // 8, "little") for b in bits)
        return np.frombuffer(raw, dtype=f"<i{width // 8}").reshape(-1, count).astype(np.int64)
    return unpack_field(bank_output_layout(params), bits, "sum")


def _config():
    params = SparqBankParams.from_env(os.environ)
    seed = int(os.environ.get("SEED", "1"))
    num_samples = int(os.environ.get("NUM_SAMPLES", "2000"))
    return params, seed, num_samples


@cocotb.test()
async def test_activation_pairs_x_weights(dut):
    """Every activation pair (or a seeded subset) x WEIGHTS, one transfer per cycle."""
    params, seed, num_samples = _config()
    act, weight = sweep_vectors(num_samples, seed)
    payloads = pack_payloads(sparq_input_layout(),
                             {"act": act, "weight": weight,
                              "last": np.ones(len(act), dtype=np.int64)})
    clocking = Clocking(dut)
    clocking.start()
    dut.i_stream__valid.value = 0
    dut.o_stream__ready.value = 1
    await clocking.reset()
    payload, valid, ready = dut.i_stream__payload, dut.i_stream__valid, dut.i_stream__ready
    out_payload, out_valid = dut.o_stream__payload, dut.o_stream__valid
    received = []
    # A lean loop (one trigger per cycle): the payload set at one falling edge is taken at the
    # next rising edge, and its result is in the output register at the next falling edge.
    await clocking.next_cycle()
    assert int(ready.value) == 1, "input not ready after reset"
    valid.value = 1
    for index, bits in enumerate(payloads):
        payload.value = bits
        await clocking.next_cycle()
        assert int(out_valid.value) == 1, f"no result for transfer #{index}"
        received.append(int(out_payload.value))
        assert int(ready.value) == 1, f"input not ready after transfer #{index}"
    valid.value = 0
    await clocking.next_cycle()
    assert int(out_valid.value) == 0, "a result without an input"
    got = _decode_sums(params, received)
    want = expected_sums(params, act, weight)
    bad = np.argwhere(got != want)
    if bad.size:
        row, column = bad[0]
        raise AssertionError(
            f"{len(bad)} mismatches; first: mode {params.modes[column].name}, act "
            f"{act[row].tolist()}, weight {weight[row].tolist()}: got {got[row, column]}, "
            f"expected {want[row, column]}")
    dut._log.info("checked %d transfers x %d modes", len(act), len(params.modes))


@cocotb.test()
async def test_dot_products_with_flow_control(dut):
    """Random dot products of 1..9 pairs with random idle cycles and backpressure."""
    params, seed, num_samples = _config()
    rng = np.random.default_rng(seed + 1)
    lengths = rng.integers(1, 10, size=max(20, min(num_samples, 2000) // 20))
    act = rng.integers(0, 256, size=(int(lengths.sum()), 2))
    act[rng.random(act.shape) < 0.35] = 0
    weight = rng.integers(-128, 128, size=act.shape)
    last = np.zeros(len(act), dtype=np.int64)
    last[np.cumsum(lengths) - 1] = 1
    layout = bank_output_layout(params)
    clocking = Clocking(dut)
    driver = StreamDriver(dut, "i_stream", sparq_input_layout(), clocking,
                          idle=random_pattern(0.3, seed=seed * 2 + 1))
    monitor = StreamMonitor(dut, "o_stream", layout, clocking,
                            stall=random_pattern(0.3, seed=seed * 2 + 2))
    clocking.start()
    await clocking.reset()
    driver.start()
    monitor.start()
    for bits in pack_payloads(sparq_input_layout(), {"act": act, "weight": weight,
                                                     "last": last}):
        driver.send(bits)
    await driver.wait_idle()
    await monitor.wait_for(len(lengths))
    await clocking.cycles(10)
    assert not monitor.errors, monitor.errors
    assert len(monitor.received) == len(lengths), \
        f"received {len(monitor.received)} results for {len(lengths)} dot products"
    got = np.array([[int(v) for v in payload.sum] for payload, _ in monitor.received])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    for column, mode in enumerate(params.modes):
        want = [int(sparq_dot(act[s:s + n].reshape(-1), weight[s:s + n].reshape(-1), mode))
                for s, n in zip(starts, lengths)]
        assert got[:, column].tolist() == want, f"mode {mode.name}: sums differ"
    for (_, out_cycle), (_, in_cycle) in zip(monitor.received,
                                             [driver.sent[i] for i in np.cumsum(lengths) - 1]):
        assert out_cycle >= in_cycle + params.latency
