"""Host-link protocol constants shared by the RTL (`hw.hostlink`) and the host (`effectual.driver`).

No Amaranth import: the host driver and the golden side use these numbers too.

Request frame (host -> board)::

    0xA5 | CMD | LEN lo | LEN hi | PAYLOAD (LEN bytes) | CRC hi | CRC lo

Reply frame (board -> host)::

    0x5A | CMD | STATUS | LEN lo | LEN hi | PAYLOAD (LEN bytes) | CRC hi | CRC lo

The CRC is CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, no reflection, no final
XOR; check value 0x29B1 for ``b"123456789"``) over every byte after the sync byte up to the end
of the payload, sent most significant byte first. Multi-byte fields are little-endian.

``VERSION`` info (protocol 2, `INFO_LENGTH` = 33 bytes)::

    0..3    MAGIC "EFCT"
    4       protocol version
    5       back end (`BACKENDS`: 0 bit-parallel, 1 bit-serial, 2 term-serial, 3 fpraker)
    6..8    filters, lanes, windows
    9..11   weight_width, act_width, act_signed
    12..15  weight_rows u32
    16..19  act_rows u32
    20..21  max_payload u16
    22..23  pattern CRC u16 (`pattern_crc`)
    24..27  clock_hz u32
    28      self-test vectors present
    29..32  back-end options (0 where the table has no entry):

            byte  term-serial        fpraker
            29    encoding           encoding      (`ENCODINGS`: 0 booth, 1 naf, 2 binary)
            30    first_stage_bits   fp_acc_width  (the PEs' accumulator window W, 16..48)
            31    run_ahead          0
            32    gate_zero_weights  0

Protocol 1 had 29 bytes and a bit-serial flag in byte 5.
"""

__all__ = ["PROTOCOL_VERSION", "REQUEST_SYNC", "REPLY_SYNC", "MAGIC", "Command", "Error",
           "crc16", "pattern_crc", "INFO_LENGTH", "STATUS_LENGTH", "BACKENDS", "ENCODINGS",
           "backend_code", "encoding_code"]

import enum

PROTOCOL_VERSION = 2
REQUEST_SYNC = 0xA5
REPLY_SYNC = 0x5A
MAGIC = b"EFCT"
INFO_LENGTH = 33      # VERSION reply payload
STATUS_LENGTH = 6     # STATUS reply payload

#: the tile's back end, by its code in the ``VERSION`` info (byte 5): bit-parallel (cycles = R
#: schedule rows per pass), bit-serial (TCLp: sum of the rows' precisions), term-serial (TCLe,
#: Pragmatic: `golden.pragmatic.schedule_cycles`), fpraker (the bfloat16 FPRaker tile:
#: `golden.fpraker_tile.pass_result` cycles)
BACKENDS = ("bit-parallel", "bit-serial", "term-serial", "fpraker")
#: a term-serial or FPRaker tile's activation term encoding, by its code in the ``VERSION`` info
#: (byte 29)
ENCODINGS = ("booth", "naf", "binary")


def backend_code(backend):
    """Return the code of ``backend`` (a name in `BACKENDS`); ``ValueError`` otherwise."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    return BACKENDS.index(backend)


def encoding_code(encoding):
    """Return the code of ``encoding`` (a name in `ENCODINGS`); ``ValueError`` otherwise."""
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}, not {encoding!r}")
    return ENCODINGS.index(encoding)


class Command(enum.IntEnum):
    """Request command codes (the CMD byte)."""

    VERSION = 0x01        #: payload [host protocol version]; reply: the board's info (33 bytes)
    STATUS = 0x02         #: no payload; reply: 6 status bytes
    LOAD_SCHEDULE = 0x03  #: payload [first row u16, k rows of row_bytes]; reply: empty
    LOAD_ACTS = 0x04      #: payload [first row u16, k rows of act_bytes]; reply: empty
    START = 0x05          #: payload [rows u16, steps u16, load_weights u8]; reply: empty
    READ_RESULTS = 0x06   #: payload [first u16, count u16]; reply: count * result_bytes
    READ_CYCLES = 0x07    #: no payload; reply: cycles u32 of the last run
    SELFTEST = 0x08       #: no payload; reply: [pass u8, cycles u32] after the self-test ran


class Error(enum.IntEnum):
    """Reply status codes (0 = OK)."""

    OK = 0x00
    BAD_SYNC = 0x01       #: bytes that do not start with 0xA5 (reply once the line is quiet)
    TIMEOUT = 0x02        #: the line went quiet in the middle of a frame (truncated frame)
    TOO_LONG = 0x03       #: LEN larger than the board's max_payload (reply once quiet)
    BAD_CRC = 0x04        #: CRC mismatch
    BAD_CMD = 0x05        #: unknown command (or SELFTEST on a board built without vectors)
    BAD_LEN = 0x06        #: LEN wrong for the command
    BAD_ARG = 0x07        #: rows, steps, row range or result range out of bounds
    BUSY = 0x08           #: a run or the self-test is in progress
    NO_RESULT = 0x09      #: READ_RESULTS / READ_CYCLES before any run completed
    BAD_VERSION = 0x0A    #: the host's protocol version differs (the info is still returned)
    OVERRUN = 0x0B        #: bytes arrived while the board was busy replying (reply once quiet)
    FRAMING = 0x0C        #: a UART character with a low stop bit (reply once quiet)


def crc16(data, crc=0xFFFF):
    """Return the CRC-16/CCITT-FALSE of ``data`` (bytes), starting from ``crc``."""
    for byte in bytes(data):
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def pattern_crc(offsets):
    """Return the CRC of a connectivity pattern's offsets (how the board identifies its pattern).

    The text hashed is ``"none"`` for no offsets, else ``"(dt,dl),(dt,dl),..."`` in search order.
    """
    text = ",".join(f"({dt},{dl})" for dt, dl in offsets) if offsets else "none"
    return crc16(text.encode("ascii"))
