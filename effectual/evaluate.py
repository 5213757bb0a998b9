"""``effectual eval --design D --layer FILE``: run one layer file through a design's golden model.

The design (a name in :data:`golden.designs.DESIGNS` after :func:`golden.designs.load_designs`:
``baseline``, ``stripes``, ``dstripes``, ``wskip``, ``tclp``, ``pragmatic``, ``tcle``,
``sysmt1``, ``sysmt2``, ``sysmt4``, ``sparq``) computes the layer's output through its datapath
(:func:`golden.designs.design_output`), which is compared with
:func:`golden.layers.layer_output`:

* an *exact* design (``Design.exact``) must match: a mismatch is an error (exit status 1, the
  first differing value named);
* an *approximate* design (``sysmt2``, ``sysmt4``, ``sparq``) differs by construction: the
  error is printed (exit status 0): values that differ and their fraction, the largest absolute
  error, the relative RMS error ``||y - y_exact|| / ||y_exact||`` and, for NB-SMT, the fraction
  of active thread operations that were squeezed.

Printed: cycles, the baseline's cycles (``baseline`` on the same F x N with one window; the
default 16 x 16 tile for the systolic designs), the design's ideal (work-bound) cycles,
speedup = baseline cycles / cycles, achieved/ideal = ideal / cycles and, for a design with
``Design.relative_to`` (``sysmt1`` for the multithreaded arrays), that design's cycles and the
speedup over it. A layer the design cannot run (``Design.unsupported``: e.g. 16-bit operands on
the 8-bit systolic arrays) is a one-line error.

Options: ``--tile FxNxW`` (the tile designs; filters x lanes x windows; default 16x16x1 for the
bit-parallel designs, 16x16x<act_bits> for the bit-serial ones), ``--array RxC`` (the systolic
designs; rows 2..16 x columns 1..16, default 16x16), ``--pattern P`` (wskip, tclp, tcle; default
``T<2,5>``), ``--run-ahead R`` (tclp, pragmatic, tcle; default 0 = columns in lock-step, the
RTL), ``--encoding booth|naf|binary`` and ``--first-stage-bits L1`` (pragmatic, tcle; defaults
booth and 2); an option a
design does not take (its cycle model has no such keyword) is a one-line error naming the
designs that take it. ``--json`` prints one JSON object instead of the text lines;
``--out Y.npy`` writes the design's output (int64, conv ``[K, OH, OW]``, fc ``[K]``; written
even when it mismatches, for inspection).

Float designs (``fpraker``, ``bf16mac``: :data:`golden.fpraker_layers.FLOAT_DESIGNS`, a second
registry, because ``Design.output`` is int64 and exact against the integer output) run the
layer's float view (dequantized, rounded to float32 then bfloat16) through
:func:`golden.fpraker_layers.evaluate_float_layer`: printed are the cycles on ``--pes P``
processing elements (default 16, the same for both designs), the BF16 MAC baseline's cycles,
the ideal cycles, speedup, achieved/ideal and the output error against the exact dot products
of the same bfloat16 inputs (max abs / max relative / relative RMS, and how many outputs are
within `golden.fpraker.error_bound`: any output outside it is exit status 1). ``--outputs N``
evaluates only the first N outputs (``(k, oy, ox)`` order). ``--out`` writes float32 (conv
``[K, OH, OW]``, fc ``[K]``; ``[N]`` with ``--outputs``).
"""

import inspect
import json
import re

import numpy as np

__all__ = ["add_arguments", "run", "parse_tile", "parse_array", "check_options", "evaluate"]

_TILE = re.compile(r"^(\d+)x(\d+)x(\d+)$")
_ARRAY = re.compile(r"^(\d+)x(\d+)$")
#: command-line option -> the keyword of the design's cycle model it sets
_KEYWORDS = {"--tile": "filters", "--array": "rows", "--pattern": "pattern",
             "--run-ahead": "run_ahead", "--encoding": "encoding",
             "--first-stage-bits": "first_stage_bits"}


