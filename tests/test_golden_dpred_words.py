"""golden.dpred word layout, traffic model and ``effectual compress``.

* `encode_words` against a slow Python writer of the documented interleaved layout, for every
  word width, both variants, signed and unsigned, 2..32-bit values and group sizes 1..256;
  `word_count` against the writer's length; `scan_words` / `decode_words` round trips.
* Every error of `scan_words` (one-line messages, the values decoded before the error) and of
  `decode_words` (non-canonical streams); parameter errors.
* `tensor_traffic`, `layer_traffic`, `network_traffic` against sizes computed independently
  from the naive group widths; ``effectual compress`` numbers and its one-line errors.
"""

import json
import math
import re

import numpy as np
import pytest

from effectual.cli import main
from golden import dpred
from golden.layers import Layer, save_network


def naive_width(group, signed):
    width = 1
    while not all((-(1 << (width - 1)) <= v < 1 << (width - 1)) if signed
                  else 0 <= v < 1 << width for v in group):
        width += 1
    return width


def reference_words(values, *, value_width, signed, group_size, word_width, zero_skip=False):
    """The word layout written one bit at a time from the module docstring."""
    values = [int(v) for v in np.asarray(values).ravel()]
    values += [0] * (-len(values) % group_size)
    header = 0 if value_width == 1 else math.ceil(math.log2(value_width))
    bits = []

    def put(value, count):
        bits.extend((value >> k) & 1 for k in range(count))

    for start in range(0, len(values), group_size):
        group = values[start:start + group_size]
        width = naive_width(group, signed)
        put(width - 1, header)
        if zero_skip:
            bits.extend(int(v != 0) for v in group)
        for v in group:
            if not zero_skip or v:
                put(v & ((1 << width) - 1), width)
    bits += [0] * (-len(bits) % word_width)
    return [sum(bit << k for k, bit in enumerate(bits[i:i + word_width]))
            for i in range(0, len(bits), word_width)], len(bits)


def random_values(rng, count, value_width, signed):
    low, high = (-(1 << (value_width - 1)), 1 << (value_width - 1)) if signed \
        else (0, 1 << value_width)
    values = rng.integers(low, high, count)
    values >>= rng.integers(0, value_width, count)
    values[rng.random(count) < 0.3] = 0
    return values


@pytest.mark.parametrize("zero_skip", [False, True])
@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("value_width", [2, 3, 8, 12, 16, 32])
def test_words_match_the_documented_layout(value_width, signed, zero_skip):
    rng = np.random.default_rng(value_width * 4 + signed * 2 + zero_skip)
    for group_size, count in [(1, 5), (3, 40), (16, 37), (16, 64), (256, 300)]:
        values = random_values(rng, count, value_width, signed)
        for word_width in dpred.WORD_WIDTHS:
            params = dict(value_width=value_width, signed=signed, group_size=group_size,
                          word_width=word_width, zero_skip=zero_skip)
            words = dpred.encode_words(values, **params)
            want, _ = reference_words(values, **params)
            assert words.dtype == np.uint64 and words.tolist() == want
            assert dpred.word_count(values, **params) == len(want)
            scanned, error = dpred.scan_words(words, count=count, **params)
            assert error is None and scanned.tolist() == values.tolist()
            assert dpred.decode_words(words, shape=values.shape, **params).tolist() \
                == values.tolist()


def test_word_layout_by_hand():
    # group 0: [3, -2] needs 3 bits; group 1: [-8, pad] needs 4 bits; 4-bit headers, 8-bit words
    words = dpred.encode_words([3, -2, -8], value_width=16, signed=True, group_size=2,
                               word_width=8)
    bits = "".join(f"{int(w):08b}"[::-1] for w in words)
    assert bits == ("0100" + "110" + "011" + "1100" + "0001" + "0000" + "000")[:24].ljust(24, "0")
    assert len(words) == 3


