"""golden.layers: exact layer output vs naive loops and onnxruntime, file format, validation."""

import json
import re
import zipfile

import numpy as np
import pytest

from golden import layers as gl
from golden.layers import (Layer, layer_output, layer_patches, layer_weight_matrix, load_layer,
                           load_manifest, load_network, save_layer, save_network)


# ------------------------------------------------------------------------ naive reference

def naive_conv(weights, acts, stride, padding, groups, zero_point=0):
    """Python-int loops over every output and every product; also returns the product count."""
    k_count, cg, r_count, s_count = weights.shape
    c_count, h, w = acts.shape
    top, bottom, left, right = padding
    oh = (h + top + bottom - r_count) // stride[0] + 1
    ow = (w + left + right - s_count) // stride[1] + 1
    kg = k_count // groups
    out = np.zeros((k_count, oh, ow), dtype=object)
    products = 0
    for k in range(k_count):
        g = k // kg
        for y in range(oh):
            for x in range(ow):
                total = 0
                for c in range(cg):
                    for r in range(r_count):
                        for s in range(s_count):
                            products += 1
                            iy, ix = y * stride[0] + r - top, x * stride[1] + s - left
                            if 0 <= iy < h and 0 <= ix < w:
                                total += int(weights[k, c, r, s]) * \
                                    (int(acts[g * cg + c, iy, ix]) - zero_point)
                out[k, y, x] = total
    return out, products


def naive_fc(weights, acts, zero_point=0):
    out = [sum(int(w) * (int(a) - zero_point) for w, a in zip(row, acts)) for row in weights]
    return np.array(out, dtype=object), weights.size


