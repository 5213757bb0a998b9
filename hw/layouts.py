"""Payload layouts of the hardware streams, shared by ``hw/``, the tests and the testbenches.

Every payload that crosses a block boundary is described here once, as an Amaranth
`data.Layout`. Hardware uses the layouts as stream shapes; Python code (amaranth.sim tests, cocotb
testbenches) packs and unpacks payloads with the same layouts through ``Layout.const(...)``,
``Const.as_bits()`` and ``Layout.from_bits(...)``, so no bit offset is ever written by hand.
"""

from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from .params import PrecisionParams

__all__ = ["group_layout", "precision_layout", "pack_group", "unpack_precision"]


def _check_params(params):
    if not isinstance(params, PrecisionParams):
        raise TypeError(f"params must be a PrecisionParams, not {params!r}")


def group_layout(params):
    """Return the layout of one group of values for ``params`` (a `PrecisionParams`).

    An `data.ArrayLayout` of ``params.group_size`` elements, each ``signed(value_width)`` or
    ``unsigned(value_width)``. Element 0 occupies the least significant bits.
    """
    _check_params(params)
    shape = signed(params.value_width) if params.signed else unsigned(params.value_width)
    return data.ArrayLayout(shape, params.group_size)


def precision_layout(params):
    """Return the layout of one detected precision for ``params`` (a `PrecisionParams`).

    A `data.StructLayout` with field ``width`` (``unsigned(params.width_bits)``, values
    1..value_width) and, only when ``params.trim_lsb``, field ``lsb``
    (``unsigned(params.lsb_bits)``, values 0..value_width-1).
    """
    _check_params(params)
    fields = {"width": unsigned(params.width_bits)}
    if params.trim_lsb:
        fields["lsb"] = unsigned(params.lsb_bits)
    return data.StructLayout(fields)


def pack_group(params, values):
    """Return the payload bits (an ``int``) of one group given as a sequence of integers.

    Raises
    ------
    ValueError
        If a value is outside ``params.min_value..params.max_value`` (`Layout.const` would
        silently keep only its low bits).
    """
    _check_params(params)
    values = [int(value) for value in values]
    for index, value in enumerate(values):
        if not params.min_value <= value <= params.max_value:
            kind = "signed" if params.signed else "unsigned"
            raise ValueError(f"values[{index}] = {value} is out of range for {kind} "
                             f"{params.value_width}-bit values: must be from "
                             f"{params.min_value} to {params.max_value}")
    return group_layout(params).const(values).as_bits()


def unpack_precision(params, bits):
    """Return ``(width, lsb)`` from the payload bits of one precision (``lsb`` 0 if untrimmed)."""
    value = precision_layout(params).from_bits(int(bits))
    return int(value.width), (int(value.lsb) if params.trim_lsb else 0)