def test_axis_grouping_round_trip():
    values = np.arange(-30, 30).reshape(3, 4, 5)
    for axis in (0, 1, 2, None):
        words = dpred.encode_words(values, value_width=8, signed=True, group_size=3, axis=axis)
        rows = np.moveaxis(values, axis, -1).reshape(-1, values.shape[axis]) \
            if axis is not None else values.reshape(1, -1)
        padded = np.concatenate([np.pad(row, (0, -len(row) % 3)) for row in rows])
        want, _ = reference_words(padded, value_width=8, signed=True, group_size=3,
                                  word_width=32)
        assert words.tolist() == want
        assert np.array_equal(dpred.decode_words(words, shape=values.shape, value_width=8,
                                                 signed=True, group_size=3, axis=axis), values)


def test_empty_tensor():
    assert dpred.encode_words(np.zeros(0, dtype=int), value_width=8, signed=True).size == 0
    assert dpred.decode_words([], shape=(0, 3), value_width=8, signed=True).shape == (0, 3)
    with pytest.raises(ValueError, match=r"^DPRed words: too long: an empty tensor has no "
                                         r"words$"):
        dpred.decode_words([1], shape=(0,), value_width=8, signed=True)


def scan(words, count, **params):
    kwargs = dict(value_width=8, signed=True, group_size=4, word_width=8) | params
    return dpred.scan_words(np.array(words, dtype=np.uint64), count=count, **kwargs)


def test_scan_errors_and_prefixes():
    values = np.array([5, -3, 0, 1, 7, 2, -1])
    words = dpred.encode_words(values, value_width=8, signed=True, group_size=4,
                               word_width=8).tolist()
    assert scan(words, 7)[1] is None
    assert scan(words, 0) == (pytest.approx([]), "length 0: a tensor holds at least one value")
    # group 0 = 3 + 4 * 4 bits, group 1 = 3 + 4 * 4 bits: 38 bits in 5 words; with 4 words
    # group 1's header ends at bit 22 and two 4-bit fields fit before bit 32
    got, error = scan(words[:-1], 7)
    assert error == "truncated: group 1 ends after 2 of its 4 fields"
    assert got.tolist() == [5, -3, 0, 1, 7, 2]
    got, error = scan(words[:2], 7)       # 16 bits: group 0's header and three fields
    assert error == "truncated: group 0 ends after 3 of its 4 fields"
    assert got.tolist() == [5, -3, 0]
    got, error = scan(words + [0], 7)
    assert error == f"too long: {len(words) + 1} words, the groups end in word {len(words) - 1}"
    assert got.tolist() == values.tolist()
    got, error = scan(words, 6)
    assert error == "corrupt padding: value 2 of the last group 1 is not zero"
    assert got.tolist() == values[:6].tolist()
    got, error = scan(words, 9)
    assert error == "truncated: group 2 has no header" and got.tolist() == values.tolist() + [0]
    tail = words[:-1] + [words[-1] | 0x80]
    total_bits = dpred.encoded_size(values, value_width=8, signed=True,
                                    group_size=4).compressed_bits
    assert total_bits % 8 and total_bits % 8 < 7
    assert scan(tail, 7)[1] == "corrupt tail: the padding bits of the last word are not zero"
    # value_width 5: 3-bit headers can say p = 6..8
    got, error = scan([0b110], 1, value_width=5, group_size=1)
    assert error == "corrupt header: group 0 has precision 7, more than value_width 5"
    assert got.size == 0


