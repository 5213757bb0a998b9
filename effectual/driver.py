"""Host driver for a board running `hw.board_tile.BoardTile`: frame codec, transports, layer runs.

The protocol (frame format, commands, status codes) is defined in `hw.protocol`; this module is
its reference codec on the host side:

* `encode_request` / `decode_reply` / `encode_reply` build and parse frames (pure functions,
  used by the tests as the independent model of the RTL's replies).
* A *transport* moves bytes: ``write(data)`` and ``read(count) -> bytes`` (fewer bytes than
  asked when its timeout expires). `SerialTransport` talks to a real board through pyserial
  (imported only when used); the simulation transports live in ``sim/tb_board_tile.py`` and the
  tests.
* `Board` speaks the protocol over a transport: handshake, loads, start, polling, results,
  cycles, self-test, and `Board.run_layer`, which runs every pass of a layer
  (`golden.tcl.passes`: the layer is sent in pieces that fit the board's memories; on an
  fpraker board `golden.fpraker_tile.layer_passes` of the layer's float view), collects the
  outputs and cycle counts, and checks both against golden.
"""

import dataclasses
import time

import numpy as np

from hw.protocol import (BACKENDS, ENCODINGS, INFO_LENGTH, MAGIC, PROTOCOL_VERSION, REPLY_SYNC,
                         REQUEST_SYNC, STATUS_LENGTH, Command, Error, crc16, pattern_crc)

__all__ = ["ProtocolError", "DeviceError", "Reply", "BoardInfo", "BoardStatus",
           "encode_request", "encode_reply", "decode_reply", "SerialTransport", "Board",
           "PassRun", "LayerRun", "geometry", "expected_cycles", "selftest_layer",
           "selftest_vectors"]


class ProtocolError(OSError):
    """The board's reply is malformed (bad sync, bad CRC) or missing (timeout)."""


class DeviceError(OSError):
    """The board answered with an error status."""

    def __init__(self, command, status, message=None):
        self.command, self.status = command, status
        name = Error(status).name if status in Error._value2member_map_ else f"0x{status:02x}"
        cmd = (Command(command).name if command in Command._value2member_map_
               else f"0x{command:02x}")
        super().__init__(message or f"board replied {name} to {cmd}")


@dataclasses.dataclass(frozen=True)
class Reply:
    """One reply frame: the command it answers, its status and payload."""

    command: int
    status: int
    payload: bytes


def encode_request(command, payload=b""):
    """Return the request frame (bytes) of ``command`` with ``payload``."""
    payload = bytes(payload)
    if not 0 <= command <= 255:
        raise ValueError(f"command must be a byte, not {command!r}")
    if len(payload) > 0xFFFF:
        raise ValueError(f"payload of {len(payload)} bytes does not fit the 16-bit length")
    body = bytes([command]) + len(payload).to_bytes(2, "little") + payload
    return bytes([REQUEST_SYNC]) + body + crc16(body).to_bytes(2, "big")


def encode_reply(command, status, payload=b""):
    """Return the reply frame (bytes) the board sends (the model of the RTL's replies)."""
    payload = bytes(payload)
    body = bytes([command, status]) + len(payload).to_bytes(2, "little") + payload
    return bytes([REPLY_SYNC]) + body + crc16(body).to_bytes(2, "big")


def decode_reply(data):
    """Parse one reply frame at the start of ``data``; return ``(Reply, bytes used)``.

    Raises `ProtocolError` if ``data`` is short, does not start with the reply sync byte or the
    CRC does not match.
    """
    data = bytes(data)
    if len(data) < 7:
        raise ProtocolError(f"reply too short: {len(data)} bytes ({data.hex()})")
    if data[0] != REPLY_SYNC:
        raise ProtocolError(f"reply does not start with 0x{REPLY_SYNC:02x}: {data[:8].hex()}")
    length = int.from_bytes(data[3:5], "little")
    end = 5 + length + 2
    if len(data) < end:
        raise ProtocolError(f"reply truncated: {len(data)} of {end} bytes")
    if crc16(data[1:end - 2]) != int.from_bytes(data[end - 2:end], "big"):
        raise ProtocolError(f"reply CRC mismatch: {data[:end].hex()}")
    return Reply(data[1], data[2], data[5:end - 2]), end


