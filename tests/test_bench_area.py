"""effectual.bench_area on a hand-made network and fake synthesis results (the real synthesis
takes minutes: ``EFFECTUAL_AREA_SYNTH=1 effectual bench --suite area``)."""

import json
import math

import numpy as np
import pytest

from effectual import bench_area
from effectual.bench_area import (AREA_DESIGNS, load_synthesis, network_work,
                                  peak_macs_per_cycle, throughput_table, verilog_arguments)
from golden import designs as registry
from golden.layers import Layer, save_network
from golden.terms import term_count

FAKE_LUTS = {"baseline": {"ice40": 3000, "ecp5": 500},
             "tclp": {"ice40": 12000, "ecp5": 10000},
             "tcle": {"ice40": 40000, "ecp5": 45000}}


def tiny_network(directory, rng):
    """A padded conv (K=6, C=5, 3x3 on 4x5) and an fc layer (K=7, C=9), unsigned 8-bit
    activations with zeros, weights with zeros; one image."""
    conv_w = rng.integers(-128, 128, size=(6, 5, 3, 3)) * (rng.random((6, 5, 3, 3)) < 0.6)
    conv = Layer(kind="conv", name="conv", padding=(1, 1, 1, 1), weights=conv_w,
                 activations=np.maximum(rng.integers(-100, 256, size=(5, 4, 5)), 0),
                 weight_bits=8, act_bits=8, act_signed=False)
    fc_w = rng.integers(-128, 128, size=(7, 9)) * (rng.random((7, 9)) < 0.5)
    fc = Layer(kind="fc", name="fc", weights=fc_w,
               activations=np.maximum(rng.integers(-100, 256, size=9), 0),
               weight_bits=8, act_bits=8, act_signed=False)
    save_network(directory, [conv, fc], name="tiny")
    return conv, fc


def fake_synthesis(root, luts=FAKE_LUTS, override=None):
    for design in AREA_DESIGNS:
        entries = []
        for family in ("ice40", "ecp5"):
            cells = ({"SB_LUT4": luts[design.name][family], "SB_RAM40_4K": 10}
                     if family == "ice40" else
                     {"LUT4": luts[design.name][family], "DP16KD": 5, "MULT18X18D": 16})
            entry = {"module": design.module, "family": family,
                     "luts": luts[design.name][family], "flip_flops": 100, "cells": cells,
                     "parameters": dict(design.params)}
            if override and override[0] == design.name:
                entry.update(override[1])
            entries.append(entry)
        directory = root / "synth" / design.name
        directory.mkdir(parents=True)
        (directory / "synth.json").write_text(json.dumps(entries))


def test_work_and_throughput_per_lut(tmp_path):
    conv, fc = tiny_network(tmp_path / "net", np.random.default_rng(3))
    work = network_work(tmp_path / "net")
    # independent: MACs by the convolution formula (padding included), baseline cycles by the
    # dense lowering on 4 x 4 x 1 (filter tiles x windows x steps)
    assert work["macs"] == 6 * 4 * 5 * 5 * 9 + 7 * 9
    assert work["layers"] == 2 and work["images"] == 1
    baseline = math.ceil(6 / 4) * (4 * 5) * (9 * math.ceil(5 / 4)) + \
        math.ceil(7 / 4) * math.ceil(9 / 4)
    assert work["cycles"]["baseline"] == baseline
    registry.load_designs()
    for name, options in (("tclp", {"windows": 8, "pattern": "T<2,5>"}),
                          ("tcle", {"windows": 8, "pattern": "T<2,5>", "encoding": "booth",
                                    "first_stage_bits": 2})):
        expected = sum(registry.get_design(name).cycles(layer, filters=4, lanes=4, **options)
                       for layer in (conv, fc))
        assert work["cycles"][name] == expected

    fake_synthesis(tmp_path / "area")
    synthesis = load_synthesis(tmp_path / "area")
    assert synthesis["baseline"]["ecp5"] == {"luts": 500, "flip_flops": 100, "bram": 5,
                                             "dsp": 16}
    assert synthesis["tcle"]["ice40"]["bram"] == 10 and synthesis["tcle"]["seconds"] is None
    rows = throughput_table({"tiny": work}, synthesis)
    assert [r["design"] for r in rows] == ["baseline", "tclp", "tcle"]
    for row in rows:
        for family in ("ice40", "ecp5"):
            mine = work["macs"] / work["cycles"][row["design"]] / \
                FAKE_LUTS[row["design"]][family] * 1000
            base = work["macs"] / baseline / FAKE_LUTS["baseline"][family] * 1000
            assert row[family]["per_klut"] == pytest.approx(mine, rel=1e-12)
            assert row[family]["ratio"] == pytest.approx(mine / base, rel=1e-12)


