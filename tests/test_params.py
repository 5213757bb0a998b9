"""hw.params: every validation message (exact), derived values and the environment round trip."""

import dataclasses
import itertools
import re

import numpy as np
import pytest

from hw.params import PrecisionParams, check_bool, check_int

INT_FIELDS = [("group_size", 1, 256), ("value_width", 1, 32)]
BOOL_FIELDS = ["signed", "trim_lsb", "pipelined"]


@pytest.mark.parametrize("name,low,high", INT_FIELDS)
@pytest.mark.parametrize("bad", ["8", 8.0, 1.5, None, True, False, [8]])
def test_int_field_wrong_type(name, low, high, bad):
    message = f"{name} must be an integer from {low} to {high}, not {bad!r}"
    with pytest.raises(TypeError, match=rf"^{re.escape(message)}$"):
        PrecisionParams(**{name: bad})


@pytest.mark.parametrize("name,low,high", INT_FIELDS)
def test_int_field_out_of_range(name, low, high):
    for bad in (low - 1, high + 1, -1, 10**9):
        message = f"{name} must be an integer from {low} to {high}, not {bad!r}"
        with pytest.raises(ValueError, match=rf"^{re.escape(message)}$"):
            PrecisionParams(**{name: bad})


@pytest.mark.parametrize("name,low,high", INT_FIELDS)
def test_int_field_accepts_range_and_index_types(name, low, high):
    for good in (low, high, np.int64(low), np.uint8(min(high, 255))):
        value = getattr(PrecisionParams(**{name: good}), name)
        assert value == int(good) and type(value) is int


@pytest.mark.parametrize("name", BOOL_FIELDS)
@pytest.mark.parametrize("bad", [0, 1, "True", None, np.bool_(True), 1.0])
def test_bool_field_wrong_type(name, bad):
    message = f"{name} must be True or False, not {bad!r}"
    with pytest.raises(TypeError, match=rf"^{re.escape(message)}$"):
        PrecisionParams(**{name: bad})


def test_defaults_and_keyword_only():
    params = PrecisionParams()
    assert (params.group_size, params.value_width, params.signed, params.trim_lsb,
            params.pipelined) == (16, 16, True, False, False)
    with pytest.raises(TypeError):
        PrecisionParams(16, 16)  # noqa: the constructor is keyword-only
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.group_size = 4


def test_check_helpers_messages():
    with pytest.raises(ValueError, match=r"^depth must be an integer from 2 to 5, not 6$"):
        check_int("depth", 6, 2, 5)
    with pytest.raises(TypeError, match=r"^depth must be an integer from 2 to 5, not 'x'$"):
        check_int("depth", "x", 2, 5)
    with pytest.raises(TypeError, match=r"^flag must be True or False, not 'yes'$"):
        check_bool("flag", "yes")
    assert check_int("depth", np.int16(3), 2, 5) == 3
    assert check_bool("flag", False) is False


@pytest.mark.parametrize("value_width", range(1, 33))
@pytest.mark.parametrize("signed", [False, True])
def test_derived_values(value_width, signed):
    params = PrecisionParams(value_width=value_width, signed=signed)
    if signed:
        assert params.min_value == -(2 ** (value_width - 1))
        assert params.max_value == 2 ** (value_width - 1) - 1
    else:
        assert (params.min_value, params.max_value) == (0, 2 ** value_width - 1)
    # width_bits: the fewest bits that hold 1..value_width; lsb_bits: 0..value_width-1 (>= 1).
    assert 2 ** params.width_bits > value_width >= 2 ** (params.width_bits - 1)
    assert params.lsb_bits >= 1 and 2 ** params.lsb_bits >= value_width
    assert params.lsb_bits == 1 or 2 ** (params.lsb_bits - 1) < value_width


def test_latency():
    assert PrecisionParams(pipelined=False).latency == 0
    assert PrecisionParams(pipelined=True).latency == 1


def test_to_env_names_and_values():
    params = PrecisionParams(group_size=4, value_width=8, signed=False, trim_lsb=True,
                             pipelined=True)
    assert params.to_env() == {"PARAM_GROUP_SIZE": "4", "PARAM_VALUE_WIDTH": "8",
                               "PARAM_SIGNED": "0", "PARAM_TRIM_LSB": "1",
                               "PARAM_PIPELINED": "1"}


@pytest.mark.parametrize("group_size,value_width", [(1, 1), (2, 8), (16, 16), (256, 32)])
def test_env_round_trip(group_size, value_width):
    for signed, trim_lsb, pipelined in itertools.product([False, True], repeat=3):
        params = PrecisionParams(group_size=group_size, value_width=value_width, signed=signed,
                                 trim_lsb=trim_lsb, pipelined=pipelined)
        env = {"PATH": "/bin", "PARAM_OTHER": "7", **params.to_env()}
        restored = PrecisionParams.from_env(env)
        assert restored == params
        assert all(type(getattr(restored, name)) is bool for name in BOOL_FIELDS)


def test_from_env_validates():
    env = PrecisionParams().to_env() | {"PARAM_VALUE_WIDTH": "33"}
    with pytest.raises(ValueError, match=r"^value_width must be an integer from 1 to 32, not 33$"):
        PrecisionParams.from_env(env)
