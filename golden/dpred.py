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

Word layout (`encode_words`, `scan_words`, `decode_words`): what the hardware moves
    The memory format of `hw.dpred.DPRedEncoder` / `DPRedDecoder`. The same fields as above, but
    interleaved group by group: group 0's record (header ``p - 1`` in ``header_width`` bits, then
    the bitmap with ``zero_skip``), group 0's payload fields, group 1's record, and so on, as one
    LSB-first bit stream cut into ``word_width``-bit memory words (stream bit ``k`` is bit
    ``k % word_width`` of word ``k // word_width``); the last word is zero-padded. A tensor
    therefore costs exactly ``ceil(compressed_bits / word_width)`` words.
    Why this layout and not the lane-packed one of DNNsim's ``on_chip`` model (16 lanes, each
    packing its own values into 16-bit blocks): (1) a streaming encoder sees one value at a time
    and can write a group as soon as it is complete, with one group of buffering, whereas
    lane-packing must hold a group per lane before a word is complete; (2) no bits are lost
    inside words, so the size is the golden bit count rounded up once per tensor; (3) every
    word is written once and read once, in order, which is what a DMA burst moves. The price is
    a variable shifter in each block (a word holds fields of different groups at any offset).
    The partial last group is padded with zeros (stored, as above); the decoder is told the
    value count and drops the padding. ``axis`` grouping corresponds to feeding the hardware the
    zero-padded rows one after the other. The hardware implements the plain variant; the
    zero-bitmap variant of the word layout exists here for the traffic model.

Traffic model (`tensor_traffic`, `layer_traffic`, `network_traffic`)
    Off-chip bytes of a layer on the TCL tile, weights, activations and outputs separately,
    uncompressed and in the word layout (plain, bitmap, or the smaller per tensor); each tensor
    moved once per layer per image, stored channel-minor (`layer_traffic` has the details).

Cycle models (`encoder_cycles`, `decoder_cycles`)
    The transfer cycles of the hardware blocks for a stall-free source and sink, replayed cycle
    by cycle; the RTL equals them exactly.