def random_layer(rng, *, c, k, groups, h, w, r, s, stride=(1, 1), padding=(0, 0, 0, 0),
                 weight_bits=8, act_bits=8, act_signed=False, zero_point=0, **extra):
    wlow, whigh = -(1 << (weight_bits - 1)), (1 << (weight_bits - 1)) - 1
    alow, ahigh = ((-(1 << (act_bits - 1)), (1 << (act_bits - 1)) - 1) if act_signed
                   else (0, (1 << act_bits) - 1))
    weights = rng.integers(wlow, whigh, size=(k, c // groups, r, s), endpoint=True)
    acts = rng.integers(alow, ahigh, size=(c, h, w), endpoint=True)
    # include exact extremes so the range edges are exercised
    weights.flat[0], acts.flat[0] = wlow, alow
    weights.flat[-1], acts.flat[-1] = whigh, ahigh
    return Layer(kind="conv", weights=weights, activations=acts, stride=stride, padding=padding,
                 groups=groups, weight_bits=weight_bits, act_bits=act_bits,
                 act_signed=act_signed, act_zero_point=zero_point, name="l", **extra)


CONV_CASES = {
    "plain": dict(c=3, k=4, groups=1, h=6, w=5, r=3, s=3),
    "stride2-asym-pad": dict(c=3, k=5, groups=1, h=7, w=8, r=3, s=3, stride=(2, 2),
                             padding=(0, 2, 1, 0)),
    "stride-hv": dict(c=2, k=3, groups=1, h=9, w=7, r=2, s=3, stride=(3, 2),
                      padding=(1, 0, 2, 1)),
    "depthwise": dict(c=6, k=6, groups=6, h=6, w=6, r=3, s=3, stride=(2, 2),
                      padding=(1, 1, 1, 1)),
    "depthwise-mult2": dict(c=4, k=8, groups=4, h=5, w=5, r=3, s=3, padding=(1, 1, 0, 2)),
    "grouped": dict(c=6, k=4, groups=2, h=5, w=6, r=3, s=1, padding=(2, 0, 0, 0)),
    "1x1": dict(c=5, k=7, groups=1, h=4, w=3, r=1, s=1),
    "kernel-covers-input": dict(c=2, k=3, groups=1, h=3, w=4, r=3, s=4),
    "big-pad": dict(c=1, k=2, groups=1, h=2, w=2, r=3, s=3, padding=(3, 3, 2, 4)),
    "signed-acts": dict(c=4, k=4, groups=2, h=5, w=5, r=3, s=3, act_signed=True,
                        padding=(1, 1, 1, 1)),
    "16bit": dict(c=3, k=3, groups=1, h=5, w=5, r=3, s=3, weight_bits=16, act_bits=16,
                  act_signed=True, padding=(1, 1, 1, 1)),
    "zero-point": dict(c=3, k=2, groups=1, h=5, w=4, r=3, s=2, padding=(1, 2, 0, 1),
                       zero_point=37),
    # products up to 2**46 * 72 terms > 2**53: exercises the int64 (non-float) path
    "24bit-int64-path": dict(c=8, k=2, groups=1, h=3, w=3, r=3, s=3, weight_bits=24,
                             act_bits=24, act_signed=True, padding=(1, 1, 1, 1)),
}


@pytest.mark.parametrize("case", list(CONV_CASES))
def test_conv_output_matches_naive_loops(case):
    rng = np.random.default_rng(list(CONV_CASES).index(case))
    layer = random_layer(rng, **CONV_CASES[case])
    expected, products = naive_conv(layer.weights, layer.activations, layer.stride,
                                    layer.padding, layer.groups, layer.act_zero_point)
    out = layer_output(layer)
    assert out.dtype == np.int64
    assert out.shape == expected.shape == layer.output_shape
    assert [int(v) for v in out.flat] == list(expected.flat)
    assert layer.macs == products


def test_conv_output_chunked(monkeypatch):
    """Force many row chunks; the result must not change."""
    rng = np.random.default_rng(7)
    layer = random_layer(rng, **CONV_CASES["stride2-asym-pad"])
    expected = layer_output(layer)
    monkeypatch.setattr(gl, "_CHUNK_ELEMENTS", 1)
    assert np.array_equal(layer_output(layer), expected)
    expected_naive, _ = naive_conv(layer.weights, layer.activations, layer.stride,
                                   layer.padding, layer.groups)
    assert [int(v) for v in expected.flat] == list(expected_naive.flat)


@pytest.mark.parametrize("bits,signed,zero_point", [(8, False, 0), (8, True, 0), (16, True, 0),
                                                   (24, True, 0), (8, False, 100)])
def test_fc_output_matches_naive(bits, signed, zero_point):
    rng = np.random.default_rng(bits)
    high = (1 << (bits - 1)) - 1
    weights = rng.integers(-high - 1, high, size=(9, 300), endpoint=True)
    acts = rng.integers(-high - 1 if signed else 0, high if signed else 2 * high + 1,
                        size=300, endpoint=True)
    layer = Layer(kind="fc", weights=weights, activations=acts, weight_bits=bits, act_bits=bits,
                  act_signed=signed, act_zero_point=zero_point)
    expected, products = naive_fc(weights, acts, zero_point)
    out = layer_output(layer)
    assert out.dtype == np.int64 and out.shape == (9,) == layer.output_shape
    assert [int(v) for v in out] == list(expected)
    assert layer.macs == products


@pytest.mark.parametrize("groups,stride,pads", [(1, (1, 1), (0, 0, 0, 0)),
                                                (2, (2, 1), (1, 0, 0, 2)),
                                                (4, (2, 2), (1, 1, 1, 1))])
def test_conv_output_matches_onnxruntime(groups, stride, pads):
    """onnxruntime's float32 Conv is exact here: every partial sum is < 2**24."""
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(groups)
    c, k, h, w = 4, 8, 9, 8
    weights = rng.integers(-7, 7, size=(k, c // groups, 3, 3), endpoint=True)
    acts = rng.integers(0, 15, size=(c, h, w), endpoint=True)
    node = helper.make_node("Conv", ["x", "w"], ["y"], group=groups, strides=list(stride),
                            pads=[pads[0], pads[2], pads[1], pads[3]])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, c, h, w])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, None)], [numpy_helper.from_array(
                weights.astype(np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = onnxruntime.InferenceSession(model.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    (reference,) = session.run(None, {"x": acts[None].astype(np.float32)})
    layer = Layer(kind="conv", weights=weights, activations=acts, stride=stride, padding=pads,
                  groups=groups)
    assert np.array_equal(layer_output(layer), reference[0].astype(np.int64))
    assert reference[0].shape == layer.output_shape


@pytest.mark.parametrize("case", ["stride2-asym-pad", "depthwise-mult2", "grouped", "zero-point"])
def test_patches_and_weight_matrix(case):
    """Patches hold exactly the documented window values; their product is the layer output."""
    rng = np.random.default_rng(3)
    layer = random_layer(rng, **CONV_CASES[case])
    patches = layer_patches(layer)
    wm = layer_weight_matrix(layer)
    g = layer.groups
    k, oh, ow = layer.output_shape
    cg, (r_count, s_count) = layer.channels_per_group, layer.kernel_size
    assert patches.shape == (g, oh * ow, cg * r_count * s_count)
    assert wm.shape == (g, k // g, cg * r_count * s_count)
    top, _, left, _ = layer.padding
    _, h, w = layer.input_shape
    for gi in range(g):
        for y in range(oh):
            for x in range(ow):
                column = 0
                for c in range(cg):
                    for r in range(r_count):
                        for s in range(s_count):
                            iy = y * layer.stride[0] + r - top
                            ix = x * layer.stride[1] + s - left
                            value = (layer.activations[gi * cg + c, iy, ix]
                                     if 0 <= iy < h and 0 <= ix < w else layer.act_zero_point)
                            assert patches[gi, y * ow + x, column] == value
                            column += 1
        for j in range(k // g):
            assert np.array_equal(wm[gi, j], layer.weights[gi * (k // g) + j].reshape(-1))
    product = np.matmul(patches - layer.act_zero_point, wm.transpose(0, 2, 1))
    assert np.array_equal(product.transpose(0, 2, 1).reshape(k, oh, ow), layer_output(layer))
    rows = layer_patches(layer, rows=slice(1, oh))
    assert np.array_equal(rows, patches[:, ow:])
    assert layer_patches(layer, rows=slice(oh, oh)).shape == (g, 0, patches.shape[2])


def test_patches_fc():
    layer = Layer(kind="fc", weights=np.ones((3, 4), int), activations=np.arange(4))
    assert np.array_equal(layer_patches(layer), np.arange(4).reshape(1, 1, 4))
    assert np.array_equal(layer_weight_matrix(layer), np.ones((1, 3, 4)))


def test_patches_rows_must_be_slice():
    layer = random_layer(np.random.default_rng(0), **CONV_CASES["plain"])
    with pytest.raises(TypeError, match=r"^rows must be a slice, not 3$"):
        layer_patches(layer, rows=3)


# ----------------------------------------------------------------------------- file format

def write_npz(path, **arrays):
    with open(path, "wb") as file:
        np.savez(file, **arrays)
    return path


def valid_arrays():
    return dict(kind=np.array("conv"), weights=np.zeros((4, 3, 3, 3), np.int8),
                activations=np.zeros((3, 5, 5), np.uint8), stride=np.array([1, 1]),
                padding=np.array([1, 1, 1, 1]), groups=np.array(1), weight_bits=np.array(8),
                act_bits=np.array(8), act_signed=np.array(False), weight_scale=np.array(0.1),
                act_scale=np.array(0.2), act_zero_point=np.array(0))


@pytest.mark.parametrize("signed,bits,dtype", [(False, 8, np.uint8), (True, 8, np.int8),
                                               (True, 16, np.int16), (False, 16, np.uint16),
                                               (True, 12, np.int16), (True, 24, np.int32)])
def test_save_load_round_trip(tmp_path, signed, bits, dtype):
    rng = np.random.default_rng(bits)
    layer = random_layer(rng, c=4, k=6, groups=2, h=5, w=6, r=3, s=2, stride=(2, 1),
                         padding=(1, 0, 2, 1), weight_bits=bits, act_bits=bits,
                         act_signed=signed, weight_scale=rng.random(6) + 0.1, act_scale=0.25,
                         extra={"op_type": np.array("Conv")})
    path = tmp_path / "conv.layer"  # exactly this name: no ".npz" appended
    save_layer(path, layer, image=np.int64(3))
    assert path.exists() and not (tmp_path / "conv.layer.npz").exists()
    with np.load(path, allow_pickle=False) as raw:
        assert raw["weights"].dtype == (np.int8 if bits <= 8 else np.int16 if bits <= 16
                                        else np.int32)
        assert raw["activations"].dtype == (dtype if bits != 24 else np.int32)
        assert zipfile.ZipFile(path).testzip() is None
    loaded = load_layer(path)
    for key in ("kind", "name", "stride", "padding", "groups", "weight_bits", "act_bits",
                "act_signed", "act_scale", "act_zero_point"):
        assert getattr(loaded, key) == getattr(layer, key), key
    for key in ("weights", "activations", "weight_scale"):
        assert np.array_equal(getattr(loaded, key), getattr(layer, key)), key
    assert loaded.weights.dtype == loaded.activations.dtype == np.int64
    assert str(loaded.extra["op_type"]) == "Conv" and int(loaded.extra["image"]) == 3
    assert np.array_equal(layer_output(loaded), layer_output(layer))


def test_extra_keys_ignored(tmp_path):
    arrays = valid_arrays()
    arrays["activations"] = np.arange(75, dtype=np.uint8).reshape(3, 5, 5)
    arrays["weights"] = np.ones((4, 3, 3, 3), np.int8)
    plain = load_layer(write_npz(tmp_path / "a.npz", **arrays))
    extra = load_layer(write_npz(tmp_path / "b.npz", **arrays, notes=np.array("hello"),
                                 bias=np.arange(4.0), something=np.zeros((2, 2))))
    assert np.array_equal(layer_output(plain), layer_output(extra))
    assert plain.name == "a" and extra.name == "b"  # name defaults to the file stem
    assert sorted(extra.extra) == ["bias", "notes", "something"]


def test_fc_file(tmp_path):
    arrays = valid_arrays()
    arrays.update(kind=np.array("fc"), weights=np.array([[1, -2, 3]], np.int16),
                  activations=np.array([4, 5, 6], np.int32), padding=np.zeros(4, int),
                  name=np.array("head"))
    layer = load_layer(write_npz(tmp_path / "fc.npz", **arrays))
    assert layer.name == "head" and layer.kind == "fc"
    assert layer_output(layer).tolist() == [1 * 4 - 2 * 5 + 3 * 6]


def error_for(tmp_path, **changes):
    arrays = valid_arrays()
    for key, value in changes.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    path = write_npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError) as info:
        load_layer(path)
    return str(info.value), re.escape(str(path))


@pytest.mark.parametrize("key", gl.REQUIRED_KEYS)
def test_missing_key(tmp_path, key):
    message, path = error_for(tmp_path, **{key: None})
    assert re.fullmatch(rf"{path}: key '{key}' is missing", message)


INVALID = {
    "float weights": (dict(weights=np.zeros((4, 3, 3, 3), np.float32)),
                      "weights", r"must hold integers, not dtype float32"),
    "bool activations": (dict(activations=np.zeros((3, 5, 5), bool)),
                         "activations", r"must hold integers, not dtype bool"),
    "float activations": (dict(activations=np.zeros((3, 5, 5))),
                          "activations", r"must hold integers, not dtype float64"),
    "weights rank": (dict(weights=np.zeros((4, 27), np.int8)), "weights",
                     r"must have rank 4 \[K, C/groups, R, S\] for conv, not shape \(4, 27\)"),
    "activations rank": (dict(activations=np.zeros((3, 25), np.int8)), "activations",
                         r"must have rank 3 \[C, H, W\] for conv, not shape \(3, 25\)"),
    "fc rank": (dict(kind=np.array("fc"), padding=np.zeros(4, int)), "weights",
                r"must have rank 2 \[K, C\] for fc, not shape \(4, 3, 3, 3\)"),
    "empty": (dict(activations=np.zeros((3, 0, 5), np.uint8)), "activations",
              r"must not be empty, not shape \(3, 0, 5\)"),
    "channels vs groups": (dict(groups=np.array(3)), "groups",
                           r"does not match the channels: activations have C=3, weights have "
                           r"C/groups=3, groups=3"),
    "channel mismatch": (dict(activations=np.zeros((4, 5, 5), np.uint8)), "groups",
                         r"does not match the channels: activations have C=4, weights have "
                         r"C/groups=3, groups=1"),
    "groups divide K": (dict(weights=np.zeros((4, 1, 3, 3), np.int8), groups=np.array(3)),
                        "groups", r"must divide the K=4 output channels, not 3"),
    "groups zero": (dict(groups=np.array(0)), "groups", r"must be an integer in >= 1, not 0"),
    "weight out of range": (dict(weights=np.full((4, 3, 3, 3), 128, np.int16)), "weights",
                            r"holds values 128..128 outside the 8-bit signed range -128..127"),
    "act negative unsigned": (dict(activations=np.full((3, 5, 5), -1, np.int16)),
                              "activations", r"holds values -1..-1 outside the 8-bit unsigned "
                                             r"range 0..255"),
    "act 256 unsigned": (dict(activations=np.full((3, 5, 5), 256, np.uint16)), "activations",
                         r"holds values 256..256 outside the 8-bit unsigned range 0..255"),
    "act signed range": (dict(activations=np.full((3, 5, 5), 200, np.int16),
                              act_signed=np.array(True)), "activations",
                         r"holds values 200..200 outside the 8-bit signed range -128..127"),
    "kind": (dict(kind=np.array("pool")), "kind", r"must be 'conv' or 'fc', not 'pool'"),
    "kind not string": (dict(kind=np.array(1)), "kind",
                        r"must be a single string, not dtype int64 shape \(\)"),
    "stride shape": (dict(stride=np.array([1, 1, 1])), "stride",
                     r"must hold 2 integers, not shape \(3,\)"),
    "stride zero": (dict(stride=np.array([0, 1])), "stride", r"values must be >= 1, not \[0, 1\]"),
    "stride float": (dict(stride=np.array([1.0, 1.0])), "stride",
                     r"must hold integers, not dtype float64"),
    "padding negative": (dict(padding=np.array([1, -1, 0, 0])), "padding",
                         r"values must be >= 0, not \[1, -1, 0, 0\]"),
    "padding shape": (dict(padding=np.array([1, 1])), "padding",
                      r"must hold 4 integers, not shape \(2,\)"),
    "weight_bits": (dict(weight_bits=np.array(1)), "weight_bits",
                    r"must be an integer in 2..32, not 1"),
    "act_bits": (dict(act_bits=np.array(33)), "act_bits", r"must be an integer in 1..32, not 33"),
    "act_bits float": (dict(act_bits=np.array(8.0)), "act_bits",
                       r"must hold integers, not dtype float64"),
    "act_signed": (dict(act_signed=np.array(2)), "act_signed",
                   r"must be a boolean \(or 0/1\), not array\(2\)"),
    "weight_scale shape": (dict(weight_scale=np.ones(3)), "weight_scale",
                           r"must have shape \(\) or \(4,\), not \(3,\)"),
    "weight_scale negative": (dict(weight_scale=np.array([1.0, -1.0, 1.0, 1.0])),
                              "weight_scale", r"must be finite and positive"),
    "act_scale nan": (dict(act_scale=np.array(np.nan)), "act_scale",
                      r"must be finite and positive"),
    "act_scale string": (dict(act_scale=np.array("x")), "act_scale",
                         r"must hold real numbers, not dtype <U1"),
    "zero point range": (dict(act_zero_point=np.array(256)), "act_zero_point",
                         r"must be an integer in 0..255, not 256"),
    "kernel too big": (dict(padding=np.zeros(4, int), activations=np.zeros((3, 2, 5), np.uint8)),
                       "weights", r"kernel \(3, 3\) is larger than the padded input \(2, 5\) \+ "
                                  r"padding \(0, 0, 0, 0\)"),
    "fc stride": (dict(kind=np.array("fc"), weights=np.zeros((2, 3), np.int8),
                       activations=np.zeros(3, np.uint8), stride=np.array([2, 1]),
                       padding=np.zeros(4, int)), "stride",
                  r"must be \(1, 1\) for fc, not \(2, 1\)"),
    "fc padding": (dict(kind=np.array("fc"), weights=np.zeros((2, 3), np.int8),
                        activations=np.zeros(3, np.uint8)), "padding",
                   r"must be \(0, 0, 0, 0\) for fc, not \(1, 1, 1, 1\)"),
    "overflow": (dict(weight_bits=np.array(32), act_bits=np.array(32)), "weight_bits",
                 r"32 with act_bits 32 and a reduction of 27 could overflow the int64 "
                 r"accumulator"),
    "name": (dict(name=np.array(3)), "name",
             r"must be a single string, not dtype int64 shape \(\)"),
}


@pytest.mark.parametrize("case", list(INVALID))
def test_invalid_value(tmp_path, case):
    changes, key, pattern = INVALID[case]
    message, path = error_for(tmp_path, **changes)
    assert re.fullmatch(rf"{path}: key '{key}' {pattern}", message), message


def test_pickled_key(tmp_path):
    arrays = valid_arrays()
    path = tmp_path / "pickle.npz"
    with open(path, "wb") as file:
        np.savez(file, **arrays, junk=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: key 'junk' holds Python "
                                         r"objects \(pickled data\), which layer files may not "
                                         r"contain$"):
        load_layer(path)


def test_not_npz_files(tmp_path):
    text = tmp_path / "text.npz"
    text.write_text("hello")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(text))}: not an \.npz layer file$"):
        load_layer(text)
    npy = tmp_path / "array.npz"
    with open(npy, "wb") as file:
        np.save(file, np.zeros(3))
    with pytest.raises(ValueError, match=rf"^{re.escape(str(npy))}: not an \.npz layer file$"):
        load_layer(npy)
    good = write_npz(tmp_path / "good.npz", **valid_arrays())
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ValueError, match=rf"^{re.escape(str(truncated))}: corrupt layer file "):
        load_layer(truncated)
    # flip bytes inside a compressed member: CRC or zlib failure, never garbage values
    compressed = tmp_path / "compressed.npz"
    with open(compressed, "wb") as file:
        np.savez_compressed(file, **valid_arrays())
    data = bytearray(compressed.read_bytes())
    with zipfile.ZipFile(compressed) as archive:
        info = archive.getinfo("weights.npy")
    local = info.header_offset  # the local header's name/extra lengths locate the data
    name_length, extra_length = np.frombuffer(bytes(data[local + 26:local + 30]), "<u2")
    start = local + 30 + int(name_length) + int(extra_length) + 2
    data[start:start + 8] = bytes(255 - b for b in data[start:start + 8])
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"^{re.escape(str(corrupt))}: corrupt layer file "):
        load_layer(corrupt)
    with pytest.raises(FileNotFoundError):
        load_layer(tmp_path / "missing.npz")


def test_layer_constructor_errors():
    with pytest.raises(ValueError, match=r"^layer 'x': key 'weights' must hold integers, not "
                                         r"dtype float64$"):
        Layer(kind="fc", name="x", weights=np.zeros((2, 3)), activations=np.zeros(3, int))
    with pytest.raises(ValueError, match=r"^layer 'x': key 'extra' must be a dict, not list$"):
        Layer(kind="fc", name="x", weights=np.zeros((2, 3), int),
              activations=np.zeros(3, int), extra=[])
    with pytest.raises(ValueError, match=r"^layer 'x': key 'weights' cannot be an extra key "
                                         r"\(it is a layer field\)$"):
        Layer(kind="fc", name="x", weights=np.zeros((2, 3), int),
              activations=np.zeros(3, int), extra={"weights": np.zeros(1)})


# ------------------------------------------------------------------------ network directory

def network_layers(rng, images):
    """Two layers (conv, fc), the same weights for every image, different activations."""
    conv_w = rng.integers(-128, 127, size=(4, 3, 3, 3))
    fc_w = rng.integers(-128, 127, size=(5, 16))
    conv = [Layer(kind="conv", name="conv/1", weights=conv_w, padding=(1, 1, 1, 1),
                  stride=(2, 2), activations=rng.integers(0, 255, size=(3, 4, 4)),
                  extra={"op_type": np.array("Conv")}) for _ in range(images)]
    fc = [Layer(kind="fc", name="fc", weights=fc_w, activations=rng.integers(0, 255, size=16))
          for _ in range(images)]
    return [conv, fc]


IMAGES = [{"name": "a", "source": "a.png"}, {"name": "b", "source": "b.npy"}]


def test_network_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    expected = network_layers(rng, 2)
    manifest = save_network(tmp_path / "net", (layer for layer in expected), name="n",
                            source="s", bits=8, per_channel=True, images=IMAGES,
                            extra={"accuracy": 0.5})
    on_disk = json.loads((tmp_path / "net" / "network.json").read_text())
    assert on_disk == manifest == load_manifest(tmp_path / "net")
    assert manifest["images"] == [{"name": "a", "source": "a.png", "index": 0, "dir": "image000"},
                                  {"name": "b", "source": "b.npy", "index": 1, "dir": "image001"}]
    entries = manifest["layers"]
    assert [e["name"] for e in entries] == ["conv/1", "fc"]
    assert entries[0]["files"] == ["image000/000_conv_1.npz", "image001/000_conv_1.npz"]
    assert entries[1]["files"] == ["image000/001_fc.npz", "image001/001_fc.npz"]
    assert entries[0]["op_type"] == "Conv" and entries[1]["op_type"] == ""
    assert entries[0]["output_shape"] == [4, 2, 2] and entries[1]["output_shape"] == [5]
    assert entries[0]["macs"] == 4 * 2 * 2 * 3 * 3 * 3 and entries[1]["macs"] == 5 * 16
    assert manifest["macs"] == 4 * 2 * 2 * 27 + 80
    assert manifest["extra"] == {"accuracy": 0.5} and manifest["per_channel"] is True
    loaded_manifest, iterator = load_network(tmp_path / "net")
    assert loaded_manifest == manifest
    seen = [(entry["index"], image, layer) for entry, image, layer in iterator]
    assert [(i, j) for i, j, _ in seen] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    for i, j, layer in seen:
        assert np.array_equal(layer.activations, expected[i][j].activations)
        assert np.array_equal(layer.weights, expected[i][j].weights)
        assert int(layer.extra["image"]) == j and int(layer.extra["layer_index"]) == i
    _, only = load_network(tmp_path / "net", images=1)
    assert [(e["index"], j) for e, j, _ in only] == [(0, 1), (1, 1)]
    with pytest.raises(ValueError, match=r"^images must be indices in 0\.\.1, not 2$"):
        load_network(tmp_path / "net", images=[2])


def test_network_replaces_previous_and_refuses_foreign_dir(tmp_path):
    rng = np.random.default_rng(1)
    directory = tmp_path / "net"
    save_network(directory, network_layers(rng, 2), name="n", source="s", bits=8,
                 per_channel=False, images=IMAGES)
    save_network(directory, network_layers(rng, 1)[:1], name="n", source="s", bits=8,
                 per_channel=False, images=IMAGES[:1])
    files = sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())
    assert files == ["image000/000_conv_1.npz", "network.json"]
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("x")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(foreign))}: is not empty and holds "
                                         r"no network.json; refusing to write a network there$"):
        save_network(foreign, network_layers(rng, 1), name="n", source="s", bits=8,
                     per_channel=False, images=IMAGES[:1])
    assert (foreign / "keep.txt").exists()


