"""cocotb testbench of the emitted tile board top (`hw.board_tile.BoardTile`) through its pins.

Run by ``tests/test_cocotb_board_tile.py``. The environment carries the configuration:
``PARAM_*`` (`hw.params.TileParams.to_env`, `hw.params.TCLeTileParams.to_env` for the
term-serial designs, `hw.params.FPRakerTileParams.to_env` for fpraker), ``DESIGN``, ``DIVISOR``, ``TIMEOUT`` (the link's
inter-byte timeout in cycles), ``SEED``, ``FUZZ_BURSTS`` and ``LAYER_WINDOWS``.

* `CocotbUart` is the host's serial port: an 8N1 bit-level model on the ``rx``/``tx`` pins
  (bits timed with `Timer`, received bits sampled mid-bit, start and stop bits checked).
* `CocotbTransport` gives the unchanged host driver (`effectual.driver.Board`, blocking code)
  that port from a `cocotb.bridge` thread, each ``write``/``read`` resumed in the simulator.
* ``test_driver_layer_end_to_end``: handshake, self-test, a layer slice whose outputs and cycles
  equal golden.
* ``test_fuzz_then_golden``: ``FUZZ_BURSTS`` random and mutated frames; every burst must get at
  least one reply, every reply must be a well-formed frame (sync, length, CRC), replies must come
  within a bound (nothing hangs); afterwards the driver runs a layer that still equals golden and
  the board's error counter accounts for every error reply.
"""

import os

import numpy as np

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, Timer

from effectual.driver import Board, decode_reply, encode_request, selftest_layer
from hw.board_tile import DESIGNS
from hw.params import FPRakerTileParams, TCLeTileParams, TileParams
from hw.protocol import Command, Error

try:
    from cocotb import bridge, resume
except ImportError:          # cocotb 2.x exports them from the package once running
    from cocotb._bridge import bridge, resume

PERIOD_NS = 10


