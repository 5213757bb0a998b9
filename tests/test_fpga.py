"""``effectual fpga``: one full tile bitstream per FPGA family (iCE40 and ECP5) and the errors.

Each build is a small bit-parallel tile with a pattern (design ``wskip``: 1 filter x 2 lanes x
1 window, 8 rows) so that it runs in the default suite: the UART host link, the self-test ROM,
the LEDs and the tile all go through Yosys, nextpnr and the packer. The ECP5 build runs the tile
on the board clock divided by 2 (`hw.board_tile.BoardTileTop`'s ``clock_divider``), so the
divided clock's constraint reaches nextpnr there. The figures in ``fpga.json`` are checked
against nextpnr's own text log, and the bitstream against the family's file header.
"""

import json
import re

import pytest

from effectual import cli
from hw import board as hw_board

BUILD = ["--design", "wskip", "--tile", "1x2x1", "--pattern", "L<1,1>", "--rows", "8"]
HEADERS = {"icebreaker": bytes.fromhex("ff0000ff7eaa997e"),     # icepack: comment, sync word
           "ulx3s-85f": b"\xff\x00Part: LFE5U-85F"}          # ecppack: comment, device


@pytest.mark.parametrize("board", ["icebreaker", "ulx3s-85f"])
def test_full_bitstream(board, tmp_path, capsys):
    try:
        hw_board.tool_environment(hw_board.board_family(board))
    except OSError as error:
        pytest.skip(f"fpga extra not installed: {error}")
    out = tmp_path / board
    divider = {"icebreaker": 1, "ulx3s-85f": 2}[board]
    assert cli.main(["fpga", "--board", board, *BUILD, "--clock-divider", str(divider), "-o",
                     str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads((out / "fpga.json").read_text())
    assert result["parameters"]["filters"] == 1 and result["design"] == "wskip"
    assert result["clock_divider"] == divider
    assert result["clock_mhz"] == result["board_clock_mhz"] / divider
    # the UART divisor of the tile's clock: 12 MHz / 115200, 12.5 MHz / 115200
    assert result["divisor"] == {"icebreaker": 104, "ulx3s-85f": 109}[board]
    log = (out / "top.tim").read_text()
    # nextpnr's final report: one line per clock (the last len(fmax) lines)
    reported = re.findall(
        r"Max frequency for clock +'([^']+)': ([\d.]+) MHz \((?:PASS|FAIL) at ([\d.]+) MHz\)",
        log)[-len(result["fmax"]):]
    constraints = sorted(float(constraint) for _, _, constraint in reported)
    # every clock constrained to its own frequency: the tile's (divided) and the board's
    assert constraints == sorted({result["clock_mhz"], result["board_clock_mhz"]})
    assert round(result["fmax_mhz"], 2) == min(float(achieved) for _, achieved, _ in reported)
    assert result["timing_met"] == all(float(achieved) >= float(constraint)
                                       for _, achieved, constraint in reported)
    logged = {bel: (int(used), int(available)) for bel, used, available in
              re.findall(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%$", log, re.MULTILINE)}
    assert {bel: (u["used"], u["available"]) for bel, u in result["utilisation"].items()} == {
        bel: counts for bel, counts in logged.items() if counts[0]}
    io = "SB_IO" if board == "icebreaker" else "TRELLIS_IO"
    # clock, button, UART rx and tx, four LEDs
    assert result["utilisation"][io]["used"] == 8
    assert open(result["bitstream"], "rb").read(len(HEADERS[board])) == HEADERS[board]
    assert f"Fmax {result['fmax_mhz']:.2f} MHz post-route" in printed


def test_fpga_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["fpga", "--board", "de0", "-o", "x"]) == 2
    assert capsys.readouterr().err.startswith("effectual fpga: error: unknown board 'de0'")
    assert cli.main(["fpga", "--board", "icebreaker", "--tile", "2x2", "-o", "x"]) == 2
    assert capsys.readouterr().err == ("effectual fpga: error: --tile must be FxNxW (filters x "
                                       "lanes x windows), e.g. 2x4x2, not '2x2'\n")
    assert cli.main(["fpga", "--board", "icebreaker", "--design", "xyz", "-o", "x"]) == 2
    assert capsys.readouterr().err == ("effectual fpga: error: unknown design 'xyz'; known "
                                       "designs: baseline, dstripes, wskip, tclp, tcle, "
                                       "pragmatic, fpraker\n")
    assert cli.main(["fpga", "--board", "icebreaker", "--design", "baseline", "--pattern",
                     "T<2,5>", "-o", "x"]) == 2
    assert capsys.readouterr().err == ("effectual fpga: error: --pattern applies to wskip, "
                                       "tclp and tcle only, not baseline\n")
    # the term-serial options: only for tcle and pragmatic, integers in their ranges
    assert cli.main(["fpga", "--board", "icebreaker", "--design", "tclp", "--encoding", "naf",
                     "-o", "x"]) == 2
    assert capsys.readouterr().err == ("effectual fpga: error: --encoding applies to tcle, "
                                       "pragmatic and fpraker only, not tclp\n")
    assert cli.main(["fpga", "--board", "icebreaker", "--design", "tcle", "--first-stage-bits",
                     "two", "-o", "x"]) == 2
    assert capsys.readouterr().err == ("effectual fpga: error: --first-stage-bits must be an "
                                       "integer, not 'two'\n")
    assert cli.main(["fpga", "--board", "icebreaker", "--design", "tcle", "--run-ahead", "9",
                     "-o", "x"]) == 2
    assert capsys.readouterr().err == ("effectual fpga: error: run_ahead must be an integer "
                                       "from 0 to 8, not 9\n")
    # the fpraker options: --fp-acc-width for fpraker only, the term-serial ones not for it
    assert cli.main(["fpga", "--board", "icebreaker", "--design", "tclp", "--fp-acc-width",
                     "24", "-o", "x"]) == 2
    assert capsys.readouterr().err == ("effectual fpga: error: --fp-acc-width applies to "
                                       "fpraker only, not tclp\n")
    assert cli.main(["fpga", "--board", "icebreaker", "--design", "fpraker", "--run-ahead",
                     "1", "-o", "x"]) == 2
    assert capsys.readouterr().err == ("effectual fpga: error: --run-ahead applies to tcle "
                                       "and pragmatic only, not fpraker\n")
    assert cli.main(["fpga", "--board", "icebreaker", "--design", "fpraker", "--fp-acc-width",
                     "wide", "-o", "x"]) == 2
    assert capsys.readouterr().err == ("effectual fpga: error: --fp-acc-width must be an "
                                       "integer, not 'wide'\n")
    assert cli.main(["fpga", "--board", "icebreaker", "--design", "fpraker", "--signed-acts",
                     "-o", "x"]) == 2
    assert capsys.readouterr().err == ("effectual fpga: error: act_signed of an FPRaker tile "
                                       "must be False, not True\n")
    assert cli.main(["fpga", "--board", "icebreaker", "--clock-divider", "3", "-o", "x"]) == 2
    assert capsys.readouterr().err == ("effectual fpga: error: --clock-divider must be one of "
                                       "1, 2, 4, 8, not 3\n")
    assert cli.main(["fpga", "--board", "icebreaker", "--baud", "2500000", "-o", "x"]) == 2
    assert capsys.readouterr().err == ("effectual fpga: error: baud 2500000 at 12 MHz is off by "
                                       "4.0 % (divisor 5); at most 2 % is accepted\n")
    assert not (tmp_path / "x").exists()


def test_does_not_fit_is_reported(tmp_path, monkeypatch, capsys):
    """nextpnr's out-of-resources error becomes a one-line error naming the resource."""
    import subprocess

    from effectual import fpga

    try:
        hw_board.tool_environment("ice40")
    except OSError as error:
        pytest.skip(f"fpga extra not installed: {error}")

    def fake_run(command, cwd, env, stdout, stderr):
        stdout.write("Info: Placed 9 cells based on constraints.\nERROR: Unable to place cell "
                     "'tile.mac', no BELs remaining to implement cell type 'ICESTORM_LC'\n")
        return subprocess.CompletedProcess(command, 1)

    monkeypatch.setattr(fpga.subprocess, "run", fake_run)
    out = tmp_path / "out"
    assert cli.main(["fpga", "--board", "icebreaker", *BUILD, "-o", str(out)]) == 2
    assert capsys.readouterr().err == (
        "effectual fpga: error: design wskip 1x2x1 does not fit the iCE40UP5K: ERROR: "
        "Unable to place cell 'tile.mac', no BELs remaining to implement cell type "
        f"'ICESTORM_LC' (see {out / 'build.log'}; try a smaller --tile or --rows)\n")
    # nextpnr's placer form of the same condition (a TCLe 1x4x2 on the UP5K)
    def fake_region(command, cwd, env, stdout, stderr):
        stdout.write("ERROR: Failed to expand region (0, 0) |_> (25, 31) of 5538 "
                     "ICESTORM_LCs\n0 warnings, 1 error\n")
        return subprocess.CompletedProcess(command, 1)

    monkeypatch.setattr(fpga.subprocess, "run", fake_region)
    assert cli.main(["fpga", "--board", "icebreaker", "--design", "tcle", "--tile", "1x4x2",
                     "-o", str(out)]) == 2
    assert capsys.readouterr().err == (
        "effectual fpga: error: design tcle 1x4x2 does not fit the iCE40UP5K: ERROR: "
        "Failed to expand region (0, 0) |_> (25, 31) of 5538 ICESTORM_LCs "
        f"(see {out / 'build.log'}; try a smaller --tile or --rows)\n")