def test_missing_synthesis_gives_none(tmp_path):
    work = {"n": {"macs": 1000, "cycles": {"baseline": 100, "tclp": 50, "tcle": 25}}}
    rows = throughput_table(work, {})
    assert rows[2]["macs_per_cycle"] == 40.0
    assert all(r[f]["per_klut"] is None and r[f]["ratio"] is None
               for r in rows for f in ("ice40", "ecp5"))
    assert load_synthesis(tmp_path) == {}


@pytest.mark.parametrize("override, match", [
    (("tclp", {"parameters": {"windows": 2}}), r"tclp.*parameters .* are not tclp's"),
    (("tcle", {"module": "other"}), r"module 'other' is not tcle's 'tcle_tile_small'"),
])
def test_mismatched_results_refused(tmp_path, override, match):
    fake_synthesis(tmp_path, override=override)
    with pytest.raises(ValueError, match=match):
        load_synthesis(tmp_path)


def test_missing_family_refused(tmp_path):
    fake_synthesis(tmp_path)
    path = tmp_path / "synth" / "baseline" / "synth.json"
    path.write_text(json.dumps(json.loads(path.read_text())[:1]))
    with pytest.raises(ValueError, match="no result for ecp5"):
        load_synthesis(tmp_path)


def test_peak_throughput_from_worst_case_terms():
    # worst-case cycles per unsigned 8-bit value: 1 (bit-parallel), 8 bit planes, the most
    # DNNsim Booth terms of any value 0..255 (exhaustive)
    worst_booth = int(term_count(np.arange(256), encoding="booth", width=8).max())
    assert worst_booth == 6
    peaks = {d.name: peak_macs_per_cycle(d) for d in AREA_DESIGNS}
    assert peaks == {"baseline": 16.0, "tclp": 4 * 4 * 8 / 8, "tcle": 4 * 4 * 8 / worst_booth}


def test_verilog_arguments_emit_the_configuration(tmp_path):
    """The emitted manifests carry exactly the parameters load_synthesis expects (the cheap
    baseline and TCLp; TCLe's arguments are built the same way and checked textually)."""
    from effectual.cli import main

    for design in AREA_DESIGNS[:2]:
        out = tmp_path / f"{design.module}.v"
        assert main(verilog_arguments(design, out)) in (0, None)
        manifest = json.loads(out.with_name(out.name + ".json").read_text())
        assert manifest["module"] == design.module
        assert manifest["parameters"] == design.params
    args = verilog_arguments(AREA_DESIGNS[2], "x.v")
    assert args[:2] == ["verilog", "tcle_small"]
    assert "--no-act-signed" in args and args[args.index("--windows") + 1] == "8"
    assert args[args.index("--encoding") + 1] == "booth"


def test_suite_prints_table(tmp_path, monkeypatch, capsys):
    import effectual.bench_tcle as bench_tcle

    tiny_network(tmp_path / "net", np.random.default_rng(5))
    fake_synthesis(tmp_path / "area")
    monkeypatch.setattr(bench_area, "NETWORKS", (("tiny", 8),))
    monkeypatch.setattr(bench_tcle, "network_dir", lambda name, bits: tmp_path / "net")
    monkeypatch.setenv("EFFECTUAL_AREA_DIR", str(tmp_path / "area"))
    monkeypatch.delenv("EFFECTUAL_AREA_SYNTH", raising=False)
    result = bench_area.suite(None)
    out = capsys.readouterr().out
    assert "tiny-8" in out and "tcle" in out
    rows = result["rows"]
    assert rows[0]["ice40"]["ratio"] == pytest.approx(1.0)
    json.dumps(result)  # JSON-serializable
