"""FPRaker and the bit-parallel bfloat16 MAC on a layer in float form (``effectual eval``).

A layer file (`golden.layers`) holds integer codes; its *float view* is the layer a bfloat16
accelerator would see:

1. *Dequantize* (named step: one float64 multiplication, IEEE round to nearest even, of the
   integer code and the scale): weights
   ``w * weight_scale`` (per output channel if the scale is a vector), activations
   ``(a - act_zero_point) * act_scale``; padding pixels hold the zero point, i.e. ``0.0``.
2. *Round to float32* (named step: numpy's IEEE round to nearest even).
3. *Round to bfloat16* (named step: `golden.bfloat.f32_to_bf16`, round to nearest even).

Every output is one dot product over the layer's reduction, lowered like the integer tiles
(`golden.tcl.lower`): kernel positions ``(r, s)`` row-major, channels of the group innermost,
i.e. ``(r, s, c)`` order. The activation is the term-serial operand ``A`` (as in the
``fpraker`` bench's forward operation), the weight ``B``; sets of ``lanes`` pairs are cut along
that order (`golden.fpraker.split_sets`). Outputs are enumerated ``(k, oy, ox)`` row-major
(fc: ``k``), the order of ``layer_output(layer).ravel()``.

Designs (:data:`FLOAT_DESIGNS`; a second registry beside `golden.designs.DESIGNS`, whose
``Design.output`` contract is int64 and exact against the integer output, which a float
datapath cannot meet): ``fpraker`` runs `golden.fpraker.fpraker_dot`, ``bf16mac`` runs
`golden.fpraker.bf16_mac_dot`, both with the same `hw.params.FPRakerParams` (lanes, W).

Cycles on ``pes`` processing elements
-------------------------------------
Output-stationary: output ``i`` (in the order above) goes to PE ``i mod pes``; a PE computes its
outputs one after the other, so the layer takes ``max over PEs of the sum of its outputs'
cycles`` (`golden.fpraker.DotResult.cycles` per output). The baseline (the BF16 MAC, one set per
cycle per PE) takes ``sets * ceil(outputs / pes)``. One FPRaker PE and one BF16 MAC both have a
peak of ``lanes`` MACs per cycle (FPRaker when every lane has at most one effectual term), so
the comparison uses the **same number of PEs for both** (default :data:`DEFAULT_PES` = 16).
The FPRaker ideal is the effectual (in-window) terms divided by ``lanes * pes`` (no lane ever
idle, no load imbalance); the BF16 MAC ideal is the MACs (``outputs * reduction``) divided by
``lanes * pes``. Both ideals are real numbers (not rounded).

Reference and error
-------------------
The reference of an output is the exact dot product of the same bfloat16 inputs (subnormals
flushed, the datapath's view), computed with `math.fsum` over the float64 products (each
product of two bfloat16 values is exact in float64, and ``fsum`` returns the correctly rounded
exact sum). The error of an output is checked against `golden.fpraker.error_bound`'s result
bound: :func:`error_bounds` evaluates that bound vectorized in float64; an output whose error is
below half its float64 bound is within the exact bound (the float64 evaluation is accurate to far
better than a factor of 2); every other output is re-checked exactly with
`golden.fpraker.exact_dot` and `golden.fpraker.error_bound` (Fractions).
"""

import dataclasses
import math

import numpy as np

from hw.params import FPRakerParams, check_int

from . import bfloat, terms
from .fpraker import bf16_mac_dot, error_bound, exact_dot, fpraker_dot, split_sets

__all__ = ["DEFAULT_PES", "FLOAT_DESIGNS", "float_layer", "layer_pairs", "reference_dots",
           "error_bounds", "pe_cycles", "FloatLayerResult", "evaluate_float_layer",
           "network_fpraker", "REPORT_OUTPUTS"]

#: processing elements of both designs by default (the same count: equal peak throughput)
DEFAULT_PES = 16
#: name -> one-line description of the float designs ``effectual eval`` takes
FLOAT_DESIGNS = {
    "fpraker": "FPRaker PE: bfloat16 term-serial MACs with out-of-bounds term skipping",
    "bf16mac": "bit-parallel bfloat16 MAC, one set per cycle (the FPRaker baseline)",
}
#: outputs per layer and image `network_fpraker` evaluates by default (the report's bound)
REPORT_OUTPUTS = 4096
_CHUNK = 1 << 21  # pairs per fpraker_dot call (memory bound)


