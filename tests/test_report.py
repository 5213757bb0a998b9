"""``effectual stats`` and ``effectual report`` on a tiny synthetic network directory."""

import csv
import json
import math

import numpy as np
import pytest

from effectual.cli import main
from golden.designs import BASELINE, DESIGNS, design_output, load_designs
from golden.dpred import layer_traffic
from golden.layers import Layer, layer_output, save_network
from golden.stats import POTENTIALS, STATISTICS, combine_images, layer_stats, network_stats

load_designs()
#: the designs whose output is approximate, and the reference of the second speedup
APPROXIMATE = ["sysmt2", "sysmt4", "sparq"]

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
        result["ideal"] = {name: sum(design.ideal(layer) for layer in per_image)
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
        assert row["directory"] == str(directory)
        assert int(row["macs_per_image"]) == expected["macs"] and int(row["group_size"]) == 8
        for key in STATISTICS:
            assert float(row[key]) == expected["stats"][key], key
        for key in POTENTIALS:
            assert float(row[f"potential_{key}"]) == expected["potentials"][key], key
        for key, value in expected["work"].items():
            assert int(row[f"work_{key}"]) == value, key
        baseline = expected["designs"][BASELINE]
        for name, cycles in expected["designs"].items():
            assert int(row[f"{name}_cycles_all_images"]) == cycles
            assert float(row[f"{name}_speedup"]) == baseline / cycles
            ideal = expected["ideal"][name]
            assert int(row[f"{name}_ideal_all_images"]) == ideal
            assert float(row[f"{name}_achieved_over_ideal"]) == ideal / cycles

    with open(out / "networks.csv", newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["network"] == "tiny-net" and int(row["layers"]) == 3
    assert int(row["macs_per_image"]) == net["macs"] == sum(entry[0].macs for entry in layers)
    for key in STATISTICS:
        assert float(row[key]) == net["stats"][key]
        assert float(row[f"pooled_{key}"]) == net["pooled_stats"][key]
    for key in POTENTIALS:
        assert float(row[f"potential_{key}"]) == net["potentials"][key]
    totals = {name: sum(item["designs"][name] for item in per_layer) for name in DESIGNS}
    ideals = {name: sum(item["ideal"][name] for item in per_layer) for name in DESIGNS}
    for name, cycles in totals.items():
        assert int(row[f"{name}_cycles_all_images"]) == cycles
        assert float(row[f"{name}_speedup"]) == totals[BASELINE] / cycles
        assert int(row[f"{name}_ideal_all_images"]) == ideals[name]
    for name in APPROXIMATE:
        assert float(row[f"{name}_speedup_over_sysmt1"]) == totals["sysmt1"] / totals[name]

    report = json.loads((out / "report.json").read_text())
    (analysis,) = report["networks"]
    assert report["group_size"] == 8 and list(report["designs"]) == list(DESIGNS)
    assert {n: info["exact"] for n, info in report["design_info"].items()} == \
        {n: n not in APPROXIMATE for n in DESIGNS}
    assert analysis["network"]["potentials"] == net["potentials"]
    assert [item["counts"] for item in analysis["layers"]] == [e["counts"] for e in per_layer]
    assert report["format"] == "effectual-report"
    assert sorted(report["files"]) == sorted(["report.md", "layers.csv", "networks.csv",
                                              "report.json", "summary.png", "tiny-net.png"])
    assert sorted(p.name for p in out.iterdir()) == sorted(report["files"])
    assert analysis["network"]["designs"][BASELINE]["cycles_all_images"] == totals[BASELINE]
    assert [item["designs"][BASELINE]["cycles_all_images"] for item in analysis["layers"]] == \
        [e["designs"][BASELINE] for e in per_layer]
    assert report["units"]["macs"].startswith("per image")
    assert report["units"]["cycles_all_images"].endswith("summed over all images of the network")

    markdown = (out / "report.md").read_text()
    assert "## Summary" in markdown and "## tiny-net" in markdown
    assert "![summary](summary.png)" in markdown and "![tiny-net](tiny-net.png)" in markdown
    lines = markdown.splitlines()
    assert "| tiny-net | " + " | ".join(f"{net['potentials'][k]:.2f}" for k in POTENTIALS) \
        + " |" in lines
    assert any(line.startswith(f"| tiny-net | 3 | 2 | {net['macs']:,} | 8 | "
                               f"{100 * net['stats']['zero_weights']:.1f} % | ") for line in lines)
    # cycles are labelled as totals over the images, next to the image count
    names = list(DESIGNS)
    assert "| network | images | " + " | ".join(f"{n} cycles (all images)" for n in names) \
        + " | " + " | ".join(f"{n} speedup" for n in names[1:]) + " | " \
        + " | ".join(f"{n} speedup over sysmt1" for n in APPROXIMATE) + " |" in lines
    assert "| tiny-net | 2 | " + " | ".join(f"{totals[n]:,}" for n in names) + " | " \
        + " | ".join(f"{totals[BASELINE] / totals[n]:.2f}" for n in names[1:]) + " | " \
        + " | ".join(f"{totals['sysmt1'] / totals[n]:.2f}" for n in APPROXIMATE) \
        + " |" in lines
    known = ["baseline", "stripes", "dstripes", "wskip", "tclp", "sysmt1", "sysmt2", "sysmt4",
             "sparq"]
    assert [n for n in names if n in known] == known
    assert "| tiny-net | " + " | ".join(f"{ideals[n] / totals[n]:.2f}" for n in names) \
        + " |" in lines
    assert lines.count("| network | layers | images | MACs/image | bits | zero w | zero a | "
                       "grpP a | grpW a | grpW w | 0 bits a | NAF a | Booth a |") == 1
    assert any(line.startswith("| # | layer | kind | MACs/image | ") for line in lines)
    assert not any("| MACs |" in line or " cycles |" in line for line in lines)

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
    assert headers[:3] == ["layer", "kind", "MACs/image"]
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
    assert saved["units"]["macs"].startswith("per image")
    totals = {name: sum(item["designs"][name] for item in per_layer) for name in DESIGNS}
    assert {name: value["cycles_all_images"] for name, value
            in saved["networks"][0]["network"]["designs"].items()} == totals


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
                   f"network with `effectual import`, or from your own Layer objects with "
                   f"golden.layers.save_network)\n")

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


def test_layers_csv_directory_tells_imports_apart(network, tmp_path):
    """Two imports of the same network (same name): layers.csv rows name their directory."""
    import shutil

    directory, layers = network
    copy = tmp_path / "copy"
    shutil.copytree(directory, copy)
    out = tmp_path / "two"
    assert main(["report", str(directory), str(copy), "-o", str(out)]) == 0
    with open(out / "layers.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["network"], row["directory"], row["layer"]) for row in rows] == \
        [("tiny-net", str(d), name) for d in (directory, copy) for name in ("conv1", "dw", "fc")]
    with open(out / "networks.csv", newline="") as handle:
        assert [row["directory"] for row in csv.DictReader(handle)] == [str(directory), str(copy)]


def test_legend_describes_unsigned_group_width(network, tmp_path, capsys):
    """grpW is the unsigned width for unsigned tensors; both commands' legends say so."""
    directory, layers = network
    assert main(["stats", str(directory)]) == 0
    lines = capsys.readouterr().out.splitlines()
    legend = lines[-1]
    assert "grpW: mean per-group minimal width: two's-complement (sign bit included) for signed " \
           "tensors, unsigned for unsigned ones (weights are signed);" in legend
    out = tmp_path / "report"
    assert main(["report", str(directory), "-o", str(out)]) == 0
    assert legend in (out / "report.md").read_text().splitlines()
    # the claim itself: conv1's activations are unsigned, and its grpW a is the mean unsigned
    # width (bit length of the group maximum, at least 1) over channel groups at each pixel
    conv1 = layers[0]
    assert not conv1[0].act_signed
    widths = [max(1, int(layer.activations[:, y, x].max()).bit_length())
              for layer in conv1 for y in range(layer.activations.shape[1])
              for x in range(layer.activations.shape[2])]  # C = 3 <= 16: one group per pixel
    row = next(line for line in lines if line.startswith("conv1 "))
    grpw_a = row.split()[3 + 3]  # layer, kind, MACs/image, 0 w %, 0 a %, grpP a, grpW a
    assert grpw_a == f"{sum(widths) / len(widths):.2f}"


def test_log_ticks():
    from effectual.report import _log_ticks

    assert _log_ticks(0.63, 2.33) == [0.8, 0.9, 1, 1.1, 1.25, 1.5, 2]
    assert _log_ticks(0.8, 80) == [1, 2, 5, 10, 20, 50]
    assert _log_ticks(0.11, 17) == [0.2, 0.5, 1, 2, 5, 10]
    # the plots' y range is at least [min/1.2, 1.8]: never narrower than 0.83 .. 1.8
    for low, high in [(0.63, 2.33), (0.83, 1.8), (1e-3, 1e12), (0.5, 3.0), (0.05, 400)]:
        ticks = _log_ticks(low, high)
        assert 2 <= len(ticks) <= 8 and all(low <= t <= high for t in ticks), (low, high)
        assert ticks == sorted(set(ticks))
        if low <= 1 <= high:
            assert 1 in ticks


def test_speedup_axis_has_readable_ticks_below_one():
    """A design panel whose bars lie at 0.76..0.96 gets labelled ticks around them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from effectual.report import _bar_chart

    figure, axis = plt.subplots()
    _bar_chart(axis, ["a", "b", "c"], {"x": [0.76, 0.96, 0.9], "y": [0.8, 0.85, 0.93]}, "t")
    figure.canvas.draw()
    low, high = axis.get_ylim()
    shown = [(tick, label.get_text()) for tick, label
             in zip(axis.get_yticks(), axis.get_yticklabels()) if low <= tick <= high]
    plt.close(figure)
    assert [text for _, text in shown] == ["0.8", "0.9", "1", "1.1", "1.25", "1.5"]
    assert all(float(text) == tick for tick, text in shown)


def _report_fails_before_statistics(monkeypatch):
    import effectual.report

    def fail(*args, **kwargs):
        raise AssertionError("statistics computed before the output directory was checked")

    monkeypatch.setattr(effectual.report, "analyze_network", fail)


def test_output_directory_checked_up_front(network, tmp_path, capsys, monkeypatch):
    directory, _ = network
    _report_fails_before_statistics(monkeypatch)
    a_file = tmp_path / "file.txt"
    a_file.write_text("keep")
    assert main(["report", str(directory), "-o", str(a_file)]) == 2
    assert capsys.readouterr().err == (f"effectual report: error: {a_file}: exists and is not a "
                                       f"directory; give a directory for the report\n")
    below = a_file / "sub" / "report"
    assert main(["report", str(directory), "-o", str(below)]) == 2
    assert capsys.readouterr().err == (f"effectual report: error: {below}: cannot create the "
                                       f"report directory: {a_file} is not a directory\n")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    assert main(["report", str(directory), "-o", str(foreign)]) == 2
    assert capsys.readouterr().err == (
        f"effectual report: error: {foreign}: is not empty and holds no report.json of an "
        f"earlier Effectual report; refusing to write a report there (give a new or empty "
        f"directory)\n")
    (foreign / "report.json").write_text('{"board": "icebreaker"}')  # another tool's report
    assert main(["report", str(directory), "-o", str(foreign)]) == 2
    assert "refusing to write a report there" in capsys.readouterr().err
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt", "report.json"]
    assert a_file.read_text() == "keep"


def test_created_directory_removed_when_the_analysis_fails(network, tmp_path, capsys):
    import shutil

    directory, _ = network
    broken = tmp_path / "broken"
    shutil.copytree(directory, broken)
    manifest = json.loads((broken / "network.json").read_text())
    manifest["layers"][2]["macs"] = 999
    (broken / "network.json").write_text(json.dumps(manifest))
    out = tmp_path / "new" / "report"
    assert main(["report", str(broken), "-o", str(out)]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"effectual report: error: {broken / 'network.json'}: key 'layers'[2].macs is 999 but "
        f"the layer in image000/002_fc.npz has 400")
    assert not (tmp_path / "new").exists()


def test_earlier_report_files_are_replaced(network, tmp_path):
    import shutil

    directory, _ = network
    other = tmp_path / "other"
    shutil.copytree(directory, other)
    manifest = json.loads((other / "network.json").read_text())
    manifest["name"] = "other net"
    (other / "network.json").write_text(json.dumps(manifest))
    out = tmp_path / "report"
    assert main(["report", str(directory), str(directory), str(other), "-o", str(out)]) == 0
    first = json.loads((out / "report.json").read_text())["files"]
    assert {"tiny-net.png", "tiny-net-2.png", "other_net.png"} <= set(first)
    (out / "mine.txt").write_text("keep")
    (out / "extra.png").write_text("not written by the report")
    assert main(["report", str(directory), "-o", str(out)]) == 0
    expected = ["extra.png", "layers.csv", "mine.txt", "networks.csv", "report.json",
                "report.md", "summary.png", "tiny-net.png"]
    assert sorted(p.name for p in out.iterdir()) == expected
    with open(out / "networks.csv", newline="") as handle:
        assert [row["network"] for row in csv.DictReader(handle)] == ["tiny-net"]

    # a report.json written before reports listed their files: names derived from its networks
    legacy = tmp_path / "legacy"
    shutil.copytree(out, legacy)
    old = json.loads((legacy / "report.json").read_text())
    old["networks"] = [dict(old["networks"][0], name=name) for name in ("a b", "a b", "c")]
    for key in ("format", "files"):
        del old[key]
    (legacy / "report.json").write_text(json.dumps(old))
    for name in ("a_b.png", "a_b-2.png", "c.png"):
        (legacy / name).write_bytes(PNG_SIGNATURE)
    assert main(["report", str(directory), "-o", str(legacy)]) == 0
    assert sorted(p.name for p in legacy.iterdir()) == expected


# ---------------------------------------------------------------------------------------------
# Systolic designs, output errors and DPRed traffic in the report
# ---------------------------------------------------------------------------------------------

def _naive_errors(layers, name, images):
    """Per layer: [(differing, values, max |err|, relative RMS, counts)] of the first images."""
    result = []
    for per_image in layers:
        entries = []
        for layer in per_image[:images]:
            output, counts = design_output(name, layer)
            pairs = list(zip(output.ravel().tolist(), layer_output(layer).ravel().tolist()))
            diffs = [o - e for o, e in pairs]
            norm = math.sqrt(sum(e * e for _, e in pairs)) or 1.0
            entries.append((sum(d != 0 for d in diffs), len(diffs), max(abs(d) for d in diffs),
                            math.sqrt(sum(d * d for d in diffs)) / norm, counts))
        result.append(entries)
    return result


def _check_error_row(row, name, entries):
    if not entries:
        for suffix in ("evaluated", "values", "differing", "differ_fraction", "max_abs",
                       "rel_rms", "squeezed_fraction"):
            assert row[f"{name}_error_{suffix}"] == ""
        return
    differing = sum(e[0] for e in entries)
    values = sum(e[1] for e in entries)
    assert int(row[f"{name}_error_evaluated"]) == len(entries)
    assert int(row[f"{name}_error_values"]) == values
    assert int(row[f"{name}_error_differing"]) == differing
    assert float(row[f"{name}_error_differ_fraction"]) == differing / values
    assert int(row[f"{name}_error_max_abs"]) == max(e[2] for e in entries)
    assert float(row[f"{name}_error_rel_rms"]) == pytest.approx(
        sum(e[3] for e in entries) / len(entries), rel=1e-12)
    if name == "sparq":
        assert row[f"{name}_error_squeezed_fraction"] == ""
    else:
        active = sum(e[4]["active"] for e in entries)
        squeezed = sum(e[4]["squeezed"] for e in entries)
        assert float(row[f"{name}_error_squeezed_fraction"]) == squeezed / active


@pytest.mark.parametrize("images", ["1", "all", "0"])
def test_report_design_errors(network, tmp_path, capsys, images):
    directory, layers = network
    out = tmp_path / "report"
    assert main(["report", str(directory), "-o", str(out), "--error-images", images]) == 0
    count = {"1": 1, "all": 2, "0": 0}[images]
    with open(out / "layers.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    with open(out / "networks.csv", newline="") as handle:
        (net_row,) = list(csv.DictReader(handle))
    per_design = {name: _naive_errors(layers, name, count) for name in APPROXIMATE}
    for name, per_layer in per_design.items():
        for row, entries in zip(rows, per_layer):
            _check_error_row(row, name, entries)
            sysmt1 = int(row["sysmt1_cycles_all_images"])
            assert float(row[f"{name}_speedup_over_sysmt1"]) == \
                sysmt1 / int(row[f"{name}_cycles_all_images"])
        _check_error_row(net_row, name, [e for entries in per_layer for e in entries])
    for name in DESIGNS:
        assert f"{name}_error_rel_rms" in net_row or DESIGNS[name].exact
        assert (f"{name}_error_rel_rms" in net_row) == (not DESIGNS[name].exact)
    report = json.loads((out / "report.json").read_text())
    assert report["networks"][0]["error_images"] == count
    markdown = (out / "report.md").read_text()
    assert ("| # | layer | sysmt2 / sysmt1 | sysmt4 / sysmt1 | sparq / sysmt1 | sysmt2 rel RMS | "
            "sysmt4 rel RMS | sparq rel RMS | ") in markdown
    assert (images == "1") == ("--error-images" not in report["command"])
    lines = (out / "report.md").read_text().splitlines()
    assert ("| network | design | layer outputs | values | differ | max abs err | rel RMS | "
            "squeezed |") in lines
    for name in APPROXIMATE:
        error = report["networks"][0]["network"]["designs"][name]["error"]
        if count == 0:
            assert error is None
            assert f"| tiny-net | {name} | - | - | - | - | - | - |" in lines
        else:
            squeezed = "-" if name == "sparq" else f"{100 * error['squeezed_fraction']:.1f} %"
            assert (f"| tiny-net | {name} | {3 * count} | {error['values']:,} | "
                    f"{100 * error['differ_fraction']:.1f} % | {error['max_abs_error']:,} | "
                    f"{error['rel_rms_error']:.4f} | {squeezed} |") in lines


def _naive_traffic(layers, group_size):
    """Per layer and part: [uncompressed, compressed or None] summed over images, with each
    layer's outputs the next layer's activations when the shapes match."""
    result = []
    for index, per_image in enumerate(layers):
        sums = {part: [0, 0] for part in ("weights", "activations", "outputs", "total")}
        for image, layer in enumerate(per_image):
            following = layers[index + 1][image] if index + 1 < len(layers) else None
            if following is not None and following.activations.shape == layer.output_shape:
                traffic = layer_traffic(layer, group_size=group_size,
                                        outputs=following.activations,
                                        output_bits=following.act_bits,
                                        output_signed=following.act_signed)
            else:
                traffic = layer_traffic(layer, group_size=group_size)
            for part in sums:
                sums[part][0] += traffic[part]["uncompressed_bytes"]
                compressed = traffic[part]["compressed_bytes"]
                sums[part][1] = None if compressed is None or sums[part][1] is None else \
                    sums[part][1] + compressed
        result.append(sums)
    return result


def test_report_dpred_traffic(tmp_path, capsys):
    """A network whose first layer feeds the second directly (shapes match), then an fc."""
    rng = np.random.default_rng(9)
    w1 = rng.integers(-127, 128, (6, 3, 3, 3))
    w2 = rng.integers(-20, 21, (5, 6, 3, 3))
    w3 = rng.integers(-127, 128, (4, 30))
    layers = [[], [], []]
    for _ in range(2):
        layers[0].append(Layer(kind="conv", name="a", weights=w1, padding=(1, 1, 1, 1),
                               activations=rng.integers(0, 256, (3, 6, 5))))
        layers[1].append(Layer(kind="conv", name="b", weights=w2,
                               activations=rng.integers(0, 30, (6, 6, 5))
                               * (rng.random((6, 6, 5)) < 0.5)))
        layers[2].append(Layer(kind="fc", name="c", weights=w3,
                               activations=rng.integers(0, 9, 30)))
    directory = tmp_path / "net"
    save_network(directory, iter(layers), name="feed", source="synthetic", bits=8,
                 per_channel=False, images=[{"name": "a", "source": "rng"},
                                            {"name": "b", "source": "rng"}])
    for group_size in (16, 8):
        out = tmp_path / f"report{group_size}"
        extra = [] if group_size == 16 else ["--dpred-group-size", "8"]
        assert main(["report", str(directory), "-o", str(out)] + extra) == 0
        expected = _naive_traffic(layers, group_size)
        with open(out / "layers.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        with open(out / "networks.csv", newline="") as handle:
            (net_row,) = list(csv.DictReader(handle))
        for row, sums in zip(rows, expected):
            assert int(row["dpred_group_size"]) == group_size
            for part, (uncompressed, compressed) in sums.items():
                assert int(row[f"dpred_{part}_uncompressed_bytes"]) == uncompressed
                if compressed is None:
                    assert row[f"dpred_{part}_compressed_bytes"] == ""
                    assert row[f"dpred_{part}_ratio"] == ""
                else:
                    assert int(row[f"dpred_{part}_compressed_bytes"]) == compressed
                    assert float(row[f"dpred_{part}_ratio"]) == compressed / uncompressed
        # the first layer's outputs are the second's activations; the last ones are unknown
        assert expected[0]["outputs"][1] is not None and expected[1]["outputs"][1] is None
        totals = {}
        for part in ("weights", "activations", "outputs"):
            uncompressed = sum(sums[part][0] for sums in expected)
            compressed = sum(sums[part][1] if sums[part][1] is not None else sums[part][0]
                             for sums in expected)
            totals[part] = (uncompressed, compressed)
            assert int(net_row[f"dpred_{part}_uncompressed_bytes"]) == uncompressed
            assert int(net_row[f"dpred_{part}_compressed_bytes"]) == compressed
        total = (sum(u for u, _ in totals.values()), sum(c for _, c in totals.values()))
        assert int(net_row["dpred_total_uncompressed_bytes"]) == total[0]
        assert int(net_row["dpred_total_compressed_bytes"]) == total[1]
        assert int(rows[2]["dpred_total_compressed_bytes"]) == \
            expected[2]["weights"][1] + expected[2]["activations"][1] + expected[2]["outputs"][0]
        report = json.loads((out / "report.json").read_text())
        (analysis,) = report["networks"]
        assert analysis["dpred"] == {"group_size": group_size, "word_width": 32,
                                     "variant": "best"}
        assert analysis["network"]["traffic"]["total"]["compressed_bytes"] == total[1]
        markdown = (out / "report.md").read_text()
        assert f"### DPRed off-chip traffic (G = {group_size}, 32-bit words" in markdown
        assert (f"| feed | {totals['weights'][0]:,} | {totals['weights'][1]:,} | "
                f"{totals['weights'][1] / totals['weights'][0]:.2f} | ") in markdown
        assert (f" | {total[0]:,} | {total[1]:,} | {total[1] / total[0]:.2f} |"
                in markdown)
        assert (report["command"].endswith("--dpred-group-size 8")) == (group_size == 8)


def test_report_unsupported_designs_on_a_16_bit_network(tmp_path, capsys):
    rng = np.random.default_rng(2)
    layers = [[Layer(kind="fc", name="f", weights=rng.integers(-300, 300, (4, 20)),
                     activations=rng.integers(0, 4000, 20), act_bits=16, weight_bits=16)]]
    directory = tmp_path / "wide"
    save_network(directory, iter(layers), name="wide", source="synthetic", bits=16,
                 per_channel=False, images=[{"name": "a", "source": "rng"}])
    out = tmp_path / "report"
    assert main(["report", str(directory), "-o", str(out)]) == 0
    reason = "weights must be 8-bit, not 16-bit"
    for filename in ("layers.csv", "networks.csv"):
        with open(out / filename, newline="") as handle:
            (row,) = list(csv.DictReader(handle))
        for name in ("sysmt1", "sysmt2", "sysmt4", "sparq"):
            assert row[f"{name}_unsupported"] == reason
            for key in ("cycles_all_images", "ideal_all_images", "speedup",
                        "achieved_over_ideal"):
                assert row[f"{name}_{key}"] == ""
        assert row["sysmt2_error_rel_rms"] == "" and row["sparq_speedup_over_sysmt1"] == ""
        assert int(row["tclp_cycles_all_images"]) == DESIGNS["tclp"].cycles(layers[0][0])
    markdown = (out / "report.md").read_text()
    assert f"sysmt1 on wide: {reason}" in markdown
    assert "| wide | sysmt2 | - | - | - | - | - | - |" in markdown
    png = out / "wide.png"
    assert png.read_bytes()[:8] == PNG_SIGNATURE


@pytest.mark.parametrize("extra,message", [
    (["--error-images", "some"], "--error-images must be a count (0 or more) or 'all', not "
                                 "'some'"),
    (["--error-images", "-1"], "--error-images must be a count (0 or more) or 'all', not '-1'"),
    (["--dpred-group-size", "0"], "--dpred-group-size must be an integer from 1 to 256, not 0"),
    (["--dpred-group-size", "257"],
     "--dpred-group-size must be an integer from 1 to 256, not 257"),
])
def test_report_option_errors(network, tmp_path, capsys, extra, message):
    directory, _ = network
    assert main(["report", str(directory), "-o", str(tmp_path / "r")] + extra) == 2
    assert capsys.readouterr().err == f"effectual report: error: {message}\n"
    assert not (tmp_path / "r").exists()


def test_analysis_agrees_with_the_sparq_bench(network):
    """The report's figures for the systolic designs equal effectual.bench_sparq's own."""
    from effectual.bench_sparq import modes, network_metrics
    from effectual.stats import analyze_network

    directory, _ = network
    analysis = analyze_network(directory, error_images=None, dpred_group_size=None)
    selected = [m for m in modes() if m[0] in ("sparq-5opt-round", "sysmt2", "sysmt4")]
    metrics = network_metrics(directory, images=2, selected=selected, log=lambda *a: None)
    designs = analysis["network"]["designs"]
    images = analysis["images"]
    for threads in (1, 2, 4):
        assert designs[f"sysmt{threads}"]["cycles_all_images"] == \
            images * metrics["cycles"][str(threads)]
    for name in ("sysmt2", "sysmt4"):
        assert designs[name]["speedup_over_reference"] == pytest.approx(
            metrics["speedup"][name], rel=1e-12)
        assert designs[name]["error"]["rel_rms_error"] == pytest.approx(
            metrics["error"][name], rel=1e-12)
        assert designs[name]["error"]["squeezed_fraction"] == metrics["squeezed"][name]
    assert designs["sparq"]["error"]["rel_rms_error"] == pytest.approx(
        metrics["error"]["sparq-5opt-round"], rel=1e-12)