class CocotbUart:
    """8N1 host port on the board's ``rx`` (driven) and ``tx`` (sampled) pins."""

    def __init__(self, dut, divisor):
        self.dut = dut
        self.bit_ns = divisor * PERIOD_NS
        self.received = []
        self.errors = []
        dut.rx.value = 1
        cocotb.start_soon(self._monitor())

    async def send(self, data):
        """Send ``data`` back to back (runs of equal bits share one timer)."""
        bits = [bit for byte in bytes(data)
                for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [1]]
        k = 0
        while k < len(bits):
            run = 1
            while k + run < len(bits) and bits[k + run] == bits[k]:
                run += 1
            self.dut.rx.value = bits[k]
            await Timer(run * self.bit_ns, unit="ns")
            k += run

    async def _monitor(self):
        tx = self.dut.tx
        while True:
            await FallingEdge(tx)
            await Timer(self.bit_ns // 2, unit="ns")
            if int(tx.value) != 0:
                self.errors.append("start bit not low in its middle")
                continue
            byte = 0
            for i in range(8):
                await Timer(self.bit_ns, unit="ns")
                byte |= int(tx.value) << i
            await Timer(self.bit_ns, unit="ns")
            if int(tx.value) != 1:
                self.errors.append(f"stop bit low after 0x{byte:02x}")
            self.received.append(byte)

    async def read(self, count, timeout_bits):
        """Return up to ``count`` bytes, waiting at most ``timeout_bits`` bit times without a new
        byte."""
        quiet, have = 0, len(self.received)
        while len(self.received) < count and quiet < timeout_bits:
            await Timer(10 * self.bit_ns, unit="ns")
            if len(self.received) > have:
                have, quiet = len(self.received), 0
            else:
                quiet += 10
        out = bytes(self.received[:count])
        del self.received[:count]
        return out


class CocotbTransport:
    """Blocking transport for `effectual.driver.Board` inside a `cocotb.bridge` thread."""

    def __init__(self, uart, timeout_bits=4000):
        self.uart = uart
        self.timeout_bits = timeout_bits

    def write(self, data):
        resume(self.uart.send)(data)

    def read(self, count):
        return resume(self.uart.read)(count, self.timeout_bits)


async def _setup(dut):
    backend = DESIGNS[os.environ["DESIGN"]][1]
    params = {"term-serial": TCLeTileParams, "fpraker": FPRakerTileParams}.get(
        backend, TileParams).from_env(os.environ)
    divisor = int(os.environ["DIVISOR"])
    Clock(dut.clk, PERIOD_NS, unit="ns").start(start_high=True)
    dut.rst.value = 1
    uart = CocotbUart(dut, divisor)
    await Timer(5 * PERIOD_NS, unit="ns")
    dut.rst.value = 0
    return params, uart


def _run_layer(uart, params, seed):
    board = Board(CocotbTransport(uart))
    board.handshake()
    board.expect(params)
    windows = int(os.environ.get("LAYER_WINDOWS", "4"))
    run = board.run_layer(selftest_layer(params, seed=seed), max_windows=windows)
    status = board.status()
    return run, status, board


@cocotb.test()
async def test_driver_layer_end_to_end(dut):
    params, uart = await _setup(dut)

    def host():
        run, status, board = _run_layer(uart, params, seed=int(os.environ["SEED"]) + 1)
        return run, status, board.selftest()

    run, status, (passed, _) = await bridge(host)()
    assert status.selftest_done and status.selftest_pass and passed
    assert run.passes and all(p.ok for p in run.passes), \
        [(p.tile, p.chunk, p.cycles, p.expected_cycles) for p in run.passes if not p.ok]
    assert run.ok
    assert not uart.errors, uart.errors


def _mutations(rng, count):
    """Yield ``count`` bursts, in turn: random bytes; a frame with a good CRC but a random
    command and payload; a valid request with its payload mutated and the CRC recomputed (so
    the command-level checks are reached); a valid request with bits flipped, bytes cut or
    inserted or the length field changed (CRC, length and timeout checks)."""
    requests = [(Command.STATUS, b""), (Command.VERSION, b"\x01"), (Command.READ_CYCLES, b""),
                (Command.SELFTEST, b""), (Command.LOAD_ACTS, bytes(2 + 8)),
                (Command.LOAD_SCHEDULE, bytes(2 + 11)), (Command.START, b"\x01\x00\x01\x00\x01"),
                (Command.READ_RESULTS, b"\x00\x00\x02\x00")]
    for i in range(count):
        kind = i % 4
        if kind == 0:
            yield bytes(rng.integers(0, 256, int(rng.integers(1, 40))).tolist())
            continue
        if kind == 1:
            payload = bytes(rng.integers(0, 256, int(rng.integers(0, 16))).tolist())
            yield encode_request(int(rng.integers(0, 12)), payload)
            continue
        command, payload = requests[int(rng.integers(len(requests)))]
        raw = bytearray(payload if kind == 2 else encode_request(command, payload))
        for _ in range(int(rng.integers(1, 4))):
            what = int(rng.integers(4)) if raw else 2
            if what == 0:
                raw[int(rng.integers(len(raw)))] ^= 1 << int(rng.integers(8))
            elif what == 1:
                del raw[int(rng.integers(len(raw))):]
            elif what == 2:
                raw.insert(int(rng.integers(len(raw) + 1)), int(rng.integers(256)))
            elif kind == 3 and len(raw) >= 4:
                raw[2:4] = int(rng.integers(0, 1 << 16)).to_bytes(2, "little")
            elif raw:
                raw[int(rng.integers(len(raw)))] = int(rng.integers(256))
        if kind == 2:
            yield encode_request(command, bytes(raw))
        else:
            yield bytes(raw) or b"\xa5"


@cocotb.test()
async def test_fuzz_then_golden(dut):
    params, uart = await _setup(dut)
    divisor = int(os.environ["DIVISOR"])
    timeout_bits = int(os.environ["TIMEOUT"]) // divisor
    rng = np.random.default_rng(int(os.environ["SEED"]))
    bursts = int(os.environ.get("FUZZ_BURSTS", "2000"))
    await Timer(20000 * PERIOD_NS, unit="ns")            # the power-on self-test
    counts = {}
    error_replies = 0
    for n, raw in enumerate(_mutations(rng, bursts)):
        await uart.send(raw)
        # the first reply must come: after the line is quiet for the link's timeout at most,
        # plus a self-test or a START's run and the reply itself (generous bound)
        data = await uart.read(5, 4 * timeout_bits + 3000)
        assert len(data) == 5, f"burst {n} ({raw.hex()}): no reply (got {data.hex()})"
        data += await uart.read(int.from_bytes(data[3:5], "little") + 2, 200)
        data += await uart.read(1 << 16, 2 * timeout_bits + 40)   # anything else, until quiet
        while data:
            reply, used = decode_reply(data)       # raises on a malformed reply
            counts[reply.status] = counts.get(reply.status, 0) + 1
            error_replies += reply.status not in (Error.OK, Error.BAD_VERSION)
            data = data[used:]
    assert not uart.errors, uart.errors
    dut._log.info(f"fuzz: {bursts} bursts, replies by status: "
                  + ", ".join(f"{Error(k).name} {v}" for k, v in sorted(counts.items())))
    # the fuzz reached the frame-level and the command-level checks
    assert {Error.OK, Error.BAD_SYNC, Error.TIMEOUT, Error.TOO_LONG, Error.BAD_CRC, Error.BAD_CMD,
            Error.BAD_LEN, Error.BAD_ARG, Error.BAD_VERSION} <= set(counts), counts

    def host():
        run, status, _ = _run_layer(uart, params, seed=int(os.environ["SEED"]) + 2)
        return run, status

    run, status = await bridge(host)()
    assert run.ok
    assert status.errors == min(error_replies, 0xFFFF), (status.errors, error_replies)