def float_layer(layer):
    """Return ``(weights, activations)`` of ``layer`` as bfloat16 patterns (``int64``), the
    float view of the module docs (dequantize, round to float32, round to bfloat16); shapes
    as ``layer.weights`` and ``layer.activations``. ``ValueError`` if a value overflows to a
    bfloat16 infinity (the error bound is for finite dot products)."""
    scale = np.asarray(layer.weight_scale, dtype=np.float64)
    if scale.ndim == 1:
        scale = scale.reshape((-1,) + (1,) * (layer.weights.ndim - 1))
    weights = layer.weights.astype(np.float64) * scale
    acts = (layer.activations - layer.act_zero_point).astype(np.float64) * layer.act_scale

    def bf16(x, name):
        with np.errstate(over="ignore"):  # an overflow is refused just below
            x = x.astype(np.float32)
        bits = bfloat.f32_to_bf16(bfloat.float32_bits(x)).astype(np.int64)
        if bits.size and (((bits >> 7) & 0xFF) == 0xFF).any():
            raise ValueError(f"layer {layer.name!r}: the dequantized {name} overflow bfloat16")
        return bits

    return bf16(weights, "weights"), bf16(acts, "activations")


def layer_pairs(layer, *, outputs=None):
    """Return ``(a, b)``: bfloat16 patterns ``[O, L]`` (activations, weights) of the first
    ``outputs`` outputs of ``layer`` (default all) in ``(k, oy, ox)`` order, reduction in
    ``(r, s, c)`` order (module docs)."""
    weights, acts = float_layer(layer)
    total = int(np.prod(layer.output_shape))
    count = total if outputs is None else check_int("outputs", outputs, 1, total)
    if layer.kind == "fc":
        a = np.broadcast_to(acts.reshape(1, -1), (count, acts.size))
        return np.ascontiguousarray(a), weights[:count].copy()
    k, oh, ow = layer.output_shape
    g = layer.groups
    kg = k // g
    r, s = layer.kernel_size
    cg = layer.channels_per_group
    # patches of the bf16 activation patterns: pad with +0, the pattern of a real zero
    top, bottom, left, right = layer.padding
    padded = np.pad(acts, ((0, 0), (top, bottom), (left, right)))
    sv, sh = layer.stride
    windows = np.lib.stride_tricks.sliding_window_view(padded, (r, s), axis=(1, 2))
    windows = windows[:, ::sv, ::sh][:, :oh, :ow]                  # [C, OH, OW, R, S]
    patches = windows.reshape(g, cg, oh * ow, r, s).transpose(0, 2, 3, 4, 1)  # (r, s, c)
    patches = patches.reshape(g, oh * ow, r * s * cg)
    wm = weights.reshape(g, kg, cg, r, s).transpose(0, 1, 3, 4, 2).reshape(g, kg, r * s * cg)
    index = np.arange(count)
    kk, pp = index // (oh * ow), index % (oh * ow)
    group = kk // kg
    a = patches[group, pp]
    b = wm[group, kk % kg]
    return a, b


def _as_float64(bits):
    """bfloat16 patterns -> float64 values, subnormals flushed to zero (finite inputs)."""
    bits = np.asarray(bits, dtype=np.int64)
    values = bfloat.bits_float32(bfloat.bf16_to_f32(bits)).astype(np.float64)
    return np.where(((bits >> 7) & 0xFF) == 0, 0.0, values)


def reference_dots(a, b):
    """Return the float64 exact-sum reference (``math.fsum`` of exact float64 products) of
    every dot product ``a[i] . b[i]`` of bfloat16 patterns ``[O, L]`` (subnormals flushed)."""
    products = _as_float64(a) * _as_float64(b)
    return np.array([math.fsum(row) for row in products.tolist()], dtype=np.float64)


