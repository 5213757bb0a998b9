"""DPRed streaming codec: a per-group precision encoder and decoder for off-chip memory words.

Both blocks move the *word layout* of `golden.dpred` (module docstring there): for each group
of ``group_size`` values, a header ``p - 1`` in ``header_width`` bits followed by the low ``p``
bits of every value of the group, where ``p`` is the group's dynamic precision (minimal
two's-complement or binary width, at least 1); all groups back to back as one LSB-first bit
stream, cut into ``word_width``-bit words, the last word zero-padded. The partial last group of
a tensor is padded with zero values. The zero-bitmap variant of the golden codec is not
implemented in hardware.
"""

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .params import DPRedParams
from .precision import DynamicPrecisionDetector

__all__ = ["value_layout", "word_layout", "length_layout", "decoded_layout", "DPRedEncoder",
           "DPRedDecoder", "DPRedLoopback"]


def _check_params(params):
    if not isinstance(params, DPRedParams):
        raise TypeError(f"params must be a DPRedParams, not {params!r}")


def value_layout(params):
    """Return the layout of one uncompressed value on the encoder's input.

    A `data.StructLayout`: ``value`` (``signed(value_width)`` or ``unsigned(value_width)``) and
    ``last`` (1 bit, set on the final value of a tensor).
    """
    _check_params(params)
    shape = signed(params.value_width) if params.signed else unsigned(params.value_width)
    return data.StructLayout({"value": shape, "last": 1})


def word_layout(params):
    """Return the layout of one memory word: ``word`` (``unsigned(word_width)``) and ``last``
    (1 bit, set on the final word of a tensor)."""
    _check_params(params)
    return data.StructLayout({"word": unsigned(params.word_width), "last": 1})


def length_layout(params):
    """Return the layout of one tensor length on the decoder's ``i_length`` stream: ``length``
    (``unsigned(length_width)``), the number of values of the tensor."""
    _check_params(params)
    return data.StructLayout({"length": unsigned(params.length_width)})


def decoded_layout(params):
    """Return the layout of one decoder output beat.

    ``value`` (as in `value_layout`), ``last`` (1 bit: this is the tensor's end-of-tensor status
    beat, whose ``value`` is 0 and not part of the tensor) and ``error`` (1 bit, only ever set
    on the status beat: the tensor's words were corrupt).
    """
    _check_params(params)
    shape = signed(params.value_width) if params.signed else unsigned(params.value_width)
    return data.StructLayout({"value": shape, "last": 1, "error": 1})


class _Component(wiring.Component):
    """Parameter handling shared by the encoder and the decoder."""

    def __init__(self, *, group_size, value_width, signed, word_width, length_width, members):
        self._params = DPRedParams(group_size=group_size, value_width=value_width,
                                   signed=signed, word_width=word_width,
                                   length_width=length_width)
        super().__init__(members(self._params))

    @property
    def params(self):
        """The validated `DPRedParams`."""
        return self._params

    @property
    def group_size(self):
        """Values per group."""
        return self._params.group_size

    @property
    def value_width(self):
        """Width in bits of the uncompressed values."""
        return self._params.value_width

    @property
    def signed(self):
        """Whether values are two's complement."""
        return self._params.signed

    @property
    def word_width(self):
        """Width in bits of a memory word."""
        return self._params.word_width

    @property
    def length_width(self):
        """Width of the decoder's ``length`` input."""
        return self._params.length_width


def _low_mask(width, bits):
    """Return ``(1 << width) - 1`` as a ``bits``-wide value (``width`` a signal, <= bits)."""
    return (Const(1, bits + 1) << width)[:bits + 1] - 1


