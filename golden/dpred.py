"""DPRed group codec: each group of values stored with its own precision, decoded exactly.

Grouping
    The tensor is cut into rows: the whole tensor flattened in C order (``axis=None``), or, with
    ``axis=k``, every line of values along axis ``k`` (C order over the other axes), which is
    DNNsim's "16 consecutive channels at one (x, y)" for activations ``[C, H, W]`` and ``axis=0``.
    Each row is cut into groups of ``group_size`` consecutive values; a row whose length is not a
    multiple of ``group_size`` has its last group padded with zeros (the padding is stored and
    counted in the compressed size; it never changes a group's width).

Width of a group
    ``p = group_precision(group, value_width=..., signed=...)`` from `golden.precision`: the
    minimal two's-complement width (signed) or binary width (unsigned), at least 1, so an
    all-zero group (and a signed all-minus-one group) costs ``p = 1``. No LSB trimming.

Stream layout (every field least significant bit first)
    1. Metadata section, one fixed-size record per group, groups in order:
       ``p - 1`` in ``header_width(value_width) = ceil(log2(value_width))`` bits (4 bits for
       16-bit data, 3 for 8-bit; 0 bits for ``value_width = 1``, where ``p`` is always 1),
       then, with ``zero_skip``, a ``group_size``-bit bitmap whose bit ``i`` is set when value
       ``i`` of the group is non-zero.
    2. Payload section, groups in order, values in order within a group: the low ``p`` bits of
       each value (two's complement when signed); with ``zero_skip`` only the non-zero values
       are stored.
    Stream bit ``k`` is bit ``k % 8`` of byte ``k // 8`` (``np.packbits(..., bitorder="little")``
    order); the last byte is padded with zero bits. The metadata precedes the payload instead of
    being interleaved with it so that every group's payload offset is a prefix sum of the
    headers, which lets both directions run vectorized; the size is the same either way.

The compressed size counts every metadata and payload bit (not the final byte's padding bits);
the uncompressed size is ``value_width`` bits per value of the original tensor.

`decode` accepts only what `encode` writes: wrong length, a width above ``value_width``,
non-zero padding, a bitmap bit set on a zero field, or a header that is not the minimal width
of its group's values all raise ``ValueError``. A payload bit flip that leaves the stream
canonical cannot be detected (the format carries no checksum).
"""

import dataclasses
import functools
import math
import operator

import numpy as np

from hw.params import check_bool, check_int

from ._checks import check_axis
from .precision import check_range, group_precision

__all__ = ["MAX_GROUP_SIZE", "MAX_VALUE_WIDTH", "header_width", "DPRedSize", "DPRedTensor",
           "encoded_size", "encode", "decode"]

#: largest accepted ``group_size`` (ShapeShifter's largest group)
MAX_GROUP_SIZE = 256
#: largest accepted ``value_width``
MAX_VALUE_WIDTH = 32


def header_width(value_width):
    """Return the bits of a group's width header, ``ceil(log2(value_width))`` (0 for width 1)."""
    value_width = check_int("value_width", value_width, 1, MAX_VALUE_WIDTH)
    return (value_width - 1).bit_length()


@dataclasses.dataclass(frozen=True, kw_only=True)
class DPRedSize:
    """Compressed and uncompressed size of one DPRed-encoded tensor, in bits.

    Attributes
    ----------
    group_count : int
        Number of groups (padded groups included).
    metadata_bits : int
        Width headers plus, with zero skipping, the non-zero bitmaps.
    payload_bits : int
        Stored value fields (padding values included).
    uncompressed_bits : int
        ``value_width`` bits per value of the original tensor.
    """

    group_count: int
    metadata_bits: int
    payload_bits: int
    uncompressed_bits: int

    @property
    def compressed_bits(self):
        """Metadata plus payload bits (the final byte's padding bits are not counted)."""
        return self.metadata_bits + self.payload_bits

    @property
    def ratio(self):
        """``compressed_bits / uncompressed_bits`` (0.35: 35 % of the original; nan if empty)."""
        if self.uncompressed_bits == 0:
            return math.nan
        return self.compressed_bits / self.uncompressed_bits


def _row_shape(shape, axis):
    """Return ``(row_count, row_length)`` of the rows groups are cut from."""
    if axis is None:
        return 1, math.prod(shape)
    return math.prod(shape[:axis] + shape[axis + 1:]), shape[axis]