@dataclasses.dataclass(frozen=True)
class BoardInfo:
    """The board's answer to ``VERSION``: its protocol version and tile configuration.

    ``backend`` is a name of `hw.protocol.BACKENDS`; ``encoding``, ``first_stage_bits``,
    ``run_ahead`` and ``gate_zero_weights`` describe a term-serial back end, ``encoding`` and
    ``fp_acc_width`` an fpraker one (the others are None).
    """

    protocol: int
    backend: str
    filters: int
    lanes: int
    windows: int
    weight_width: int
    act_width: int
    act_signed: bool
    weight_rows: int
    act_rows: int
    max_payload: int
    pattern_crc: int
    clock_hz: int
    selftest: bool
    encoding: str = None
    first_stage_bits: int = None
    run_ahead: int = None
    gate_zero_weights: bool = None
    fp_acc_width: int = None

    @property
    def term_serial(self):
        """Whether the back end is term-serial."""
        return self.backend == "term-serial"

    @property
    def fpraker(self):
        """Whether the back end is the bfloat16 FPRaker tile."""
        return self.backend == "fpraker"

    @classmethod
    def from_bytes(cls, data):
        """Parse the ``VERSION`` payload (`hw.protocol.INFO_LENGTH` bytes); `ProtocolError` if
        malformed. A board speaking another protocol version is reported by `Board.handshake`
        (`DeviceError` ``BAD_VERSION``) before this is called."""
        if len(data) != INFO_LENGTH or data[:4] != MAGIC:
            raise ProtocolError(f"VERSION reply is not an Effectual board: {bytes(data).hex()}")
        if data[5] >= len(BACKENDS):
            raise ProtocolError(f"VERSION reply has back-end code {data[5]}, not one of "
                                f"0..{len(BACKENDS) - 1}")
        backend = BACKENDS[data[5]]
        term = {}
        if backend in ("term-serial", "fpraker"):
            if data[29] >= len(ENCODINGS):
                raise ProtocolError(f"VERSION reply has encoding code {data[29]}, not one of "
                                    f"0..{len(ENCODINGS) - 1}")
            if backend == "fpraker":
                term = dict(encoding=ENCODINGS[data[29]], fp_acc_width=data[30])
            else:
                term = dict(encoding=ENCODINGS[data[29]], first_stage_bits=data[30],
                            run_ahead=data[31], gate_zero_weights=bool(data[32]))
        u32 = lambda k: int.from_bytes(data[k:k + 4], "little")  # noqa: E731
        return cls(protocol=data[4], backend=backend, filters=data[6], lanes=data[7],
                   windows=data[8], weight_width=data[9], act_width=data[10],
                   act_signed=bool(data[11]), weight_rows=u32(12), act_rows=u32(16),
                   max_payload=int.from_bytes(data[20:22], "little"),
                   pattern_crc=int.from_bytes(data[22:24], "little"), clock_hz=u32(24),
                   selftest=bool(data[28]), **term)

    def matches(self, params):
        """Return the names of the `TileParams` (`TCLeTileParams` for a term-serial board,
        `FPRakerTileParams` for an fpraker one) fields that differ from the board's
        (``"params type"`` if the kind differs)."""
        from hw.params import FPRakerTileParams, TCLeTileParams

        names = ["filters", "lanes", "windows", "weight_width", "act_width", "act_signed",
                 "weight_rows", "act_rows"]
        diff = [name for name in names if getattr(self, name) != getattr(params, name)]
        if self.pattern_crc != pattern_crc(params.offsets):
            diff.append("pattern")
        if (self.term_serial != isinstance(params, TCLeTileParams)
                or self.fpraker != isinstance(params, FPRakerTileParams)):
            diff.append("params type (the board's back end is " + self.backend + ")")
        elif self.fpraker:
            diff += [name for name in ("encoding", "fp_acc_width")
                     if getattr(self, name) != getattr(params, name)]
        elif self.term_serial:
            diff += [name for name in ("encoding", "first_stage_bits", "run_ahead",
                                       "gate_zero_weights")
                     if getattr(self, name) != getattr(params, name)]
        return diff


