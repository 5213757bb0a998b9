"""``effectual eval --design D --layer FILE``: run one layer file through a design's golden model.

The design (a name in :data:`golden.designs.DESIGNS`: ``baseline``, ``stripes``, ``dstripes``,
``wskip``, ``tclp``) computes the layer's output through its tile datapath
(``Design.output``); the output is checked against :func:`golden.layers.layer_output`, and a
mismatch is an error (exit status 1, the first differing value named). Printed: cycles, the
baseline's cycles (``baseline`` on the same F x N with one window), the design's ideal
(work-bound) cycles, speedup = baseline cycles / cycles and achieved/ideal = ideal / cycles.

Options: ``--tile FxNxW`` (filters x lanes x windows; default 16x16x1 for the bit-parallel
designs, 16x16x<act_bits> for the bit-serial ones), ``--pattern P`` (wskip, tclp; default
``T<2,5>``), ``--run-ahead R`` (tclp; default 0 = columns in lock-step, the RTL), ``--json``
(print one JSON object instead of the text lines), ``--out Y.npy`` (write the design's output:
int64, conv ``[K, OH, OW]``, fc ``[K]``; written even when it mismatches, for inspection).
"""

import json
import re

import numpy as np

__all__ = ["add_arguments", "run", "parse_tile", "evaluate"]

_TILE = re.compile(r"^(\d+)x(\d+)x(\d+)$")
#: design -> the options it accepts beyond the tile
_EXTRA_OPTIONS = {"wskip": ("pattern",), "tclp": ("pattern", "run_ahead")}


def add_arguments(parser):
    """Add the ``eval`` arguments to ``parser``."""
    parser.add_argument("--design", required=True, metavar="D",
                        help="baseline, stripes, dstripes, wskip or tclp")
    parser.add_argument("--layer", required=True, metavar="FILE",
                        help="a layer file (.npz, golden.layers format)")
    parser.add_argument("--tile", metavar="FxNxW",
                        help="filters x lanes x windows (default 16x16x1 bit-parallel, "
                             "16x16x<act_bits> bit-serial)")
    parser.add_argument("--pattern", metavar="P",
                        help="weight-skipping pattern of wskip/tclp: none, L<h,d>, T<2,5> "
                             "(default) or '(dt,dl),...'")
    parser.add_argument("--run-ahead", type=int, metavar="R",
                        help="tclp: rows a column may run ahead (default 0 = lock-step)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--out", metavar="Y.npy", help="write the design's output (int64)")


def parse_tile(text):
    """Return ``(filters, lanes, windows)`` from ``"FxNxW"``; ``ValueError`` otherwise."""
    match = _TILE.match(text.strip()) if isinstance(text, str) else None
    if not match or min(int(g) for g in match.groups()) < 1:
        raise ValueError(f"--tile must be FxNxW with positive integers (e.g. 16x16x8), "
                         f"not {text!r}")
    return tuple(int(g) for g in match.groups())


def evaluate(layer, design_name, **options):
    """Return ``(results dict, output array)`` of ``layer`` on a design (see the module doc)."""
    from golden.designs import BASELINE, get_design
    from golden.layers import layer_output

    design = get_design(design_name)
    output = np.asarray(design.output(layer, **options))
    expected = layer_output(layer)
    cycles = int(design.cycles(layer, **options))
    ideal = int(design.ideal(layer, **options))
    tile = {k: options[k] for k in ("filters", "lanes") if k in options}
    baseline = int(get_design(BASELINE).cycles(layer, **tile))
    mismatch = None
    if output.shape != expected.shape:
        mismatch = f"shape {list(output.shape)}, expected {list(expected.shape)}"
    elif not np.array_equal(output, expected):
        wrong = np.argwhere(output != expected)
        first = tuple(int(i) for i in wrong[0])
        mismatch = (f"{len(wrong)} of {expected.size} values differ (first at index "
                    f"{first}: {int(output[first])} instead of {int(expected[first])})")
    results = {
        "design": design_name, "layer": layer.name, "kind": layer.kind,
        "options": options, "output_shape": list(expected.shape),
        "output_matches": mismatch is None, "cycles": cycles, "baseline_cycles": baseline,
        "ideal_cycles": ideal, "speedup": baseline / cycles,
        "achieved_over_ideal": ideal / cycles,
    }
    return results, output, mismatch


def run(args):
    """Evaluate the layer; return 0, or 1 if the output does not match the reference."""
    import sys

    from golden.designs import get_design
    from golden.layers import load_layer

    get_design(args.design)  # unknown design: one-line error before reading anything
    extra = _EXTRA_OPTIONS.get(args.design, ())
    if args.pattern is not None and "pattern" not in extra:
        raise ValueError(f"--pattern applies to wskip and tclp only, not {args.design}")
    if args.run_ahead is not None and "run_ahead" not in extra:
        raise ValueError(f"--run-ahead applies to tclp only, not {args.design}")
    options = {}
    if args.tile is not None:
        options["filters"], options["lanes"], options["windows"] = parse_tile(args.tile)
    if args.pattern is not None:
        options["pattern"] = args.pattern
    if args.run_ahead is not None:
        options["run_ahead"] = args.run_ahead
    layer = load_layer(args.layer)
    results, output, mismatch = evaluate(layer, args.design, **options)
    if args.out:
        with open(args.out, "wb") as handle:
            np.save(handle, output.astype(np.int64))
    if args.json:
        print(json.dumps(results))
    else:
        shown = ", ".join(f"{k}={v}" for k, v in options.items()) or "default options"
        print(f"{args.layer}: layer {layer.name!r} ({layer.kind}, {layer.macs:,} MACs) on "
              f"{args.design} ({shown})")
        print(f"output          {'matches' if mismatch is None else 'DIFFERS FROM'} "
              f"golden.layers.layer_output ({output.size} values)")
        print(f"cycles          {results['cycles']:,}")
        print(f"baseline cycles {results['baseline_cycles']:,}")
        print(f"ideal cycles    {results['ideal_cycles']:,}")
        print(f"speedup         {results['speedup']:.3f}")
        print(f"achieved/ideal  {results['achieved_over_ideal']:.3f}")
    if mismatch is not None:
        print(f"effectual eval: error: {args.design}'s output differs from "
              f"golden.layers.layer_output: {mismatch}", file=sys.stderr)
        return 1
    return 0
