"""golden.dpred: exact round trips, the stream checked bit for bit against a slow Python writer
of the documented layout, sizes from an independent width computation, corrupt streams and
parameter errors."""

import math
import re

import numpy as np
import pytest

from golden import dpred
from golden.precision import group_precision


def naive_width(group, signed):
    """Smallest p >= 1 such that every value of the group fits p bits."""
    def fits(value, width):
        if signed:
            return -(1 << (width - 1)) <= value < 1 << (width - 1)
        return 0 <= value < 1 << width

    width = 1
    while not all(fits(value, width) for value in group):
        width += 1
    return width


def reference_groups(values, group_size, axis):
    """The zero-padded groups, by the definition: rows along ``axis`` (or the flat tensor)."""
    values = np.asarray(values)
    if axis is None:
        rows = [values.ravel().tolist()]
    else:
        moved = np.moveaxis(values, axis, -1)
        rows = moved.reshape(-1, moved.shape[-1]).tolist() if moved.size else []
    groups = []
    for row in rows:
        for start in range(0, len(row), group_size):
            group = row[start:start + group_size]
            groups.append(group + [0] * (group_size - len(group)))
    return groups


def reference_bits(groups, widths, header_bits, bitmaps=None):
    """The stream as a list of bits, written one bit at a time from the documented layout."""
    bits = []

    def put(value, count):
        bits.extend((value >> k) & 1 for k in range(count))

    for index, width in enumerate(widths):
        put(width - 1, header_bits)
        if bitmaps is not None:
            bits.extend(bitmaps[index])
    for index, (group, width) in enumerate(zip(groups, widths)):
        for slot, value in enumerate(group):
            if bitmaps is None or bitmaps[index][slot]:
                put(value & ((1 << width) - 1), width)   # two's complement low bits
    return bits


def to_bytes(bits):
    bits = bits + [0] * (-len(bits) % 8)
    return bytes(sum(bit << k for k, bit in enumerate(bits[i:i + 8]))
                 for i in range(0, len(bits), 8))


def reference_encode(values, *, value_width, signed, group_size, zero_skip, axis):
    groups = reference_groups(values, group_size, axis)
    widths = [naive_width(group, signed) for group in groups]
    header_bits = 0 if value_width == 1 else math.ceil(math.log2(value_width))
    bitmaps = [[int(v != 0) for v in group] for group in groups] if zero_skip else None
    return reference_bits(groups, widths, header_bits, bitmaps), groups, widths, header_bits


def random_tensor(rng, shape, value_width, signed):
    low, high = (-(1 << (value_width - 1)), 1 << (value_width - 1)) if signed else (
        0, 1 << value_width)
    values = rng.integers(low, high, shape)
    values >>= rng.integers(0, value_width, shape[:1] + (1,) * (len(shape) - 1))
    values[rng.random(shape) < 0.4] = 0
    return values


CASES = [((37,), None, 16), ((2, 3, 5), 0, 4), ((3, 20), 1, 16), ((3, 20), -1, 7),
         ((4, 4, 4), None, 1), ((33,), None, 256), ((6, 2), 0, 16)]


@pytest.mark.parametrize("zero_skip", [False, True])
@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("value_width", [1, 2, 3, 7, 8, 12, 16, 32])
def test_stream_matches_the_documented_layout(value_width, signed, zero_skip):
    rng = np.random.default_rng(value_width * 4 + signed * 2 + zero_skip)
    for shape, axis, group_size in CASES:
        values = random_tensor(rng, shape, value_width, signed)
        encoded = dpred.encode(values, value_width=value_width, signed=signed,
                               group_size=group_size, zero_skip=zero_skip, axis=axis)
        bits, groups, widths, header_bits = reference_encode(
            values, value_width=value_width, signed=signed, group_size=group_size,
            zero_skip=zero_skip, axis=axis)
        assert encoded.data == to_bytes(bits)
        metadata = len(groups) * (header_bits + (group_size if zero_skip else 0))
        size = encoded.size
        assert size.group_count == len(groups)
        assert size.metadata_bits == metadata
        assert size.compressed_bits == len(bits)
        assert size.payload_bits == len(bits) - metadata
        assert size.uncompressed_bits == values.size * value_width
        assert size.ratio == len(bits) / (values.size * value_width)
        assert dpred.encoded_size(values, value_width=value_width, signed=signed,
                                  group_size=group_size, zero_skip=zero_skip,
                                  axis=axis) == size
        decoded = dpred.decode(encoded)
        assert decoded.dtype == np.int64 and decoded.shape == values.shape
        assert np.array_equal(decoded, values)


