"""The ``effectual`` command: one entry point, one module per subcommand.

Each subcommand module defines ``add_arguments(parser)`` and ``run(args)``; this file only
dispatches. User errors (unknown block, invalid parameter, unreadable file) are reported as one
line on stderr with exit status 2, never as a traceback.
"""

import argparse
import importlib
import sys

__all__ = ["main", "UsageError"]


class UsageError(Exception):
    """An error in what the user asked for; reported as one line, exit status 2."""


#: subcommand -> (module, one-line help)
SUBCOMMANDS = {
    "verilog": ("effectual.hdl", "emit Verilog (and a JSON manifest) for one block or all blocks"),
    "lint":    ("effectual.lint", "Verilator lint of emitted Verilog"),
    "synth":   ("effectual.synth", "Yosys cell and LUT counts for iCE40 and ECP5"),
    "bench":   ("effectual.bench", "golden-model throughput in values per second"),
    "board":   ("effectual.board", "build (and optionally program) an FPGA bitstream of one block"),
    "fpga":    ("effectual.fpga", "tile bitstream with UART host link and self-test for a board"),
    "import":  ("effectual.importers", "turn a trained ONNX/TFLite model into layer files"),
    "stats":   ("effectual.stats", "value statistics of a directory of layer files"),
    "report":  ("effectual.report", "Markdown/CSV/JSON/PNG report of a directory of layer files"),
    "compress": ("effectual.compress", "DPRed-compressed sizes of a layer file or a network"),
    "eval":    ("effectual.evaluate", "a layer on a design's golden model: check, cycles"),
    "sim":     ("effectual.simulate", "a layer on a design's RTL tile (cocotb): check, cycles"),
}


def build_parser(command=None):
    """Return the argument parser; only ``command``'s module is imported and its options added."""
    parser = argparse.ArgumentParser(
        prog="effectual",
        description="RTL, golden models and reports for value-aware DNN accelerators.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == command:
            module = importlib.import_module(module_name)
            module.add_arguments(sub)
            sub.set_defaults(run=module.run)
    return parser


def main(argv=None):
    """Run the command line; return the exit status."""
    from sim.tools import use_project_cache

    use_project_cache()
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    parser = build_parser(command if command in SUBCOMMANDS else None)
    args = parser.parse_args(argv)
    try:
        status = args.run(args)
    except (UsageError, ValueError, TypeError, OSError) as error:
        print(f"effectual {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"effectual {args.command}: interrupted", file=sys.stderr)
        return 130
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
