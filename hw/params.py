"""Parameter objects shared by ``hw/``, ``golden/`` and ``sim/``.

Nothing here imports Amaranth, so the golden model and the host tools can use the same objects
that configure the hardware. Every object validates itself at construction and raises
``TypeError`` (wrong type) or ``ValueError`` (out of range) with a message naming the parameter
and the accepted range.
"""

import dataclasses
import operator

__all__ = ["PrecisionParams", "check_int", "check_bool"]


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