`decode` accepts only what `encode` writes: wrong length, a width above ``value_width``,
non-zero padding, a bitmap bit set on a zero field, or a header that is not the minimal width
of its group's values all raise ``ValueError``. A payload bit flip that leaves the stream
canonical cannot be detected (the format carries no checksum).
"""

import dataclasses
import functools
import math
import operator
from pathlib import Path

import numpy as np

from hw.params import DPRED_WORD_WIDTHS, check_bool, check_int

from ._checks import check_axis
from .precision import check_range, group_precision

__all__ = ["MAX_GROUP_SIZE", "MAX_VALUE_WIDTH", "WORD_WIDTHS", "header_width", "DPRedSize",
           "DPRedTensor", "encoded_size", "encode", "decode", "word_count", "encode_words",
           "scan_words", "decode_words", "VARIANTS", "channel_minor", "tensor_traffic",
           "layer_traffic", "network_traffic", "encoder_cycles", "decoder_cycles"]

#: largest accepted ``group_size`` (ShapeShifter's largest group)
MAX_GROUP_SIZE = 256
#: largest accepted ``value_width``
MAX_VALUE_WIDTH = 32
#: accepted memory word widths of the word layout (``hw.params.DPRED_WORD_WIDTHS``)
WORD_WIDTHS = DPRED_WORD_WIDTHS
#: traffic-model variants: plain groups, zero-bitmap groups, or the smaller of the two per tensor
VARIANTS = ("plain", "bitmap", "best")


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


# --- word layout (the hardware's memory format) ---------------------------------------------

def _check_word_width(word_width):
    if isinstance(word_width, bool) or not isinstance(word_width, int):
        raise TypeError(f"word_width must be one of 8, 16, 32, 64, not {word_width!r}")
    if word_width not in WORD_WIDTHS:
        raise ValueError(f"word_width must be one of 8, 16, 32, 64, not {word_width!r}")
    return word_width


def word_count(values, *, value_width, signed, group_size=16, word_width=32, zero_skip=False,
               axis=None):
    """Return the number of ``word_width``-bit words `encode_words` writes for ``values``.

    ``ceil(encoded_size(...).compressed_bits / word_width)``: the word layout holds the same
    fields as the stream layout, only in another order. Parameters are those of `encode_words`.
    """
    word_width = _check_word_width(word_width)
    bits = encoded_size(values, value_width=value_width, signed=signed, group_size=group_size,
                        zero_skip=zero_skip, axis=axis).compressed_bits
    return -(-bits // word_width)


def encode_words(values, *, value_width, signed, group_size=16, word_width=32, zero_skip=False,
                 axis=None):
    """Encode ``values`` in the word layout (module docstring); return the words.

    Parameters are those of `encode`, plus ``word_width`` (8, 16, 32 or 64). Returns a
    ``uint64`` array of `word_count` words, each below ``2**word_width``; word 0 holds the
    first group's header in its least significant bits. This is bit for bit what
    `hw.dpred.DPRedEncoder` writes when fed the flattened (or, with ``axis``, the zero-padded
    row by row) values with ``last`` on the final one.
    """
    word_width = _check_word_width(word_width)
    value_width, signed, group_size, zero_skip, values, axis, groups, widths = _grouped(
        values, value_width, signed, group_size, zero_skip, axis)
    nonzero = groups != 0
    header = (widths - 1).astype(np.uint64)[:, None]
    header_lengths = np.full(header.shape, header_width(value_width), dtype=np.int64)
    payload_lengths = _field_lengths(widths, nonzero, zero_skip)
    payload = groups.astype(np.uint64) & (
        (np.uint64(1) << payload_lengths.astype(np.uint64)) - np.uint64(1))
    parts = [header]
    lengths = [header_lengths]
    if zero_skip:
        parts.append(nonzero.astype(np.uint64))
        lengths.append(np.ones(nonzero.shape, dtype=np.int64))
    # one row per group: record then payload, so C order interleaves the groups
    fields = np.concatenate(parts + [payload], axis=1).ravel()
    field_lengths = np.concatenate(lengths + [payload_lengths], axis=1).ravel()
    data = _pack_fields(fields, field_lengths)
    word_bytes = word_width // 8
    data += bytes(-len(data) % word_bytes)
    return np.frombuffer(data, dtype=f"<u{word_bytes}").astype(np.uint64)


def _stream_bits(words, word_width):
    """Return the bits of ``words`` in stream order (``uint8`` array of 0/1)."""
    raw = words.astype(f"<u{word_width // 8}").tobytes()
    return np.unpackbits(np.frombuffer(raw, dtype=np.uint8), bitorder="little")


def scan_words(words, *, count, value_width, signed, group_size=16, word_width=32,
               zero_skip=False):
    """Decode the word layout as `hw.dpred.DPRedDecoder` does; return ``(values, error)``.

    ``words`` is the whole word stream of one flat tensor of ``count`` values (the last element
    is the word the hardware sees with ``last``). Groups are read in order; each value is
    produced as soon as its field is read, so ``values`` (``int64``) holds every value decoded
    before the first error, and ``error`` is None for a good stream or a one-line description
    of the first error, checked in this order as the stream is read:

    * ``count`` below 1;
    * a header ``p - 1`` with ``p > value_width`` (possible only when ``value_width`` is not a
      power of two), detected before any value of its group;
    * the stream ends before a header, bitmap or field it needs (truncated);
    * a padding value of the last group (beyond ``count``) that is not zero;
    * a header wider than its group needs (no value of the group needs all ``p`` bits),
      detected when the group's last field is read: without ``zero_skip`` that field's value
      is not produced;
    * after the last group: more words than needed (too long) or non-zero tail bits.

    Raises ``TypeError``/``ValueError`` for bad parameters or
    words that do not fit ``word_width``.
    """
    word_width = _check_word_width(word_width)
    value_width, signed, group_size, zero_skip = _check_params(value_width, signed, group_size,
                                                               zero_skip)
    if isinstance(count, bool):
        raise TypeError(f"count must be a non-negative integer, not {count!r}")
    try:
        count = operator.index(count)
    except TypeError:
        raise TypeError(f"count must be a non-negative integer, not {count!r}") from None
    if count < 0:
        raise ValueError(f"count must be a non-negative integer, not {count!r}")
    words = np.asarray(words)
    if words.ndim != 1 or (words.size and not np.issubdtype(words.dtype, np.integer)):
        raise TypeError("words must be a one-dimensional integer array")
    words = words.astype(np.uint64) if words.size else np.zeros(0, dtype=np.uint64)
    if words.size and word_width < 64 and words.max() >= np.uint64(1) << np.uint64(word_width):
        raise ValueError(f"words must fit {word_width} bits")
    values = []
    if count < 1:
        return np.zeros(0, dtype=np.int64), "length 0: a tensor holds at least one value"
    bits = _stream_bits(words, word_width)
    total = len(bits)
    header_bits = header_width(value_width)
    pos = 0

    def read(start, length):
        field = bits[start:start + length].astype(np.int64)
        return int(np.dot(field, 1 << np.arange(length, dtype=np.int64)))

    def result(error):
        return np.array(values, dtype=np.int64).reshape(-1), error

    for group in range(-(-count // group_size)):
        if pos + header_bits > total:
            return result(f"truncated: group {group} has no header")
        width = read(pos, header_bits) + 1
        pos += header_bits
        if width > value_width:
            return result(f"corrupt header: group {group} has precision {width}, more than "
                          f"value_width {value_width}")
        if zero_skip:
            if pos + group_size > total:
                return result(f"truncated: group {group} has no complete bitmap")
            present = bits[pos:pos + group_size].astype(bool)
            pos += group_size
        else:
            present = np.ones(group_size, dtype=bool)
        stored = int(present.sum())
        available = min(stored, (total - pos) // width)
        fields = bits[pos:pos + available * width].astype(np.int64).reshape(available, width)
        fields = fields @ (1 << np.arange(width, dtype=np.int64))
        if signed:
            fields -= (fields >> (width - 1) & 1) << width
        group_values = np.zeros(group_size, dtype=np.int64)
        slots = np.flatnonzero(present)
        group_values[slots[:available]] = fields
        real = min(group_size, count - group * group_size)
        # Slots in order: a real slot's value is produced, a padding slot must hold zero (and,
        # with a bitmap, be flagged zero); the first missing field or bad padding stops.
        missing = int(slots[available]) if available < stored else group_size
        bad = np.flatnonzero((np.arange(group_size) >= real)
                             & ((group_values != 0) | (present & zero_skip)))
        bad_padding = int(bad[0]) if bad.size else group_size
        stop = min(missing, bad_padding)
        values.extend(group_values[:min(stop, real)].tolist())
        if missing <= bad_padding and missing < group_size:
            return result(f"truncated: group {group} ends after {available} of its "
                          f"{stored} fields")
        if bad_padding < group_size:
            return result(f"corrupt padding: value {bad_padding} of the last group {group} is "
                          f"not zero")
        minimal = int(group_precision(group_values, value_width=value_width,
                                      signed=signed)[0])
        if minimal != width:
            if not zero_skip and real == group_size:
                values.pop()   # the hardware detects this at the last field and drops it
            return result(f"corrupt header: group {group} has precision {width}, but its "
                          f"values need {minimal} bits")
        pos += stored * width
    needed = -(-pos // word_width)
    if len(words) > needed:
        return result(f"too long: {len(words)} words, the groups end in word {needed - 1}")
    if bits[pos:].any():
        return result("corrupt tail: the padding bits of the last word are not zero")
    return result(None)


def decode_words(words, *, shape, value_width, signed, group_size=16, word_width=32,
                 zero_skip=False, axis=None):
    """Decode the word layout written by `encode_words`; return ``int64`` values of ``shape``.

    Raises ``ValueError`` naming the first problem for any stream `encode_words` cannot have
    written for a tensor of this shape: every error of `scan_words`, a non-zero padding value
    of a row (``axis``) and a bitmap bit set on a zero field.
    """
    try:
        shape = tuple(operator.index(s) for s in shape)
    except TypeError:
        raise TypeError(f"shape must be a tuple of integers, not {shape!r}") from None
    axis = check_axis(axis, len(shape))
    group_count = _group_count(shape, axis, check_int("group_size", group_size, 1,
                                                      MAX_GROUP_SIZE))
    count = group_count * group_size
    if math.prod(shape) == 0:
        if np.asarray(words).size:
            raise ValueError("DPRed words: too long: an empty tensor has no words")
        return np.zeros(shape, dtype=np.int64)
    # axis grouping pads every row: the padded tensor is decoded whole, then the padding checked
    values, error = scan_words(words, count=count if axis is not None else math.prod(shape),
                               value_width=value_width, signed=signed, group_size=group_size,
                               word_width=word_width, zero_skip=zero_skip)
    if error is not None:
        raise ValueError(f"DPRed words: {error}")
    groups = np.zeros(count, dtype=np.int64)
    groups[:values.size] = values
    groups = groups.reshape(group_count, group_size)
    if axis is not None:
        padding = _padding_mask(shape, axis, group_size)
        if np.any(padding & (groups != 0)):
            group = int(np.argmax(np.any(padding & (groups != 0), axis=1)))
            raise ValueError(f"DPRed words: corrupt padding: group {group} has a non-zero "
                             f"padding value")
    stored = encode_words(_from_groups(groups, shape, axis), value_width=value_width,
                          signed=signed, group_size=group_size, word_width=word_width,
                          zero_skip=zero_skip, axis=axis)
    if not np.array_equal(stored, np.asarray(words).astype(np.uint64)):
        raise ValueError("DPRed words: corrupt bitmap: a zero value is flagged non-zero")
    return _from_groups(groups, shape, axis)


# --- traffic model --------------------------------------------------------------------------

def tensor_traffic(values, *, value_width, signed, group_size=16, word_width=32,
                   variant="best", axis=None):
    """Return the off-chip bytes of one tensor, uncompressed and DPRed-compressed.

    The tensor is moved once, whole, in the word layout (`encode_words`, grouped along
    ``axis``); its compressed size is a whole number of words. ``variant`` is ``"plain"``,
    ``"bitmap"`` (zero-skipping) or ``"best"``, the smaller of the two (ties go to plain; the
    one flag bit per tensor that says which is assumed to live in the layer descriptor).

    Returns a dict: ``values``, ``value_width``, ``uncompressed_bytes``
    (``ceil(values * value_width / 8)``), ``plain_bytes``, ``bitmap_bytes``, ``variant`` (the
    one chosen), ``compressed_bytes`` and ``ratio`` (compressed / uncompressed, nan if empty).
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, not {variant!r}")
    word_width = _check_word_width(word_width)
    sizes = {}
    for name, zero_skip in (("plain", False), ("bitmap", True)):
        words = word_count(values, value_width=value_width, signed=signed,
                           group_size=group_size, word_width=word_width, zero_skip=zero_skip,
                           axis=axis)
        sizes[name] = words * word_width // 8
    count = int(np.asarray(values).size)
    uncompressed = -(-count * value_width // 8)
    chosen = variant if variant != "best" else (
        "bitmap" if sizes["bitmap"] < sizes["plain"] else "plain")
    compressed = sizes[chosen]
    return {"values": count, "value_width": int(value_width),
            "uncompressed_bytes": uncompressed, "plain_bytes": sizes["plain"],
            "bitmap_bytes": sizes["bitmap"], "variant": chosen, "compressed_bytes": compressed,
            "ratio": compressed / uncompressed if uncompressed else math.nan}


def channel_minor(values, *, channel_axis):
    """Return ``values`` flattened with ``channel_axis`` moved last (the storage order)."""
    values = np.asarray(values)
    return np.moveaxis(values, channel_axis, -1).ravel() if values.ndim > 1 else values.ravel()


def layer_traffic(layer, *, group_size=16, word_width=32, variant="best", outputs=None,
                  output_bits=None, output_signed=None):
    """Return the off-chip traffic of one layer on the TCL tile for one image, in bytes.

    Model (each tensor moved once per layer per image, whole, in the word layout):

    * weights read: ``layer.weights`` (signed, ``weight_bits``) stored channel-minor
      (``[K, R, S, C/groups]``; fc ``[K, C]``), so a group is ``group_size`` consecutive input
      channels of one filter position (DNNsim's "16 channels of a filter position");
    * activations read: ``layer.activations`` (``act_bits``, ``act_signed``) stored
      channel-minor (``[H, W, C]``; fc: the vector), a group being consecutive channels of one
      pixel (DNNsim's activation group);
    * outputs written: ``outputs`` if given (the quantized output tensor of shape
      ``layer.output_shape``, e.g. the next layer's activations) with ``output_bits`` and
      ``output_signed`` (default: this layer's ``act_bits`` and ``act_signed``; pass the next
      layer's), stored like activations; without it only the uncompressed size
      (``prod(output_shape) * output_bits / 8``) is known and the compressed entries are None.

    Each tensor is one flat word stream in that order (`tensor_traffic` with ``axis=None``):
    when the channel count is not a multiple of ``group_size`` a group continues into the next
    pixel or filter position, so the only padding is in the tensor's last group (padding every
    pixel instead would cost 15 zeros per pixel of a 1-channel input at ``group_size`` 16).
    Each tensor picks its own variant when ``variant="best"``.

    Returns
    -------
    dict with ``layer`` (name), ``weights``, ``activations``, ``outputs`` (each a
    `tensor_traffic` dict; for outputs without ``outputs`` the compressed entries are None),
    and ``total``: ``uncompressed_bytes`` and ``compressed_bytes`` summed over the three
    tensors (outputs counted uncompressed when their compressed size is unknown) and ``ratio``.
    """
    weights = tensor_traffic(channel_minor(layer.weights, channel_axis=1),
                             value_width=layer.weight_bits, signed=True,
                             group_size=group_size, word_width=word_width, variant=variant)
    activations = tensor_traffic(channel_minor(layer.activations, channel_axis=0),
                                 value_width=layer.act_bits, signed=layer.act_signed,
                                 group_size=group_size, word_width=word_width, variant=variant)
    output_bits = layer.act_bits if output_bits is None else output_bits
    output_signed = layer.act_signed if output_signed is None else output_signed
    if outputs is not None:
        outputs = np.asarray(outputs)
        if tuple(outputs.shape) != tuple(layer.output_shape):
            raise ValueError(f"outputs must have the layer's output shape "
                             f"{tuple(layer.output_shape)}, not {tuple(outputs.shape)}")
        written = tensor_traffic(channel_minor(outputs, channel_axis=0),
                                 value_width=output_bits, signed=output_signed,
                                 group_size=group_size, word_width=word_width, variant=variant)
    else:
        count = math.prod(layer.output_shape)
        uncompressed = -(-count * output_bits // 8)
        written = {"values": count, "value_width": output_bits,
                   "uncompressed_bytes": uncompressed, "plain_bytes": None,
                   "bitmap_bytes": None, "variant": None, "compressed_bytes": None,
                   "ratio": None}
    parts = (weights, activations, written)
    uncompressed = sum(part["uncompressed_bytes"] for part in parts)
    compressed = sum(part["compressed_bytes"] if part["compressed_bytes"] is not None
                     else part["uncompressed_bytes"] for part in parts)
    return {"layer": layer.name, "weights": weights, "activations": activations,
            "outputs": written,
            "total": {"uncompressed_bytes": uncompressed, "compressed_bytes": compressed,
                      "ratio": compressed / uncompressed if uncompressed else math.nan}}


def network_traffic(directory, *, group_size=16, word_width=32, variant="best", images=None):
    """Return `layer_traffic` of every layer and image of a network directory, plus totals.

    A layer's outputs are taken to be the next layer's activations (same image, with that
    layer's ``act_bits`` and ``act_signed``) when the next layer's input shape equals this
    layer's output shape; the last layer, and a layer followed by a shape change (pooling,
    concatenation), have uncompressed-only outputs (at this layer's ``act_bits``). ``images``
    selects images as in `golden.layers.load_network`.

    Returns ``{"network": name, "layers": [layer_traffic dict + "image"], "total": {...}}``
    where ``total`` holds, for ``weights``, ``activations``, ``outputs`` and ``all``, the summed
    ``uncompressed_bytes`` and ``compressed_bytes`` and their ``ratio`` (outputs without a
    known compressed size count uncompressed on both sides).
    """
    from .layers import load_layer, load_network

    manifest, layers = load_network(directory, images=images)
    entries = manifest["layers"]
    index_of = {id(entry): index for index, entry in enumerate(entries)}
    rows = []
    for entry, image, layer in layers:
        index = index_of[id(entry)]
        outputs = output_bits = output_signed = None
        if index + 1 < len(entries):
            following = entries[index + 1]
            if list(following["activations_shape"]) == list(layer.output_shape):
                candidate = load_layer(Path(directory) / following["files"][image])
                outputs = candidate.activations
                output_bits, output_signed = candidate.act_bits, candidate.act_signed
        row = layer_traffic(layer, group_size=group_size, word_width=word_width,
                            variant=variant, outputs=outputs, output_bits=output_bits,
                            output_signed=output_signed)
        row["image"] = image
        rows.append(row)
    total = {}
    for part in ("weights", "activations", "outputs"):
        uncompressed = sum(row[part]["uncompressed_bytes"] for row in rows)
        compressed = sum(row[part]["compressed_bytes"] if row[part]["compressed_bytes"]
                         is not None else row[part]["uncompressed_bytes"] for row in rows)
        total[part] = {"uncompressed_bytes": uncompressed, "compressed_bytes": compressed,
                       "ratio": compressed / uncompressed if uncompressed else math.nan}
    uncompressed = sum(total[part]["uncompressed_bytes"] for part in total)
    compressed = sum(total[part]["compressed_bytes"] for part in total)
    total["all"] = {"uncompressed_bytes": uncompressed, "compressed_bytes": compressed,
                    "ratio": compressed / uncompressed if uncompressed else math.nan}
    return {"network": manifest["name"], "layers": rows, "total": total}


# --- cycle model of hw.dpred (no idle input cycles, no backpressure) --------------------------

def _cycle_params(value_width, signed, group_size, word_width):
    word_width = _check_word_width(word_width)
    value_width, signed, group_size, _ = _check_params(value_width, signed, group_size, False)
    if value_width < 2:
        raise ValueError(f"value_width must be an integer from 2 to 32, not {value_width!r}")
    header = header_width(value_width)
    buffer = word_width + header + value_width - 1
    return value_width, signed, group_size, word_width, header, buffer


def encoder_cycles(values, *, value_width, signed, group_size=16, word_width=32):
    """Return ``(input_cycles, output_cycles)`` of `hw.dpred.DPRedEncoder` for one tensor.

    The register-transfer schedule of the encoder (gather buffer, serializer, packer; see its
    docstring) replayed cycle by cycle, for a source that offers the flat tensor from cycle 0
    on with ``last`` on its final value and a sink that is always ready. ``input_cycles[i]`` is
    the cycle in which value ``i`` is transferred, ``output_cycles[k]`` the cycle of word ``k``
    (`word_count` words). A Python loop over cycles (about one per value): meant for tensors of
    up to some ten thousand values.
    """
    value_width, signed, group_size, word_width, header, buffer = _cycle_params(
        value_width, signed, group_size, word_width)
    values = check_range(values, value_width=value_width, signed=signed, name="values").ravel()
    if values.size == 0:
        raise ValueError("values must hold at least one value")
    widths = group_precision(_to_groups(values, None, group_size), value_width=value_width,
                             signed=signed)[0].tolist()
    in_cycles, out_cycles = [], []
    full = full_last = busy = group_last = flush = False
    index = position = count = width = 0
    serialized = 0                     # groups handed to the serializer so far
    cycle = 0
    total_words = word_count(values, value_width=value_width, signed=signed,
                             group_size=group_size, word_width=word_width)
    while len(out_cycles) < total_words:
        o_valid = count >= word_width or (flush and count != 0)
        final = flush and count <= word_width
        emit = o_valid
        count_after = (count - word_width if count >= word_width else 0) if emit else count
        length = (width + header if position == 0 else width) if busy else 0
        push = busy and not flush and count_after + length <= buffer
        group_done = push and position == group_size - 1
        take = full and (not busy or group_done)
        accept = len(in_cycles) < values.size and (not full or take)
        if emit:
            out_cycles.append(cycle)
        if accept:
            in_cycles.append(cycle)
        # registers
        count = count_after + (length if push else 0)
        if emit and final:
            flush = False
        if group_done and group_last:
            flush = True
        if push:
            if position == group_size - 1:
                position, busy = 0, False
            else:
                position += 1
        if take:
            busy, position, group_last = True, 0, full_last
            width = widths[serialized]
            serialized += 1
            full = False
        if accept:
            last = len(in_cycles) == values.size
            if index == group_size - 1 or last:
                full, full_last, index = True, last, 0
            else:
                index += 1
        cycle += 1
        if cycle > 64 * (values.size + total_words) + 64:
            raise AssertionError("encoder_cycles: no progress (model error)")
    return np.array(in_cycles, dtype=np.int64), np.array(out_cycles, dtype=np.int64)


def decoder_cycles(values, *, value_width, signed, group_size=16, word_width=32):
    """Return ``(word_cycles, value_cycles)`` of `hw.dpred.DPRedDecoder` for one good tensor.

    Cycle by cycle, as `encoder_cycles`: the tensor's length is offered from cycle 0 on, its
    `encode_words` words are offered back to back from cycle 0 on, and the sink is always ready.
    ``word_cycles[k]`` is the cycle in which word ``k`` is transferred, ``value_cycles`` the
    cycles of the ``values.size`` values followed by the status beat.
    """
    value_width, signed, group_size, word_width, header, buffer = _cycle_params(
        value_width, signed, group_size, word_width)
    values = check_range(values, value_width=value_width, signed=signed, name="values").ravel()
    if values.size == 0:
        raise ValueError("values must hold at least one value")
    widths = group_precision(_to_groups(values, None, group_size), value_width=value_width,
                             signed=signed)[0].tolist()
    total_words = word_count(values, value_width=value_width, signed=signed,
                             group_size=group_size, word_width=word_width)
    field_max = header + value_width
    word_cycles, value_cycles = [], []
    state = "idle"
    count = remaining = position = group = 0
    seen_last = o_valid = False
    cycle = 0
    while len(value_cycles) < values.size + 1:
        if o_valid:
            value_cycles.append(cycle)   # the sink is always ready
        load_output = False
        word_in = False
        consume = False
        need = 0
        if state == "idle":
            state, remaining, position = "load", values.size, 0
        elif state == "load":
            word_in = True
            state = "run"
        elif state == "run":
            width = widths[group]
            need = width + header if position == 0 else width
            consume = count >= need
            count_after = count - need if consume else count
            word_in = (not seen_last and count_after < field_max
                       and len(word_cycles) < total_words)
            if consume:
                if remaining:
                    load_output = True
                    remaining -= 1
                if position == group_size - 1:
                    position, group = 0, group + 1
                    if remaining == 0:
                        state = "finish"
                else:
                    position += 1
        elif state == "finish":
            state = "end"
        elif state == "end":
            load_output = True
            state = "idle_done"
        count = (count - need if consume else count) + (word_width if word_in else 0)
        if word_in:
            word_cycles.append(cycle)
            seen_last = len(word_cycles) == total_words
        o_valid = load_output
        cycle += 1
        if cycle > 64 * (values.size + total_words) + 64:
            raise AssertionError("decoder_cycles: no progress (model error)")
    return np.array(word_cycles, dtype=np.int64), np.array(value_cycles, dtype=np.int64)
