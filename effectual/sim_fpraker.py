"""``effectual sim --design fpraker|bf16mac --layer FILE --sim icarus|verilator [--outputs N]``.

The first ``N`` outputs (default :data:`DEFAULT_OUTPUTS`, ``(k, oy, ox)`` order) of the layer's
float view (`golden.fpraker_layers`) run through the emitted ``fpraker_pe`` (or ``bf16_mac``)
RTL under cocotb (``sim/tb_fpraker_layer.py``, reusing ``sim/tb_fpraker_pe.py``'s driver,
monitor and scoreboard). A run succeeds when every result is bit-identical to the golden layer
model (`golden.fpraker_layers.evaluate_float_layer`) and each dot product's PE cycle counter
equals the golden cycle model; the layer cycles of the simulated outputs on ``pes`` PEs are
then the same as the model's.
"""

import tempfile
from pathlib import Path

import numpy as np

__all__ = ["DEFAULT_OUTPUTS", "BLOCKS", "simulate_float_layer", "run"]

#: outputs simulated by default (a layer's full output would take hours in an HDL simulator)
DEFAULT_OUTPUTS = 16
#: float design -> emitted block
BLOCKS = {"fpraker": "fpraker_pe", "bf16mac": "bf16_mac"}


def simulate_float_layer(layer_path, design, simulator, *, outputs=DEFAULT_OUTPUTS, params=None,
                         pes=None, build_dir=None):
    """Simulate the first ``outputs`` outputs of a layer file on ``design``'s RTL.

    Returns a dict: ``design``, ``simulator``, ``layer``, ``outputs``, ``results_match``
    (float32 patterns equal to golden), ``cycles_match`` (per-output cycle counters equal to
    the model), ``pes``, ``output`` (the RTL's float32 patterns, a list), ``cycles`` (the
    simulated outputs' layer cycles on ``pes`` PEs from the RTL's counters) and
    ``model_cycles`` (the golden model's). ``AssertionError`` from the runner if
    the cocotb scoreboard fails.
    """
    from golden.fpraker_layers import (DEFAULT_PES, FLOAT_DESIGNS, evaluate_float_layer,
                                       layer_pairs, pe_cycles)
    from golden.fpraker import bf16_mac_dot, fpraker_dot
    from golden.layers import load_layer
    from hw.params import BF16MACParams, FPRakerParams
    from sim.runner import run_cocotb

    if design not in FLOAT_DESIGNS:
        raise ValueError(f"design must be one of {', '.join(FLOAT_DESIGNS)}, not {design!r}")
    params = FPRakerParams() if params is None else params
    pes = DEFAULT_PES if pes is None else pes
    layer = load_layer(layer_path)
    a, b = layer_pairs(layer, outputs=outputs)
    block_params = params if design == "fpraker" else BF16MACParams(
        lanes=params.lanes, acc_width=params.acc_width)
    model = evaluate_float_layer(layer, design, params=params, pes=pes, outputs=outputs)
    golden = (fpraker_dot if design == "fpraker" else bf16_mac_dot)(a, b, params)
    with tempfile.TemporaryDirectory(prefix="effectual-sim-fpraker-") as temporary:
        root = Path(build_dir) if build_dir is not None else Path(temporary)
        root.mkdir(parents=True, exist_ok=True)
        vectors, results = root / "vectors.npz", root / "results.npy"
        np.savez(vectors, a=a, b=b)
        run_cocotb(BLOCKS[design], block_params, simulator=simulator, build_dir=root / simulator,
                   test_module="sim.tb_fpraker_layer", optimize=False,
                   extra_env={"FPRAKER_VECTORS": str(vectors),
                              "FPRAKER_RESULTS": str(results)})
        received = np.load(results)
    bits, cycles = received[:, 0], received[:, 1]
    return {
        "design": design, "simulator": simulator, "layer": layer.name, "outputs": len(a),
        "results_match": bits.tolist() == model.output.view(np.uint32).tolist(),
        "cycles_match": cycles.tolist() == golden.cycles.tolist(),
        "pes": pes, "cycles": pe_cycles(cycles, pes), "model_cycles": model.cycles,
        "output": bits.tolist(),
    }


def run(args):
    """``effectual sim`` for a float design (called by `effectual.simulate.run`): print the
    results (or ``--json``), write ``--out`` (float32 ``[N]``, the simulated outputs); return
    0, or 1 if the RTL differs from golden (results or cycle counters)."""
    import json
    import sys
    import time

    for option in ("windows", "tile", "pattern", "array", "encoding", "first_stage_bits",
                   "run_ahead"):
        if getattr(args, option, None) is not None:
            raise ValueError(f"--{option.replace('_', '-')} does not apply to {args.design} "
                             f"(use --outputs)")
    if args.sim not in ("icarus", "verilator"):
        raise ValueError(f"--sim must be icarus or verilator, not {args.sim!r}")
    outputs = DEFAULT_OUTPUTS if getattr(args, "outputs", None) is None else args.outputs
    start = time.perf_counter()
    try:
        results = simulate_float_layer(args.layer, args.design, args.sim, outputs=outputs,
                                       build_dir=args.build_dir)
        failure = None
    except AssertionError as error:
        results, failure = None, str(error).splitlines()[0]
    if failure is not None:
        print(f"effectual sim: error: {args.design} RTL differs from golden: {failure}",
              file=sys.stderr)
        return 1
    results["seconds"] = time.perf_counter() - start
    if args.out:
        with open(args.out, "wb") as handle:
            np.save(handle, np.asarray(results.pop("output"), dtype=np.uint32).view(np.float32))
    else:
        results.pop("output")
    if args.json:
        print(json.dumps(results))
    else:
        print(f"{args.layer}: layer {results['layer']!r} in bfloat16 on {args.design} RTL "
              f"({BLOCKS[args.design]}), {args.sim}")
        print(f"outputs         {results['outputs']} (the first, (k, oy, ox) order)")
        print(f"results         {'equal to' if results['results_match'] else 'DIFFER FROM'} "
              f"golden.fpraker_layers")
        print(f"cycles          {results['cycles']:,} (PE counters on {results['pes']} PEs; "
              f"model {results['model_cycles']:,}, "
              f"{'equal' if results['cycles_match'] else 'DIFFERENT'})")
        print(f"simulation      {results['seconds']:.1f} s with the build")
    if not (results["results_match"] and results["cycles_match"]):
        print(f"effectual sim: error: {args.design} RTL differs from golden", file=sys.stderr)
        return 1
    return 0
