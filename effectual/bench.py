"""``effectual bench``: benchmark suites (golden throughput, and one suite per design family).

``effectual bench`` runs every suite in :data:`SUITES` (or those named by ``--suite``), prints
each suite's tables and, with ``--json``, writes ``{"environment": ..., "suites": {name:
result}}``. A suite is a function ``suite(args) -> dict`` registered here by name as
``"module:function"``; it prints its own tables and returns a JSON-serializable result.

The ``golden`` suite measures the throughput of the golden model, in values per second.

Every kernel runs on the same seeded random data: ``--values`` (default 2**22) values drawn
uniformly from the 16-bit signed range, arranged as groups or dot-product vectors of 16 (so the
count is rounded down to a multiple of 16), and for quantization the same count of normal
floats in 16 channels. Each kernel runs ``--repeat`` times; the best ``time.perf_counter`` time
is reported, and values per second is the number of input values divided by that time.
"""

import argparse
import json
import platform
import time

import numpy as np

__all__ = ["add_arguments", "run", "measure", "format_table", "golden_suite", "SUITES",
           "DEFAULT_VALUES"]

#: suite name -> "module:function" (imported only when the suite runs)
SUITES = {
    "golden": "effectual.bench:golden_suite",
    "fpraker": "effectual.bench_fpraker:suite",
    "tcl": "effectual.bench_tcl:suite",
    "dpred": "effectual.bench_dpred:suite",
    "sparq": "effectual.bench_sparq:suite",
    "tcle": "effectual.bench_tcle:suite",
    "area": "effectual.bench_area:suite",
}

#: default number of values per kernel
DEFAULT_VALUES = 1 << 22
#: lanes per dot product and values per precision group
LANES = 16


def _count(text, minimum):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, not {text!r}")
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, not {value}")
    return value


def add_arguments(parser):
    """Register the ``bench`` options."""
    parser.add_argument("--values", type=lambda text: _count(text, LANES), metavar="N",
                        default=DEFAULT_VALUES,
                        help=f"values per kernel (default {DEFAULT_VALUES}, at least {LANES})")
    parser.add_argument("--repeat", type=lambda text: _count(text, 1), metavar="R", default=3,
                        help="runs per kernel; the best time counts (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--suite", action="append", choices=sorted(SUITES), metavar="NAME",
                        help=f"run only this suite (repeatable; default all: "
                             f"{', '.join(SUITES)})")


def _kernels(count, seed):
    """Return ``[(kernel, configuration, function)]``; each function handles ``count`` values."""
    from golden import dpred, fixedpoint, precision, terms

    rng = np.random.default_rng(seed)
    values = rng.integers(-(1 << 15), 1 << 15, count)
    groups = values.reshape(-1, LANES)
    weights = rng.integers(-(1 << 15), 1 << 15, groups.shape)
    encoded = dpred.encode(values, value_width=16, signed=True, group_size=LANES)
    floats = rng.normal(size=(LANES, count // LANES))
    scale = fixedpoint.symmetric_scale(floats, bits=8, axis=0)
    return [
        ("group_precision", "16-bit signed, G=16",
         lambda: precision.group_precision(groups, value_width=16, signed=True)),
        ("group_precision", "16-bit signed, G=16, trim_lsb",
         lambda: precision.group_precision(groups, value_width=16, signed=True, trim_lsb=True)),
        ("naf_digits", "16-bit", lambda: terms.naf_digits(values, width=16)),
        ("booth_digits", "16-bit", lambda: terms.booth_digits(values, width=16)),
        ("term_count", "booth, 16-bit",
         lambda: terms.term_count(values, encoding="booth", width=16)),
        ("bit_serial_dot", "16-bit signed acts, 16 lanes",
         lambda: terms.bit_serial_dot(groups, weights, act_width=16, act_signed=True)),
        ("term_serial_dot", "booth, 16-bit acts, 16 lanes",
         lambda: terms.term_serial_dot(groups, weights, encoding="booth", width=16)),
        ("dpred encode", "16-bit signed, G=16",
         lambda: dpred.encode(values, value_width=16, signed=True, group_size=LANES)),
        ("dpred decode", "16-bit signed, G=16", lambda: dpred.decode(encoded)),
        ("quantize", "8-bit signed, per-channel (16), half_even",
         lambda: fixedpoint.quantize(floats, scale, bits=8, signed=True, axis=0)),
    ]


def measure(*, values=DEFAULT_VALUES, repeat=3, seed=0):
    """Time every kernel; return a list of result dictionaries.

    Each dictionary holds ``kernel``, ``configuration``, ``values`` (the count actually used:
    ``values`` rounded down to a multiple of 16), ``best_seconds`` (best of ``repeat`` runs) and
    ``values_per_second``.
    """
    count = values - values % LANES
    results = []
    for kernel, configuration, function in _kernels(count, seed):
        best = float("inf")
        for _ in range(repeat):
            start = time.perf_counter()
            function()
            best = min(best, time.perf_counter() - start)
        results.append({"kernel": kernel, "configuration": configuration, "values": count,
                        "best_seconds": best, "values_per_second": count / best})
    return results


def format_table(results):
    """Return the results as an aligned text table (one line per kernel)."""
    header = ("kernel", "configuration", "values", "best [s]", "Mvalues/s")
    rows = [(r["kernel"], r["configuration"], f"{r['values']:,}", f"{r['best_seconds']:.4f}",
             f"{r['values_per_second'] / 1e6:.1f}") for r in results]
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]
    lines = []
    for row in [header] + rows:
        lines.append("  ".join(cell.ljust(width) if i < 2 else cell.rjust(width)
                               for i, (cell, width) in enumerate(zip(row, widths))).rstrip())
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def golden_suite(args):
    """The ``golden`` suite: time every golden kernel, print the table, return the results."""
    results = measure(values=args.values, repeat=args.repeat, seed=args.seed)
    print(f"golden throughput: {results[0]['values']:,} values per kernel, best of "
          f"{args.repeat}, seed {args.seed}")
    print(format_table(results))
    return {"results": results}


def run(args):
    """Run the selected suites, print their tables and optionally write ``--json``."""
    import importlib

    environment = {"python": platform.python_version(), "numpy": np.__version__,
                   "machine": platform.machine(), "seed": args.seed, "repeat": args.repeat}
    print(f"Python {environment['python']}, numpy {environment['numpy']}, "
          f"{environment['machine']}")
    suites = {}
    for name in args.suite or list(SUITES):
        module_name, function_name = SUITES[name].split(":")
        print(f"\n== suite {name} ==")
        suites[name] = getattr(importlib.import_module(module_name), function_name)(args)
    if args.json:
        with open(args.json, "w") as stream:
            json.dump({"environment": environment, "suites": suites}, stream, indent=2)
            stream.write("\n")
    return 0