class DPRedEncoder(_Component):
    """Encode a stream of values into DPRed memory words (`golden.dpred.encode_words`).

    Values arrive one per transfer. Every ``group_size`` values (or fewer, when ``last`` ends
    the tensor: the group is then padded with zeros) form a group; a combinational
    `hw.precision.DynamicPrecisionDetector` finds its precision ``p``, and the group is written
    as a header ``p - 1`` (``header_width`` bits) followed by the low ``p`` bits of each value,
    packed LSB first into ``word_width``-bit words. After a tensor's final group the partial
    word is flushed, zero-padded, with ``last`` set. The words equal
    `golden.dpred.encode_words` of the tensor bit for bit.

    Parameters
    ----------
    group_size : int, 1..256
    value_width : int, 2..32
    signed : bool
    word_width : int, 8, 16, 32 or 64
    length_width : int, 1..32
        Unused by the encoder (shared parameter set `hw.params.DPRedParams`).

    Members
    -------
    i_stream : ``In(stream.Signature(value_layout(params)))``
        Values, ``last`` on the final value of a tensor.
    o_stream : ``Out(stream.Signature(word_layout(params)))``
        Memory words, ``last`` on the final word of a tensor.

    Latency and flow control
    ------------------------
    Three registered stages in the ``sync`` domain: a gather buffer (one group), a serializer
    holding the previous group while the next is gathered, and a packing buffer of
    ``word_width + header_width + value_width - 1`` bits. ``i_stream.ready`` is high while the
    gather buffer has room or hands its group to the serializer in the same cycle, so the input
    takes one value per cycle for as long as the packer drains one word per cycle; the
    serializer pushes one field per cycle (the header travels with the first value).
    ``o_stream.valid`` depends only on registers (a full word is buffered, or a tensor's final
    partial word is being flushed) and the offered word holds until taken. ``latency`` (3) is
    the number of cycles from the transfer of the value completing a group, with the serializer
    idle, to the first cycle in which a word holding that group's header can be transferred
    (when the header and first value complete a word). Reset (synchronous) empties all stages.
    With ``o_stream.ready`` low the blocks fill up and ``i_stream.ready`` falls; nothing is
    lost or reordered.
    """

    def __init__(self, *, group_size=16, value_width=16, signed=True, word_width=32,
                 length_width=24):
        super().__init__(group_size=group_size, value_width=value_width, signed=signed,
                         word_width=word_width, length_width=length_width,
                         members=lambda p: {
                             "i_stream": In(stream.Signature(value_layout(p))),
                             "o_stream": Out(stream.Signature(word_layout(p)))})

    @property
    def latency(self):
        """Cycles from a group's completing value to the first possible transfer of its header
        word (3)."""
        return 3

    def elaborate(self, platform):
        m = Module()
        p = self._params
        g, v, w, h = p.group_size, p.value_width, p.word_width, p.header_width
        buffer_width = p.buffer_width
        field_max = p.field_max

        m.submodules.detector = detector = DynamicPrecisionDetector(
            group_size=g, value_width=v, signed=p.signed)

        # Stage A: gather one group.
        gather = Signal(g * v)
        index = Signal(range(g))
        full = Signal()
        full_last = Signal()
        # Stage B: serialize the previous group, one field per cycle.
        busy = Signal()
        group = Signal(g * v)
        width = Signal(p.width_bits)
        group_last = Signal()
        position = Signal(range(g))
        # Stage C: pack fields into words.
        buffer = Signal(buffer_width)
        count = Signal(range(buffer_width + 1))
        flush = Signal()

        # --- stage C: word output ---
        o_valid = (count >= w) | (flush & (count != 0))
        final_word = flush & (count <= w)
        emit = o_valid & self.o_stream.ready
        m.d.comb += [
            self.o_stream.valid.eq(o_valid),
            self.o_stream.payload.word.eq(buffer[:w]),
            self.o_stream.payload.last.eq(final_word),
        ]
        count_after = Signal(range(buffer_width + 1))
        m.d.comb += count_after.eq(Mux(emit, Mux(count >= w, count - w, 0), count))
        buffer_after = Mux(emit, buffer >> w, buffer)

        # --- stage B: the next field ---
        value_mask = _low_mask(width, v)[:v]
        value_field = group[:v] & value_mask
        first = position == 0
        field = Signal(field_max)
        field_length = Signal(range(field_max + 1))
        m.d.comb += [
            field.eq(Mux(first, (width - 1)[:h] | (value_field << h), value_field)),
            field_length.eq(Mux(first, width + h, width)),
        ]
        push = Signal()
        m.d.comb += push.eq(busy & ~flush & (count_after + field_length <= buffer_width))
        group_done = push & (position == g - 1)

        m.d.sync += buffer.eq(buffer_after | Mux(push, field, 0) << count_after)
        m.d.sync += count.eq(count_after + Mux(push, field_length, 0))
        with m.If(emit & final_word):
            m.d.sync += flush.eq(0)
        with m.If(group_done & group_last):
            m.d.sync += flush.eq(1)

        # --- stage A -> B handover, through the precision detector ---
        take = Signal()
        m.d.comb += [
            detector.i_stream.payload.as_value().eq(gather),
            detector.i_stream.valid.eq(full),
            detector.o_stream.ready.eq(~busy | group_done),
            take.eq(detector.o_stream.valid & detector.o_stream.ready),
        ]
        with m.If(push):
            m.d.sync += [position.eq(Mux(position == g - 1, 0, position + 1)),
                         group.eq(group >> v)]
            with m.If(position == g - 1):
                m.d.sync += busy.eq(0)
        with m.If(take):
            m.d.sync += [group.eq(gather), width.eq(detector.o_stream.payload.width),
                         group_last.eq(full_last), busy.eq(1), position.eq(0)]

        # --- stage A: input ---
        accept = self.i_stream.valid & self.i_stream.ready
        m.d.comb += self.i_stream.ready.eq(~full | take)
        with m.If(take):
            m.d.sync += [full.eq(0), gather.eq(0)]
        with m.If(accept):
            m.d.sync += gather.word_select(index, v).eq(self.i_stream.payload.value)
            with m.If((index == g - 1) | self.i_stream.payload.last):
                m.d.sync += [full.eq(1), full_last.eq(self.i_stream.payload.last),
                             index.eq(0)]
            with m.Else():
                m.d.sync += index.eq(index + 1)
        return m