@pytest.mark.parametrize("zero_skip", [False, True])
@pytest.mark.parametrize("signed", [True, False])
def test_round_trip_every_width_and_edge_tensors(signed, zero_skip):
    rng = np.random.default_rng(signed * 2 + zero_skip)
    for value_width in list(range(1, 17)) + [24, 31, 32]:
        low, high = (-(1 << (value_width - 1)), (1 << (value_width - 1)) - 1) if signed else (
            0, (1 << value_width) - 1)
        tensors = [random_tensor(rng, (5000,), value_width, signed),
                   random_tensor(rng, (7, 9, 11), value_width, signed),
                   np.zeros((40,), dtype=np.int64), np.full((40,), low), np.full((40,), high),
                   np.resize([low, high, 0], (8, 5)), np.array(high), np.zeros((0, 3), int)]
        if signed:
            tensors.append(np.full((19,), -1))
        for values in tensors:
            for group_size in (1, 5, 16, 256):
                for axis in ([None] + list(range(values.ndim))):
                    encoded = dpred.encode(values, value_width=value_width, signed=signed,
                                           group_size=group_size, zero_skip=zero_skip,
                                           axis=axis)
                    assert np.array_equal(dpred.decode(encoded), values)
                    assert dpred.decode(encoded).shape == values.shape


def test_size_from_group_precision_on_a_large_tensor():
    rng = np.random.default_rng(0)
    values = np.round(rng.laplace(0, 30, (64, 7, 7))).astype(np.int64)
    for zero_skip in (False, True):
        encoded = dpred.encode(values, value_width=16, signed=True, zero_skip=zero_skip, axis=0)
        groups = np.moveaxis(values, 0, -1).reshape(-1, 16)   # 64 channels: 4 groups per (y, x)
        widths, _ = group_precision(groups, value_width=16, signed=True)
        stored = np.count_nonzero(groups, axis=1) if zero_skip else 16
        payload = int(np.sum(widths * stored))
        metadata = len(groups) * (4 + (16 if zero_skip else 0))
        assert encoded.size.payload_bits == payload
        assert encoded.size.metadata_bits == metadata
        assert len(encoded.data) == (payload + metadata + 7) // 8
        assert np.array_equal(dpred.decode(encoded), values)


def test_header_width():
    assert dpred.header_width(1) == 0
    for value_width in range(2, 33):
        assert dpred.header_width(value_width) == math.ceil(math.log2(value_width))
    assert (dpred.header_width(16), dpred.header_width(8)) == (4, 3)


def stream_bits(data):
    return np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little").tolist()


def field(bits, start, count):
    return sum(bit << k for k, bit in enumerate(bits[start:start + count]))