def _padded_length(row_length, group_size):
    """Return ``row_length`` rounded up to a multiple of ``group_size``."""
    return -(-row_length // group_size) * group_size


def _group_count(shape, axis, group_size):
    row_count, row_length = _row_shape(shape, axis)
    return row_count * _padded_length(row_length, group_size) // group_size


def _to_groups(values, axis, group_size):
    """Return the zero-padded groups ``[group_count, group_size]`` of ``values``."""
    row_count, row_length = _row_shape(values.shape, axis)
    rows = values if axis is None else np.moveaxis(values, axis, -1)
    rows = rows.reshape(row_count, row_length)
    padded = np.zeros((row_count, _padded_length(row_length, group_size)), dtype=np.int64)
    padded[:, :row_length] = rows
    return padded.reshape(-1, group_size)


def _from_groups(groups, shape, axis):
    """Invert `_to_groups`: drop the padding and restore ``shape``."""
    row_count, row_length = _row_shape(shape, axis)
    padded_length = _padded_length(row_length, groups.shape[1])
    rows = groups.reshape(row_count, padded_length)[:, :row_length]
    if axis is None:
        return rows.reshape(shape)
    moved_shape = shape[:axis] + shape[axis + 1:] + (shape[axis],)
    return np.moveaxis(rows.reshape(moved_shape), -1, axis)


def _padding_mask(shape, axis, group_size):
    """Return a bool ``[group_count, group_size]`` array, True on padding slots."""
    row_count, row_length = _row_shape(shape, axis)
    padded_length = _padded_length(row_length, group_size)
    row = np.arange(padded_length) >= row_length
    return np.broadcast_to(row, (row_count, padded_length)).reshape(-1, group_size)


def _check_params(value_width, signed, group_size, zero_skip):
    return (check_int("value_width", value_width, 1, MAX_VALUE_WIDTH),
            check_bool("signed", signed),
            check_int("group_size", group_size, 1, MAX_GROUP_SIZE),
            check_bool("zero_skip", zero_skip))


def _field_lengths(widths, groups_nonzero, zero_skip):
    """Return the payload field length of every value slot, ``[group_count, group_size]``."""
    lengths = np.broadcast_to(widths[:, None], groups_nonzero.shape)
    return lengths * groups_nonzero if zero_skip else lengths


def _pack_fields(fields, lengths):
    """Concatenate ``fields`` (uint64, each ``< 2**length``, length <= 32) into LSB-first bytes."""
    ends = np.cumsum(lengths)
    total_bits = int(ends[-1]) if ends.size else 0
    words = np.zeros((total_bits >> 6) + 2, dtype=np.uint64)
    if fields.size:
        offsets = ends - lengths
        word = offsets >> 6
        shift = (offsets & 63).astype(np.uint64)
        low = fields << shift
        high = np.where(shift == 0, np.uint64(0),
                        fields >> ((np.uint64(64) - shift) & np.uint64(63)))
        # Fields are in stream order, so the word index is sorted: OR each word's fields at once.
        starts = np.flatnonzero(np.diff(word, prepend=-1))
        words[word[starts]] |= np.bitwise_or.reduceat(low, starts)
        words[word[starts] + 1] |= np.bitwise_or.reduceat(high, starts)
    return words.astype("<u8").tobytes()[:(total_bits + 7) // 8]


def _read_fields(words, offsets, lengths):
    """Return the fields (uint64) at bit ``offsets`` with ``lengths`` (<= 32) from ``words``."""
    word = offsets >> 6
    shift = (offsets & 63).astype(np.uint64)
    low = words[word] >> shift
    high = np.where(shift == 0, np.uint64(0),
                    words[word + 1] << ((np.uint64(64) - shift) & np.uint64(63)))
    return (low | high) & ((np.uint64(1) << lengths.astype(np.uint64)) - np.uint64(1))


@dataclasses.dataclass(frozen=True, kw_only=True)
class DPRedTensor:
    """A DPRed-encoded tensor: the packed stream plus what is needed to decode it.

    Attributes
    ----------
    data : bytes
        The stream (layout in the module docstring).
    shape : tuple of int
        Shape of the original tensor.
    value_width : int, 1..32
        Width of the original values.
    signed : bool
        Values are two's complement (``True``) or unsigned.
    group_size : int, 1..256
        Values per group.
    zero_skip : bool
        Zero-skipping variant (non-zero bitmap in the metadata, non-zero values only).
    axis : int or None
        Axis the groups run along (normalized to ``0..ndim-1``), or None for the flattened
        tensor.

    Construction validates the parameters (``TypeError``/``ValueError`` naming them); the
    stream itself is validated by `size` and `decode`.
    """

    data: bytes
    shape: tuple
    value_width: int
    signed: bool
    group_size: int = 16
    zero_skip: bool = False
    axis: int | None = None

    def __post_init__(self):
        if not isinstance(self.data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes, not {type(self.data).__name__}")
        object.__setattr__(self, "data", bytes(self.data))
        try:
            shape = tuple(operator.index(s) for s in self.shape)
        except TypeError:
            raise TypeError(f"shape must be a tuple of integers, not {self.shape!r}") from None
        if any(s < 0 for s in shape):
            raise ValueError(f"shape must hold non-negative integers, not {shape!r}")
        object.__setattr__(self, "shape", shape)
        value_width, signed, group_size, zero_skip = _check_params(
            self.value_width, self.signed, self.group_size, self.zero_skip)
        object.__setattr__(self, "value_width", value_width)
        object.__setattr__(self, "group_size", group_size)
        object.__setattr__(self, "axis", check_axis(self.axis, len(shape)))

    @property
    def group_count(self):
        """Number of groups, padded groups included."""
        return _group_count(self.shape, self.axis, self.group_size)

    @property
    def record_bits(self):
        """Bits of one group's metadata record (width header, plus bitmap with zero skipping)."""
        return header_width(self.value_width) + (self.group_size if self.zero_skip else 0)

    def _words(self):
        """Return the stream as little-endian ``uint64`` words, plus two spare zero words (a
        field read touches the word after its own, even at the end of the stream)."""
        return np.frombuffer(self.data + bytes(-len(self.data) % 8 + 16), dtype="<u8")

    @functools.cached_property
    def _structure(self):
        """Parse and check the metadata; return ``(widths, nonzero, field_lengths)``."""
        group_count, group_size = self.group_count, self.group_size
        metadata_bits = group_count * self.record_bits
        if len(self.data) * 8 < metadata_bits:
            raise ValueError(f"DPRed data is truncated: {len(self.data)} bytes cannot hold the "
                             f"{metadata_bits}-bit metadata of {group_count} groups")
        words = self._words()
        record_offsets = np.arange(group_count, dtype=np.int64) * self.record_bits
        header_bits = header_width(self.value_width)
        widths = _read_fields(words, record_offsets,
                              np.full(group_count, header_bits)).astype(np.int64) + 1
        if widths.size and widths.max() > self.value_width:
            group = int(np.argmax(widths > self.value_width))
            raise ValueError(f"DPRed data is corrupt: group {group} has width header "
                             f"{widths[group]}, more than value_width {self.value_width}")
        if self.zero_skip:
            bitmap_offsets = (record_offsets + header_bits)[:, None] + np.arange(group_size)
            nonzero = _read_fields(words, bitmap_offsets,
                                   np.ones_like(bitmap_offsets)).astype(bool)
        else:
            nonzero = np.ones((group_count, group_size), dtype=bool)
        lengths = _field_lengths(widths, nonzero, self.zero_skip)
        total_bits = metadata_bits + int(lengths.sum())
        expected_bytes = (total_bits + 7) // 8
        if len(self.data) != expected_bytes:
            problem = "truncated" if len(self.data) < expected_bytes else "too long"
            raise ValueError(f"DPRed data is {problem}: the headers describe {total_bits} bits "
                             f"({expected_bytes} bytes), but there are {len(self.data)} bytes")
        if total_bits % 8 and self.data[-1] >> (total_bits % 8):
            raise ValueError("DPRed data is corrupt: the padding bits of the last byte are "
                             "not zero")
        return widths, nonzero, lengths

    @functools.cached_property
    def size(self):
        """The `DPRedSize` of this stream (parses the metadata; ``ValueError`` if corrupt)."""
        _, _, lengths = self._structure
        return DPRedSize(group_count=self.group_count,
                         metadata_bits=self.group_count * self.record_bits,
                         payload_bits=int(lengths.sum()),
                         uncompressed_bits=math.prod(self.shape) * self.value_width)


def _grouped(values, value_width, signed, group_size, zero_skip, axis):
    """Validate the arguments of `encode`/`encoded_size`; return them with the groups and widths.

    Returns ``(value_width, signed, group_size, zero_skip, values, axis, groups, widths)``.
    """
    value_width, signed, group_size, zero_skip = _check_params(value_width, signed, group_size,
                                                               zero_skip)
    values = check_range(values, value_width=value_width, signed=signed, name="values")
    axis = check_axis(axis, values.ndim)
    groups = _to_groups(values, axis, group_size)
    widths, _ = group_precision(groups, value_width=value_width, signed=signed)
    return value_width, signed, group_size, zero_skip, values, axis, groups, widths


def encoded_size(values, *, value_width, signed, group_size=16, zero_skip=False, axis=None):
    """Return the `DPRedSize` that `encode` would produce, without packing the stream.

    Parameters are those of `encode`.
    """
    value_width, signed, group_size, zero_skip, values, axis, groups, widths = _grouped(
        values, value_width, signed, group_size, zero_skip, axis)
    record_bits = header_width(value_width) + (group_size if zero_skip else 0)
    return DPRedSize(group_count=len(groups), metadata_bits=len(groups) * record_bits,
                     payload_bits=int(_field_lengths(widths, groups != 0, zero_skip).sum()),
                     uncompressed_bits=values.size * value_width)


def encode(values, *, value_width, signed, group_size=16, zero_skip=False, axis=None):
    """Encode an integer tensor into DPRed groups (format in the module docstring).

    Parameters
    ----------
    values : integer array_like
        The tensor; every value must fit ``value_width``-bit signed or unsigned.
    value_width : int, 1..32
        Width of the values as stored uncompressed.
    signed : bool
        Two's complement (``True``) or unsigned values.
    group_size : int, 1..256
        Values per group (16 by default, DPRed's group).
    zero_skip : bool
        Store a non-zero bitmap per group and only the non-zero values.
    axis : int or None
        Cut groups along this axis (``-ndim..ndim-1``); None (default) flattens in C order.

    Returns
    -------
    `DPRedTensor`; its ``size`` reports compressed against uncompressed bits.

    Raises
    ------
    TypeError for a non-integer array or a parameter of the wrong type; ValueError for a
    parameter out of range or a value that does not fit ``value_width``.
    """
    value_width, signed, group_size, zero_skip, values, axis, groups, widths = _grouped(
        values, value_width, signed, group_size, zero_skip, axis)
    nonzero = groups != 0
    header_fields = (widths - 1).astype(np.uint64)[:, None]
    header_lengths = np.full(header_fields.shape, header_width(value_width), dtype=np.int64)
    if zero_skip:
        metadata_fields = np.concatenate([header_fields, nonzero.astype(np.uint64)], axis=1)
        metadata_lengths = np.concatenate(
            [header_lengths, np.ones(nonzero.shape, dtype=np.int64)], axis=1)
    else:
        metadata_fields, metadata_lengths = header_fields, header_lengths
    payload_lengths = _field_lengths(widths, nonzero, zero_skip)
    payload_fields = groups.astype(np.uint64) & (
        (np.uint64(1) << payload_lengths.astype(np.uint64)) - np.uint64(1))
    data = _pack_fields(np.concatenate([metadata_fields.ravel(), payload_fields.ravel()]),
                        np.concatenate([metadata_lengths.ravel(), payload_lengths.ravel()]))
    return DPRedTensor(data=data, shape=values.shape, value_width=value_width, signed=signed,
                       group_size=group_size, zero_skip=zero_skip, axis=axis)


def decode(tensor):
    """Decode a `DPRedTensor` back to the exact original values.

    Returns
    -------
    ``int64`` array of shape ``tensor.shape``.

    Raises
    ------
    TypeError if ``tensor`` is not a `DPRedTensor`; ValueError if the stream is not exactly what
    `encode` writes for some tensor of this shape and these parameters (module docstring).
    """
    if not isinstance(tensor, DPRedTensor):
        raise TypeError(f"tensor must be a DPRedTensor, not {type(tensor).__name__}")
    widths, nonzero, lengths = tensor._structure
    metadata_bits = tensor.group_count * tensor.record_bits
    ends = np.cumsum(lengths.ravel())
    offsets = metadata_bits + ends - lengths.ravel()
    fields = _read_fields(tensor._words(), offsets, lengths.ravel()).astype(np.int64)
    fields = fields.reshape(lengths.shape)
    if tensor.signed:
        sign_bits = (fields >> np.maximum(lengths - 1, 0)) & (lengths > 0)
        fields -= sign_bits << lengths
    if tensor.zero_skip and np.any(nonzero & (fields == 0)):
        group = int(np.argmax(np.any(nonzero & (fields == 0), axis=1)))
        raise ValueError(f"DPRed data is corrupt: group {group} flags a zero value as non-zero")
    padding = _padding_mask(tensor.shape, tensor.axis, tensor.group_size)
    if np.any(padding & (fields != 0)):
        group = int(np.argmax(np.any(padding & (fields != 0), axis=1)))
        raise ValueError(f"DPRed data is corrupt: group {group} has a non-zero padding value")
    minimal, _ = group_precision(fields, value_width=tensor.value_width, signed=tensor.signed)
    if np.any(minimal != widths):
        group = int(np.argmax(minimal != widths))
        raise ValueError(f"DPRed data is corrupt: group {group} has width header "
                         f"{widths[group]}, but its values need {minimal[group]} bits")
    return _from_groups(fields, tensor.shape, tensor.axis)
