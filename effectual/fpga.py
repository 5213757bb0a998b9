"""``effectual fpga`` (a tile bitstream for a board) and ``effectual board run`` (a layer on it).

    effectual fpga --board B --design D [--tile FxNxW] [--pattern P] [--weight-width N]
                   [--act-width N] [--signed-acts] [--rows N] [--baud N] [-o DIR] [--program]
                   [--encoding E] [--first-stage-bits L1] [--run-ahead A]   (tcle, pragmatic)
                   [--encoding E] [--fp-acc-width W]                         (fpraker)
                   [--clock-divider 1|2|4|8]   (the tile on a divided board clock; fpraker: 4)
    effectual board run --board B --layer FILE --port DEV [--baud N] [--max-windows N]
                        [--design D --tile FxNxW ...  with --port sim]

``fpga`` elaborates `hw.board_tile.BoardTileTop` (the tile, the UART host link, the LEDs and
the self-test vectors computed by the golden model at build time), runs Yosys and nextpnr from
YoWASP, writes ``DIR/fpga.json`` and prints the utilisation and the post-route Fmax against the
board clock. It exits with status 1 (after writing the JSON) when the design misses the board
clock, and reports a design that does not fit the device as an error naming the resource.

``board run`` talks to a board running such a bitstream through a serial port (pyserial), or,
with ``--port sim``, to the same board top simulated in amaranth.sim with a UART model on its
pins. It checks the board's configuration (handshake), runs every pass of the layer
(`effectual.driver.Board.run_layer`), and compares outputs and cycle counts with golden.
"""

import argparse
import dataclasses
import json
import pathlib
import re
import subprocess
import sys
import time

__all__ = ["BOARD_TILES", "DESIGN_TILES", "parse_tile", "board_params", "build_tile_bitstream",
           "add_arguments", "run", "add_run_arguments", "board_run", "params_from_info"]

#: the tile configuration built by default on each board (fits and meets the board clock; see
#: the README's measured table)
BOARD_TILES = {
    "icebreaker": dict(filters=2, lanes=4, windows=2, weight_width=8, act_width=8,
                       act_signed=False, pattern="L<2,1>", weight_rows=32, act_rows=32),
    "ulx3s-85f": dict(filters=4, lanes=8, windows=4, weight_width=8, act_width=8,
                      act_signed=False, pattern="T<2,5>", weight_rows=128, act_rows=128),
}
#: per-design changes to `BOARD_TILES`: the iCEBreaker's UP5K has 8 DSP blocks, so the
#: bit-parallel tile (baseline, wskip: F*N*W multipliers) gets one window there; the TCLe tile
#: (tcle, pragmatic) is 2x2x2 there (2x4x2 and 1x4x2 need more than the 5280 LCs) and 4x8x2 on
#: the ULX3S (half the term encoders of 4x8x4)
DESIGN_TILES = {("icebreaker", "baseline"): dict(windows=1),
                ("icebreaker", "wskip"): dict(windows=1),
                ("icebreaker", "tcle"): dict(lanes=2),
                ("icebreaker", "pragmatic"): dict(lanes=2),
                ("ulx3s-85f", "tcle"): dict(windows=2),
                ("ulx3s-85f", "pragmatic"): dict(windows=2)}
#: the `hw.params.FPRakerTileParams` fields built by default for design fpraker (bfloat16,
#: windows 1, no pattern): on the iCEBreaker one PE of 4 lanes (2x4 takes 77% of the UP5K's LUTs
#: before the host link; 1x4 with the link is 94% of the LCs) and 72 sets per pass (every LeNet
#: layer fits: conv3's 288-term dot products take 72 sets of 4); on the ULX3S 4 PEs of 8 lanes
#: and 64 sets. The PE's accumulate path is one long cycle: on the UP5K the tile reaches about
#: 5 MHz and misses the 12 MHz board clock (docs/fpga-bringup.md)
FPRAKER_TILES = {
    "icebreaker": dict(filters=1, lanes=4, weight_rows=72, act_rows=72),
    "ulx3s-85f": dict(filters=4, lanes=8, weight_rows=64, act_rows=64),
}
#: (board, design) -> the default clock divider (`hw.board_tile.CLOCK_DIVIDERS`) between the board
#: clock and the tile: the FPRaker PE's one-cycle set path reaches about 5 MHz on the UP5K, so
#: the iCEBreaker runs it at 12 / 4 = 3 MHz (reaches 5.03), the ULX3S at 25 / 4 = 6.25 MHz
#: (reaches 10.23)
CLOCK_DIVIDERS = {("icebreaker", "fpraker"): 4, ("ulx3s-85f", "fpraker"): 4}
#: the `hw.params.TCLeTileParams` options of the term-serial designs (tcle, pragmatic), and the
#: command-line option setting each
TERM_SERIAL_OPTIONS = {"encoding": "--encoding", "first_stage_bits": "--first-stage-bits",
                       "run_ahead": "--run-ahead"}
