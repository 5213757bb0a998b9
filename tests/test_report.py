"""``effectual stats`` and ``effectual report`` on a tiny synthetic network directory."""

import csv
import json

import numpy as np
import pytest

from effectual.cli import main
from golden.designs import BASELINE, DESIGNS
from golden.layers import Layer, save_network
from golden.stats import POTENTIALS, STATISTICS, combine_images, layer_stats, network_stats

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _network_layers(seed=0, images=2):
    """Three layers (padded strided conv, signed depthwise, sparse fc), one Layer per image."""
    rng = np.random.default_rng(seed)
    w1 = rng.integers(-127, 128, (8, 3, 3, 3))
    w2 = rng.integers(-127, 128, (8, 1, 3, 3))
    w3 = rng.integers(-127, 128, (10, 40)) * (rng.random((10, 40)) < 0.3)
    layers = [[], [], []]
    for _ in range(images):
        layers[0].append(Layer(kind="conv", name="conv1", weights=w1, stride=(2, 2),
                               padding=(1, 1, 0, 1),
                               activations=rng.integers(0, 256, (3, 9, 10))
                               * (rng.random((3, 9, 10)) < 0.7)))
        layers[1].append(Layer(kind="conv", name="dw", weights=w2, groups=8, act_signed=True,
                               padding=(1, 1, 1, 1),
                               activations=rng.integers(-128, 128, (8, 5, 5)) >> 2))
        layers[2].append(Layer(kind="fc", name="fc", weights=w3,
                               activations=rng.integers(0, 40, 40)))
    return layers


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    directory = tmp_path_factory.mktemp("net") / "tiny"
    layers = _network_layers()
    save_network(directory, iter(layers), name="tiny-net", source="synthetic", bits=8,
                 per_channel=False, images=[{"name": "a", "source": "rng"},
                                            {"name": "b", "source": "rng"}])
    return directory, layers


def _expected(layers, group_size=16):
    """Per-layer results and network totals computed directly with golden.stats/designs."""
    per_layer = []
    for per_image in layers:
        result = combine_images([layer_stats(layer, group_size=group_size)
                                 for layer in per_image])
        result["designs"] = {name: sum(design.cycles(layer) for layer in per_image)
                             for name, design in DESIGNS.items()}
        per_layer.append(result)
    return per_layer, network_stats(per_layer)


