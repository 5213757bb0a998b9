"""Verilator ``-Wall`` lint of emitted Verilog across configurations, with the project waivers."""

import pytest

from effectual.cli import main
from effectual.hdl import write_block
from effectual.lint import lint_file
from hw.blocks import BLOCKS
from hw.params import PrecisionParams

CONFIGURATIONS = [
    PrecisionParams(),
    PrecisionParams(trim_lsb=True, pipelined=True),
    PrecisionParams(group_size=1, value_width=1, signed=False, trim_lsb=True, pipelined=True),
    PrecisionParams(group_size=2, value_width=1, signed=True, trim_lsb=True),
    PrecisionParams(group_size=4, value_width=8, signed=False, pipelined=True),
    PrecisionParams(group_size=16, value_width=32, signed=True, trim_lsb=True, pipelined=True),
    PrecisionParams(group_size=256, value_width=17, signed=True, trim_lsb=True),
]


@pytest.mark.parametrize("params", CONFIGURATIONS, ids=lambda p: (
    f"g{p.group_size}-w{p.value_width}-{'s' if p.signed else 'u'}"
    f"{'-trim' if p.trim_lsb else ''}{'-pipe' if p.pipelined else ''}"))
def test_precision_detector_lints_clean(params, tmp_path):
    path = tmp_path / "dynamic_precision_detector.v"
    write_block("precision", params, path)
    ok, output = lint_file(path)
    assert ok, output


#: Blocks the sweep below leaves out, with the reason. ``make lint`` (every block of
#: ``make verilog``) still lints them.
SWEEP_EXCLUDED = {
    # The paper-size TCLp tile (16 x 16 x 16, 16-bit): emitting it alone takes about 60 s of CPU.
    "tclp": "paper-size tile, ~60 s CPU to emit; covered by make lint",
}


@pytest.mark.parametrize("name", [name for name in BLOCKS if name not in SWEEP_EXCLUDED])
def test_every_block_lints_clean_with_default_parameters(name, tmp_path):
    block = BLOCKS[name]
    path = tmp_path / f"{block.module_name}.v"
    write_block(name, block.default_params(), path)
    ok, output = lint_file(path)
    assert ok, output


def test_lint_reports_a_real_warning(tmp_path):
    path = tmp_path / "dynamic_precision_detector.v"
    write_block("precision", PrecisionParams(), path)
    text = path.read_text().replace(
        "endmodule", "  wire [3:0] stray;\n  wire [3:0] reader = stray;\nendmodule", 1)
    path.write_text(text)
    ok, output = lint_file(path)
    assert not ok
    assert "%Warning-UNDRIVEN" in output and "stray" in output


def test_lint_command_takes_files_and_directories(tmp_path, capsys):
    path = tmp_path / "dynamic_precision_detector.v"
    write_block("precision", PrecisionParams(trim_lsb=True), path)
    assert main(["lint", str(path), str(tmp_path)]) == 0
    assert capsys.readouterr().out == f"clean  {path}\n" * 2


@pytest.mark.parametrize("manifest, message", [
    (None, "{v}: no manifest dynamic_precision_detector.v.json next to it (emit Verilog with "
           "`effectual verilog`)"),
    ("{}", "{v}.json: manifest has no 'module' name"),
    ("{not json", "{v}.json: unreadable manifest (Expecting property name enclosed in double "
                  "quotes: line 1 column 2 (char 1))"),
])
@pytest.mark.parametrize("command", ["lint", "synth"])
def test_bad_manifest_is_one_line(command, manifest, message, tmp_path, capsys):
    path = tmp_path / "dynamic_precision_detector.v"
    write_block("precision", PrecisionParams(), path)
    manifest_path = tmp_path / "dynamic_precision_detector.v.json"
    if manifest is None:
        manifest_path.unlink()
    else:
        manifest_path.write_text(manifest)
    argv = [command, str(tmp_path)] + (["-o", str(tmp_path / "out")] if command == "synth" else [])
    assert main(argv) == 2
    assert capsys.readouterr().err == f"effectual {command}: error: {message.format(v=path)}\n"


def test_lint_missing_path_is_one_line(tmp_path, capsys):
    assert main(["lint", str(tmp_path / "nothing.v")]) == 2
    assert capsys.readouterr().err == (f"effectual lint: error: {tmp_path / 'nothing.v'}: "
                                       "no such file or directory\n")
