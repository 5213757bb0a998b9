"""``effectual sim --design D --layer FILE --sim icarus|verilator``: a layer on the RTL tile.

The layer (or its first ``--windows N`` output windows, row-major) is lowered exactly as
`golden.tcl.passes` does and run pass by pass through the emitted Verilog of the design's tile
under cocotb (`sim.tb_tile`, `sim.runner.run_cocotb`):

==========  ==============================================  =======================
design      tile                                            pattern
==========  ==============================================  =======================
baseline    hw.tile.BitParallelTile (block bit_parallel)    none
dstripes    hw.tile.TCLpTile (block tclp), Dynamic Stripes  none
wskip       hw.tile.BitParallelTile (block bit_parallel)    --pattern (T<2,5>)
tclp        hw.tile.TCLpTile (block tclp)                   --pattern (T<2,5>)
tcle        hw.term_serial.TCLeTile (block tcle_small)      --pattern (T<2,5>)
pragmatic   hw.term_serial.TCLeTile, zero weights not gated none
==========  ==============================================  =======================

The term-serial designs take ``--encoding booth|naf|binary`` (default DNNsim's Booth terms),
``--first-stage-bits L1`` (default 2) and ``--run-ahead A`` (rows a column may run ahead of the
slowest, 0..8; default 0 = lock-step); their per-pass cycles are
`golden.pragmatic.schedule_cycles` and the layer's sum is the registered design's
(`golden.pragmatic.tile_design`: ``tcle``, or ``pragmatic`` for the tile that does not gate
zero weights).

The NB-SMT designs run on the SySMT systolic array (`hw.sysmt.SySMTArray`, block ``sysmt``;
`sim.tb_sysmt_layer`): ``sysmt1``, ``sysmt2`` and ``sysmt4`` (1, 2, 4 threads per PE, the
`hw.params.SySMTParams` defaults otherwise). The layer's im2col GEMMs (`golden.nbsmt.layer_gemm`;
``--windows N``: its first N output positions, row-major) go through the array tile by tile
(`golden.nbsmt.array_tiles`); the output must equal `golden.nbsmt.nbsmt_layer_output` (for
``sysmt1``: `golden.layers.layer_output`, the dense reference) and the array's cycle counter
`golden.nbsmt.gemm_cycles` of the positions run (`golden.nbsmt.layer_cycles` for the whole
layer). ``--array RxC`` defaults to 4x4 (fast to build; the registered designs model 16x16);
the baseline cycles are the one-thread array's (``sysmt1``, same R x C). The PEs take
activations 0..255: layers with negative activations are refused. ``sparq`` has no array RTL:
the array's 2-thread PEs use SPARQ's 2opt window, the registered ``sparq`` design 5opt
(`hw.sparq.SparqPE` is one PE, not an array); use ``sysmt2``.

``stripes`` has no RTL here: its golden model uses one per-layer profiled precision, which is
the Dynamic Stripes datapath with the precision detector replaced by a constant; use
``dstripes``.

Printed (or ``--json``): whether the RTL output equals `golden.layers.layer_output` (an
independent dense reference), the cycles measured from the tile's own cycle counter (summed over
passes) and whether every pass's counter equals the golden cycle model, the baseline's cycles for
the same windows (bit-parallel, same F x N, one window per pass, from the golden model), the
speedup (baseline / measured) and the simulation time. ``--out Y.npy`` writes the RTL output
(int64): the layer's output shape (conv ``[K, OH, OW]``, fc ``[K]``) when every window ran, else
``[K, N]`` (the first N windows, row-major). Exit status 1 when the output or a cycle count
differs.

``--tile FxNxW`` defaults to 4x4x1 (baseline, wskip) and 4x4x2 (the others): RTL
simulation of the paper's 16x16x16 tile is possible but slow. Weight and activation widths
follow the layer (``weight_bits``, ``act_bits``, ``act_signed``); the memories are sized to the
layer's largest schedule and its steps.
"""

import json
import os
import pathlib
import sys
import tempfile
import time

import numpy as np

__all__ = ["add_arguments", "run", "simulate", "simulate_array", "DESIGNS", "ARRAY_DESIGNS"]