class DPRedDecoder(_Component):
    """Decode DPRed memory words back into values (`golden.dpred.scan_words`).

    For each tensor the decoder takes one ``length`` from ``i_length`` (the number of values;
    the words carry no count), then the tensor's words, and reads the groups one field per
    cycle: a header gives the group's precision ``p`` and each following ``p``-bit field is
    sign-extended (``signed``) or zero-extended and sent out, in order. Padding values of the
    last group are read and checked but not sent. Every tensor's output ends with one status
    beat (``last`` = 1, ``value`` = 0) whose ``error`` bit says whether the words were corrupt.

    Errors, in the order `golden.dpred.scan_words` checks them: ``length`` 0; a header with
    ``p > value_width`` (only possible when ``value_width`` is not a power of two; no value of
    that group is sent); the words end (``last``) before a field the groups need; a non-zero
    padding value; a header wider than its group needs (no field of the group uses all ``p``
    bits: detected at the group's last field, which is then not sent); words left after the
    final group, or non-zero padding bits in the final word. After an error no further value
    is sent, the remaining words up to ``last`` are accepted and dropped, and the status beat
    is sent: the decoder never hangs on corrupt input, and it is ready for the next tensor
    after the status beat.
    The values before the error equal ``scan_words``'s values.

    Parameters
    ----------
    group_size : int, 1..256
    value_width : int, 2..32
    signed : bool
    word_width : int, 8, 16, 32 or 64
    length_width : int, 1..32
        Width of the ``length`` field of ``i_length``.

    Members
    -------
    i_stream : ``In(stream.Signature(word_layout(params)))``
        Memory words, ``last`` on the final word of a tensor.
    o_stream : ``Out(stream.Signature(decoded_layout(params)))``
        Values, then the status beat.
    i_length : ``In(stream.Signature(length_layout(params)))``
        One length per tensor, taken before the tensor's first word.

    Latency and flow control
    ------------------------
    ``latency`` (2): a value is offered two cycles after the transfer of the word that
    completes its field, when the output is free. The unpacking buffer holds
    ``word_width + header_width + value_width - 1`` bits and takes a word whenever, after this
    cycle's field is read, it holds fewer than ``header_width + value_width`` bits (so
    ``i_stream.ready`` depends combinationally on ``o_stream.ready``); one field is read per
    cycle (a header together with its group's first value), so with ``header_width +
    value_width <= word_width`` the output runs at one value per cycle. ``o_stream`` is a
    register: valid depends only on state and the offered beat holds until taken. Reset
    (synchronous) returns to the idle state.
    """

    def __init__(self, *, group_size=16, value_width=16, signed=True, word_width=32,
                 length_width=24):
        super().__init__(group_size=group_size, value_width=value_width, signed=signed,
                         word_width=word_width, length_width=length_width,
                         members=lambda p: {
                             "i_stream": In(stream.Signature(word_layout(p))),
                             "o_stream": Out(stream.Signature(decoded_layout(p))),
                             "i_length": In(stream.Signature(length_layout(p)))})

    @property
    def latency(self):
        """Cycles from the transfer of a word to the first offer of a value it completes (2)."""
        return 2

    def elaborate(self, platform):
        m = Module()
        p = self._params
        g, v, w, h = p.group_size, p.value_width, p.word_width, p.header_width
        buffer_width = p.buffer_width

        buffer = Signal(buffer_width)
        count = Signal(range(buffer_width + 1))
        seen_last = Signal()
        remaining = Signal(p.length_width)
        position = Signal(range(g))
        width = Signal(h + 1)
        error = Signal()

        o_valid = Signal()
        o_value = Signal(v)
        o_last = Signal()
        o_error = Signal()
        m.d.comb += [
            self.o_stream.valid.eq(o_valid),
            self.o_stream.payload.value.eq(o_value),
            self.o_stream.payload.last.eq(o_last),
            self.o_stream.payload.error.eq(o_error),
        ]
        out_free = ~o_valid | self.o_stream.ready
        with m.If(self.o_stream.ready):
            m.d.sync += o_valid.eq(0)

        word_in = self.i_stream.valid & self.i_stream.ready

        # The field at the bottom of the buffer (after the header at a group's start).
        first = position == 0
        header_width_p = (buffer[:h] + 1)[:h + 1] if h else Const(1, 1)
        field_width = Mux(first, header_width_p, width)
        need = Signal(range(h + (1 << h) + 1))
        m.d.comb += need.eq(Mux(first, header_width_p + h, width))
        shifted = Mux(first, buffer >> h, buffer)[:v]
        raw = Signal(v)
        m.d.comb += raw.eq(shifted & _low_mask(field_width, v)[:v])
        if p.signed:
            sign = (Const(1, v) << (field_width - 1).as_unsigned())[:v]
            value = (raw ^ sign) - sign
        else:
            value = raw
        have = count >= need
        header_bad = first & (count >= h) & (header_width_p > v)
        real = remaining != 0
        padding_bad = ~real & (raw != 0)
        # Canonical headers: some field of the group must need all p bits (its two top bits
        # differ, signed; its top bit is set, unsigned), unless p = 1.
        top = raw.bit_select((field_width - 1).as_unsigned(), 1)
        below_top = raw.bit_select((field_width - 2).as_unsigned(), 1)
        field_needs_p = Signal()
        m.d.comb += field_needs_p.eq((field_width < 2) | (top ^ below_top if p.signed else top))
        needs_p_so_far = Signal()   # some earlier field of this group needed all p bits
        last_field = position == g - 1
        not_canonical = last_field & ~field_needs_p & ~(needs_p_so_far & ~first)

        consume = Signal()
        count_after = Signal(range(buffer_width + 1))
        m.d.comb += count_after.eq(Mux(consume, count - need, count))
        buffer_after = Mux(consume, buffer >> need, buffer)
        with m.If(word_in):
            m.d.sync += [buffer.eq(buffer_after | (self.i_stream.payload.word << count_after)),
                         count.eq(count_after + w)]
        with m.Else():
            m.d.sync += [buffer.eq(buffer_after), count.eq(count_after)]
        with m.If(word_in & self.i_stream.payload.last):
            m.d.sync += seen_last.eq(1)

        # Control: a state register; every combinational control signal is one continuous
        # assignment (procedural blocks that never see an input change stay X in Icarus).
        idle, load, run, finish, drain, end = range(6)
        state = Signal(range(6))
        in_state = {name: Signal(name=f"in_{name}") for name in
                    ("idle", "load", "run", "finish", "drain", "end")}
        for code, (name, flag) in enumerate(in_state.items()):
            m.d.comb += flag.eq(state == code)
        fail = Signal()
        m.d.comb += [
            fail.eq(in_state["run"] & (header_bad | (seen_last & ~have)
                                       | (have & (padding_bad | not_canonical)))),
            consume.eq(in_state["run"] & ~fail & have & (out_free | ~real)),
            self.i_length.ready.eq(in_state["idle"]),
            self.i_stream.ready.eq(in_state["load"] | in_state["drain"]
                                   | (in_state["run"] & ~seen_last
                                      & (count_after < p.field_max))),
        ]
        last_word_in = word_in & self.i_stream.payload.last

        with m.Switch(state):
            with m.Case(idle):
                with m.If(self.i_length.valid):
                    m.d.sync += [remaining.eq(self.i_length.payload.length), position.eq(0),
                                 state.eq(load)]
            with m.Case(load):
                with m.If(word_in):
                    with m.If(remaining == 0):
                        m.d.sync += [error.eq(1), state.eq(Mux(last_word_in, end, drain))]
                    with m.Else():
                        m.d.sync += state.eq(run)
            with m.Case(run):
                with m.If(fail):
                    m.d.sync += [error.eq(1),
                                 state.eq(Mux(seen_last | last_word_in, end, drain))]
                with m.Elif(consume):
                    with m.If(real):
                        m.d.sync += [o_valid.eq(1), o_value.eq(value), o_last.eq(0),
                                     o_error.eq(0), remaining.eq(remaining - 1)]
                    with m.If(first):
                        m.d.sync += width.eq(header_width_p)
                    m.d.sync += needs_p_so_far.eq((needs_p_so_far & ~first) | field_needs_p)
                    with m.If(position == g - 1):
                        m.d.sync += position.eq(0)
                        with m.If(remaining == real):
                            m.d.sync += state.eq(finish)
                    with m.Else():
                        m.d.sync += position.eq(position + 1)
            with m.Case(finish):
                with m.If(~seen_last):
                    m.d.sync += [error.eq(1), state.eq(drain)]
                with m.Else():
                    with m.If((count >= w) | (buffer != 0)):
                        m.d.sync += error.eq(1)
                    m.d.sync += state.eq(end)
            with m.Case(drain):
                with m.If(last_word_in):
                    m.d.sync += state.eq(end)
            with m.Case(end):
                with m.If(out_free):
                    m.d.sync += [o_valid.eq(1), o_value.eq(0), o_last.eq(1), o_error.eq(error),
                                 error.eq(0), buffer.eq(0), count.eq(0), seen_last.eq(0),
                                 state.eq(idle)]
        return m


