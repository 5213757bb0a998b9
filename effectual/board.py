"""``effectual board``: build (and optionally load) a board bitstream around one block.

    effectual board BOARD [BLOCK] [--param value ...] -o DIR [--program]
    effectual board run --board B --layer FILE --port DEV     (see `effectual.fpga`)

BOARD is one of `hw.board.BOARDS` (``icebreaker``, ``ulx3s-85f``), BLOCK one of
`hw.blocks.BLOCKS` (default ``precision``); block parameters are the same options as for
``effectual verilog``. The block is wrapped in `hw.board.BoardTop` (pattern generator in,
registered XOR fold to the LEDs out, button 0 resets) and built with the YoWASP tools in DIR.
The nextpnr utilisation, the Yosys LUT and flip-flop counts and the post-route Fmax are printed
and written to ``DIR/board.json``. ``--program`` then loads the bitstream with iceprog or
openFPGALoader; a missing programmer is reported before anything is built.
"""

import json
import pathlib

from hw.blocks import BLOCKS, get_block

from .block_options import add_parameter_options, params_from_args
from .cli import UsageError

__all__ = ["add_arguments", "run"]


def add_arguments(parser):
    """Register the ``board`` options."""
    from hw.board import BOARDS   # Amaranth and amaranth-boards: only for this subcommand

    parser.add_argument("board", metavar="BOARD", help=f"board: {', '.join(BOARDS)}")
    parser.add_argument("block", nargs="?", default="precision", metavar="BLOCK",
                        help=f"block to wrap: {', '.join(BLOCKS)} (default precision)")
    parser.add_argument("-o", "--output", type=pathlib.Path, metavar="DIR",
                        help="build directory (tool logs, report.json, bitstream, board.json); "
                             "required")
    parser.add_argument("--program", action="store_true",
                        help="load the bitstream with iceprog or openFPGALoader after building")
    add_parameter_options(parser)
    from .fpga import add_run_arguments   # effectual board run --board B --layer F --port P

    add_run_arguments(parser)


def _format(result):
    p = result["parameters"]
    lines = [f"{result['board']} ({result['device']}): block {result['block']} "
             f"({result['module']}), " + " ".join(f"{k}={v}" for k, v in p.items())]
    width = max((len(bel) for bel in result["utilisation"]), default=0)
    for bel, use in result["utilisation"].items():
        lines.append(f"  {bel:<{width}}  {use['used']:>6} / {use['available']:<6} "
                     f"({100 * use['used'] / use['available']:.1f}%)")
    lines.append(f"  yosys: {result['yosys']['luts']} LUTs, "
                 f"{result['yosys']['flip_flops']} flip-flops")
    fmax = result["fmax_mhz"]
    verdict = "PASS" if fmax is not None and fmax >= result["clock_mhz"] else "FAIL"
    lines.append(f"  Fmax {fmax:.2f} MHz post-route (board clock {result['clock_mhz']:g} MHz: "
                 f"{verdict})" if fmax is not None else "  Fmax: no clock in the report")
    seconds = result["seconds"]
    lines.append(f"  bitstream {result['bitstream']} "
                 f"(elaborate {seconds['elaborate']:.1f} s, tools {seconds['toolchain']:.1f} s)")
    return "\n".join(lines)


def run(args):
    """Build the bitstream, print and write its figures, program if asked; return the status."""
    from hw.board import build_bitstream, find_programmer, get_board, program_bitstream

    if args.board == "run":
        from .fpga import board_run

        return board_run(args)
    if args.output is None:
        raise UsageError("the following arguments are required: -o/--output")
    get_board(args.board)
    block = get_block(args.block)
    params = params_from_args(block, args)
    programmer = find_programmer(args.board) if args.program else None
    result = build_bitstream(args.board, block.name, params, build_dir=args.output)
    (args.output / "board.json").write_text(json.dumps(result, indent=2) + "\n")
    print(_format(result))
    print(f"wrote {args.output / 'board.json'}")
    if args.program:
        program_bitstream(args.board, result["bitstream"], programmer)
        print(f"programmed {args.board} with {programmer[0]}")
    return 0