#: design -> (block, back end, default pattern, pattern option allowed)
DESIGNS = {
    "baseline": ("bit_parallel", "bit_parallel", "none", False),
    "dstripes": ("tclp", "bit_serial", "none", False),
    "wskip": ("bit_parallel", "bit_parallel", "T<2,5>", True),
    "tclp": ("tclp", "bit_serial", "T<2,5>", True),
    "tcle": ("tcle_small", "term_serial", "T<2,5>", True),
    "pragmatic": ("tcle_small", "term_serial", "none", False),
}
#: `hw.params.TCLeTileParams` fields fixed by a term-serial design
TERM_SERIAL_FIXED = {"pragmatic": {"gate_zero_weights": False}}
#: options of the term-serial designs (`hw.params.TCLeTileParams` fields)
TERM_SERIAL_OPTIONS = ("encoding", "first_stage_bits", "run_ahead")
#: registered golden designs without RTL -> the one-line reason
NO_RTL = {
    "stripes": "stripes has no RTL (its golden model uses one per-layer precision); simulate "
               "dstripes instead",
    "sparq": "sparq has no array RTL (SySMTArray's 2-thread PEs use SPARQ's 2opt window, the "
             "sparq design 5opt; hw.sparq.SparqPE is one PE); simulate sysmt2 instead",
}
#: the NB-SMT array designs (block ``sysmt``) -> threads per PE
ARRAY_DESIGNS = {"sysmt1": 1, "sysmt2": 2, "sysmt4": 4}
#: default SySMT array for simulation: R x C (the registered designs model 16 x 16)
DEFAULT_ARRAY = (4, 4)
#: default tile per back end: F x N x W
DEFAULT_TILES = {"bit_parallel": (4, 4, 1), "bit_serial": (4, 4, 2), "term_serial": (4, 4, 2)}


def add_arguments(parser):
    """Add the ``sim`` arguments to ``parser``."""
    parser.add_argument("--design", required=True, metavar="D",
                        help="baseline, dstripes, wskip, tclp, tcle, pragmatic, sysmt1, sysmt2 "
                             "or sysmt4 (stripes, sparq: no RTL, use dstripes, sysmt2)")
    parser.add_argument("--layer", required=True, metavar="FILE",
                        help="a layer file (.npz, golden.layers format)")
    parser.add_argument("--sim", required=True, metavar="SIM", help="icarus or verilator")
    parser.add_argument("--windows", type=int, metavar="N",
                        help="run only the first N output windows (sysmt: output positions; "
                             "row-major)")
    parser.add_argument("--tile", metavar="FxNxW",
                        help="filters x lanes x windows of the tile (default 4x4x1 for "
                             "baseline and wskip, 4x4x2 for dstripes, tclp, tcle and pragmatic)")
    parser.add_argument("--array", metavar="RxC",
                        help="rows x cols of the sysmt1/2/4 array (default 4x4, fast to build; "
                             "the registered designs model 16x16)")
    parser.add_argument("--pattern", metavar="P",
                        help="weight-skipping pattern of wskip/tclp/tcle (default T<2,5>)")
    parser.add_argument("--encoding", choices=("booth", "naf", "binary"),
                        help="tcle/pragmatic: activation term encoding (default booth)")
    parser.add_argument("--first-stage-bits", type=int, metavar="L1",
                        help="tcle/pragmatic: first-stage shift window bits, 0..3 (default 2)")
    parser.add_argument("--run-ahead", type=int, metavar="A",
                        help="tcle/pragmatic: rows a column may run ahead, 0..8 (default 0 = "
                             "lock-step)")
    parser.add_argument("--build-dir", metavar="DIR", type=pathlib.Path,
                        help="keep the Verilog, simulator build and report here (default: a "
                             "temporary directory)")
    parser.add_argument("--outputs", type=int, metavar="N",
                        help="fpraker/bf16mac (effectual.sim_fpraker): simulate the first N "
                             "outputs of the layer's bfloat16 view (default 16)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--out", metavar="Y.npy", help="write the RTL output (int64)")