#: the `hw.params.FPRakerTileParams` options of design fpraker, and the command-line option
#: setting each (``fp_acc_width`` default 28)
FPRAKER_OPTIONS = {"encoding": "--encoding", "fp_acc_width": "--fp-acc-width"}
#: patterns tried (in order) to recognise a board's pattern from the CRC in its VERSION info
KNOWN_PATTERNS = ["none", "T<2,5>"] + [f"L<{h},{d}>" for h in range(0, 8) for d in range(0, 8)
                                         if h + d]
DEFAULT_BAUD = 115200
_TILE = re.compile(r"^(\d+)x(\d+)x(\d+)$")


def parse_tile(text):
    """Return ``(filters, lanes, windows)`` from ``"FxNxW"``; ``ValueError`` otherwise."""
    match = _TILE.match(str(text))
    if not match:
        raise ValueError(f"--tile must be FxNxW (filters x lanes x windows), e.g. 2x4x2, "
                         f"not {text!r}")
    return tuple(int(v) for v in match.groups())


def board_params(board, *, design="tclp", tile=None, **overrides):
    """Return the tile parameters for ``design`` on ``board``: `BOARD_TILES` (and
    `DESIGN_TILES`) with ``tile`` (``"FxNxW"``) and ``overrides`` (fields; None values ignored)
    applied.

    A `TileParams` for the bit-parallel and bit-serial designs, a `TCLeTileParams` for the
    term-serial ones (``tcle``, ``pragmatic``; `TERM_SERIAL_OPTIONS` overrides apply to them
    only, else ``ValueError``), an `FPRakerTileParams` for ``fpraker`` (from `FPRAKER_TILES`;
    `FPRAKER_OPTIONS` apply to it, ``fp_acc_width`` to it only). ``baseline``, ``dstripes``
    and ``pragmatic`` have pattern ``none`` (`hw.board_tile.FIXED_PATTERNS`): a ``pattern`` override for them is a
    ``ValueError``; ``pragmatic`` does not gate zero weights (`hw.board_tile.FIXED_GATING`).
    """
    from hw.board import get_board
    from hw.board_tile import DESIGNS, FIXED_GATING, FIXED_PATTERNS, design_backend
    from hw.params import FPRakerTileParams, TCLeTileParams, TileParams

    get_board(board)
    backend = design_backend(design)
    term_serial = backend == "term-serial"
    fpraker = backend == "fpraker"
    accepted = (TERM_SERIAL_OPTIONS if term_serial else FPRAKER_OPTIONS if fpraker else {})
    for name, option in {**TERM_SERIAL_OPTIONS, **FPRAKER_OPTIONS}.items():
        if overrides.get(name) is not None and name not in accepted:
            takers = [d for d, (_, b) in DESIGNS.items()
                      if name in (TERM_SERIAL_OPTIONS if b == "term-serial" else
                                  FPRAKER_OPTIONS if b == "fpraker" else {})]
            names = ", ".join(takers[:-1]) + " and " + takers[-1] if len(takers) > 1 \
                else takers[0]
            raise ValueError(f"{option} applies to {names} only, not {design}")
    if fpraker:
        fields = dict(FPRAKER_TILES[board])
    else:
        fields = dict(BOARD_TILES[board])
        fields.update(DESIGN_TILES.get((board, design), {}))
    if design in FIXED_PATTERNS:
        if overrides.get("pattern") not in (None, FIXED_PATTERNS[design]):
            takers = [d for d in DESIGNS if d not in FIXED_PATTERNS]
            raise ValueError(f"--pattern applies to {', '.join(takers[:-1])} and {takers[-1]} "
                             f"only, not {design}")
        fields["pattern"] = FIXED_PATTERNS[design]
    if design in FIXED_GATING and not fpraker:
        fields["gate_zero_weights"] = FIXED_GATING[design]
    if tile is not None:
        fields["filters"], fields["lanes"], fields["windows"] = parse_tile(tile)
    fields.update({k: v for k, v in overrides.items() if v is not None})
    if fpraker:
        return FPRakerTileParams(**fields)
    return TCLeTileParams(**fields) if term_serial else TileParams(**fields)