def error_bounds(a, b, params):
    """Return `golden.fpraker.error_bound`'s result bound of every dot product ``[O, L]``,
    evaluated in float64 (vectorized over the dot products; accurate to far better than a
    factor of 2, see the module docs).

    ``params`` is ``(lanes, acc_width, encoding)`` with ``encoding`` None for the baseline.
    """
    lanes, acc_width, encoding = params
    a_sets, b_sets = split_sets(a, lanes), split_sets(b, lanes)    # [O, J, N]
    products = _as_float64(a_sets) * _as_float64(b_sets)
    finite = products != 0
    if encoding is None:
        counts = finite.sum(-1)
    else:
        sig = np.where(finite, bfloat.significand(a_sets), 0)
        counts = terms.term_count(sig, encoding=encoding, width=8).sum(-1)
    unit, norm = 2.0 ** (2 - acc_width), 2.0 ** (1 - acc_width)
    partial = np.zeros(products.shape[0])
    eps = np.zeros(products.shape[0])
    for j in range(products.shape[1]):
        scale = np.maximum(np.abs(products[:, j]).max(-1), np.abs(partial) + eps)
        delta = eps + (1 + counts[:, j]) * unit * scale
        partial = partial + products[:, j].sum(-1)
        eps = delta + norm * (np.abs(partial) + delta)
    return eps + 2.0 ** -24 * (np.abs(partial) + eps) + 2.0 ** -126