def test_network_errors(tmp_path):
    rng = np.random.default_rng(2)
    layers = network_layers(rng, 2)
    other = Layer(kind="fc", name="fc", weights=layers[1][0].weights + 1,
                  activations=layers[1][1].activations)
    with pytest.raises(ValueError, match=r"^layer 1 \('fc'\): the images disagree on the "
                                         r"layer's name, weights or parameters$"):
        save_network(tmp_path / "a", [layers[0], [layers[1][0], other]], name="n", source="s",
                     bits=8, per_channel=False, images=IMAGES)
    with pytest.raises(ValueError, match=r"^layer 0: 1 images given, the network has 2$"):
        save_network(tmp_path / "b", [layers[0][:1]], name="n", source="s", bits=8,
                     per_channel=False, images=IMAGES)
    with pytest.raises(ValueError, match=r"a network needs at least one layer$"):
        save_network(tmp_path / "c", [], name="n", source="s", bits=8, per_channel=False,
                     images=IMAGES)


def test_manifest_errors(tmp_path):
    rng = np.random.default_rng(3)
    directory = tmp_path / "net"
    manifest = save_network(directory, network_layers(rng, 2), name="n", source="s", bits=8,
                            per_channel=False, images=IMAGES)
    path = re.escape(str(directory / "network.json"))

    def broken(change, pattern):
        data = json.loads(json.dumps(manifest))
        change(data)
        (directory / "network.json").write_text(json.dumps(data))
        with pytest.raises(ValueError, match=rf"^{path}: {pattern}$"):
            list(load_network(directory)[1])

    broken(lambda m: m.pop("layers"), r"key 'layers' is missing")
    broken(lambda m: m.update(format="x"), r"key 'format' must be 'effectual-network', not 'x'")
    broken(lambda m: m.update(version=9), r"key 'version' 9 is not supported \(this reader "
                                          r"knows version 1\)")
    broken(lambda m: m["layers"][1].pop("macs"), r"key 'layers'\[1\]\.macs is missing")
    broken(lambda m: m["layers"][1].pop("output_shape"),
           r"key 'layers'\[1\]\.output_shape is missing")
    broken(lambda m: m["layers"][1].update(macs="80"),
           r"key 'layers'\[1\]\.macs must be a positive integer, not '80'")
    broken(lambda m: m["layers"][0].update(macs=0),
           r"key 'layers'\[0\]\.macs must be a positive integer, not 0")
    broken(lambda m: m["layers"][0].update(output_shape=[4, 2.0, 2]),
           r"key 'layers'\[0\]\.output_shape must be a list of positive integers, not "
           r"\[4, 2\.0, 2\]")
    # values that disagree with the layer files (the layers' own figures: 5*16 MACs for the
    # fc, [4, 2, 2] outputs for the 3x3 stride-2 conv over a padded 4x4 input)
    broken(lambda m: m["layers"][1].update(macs=999),
           r"key 'layers'\[1\]\.macs is 999 but the layer in image000/001_fc\.npz has 80")
    broken(lambda m: m["layers"][0].update(output_shape=[4, 3, 3]),
           r"key 'layers'\[0\]\.output_shape is \[4, 3, 3\] but the layer in "
           r"image000/000_conv_1\.npz has \[4, 2, 2\]")
    broken(lambda m: m["layers"][0]["files"].pop(), r"key 'layers'\[0\]\.files must list one "
                                                    r"file per image \(2\)")
    broken(lambda m: m["layers"][0]["files"].__setitem__(0, "../x.npz"),
           r"key 'layers'\[0\]\.files holds '\.\./x\.npz', which is not a relative path inside "
           r"the directory")
    (directory / "network.json").write_text("{not json")
    with pytest.raises(ValueError, match=rf"^{path}: not valid JSON "):
        load_manifest(directory)
    # a layer file that disagrees with its manifest entry
    data = json.loads(json.dumps(manifest))
    data["layers"][1]["weights_shape"] = [5, 17]
    (directory / "network.json").write_text(json.dumps(data))
    bad = re.escape(str(directory / "image000" / "001_fc.npz"))
    with pytest.raises(ValueError, match=rf"^{bad}: key 'weights' is \[5, 16\] but network.json "
                                         r"lists \[5, 17\]$"):
        list(load_network(directory)[1])