def _tile_params(layer, tile, pattern, max_windows, params_class, **extra):
    """Return the ``params_class`` (`TileParams` or `TCLeTileParams`, with the ``extra``
    fields) for ``layer`` with memories sized to its schedules."""
    from golden.tcl import passes
    from hw.params import TileParams

    f, n, w = tile
    common = dict(filters=f, lanes=n, windows=w, weight_width=max(2, layer.weight_bits),
                  act_width=max(2, layer.act_bits), act_signed=bool(layer.act_signed),
                  pattern=pattern)
    probe = TileParams(**common, weight_rows=TileParams.MAX_ROWS, act_rows=TileParams.MAX_ROWS)
    rows = steps = 1
    seen = set()
    for one in passes(layer, probe, max_windows=max_windows):
        if one.tile not in seen:
            seen.add(one.tile)
            rows = max(rows, one.schedule.rows)
            steps = max(steps, one.acts.shape[1])
    return params_class(**common, **extra, weight_rows=rows, act_rows=steps)


def _baseline_cycles(layer, filters, lanes, max_windows):
    from golden.tcl import passes
    from hw.params import TileParams

    params = TileParams(filters=filters, lanes=lanes, windows=1,
                        weight_width=max(2, layer.weight_bits), act_width=max(2, layer.act_bits),
                        act_signed=bool(layer.act_signed), pattern="none",
                        weight_rows=TileParams.MAX_ROWS, act_rows=TileParams.MAX_ROWS)
    return sum(one.cycles_bit_parallel for one in passes(layer, params, max_windows=max_windows))


def _run_logged(block, params, simulator, build_dir, test_module, env, optimize=True):
    """`run_cocotb` with the simulator's and the build's output in ``build_dir/sim.log`` (not
    our stdout: ``--json``); ``OSError`` naming the log if the simulation failed."""
    from sim.runner import run_cocotb

    log_path = pathlib.Path(build_dir) / "sim.log"
    with open(log_path, "w") as log:
        sys.stdout.flush()
        sys.stderr.flush()
        saved_fds = os.dup(1), os.dup(2)
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            run_cocotb(block, params, simulator=simulator, build_dir=build_dir,
                       test_module=test_module, extra_env=env, optimize=optimize)
        except AssertionError as error:
            raise OSError(f"the {simulator} simulation failed (log: {log_path}): "
                          f"{str(error).splitlines()[0]}") from None
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved_fds[0], 1)
            os.dup2(saved_fds[1], 2)
            os.close(saved_fds[0])
            os.close(saved_fds[1])