def add_arguments(parser):
    """Add the ``eval`` arguments to ``parser``."""
    parser.add_argument("--design", required=True, metavar="D",
                        help="baseline, stripes, dstripes, wskip, tclp, sysmt1, sysmt2, "
                             "sysmt4, sparq (every name in golden.designs.DESIGNS), and the "
                             "float designs fpraker, bf16mac")
    parser.add_argument("--layer", required=True, metavar="FILE",
                        help="a layer file (.npz, golden.layers format)")
    parser.add_argument("--tile", metavar="FxNxW",
                        help="filters x lanes x windows (default 16x16x1 bit-parallel, "
                             "16x16x<act_bits> bit-serial)")
    parser.add_argument("--array", metavar="RxC",
                        help="rows x columns of the systolic designs (sysmt*, sparq; default "
                             "16x16)")
    parser.add_argument("--pattern", metavar="P",
                        help="weight-skipping pattern of wskip/tclp: none, L<h,d>, T<2,5> "
                             "(default) or '(dt,dl),...'")
    parser.add_argument("--run-ahead", type=int, metavar="R",
                        help="tclp, pragmatic, tcle: rows a column may run ahead (default 0 = "
                             "lock-step)")
    parser.add_argument("--encoding", choices=("booth", "naf", "binary"),
                        help="pragmatic/tcle: activation term encoding (default booth)")
    parser.add_argument("--first-stage-bits", type=int, metavar="L1",
                        help="pragmatic/tcle: first-stage shift window bits (default 2)")
    parser.add_argument("--pes", type=int, metavar="P",
                        help="fpraker/bf16mac: processing elements (default 16)")
    parser.add_argument("--outputs", type=int, metavar="N",
                        help="fpraker/bf16mac: evaluate only the first N outputs")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--out", metavar="Y.npy", help="write the design's output (int64)")


def parse_tile(text):
    """Return ``(filters, lanes, windows)`` from ``"FxNxW"``; ``ValueError`` otherwise."""
    match = _TILE.match(text.strip()) if isinstance(text, str) else None
    if not match or min(int(g) for g in match.groups()) < 1:
        raise ValueError(f"--tile must be FxNxW with positive integers (e.g. 16x16x8), "
                         f"not {text!r}")
    return tuple(int(g) for g in match.groups())


def parse_array(text):
    """Return ``(rows, cols)`` from ``"RxC"``; ``ValueError`` otherwise (the ranges are checked
    by ``hw.params.SySMTParams``)."""
    match = _ARRAY.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"--array must be RxC with positive integers (e.g. 16x16), "
                         f"not {text!r}")
    return tuple(int(g) for g in match.groups())


def _takes(design, keyword):
    """Whether the design's cycle model takes the keyword option ``keyword``."""
    return keyword in inspect.signature(design.cycles).parameters


def _names(names):
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def check_options(design_name, given):
    """Raise ``ValueError`` (one line) for a command-line option (``given``: option -> value or
    None) the design does not take, naming the designs that do."""
    from golden.designs import DESIGNS, get_design

    design = get_design(design_name)
    for option, value in given.items():
        keyword = _KEYWORDS[option]
        if value is not None and not _takes(design, keyword):
            takers = [n for n, d in DESIGNS.items() if _takes(d, keyword)]
            raise ValueError(f"{option} applies to {_names(takers)} only, not {design_name}")


def evaluate(layer, design_name, **options):
    """Return ``(results dict, output array, mismatch)`` of ``layer`` on a design.

    ``mismatch`` is ``None`` or a one-line description of the first difference from
    :func:`golden.layers.layer_output`; it is an error only for exact designs (see the module
    doc). ``results`` holds ``exact``, ``output_matches``, the cycle figures and, for
    approximate designs, ``error`` (:func:`golden.designs.combine_errors` of the one output,
    without its ``evaluated`` count) and ``counts``.
    """
    from golden.designs import BASELINE, combine_errors, design_output, get_design, output_error
    from golden.layers import layer_output

    design = get_design(design_name)
    output, counts = design_output(design, layer, **options)
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
        "options": options, "output_shape": list(expected.shape), "exact": design.exact,
        "output_matches": mismatch is None, "cycles": cycles, "baseline_cycles": baseline,
        "ideal_cycles": ideal, "speedup": baseline / cycles,
        "achieved_over_ideal": ideal / cycles,
    }
    if design.relative_to is not None:
        reference = int(get_design(design.relative_to).cycles(layer, **options))
        results["relative_to"] = design.relative_to
        results["reference_cycles"] = reference
        results["speedup_over_reference"] = reference / cycles
    if not design.exact:
        if output.shape != expected.shape:
            raise ValueError(f"{design_name}'s output has shape {list(output.shape)}, "
                             f"expected {list(expected.shape)}")
        error = combine_errors([output_error(output, expected)], [counts])
        error.pop("evaluated")
        results["counts"] = error.pop("counts")
        results["error"] = error
    return results, output, mismatch