class DPRedLoopback(_Component):
    """A `DPRedEncoder` feeding a `DPRedDecoder`, with a tap on the words between them.

    The compress-decompress round trip as one block: for the cocotb round trip on the emitted
    Verilog, and as a board demonstration. Values go in on ``i_stream`` and, with each tensor's
    length on ``i_length``, come out unchanged on ``o_stream`` followed by the decoder's status
    beat.

    Parameters
    ----------
    As `DPRedEncoder` and `DPRedDecoder` (shared by both).

    Members
    -------
    i_stream : ``In(stream.Signature(value_layout(params)))``
        The encoder's input.
    i_length : ``In(stream.Signature(length_layout(params)))``
        The decoder's lengths, one per tensor.
    o_stream : ``Out(stream.Signature(decoded_layout(params)))``
        The decoder's output.
    tap : ``Out(word_layout(params))``
        The word between the blocks, and ``tap_valid`` : ``Out(1)``, high in every cycle in
        which that word is transferred from encoder to decoder.

    Latency and flow control
    ------------------------
    Those of the two blocks in series; ``latency`` is the sum of theirs (5).
    """

    def __init__(self, *, group_size=16, value_width=16, signed=True, word_width=32,
                 length_width=24):
        super().__init__(group_size=group_size, value_width=value_width, signed=signed,
                         word_width=word_width, length_width=length_width,
                         members=lambda p: {
                             "i_stream": In(stream.Signature(value_layout(p))),
                             "i_length": In(stream.Signature(length_layout(p))),
                             "o_stream": Out(stream.Signature(decoded_layout(p))),
                             "tap": Out(word_layout(p)),
                             "tap_valid": Out(1)})

    @property
    def latency(self):
        """Encoder latency plus decoder latency (5)."""
        return 5

    def elaborate(self, platform):
        m = Module()
        kwargs = dict(group_size=self.group_size, value_width=self.value_width,
                      signed=self.signed, word_width=self.word_width,
                      length_width=self.length_width)
        m.submodules.encoder = encoder = DPRedEncoder(**kwargs)
        m.submodules.decoder = decoder = DPRedDecoder(**kwargs)
        wiring.connect(m, encoder=encoder.o_stream, decoder=decoder.i_stream)
        wiring.connect(m, wiring.flipped(self.i_stream), encoder.i_stream)
        wiring.connect(m, wiring.flipped(self.i_length), decoder.i_length)
        wiring.connect(m, decoder.o_stream, wiring.flipped(self.o_stream))
        m.d.comb += [
            self.tap.eq(encoder.o_stream.payload),
            self.tap_valid.eq(encoder.o_stream.valid & decoder.i_stream.ready),
        ]
        return m
