"""Parameter objects shared by ``hw/``, ``golden/`` and ``sim/``.

Nothing here imports Amaranth, so the golden model and the host tools can use the same objects
that configure the hardware. Every object validates itself at construction and raises
``TypeError`` (wrong type) or ``ValueError`` (out of range) with a message naming the parameter
and the accepted range.
"""

import dataclasses
import operator
import re

__all__ = ["PrecisionParams", "TileParams", "parse_pattern", "check_int", "check_bool"]


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


def check_bool(name, value):
    """Return ``value`` if it is a ``bool``; raise ``TypeError`` otherwise."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, not {value!r}")
    return value


@dataclasses.dataclass(frozen=True, kw_only=True)
class PrecisionParams:
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
        return -(1 << (self.value_width - 1)) if self.signed else 0

    @property
    def max_value(self):
        """Largest representable value."""
        return (1 << (self.value_width - 1)) - 1 if self.signed else (1 << self.value_width) - 1

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

    def to_env(self):
        """Return the parameters as ``PARAM_<NAME>`` environment variables (for cocotb)."""
        return {f"PARAM_{f.name.upper()}": str(int(getattr(self, f.name)))
                for f in dataclasses.fields(self)}

    @classmethod
    def from_env(cls, env):
        """Build parameters from ``PARAM_<NAME>`` environment variables written by `to_env`."""
        kwargs = {}
        for f in dataclasses.fields(cls):
            raw = int(env[f"PARAM_{f.name.upper()}"])
            kwargs[f.name] = bool(raw) if f.type in (bool, "bool") else raw
        return cls(**kwargs)


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
class TileParams:
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
            else:
                kwargs[f.name] = bool(int(raw)) if f.type in (bool, "bool") else int(raw)
        return cls(**kwargs)
