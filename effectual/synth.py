"""``effectual synth DIR -o OUT``: Yosys cell and LUT counts of every emitted top.

Every ``*.v`` in ``DIR`` (with its ``.json`` manifest) is synthesized with YoWASP Yosys
(``synth_ice40`` and ``synth_ecp5``, default scripts). Per top and family the cell counts by
type and the LUT and flip-flop totals are written to ``OUT/<module>_<family>.json`` and to
``OUT/synth.json``, and printed as a table. YoWASP maps the host ``/tmp`` away (gotcha G7), so
Yosys runs inside ``OUT`` on relative paths.
"""

import json
import pathlib
import shutil
import subprocess

from .hdl import read_manifest, verilog_files

__all__ = ["add_arguments", "run", "synthesize", "SYNTH_COMMANDS"]

#: family -> Yosys synthesis command (cell classes and tools: `hw.board`)
SYNTH_COMMANDS = {"ice40": "synth_ice40", "ecp5": "synth_ecp5"}


def add_arguments(parser):
    """Register the ``synth`` options."""
    parser.add_argument("directory", type=pathlib.Path, metavar="DIR",
                        help="directory of emitted Verilog files with their .json manifests")
    parser.add_argument("-o", "--output", type=pathlib.Path, required=True,
                        help="directory for the JSON results")


def synthesize(verilog_path, module, family, work_dir):
    """Synthesize ``module`` from ``verilog_path`` for ``family``; return the result dictionary."""
    from hw.board import parse_yosys_stat, tool_environment

    env = tool_environment(family)
    work_dir = pathlib.Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    local = work_dir / verilog_path.name
    shutil.copyfile(verilog_path, local)
    stat_name = f"{module}_{family}.stat.json"
    script = (f"read_verilog {local.name}; {SYNTH_COMMANDS[family]} -top {module}; "
              f"tee -q -o {stat_name} stat -json")
    result = subprocess.run([env["YOSYS"], "-q", "-p", script], cwd=work_dir, env=env,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise OSError(f"yosys failed on {verilog_path} for {family}:\n{result.stderr.strip()}")
    luts, flip_flops, cells = parse_yosys_stat(work_dir / stat_name, family)
    return {"module": module, "family": family, "luts": luts, "flip_flops": flip_flops,
            "cells": cells}


def run(args):
    """Synthesize every top for every family; print a table; return the exit status."""
    results = []
    for path in verilog_files([args.directory]):
        manifest = read_manifest(path)
        for family in SYNTH_COMMANDS:
            result = synthesize(path.resolve(), manifest["module"], family, args.output)
            result["parameters"] = manifest["parameters"]
            results.append(result)
            (args.output / f"{manifest['module']}_{family}.json").write_text(
                json.dumps(result, indent=2) + "\n")
    (args.output / "synth.json").write_text(json.dumps(results, indent=2) + "\n")
    name_width = max(len(r["module"]) for r in results)
    print(f"{'module':<{name_width}}  {'family':<6}  {'LUTs':>6}  {'FFs':>6}  {'cells':>6}")
    for r in results:
        print(f"{r['module']:<{name_width}}  {r['family']:<6}  {r['luts']:>6}  "
              f"{r['flip_flops']:>6}  {sum(r['cells'].values()):>6}")
    return 0
