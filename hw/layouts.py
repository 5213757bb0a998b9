"""Payload layouts of the hardware streams, shared by ``hw/``, the tests and the testbenches.

Every payload that crosses a block boundary is described here once, as an Amaranth
`data.Layout`. Hardware uses the layouts as stream shapes; Python code (amaranth.sim tests, cocotb
testbenches) packs and unpacks payloads with the same layouts through ``Layout.const(...)``,
``Const.as_bits()`` and ``Layout.from_bits(...)``, so no bit offset is ever written by hand.
"""

from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from .params import PrecisionParams, TileParams

__all__ = ["group_layout", "precision_layout", "pack_group", "unpack_precision",
           "schedule_row_layout", "act_row_layout", "result_shape", "pack_schedule_row",
           "pack_act_row", "unpack_result"]


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


# --- Bit-Tactical tile (hw.tile) ---------------------------------------------------------------

def _check_tile_params(params):
    if not isinstance(params, TileParams):
        raise TypeError(f"params must be a TileParams, not {params!r}")


def schedule_row_layout(params):
    """Return the layout of one packed schedule row for ``params`` (a `TileParams`).

    A `data.StructLayout`, LSB first: ``weight`` (`data.ArrayLayout` of ``F*N`` elements
    ``signed(weight_width)``), ``select`` (``F*N`` elements ``unsigned(select_bits)``) and
    ``skip`` (``unsigned(advance_bits)``); slot ``s = f*N + l`` is filter ``f``, lane ``l``.
    ``select`` and ``skip`` are left out when they are zero bits wide (pattern ``"none"``). This
    is the word `golden.tcl` ``Schedule.pack`` produces (the contract in
    docs/tcl-contract.md).
    """
    _check_tile_params(params)
    slots = params.filters * params.lanes
    fields = {"weight": data.ArrayLayout(signed(params.weight_width), slots)}
    # Zero-width fields (pattern "none": nothing to select or skip) are left out: they hold no
    # bits (the packed word is the same) and Verilog has no zero-width nets.
    if params.select_bits:
        fields["select"] = data.ArrayLayout(unsigned(params.select_bits), slots)
    if params.advance_bits:
        fields["skip"] = unsigned(params.advance_bits)
    return data.StructLayout(fields)


def act_row_layout(params):
    """Return the layout of one activation row: ``N`` elements of ``signed(act_width)`` (or
    ``unsigned`` when ``act_signed`` is false), lane 0 in the least significant bits."""
    _check_tile_params(params)
    shape = signed(params.act_width) if params.act_signed else unsigned(params.act_width)
    return data.ArrayLayout(shape, params.lanes)


def result_shape(params):
    """Return the shape of one result: ``signed(params.acc_width)``."""
    _check_tile_params(params)
    return signed(params.acc_width)


def _check_values(values, name, low, high, count):
    values = [int(value) for value in values]
    if len(values) != count:
        raise ValueError(f"{name} must have {count} elements, not {len(values)}")
    for index, value in enumerate(values):
        if not low <= value <= high:
            raise ValueError(f"{name}[{index}] = {value} is out of range: must be from {low} "
                             f"to {high}")
    return values


def pack_schedule_row(params, weight, select, skip):
    """Return the payload bits (an ``int``) of one schedule row.

    ``weight`` and ``select`` are sequences of ``F*N`` integers (slot ``f*N + l``), ``skip`` the
    number of all-zero rows skipped before this one (``0..lookahead``).

    Raises
    ------
    ValueError
        If a sequence has the wrong length or a value is out of range (`Layout.const` would
        silently keep only its low bits).
    """
    _check_tile_params(params)
    slots = params.filters * params.lanes
    weight = _check_values(weight, "weight", -(1 << (params.weight_width - 1)),
                           (1 << (params.weight_width - 1)) - 1, slots)
    select = _check_values(select, "select", 0, params.mux_inputs - 1, slots)
    (skip,) = _check_values([skip], "skip", 0, params.lookahead, 1)
    fields = {"weight": weight}
    if params.select_bits:
        fields["select"] = select
    if params.advance_bits:
        fields["skip"] = skip
    return schedule_row_layout(params).const(fields).as_bits()


def pack_act_row(params, values):
    """Return the payload bits (an ``int``) of one activation row of ``N`` integers.

    Raises
    ------
    ValueError
        If ``values`` does not have ``N`` elements or a value is out of range.
    """
    _check_tile_params(params)
    if params.act_signed:
        low, high = -(1 << (params.act_width - 1)), (1 << (params.act_width - 1)) - 1
    else:
        low, high = 0, (1 << params.act_width) - 1
    values = _check_values(values, "values", low, high, params.lanes)
    return act_row_layout(params).const(values).as_bits()


def unpack_result(params, bits):
    """Return one result (a signed ``int``) from its raw payload bits."""
    _check_tile_params(params)
    width = params.acc_width
    bits = int(bits) & ((1 << width) - 1)
    return bits - (1 << width) if bits >> (width - 1) else bits
