# amaranth: UnusedElaboratable=no
"""The ``effectual`` command line: Verilog emission, manifests and one-line errors."""

import dataclasses
import json
import subprocess
import sys

import pytest
from amaranth.hdl import Fragment

from effectual.cli import main
from hw.blocks import BLOCKS, build
from hw.params import PrecisionParams


def _expected_ports(component):
    """Ports of a component from its signature (independent of the Verilog text)."""
    from amaranth.hdl import Shape
    from amaranth.lib.wiring import In

    return [{"name": "__".join(map(str, path)),
             "direction": "input" if member.flow == In else "output",
             "width": Shape.cast(member.shape).width}
            for path, member, _ in component.signature.flatten(component)]


def test_verilog_one_block_with_parameters(tmp_path):
    out = tmp_path / "det.v"
    assert main(["verilog", "precision", "--group-size", "4", "--value-width", "8",
                 "--no-signed", "--trim-lsb", "--pipelined", "-o", str(out)]) == 0
    manifest = json.loads((tmp_path / "det.v.json").read_text())
    params = PrecisionParams(group_size=4, value_width=8, signed=False, trim_lsb=True,
                             pipelined=True)
    component = build("precision", params)
    Fragment.get(component, None)  # elaborated here: the port list needs no Verilog
    assert manifest["module"] == "dynamic_precision_detector"
    assert manifest["parameters"] == {"group_size": 4, "value_width": 8, "signed": False,
                                      "trim_lsb": True, "pipelined": True}
    assert manifest["latency"] == component.latency == 1
    signature_ports = {p["name"]: p for p in _expected_ports(component)}
    manifest_ports = {p["name"]: p for p in manifest["ports"]}
    assert manifest_ports.pop("clk") == {"name": "clk", "direction": "input", "width": 1}
    assert manifest_ports.pop("rst") == {"name": "rst", "direction": "input", "width": 1}
    assert manifest_ports == signature_ports
    assert f"module {manifest['module']}(" in out.read_text()


def test_verilog_all_writes_every_block(tmp_path):
    assert main(["verilog", "--all", "-o", str(tmp_path)]) == 0
    for block in BLOCKS.values():
        manifest = json.loads((tmp_path / f"{block.module_name}.v.json").read_text())
        assert manifest["parameters"] == dataclasses.asdict(block.default_params())
        assert (tmp_path / manifest["file"]).exists()


@pytest.mark.parametrize("argv, message", [
    (["verilog", "nosuchblock", "-o", "x.v"],
     "effectual verilog: error: unknown block 'nosuchblock'; known blocks: "
     + ", ".join(BLOCKS)),
    (["verilog", "precision", "--group-size", "0", "-o", "x.v"],
     "effectual verilog: error: group_size must be an integer from 1 to 256, not 0"),
    (["verilog", "precision", "--value-width", "wide", "-o", "x.v"],
     "effectual verilog: error: value_width must be an integer, not 'wide'"),
    (["verilog", "precision", "--value-width", "33", "-o", "x.v"],
     "effectual verilog: error: value_width must be an integer from 1 to 32, not 33"),
    (["verilog", "-o", "x.v"],
     f"effectual verilog: error: give a BLOCK ({', '.join(BLOCKS)}) or --all"),
    (["verilog", "--all", "--group-size", "3", "-o", "x"],
     "effectual verilog: error: --all emits default configurations; give no BLOCK or parameters"),
])
def test_verilog_errors_are_one_line(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err == message + "\n"
    assert not list(tmp_path.iterdir())


def test_console_script_exit_status(tmp_path):
    result = subprocess.run([sys.executable, "-m", "effectual.cli", "verilog", "bogus", "-o",
                             str(tmp_path / "x.v")], capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1