def simulate(layer_path, design, simulator, *, tile=None, pattern=None, array=None,
             windows=None, term_options=None, build_dir):
    """Run a layer file on the RTL; return ``(results dict, output array, mismatch or None)``.

    ``tile`` (F, N, W) and ``pattern`` apply to the tile designs, ``term_options`` (a dict of
    `TERM_SERIAL_OPTIONS`) to the term-serial ones, ``array`` (R, C) to the ``sysmt`` designs
    (`simulate_array`). Raises ``ValueError`` for an unknown design/simulator
    or an option the design does not take, ``OSError`` naming the log file if the simulation
    itself failed (build error, hang).
    """
    from golden.layers import layer_output, load_layer
    from golden.tcl import passes
    from hw.params import TCLeTileParams, TileParams
    from sim.runner import SIMULATORS

    if design in NO_RTL:
        raise ValueError(NO_RTL[design])
    if design not in DESIGNS and design not in ARRAY_DESIGNS:
        raise ValueError(f"--design must be one of {', '.join([*DESIGNS, *ARRAY_DESIGNS])}, "
                         f"not {design!r}")
    if simulator not in SIMULATORS:
        raise ValueError(f"--sim must be one of {', '.join(SIMULATORS)}, not {simulator!r}")
    term_options = dict(term_options or {})
    if set(term_options) - set(TERM_SERIAL_OPTIONS):
        raise ValueError(f"term_options takes {', '.join(TERM_SERIAL_OPTIONS)}, not "
                         f"{sorted(set(term_options) - set(TERM_SERIAL_OPTIONS))}")
    if term_options and (design not in DESIGNS or DESIGNS[design][1] != "term_serial"):
        option = "--" + next(iter(term_options)).replace("_", "-")
        raise ValueError(f"{option} applies to tcle and pragmatic only, not {design}")
    if design in ARRAY_DESIGNS:
        if tile is not None:
            raise ValueError(f"--tile applies to {', '.join(DESIGNS)} only, not {design} (use "
                             f"--array)")
        if pattern is not None:
            raise ValueError(f"--pattern applies to wskip, tclp and tcle only, not {design}")
        return simulate_array(layer_path, design, simulator, array=array, windows=windows,
                              build_dir=build_dir)
    if array is not None:
        raise ValueError(f"--array applies to {', '.join(ARRAY_DESIGNS)} only, not {design}")
    block, backend, default_pattern, takes_pattern = DESIGNS[design]
    if pattern is not None and not takes_pattern:
        raise ValueError(f"--pattern applies to wskip, tclp and tcle only, not {design}")
    if windows is not None and windows < 1:
        raise ValueError(f"--windows must be a positive integer, not {windows}")
    pattern = default_pattern if pattern is None else pattern
    tile = DEFAULT_TILES[backend] if tile is None else tile
    layer = load_layer(layer_path)
    if backend == "term_serial":
        params = _tile_params(layer, tile, pattern, windows, TCLeTileParams, **term_options,
                              **TERM_SERIAL_FIXED.get(design, {}))
    else:
        params = _tile_params(layer, tile, pattern, windows, TileParams)
    build_dir = pathlib.Path(build_dir)
    report_path = build_dir / "report.json"
    env = {"TILE_BACKEND": backend, "TILE_LAYERS": str(pathlib.Path(layer_path).resolve()),
           "TILE_REPORT": str(report_path.resolve()), "TILE_STRICT": "0"}
    if windows is not None:
        env["TILE_MAX_WINDOWS"] = str(windows)
    started = time.perf_counter()
    _run_logged(block, params, simulator, build_dir, "sim.tb_tile", env)
    elapsed = time.perf_counter() - started
    report = json.loads(report_path.read_text())["layers"][0]

    expected = layer_output(layer)
    k = expected.shape[0]
    flat_expected = expected.reshape(k, -1)
    total_windows = flat_expected.shape[1]
    count = total_windows if windows is None else min(windows, total_windows)
    output = np.zeros((k, count), dtype=np.int64)
    written = np.zeros((k, count), dtype=bool)
    golden_passes = list(passes(layer, params, max_windows=windows))
    if len(golden_passes) != len(report["passes"]):
        raise AssertionError(f"the testbench ran {len(report['passes'])} passes, golden has "
                             f"{len(golden_passes)}")
    for one, entry in zip(golden_passes, report["passes"]):
        results = np.array(entry["results"], dtype=np.int64)
        for fi, filt in enumerate(one.filters):
            for wi, window in enumerate(one.windows):
                if filt >= 0 and window >= 0:
                    output[filt, window] = results[fi, wi]
                    written[filt, window] = True
    mismatch = None
    reference = flat_expected[:, :count]
    outputs_ok = bool(written.all() and np.array_equal(output, reference))
    if not written.all():
        mismatch = f"{int((~written).sum())} output values were never produced"
    elif not np.array_equal(output, reference):
        wrong = np.argwhere(output != reference)
        first = tuple(int(i) for i in wrong[0])
        mismatch = (f"{len(wrong)} of {reference.size} values differ (first at [filter, window] "
                    f"{list(first)}: {int(output[first])} instead of {int(reference[first])})")
    cycles = sum(entry["cycles"] for entry in report["passes"])
    golden_cycles = sum(entry["expected_cycles"] for entry in report["passes"])
    bad_cycles = [i for i, entry in enumerate(report["passes"])
                  if entry["cycles"] != entry["expected_cycles"]]
    if bad_cycles and mismatch is None:
        entry = report["passes"][bad_cycles[0]]
        mismatch = (f"{len(bad_cycles)} passes' cycle counters differ from golden (first: pass "
                    f"{bad_cycles[0]}, {entry['cycles']} instead of {entry['expected_cycles']})")
    baseline = _baseline_cycles(layer, params.filters, params.lanes, windows)
    if count == total_windows:
        output = output.reshape(expected.shape)
    results = {
        "design": design, "layer": layer.name, "kind": layer.kind, "simulator": simulator,
        "tile": f"{params.filters}x{params.lanes}x{params.windows}", "pattern": pattern,
        "weight_rows": params.weight_rows, "act_rows": params.act_rows,
        "windows": count, "total_windows": total_windows, "passes": len(report["passes"]),
        "output_matches": outputs_ok, "reference": "golden.layers.layer_output",
        "cycles": cycles, "golden_cycles": golden_cycles, "cycles_match": not bad_cycles,
        "baseline_cycles": baseline, "speedup": baseline / cycles if cycles else None,
        "sim_clock_cycles": report["sim_clock_cycles"],
        "sim_seconds": report["wall_seconds"], "total_seconds": elapsed,
    }
    if backend == "term_serial":
        results.update({name: getattr(params, name) for name in TERM_SERIAL_OPTIONS})
    return results, output, mismatch