def pe_cycles(per_output, pes):
    """Return the layer's cycles with output ``i`` on PE ``i mod pes`` (module docs)."""
    per_output = np.asarray(per_output, dtype=np.int64).ravel()
    padded = np.zeros(-(-per_output.size // pes) * pes, dtype=np.int64)
    padded[:per_output.size] = per_output
    return int(padded.reshape(-1, pes).sum(0).max())


@dataclasses.dataclass(frozen=True)
class FloatLayerResult:
    """One layer on a float design (see :func:`evaluate_float_layer`)."""

    output: np.ndarray       # float32, [O] (the evaluated outputs, flat (k, oy, ox) order)
    reference: np.ndarray    # float64 exact-sum reference, [O]
    bound: np.ndarray        # float64 result bound per output, [O]
    within_bound: np.ndarray  # bool [O], decided exactly for borderline outputs
    cycles: int
    baseline_cycles: int
    ideal_cycles: float
    results: dict            # JSON-able summary


def _check_pes(pes):
    return check_int("pes", pes, 1, 1 << 20)


def evaluate_float_layer(layer, design, *, params=None, pes=DEFAULT_PES, outputs=None):
    """Run ``layer``'s float view on ``design`` (``"fpraker"`` or ``"bf16mac"``).

    Parameters
    ----------
    layer : `golden.layers.Layer`
    design : str, a key of :data:`FLOAT_DESIGNS`
    params : `hw.params.FPRakerParams`, optional (lanes, acc_width, encoding; both designs)
    pes : int, 1..2**20, default :data:`DEFAULT_PES`
    outputs : int or None
        Evaluate only the first ``outputs`` outputs (flat ``(k, oy, ox)`` order); None: all.

    Returns
    -------
    :class:`FloatLayerResult`; its ``results`` dict holds cycles, baseline and ideal cycles,
    speedup (baseline / cycles), achieved/ideal (ideal / cycles) and the error figures.
    """
    if design not in FLOAT_DESIGNS:
        raise ValueError(f"design must be one of {', '.join(FLOAT_DESIGNS)}, not {design!r}")
    params = FPRakerParams() if params is None else params
    if not isinstance(params, FPRakerParams):
        raise TypeError(f"params must be an FPRakerParams, not {params!r}")
    pes = _check_pes(pes)
    a, b = layer_pairs(layer, outputs=outputs)
    count, length = a.shape
    run = fpraker_dot if design == "fpraker" else bf16_mac_dot
    bits = np.empty(count, dtype=np.uint32)
    cycles = np.empty(count, dtype=np.int64)
    effectual = terms_total = 0
    step = max(1, _CHUNK // length)
    for start in range(0, count, step):
        res = run(a[start:start + step], b[start:start + step], params)
        bits[start:start + step] = res.bits
        cycles[start:start + step] = res.cycles
        effectual += int(res.effectual.sum())
        terms_total += int(res.terms.sum())
    sets = -(-length // params.lanes)
    output = bfloat.bits_float32(bits)
    reference = reference_dots(a, b)
    encoding = params.encoding if design == "fpraker" else None
    bound = error_bounds(a, b, (params.lanes, params.acc_width, encoding))
    error = np.abs(output.astype(np.float64) - reference)
    within = error <= 0.5 * bound
    for i in np.flatnonzero(~within):  # borderline or violating: decide exactly
        exact = exact_dot(a[i], b[i])
        _, exact_bound = error_bound(a[i], b[i], lanes=params.lanes,
                                     acc_width=params.acc_width, encoding=encoding)
        value = bfloat.to_fraction(int(bits[i]), bfloat.F32) if np.isfinite(output[i]) else None
        within[i] = value is not None and abs(value - exact) <= exact_bound
    layer_cycles = pe_cycles(cycles, pes)
    baseline = sets * -(-count // pes)
    if design == "fpraker":
        ideal = effectual / (params.lanes * pes)
    else:
        ideal = count * length / (params.lanes * pes)
    nonzero = reference != 0
    norm = float(np.sqrt(np.sum(reference ** 2)))
    results = {
        "design": design, "layer": layer.name, "kind": layer.kind,
        "params": dataclasses.asdict(params), "pes": pes,
        "outputs": count, "total_outputs": int(np.prod(layer.output_shape)),
        "reduction": length, "sets_per_output": sets,
        "cycles": layer_cycles, "baseline_cycles": baseline, "ideal_cycles": ideal,
        "speedup": baseline / layer_cycles, "achieved_over_ideal": ideal / layer_cycles,
        "terms": terms_total, "effectual_terms": effectual,
        "error": {
            "max_abs_error": float(error.max()),
            "max_rel_error": float((error[nonzero] / np.abs(reference[nonzero])).max())
            if nonzero.any() else 0.0,
            "rel_rms_error": float(np.sqrt(np.sum(error ** 2)) / norm) if norm else 0.0,
            "max_error_over_bound": float((error / bound).max()),
            "within_bound": int(within.sum()), "outside_bound": int((~within).sum()),
        },
    }
    return FloatLayerResult(output=output, reference=reference, bound=bound,
                            within_bound=within, cycles=layer_cycles, baseline_cycles=baseline,
                            ideal_cycles=ideal, results=results)


def _combine(items):
    """Totals of per-layer (or per-image) FPRaker figures: sums of cycles, ratios of sums,
    the largest errors."""
    cycles = sum(i["cycles"] for i in items)
    baseline = sum(i["baseline_cycles"] for i in items)
    ideal = sum(i["ideal_cycles"] for i in items)
    return {"outputs": sum(i["outputs"] for i in items), "cycles": cycles,
            "baseline_cycles": baseline, "ideal_cycles": ideal, "speedup": baseline / cycles,
            "achieved_over_ideal": ideal / cycles,
            "max_abs_error": max(i["max_abs_error"] for i in items),
            "max_rel_error": max(i["max_rel_error"] for i in items),
            "outside_bound": sum(i["outside_bound"] for i in items)}


def network_fpraker(directory, *, images=1, outputs=REPORT_OUTPUTS, pes=DEFAULT_PES,
                    params=None, progress=None):
    """Return FPRaker's figures for a network directory (the report's FPRaker section).

    Each layer's float view runs on ``fpraker`` (:func:`evaluate_float_layer`) for the first
    ``images`` images (``None``: all) and the first ``outputs`` outputs of each layer
    (``None``: all); the baseline is the BF16 MAC's cycles on the same outputs and PEs.
    Returns ``{"images", "outputs_per_layer", "pes", "params", "layers": [per layer: name,
    outputs, cycles, baseline_cycles, ideal_cycles, speedup, achieved_over_ideal,
    max_abs_error, max_rel_error, outside_bound], "network": the same totals}``; cycles are
    summed over the evaluated images and layers, speedups are ratios of those sums, errors
    are the largest. ``progress(n)`` is called after each layer file.
    """
    from .layers import load_manifest, load_network

    params = FPRakerParams() if params is None else params
    count = len(load_manifest(directory)["images"])
    if images is not None:
        images = check_int("images", images, 1, count)
    selected = None if images is None else list(range(images))
    _, layers = load_network(directory, images=selected)
    per_layer = {}
    for entry, _, layer in layers:
        total = int(np.prod(layer.output_shape))
        limit = None if outputs is None or outputs >= total else outputs
        r = evaluate_float_layer(layer, "fpraker", params=params, pes=pes,
                                 outputs=limit).results
        item = {key: r[key] for key in ("outputs", "cycles", "baseline_cycles",
                                        "ideal_cycles")}
        item.update({key: r["error"][key] for key in ("max_abs_error", "max_rel_error")})
        item["outside_bound"] = r["error"]["outside_bound"]
        per_layer.setdefault(entry["name"], []).append(item)
        if progress is not None:
            progress(1)
    rows = [{"name": name, **_combine(items)} for name, items in per_layer.items()]
    return {"images": images if images is not None else count, "outputs_per_layer": outputs,
            "pes": pes, "params": dataclasses.asdict(params), "layers": rows,
            "network": _combine(rows)}