def test_save_network_of_hand_made_layers(tmp_path):
    """Bare Layer items are one-image layers; bits, per_channel and images have defaults."""
    rng = np.random.default_rng(4)
    conv = Layer(kind="conv", name="c", weights=rng.integers(-8, 8, size=(2, 3, 1, 1)),
                 activations=rng.integers(0, 16, size=(3, 2, 2)), weight_bits=4, act_bits=5,
                 weight_scale=np.array([0.5, 0.25]),
                 extra={"input_padded_by_op": np.array(True)})
    fc = Layer(kind="fc", name="f", weights=rng.integers(-128, 128, size=(4, 3)),
               activations=rng.integers(-100, 100, size=3), act_signed=True)
    manifest = save_network(tmp_path / "net", [conv, fc], name="hand", source="notebook")
    assert manifest["images"] == [{"name": "image0", "source": "notebook", "index": 0,
                                   "dir": "image000"}]
    assert (manifest["weight_bits"], manifest["act_bits"], manifest["bits"]) == (8, 8, 8)
    assert manifest["per_channel"] is True
    assert [e["input_padded_by_op"] for e in manifest["layers"]] == [True, False]
    assert [e["macs"] for e in manifest["layers"]] == [2 * 3 * 2 * 2, 4 * 3]
    _, items = load_network(tmp_path / "net")
    loaded = [layer for _, _, layer in items]
    assert [(x.weight_bits, x.act_bits) for x in loaded] == [(4, 5), (8, 8)]
    assert np.array_equal(loaded[1].activations, fc.activations)
    only = save_network(tmp_path / "one", (x for x in [fc]), name="f", bits=8)
    assert (only["bits"], only["per_channel"], only["source"]) == (8, False, "")
    # several images without an images list: named image0, image1
    two = save_network(tmp_path / "two", [[fc, fc]], name="f")
    assert [i["name"] for i in two["images"]] == ["image0", "image1"]
    with pytest.raises(TypeError, match=r"^layer 0: items must be golden\.layers\.Layer "
                                        r"objects, not ndarray$"):
        save_network(tmp_path / "bad", [[fc.weights]], name="f")


