"""cocotb testbench of the emitted ``fpraker_pe`` (and, via ``sim/tb_bf16_mac.py``, of
``bf16_mac``) against `golden.fpraker`.

Run through `sim.runner.run_cocotb` (see ``tests/test_cocotb_fpraker.py``). The environment
carries ``PARAM_*`` (`hw.params.FPRakerParams.to_env` / `BF16MACParams.to_env`), ``SEED`` and
``NUM_SAMPLES`` (random dot products). Every received ``(result, cycles)`` is compared, in order,
with `golden.fpraker.fpraker_dot` (or ``bf16_mac_dot``) of the dot product that was sent: the
float32 pattern bit for bit and the cycle count equal to the golden cycle model; with a steady
source and a ready sink the input transfers are also checked to be exactly that many cycles
apart.

The vector generators `special_dot_products`, `random_dot_products` and the golden lookup
`golden_results` are plain numpy, shared with the amaranth.sim tests (``tests/test_fpraker.py``).
"""

import os

import numpy as np

import cocotb

from golden import bfloat
from golden.fpraker import bf16_mac_dot, fpraker_dot
from hw.fpraker import pack_set, result_layout, set_layout
from hw.params import BF16MACParams, FPRakerParams

from sim.streams import Clocking, StreamDriver, StreamMonitor, random_pattern

__all__ = ["special_dot_products", "random_dot_products", "golden_results", "set_payloads",
           "design_of"]

ONE, M_ONE, TWO, HALF = 0x3F80, 0xBF80, 0x4000, 0x3F00
PINF, NINF, QNAN, SNAN, MAX, MIN_NORMAL, SUB = (0x7F80, 0xFF80, 0x7FC0, 0x7F81, 0x7F7F, 0x0080,
                                                0x0001)


def design_of(params):
    """Return ``"pe"`` for `FPRakerParams`, ``"mac"`` for `BF16MACParams`."""
    return "pe" if isinstance(params, FPRakerParams) else "mac"


def _bf16(values):
    return bfloat.f32_to_bf16(bfloat.float32_bits(np.asarray(values, dtype=np.float32)))