def test_scan_zero_skip_errors():
    values = np.array([0, 3, 0, 0, 0])
    params = dict(value_width=8, signed=True, group_size=4, word_width=16, zero_skip=True)
    words = dpred.encode_words(values, **params).tolist()
    assert scan(words, 5, **params)[1] is None
    assert scan(words, 4, **params)[1] is not None            # a padding slot... all-zero group
    flagged = list(words)
    # group 1's bitmap: bits 3+4+3 .. +4 of the stream; flag its second (padding) slot
    offset = 3 + 4 + 3 + 3 + 1
    flagged[offset // 16] |= 1 << (offset % 16)
    assert scan(flagged, 5, **params)[1].startswith(("corrupt padding", "truncated"))


def test_decode_words_refuses_non_canonical_streams():
    # [1, 2, 3, 0] unsigned needs p = 2; written with header 4 (p = 5) instead
    stream = 0b100 | sum(v << (3 + 5 * i) for i, v in enumerate([1, 2, 3, 0]))
    with pytest.raises(ValueError, match=r"^DPRed words: corrupt header: group 0 has precision "
                                         r"5, but its values need 2 bits$"):
        dpred.decode_words([stream], shape=(4,), value_width=8, signed=False, group_size=4)
    values, error = dpred.scan_words([stream], count=4, value_width=8, signed=False,
                                     group_size=4)
    assert values.tolist() == [1, 2, 3] and error.startswith("corrupt header")
    # zero skipping: [0, 3, 0, 0] with the zero in slot 0 flagged and stored as a 2-bit field
    flagged = 0b001 | (0b0011 << 3) | (0 << 7) | (3 << 9)
    with pytest.raises(ValueError, match=r"^DPRed words: corrupt bitmap: a zero value is "
                                         r"flagged non-zero$"):
        dpred.decode_words([flagged], shape=(4,), value_width=8, signed=False, group_size=4,
                           zero_skip=True)
    good = 0b001 | (0b0010 << 3) | (3 << 7)
    assert dpred.encode_words([0, 3, 0, 0], value_width=8, signed=False, group_size=4,
                              zero_skip=True).tolist() == [good]
    with pytest.raises(ValueError, match=r"^DPRed words: truncated: group 0 has no header$"):
        dpred.decode_words([], shape=(4,), value_width=8, signed=False, group_size=4)
    with pytest.raises(ValueError, match=r"^DPRed words: corrupt padding: group 1 has a "
                                         r"non-zero padding value$"):
        # rows [1, 2, 3] and [4, 5, 6] in groups of 2: the padding slot after 3 holds 9
        bad = dpred.encode_words(np.array([1, 2, 3, 9, 4, 5, 6, 0]), value_width=8,
                                 signed=False, group_size=2)
        dpred.decode_words(bad, shape=(2, 3), value_width=8, signed=False, group_size=2, axis=1)


def test_scan_detects_every_over_wide_header():
    """Every group of two 3-bit values with every header: error iff the header is not minimal."""
    for signed in (True, False):
        alphabet = range(-4, 4) if signed else range(8)
        for a in alphabet:
            for b in alphabet:
                minimal = naive_width([a, b], signed)
                for width in range(1, 4):
                    fits = all((-(1 << (width - 1)) <= v < 1 << (width - 1)) if signed
                               else v < 1 << width for v in (a, b))
                    if not fits:
                        continue
                    stream = (width - 1) | ((a & ((1 << width) - 1)) << 2) \
                        | ((b & ((1 << width) - 1)) << (2 + width))
                    values, error = dpred.scan_words([stream], count=2, value_width=3,
                                                     signed=signed, group_size=2, word_width=8)
                    if width == minimal:
                        assert error is None and values.tolist() == [a, b]
                    else:
                        assert error == (f"corrupt header: group 0 has precision {width}, but "
                                         f"its values need {minimal} bits")
                        assert values.tolist() == [a]


@pytest.mark.parametrize("function", ["encode_words", "word_count", "scan_words"])
def test_parameter_errors(function):
    kwargs = dict(value_width=8, signed=True)
    call = getattr(dpred, function)
    first = [1, 2] if function != "scan_words" else [0]
    extra = {"count": 2} if function == "scan_words" else {}
    for name, value, kind, text in [
            ("word_width", 24, ValueError, "word_width must be one of 8, 16, 32, 64, not 24"),
            ("word_width", "32", TypeError, "word_width must be one of 8, 16, 32, 64, not '32'"),
            ("group_size", 0, ValueError, "group_size must be an integer from 1 to 256, not 0")]:
        with pytest.raises(kind, match="^" + re.escape(text) + "$"):
            call(first, **kwargs, **extra, **{name: value})
    if function == "scan_words":
        with pytest.raises(ValueError, match=r"^count must be a non-negative integer, not -1$"):
            call(first, count=-1, **kwargs)
        with pytest.raises(TypeError, match=r"^count must be a non-negative integer, not 1\.5$"):
            call(first, count=1.5, **kwargs)
        with pytest.raises(ValueError, match=r"^words must fit 8 bits$"):
            call([256], count=1, word_width=8, **kwargs)
        with pytest.raises(TypeError, match=r"^words must be a one-dimensional integer array$"):
            call([[1]], count=1, **kwargs)


# --- traffic --------------------------------------------------------------------------------

def naive_bytes(values, value_width, signed, group_size, word_width, zero_skip):
    _, bits = reference_words(values, value_width=value_width, signed=signed,
                              group_size=group_size, word_width=word_width, zero_skip=zero_skip)
    return bits // 8


def test_tensor_traffic_against_naive_sizes():
    rng = np.random.default_rng(3)
    for signed in (True, False):
        values = random_values(rng, 200, 8, signed)
        values[:120] = 0
        for group_size in (16, 64):
            traffic = dpred.tensor_traffic(values, value_width=8, signed=signed,
                                           group_size=group_size, word_width=32)
            plain = naive_bytes(values, 8, signed, group_size, 32, False)
            bitmap = naive_bytes(values, 8, signed, group_size, 32, True)
            assert (traffic["plain_bytes"], traffic["bitmap_bytes"]) == (plain, bitmap)
            assert traffic["uncompressed_bytes"] == 200
            assert traffic["compressed_bytes"] == min(plain, bitmap)
            assert traffic["variant"] == ("bitmap" if bitmap < plain else "plain")
            assert traffic["ratio"] == min(plain, bitmap) / 200
            for variant, size in (("plain", plain), ("bitmap", bitmap)):
                forced = dpred.tensor_traffic(values, value_width=8, signed=signed,
                                              group_size=group_size, variant=variant)
                assert forced["compressed_bytes"] == size and forced["variant"] == variant
    with pytest.raises(ValueError, match=r"^variant must be one of plain, bitmap, best, not "
                                         r"'zip'$"):
        dpred.tensor_traffic([1], value_width=8, signed=True, variant="zip")


def small_layers():
    rng = np.random.default_rng(5)
    conv = Layer(kind="conv", name="conv1", padding=(1, 1, 1, 1),
                 weights=rng.integers(-128, 128, size=(4, 3, 3, 3)) >> 3,
                 activations=np.maximum(rng.integers(-255, 256, size=(3, 6, 6)), 0),
                 weight_bits=8, act_bits=8, act_signed=False)
    conv2 = Layer(kind="conv", name="conv2", weights=rng.integers(-128, 128, size=(5, 4, 1, 1)),
                  activations=np.maximum(rng.integers(-100, 100, size=(4, 6, 6)), 0),
                  weight_bits=8, act_bits=8, act_signed=False)
    fc = Layer(kind="fc", name="fc", weights=rng.integers(-8, 8, size=(2, 5 * 36)),
               activations=rng.integers(0, 9, size=5 * 36), weight_bits=8, act_bits=8,
               act_signed=False)
    return [conv, conv2, fc]


def naive_channel_minor(array, axis):
    """Values in storage order by explicit index loops (conv weights [K,R,S,C], acts [H,W,C])."""
    array = np.asarray(array)
    if array.ndim <= 2:
        return array.ravel().tolist()
    if axis == 1:
        k, c, r, s = array.shape
        return [array[a, d, b, e] for a in range(k) for b in range(r) for e in range(s)
                for d in range(c)]
    c, h, w = array.shape
    return [array[d, y, x] for y in range(h) for x in range(w) for d in range(c)]


def test_layer_traffic_against_naive_sizes():
    conv, conv2, fc = small_layers()
    for layer, outputs in ((conv, conv2.activations), (fc, None)):
        traffic = dpred.layer_traffic(layer, group_size=16, word_width=16, outputs=outputs)
        weights = naive_channel_minor(layer.weights, 1)
        acts = naive_channel_minor(layer.activations, 0)
        for part, values, bits, signed in (("weights", weights, 8, True),
                                           ("activations", acts, 8, False)):
            plain = naive_bytes(values, bits, signed, 16, 16, False)
            bitmap = naive_bytes(values, bits, signed, 16, 16, True)
            assert traffic[part]["compressed_bytes"] == min(plain, bitmap)
            assert traffic[part]["uncompressed_bytes"] == len(values)
        out = traffic["outputs"]
        assert out["uncompressed_bytes"] == math.prod(layer.output_shape)
        if outputs is None:
            assert out["compressed_bytes"] is None
            known = traffic["weights"]["compressed_bytes"] \
                + traffic["activations"]["compressed_bytes"] + out["uncompressed_bytes"]
        else:
            values = naive_channel_minor(outputs, 0)
            assert out["compressed_bytes"] == min(naive_bytes(values, 8, False, 16, 16, z)
                                                  for z in (False, True))
            known = sum(traffic[p]["compressed_bytes"] for p in ("weights", "activations",
                                                                 "outputs"))
        assert traffic["total"]["compressed_bytes"] == known
    # outputs stored with the next layer's width and signedness
    signed_out = np.arange(-72, 72).reshape(4, 6, 6)
    traffic = dpred.layer_traffic(conv, outputs=signed_out, output_bits=16, output_signed=True)
    values = naive_channel_minor(signed_out, 0)
    assert traffic["outputs"]["uncompressed_bytes"] == 2 * 144
    assert traffic["outputs"]["compressed_bytes"] == min(
        naive_bytes(values, 16, True, 16, 32, z) for z in (False, True))
    with pytest.raises(ValueError, match=r"^values must fit 8-bit unsigned"):
        dpred.layer_traffic(conv, outputs=signed_out)
    with pytest.raises(ValueError, match=r"^outputs must have the layer's output shape "
                                         r"\(4, 6, 6\), not \(3,\)$"):
        dpred.layer_traffic(conv, outputs=np.zeros(3, dtype=int))


@pytest.fixture
def network(tmp_path):
    layers = small_layers()
    rng = np.random.default_rng(9)
    second = [Layer(**{**layer.__dict__, "activations": rng.permutation(
        layer.activations.ravel()).reshape(layer.activations.shape)}) for layer in layers]
    save_network(tmp_path / "net", zip(layers, second), name="tiny")
    return tmp_path / "net", layers, second


def test_network_traffic(network):
    directory, layers, second = network
    result = dpred.network_traffic(directory, group_size=16, word_width=32)
    assert [(row["layer"], row["image"]) for row in result["layers"]] == [
        ("conv1", 0), ("conv1", 1), ("conv2", 0), ("conv2", 1), ("fc", 0), ("fc", 1)]
    # conv1's output shape (4, 6, 6) is conv2's input: its outputs are conv2's activations
    conv1 = result["layers"][1]
    assert conv1["outputs"]["compressed_bytes"] == dpred.tensor_traffic(
        dpred.channel_minor(second[1].activations, channel_axis=0), value_width=8,
        signed=False)["compressed_bytes"]
    assert result["layers"][2]["outputs"]["compressed_bytes"] is None   # (5,6,6) vs fc input
    weights = sum(row["weights"]["compressed_bytes"] for row in result["layers"])
    assert result["total"]["weights"]["compressed_bytes"] == weights
    assert result["total"]["all"]["uncompressed_bytes"] == sum(
        row["total"]["uncompressed_bytes"] for row in result["layers"])


def test_compress_command(network, capsys, tmp_path):
    directory, layers, second = network
    out = tmp_path / "sizes.json"
    assert main(["compress", str(directory), "--images", "all", "--group-size", "16",
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("tiny: DPRed sizes, group size 16, 32-bit words, activations of "
                           "image(s) 0,1\n")
    rows = json.loads(out.read_text())["rows"]
    by_key = {(row["layer"], row["tensor"]): row for row in rows}
    for layer, other in zip(layers, second):
        weights = naive_channel_minor(layer.weights, 1)
        assert by_key[(layer.name, "weights")]["best_bytes"] == min(
            naive_bytes(weights, 8, True, 16, 32, z) for z in (False, True))
        acts = sum(min(naive_bytes(naive_channel_minor(x.activations, 0), 8, False, 16, 32, z)
                       for z in (False, True)) for x in (layer, other))
        assert by_key[(layer.name, "activations")]["best_bytes"] == acts
    total = by_key[("TOTAL", "both")]
    assert total["best_bytes"] == sum(row["best_bytes"] for row in rows
                                      if row["layer"] != "TOTAL")
    assert f"{total['best_bytes']:,}" in text.splitlines()[-1]
    assert main(["compress", str(directory / "image000" / "000_conv1.npz")]) == 0
    assert capsys.readouterr().out.count("\n") == 5


@pytest.mark.parametrize("args,message", [
    (["--group-size", "0"], "--group-size must be from 1 to 256, not 0"),
    (["--word-width", "24"], "--word-width must be one of 8, 16, 32, 64, not 24"),
    (["--images", "7"], "--images: image 7 does not exist (the network has 2 images: 0..1)"),
    (["--images", "x"], "--images must be 'all', an index or a comma-separated list of "
                        "indices, not 'x'"),
])
def test_compress_errors(network, capsys, args, message):
    directory, _, _ = network
    assert main(["compress", str(directory)] + args) == 2
    assert capsys.readouterr().err == f"effectual compress: error: {message}\n"


def test_compress_bad_paths(tmp_path, capsys):
    assert main(["compress", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err == (f"effectual compress: error: {tmp_path / 'missing'}: "
                                       f"no such file or directory\n")
    assert main(["compress", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (f"effectual compress: error: {tmp_path}: not a network "
                                       f"directory (no network.json)\n")


# --- cycle models (checked against the RTL in tests/test_dpred.py) --------------------------

def test_cycle_models_steady_state_and_errors():
    values = np.arange(-20, 20)
    kwargs = dict(value_width=8, signed=True, group_size=4, word_width=32)
    inputs, outputs = dpred.encoder_cycles(values, **kwargs)
    # a field (3 + at most 8 bits) always fits a 32-bit word: one value per cycle from cycle 0
    assert inputs.tolist() == list(range(40))
    assert len(outputs) == dpred.word_count(values, **kwargs)
    assert np.all(np.diff(outputs) >= 1)
    words, beats = dpred.decoder_cycles(values, **kwargs)
    assert len(words) == len(outputs) and len(beats) == 41
    assert np.all(np.diff(beats[:-1]) == 1)
    for function in (dpred.encoder_cycles, dpred.decoder_cycles):
        with pytest.raises(ValueError, match=r"^value_width must be an integer from 2 to 32, "
                                             r"not 1$"):
            function([0], value_width=1, signed=False)
        with pytest.raises(ValueError, match=r"^values must hold at least one value$"):
            function(np.zeros(0, dtype=int), value_width=8, signed=True)
        with pytest.raises(ValueError, match=r"^word_width must be one of 8, 16, 32, 64, "
                                             r"not 12$"):
            function([1], value_width=8, signed=True, word_width=12)