def _docstring_example(function):
    """The indented ``::`` code block of ``function``'s docstring, dedented."""
    import textwrap

    text = function.__doc__.split("::\n\n", 1)[1]
    block = []
    for line in text.splitlines():
        if line.strip() and not line.startswith(" " * 8):
            break
        block.append(line)
    return textwrap.dedent("\n".join(block)).strip() + "\n"


def test_bring_your_own_layer_example(tmp_path, monkeypatch, capsys):
    """save_network's docstring example (also the README's) writes a network stats reads."""
    from effectual.cli import main

    example = _docstring_example(save_network)
    assert 'save_network("mynet", [conv], name="mynet")' in example
    assert len(example.splitlines()) <= 10
    monkeypatch.chdir(tmp_path)
    exec(compile(example, "example", "exec"), {})
    assert main(["stats", "mynet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    _, items = load_network(tmp_path / "mynet")
    ((entry, _, layer),) = list(items)
    # 16 filters x 8 channels x 3x3 taps at each of the 32x32 outputs (stride 1, padding 1)
    assert layer.macs == entry["macs"] == 16 * 8 * 3 * 3 * 32 * 32
    assert lines[0].startswith(f"mynet: 1 layers, 1 image(s), {16 * 8 * 9 * 32 * 32:,} MACs "
                               f"per image, 8-bit")
    row = lines[3].split()
    assert row[:3] == ["conv1", "conv", f"{16 * 8 * 9 * 32 * 32:,}"]
    zero_acts = np.mean(layer.activations == 0)
    assert 0.4 < zero_acts < 0.6  # the example's ReLU-like activations
    assert row[4] == f"{100 * zero_acts:.1f}"
    assert row[3] == f"{100 * np.mean(layer.weights == 0):.1f}"
