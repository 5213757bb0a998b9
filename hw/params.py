"""Parameter objects shared by ``hw/``, ``golden/`` and ``sim/``.

Nothing here imports Amaranth, so the golden model and the host tools can use the same objects
that configure the hardware. Every object validates itself at construction and raises
``TypeError`` (wrong type) or ``ValueError`` (out of range) with a message naming the parameter
and the accepted range.
"""

import dataclasses
import operator
import re

__all__ = ["EnvParams", "PrecisionParams", "TileParams", "parse_pattern", "check_int", "check_bool",
           "value_range",
           "TermEncoderParams", "TERM_ENCODINGS", "TCLeTileParams",
           "SparqParams", "SparqBankParams", "SPARQ_PLACEMENTS", "sparq_modes", "SySMTParams",
           "SYSMT_THREADS", "MacParams", "FP_ENCODINGS", "FPTermEncoderParams", "FPRakerParams",
           "BF16MACParams", "DPRedParams", "DPRED_WORD_WIDTHS", "FPRakerTileParams"]


def check_int(name, value, minimum, maximum):
    """Return ``value`` as an ``int`` if it is an integer in ``minimum..maximum``; raise
    otherwise."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer from {minimum} to {maximum}, not {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(
            f"{name} must be an integer from {minimum} to {maximum}, not {value!r}") from None
    if not minimum <= value <= maximum:
        raise ValueError(f"{name} must be an integer from {minimum} to {maximum}, not {value!r}")
    return value


def value_range(width, *, signed):
    """Return ``(min, max)`` of a ``width``-bit two's complement (``signed``) or unsigned value."""
    if signed:
        return -(1 << (width - 1)), (1 << (width - 1)) - 1
    return 0, (1 << width) - 1