def test_header_layout_by_hand():
    values = np.zeros(32, dtype=np.int64)
    values[:2] = [3, -2]          # group 0 needs 3 bits
    values[16] = -8               # group 1 needs 4 bits
    encoded = dpred.encode(values, value_width=16, signed=True)
    bits = stream_bits(encoded.data)
    assert len(encoded.data) == (8 + 16 * 3 + 16 * 4) // 8
    assert field(bits, 0, 4) + 1 == 3           # first header: p - 1, LSB first
    assert field(bits, 4, 4) + 1 == 4           # second header
    assert bits[8:14] == [1, 1, 0, 0, 1, 1]     # 3 = 011, -2 = 110 (3 bits), LSB first
    assert field(bits, 8 + 48, 4) == 0b1000     # -8 in 4 bits
    skipped = dpred.encode(values, value_width=16, signed=True, zero_skip=True)
    bits = stream_bits(skipped.data)
    assert field(bits, 0, 4) + 1 == 3
    assert bits[4:20] == [1, 1] + [0] * 14      # bitmap of group 0
    assert field(bits, 20, 4) + 1 == 4
    assert bits[24:40] == [1] + [0] * 15        # bitmap of group 1
    assert bits[40:50] == [1, 1, 0, 0, 1, 1, 0, 0, 0, 1]
    assert len(skipped.data) == 7 and bits[50:] == [0] * 6
    byte_header = dpred.encode(np.array([5, -6, 0]), value_width=8, signed=True, group_size=3)
    assert field(stream_bits(byte_header.data), 0, 3) + 1 == 4   # 3-bit header for 8-bit data


def message(text):
    return "^" + re.escape(text) + "$"


def crafted(groups, widths, header_bits, bitmaps=None, **params):
    return dpred.DPRedTensor(data=to_bytes(reference_bits(groups, widths, header_bits, bitmaps)),
                             **params)


def test_corrupt_streams_are_refused():
    values = np.arange(-20, 20)
    params = dict(shape=(40,), value_width=16, signed=True, group_size=16)
    good = dpred.encode(values, value_width=16, signed=True, group_size=16)
    total = good.size.compressed_bits
    assert total % 8   # so that the last byte has padding bits
    truncated = dpred.DPRedTensor(data=good.data[:-1], **params)
    with pytest.raises(ValueError, match=message(
            f"DPRed data is truncated: the headers describe {total} bits "
            f"({len(good.data)} bytes), but there are {len(good.data) - 1} bytes")):
        dpred.decode(truncated)
    with pytest.raises(ValueError, match=message(
            f"DPRed data is too long: the headers describe {total} bits "
            f"({len(good.data)} bytes), but there are {len(good.data) + 1} bytes")):
        dpred.decode(dpred.DPRedTensor(data=good.data + b"\0", **params))
    with pytest.raises(ValueError, match=message(
            "DPRed data is truncated: 1 bytes cannot hold the 12-bit metadata of 3 groups")):
        dpred.DPRedTensor(data=good.data[:1], **params).size
    padded = good.data[:-1] + bytes([good.data[-1] | 0x80])
    with pytest.raises(ValueError, match=message(
            "DPRed data is corrupt: the padding bits of the last byte are not zero")):
        dpred.decode(dpred.DPRedTensor(data=padded, **params))
    for cut in range(len(good.data)):
        with pytest.raises(ValueError, match="^DPRed data is truncated: "):
            dpred.decode(dpred.DPRedTensor(data=good.data[:cut], **params))

    groups = reference_groups(values, 16, None)
    widths = [naive_width(group, True) for group in groups]
    wide = crafted(groups, [widths[0], widths[1] + 1, widths[2]], 4, **params)
    with pytest.raises(ValueError, match=message(
            f"DPRed data is corrupt: group 1 has width header {widths[1] + 1}, but its values "
            f"need {widths[1]} bits")):
        dpred.decode(wide)
    dirty = [groups[0], groups[1], groups[2][:8] + [0] * 7 + [1]]
    with pytest.raises(ValueError, match=message(
            "DPRed data is corrupt: group 2 has a non-zero padding value")):
        dpred.decode(crafted(dirty, widths, 4, **params))
    bitmaps = [[int(v != 0) for v in group] for group in groups]
    bitmaps[1][values[16:32].tolist().index(0)] = 1
    with pytest.raises(ValueError, match=message(
            "DPRed data is corrupt: group 1 flags a zero value as non-zero")):
        dpred.decode(crafted(groups, widths, 4, bitmaps, zero_skip=True, **params))
    twelve = dict(shape=(4,), value_width=12, signed=False, group_size=4)
    with pytest.raises(ValueError, match=message(
            "DPRed data is corrupt: group 0 has width header 16, more than value_width 12")):
        dpred.decode(crafted([[1, 2, 3, 4]], [16], 4, **twelve))


