"""Verilator ``-Wall`` lint of emitted Verilog across configurations, with the project waivers."""

import pytest

from effectual.hdl import write_block
from effectual.lint import lint_file
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


def test_lint_reports_a_real_warning(tmp_path):
    path = tmp_path / "dynamic_precision_detector.v"
    write_block("precision", PrecisionParams(), path)
    text = path.read_text().replace("endmodule", "  wire [3:0] stray;\nendmodule", 1)
    path.write_text(text)
    ok, output = lint_file(path)
    assert not ok
    assert "stray" in output