@dataclasses.dataclass(frozen=True)
class BoardStatus:
    """The board's answer to ``STATUS``."""

    running: bool
    results_valid: bool
    selftest_done: bool
    selftest_pass: bool
    last_error: int
    errors: int
    frames: int

    @classmethod
    def from_bytes(cls, data):
        """Parse the 6-byte ``STATUS`` payload."""
        if len(data) != STATUS_LENGTH:
            raise ProtocolError(f"STATUS reply has {len(data)} bytes, not {STATUS_LENGTH}")
        flags = data[0]
        return cls(running=bool(flags & 1), results_valid=bool(flags & 2),
                   selftest_done=bool(flags & 4), selftest_pass=bool(flags & 8),
                   last_error=data[1], errors=int.from_bytes(data[2:4], "little"),
                   frames=int.from_bytes(data[4:6], "little"))


def geometry(params):
    """Byte sizes of rows and results for ``params`` (see `hw.hostlink.frame_geometry`)."""
    from hw.hostlink import frame_geometry

    return frame_geometry(params)


class SerialTransport:
    """A serial port through pyserial (``pip install "pyserial>=3.5,<4"``), imported lazily.

    Parameters
    ----------
    port : str
        Device, e.g. ``/dev/ttyUSB1`` (the iCEBreaker's and ULX3S's FTDI exposes the UART on
        its second interface on Linux).
    baud : int
        Line rate; must match the bitstream (default 115200).
    timeout : float
        Seconds `read` waits for the bytes asked for.
    """

    def __init__(self, port, *, baud=115200, timeout=2.0):
        try:
            import serial
        except ImportError:
            raise OSError("talking to a board needs pyserial: pip install 'pyserial>=3.5,<4'") \
                from None
        self._port = serial.Serial(port, baudrate=baud, bytesize=8, parity="N", stopbits=1,
                                   timeout=timeout)

    def write(self, data):
        """Send ``data``."""
        self._port.write(bytes(data))
        self._port.flush()

    def read(self, count):
        """Return up to ``count`` bytes (fewer if the timeout expires)."""
        return bytes(self._port.read(count))

    def drain(self):
        """Discard any bytes waiting in the input buffer."""
        self._port.reset_input_buffer()

    def close(self):
        """Close the port."""
        self._port.close()


@dataclasses.dataclass
class PassRun:
    """One pass run on the board: where it sits in the layer, results and cycles, and golden's."""

    tile: int
    chunk: int
    outputs: np.ndarray          # int64 [F, W] from the board
    expected: np.ndarray         # int64 [F, W] from golden.tcl
    cycles: int
    expected_cycles: int

    @property
    def ok(self):
        """Whether outputs and cycles equal golden."""
        return bool(np.array_equal(self.outputs, self.expected)
                    and self.cycles == self.expected_cycles)


@dataclasses.dataclass
class LayerRun:
    """All passes of a layer (or of its first windows) run on the board."""

    passes: list
    outputs: np.ndarray          # int64 [K, windows] assembled from the passes
    reference: np.ndarray        # int64 [K, windows] from golden.layers.layer_output
    macs: int                    # multiply-accumulates of the windows run
    seconds: float               # wall time of the whole run

    @property
    def cycles(self):
        """Total compute cycles (the board's counters)."""
        return sum(p.cycles for p in self.passes)

    @property
    def ok(self):
        """Every pass equals golden.tcl and the assembled outputs equal the layer's reference."""
        return all(p.ok for p in self.passes) and np.array_equal(self.outputs, self.reference)