def simulate_array(layer_path, design, simulator, *, array=None, windows=None, build_dir):
    """Run a layer file on the SySMT array RTL (``sysmt1``, ``sysmt2``, ``sysmt4``); return
    ``(results dict, output array, mismatch or None)`` as `simulate`.

    ``array`` is ``(rows, cols)`` (default `DEFAULT_ARRAY`); ``windows`` the number of output
    positions (row-major) to run. ``ValueError`` for a bad option or a layer the array cannot
    run (`golden.approx_designs.unsupported`, or negative activations: the PEs take uint8).
    """
    from golden.approx_designs import unsupported
    from golden.layers import layer_output, load_layer
    from golden.nbsmt import gemm_cycles, nbsmt_layer_output
    from hw.params import SySMTParams

    if windows is not None and windows < 1:
        raise ValueError(f"--windows must be a positive integer, not {windows}")
    rows, cols = DEFAULT_ARRAY if array is None else array
    threads = ARRAY_DESIGNS[design]
    params = SySMTParams(rows=rows, cols=cols, threads=threads)
    layer = load_layer(layer_path)
    reason = unsupported(layer)
    if reason is None and layer.activations.size and layer.activations.min() < 0:
        reason = "the array's PEs take unsigned activations (0..255), the layer has negative ones"
    if reason is not None:
        raise ValueError(f"layer {layer.name!r}: {design} cannot run it: {reason}")
    build_dir = pathlib.Path(build_dir)
    report_path = build_dir / "report.json"
    env = {"SYSMT_LAYER": str(pathlib.Path(layer_path).resolve()),
           "SYSMT_REPORT": str(report_path.resolve())}
    if windows is not None:
        env["SYSMT_MAX_POSITIONS"] = str(windows)
    started = time.perf_counter()
    _run_logged("sysmt", params, simulator, build_dir, "sim.tb_sysmt_layer", env,
                optimize=False)
    elapsed = time.perf_counter() - started
    report = json.loads(report_path.read_text())

    k = layer.out_channels
    kg = k // layer.groups
    total = 1 if layer.kind == "fc" else int(np.prod(layer.output_shape[1:]))
    count = total if windows is None else min(windows, total)
    output = np.zeros((k, count), dtype=np.int64)
    written = np.zeros((k, count), dtype=bool)
    for tile in report["tiles"]:
        (p0, positions), (k0, channels) = tile["positions"], tile["channels"]
        block = np.array(tile["rows"], dtype=np.int64)[:positions, :channels]
        first = tile["group"] * kg + k0
        output[first:first + channels, p0:p0 + positions] = block.T
        written[first:first + channels, p0:p0 + positions] = True
    if threads == 1:
        reference_name, expected = "golden.layers.layer_output", layer_output(layer)
    else:
        reference_name = "golden.nbsmt.nbsmt_layer_output"
        expected = nbsmt_layer_output(layer, params)[0]
    reference = expected.reshape(k, -1)[:, :count]
    mismatch = None
    outputs_ok = bool(written.all() and np.array_equal(output, reference))
    if not written.all():
        mismatch = f"{int((~written).sum())} output values were never produced"
    elif not outputs_ok:
        wrong = np.argwhere(output != reference)
        first = tuple(int(i) for i in wrong[0])
        mismatch = (f"{len(wrong)} of {reference.size} values differ (first at [channel, "
                    f"position] {list(first)}: {int(output[first])} instead of "
                    f"{int(reference[first])})")
    cycles = report["cycles"]
    golden_cycles = gemm_cycles(count, kg, layer.reduction_length, params, groups=layer.groups)
    if cycles != golden_cycles and mismatch is None:
        mismatch = f"the cycle counter is {cycles}, golden.nbsmt gives {golden_cycles}"
    baseline = gemm_cycles(count, kg, layer.reduction_length,
                           SySMTParams(rows=rows, cols=cols, threads=1), groups=layer.groups)
    if count == total:
        output = output.reshape(expected.shape)
    results = {
        "design": design, "layer": layer.name, "kind": layer.kind, "simulator": simulator,
        "array": f"{rows}x{cols}", "threads": threads, "windows": count,
        "total_windows": total, "tiles": len(report["tiles"]), "output_matches": outputs_ok,
        "reference": reference_name, "cycles": cycles, "golden_cycles": golden_cycles,
        "cycles_match": cycles == golden_cycles, "baseline_cycles": baseline,
        "speedup": baseline / cycles if cycles else None,
        "sim_clock_cycles": report["sim_clock_cycles"],
        "sim_seconds": report["wall_seconds"], "total_seconds": elapsed,
    }
    return results, output, mismatch