def _dot(params, a, b):
    """One dot product as ``(a, b)`` int64 arrays ``[sets, lanes]`` (padded with +0)."""
    n = params.lanes
    a, b = np.asarray(a, dtype=np.int64).ravel(), np.asarray(b, dtype=np.int64).ravel()
    sets = max(1, -(-a.size // n))
    pa, pb = np.zeros(sets * n, dtype=np.int64), np.zeros(sets * n, dtype=np.int64)
    pa[:a.size], pb[:b.size] = a, b
    return pa.reshape(sets, n), pb.reshape(sets, n)


def special_dot_products(params):
    """Return dot products covering every special class: signed zeros, subnormals (flushed),
    the smallest normal and its underflowing products, max finite and overflow, infinities of
    both signs, quiet and signalling NaN, inf * 0, inf - inf, exactly cancelling opposite signs,
    widely spread exponents (out-of-bounds skipping), a long accumulation of 60 sets and a set
    with every lane special."""
    n = params.lanes
    cases = [
        ([0], [0]), ([0x8000], [ONE]), ([SUB], [MAX]), ([0x8001, SUB], [MAX, 0xFF7F]),
        ([MIN_NORMAL], [ONE]), ([MIN_NORMAL], [HALF]), ([0x8080], [HALF]), ([MAX], [MAX]),
        ([MAX, 0xFF7F], [MAX, MAX]), ([MAX], [ONE]), ([PINF], [ONE]), ([NINF], [TWO]),
        ([PINF], [M_ONE]), ([QNAN], [ONE]), ([ONE], [SNAN]), ([PINF], [0]), ([0x8000], [NINF]),
        ([PINF], [SUB]), ([PINF, NINF], [ONE, ONE]), ([ONE, M_ONE], [ONE, ONE]),
        ([0x4049, 0x4049], [0x3FC0, 0xBFC0]), ([PINF, MAX], [PINF, MAX]),
        ([ONE, 0x3F80 - (40 << 7), 0x3F6D], [ONE, ONE, 0x3F80 - (20 << 7)]),
        ([ONE] * (60 * n), [ONE] * (60 * n)),
        ([PINF, QNAN, 0, SUB] * n, [0, ONE, PINF, NINF] * n),
    ]
    dots = [_dot(params, a, b) for a, b in cases]
    # a dot product whose first set is special and whose later sets are finite (flags stick)
    a, b = _dot(params, [PINF] + [ONE] * (2 * n), [ONE] * (2 * n + 1))
    dots.append((a, b))
    return dots


def random_dot_products(params, count, rng, *, max_sets=4):
    """Return ``count`` random dot products of 1..max_sets sets: normal values scaled by
    ``2**U(-s, s)`` with ``s`` drawn from {0, 3, 12, 40} per dot product, 15 % zeros, a few
    special values, and pairs of lanes that cancel exactly."""
    n = params.lanes
    dots = []
    pool = np.array([0, 0x8000, SUB, MAX, 0xFF7F, MIN_NORMAL, PINF, NINF, QNAN])
    for _ in range(count):
        sets = int(rng.integers(1, max_sets + 1))
        spread = int(rng.choice([0, 3, 12, 40]))
        shape = (sets, n)
        x = rng.normal(size=(2,) + shape) * 2.0 ** rng.integers(-spread, spread + 1,
                                                                 (2,) + shape)
        x[rng.random(x.shape) < 0.15] = 0
        a, b = _bf16(x[0]).astype(np.int64), _bf16(x[1]).astype(np.int64)
        if rng.random() < 0.1:
            special = rng.random(shape) < 0.1
            a = np.where(special, rng.choice(pool, shape), a)
        if n > 1 and rng.random() < 0.3:
            a[:, 1] = a[:, 0]
            b[:, 1] = b[:, 0] ^ 0x8000
        dots.append((a, b))
    return dots


def golden_results(params, dots):
    """Return ``(results, cycles)`` int lists of golden for the dot products ``dots``."""
    function = fpraker_dot if design_of(params) == "pe" else bf16_mac_dot
    results, cycles = [None] * len(dots), [None] * len(dots)
    by_sets = {}
    for index, (a, _) in enumerate(dots):
        by_sets.setdefault(a.shape[0], []).append(index)
    for sets, indices in by_sets.items():
        a = np.stack([dots[i][0] for i in indices]).reshape(len(indices), -1)
        b = np.stack([dots[i][1] for i in indices]).reshape(len(indices), -1)
        golden = function(a, b, params)
        for k, i in enumerate(indices):
            results[i], cycles[i] = int(golden.bits[k]), int(golden.cycles[k])
    return results, cycles


def set_payloads(params, dots):
    """Return the payload bits of every set of ``dots``, in order, with ``last`` marked."""
    payloads = []
    for a, b in dots:
        for j in range(a.shape[0]):
            payloads.append(pack_set(params, a[j], b[j], j == a.shape[0] - 1))
    return payloads


def _params_from_env():
    if "PARAM_ENCODING" in os.environ:
        return FPRakerParams.from_env(os.environ)
    return BF16MACParams.from_env(os.environ)


def _config():
    return (_params_from_env(), int(os.environ.get("SEED", "1")),
            int(os.environ.get("NUM_SAMPLES", "100")))


class PETestbench:
    """Driver, monitor and in-order scoreboard around the PE or the MAC."""

    def __init__(self, dut, params, *, idle=None, stall=None):
        self.params = params
        self.clocking = Clocking(dut)
        self.driver = StreamDriver(dut, "i_stream", set_layout(params), self.clocking,
                                   idle=idle)
        self.monitor = StreamMonitor(dut, "o_stream", result_layout, self.clocking, stall=stall)
        self.dots = []

    async def start(self):
        self.clocking.start()
        await self.clocking.reset()
        self.driver.start()
        self.monitor.start()

    def send(self, dots):
        self.dots += dots
        for bits in set_payloads(self.params, dots):
            self.driver.send(bits)

    async def finish(self, timeout_cycles=2000):
        """Wait for every result and compare all of them (result and cycles) with golden."""
        await self.driver.wait_idle(timeout_cycles)
        await self.monitor.wait_for(len(self.dots), timeout_cycles)
        await self.clocking.cycles(10)
        assert not self.monitor.errors, self.monitor.errors
        results, cycles = golden_results(self.params, self.dots)
        received = self.monitor.received
        assert len(received) == len(self.dots), \
            f"received {len(received)} results for {len(self.dots)} dot products"
        for index, (payload, _) in enumerate(received):
            got = (int(payload.result), int(payload.cycles))
            want = (results[index], cycles[index])
            assert got == want, (f"dot product #{index} a={self.dots[index][0].tolist()} "
                                 f"b={self.dots[index][1].tolist()}: got ({got[0]:#010x}, "
                                 f"{got[1]}), expected ({want[0]:#010x}, {want[1]})")
        return results, cycles


@cocotb.test()
async def test_special_values(dut):
    """Every special class, with random idle cycles and backpressure."""
    params, seed, _ = _config()
    tb = PETestbench(dut, params, idle=random_pattern(0.2, seed=seed),
                     stall=random_pattern(0.3, seed=seed + 1))
    await tb.start()
    tb.send(special_dot_products(params))
    await tb.finish()


@cocotb.test()
async def test_random_traffic(dut):
    """NUM_SAMPLES random dot products with random idle cycles and backpressure."""
    params, seed, num_samples = _config()
    tb = PETestbench(dut, params, idle=random_pattern(0.3, seed=seed + 2),
                     stall=random_pattern(0.5, seed=seed + 3))
    await tb.start()
    tb.send(random_dot_products(params, num_samples, np.random.default_rng(seed)))
    await tb.finish()


@cocotb.test()
async def test_long_accumulation(dut):
    """Two dot products of 150 sets each (spread exponents and cancellations)."""
    params, seed, _ = _config()
    rng = np.random.default_rng(seed + 4)
    dots = [random_dot_products(params, 1, rng, max_sets=1)[0] for _ in range(300)]
    long = [(np.concatenate([a for a, _ in dots[k:k + 150]]),
             np.concatenate([b for _, b in dots[k:k + 150]])) for k in (0, 150)]
    tb = PETestbench(dut, params, stall=random_pattern(0.2, seed=seed + 5))
    await tb.start()
    tb.send(long)
    await tb.finish()


@cocotb.test()
async def test_cycles_equal_the_cycle_model(dut):
    """Steady source, ready sink: set transfers are exactly the golden cycle counts apart and
    each result comes `latency` cycles after its last set when that set takes one cycle."""
    params, seed, _ = _config()
    rng = np.random.default_rng(seed + 6)
    dots = random_dot_products(params, 40, rng, max_sets=3)
    tb = PETestbench(dut, params)
    await tb.start()
    tb.send(dots)
    _, cycles = await tb.finish()
    sent = [cycle for _, cycle in tb.driver.sent]
    starts, index = [], 0
    for a, _ in dots:
        starts.append(sent[index])
        index += a.shape[0]
    starts.append(None)
    for k in range(len(dots) - 1):
        assert starts[k + 1] - starts[k] == cycles[k], (
            f"dot product #{k} occupied {starts[k + 1] - starts[k]} cycles, model {cycles[k]}")
    # a result is offered the cycle after its dot product's last cycle of work (the cycle the
    # next dot product's first set is taken): `latency` (2) cycles after its last set's
    # transfer when that set takes one cycle (always, for the baseline)
    out = [cycle for _, cycle in tb.monitor.received]
    assert [o - s for o, s in zip(out, starts[1:-1])] == [1] * (len(dots) - 1)
    last_in = [sent[index - 1] for index in np.cumsum([a.shape[0] for a, _ in dots])]
    delays = [o - i for o, i in zip(out, last_in)]
    assert min(delays) >= 2
    if design_of(params) == "mac":
        assert delays == [2] * len(dots)


@cocotb.test()
async def test_reset_clears_the_accumulator(dut):
    """Reset in the middle of a dot product: the next dot product starts from zero."""
    params, seed, _ = _config()
    tb = PETestbench(dut, params)
    tb.clocking.start()
    await tb.clocking.reset()
    a, b = _dot(params, [ONE] * params.lanes, [TWO] * params.lanes)
    first = pack_set(params, a[0], b[0], False)        # not last: stays in the accumulator
    tb.driver.send(first)
    tb.driver.start()
    await tb.driver.wait_idle()
    await tb.clocking.cycles(4)
    await tb.clocking.reset(cycles=1)
    tb.driver.sent.clear()
    tb.monitor.start()
    tb.send([_dot(params, [HALF], [HALF])])
    results, _ = await tb.finish()
    assert results == [0x3E800000]