def run(args):
    """Evaluate the layer; return 0, or 1 if an exact design's output does not match."""
    import sys

    from golden.designs import get_design, load_designs
    from golden.layers import load_layer

    from golden.fpraker_layers import FLOAT_DESIGNS

    if args.design in FLOAT_DESIGNS:
        return _run_float(args)
    for option in ("pes", "outputs"):
        if getattr(args, option, None) is not None:
            raise ValueError(f"--{option} applies to {_names(FLOAT_DESIGNS)} only, "
                             f"not {args.design}")
    load_designs()
    design = get_design(args.design)  # unknown design: one-line error before reading anything
    check_options(args.design, {"--tile": args.tile, "--array": args.array,
                                "--pattern": args.pattern, "--run-ahead": args.run_ahead,
                                "--encoding": args.encoding,
                                "--first-stage-bits": args.first_stage_bits})
    options = {}
    if args.tile is not None:
        options["filters"], options["lanes"], options["windows"] = parse_tile(args.tile)
    if args.array is not None:
        options["rows"], options["cols"] = parse_array(args.array)
    if args.pattern is not None:
        options["pattern"] = args.pattern
    if args.run_ahead is not None:
        options["run_ahead"] = args.run_ahead
    if args.encoding is not None:
        options["encoding"] = args.encoding
    if args.first_stage_bits is not None:
        options["first_stage_bits"] = args.first_stage_bits
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
        if design.exact:
            print(f"output          {'matches' if mismatch is None else 'DIFFERS FROM'} "
                  f"golden.layers.layer_output ({output.size} values)")
        else:
            error = results["error"]
            print(f"output          approximate: {error['differing']} of {error['values']} "
                  f"values differ from golden.layers.layer_output")
            print(f"differ fraction {error['differ_fraction']:.4f}")
            print(f"max abs error   {error['max_abs_error']:,}")
            print(f"rel RMS error   {error['rel_rms_error']:.6f}")
            if error["squeezed_fraction"] is not None:
                counts = results["counts"]
                print(f"squeezed        {error['squeezed_fraction']:.4f} ({counts['squeezed']:,}"
                      f" of {counts['active']:,} active thread operations)")
        print(f"cycles          {results['cycles']:,}")
        print(f"baseline cycles {results['baseline_cycles']:,}")
        print(f"ideal cycles    {results['ideal_cycles']:,}")
        print(f"speedup         {results['speedup']:.3f}")
        print(f"achieved/ideal  {results['achieved_over_ideal']:.3f}")
        if design.relative_to is not None:
            print(f"{design.relative_to} cycles".ljust(16) + f"{results['reference_cycles']:,}")
            print(f"speedup/{design.relative_to}".ljust(16)
                  + f"{results['speedup_over_reference']:.3f}")
    if mismatch is not None and design.exact:
        print(f"effectual eval: error: {args.design}'s output differs from "
              f"golden.layers.layer_output: {mismatch}", file=sys.stderr)
        return 1
    return 0


def _run_float(args):
    """``eval`` of a float design (module docs); return 0, or 1 if an output is outside the
    proven error bound."""
    import sys

    from golden.fpraker_layers import DEFAULT_PES, evaluate_float_layer
    from golden.layers import load_layer

    for option in ("tile", "array", "pattern", "run_ahead", "encoding", "first_stage_bits"):
        if getattr(args, option) is not None:
            raise ValueError(f"--{option.replace('_', '-')} does not apply to {args.design}")
    pes = DEFAULT_PES if args.pes is None else args.pes
    layer = load_layer(args.layer)
    result = evaluate_float_layer(layer, args.design, pes=pes, outputs=args.outputs)
    results = result.results
    if args.out:
        output = result.output
        if results["outputs"] == results["total_outputs"]:
            output = output.reshape(layer.output_shape)
        with open(args.out, "wb") as handle:
            np.save(handle, output.astype(np.float32))
    error = results["error"]
    if args.json:
        print(json.dumps(results))
    else:
        p = results["params"]
        print(f"{args.layer}: layer {layer.name!r} ({layer.kind}, {layer.macs:,} MACs) in "
              f"bfloat16 on {args.design} (pes={pes}, lanes={p['lanes']}, "
              f"acc_width={p['acc_width']}, encoding={p['encoding']})")
        print(f"outputs         {results['outputs']:,} of {results['total_outputs']:,}")
        print(f"cycles          {results['cycles']:,}")
        print(f"baseline cycles {results['baseline_cycles']:,} (bf16mac)")
        print(f"ideal cycles    {results['ideal_cycles']:,.1f}")
        print(f"speedup         {results['speedup']:.3f}")
        print(f"achieved/ideal  {results['achieved_over_ideal']:.3f}")
        print(f"max abs error   {error['max_abs_error']:.3e}")
        print(f"max rel error   {error['max_rel_error']:.3e}")
        print(f"rel RMS error   {error['rel_rms_error']:.3e}")
        print(f"error/bound     {error['max_error_over_bound']:.3f} (max)")
        print(f"within bound    {error['within_bound']:,} of {results['outputs']:,}")
    if error["outside_bound"]:
        print(f"effectual eval: error: {error['outside_bound']} of {args.design}'s outputs are "
              f"outside golden.fpraker.error_bound", file=sys.stderr)
        return 1
    return 0
