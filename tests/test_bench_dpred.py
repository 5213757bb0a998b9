"""effectual.bench_dpred: the ``dpred`` bench suite on tiny hand-made networks.

The traffic rows are checked against sizes recomputed from a slow writer of the word layout
(`tests/test_golden_dpred_words.py`), and the simulated throughput against the golden cycle
models; the suite runs end to end through ``effectual bench --suite dpred`` on six tiny
networks standing in for the real workloads (``$EFFECTUAL_DPRED_WORKLOADS``).
"""

import json

import numpy as np
import pytest

from effectual import bench_dpred
from effectual.cli import main
from golden import dpred
from golden.layers import Layer, save_network
from hw.params import DPRedParams

from test_golden_dpred_words import naive_bytes, naive_channel_minor


def tiny_layers(bits, seed):
    rng = np.random.default_rng(seed)
    high = 1 << (bits - 1)
    conv = Layer(kind="conv", name="conv", padding=(1, 1, 1, 1),
                 weights=rng.integers(-high, high, size=(4, 3, 3, 3)) >> (bits // 2),
                 activations=np.maximum(rng.integers(-high, high, size=(3, 5, 5)), 0),
                 weight_bits=bits, act_bits=bits, act_signed=False)
    fc = Layer(kind="fc", name="fc", weights=rng.integers(-high, high, size=(3, 40)),
               activations=rng.integers(-4, 4, size=40), weight_bits=bits, act_bits=bits,
               act_signed=True)
    return [conv, fc]


@pytest.fixture
def workloads(tmp_path, monkeypatch):
    layers = {}
    for index, name in enumerate(bench_dpred.WORKLOADS):
        for bits in bench_dpred.BITS:
            layers[(name, bits)] = tiny_layers(bits, index * 100 + bits)
            save_network(tmp_path / f"{name}-{bits}", layers[(name, bits)], name=name)
    monkeypatch.setenv("EFFECTUAL_DPRED_WORKLOADS", str(tmp_path))
    return layers


def test_traffic_rows_against_naive_sizes(workloads, capsys):
    rows = bench_dpred.traffic_table(images=1)
    assert len(rows) == len(workloads) * len(bench_dpred.GROUP_SIZES)
    for row in rows:
        layers = workloads[(row["network"], row["bits"])]
        g, bits = row["group_size"], row["bits"]
        for part, axis, signed_of in (("weights", 1, lambda layer: True),
                                      ("activations", 0, lambda layer: layer.act_signed)):
            best = plain = bitmap = uncompressed = 0
            for layer in layers:
                array = layer.weights if part == "weights" else layer.activations
                values = naive_channel_minor(array, axis)
                sizes = [naive_bytes(values, bits, signed_of(layer), g, 32, z)
                         for z in (False, True)]
                plain, bitmap = plain + sizes[0], bitmap + sizes[1]
                best += min(sizes)
                uncompressed += len(values) * bits // 8
            assert row[part] == {"uncompressed": uncompressed, "plain": plain,
                                 "bitmap": bitmap, "best": best}
    out = capsys.readouterr().out
    assert "blazeface-sparse    16   16" in out and "35%" in out and "33%" in out


def test_simulated_throughput_equals_the_cycle_model():
    rng = np.random.default_rng(1)
    values = rng.integers(-40, 40, 150)
    for params in (DPRedParams(group_size=16, value_width=8, word_width=32),
                   DPRedParams(group_size=5, value_width=16, word_width=16)):
        encoder, decoder, words = bench_dpred.simulate_throughput(params, values)
        kwargs = dict(value_width=params.value_width, signed=True,
                      group_size=params.group_size, word_width=params.word_width)
        assert words.tolist() == dpred.encode_words(values, **kwargs).tolist()
        first, last = dpred.encoder_cycles(values, **kwargs)
        assert encoder == len(values) / (last[-1] - first[0] + 1)
        first, last = dpred.decoder_cycles(values, **kwargs)
        assert decoder == len(values) / (last[-1] - first[0] + 1)
        assert 0.5 < decoder <= 1 and 0.5 < encoder <= 1


def test_suite_through_the_command(workloads, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--suite", "dpred", "--json", str(out)]) == 0
    result = json.loads(out.read_text())["suites"]["dpred"]
    assert len(result["traffic"]) == 30
    assert [row["data"] for row in result["throughput"]] == [
        "lenet-digits", "blazeface-short", "blazeface-short", "blazeface-short",
        "blazeface-short"]
    for row in result["throughput"]:
        assert row["encoder_values_per_cycle"] == row["model_encoder_values_per_cycle"]
        assert row["decoder_values_per_cycle"] == row["model_decoder_values_per_cycle"]
    assert "DPRed encoder/decoder throughput" in capsys.readouterr().out