def make_board_tile(params, design, *, clock_hz, baud, timeout=None, selftest_seed=1):
    """Return a `hw.board_tile.BoardTile` with golden self-test vectors baked in."""
    from hw.board_tile import DESIGNS, BoardTile
    from hw.hostlink import SelfTest
    from hw.uart import baud_divisor

    from .driver import selftest_vectors

    if design not in DESIGNS:
        raise ValueError(f"unknown design {design!r}; known designs: {', '.join(DESIGNS)}")
    divisor = baud_divisor(clock_hz, baud)
    vectors = selftest_vectors(params, backend=DESIGNS[design][1], seed=selftest_seed)
    return BoardTile(params=params, design=design, divisor=divisor, timeout=timeout,
                     selftest=SelfTest(**vectors), clock_hz=int(clock_hz))


_NO_FIT = re.compile(r"(ERROR: .*(?:not enough|than available|Unable to place|no BELs "
                     r"remaining|Failed to place|Failed to expand region).*)", re.IGNORECASE)


def build_tile_bitstream(board, design, params, *, build_dir, baud=DEFAULT_BAUD, name="top",
                         clock_divider=None):
    """Build the bitstream of a tile board top; return the summary dictionary.

    ``clock_divider`` (`hw.board_tile.CLOCK_DIVIDERS`; default `CLOCK_DIVIDERS` of the board and
    design, else 1) divides the board clock for the tile (`hw.board_tile.BoardTileTop`).

    Keys: ``board``, ``device``, ``family``, ``design``, ``parameters`` (`TileParams` fields),
    ``baud``, ``divisor``, ``clock_divider``, ``board_clock_mhz``, ``clock_mhz`` (the tile's
    clock), ``fmax_mhz`` (post-route, the tile's clock), ``fmax`` (per clock, with its
    constraint), ``timing_met`` (every clock meets its constraint), ``utilisation`` (nextpnr
    BELs), ``yosys`` (``luts``, ``flip_flops``, ``cells``), ``bitstream``, ``seconds``
    (``elaborate``, ``toolchain``), ``versions``.

    Raises ``ValueError`` if the design does not fit the device (naming the resource from
    nextpnr's log) and ``OSError`` if a tool is missing or fails otherwise.
    """
    from hw import board as hw_board
    from hw.board_tile import TILE_CLOCK_NET, BoardTileTop

    platform_class = hw_board.get_board(board)
    family = hw_board.board_family(board)
    env = hw_board.tool_environment(family)
    build_dir = pathlib.Path(build_dir)
    started = time.perf_counter()
    platform = platform_class()
    if clock_divider is None:
        clock_divider = CLOCK_DIVIDERS.get((board, design), 1)
    tile_clock_hz = platform.default_clk_frequency / clock_divider
    board_tile = make_board_tile(params, design, clock_hz=tile_clock_hz, baud=baud)
    top = BoardTileTop(board, board_tile, clock_divider=clock_divider)
    # iCE40: map multipliers to the UP5K's SB_MAC16 DSPs (synth_ice40 -dsp); ECP5 uses its
    # MULT18X18D blocks by default
    extra = {"synth_opts": "-dsp"} if family == "ice40" else {}
    if clock_divider > 1:  # constrain the divided clock by its net name (not the board clock's)
        mhz = tile_clock_hz / 1e6
        if family == "ice40":
            extra["add_constraints"] = f"set_frequency {TILE_CLOCK_NET} {mhz:g}\n"
        else:
            extra["add_preferences"] = f'FREQUENCY NET "{TILE_CLOCK_NET}" {mhz:g} MHz;\n'

    plan = platform.build(
        top, name=name, do_build=False,
        nextpnr_opts="--report report.json --timing-allow-fail",
        script_after_synth=f"tee -q -o {name}.stat.json stat -json", **extra)
    plan.extract(build_dir)
    elaborated = time.perf_counter()
    log_path = build_dir / "build.log"
    with open(log_path, "w") as log:
        result = subprocess.run(["sh", f"{plan.script}.sh"], cwd=build_dir, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    finished = time.perf_counter()
    if result.returncode != 0:
        text = log_path.read_text()
        fit = _NO_FIT.findall(text)
        if fit:
            raise ValueError(f"design {design} {params.filters}x{params.lanes}x"
                             f"{params.windows} does not fit the {platform.device}: "
                             f"{fit[0].strip()} (see {log_path}; try a smaller --tile or --rows)")
        last = [line for line in text.splitlines() if line.strip()][-1:]
        raise OSError(f"bitstream build for {board} failed (exit {result.returncode}): "
                      f"{last[0].strip() if last else 'no output'}; see {log_path}")
    fmax, utilisation = hw_board.parse_nextpnr_report(build_dir / "report.json")
    luts, flip_flops, cells = hw_board.parse_yosys_stat(build_dir / f"{name}.stat.json", family)
    fmax_mhz = min((v["achieved"] for v in fmax.values()), default=None)
    clock_mhz = tile_clock_hz / 1e6
    return {
        "board": board,
        "device": f"{platform.device}-{platform.package}",
        "family": family,
        "design": design,
        "parameters": dataclasses.asdict(params),
        "baud": baud,
        "divisor": board_tile.divisor,
        "clock_divider": clock_divider,
        "board_clock_mhz": platform.default_clk_frequency / 1e6,
        "clock_mhz": clock_mhz,
        "fmax_mhz": fmax_mhz,
        "fmax": fmax,
        # every clock against its own constraint (a divided tile clock: its frequency)
        "timing_met": bool(fmax) and all(v["achieved"] >= v["constraint"]
                                         for v in fmax.values()),
        "utilisation": utilisation,
        "yosys": {"luts": luts, "flip_flops": flip_flops, "cells": cells},
        "bitstream": str(build_dir / f"{name}{hw_board._FAMILIES[family][1]}"),
        "seconds": {"elaborate": round(elaborated - started, 2),
                    "toolchain": round(finished - elaborated, 2)},
        "versions": hw_board._versions(family),
    }


def format_summary(result):
    """Return the printed summary of a `build_tile_bitstream` result."""
    p = result["parameters"]
    term = (f" {p['encoding']} L1={p['first_stage_bits']} A={p['run_ahead']}"
            if "first_stage_bits" in p else
            f" {p['encoding']} W={p['fp_acc_width']} (bfloat16)" if "fp_acc_width" in p else "")
    lines = [f"{result['board']} ({result['device']}): {result['design']} tile "
             f"{p['filters']}x{p['lanes']}x{p['windows']} pattern {p['pattern']}{term} "
             f"w{p['weight_width']}/a{p['act_width']}{'s' if p['act_signed'] else 'u'} "
             f"rows {p['weight_rows']}/{p['act_rows']}, UART {result['baud']} baud "
             f"(divisor {result['divisor']})"]
    width = max((len(bel) for bel in result["utilisation"]), default=0)
    for bel, use in result["utilisation"].items():
        lines.append(f"  {bel:<{width}}  {use['used']:>6} / {use['available']:<6} "
                     f"({100 * use['used'] / use['available']:.1f}%)")
    lines.append(f"  yosys: {result['yosys']['luts']} LUTs, "
                 f"{result['yosys']['flip_flops']} flip-flops")
    fmax = result["fmax_mhz"]
    if fmax is None:
        lines.append("  Fmax: no clock in the report")
    else:
        divided = result.get("clock_divider", 1) > 1
        clock = (f"tile clock {result['clock_mhz']:g} MHz = board clock "
                 f"{result['board_clock_mhz']:g} / {result['clock_divider']}" if divided
                 else f"board clock {result['clock_mhz']:g} MHz")
        lines.append(f"  Fmax {fmax:.2f} MHz post-route ({clock}: "
                     f"{'PASS' if result['timing_met'] else 'FAIL'})")
    seconds = result["seconds"]
    lines.append(f"  bitstream {result['bitstream']} "
                 f"(elaborate {seconds['elaborate']:.1f} s, tools {seconds['toolchain']:.1f} s)")
    return "\n".join(lines)


def _add_tile_options(parser, *, prefix=""):
    parser.add_argument("--design", dest=f"{prefix}design", default="tclp", metavar="D",
                        help="tile design: baseline, dstripes (no pattern), wskip, tclp, tcle "
                             "(term-serial), pragmatic (term-serial, no pattern, no "
                             "zero-weight gating) or fpraker (bfloat16 FPRaker PEs; --tile Px"
                             "Nx1) (default tclp)")
    parser.add_argument("--tile", dest=f"{prefix}tile", metavar="FxNxW",
                        help="filters x lanes x windows (default: sized to the board)")
    for option, metavar, text in (
            ("--encoding", "E", "tcle, pragmatic, fpraker: activation term encoding booth, "
                                "naf or binary (default booth; fpraker naf)"),
            ("--first-stage-bits", "L1", "tcle, pragmatic: first-stage shifter bits 0..3 "
                                         "(default 2)"),
            ("--run-ahead", "A", "tcle, pragmatic: column run-ahead rows 0..8 (default 0)"),
            ("--fp-acc-width", "W", "fpraker: the PEs' accumulator window 16..48 "
                                    "(default 28)")):
        try:
            parser.add_argument(option, dest=f"{prefix}{option[2:].replace('-', '_')}",
                                metavar=metavar, help=text)
        except argparse.ArgumentError:
            # ``effectual board`` already has the option (a block parameter of the same name,
            # dest without the prefix): `_term_options` reads it from there
            pass


def _term_options(args, prefix=""):
    """Return the `TERM_SERIAL_OPTIONS` and `FPRAKER_OPTIONS` given in ``args`` (None when
    absent), the integers converted; ``ValueError`` naming the option for a non-integer."""
    options = {}
    for name, option in {**TERM_SERIAL_OPTIONS, **FPRAKER_OPTIONS}.items():
        value = getattr(args, f"{prefix}{name}", None)
        if value is None:
            value = getattr(args, name, None)
        if value is not None and name != "encoding":
            try:
                value = int(value)
            except ValueError:
                raise ValueError(f"{option} must be an integer, not {value!r}") from None
        options[name] = value
    return options


def add_arguments(parser):
    """Register the ``fpga`` options."""
    from hw.board import BOARDS

    parser.add_argument("--board", required=True, help=f"board: {', '.join(BOARDS)}")
    _add_tile_options(parser)
    parser.add_argument("--pattern", help="connectivity pattern of wskip, tclp and tcle "
                                          "(default: the board's)")
    parser.add_argument("--weight-width", type=int, metavar="N")
    parser.add_argument("--act-width", type=int, metavar="N")
    parser.add_argument("--signed-acts", action="store_true", default=None,
                        help="two's-complement activations (default unsigned)")
    parser.add_argument("--rows", type=int, metavar="N",
                        help="weight_rows = act_rows (default: the board's)")
    parser.add_argument("--baud", type=int, default=DEFAULT_BAUD, metavar="N",
                        help=f"UART rate (default {DEFAULT_BAUD})")
    parser.add_argument("--clock-divider", type=int, metavar="K",
                        help="run the tile on the board clock divided by K: 1, 2, 4 or 8 "
                             "(default 4 for fpraker, else 1)")
    parser.add_argument("-o", "--output", type=pathlib.Path, metavar="DIR",
                        help="build directory (default build/fpga/BOARD-DESIGN)")
    parser.add_argument("--program", action="store_true",
                        help="load the bitstream with iceprog or openFPGALoader after building")


def run(args):
    """Build (and program); return 0, or 1 when timing is missed."""
    from hw.board import find_programmer, get_board, program_bitstream
    from hw.board_tile import CLOCK_DIVIDERS as TILE_CLOCK_DIVIDERS
    from hw.board_tile import DESIGNS
    from hw.uart import baud_divisor

    if args.design not in DESIGNS:
        raise ValueError(f"unknown design {args.design!r}; known designs: {', '.join(DESIGNS)}")
    divider = args.clock_divider
    if divider is None:
        divider = CLOCK_DIVIDERS.get((args.board, args.design), 1)
    if divider not in TILE_CLOCK_DIVIDERS:
        raise ValueError(f"--clock-divider must be one of "
                         f"{', '.join(map(str, TILE_CLOCK_DIVIDERS))}, not {divider}")
    baud_divisor(get_board(args.board)().default_clk_frequency / divider, args.baud)
    params = board_params(args.board, design=args.design, tile=args.tile, pattern=args.pattern,
                          weight_width=args.weight_width, act_width=args.act_width,
                          act_signed=args.signed_acts, weight_rows=args.rows,
                          act_rows=args.rows, **_term_options(args))
    programmer = find_programmer(args.board) if args.program else None
    out = args.output or pathlib.Path("build") / "fpga" / f"{args.board}-{args.design}"
    out.mkdir(parents=True, exist_ok=True)
    result = build_tile_bitstream(args.board, args.design, params, build_dir=out,
                                  baud=args.baud, clock_divider=divider)
    (out / "fpga.json").write_text(json.dumps(result, indent=2) + "\n")
    print(format_summary(result))
    print(f"wrote {out / 'fpga.json'}")
    if not result["timing_met"]:
        print(f"effectual fpga: error: {result['design']} misses the {result['clock_mhz']:g} MHz "
              f"{'tile' if divider > 1 else 'board'} clock (Fmax {result['fmax_mhz']:.2f} MHz); "
              f"try a smaller --tile or a larger --clock-divider", file=sys.stderr)
        return 1
    if args.program:
        program_bitstream(args.board, result["bitstream"], programmer)
        print(f"programmed {args.board} with {programmer[0]}")
    return 0


# --- effectual board run ------------------------------------------------------------------------

def add_run_arguments(parser):
    """Register the options of ``effectual board run`` on the ``board`` parser."""
    group = parser.add_argument_group("effectual board run --board B --layer FILE --port DEV")
    group.add_argument("--board", dest="run_board", metavar="B",
                       help="board the bitstream was built for")
    group.add_argument("--layer", dest="run_layer", type=pathlib.Path, metavar="FILE",
                       help="layer file to run")
    group.add_argument("--port", dest="run_port", metavar="DEV",
                       help="serial port, or 'sim' for the simulated board top")
    group.add_argument("--baud", dest="run_baud", type=int, default=DEFAULT_BAUD, metavar="N",
                       help=f"UART rate (default {DEFAULT_BAUD})")
    group.add_argument("--max-windows", dest="run_max_windows", type=int, metavar="N",
                       help="run only the first N output windows of the layer")
    group.add_argument("--json", dest="run_json", type=pathlib.Path, metavar="FILE",
                       help="write the per-pass outputs check and cycles as JSON")
    _add_tile_options(group, prefix="run_")


def params_from_info(info):
    """Return the tile parameters of a board from its `effectual.driver.BoardInfo`: a
    `TCLeTileParams` for a term-serial board (with its encoding, first-stage bits, run-ahead and
    gating), an `FPRakerTileParams` for an fpraker board (P, N, R, encoding, W), else a
    `TileParams`; the pattern is recognised among `KNOWN_PATTERNS` by its CRC (``ValueError`` if
    it is not)."""
    from hw.params import FPRakerTileParams, TCLeTileParams, TileParams
    from hw.protocol import pattern_crc

    if info.fpraker:
        params = FPRakerTileParams(filters=info.filters, lanes=info.lanes,
                                   windows=info.windows, weight_width=info.weight_width,
                                   act_width=info.act_width, act_signed=info.act_signed,
                                   weight_rows=info.weight_rows, act_rows=info.act_rows,
                                   fp_acc_width=info.fp_acc_width, encoding=info.encoding)
        if pattern_crc(params.offsets) != info.pattern_crc:
            raise ValueError(f"the fpraker board's pattern (CRC 0x{info.pattern_crc:04x}) is "
                             f"not none")
        return params

    base = dict(filters=info.filters, lanes=info.lanes, windows=info.windows,
                weight_width=info.weight_width, act_width=info.act_width,
                act_signed=info.act_signed, weight_rows=info.weight_rows,
                act_rows=info.act_rows)
    cls = TileParams
    if info.term_serial:
        cls = TCLeTileParams
        base.update(encoding=info.encoding, first_stage_bits=info.first_stage_bits,
                    run_ahead=info.run_ahead, gate_zero_weights=info.gate_zero_weights)
    for pattern in KNOWN_PATTERNS:
        try:
            params = cls(pattern=pattern, **base)
        except ValueError:
            continue
        if pattern_crc(params.offsets) == info.pattern_crc:
            return params
    raise ValueError(f"the board's pattern (CRC 0x{info.pattern_crc:04x}) is none of the known "
                     f"patterns")


class _SimPins:
    """``--port sim``: the board top in amaranth.sim behind a UART pin model."""

    def __init__(self, board, design, tile, **options):
        from sim.board_sim import PinTransport

        params = board_params(board, design=design, tile=tile, **options)
        board_tile = make_board_tile(params, design, clock_hz=8 * DEFAULT_BAUD,
                                     baud=DEFAULT_BAUD)
        self.transport = PinTransport(board_tile)


def board_run(args):
    """``effectual board run``: run a layer on a board; return 0 if it matches golden, else 1."""
    from golden.layers import load_layer
    from hw.board_tile import design_name

    from .cli import UsageError
    from .driver import Board, SerialTransport

    missing = [option for option, value in (("--board", args.run_board),
                                            ("--layer", args.run_layer),
                                            ("--port", args.run_port)) if value is None]
    if missing:
        raise UsageError(f"board run needs {', '.join(missing)}")
    from hw.board import get_board

    get_board(args.run_board)
    layer = load_layer(args.run_layer)
    if args.run_port == "sim":
        transport = _SimPins(args.run_board, args.run_design, args.run_tile,
                             **_term_options(args, "run_")).transport
    else:
        transport = SerialTransport(args.run_port, baud=args.run_baud)
    board = Board(transport)
    info = board.handshake()
    params = params_from_info(info)
    board.expect(params)
    term = (f" {info.encoding} L1={info.first_stage_bits} A={info.run_ahead}"
            if info.term_serial else
            f" {info.encoding} W={info.fp_acc_width} (bfloat16)" if info.fpraker else "")
    print(f"board: {design_name(info.backend, params.pattern, info.gate_zero_weights)} tile "
          f"{params.filters}x{params.lanes}x{params.windows} pattern {params.pattern}{term}, "
          f"{info.clock_hz / 1e6:g} MHz, self-test {'present' if info.selftest else 'absent'}")
    status = board.status()
    if status.selftest_done:
        print(f"power-on self-test: {'PASS' if status.selftest_pass else 'FAIL'}")

    def report(p):
        print(f"  pass tile {p.tile} chunk {p.chunk}: outputs "
              f"{'==' if (p.outputs == p.expected).all() else '!='} golden, cycles {p.cycles} "
              f"(golden {p.expected_cycles})")

    result = board.run_layer(layer, max_windows=args.run_max_windows, on_pass=report)
    seconds_at_clock = result.cycles / info.clock_hz if info.clock_hz else None
    line = (f"{layer.name or args.run_layer.name}: {len(result.passes)} passes, "
            f"{result.macs} MACs, {result.cycles} compute cycles")
    if seconds_at_clock:
        line += f", {result.macs / seconds_at_clock / 1e6:.1f} MMAC/s at the board clock"
    print(line)
    if args.run_json is not None:
        args.run_json.write_text(json.dumps({
            "layer": str(args.run_layer), "passes": [
                {"tile": p.tile, "chunk": p.chunk, "ok": p.ok, "cycles": p.cycles,
                 "expected_cycles": p.expected_cycles} for p in result.passes],
            "macs": result.macs, "cycles": result.cycles, "ok": result.ok,
            "clock_hz": info.clock_hz}, indent=2) + "\n")
    print("outputs and cycles equal golden" if result.ok else "MISMATCH with golden")
    return 0 if result.ok else 1