def test_parameter_errors():
    good = dict(value_width=8, signed=True)
    for name, value, kind, text in [
            ("value_width", 0, ValueError, "value_width must be an integer from 1 to 32, not 0"),
            ("value_width", 33, ValueError,
             "value_width must be an integer from 1 to 32, not 33"),
            ("value_width", "8", TypeError,
             "value_width must be an integer from 1 to 32, not '8'"),
            ("group_size", 0, ValueError, "group_size must be an integer from 1 to 256, not 0"),
            ("group_size", 257, ValueError,
             "group_size must be an integer from 1 to 256, not 257"),
            ("group_size", 1.5, TypeError,
             "group_size must be an integer from 1 to 256, not 1.5"),
            ("signed", 1, TypeError, "signed must be True or False, not 1"),
            ("zero_skip", "no", TypeError, "zero_skip must be True or False, not 'no'"),
            ("axis", 1, ValueError,
             "axis must be None or an integer from -1 to 0 for a 1-dimensional array, "
             "not 1"),
            ("axis", -2, ValueError,
             "axis must be None or an integer from -1 to 0 for a 1-dimensional array, "
             "not -2"),
            ("axis", 0.0, TypeError, "axis must be None or an integer, not 0.0")]:
        for function in (dpred.encode, dpred.encoded_size):
            with pytest.raises(kind, match=message(text)):
                function([1, 2], **good | {name: value})
    with pytest.raises(ValueError, match=message(
            "axis must be None for a 0-dimensional array, not 0")):
        dpred.encode(5, axis=0, **good)
    with pytest.raises(TypeError, match=message(
            "values must be an integer array, not dtype float64")):
        dpred.encode([1.0], **good)
    with pytest.raises(ValueError, match=message("values must fit 8-bit signed (-128..127); "
                                                 "found 0..128")):
        dpred.encode([0, 128], **good)
    with pytest.raises(TypeError, match=message("data must be bytes, not str")):
        dpred.DPRedTensor(data="abc", shape=(1,), **good)
    with pytest.raises(TypeError, match=message("shape must be a tuple of integers, "
                                                "not (1.5,)")):
        dpred.DPRedTensor(data=b"", shape=(1.5,), **good)
    with pytest.raises(ValueError, match=message("shape must hold non-negative integers, "
                                                 "not (2, -1)")):
        dpred.DPRedTensor(data=b"", shape=(2, -1), **good)
    with pytest.raises(ValueError, match=message("group_size must be an integer from 1 to 256, "
                                                 "not 0")):
        dpred.DPRedTensor(data=b"", shape=(1,), group_size=0, **good)
    with pytest.raises(TypeError, match=message("tensor must be a DPRedTensor, not bytes")):
        dpred.decode(b"")
    with pytest.raises(ValueError, match=message("value_width must be an integer from 1 to 32, "
                                                 "not 40")):
        dpred.header_width(40)


def test_tensor_object():
    values = np.arange(-8, 8).reshape(4, 4)
    encoded = dpred.encode(values, value_width=5, signed=True, group_size=3, axis=-1)
    assert encoded.axis == 1 and encoded.shape == (4, 4) and encoded.group_count == 8
    rebuilt = dpred.DPRedTensor(data=bytearray(encoded.data), shape=[4, 4], value_width=5,
                                signed=True, group_size=3, axis=1)
    assert rebuilt == encoded
    assert np.array_equal(dpred.decode(rebuilt), values)
    empty = dpred.encode(np.zeros((0,), dtype=int), value_width=8, signed=False)
    assert empty.data == b"" and empty.size.compressed_bits == 0
    assert math.isnan(empty.size.ratio)