class Board:
    """The protocol over a transport.

    Parameters
    ----------
    transport : object with ``write(bytes)`` and ``read(count) -> bytes``
        `SerialTransport` or a simulation transport.
    max_polls : int
        `wait` gives up (``TimeoutError``) after this many ``STATUS`` polls of a running board.

    Every method sends one request (or several, for data larger than the board's payload) and
    raises `DeviceError` for an error status, `ProtocolError` for a malformed or missing reply.
    """

    def __init__(self, transport, *, max_polls=100000):
        self.transport = transport
        self.max_polls = max_polls
        self.info = None

    # --- frames -----------------------------------------------------------------------------
    def exchange(self, command, payload=b""):
        """Send one request; return its `Reply` whatever the status."""
        self.transport.write(encode_request(command, payload))
        head = self.transport.read(5)
        if len(head) < 5:
            name = (Command(command).name if command in Command._value2member_map_
                    else f"0x{command:02x}")
            raise ProtocolError(f"no reply to {name} (got {head.hex() or 'nothing'})")
        length = int.from_bytes(head[3:5], "little")
        rest = self.transport.read(length + 2)
        reply, _ = decode_reply(head + rest)
        if reply.command not in (command, 0):
            raise ProtocolError(f"reply to command 0x{reply.command:02x}, expected "
                                f"0x{command:02x}")
        return reply

    def request(self, command, payload=b""):
        """Send one request; return the reply payload; `DeviceError` unless the status is OK."""
        reply = self.exchange(command, payload)
        if reply.status != Error.OK:
            raise DeviceError(command, reply.status)
        return reply.payload

    # --- commands ---------------------------------------------------------------------------
    def handshake(self):
        """Exchange protocol versions; return (and keep) the board's `BoardInfo`.

        A board that was busy (its power-on self-test) or saw line noise answers the first
        request with ``OVERRUN``, ``BAD_SYNC``, ``FRAMING`` or ``TIMEOUT``; the request is then
        repeated (up to three times).
        """
        for _ in range(3):
            reply = self.exchange(Command.VERSION, bytes([PROTOCOL_VERSION]))
            if reply.status not in (Error.OVERRUN, Error.BAD_SYNC, Error.FRAMING,
                                    Error.TIMEOUT):
                break
        if reply.status not in (Error.OK, Error.BAD_VERSION):
            raise DeviceError(Command.VERSION, reply.status)
        payload = reply.payload
        # the version byte is checked before the rest: another protocol's info has another
        # length and layout
        if len(payload) < 5 or payload[:4] != MAGIC:
            raise ProtocolError(f"VERSION reply is not an Effectual board: {payload.hex()}")
        if reply.status == Error.BAD_VERSION or payload[4] != PROTOCOL_VERSION:
            raise DeviceError(Command.VERSION, Error.BAD_VERSION,
                              f"board speaks protocol {payload[4]}, this driver "
                              f"{PROTOCOL_VERSION}")
        info = BoardInfo.from_bytes(payload)
        self.info = info
        return info

    def status(self):
        """Return the `BoardStatus`."""
        return BoardStatus.from_bytes(self.request(Command.STATUS))

    def _load(self, command, words, nbytes, first):
        per_frame = max(1, (self.info.max_payload - 2) // nbytes)
        for k in range(0, len(words), per_frame):
            chunk = words[k:k + per_frame]
            payload = (first + k).to_bytes(2, "little") + b"".join(
                int(word).to_bytes(nbytes, "little") for word in chunk)
            self.request(command, payload)

    def load_schedule(self, words, first=0):
        """Write packed schedule rows ``words`` to the board's buffer from row ``first``."""
        self._load(Command.LOAD_SCHEDULE, words, self.geometry["row_bytes"], first)

    def load_acts(self, words, first=0):
        """Write packed activation rows ``words`` to the board's buffer from row ``first``."""
        self._load(Command.LOAD_ACTS, words, self.geometry["act_bytes"], first)

    def start(self, rows, steps, load_weights):
        """Start a pass: ``rows`` schedule rows, ``steps`` steps, reload the schedule or not."""
        self.request(Command.START, rows.to_bytes(2, "little") + steps.to_bytes(2, "little")
                     + bytes([int(bool(load_weights))]))

    def wait(self):
        """Poll ``STATUS`` until the run is over; return the last `BoardStatus`."""
        for _ in range(self.max_polls):
            status = self.status()
            if not status.running:
                return status
        raise TimeoutError(f"board still running after {self.max_polls} polls")

    def read_results(self, count, first=0):
        """Return ``count`` results of the last run from ``first`` (signed ints)."""
        nbytes = self.geometry["result_bytes"]
        per_frame = self.info.max_payload // nbytes
        values = []
        for k in range(0, count, per_frame):
            n = min(per_frame, count - k)
            data = self.request(Command.READ_RESULTS, (first + k).to_bytes(2, "little")
                                + n.to_bytes(2, "little"))
            values += [int.from_bytes(data[i:i + nbytes], "little", signed=True)
                       for i in range(0, len(data), nbytes)]
        return values

    def read_cycles(self):
        """Return the compute cycles of the last run."""
        return int.from_bytes(self.request(Command.READ_CYCLES), "little")

    def selftest(self):
        """Run the built-in self-test; return ``(passed, cycles)``."""
        data = self.request(Command.SELFTEST)
        return bool(data[0] & 1), int.from_bytes(data[1:5], "little")

    @property
    def geometry(self):
        """Byte sizes for the board's configuration (after `handshake`)."""
        return geometry(self.params)

    @property
    def params(self):
        """The board's `TileParams` (`TCLeTileParams` for a term-serial board), set by
        `expect`."""
        return self._params

    def expect(self, params):
        """Check that the board has configuration ``params``; ``ValueError`` naming what differs."""
        if self.info is None:
            self.handshake()
        diff = self.info.matches(params)
        if diff:
            raise ValueError(f"the board's tile differs from the expected one in "
                             f"{', '.join(diff)}")
        self._params = params

    # --- whole passes and layers ----------------------------------------------------------
    def run_pass(self, golden_pass, *, load_weights=True):
        """Run one `golden.tcl.Pass`; return a `PassRun` (board outputs, golden's)."""
        from golden.tcl import pack_act_rows

        p = self._params
        sched = golden_pass.schedule
        if load_weights:
            self.load_schedule(sched.pack(p))
        self.load_acts(pack_act_rows(golden_pass.acts, p))
        steps = golden_pass.acts.shape[1]
        self.start(sched.rows, steps, load_weights)
        self.wait()
        values = self.read_results(p.filters * p.windows)
        outputs = np.array(values, dtype=np.int64).reshape(p.windows, p.filters).T
        return PassRun(tile=golden_pass.tile, chunk=golden_pass.chunk, outputs=outputs,
                       expected=golden_pass.outputs, cycles=self.read_cycles(),
                       expected_cycles=expected_cycles(golden_pass, p, self.info.backend))

    def run_fpraker_pass(self, tile_pass, *, tile=0, chunk=0):
        """Run one `golden.fpraker_tile.TilePass` on an fpraker board; return a `PassRun`
        (``outputs`` / ``expected``: the P float32 patterns as a [P, 1] array; ``tile`` and
        ``chunk`` as given: the filter block and the output position)."""
        p = self._params
        if tile_pass.load_weights:
            self.load_schedule(tile_pass.schedule)
        self.load_acts(tile_pass.acts)
        self.start(tile_pass.rows, tile_pass.steps, tile_pass.load_weights)
        self.wait()
        outputs = np.array(self.read_results(p.filters), dtype=np.int64).reshape(-1, 1)
        return PassRun(tile=tile, chunk=chunk, outputs=outputs,
                       expected=np.array(tile_pass.results, dtype=np.int64).reshape(-1, 1),
                       cycles=self.read_cycles(),
                       expected_cycles=expected_cycles(tile_pass, p, "fpraker"))

    def _run_fpraker_layer(self, layer, max_windows, on_pass, started):
        from golden.fpraker import fpraker_dot
        from golden.fpraker_layers import layer_pairs
        from golden.fpraker_tile import layer_passes

        p = self._params
        k = layer.out_channels
        positions = int(np.prod(layer.output_shape)) // k
        total = positions if max_windows is None else min(max_windows, positions)
        # the reference: every output of the layer's float view as one whole dot product
        # (`golden.fpraker.fpraker_dot` over `layer_pairs`), not cut into tile passes
        a, b = layer_pairs(layer)
        keep = (np.arange(k)[:, None] * positions + np.arange(total)[None, :]).ravel()
        reference = fpraker_dot(a[keep], b[keep], p.pe_params).bits.astype(np.int64)
        outputs = np.zeros(k * positions, dtype=np.int64)
        runs, block, chunk = [], -1, 0
        for tile_pass in layer_passes(layer, p, max_positions=max_windows):
            if tile_pass.load_weights:
                block, chunk = block + 1, 0
            run = self.run_fpraker_pass(tile_pass, tile=block, chunk=chunk)
            chunk += 1
            runs.append(run)
            for f, index in enumerate(tile_pass.outputs.tolist()):
                if index >= 0:
                    outputs[index] = run.outputs[f, 0]
            if on_pass is not None:
                on_pass(run)
        macs = int(layer.macs * total // positions)
        return LayerRun(passes=runs, outputs=outputs.reshape(k, positions)[:, :total],
                        reference=reference.reshape(k, total), macs=macs,
                        seconds=time.perf_counter() - started)

    def run_layer(self, layer, *, max_windows=None, on_pass=None):
        """Run every pass of ``layer`` (its first ``max_windows`` windows); return a `LayerRun`.

        A filter tile's schedule is loaded once and reused (``load_weights`` 0) for its other
        window chunks. ``on_pass(PassRun)`` is called after each pass.

        On an fpraker board the layer's float view runs
        (`golden.fpraker_tile.layer_passes`, ``max_windows`` = its ``max_positions``): a pass is
        one output position of a block of P filters; outputs and references are float32 bit
        patterns, compared bit for bit, and the reference is `golden.fpraker.fpraker_dot` of
        each whole output (`golden.fpraker_layers.layer_pairs`).
        """
        from golden.layers import layer_output
        from golden.tcl import passes

        started = time.perf_counter()
        if self.info is not None and self.info.fpraker:
            return self._run_fpraker_layer(layer, max_windows, on_pass, started)
        p = self._params
        reference = layer_output(layer).reshape(layer.out_channels, -1)
        total = reference.shape[1] if max_windows is None else min(max_windows,
                                                                  reference.shape[1])
        outputs = np.zeros((layer.out_channels, total), dtype=np.int64)
        runs, loaded = [], None
        for golden_pass in passes(layer, p, max_windows=max_windows):
            run = self.run_pass(golden_pass, load_weights=golden_pass.tile != loaded)
            loaded = golden_pass.tile
            runs.append(run)
            for f, k in enumerate(golden_pass.filters.tolist()):
                for w, window in enumerate(golden_pass.windows.tolist()):
                    if k >= 0 and window >= 0:
                        outputs[k, window] = run.outputs[f, w]
            if on_pass is not None:
                on_pass(run)
        macs = int(layer.macs * total // reference.shape[1])
        return LayerRun(passes=runs, outputs=outputs, reference=reference[:, :total],
                        macs=macs, seconds=time.perf_counter() - started)


def selftest_layer(params, *, seed=1):
    """Return the small conv layer whose first pass is the board's built-in self-test.

    ``lanes`` input channels, ``filters`` output channels, a 2x2 kernel (1x1 if ``act_rows`` <
    4) and enough output windows for one full chunk; about half of the weights are zero (so a
    pattern has something to skip) and the activations use the full range of ``act_width`` with
    varied magnitudes (so a bit-serial tile's per-row precision varies).
    """
    from golden.layers import Layer

    rng = np.random.default_rng(seed)
    k = 2 if params.act_rows >= 4 else 1
    side = k - 1 + int(np.ceil(np.sqrt(params.windows)))
    ww, aw = params.weight_width, params.act_width
    weights = rng.integers(-(1 << (ww - 1)), 1 << (ww - 1),
                           (params.filters, params.lanes, k, k))
    weights[rng.random(weights.shape) < 0.5] = 0
    low, high = (-(1 << (aw - 1)), 1 << (aw - 1)) if params.act_signed else (0, 1 << aw)
    acts = rng.integers(low, high, (params.lanes, side, side))
    acts >>= rng.integers(0, aw, acts.shape)          # varied precision
    return Layer(kind="conv", weights=weights, activations=acts, weight_bits=ww, act_bits=aw,
                 act_signed=params.act_signed, name="selftest")


def expected_cycles(golden_pass, params, backend):
    """Return the compute cycles golden predicts for one `golden.tcl.Pass` on a tile.

    ``backend`` (a name of `hw.protocol.BACKENDS`): ``"bit-parallel"`` -> the pass's R rows
    (``cycles_bit_parallel``), ``"bit-serial"`` -> the sum of the rows' precisions
    (``cycles_bit_serial``), ``"term-serial"`` -> `golden.pragmatic.schedule_cycles` with the
    encoding, first-stage bits, run-ahead and gating of ``params`` (a `TCLeTileParams`),
    ``"fpraker"`` -> the lock-step cycles of `golden.fpraker_tile.pass_result` recomputed from
    the pass's A and B sets (``golden_pass`` a `golden.fpraker_tile.TilePass`, ``params`` an
    `FPRakerTileParams`).
    """
    if backend == "fpraker":
        from golden.fpraker_tile import pass_result
        from hw.params import FPRakerTileParams

        if not isinstance(params, FPRakerTileParams):
            raise TypeError(f"the fpraker back end needs FPRakerTileParams, not {params!r}")
        return int(pass_result(params, golden_pass.a_sets, golden_pass.b_sets,
                               steps=golden_pass.steps).cycles)
    if backend == "bit-parallel":
        return int(golden_pass.cycles_bit_parallel)
    if backend == "bit-serial":
        return int(golden_pass.cycles_bit_serial)
    if backend != "term-serial":
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    from golden.pragmatic import schedule_cycles
    from hw.params import TCLeTileParams

    if not isinstance(params, TCLeTileParams):
        raise TypeError(f"the term-serial back end needs TCLeTileParams, not {params!r}")
    return int(schedule_cycles(golden_pass.schedule, golden_pass.acts,
                               encoding=params.encoding, act_width=params.act_width,
                               act_signed=params.act_signed,
                               first_stage_bits=params.first_stage_bits,
                               run_ahead=params.run_ahead,
                               gate_zero_weights=params.gate_zero_weights))


def selftest_vectors(params, *, backend, seed=1):
    """Return the keyword arguments of `hw.hostlink.SelfTest` for ``params``: the first pass of
    `selftest_layer` from `golden.tcl.passes`, with the cycle count `expected_cycles` predicts
    for ``backend`` (a name of `hw.protocol.BACKENDS`). For ``"fpraker"``: the vectors of
    `golden.fpraker_tile.selftest_pass` (``seed``)."""
    from golden.tcl import pack_act_rows, passes

    if backend == "fpraker":
        from golden.fpraker_tile import selftest_pass

        tile_pass = selftest_pass(params, seed=seed)
        return {"rows": tile_pass.rows, "steps": tile_pass.steps,
                "schedule": list(tile_pass.schedule), "acts": list(tile_pass.acts),
                "results": list(tile_pass.results),
                "cycles": expected_cycles(tile_pass, params, backend)}

    first = next(passes(selftest_layer(params, seed=seed), params))
    return {"rows": first.schedule.rows, "steps": first.acts.shape[1],
            "schedule": first.schedule.pack(params), "acts": pack_act_rows(first.acts, params),
            "results": first.outputs.T.ravel().tolist(),
            "cycles": expected_cycles(first, params, backend)}