def test_report_files_and_numbers(network, tmp_path, capsys):
    directory, layers = network
    out = tmp_path / "report"
    assert main(["report", str(directory), "-o", str(out), "--group-size", "8"]) == 0
    captured = capsys.readouterr()
    assert "wrote 6 files" in captured.out
    per_layer, net = _expected(layers, group_size=8)

    with open(out / "layers.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["layer"] for row in rows] == ["conv1", "dw", "fc"]
    for row, expected in zip(rows, per_layer):
        assert row["network"] == "tiny-net" and int(row["images"]) == 2
        assert int(row["macs"]) == expected["macs"] and int(row["group_size"]) == 8
        for key in STATISTICS:
            assert float(row[key]) == expected["stats"][key], key
        for key in POTENTIALS:
            assert float(row[f"potential_{key}"]) == expected["potentials"][key], key
        for key, value in expected["work"].items():
            assert int(row[f"work_{key}"]) == value, key
        baseline = expected["designs"][BASELINE]
        for name, cycles in expected["designs"].items():
            assert int(row[f"{name}_cycles"]) == cycles
            assert float(row[f"{name}_speedup"]) == baseline / cycles

    with open(out / "networks.csv", newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["network"] == "tiny-net" and int(row["layers"]) == 3
    assert int(row["macs"]) == net["macs"] == sum(entry[0].macs for entry in layers)
    for key in STATISTICS:
        assert float(row[key]) == net["stats"][key]
        assert float(row[f"pooled_{key}"]) == net["pooled_stats"][key]
    for key in POTENTIALS:
        assert float(row[f"potential_{key}"]) == net["potentials"][key]
    totals = {name: sum(item["designs"][name] for item in per_layer) for name in DESIGNS}
    for name, cycles in totals.items():
        assert int(row[f"{name}_cycles"]) == cycles
        assert float(row[f"{name}_speedup"]) == totals[BASELINE] / cycles

    report = json.loads((out / "report.json").read_text())
    (analysis,) = report["networks"]
    assert report["group_size"] == 8 and list(report["designs"]) == list(DESIGNS)
    assert analysis["network"]["potentials"] == net["potentials"]
    assert [item["counts"] for item in analysis["layers"]] == [e["counts"] for e in per_layer]

    markdown = (out / "report.md").read_text()
    assert "## Summary" in markdown and "## tiny-net" in markdown
    assert "![summary](summary.png)" in markdown and "![tiny-net](tiny-net.png)" in markdown
    lines = markdown.splitlines()
    assert "| tiny-net | " + " | ".join(f"{net['potentials'][k]:.2f}" for k in POTENTIALS) \
        + " |" in lines
    assert any(line.startswith(f"| tiny-net | 3 | 2 | {net['macs']:,} | 8 | "
                               f"{100 * net['stats']['zero_weights']:.1f} % | ") for line in lines)

    import matplotlib.image

    for name in ("summary.png", "tiny-net.png"):
        data = (out / name).read_bytes()
        assert data[:8] == PNG_SIGNATURE
        image = matplotlib.image.imread(out / name)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_report_several_networks_with_the_same_name(network, tmp_path):
    directory, _ = network
    out = tmp_path / "two"
    assert main(["report", str(directory), str(directory), "-o", str(out)]) == 0
    assert (out / "tiny-net.png").read_bytes()[:8] == PNG_SIGNATURE
    assert (out / "tiny-net-2.png").read_bytes()[:8] == PNG_SIGNATURE
    with open(out / "networks.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 and rows[0] == rows[1]


def test_stats_cli_table_and_json(network, tmp_path, capsys):
    directory, layers = network
    json_path = tmp_path / "stats.json"
    assert main(["stats", str(directory), "--json", str(json_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    per_layer, net = _expected(layers)
    assert lines[0].startswith("tiny-net: 3 layers, 2 image(s), ")
    headers = lines[1].split()
    assert headers[:3] == ["layer", "kind", "MACs"]
    for layer_row, expected in zip(lines[3:6], per_layer):
        cells = layer_row.split()
        assert cells[0] == expected["name"] and cells[1] == expected["kind"]
        assert cells[2] == f"{expected['macs']:,}"
        tail = cells[-len(POTENTIALS):]  # some headers hold spaces: compare from the end
        assert tail == [f"{expected['potentials'][k]:.2f}" for k in POTENTIALS]
    total = lines[7].split()
    assert total[:3] == ["TOTAL", "(3", "layers)"]
    assert total[-len(POTENTIALS):] == [f"{net['potentials'][k]:.2f}" for k in POTENTIALS]
    saved = json.loads(json_path.read_text())
    assert saved["networks"][0]["network"]["potentials"] == net["potentials"]
    assert saved["networks"][0]["network"]["stats"] == net["stats"]


@pytest.mark.parametrize("command", ["stats", "report"])
def test_missing_and_empty_directories(command, tmp_path, capsys):
    extra = ["-o", str(tmp_path / "out")] if command == "report" else []
    missing = tmp_path / "missing"
    assert main([command, str(missing)] + extra) == 2
    err = capsys.readouterr().err
    assert err == f"effectual {command}: error: {missing}: no such directory\n"

    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([command, str(empty)] + extra) == 2
    err = capsys.readouterr().err
    assert err == (f"effectual {command}: error: {empty}: no network.json here (write a "
                   f"network with `effectual import`)\n")

    no_layers = tmp_path / "nolayers"
    save_network(no_layers, [_network_layers(images=1)[2]], name="none", source="test", bits=8,
                 per_channel=False, images=[{"name": "a", "source": "b"}])
    manifest = json.loads((no_layers / "network.json").read_text())
    manifest["layers"] = []
    (no_layers / "network.json").write_text(json.dumps(manifest))
    assert main([command, str(no_layers)] + extra) == 2
    assert capsys.readouterr().err == \
        f"effectual {command}: error: {no_layers}: the network has no layers\n"
    assert not (tmp_path / "out").exists()


def test_invalid_group_size(network, capsys):
    directory, _ = network
    assert main(["stats", str(directory), "--group-size", "0"]) == 2
    assert capsys.readouterr().err == \
        "effectual stats: error: --group-size must be an integer from 1 to 256, not 0\n"


def _flat_group_magnitudes(layers, group_size=16):
    """Bit lengths of max |v| over runs of the flattened NHWC tensors, with plain loops."""
    out = []
    for per_image in layers:
        for layer in per_image:
            acts = layer.activations
            flat = ([int(v) for v in acts] if layer.kind == "fc" else
                    [int(acts[c, y, x]) for y in range(acts.shape[1])
                     for x in range(acts.shape[2]) for c in range(acts.shape[0])])
            out += [max(abs(v) for v in flat[i:i + group_size]).bit_length()
                    for i in range(0, len(flat), group_size)]
    return out


def test_stats_pooled_row_and_flat_grouping(network, tmp_path, capsys):
    directory, layers = network
    json_path = tmp_path / "stats.json"
    assert main(["stats", str(directory), "--act-grouping", "flat", "--json",
                 str(json_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "(flat activation groups for grpP/grpW)" in lines[0]
    assert lines[7].startswith("TOTAL (3 layers)")
    pooled = lines[8].split()
    assert pooled[:4] == ["POOLED", "(every", "value", "once)"]
    acts = np.concatenate([layer.activations.ravel() for per in layers for layer in per])
    weights = np.concatenate([layer.weights.ravel() for per in layers for layer in per])
    magnitudes = _flat_group_magnitudes(layers)
    # columns: MACs, 0 w %, 0 a %, grpP a, ...; no potentials on the pooled row
    assert pooled[5] == f"{100 * np.mean(weights == 0):.1f}"
    assert pooled[6] == f"{100 * np.mean(acts == 0):.1f}"
    assert pooled[7] == f"{sum(magnitudes) / len(magnitudes):.2f}"
    assert len(pooled) == 4 + 1 + 8
    saved = json.loads(json_path.read_text())
    assert saved["act_grouping"] == "flat"
    counts = saved["networks"][0]["network"]["counts"]
    assert counts["act_groups"] == len(magnitudes)
    assert counts["act_group_magnitude_sum"] == sum(magnitudes)
    # the potentials do not depend on the grouping
    _, net = _expected(layers)
    assert saved["networks"][0]["network"]["potentials"] == net["potentials"]


def test_report_flat_grouping_and_bad_grouping(network, tmp_path, capsys):
    directory, layers = network
    out = tmp_path / "report"
    assert main(["report", str(directory), "-o", str(out), "--act-grouping", "flat"]) == 0
    with open(out / "networks.csv", newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    magnitudes = _flat_group_magnitudes(layers)
    assert row["act_grouping"] == "flat"
    assert float(row["pooled_act_group_magnitude"]) == sum(magnitudes) / len(magnitudes)
    report = json.loads((out / "report.json").read_text())
    assert report["act_grouping"] == "flat" and report["command"].endswith(" --act-grouping flat")
    assert "runs of G values of the flattened NHWC tensor" in (out / "report.md").read_text()
    capsys.readouterr()
    for command, extra in (("stats", []), ("report", ["-o", str(tmp_path / "bad")])):
        assert main([command, str(directory), "--act-grouping", "nhwc"] + extra) == 2
        assert capsys.readouterr().err == (f"effectual {command}: error: --act-grouping must "
                                           f"be 'pixel' or 'flat', not 'nhwc'\n")
    assert not (tmp_path / "bad").exists()