def check_bool(name, value):
    """Return ``value`` if it is a ``bool``; raise ``TypeError`` otherwise."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, not {value!r}")
    return value



class EnvParams:
    """Base of every parameter object: the ``PARAM_<NAME>`` environment round trip for cocotb.

    Fields are ``int``, ``bool`` (written as ``0``/``1``) or ``str`` (written as is).
    """

    def to_env(self):
        """Return the parameters as ``PARAM_<NAME>`` environment variables (for cocotb)."""
        return {f"PARAM_{f.name.upper()}": (getattr(self, f.name) if f.type in (str, "str")
                                            else str(int(getattr(self, f.name))))
                for f in dataclasses.fields(self)}

    @classmethod
    def from_env(cls, env):
        """Build parameters from ``PARAM_<NAME>`` environment variables written by `to_env`."""
        kwargs = {}
        for f in dataclasses.fields(cls):
            raw = env[f"PARAM_{f.name.upper()}"]
            if f.type in (str, "str"):
                kwargs[f.name] = raw
            elif f.type in (bool, "bool"):
                kwargs[f.name] = bool(int(raw))
            else:
                kwargs[f.name] = int(raw)
        return cls(**kwargs)

@dataclasses.dataclass(frozen=True, kw_only=True)
class PrecisionParams(EnvParams):
    """Configuration of a dynamic precision detector and of its golden model.

    Parameters
    ----------
    group_size : int, 1..256
        Number of values that share one precision.
    value_width : int, 1..32
        Width in bits of each value as stored.
    signed : bool
        Values are two's complement (``True``) or unsigned (``False``).
    trim_lsb : bool
        Also detect the trailing zero bits common to every value of the group.
    pipelined : bool
        Register the result (latency 1) instead of computing it combinationally (latency 0).
    """

    group_size: int = 16
    value_width: int = 16
    signed: bool = True
    trim_lsb: bool = False
    pipelined: bool = False

    MAX_GROUP_SIZE = 256
    MAX_VALUE_WIDTH = 32

    def __post_init__(self):
        object.__setattr__(self, "group_size",
                           check_int("group_size", self.group_size, 1, self.MAX_GROUP_SIZE))
        object.__setattr__(self, "value_width",
                           check_int("value_width", self.value_width, 1, self.MAX_VALUE_WIDTH))
        check_bool("signed", self.signed)
        check_bool("trim_lsb", self.trim_lsb)
        check_bool("pipelined", self.pipelined)

    @property
    def min_value(self):
        """Smallest representable value."""
        return value_range(self.value_width, signed=self.signed)[0]

    @property
    def max_value(self):
        """Largest representable value."""
        return value_range(self.value_width, signed=self.signed)[1]

    @property
    def width_bits(self):
        """Bits needed to carry a detected width (1..value_width)."""
        return self.value_width.bit_length()

    @property
    def lsb_bits(self):
        """Bits needed to carry a trimmed LSB position (0..value_width-1)."""
        return max(1, (self.value_width - 1).bit_length())

    @property
    def latency(self):
        """Cycles from an accepted group to its precision on the output stream."""
        return 1 if self.pipelined else 0



#: offsets of the built-in trapezoid T<2,5>, in the scheduler's search order: same-lane lookahead
#: first, then lookaside (DNNsim, January 2019 ``T_shape_search``; the HEAD list is its mirror image)
T25_OFFSETS = ((1, 0), (2, 0), (1, -1), (2, -2), (1, 1), (2, 2), (1, -3))
_L_PATTERN = re.compile(r"^L<(\d+),(\d+)>$")
_OFFSET = re.compile(r"\(\s*(-?\d+)\s*,\s*(-?\d+)\s*\)")
MAX_LOOKAHEAD = 7


def parse_pattern(pattern, *, lanes):
    """Return the promotion offsets ``((dt, dl), ...)`` named by ``pattern``, in search order.

    ``pattern`` is ``"none"`` (no weight skipping), ``"L<h,d>"`` (lookahead ``(1,0)..(h,0)``
    then lookaside ``(1,-1)..(1,-d)``), ``"T<2,5>"`` (:data:`T25_OFFSETS`) or an explicit list
    ``"(dt,dl),(dt,dl),..."`` with ``1 <= dt <= 7`` and ``|dl| < lanes``. A weight at step
    ``t + dt``, lane ``(l + dl) mod lanes`` may be promoted into a zero slot ``(t, l)``.
    """
    if not isinstance(pattern, str):
        raise TypeError(f"pattern must be a string ('none', 'L<h,d>', 'T<2,5>' or "
                        f"'(dt,dl),...'), not {pattern!r}")
    text = pattern.replace(" ", "")
    if text == "none":
        return ()
    if text == "T<2,5>":
        offsets = T25_OFFSETS
    elif (match := _L_PATTERN.match(text)):
        h, d = int(match.group(1)), int(match.group(2))
        if not 0 <= h <= MAX_LOOKAHEAD or not 0 <= d < lanes or h + d == 0:
            raise ValueError(f"pattern {pattern!r}: L<h,d> needs h from 0 to {MAX_LOOKAHEAD}, "
                             f"d from 0 to lanes-1 = {lanes - 1}, and h + d >= 1")
        offsets = tuple((dt, 0) for dt in range(1, h + 1)) + tuple((1, -dl)
                                                                   for dl in range(1, d + 1))
    elif text and _OFFSET.sub("", text).replace(",", "") == "":
        offsets = tuple((int(a), int(b)) for a, b in _OFFSET.findall(text))
    else:
        raise ValueError(f"pattern must be 'none', 'L<h,d>', 'T<2,5>' or a list "
                         f"'(dt,dl),(dt,dl),...', not {pattern!r}")
    for dt, dl in offsets:
        if not 1 <= dt <= MAX_LOOKAHEAD or not -lanes < dl < lanes:
            raise ValueError(f"pattern {pattern!r}: offset ({dt},{dl}) needs dt from 1 to "
                             f"{MAX_LOOKAHEAD} and dl from {1 - lanes} to {lanes - 1}")
    if len(set(offsets)) != len(offsets):
        raise ValueError(f"pattern {pattern!r} repeats an offset")
    return offsets


@dataclasses.dataclass(frozen=True, kw_only=True)
class TileParams(EnvParams):
    """Configuration of a Bit-Tactical-style tile and of its golden model and testbench.

    A tile has ``filters`` (F) filter lanes, each with ``lanes`` (N) weight lanes, and processes
    ``windows`` (W) output windows (columns) at once; every (filter, window) pair has an
    inner-product unit and an accumulator. The weight-skipping front end lets the weight in slot
    ``(t, l)`` multiply the activation at ``(t + dt, (l + dl) mod N)`` for every offset of
    ``pattern`` (see :func:`parse_pattern`); ``"none"`` is the dense front end.

    Parameters
    ----------
    filters, lanes, windows : int, 1..64
        F, N and W.
    weight_width : int, 2..16
        Width of the (signed, two's complement) weights.
    act_width : int, 2..16
        Width of the activations.
    act_signed : bool
        Activations are two's complement (``True``) or unsigned (``False``).
    pattern : str
        The connectivity pattern: ``"none"``, ``"L<h,d>"``, ``"T<2,5>"`` or ``"(dt,dl),..."``.
    weight_rows : int, 1..65536
        Depth of the weight (schedule) memory: the most schedule rows one pass can hold.
    act_rows : int, 1..65536
        Depth of the activation memory: the most steps (dense rows) one pass can hold.
    """

    filters: int = 16
    lanes: int = 16
    windows: int = 16
    weight_width: int = 16
    act_width: int = 16
    act_signed: bool = True
    pattern: str = "T<2,5>"
    weight_rows: int = 1024
    act_rows: int = 1024

    MAX_DIM = 64
    MAX_ROWS = 65536

    def __post_init__(self):
        for name in ("filters", "lanes", "windows"):
            object.__setattr__(self, name, check_int(name, getattr(self, name), 1, self.MAX_DIM))
        for name in ("weight_width", "act_width"):
            object.__setattr__(self, name, check_int(name, getattr(self, name), 2, 16))
        for name in ("weight_rows", "act_rows"):
            object.__setattr__(self, name, check_int(name, getattr(self, name), 1, self.MAX_ROWS))
        check_bool("act_signed", self.act_signed)
        parse_pattern(self.pattern, lanes=self.lanes)

    @property
    def offsets(self):
        """The promotion offsets ``((dt, dl), ...)``; select index ``k >= 1`` is
        ``offsets[k - 1]`` and select index 0 is the slot's own position."""
        return parse_pattern(self.pattern, lanes=self.lanes)

    @property
    def lookahead(self):
        """h: the largest step offset (0 for ``"none"``); a row advance is 1..h+1."""
        return max((dt for dt, _ in self.offsets), default=0)

    @property
    def mux_inputs(self):
        """Inputs of each weight lane's activation multiplexer: ``len(offsets) + 1``."""
        return len(self.offsets) + 1

    @property
    def select_bits(self):
        """Width of the stored select field (0 when there is nothing to select)."""
        return (self.mux_inputs - 1).bit_length()

    @property
    def advance_bits(self):
        """Width of the stored row advance minus one (0..h)."""
        return self.lookahead.bit_length()

    @property
    def acc_width(self):
        """Accumulator width: holds any sum of ``lanes * act_rows`` products without overflow."""
        return self.weight_width + self.act_width + (self.lanes * self.act_rows - 1).bit_length()



#: term encodings the hardware term encoder implements (names as in `golden.terms.ENCODINGS`)
TERM_ENCODINGS = ("naf", "booth", "binary")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TermEncoderParams(EnvParams):
    """Configuration of a term encoder (`hw.terms.TermEncoder`) and of its testbenches.

    Parameters
    ----------
    lanes : int, 1..64
        Activations encoded side by side (one term per lane per cycle).
    act_width : int, 2..16
        Width of the activations; term positions are ``0..act_width``.
    act_signed : bool
        Activations are two's complement (``True``) or unsigned (``False``).
    encoding : str
        ``"naf"`` (canonical signed digit), ``"booth"`` (DNNsim's Booth-like encoding) or
        ``"binary"`` (one ``+1`` term per set bit of ``|v|``); see `golden.terms`.
    """

    lanes: int = 16
    act_width: int = 16
    act_signed: bool = True
    encoding: str = "booth"

    MAX_LANES = 64

    def __post_init__(self):
        object.__setattr__(self, "lanes", check_int("lanes", self.lanes, 1, self.MAX_LANES))
        object.__setattr__(self, "act_width", check_int("act_width", self.act_width, 2, 16))
        check_bool("act_signed", self.act_signed)
        if not isinstance(self.encoding, str):
            raise TypeError(f"encoding must be one of {', '.join(TERM_ENCODINGS)}, "
                            f"not {self.encoding!r}")
        if self.encoding not in TERM_ENCODINGS:
            raise ValueError(f"encoding must be one of {', '.join(TERM_ENCODINGS)}, "
                             f"not {self.encoding!r}")

    @property
    def min_value(self):
        """Smallest activation value."""
        return value_range(self.act_width, signed=self.act_signed)[0]

    @property
    def max_value(self):
        """Largest activation value."""
        return value_range(self.act_width, signed=self.act_signed)[1]

    @property
    def position_bits(self):
        """Width of a term position field (positions ``0..act_width``)."""
        return self.act_width.bit_length()

    @property
    def latency(self):
        """Cycles from an accepted row of activations to its first term beat being offered."""
        return 1




#: (window_width, placements) -> window offsets (LSB positions of the window), as SPARQ's kernel
#: defines them (``--bit_group``/``--shift_opt``): 5opt, 3opt, 2opt for 4-bit windows, every
#: offset for 3-bit ("opt6") and 2-bit ("opt7") windows
SPARQ_PLACEMENTS = {
    (4, 5): (0, 1, 2, 3, 4), (4, 3): (0, 2, 4), (4, 2): (0, 4),
    (3, 6): (0, 1, 2, 3, 4, 5), (2, 7): (0, 1, 2, 3, 4, 5, 6),
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class SparqParams(EnvParams):
    """Configuration of a SPARQ processing element (`hw.sparq.SparqPE`) and of its golden model.

    bSPARQ keeps a ``window_width``-bit window of each non-zero uint8 activation, placed at one
    of the allowed offsets (the lowest one whose window still holds the leading one); vSPARQ pairs
    two adjacent reduction elements and lets the survivor of a zero partner use a
    ``2 * window_width``-bit window (exact for 4-bit windows). See `golden.sparq`.

    Parameters
    ----------
    window_width : int, 2..4
        Bits kept per activation when both partners are non-zero.
    placements : int
        Number of window offsets: 5 (5opt: 4,3,2,1,0), 3 (3opt: 4,2,0) or 2 (2opt: 4,0) for a
        4-bit window; 6 (5..0) for a 3-bit window; 7 (6..0) for a 2-bit window.
    rounding : bool
        ``True``: ROUND, round half to even on the window, saturating to the all-ones window;
        ``False``: RAW, truncate below the window.
    acc_width : int, 18..48
        Accumulator width; sums are exact while they fit in ``signed(acc_width)``.
    """

    window_width: int = 4
    placements: int = 5
    rounding: bool = True
    acc_width: int = 32

    def __post_init__(self):
        object.__setattr__(self, "window_width",
                           check_int("window_width", self.window_width, 2, 4))
        object.__setattr__(self, "placements", check_int("placements", self.placements, 2, 7))
        check_bool("rounding", self.rounding)
        object.__setattr__(self, "acc_width", check_int("acc_width", self.acc_width, 18, 48))
        if (self.window_width, self.placements) not in SPARQ_PLACEMENTS:
            accepted = ", ".join(str(p) for (n, p) in SPARQ_PLACEMENTS if n == self.window_width)
            raise ValueError(f"placements must be {accepted} for window_width "
                             f"{self.window_width}, not {self.placements!r}")

    @property
    def offsets(self):
        """Allowed window offsets (LSB positions), ascending."""
        return SPARQ_PLACEMENTS[(self.window_width, self.placements)]

    @property
    def survivor_offsets(self):
        """Offsets of the ``2 * window_width``-bit window a survivor (zero partner) gets:
        every position that keeps the window inside 8 bits (just 0 for a 4-bit window)."""
        return tuple(range(8 - 2 * self.window_width + 1))

    @property
    def name(self):
        """Short mode name, e.g. ``"5opt-round"`` or ``"w3-6opt-raw"``."""
        prefix = "" if self.window_width == 4 else f"w{self.window_width}-"
        return f"{prefix}{self.placements}opt-{'round' if self.rounding else 'raw'}"

    @property
    def latency(self):
        """Cycles from the transfer that ends a dot product to its result being offered."""
        return 1



def sparq_modes(*, acc_width=32):
    """Return every SPARQ configuration (each placement set and window, RAW and ROUND)."""
    return tuple(SparqParams(window_width=n, placements=p, rounding=r, acc_width=acc_width)
                 for (n, p) in SPARQ_PLACEMENTS for r in (True, False))


@dataclasses.dataclass(frozen=True, kw_only=True)
class SparqBankParams(EnvParams):
    """Configuration of `hw.sparq.SparqBank`: one `SparqPE` per mode of `sparq_modes`.

    Parameters
    ----------
    acc_width : int, 18..48
        Accumulator width of every PE.
    """

    acc_width: int = 32

    def __post_init__(self):
        object.__setattr__(self, "acc_width", check_int("acc_width", self.acc_width, 18, 48))

    @property
    def modes(self):
        """The `SparqParams` of the PEs, in output order."""
        return sparq_modes(acc_width=self.acc_width)

    @property
    def latency(self):
        """Cycles from the transfer that ends a dot product to its results being offered."""
        return 1



#: thread counts an NB-SMT processing element supports
SYSMT_THREADS = (1, 2, 4)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SySMTParams(EnvParams):
    """Configuration of an output-stationary NB-SMT systolic array (`hw.sysmt.SySMTArray`) and
    of its golden model (`golden.nbsmt`).

    Every processing element owns one 8b x 8b multiply-accumulate budget and serves ``threads``
    (activation, weight) pairs of the same dot product per cycle. A thread is idle when its
    activation (or, with ``skip_zero_weights``, its weight) is zero; when more threads are
    active than the budget holds at full precision, operands are squeezed (never stalled):
    2 threads: activations to 4 bits (SPARQ 2opt window), weights 8 bits; 4 threads: 2 active ->
    activations to 4 bits, 3 or 4 active -> activations and weights to 4 bits.

    Parameters
    ----------
    rows : int, 2..16
        R: output positions per tile (the array's rows; its output selects one row at a time).
    cols : int, 1..16
        C: output channels per tile (the array's columns).
    threads : int, 1, 2 or 4
        Threads per processing element (1 is the baseline systolic array).
    rounding : bool
        Squeezed operands are rounded half to even, saturating in the 4-bit window (``True``)
        or truncated (``False``; for weights: arithmetic shift, i.e. floor).
    skip_zero_weights : bool
        A zero weight also makes its thread idle (NB-SMT); ``False``: only zero activations do
        (SPARQ's rule).
    acc_width : int, 18..48
        Accumulator width; sums are exact while they fit in ``signed(acc_width)``.
    """

    rows: int = 4
    cols: int = 4
    threads: int = 2
    rounding: bool = True
    skip_zero_weights: bool = True
    acc_width: int = 32

    MAX_DIM = 16

    def __post_init__(self):
        object.__setattr__(self, "rows", check_int("rows", self.rows, 2, self.MAX_DIM))
        object.__setattr__(self, "cols", check_int("cols", self.cols, 1, self.MAX_DIM))
        threads = check_int("threads", self.threads, 1, 4)
        if threads not in SYSMT_THREADS:
            raise ValueError(f"threads must be 1, 2 or 4, not {threads!r}")
        object.__setattr__(self, "threads", threads)
        check_bool("rounding", self.rounding)
        check_bool("skip_zero_weights", self.skip_zero_weights)
        object.__setattr__(self, "acc_width", check_int("acc_width", self.acc_width, 18, 48))

    @property
    def latency(self):
        """Cycles from the last input step of a tile to its first result row being offered:
        the skew and the diagonal of the array, ``rows + cols - 1``."""
        return self.rows + self.cols - 1



#: term encodings of a bfloat16 significand accepted by the FPRaker blocks (`golden.terms`)
FP_ENCODINGS = ("naf", "booth", "binary")


def _check_fp_encoding(value):
    if not isinstance(value, str):
        raise TypeError(f"encoding must be one of {', '.join(FP_ENCODINGS)}, not {value!r}")
    if value not in FP_ENCODINGS:
        raise ValueError(f"encoding must be one of {', '.join(FP_ENCODINGS)}, not {value!r}")
    return value



@dataclasses.dataclass(frozen=True, kw_only=True)
class FPTermEncoderParams(EnvParams):
    """Configuration of the bfloat16 term encoder (`hw.fpraker.FPTermEncoder`).

    Parameters
    ----------
    encoding : str
        How the 8-bit significand ``1.m`` becomes signed powers of two: ``"naf"`` (canonical
        signed digit, at most 5 terms), ``"booth"`` (DNNsim's Booth-like rule, at most 6) or
        ``"binary"`` (one term per set bit, at most 8).
    """

    encoding: str = "naf"

    def __post_init__(self):
        _check_fp_encoding(self.encoding)

    @property
    def max_terms(self):
        """Most terms one significand ``1.m`` (128..255) has: naf 5, booth 6, binary 8."""
        return {"naf": 5, "booth": 6, "binary": 8}[self.encoding]

    @property
    def latency(self):
        """Cycles from an accepted value to its first term being offered."""
        return 1



@dataclasses.dataclass(frozen=True, kw_only=True)
class FPRakerParams(EnvParams):
    """Configuration of an FPRaker processing element and of its golden model.

    One *set* is ``lanes`` pairs ``(A_i, B_i)`` of bfloat16 values; the PE adds
    ``sum_i A_i * B_i`` to a floating-point accumulator whose significand window is
    ``acc_width`` bits wide, processing A's significand as signed powers of two (terms) and
    skipping the terms that fall below the window. `golden.fpraker` defines the arithmetic.

    Parameters
    ----------
    lanes : int, 1..64
        Multiply-accumulates per set (N).
    acc_width : int, 16..48
        Accumulator significand window W in bits (16: one bfloat16 product fits exactly;
        24: the FP32 significand; default 28 = FP32 plus 4 guard bits).
    encoding : str
        Term encoding of A's significand: ``"naf"`` (default), ``"booth"`` or ``"binary"``.
    """

    lanes: int = 8
    acc_width: int = 28
    encoding: str = "naf"

    MAX_LANES = 64
    MIN_ACC_WIDTH = 16
    MAX_ACC_WIDTH = 48
    #: width of the accumulator exponent register (signed), see `golden.fpraker`
    EXP_WIDTH = 12
    #: width of the per-result cycle counter
    CYCLE_WIDTH = 32

    def __post_init__(self):
        object.__setattr__(self, "lanes", check_int("lanes", self.lanes, 1, self.MAX_LANES))
        object.__setattr__(self, "acc_width", check_int("acc_width", self.acc_width,
                                                        self.MIN_ACC_WIDTH, self.MAX_ACC_WIDTH))
        _check_fp_encoding(self.encoding)

    @property
    def sum_width(self):
        """Width of the signed in-set sum register: aligned accumulator plus every lane's
        terms, with margin for the partial sums of signed-digit terms."""
        return self.acc_width + 3 + self.lanes.bit_length()

    @property
    def latency(self):
        """Cycles from the transfer of a dot product's last set to its result being offered,
        when that set has one cycle of work (each further cycle of work adds one)."""
        return 2



@dataclasses.dataclass(frozen=True, kw_only=True)
class BF16MACParams(EnvParams):
    """Configuration of the bit-parallel bfloat16 MAC baseline (`hw.fpraker.BF16MAC`).

    Same sets, accumulator and result as `FPRakerParams` but each lane multiplies the two
    8-bit significands at once: one set per cycle.

    Parameters
    ----------
    lanes : int, 1..64
        Multiply-accumulates per set (N).
    acc_width : int, 16..48
        Accumulator significand window W in bits.
    """

    lanes: int = 8
    acc_width: int = 28

    MAX_LANES = FPRakerParams.MAX_LANES
    MIN_ACC_WIDTH = FPRakerParams.MIN_ACC_WIDTH
    MAX_ACC_WIDTH = FPRakerParams.MAX_ACC_WIDTH
    EXP_WIDTH = FPRakerParams.EXP_WIDTH
    CYCLE_WIDTH = FPRakerParams.CYCLE_WIDTH

    def __post_init__(self):
        object.__setattr__(self, "lanes", check_int("lanes", self.lanes, 1, self.MAX_LANES))
        object.__setattr__(self, "acc_width", check_int("acc_width", self.acc_width,
                                                        self.MIN_ACC_WIDTH, self.MAX_ACC_WIDTH))

    @property
    def sum_width(self):
        """Width of the signed in-set sum: aligned accumulator plus every lane's product."""
        return self.acc_width + 3 + self.lanes.bit_length()

    @property
    def latency(self):
        """Cycles from the transfer of a dot product's last set to its result being offered
        (every set takes one cycle)."""
        return 2



#: memory word widths accepted by the DPRed encoder and decoder (and the golden word layout)
DPRED_WORD_WIDTHS = (8, 16, 32, 64)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DPRedParams(EnvParams):
    """Configuration of the DPRed encoder and decoder (`hw.dpred`) and of their golden model.

    Parameters
    ----------
    group_size : int, 1..256
        Values per group (one precision header per group).
    value_width : int, 2..32
        Width in bits of the uncompressed values.
    signed : bool
        Values are two's complement (``True``) or unsigned (``False``).
    word_width : int, one of 8, 16, 32, 64
        Width of one memory word on the compressed side.
    length_width : int, 1..32
        Width of the decoder's ``length`` input: a tensor holds at most ``2**length_width - 1``
        values.
    """

    group_size: int = 16
    value_width: int = 16
    signed: bool = True
    word_width: int = 32
    length_width: int = 24

    MAX_GROUP_SIZE = 256
    MAX_VALUE_WIDTH = 32

    def __post_init__(self):
        object.__setattr__(self, "group_size",
                           check_int("group_size", self.group_size, 1, self.MAX_GROUP_SIZE))
        object.__setattr__(self, "value_width",
                           check_int("value_width", self.value_width, 2, self.MAX_VALUE_WIDTH))
        check_bool("signed", self.signed)
        if isinstance(self.word_width, bool) or not isinstance(self.word_width, int):
            raise TypeError(f"word_width must be one of 8, 16, 32, 64, not {self.word_width!r}")
        if self.word_width not in DPRED_WORD_WIDTHS:
            raise ValueError(f"word_width must be one of 8, 16, 32, 64, not {self.word_width!r}")
        object.__setattr__(self, "length_width",
                           check_int("length_width", self.length_width, 1, 32))

    @property
    def min_value(self):
        """Smallest representable value."""
        return value_range(self.value_width, signed=self.signed)[0]

    @property
    def max_value(self):
        """Largest representable value."""
        return value_range(self.value_width, signed=self.signed)[1]

    @property
    def header_width(self):
        """Bits of a group header (``p - 1``): ``ceil(log2(value_width))``."""
        return (self.value_width - 1).bit_length()

    @property
    def width_bits(self):
        """Bits needed to carry a precision ``p`` (1..value_width)."""
        return self.value_width.bit_length()

    @property
    def field_max(self):
        """Longest field either block moves in one cycle: header plus a full-width value."""
        return self.header_width + self.value_width

    @property
    def buffer_width(self):
        """Bits of the packing/unpacking buffer: ``word_width + field_max - 1``."""
        return self.word_width + self.field_max - 1



@dataclasses.dataclass(frozen=True, kw_only=True)
class MacParams(EnvParams):
    """Configuration of the plain 8b x 8b multiply-accumulate PE (`hw.sparq.MacPE`), the
    baseline SPARQ is compared with.

    Parameters
    ----------
    acc_width : int, 18..48
        Accumulator width.
    """

    acc_width: int = 32

    def __post_init__(self):
        object.__setattr__(self, "acc_width", check_int("acc_width", self.acc_width, 18, 48))

    @property
    def latency(self):
        """Cycles from the transfer that ends a dot product to its result being offered."""
        return 1



@dataclasses.dataclass(frozen=True, kw_only=True)
class TCLeTileParams(TileParams):
    """Configuration of a TCLe tile (`hw.term_serial.TCLeTile`): a `TileParams` plus the term
    encoding, the first-stage shift window, column run-ahead and zero-weight gating.

    Parameters
    ----------
    filters, lanes, windows, weight_width, act_width, act_signed, pattern, weight_rows, act_rows
        As `TileParams`.
    encoding : str
        ``"naf"``, ``"booth"`` or ``"binary"`` (`TERM_ENCODINGS`).
    first_stage_bits : int, 0..3
        L1: the first-stage shifters cover ``2**L1`` term positions above each PE's base.
    run_ahead : int, 0..8
        A: a column may start a row once every column has finished the row ``A + 1`` before
        it (each column buffers ``A + 1`` rows); 0 runs the columns in lock-step
        (`golden.tcl.pass_cycles`).
    gate_zero_weights : bool
        True (TCLe): a slot whose weight is zero gets no terms. False (Pragmatic; only with
        pattern ``"none"``): every activation's terms are processed whatever its weight.
    """

    encoding: str = "booth"
    first_stage_bits: int = 2
    run_ahead: int = 0
    gate_zero_weights: bool = True

    def __post_init__(self):
        super().__post_init__()
        if not isinstance(self.encoding, str):
            raise TypeError(f"encoding must be one of {', '.join(TERM_ENCODINGS)}, "
                            f"not {self.encoding!r}")
        if self.encoding not in TERM_ENCODINGS:
            raise ValueError(f"encoding must be one of {', '.join(TERM_ENCODINGS)}, "
                             f"not {self.encoding!r}")
        object.__setattr__(self, "first_stage_bits",
                           check_int("first_stage_bits", self.first_stage_bits, 0, 3))
        object.__setattr__(self, "run_ahead", check_int("run_ahead", self.run_ahead, 0, 8))
        check_bool("gate_zero_weights", self.gate_zero_weights)
        if not self.gate_zero_weights and self.pattern != "none":
            raise ValueError(f"gate_zero_weights=False (the Pragmatic tile) needs pattern "
                             f"'none', not {self.pattern!r}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class FPRakerTileParams(TileParams):
    """Configuration of the FPRaker tile (`hw.fpraker_tile.FPRakerTile`): P FPRaker PEs in
    lock-step behind the host interface of the integer tiles (`hw.tile.TCLpTile`).

    The tile's streams carry bfloat16 bit patterns as 16-bit fields, so the integer-tile fields
    are fixed: ``windows=1``, ``pattern="none"``, ``weight_width=16``, ``act_width=16``,
    ``act_signed=False``. ``schedule_row_layout`` then holds P*N weights (B operands, PE ``p``
    in slots ``p*N .. p*N+N-1``), ``act_row_layout`` N activations (the A set all PEs share),
    and a result is a float32 pattern zero-extended to ``acc_width`` = 33 bits.

    Parameters
    ----------
    filters : int, 1..16
        P, the PEs (outputs per pass).
    lanes : int, 1..16
        N, the pairs per set.
    weight_rows, act_rows : int, 1..65536, equal
        R, the most sets of one pass (the depth of the B and A memories).
    fp_acc_width : int, 16..48
        The PEs' accumulator window W (`hw.params.FPRakerParams.acc_width`), default 28.
    encoding : str
        Term encoding of A's significand: ``"naf"`` (default), ``"booth"`` or ``"binary"``.
    windows, weight_width, act_width, act_signed, pattern
        Fixed at 1, 16, 16, False, ``"none"``; any other value is a ``ValueError``.
    """

    filters: int = 2
    lanes: int = 4
    windows: int = 1
    weight_width: int = 16
    act_width: int = 16
    act_signed: bool = False
    pattern: str = "none"
    weight_rows: int = 16
    act_rows: int = 16
    fp_acc_width: int = 28
    encoding: str = "naf"

    MAX_PES = 16
    MAX_LANES = 16
    #: the fields the tile fixes and their only accepted value
    FIXED = {"windows": 1, "pattern": "none", "weight_width": 16, "act_width": 16,
             "act_signed": False}

    def __post_init__(self):
        for name, fixed in self.FIXED.items():
            value = getattr(self, name)
            if type(value) is not type(fixed) or value != fixed:
                raise ValueError(f"{name} of an FPRaker tile must be {fixed!r}, not {value!r}")
        super().__post_init__()
        object.__setattr__(self, "filters", check_int("filters", self.filters, 1,
                                                      self.MAX_PES))
        object.__setattr__(self, "lanes", check_int("lanes", self.lanes, 1, self.MAX_LANES))
        if self.weight_rows != self.act_rows:
            raise ValueError(f"weight_rows and act_rows of an FPRaker tile must be equal (the "
                             f"sets per pass), not {self.weight_rows} and {self.act_rows}")
        object.__setattr__(self, "fp_acc_width", check_int(
            "fp_acc_width", self.fp_acc_width, FPRakerParams.MIN_ACC_WIDTH,
            FPRakerParams.MAX_ACC_WIDTH))
        _check_fp_encoding(self.encoding)

    @property
    def acc_width(self):
        """Result width: 33, a float32 pattern zero-extended (non-negative as a signed value)."""
        return 33

    @property
    def pe_params(self):
        """The `FPRakerParams` of every PE (lanes, window, encoding)."""
        return FPRakerParams(lanes=self.lanes, acc_width=self.fp_acc_width,
                             encoding=self.encoding)