def run(args):
    """Simulate; return 0, or 1 if the output or a cycle count differs from golden."""
    from .evaluate import parse_array, parse_tile

    if args.design in ("fpraker", "bf16mac"):  # the float designs: effectual.sim_fpraker
        from .sim_fpraker import run as run_float
        return run_float(args)
    if getattr(args, "outputs", None) is not None:
        raise ValueError(f"--outputs applies to fpraker and bf16mac only, not {args.design}")
    tile = None if args.tile is None else parse_tile(args.tile)
    array = None if args.array is None else parse_array(args.array)
    term_options = {name: getattr(args, name) for name in TERM_SERIAL_OPTIONS
                    if getattr(args, name, None) is not None}
    options = dict(tile=tile, pattern=args.pattern, array=array, windows=args.windows,
                   term_options=term_options)
    if args.build_dir is not None:
        args.build_dir.mkdir(parents=True, exist_ok=True)
        results, output, mismatch = simulate(args.layer, args.design, args.sim, **options,
                                             build_dir=args.build_dir)
    else:
        with tempfile.TemporaryDirectory(prefix="effectual-sim-") as directory:
            results, output, mismatch = simulate(args.layer, args.design, args.sim, **options,
                                                 build_dir=directory)
    if args.out:
        with open(args.out, "wb") as handle:
            np.save(handle, output.astype(np.int64))
    if args.json:
        print(json.dumps(results))
    else:
        is_array = args.design in ARRAY_DESIGNS
        where = (f"array {results['array']}, {results['threads']} thread"
                 f"{'s' if results['threads'] > 1 else ''} per PE" if is_array
                 else f"tile {results['tile']}, pattern {results['pattern']}")
        if "run_ahead" in results:
            where += (f", {results['encoding']} terms, L1 = {results['first_stage_bits']}, "
                      f"run-ahead {results['run_ahead']}")
        print(f"{args.layer}: layer {results['layer']!r} ({results['kind']}) on {args.design} "
              f"RTL, {where}, {args.sim}")
        if is_array:
            print(f"positions       {results['windows']} of {results['total_windows']} "
                  f"({results['tiles']} tiles)")
        else:
            print(f"windows         {results['windows']} of {results['total_windows']} "
                  f"({results['passes']} passes)")
        print(f"output          {'matches' if results['output_matches'] else 'DIFFERS FROM'} "
              f"{results['reference']}")
        print(f"cycles          {results['cycles']:,} ({'array' if is_array else 'tile'} "
              f"counter; golden {results['golden_cycles']:,}, "
              f"{'equal' if results['cycles_match'] else 'DIFFERENT'})")
        print(f"{'sysmt1' if is_array else 'baseline'} cycles{' ' * 3 if is_array else ' '}"
              f"{results['baseline_cycles']:,}")
        print(f"speedup         {results['speedup']:.3f}")
        print(f"simulation      {results['sim_clock_cycles']:,} clock cycles in "
              f"{results['sim_seconds']:.1f} s ({results['total_seconds']:.1f} s with the build)")
    if mismatch is not None:
        print(f"effectual sim: error: {args.design} RTL differs from golden: {mismatch}",
              file=sys.stderr)
        return 1
    return 0
