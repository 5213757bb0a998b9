"""The ``fpraker`` bench suite: FPRaker against the bit-parallel bfloat16 MAC on real training
values, and one PE against one MAC on FPGA fabric.

Training values: the LeNet of `effectual.workloads` (scikit-learn digits, torch, CPU, fixed
seeds) is trained for `EPOCHS` epochs; then one batch of `BATCH` training images is run forward
and backward and, per layer, the layer's input activations, its weights and the gradient of the
loss with respect to its output are recorded and rounded to bfloat16 (`golden.bfloat`, ties to
even). Each layer gives three operations, each a set of dot products:

* forward: activations x weights (im2col for convolutions), length ``C*R*S`` (fc: ``C``);
* input gradient: output gradients x weights (the transposed convolution), length ``K*R*S``;
* weight gradient: output gradients x activations, length ``batch*H*W`` (fc: ``batch``).

For every operation both operand orders are run (which tensor is the term-serial operand A), on
at most `MAX_DOTS` randomly chosen dot products, by `golden.fpraker.fpraker_dot` and
`bf16_mac_dot` with the default `hw.params.FPRakerParams` (8 lanes, W = 28, NAF). Reported: terms
per non-zero A value, the share of terms skipped out of bounds and in zero lanes, cycles per set
and per MAC, and the speedup over the baseline (one set per cycle): achieved, without
out-of-bounds skipping, and ideal (effectual terms / lanes, no lane ever idle); plus the median
relative error of both designs against the float64 dot product of the same bfloat16 values.
A second table sweeps the accumulator width W (`SWEEP_WIDTHS`) on smaller samples: skipped
terms, speedup and error of both designs per operation.

FPGA: Yosys (``synth_ice40`` / ``synth_ecp5``, as ``effectual synth``) LUTs and flip-flops of the
default PE and MAC, and throughput per LUT = MACs per cycle / LUTs at equal clock; results are
cached under ``$EFFECTUAL_CACHE_DIR`` (default ``.cache/effectual``) by a hash of the Verilog.
"""

import hashlib
import json
import pathlib
import time
import warnings

import numpy as np

__all__ = ["suite", "training_tensors", "operation_pairs", "measure_operation", "synth_counts",
           "EPOCHS", "BATCH", "MAX_DOTS"]

EPOCHS = 4
BATCH = 64
MAX_DOTS = 1024
#: accumulator widths of the sweep table, and its sample size per layer and operation
SWEEP_WIDTHS = (16, 20, 24, 28)
SWEEP_DOTS = 256
SEED = 0


def training_tensors(*, epochs=EPOCHS, batch=BATCH, seed=SEED):
    """Train the LeNet and return ``(layers, accuracy)``.

    ``layers`` is a list of dicts ``{name, kind, act, weight, grad, accuracy}`` with float32
    numpy arrays: ``act`` the layer input [N, C, H, W] (fc [N, C]), ``weight`` [K, C, R, S]
    (fc [K, C]), ``grad`` the loss gradient of the layer output [N, K, H, W] (fc [N, K]), all
    from one batch after training.
    """
    from . import workloads

    torch = workloads.require("torch", "fpraker bench")
    config = dict(workloads.LENET_CONFIG)
    x_train, x_test, y_train, y_test, _ = workloads._digits("fpraker bench", config)
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    model = workloads._lenet_module(torch)
    x = torch.from_numpy(x_train)
    y = torch.from_numpy(y_train).long()
    workloads._train(torch, model, x, y, epochs=epochs, lr=config["lr"], batch=config["batch"],
                     seed=seed)
    accuracy = workloads._accuracy(torch, model, torch.from_numpy(x_test),
                                   torch.from_numpy(y_test).long())
    records = {}
    hooks = []
    for name, kind in workloads.LENET_LAYERS:
        module = getattr(model, name)

        def forward_hook(module, inputs, output, name=name):
            records.setdefault(name, {})["act"] = inputs[0].detach().numpy().copy()

        def backward_hook(module, grad_input, grad_output, name=name):
            records.setdefault(name, {})["grad"] = grad_output[0].detach().numpy().copy()

        hooks.append(module.register_forward_hook(forward_hook))
        hooks.append(module.register_full_backward_hook(backward_hook))
    chosen = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:batch]
    model.zero_grad()
    with warnings.catch_warnings():   # conv1's input needs no gradient; its output's is hooked
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        torch.nn.functional.cross_entropy(model(x[chosen]), y[chosen]).backward()
    for hook in hooks:
        hook.remove()
    layers = []
    for name, kind in workloads.LENET_LAYERS:
        weight = getattr(model, name).weight.detach().numpy().copy()
        layers.append({"name": name, "kind": kind, "weight": weight, **records[name]})
    return layers, accuracy


def _bf16(x):
    from golden import bfloat

    return bfloat.f32_to_bf16(bfloat.float32_bits(np.ascontiguousarray(x, dtype=np.float32)))


def operation_pairs(layer, operation):
    """Return ``(first, second, dots_total)``: float32 operand arrays ``[P, L]`` of every dot
    product of ``operation`` ("forward", "input_gradient", "weight_gradient") of ``layer``
    (3x3, stride 1, padding 1 convolutions or fc), in the order named by the operation."""
    act, weight, grad = layer["act"], layer["weight"], layer["grad"]
    if layer["kind"] == "fc":
        act = act.reshape(act.shape[0], -1)
        if operation == "forward":      # out[n,k] = sum_c act[n,c] w[k,c]
            first = np.repeat(act[:, None, :], weight.shape[0], 1).reshape(-1, act.shape[1])
            second = np.repeat(weight[None], act.shape[0], 0).reshape(-1, act.shape[1])
        elif operation == "input_gradient":     # dx[n,c] = sum_k g[n,k] w[k,c]
            first = np.repeat(grad[:, None, :], weight.shape[1], 1).reshape(-1, grad.shape[1])
            second = np.repeat(weight.T[None], grad.shape[0], 0).reshape(-1, grad.shape[1])
        else:                                   # dw[k,c] = sum_n g[n,k] act[n,c]
            first = np.repeat(grad.T[:, None, :], act.shape[1], 1).reshape(-1, grad.shape[0])
            second = np.repeat(act.T[None], grad.shape[1], 0).reshape(-1, act.shape[0])
        return first, second
    n, c, h, w = act.shape
    k = weight.shape[0]

    def im2col(x):                               # [N, C, H, W] -> [N, H*W, C*9]
        padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
        cols = np.stack([padded[:, :, r:r + h, s:s + w] for r in range(3) for s in range(3)],
                        2)                       # [N, C, 9, H, W]
        return cols.reshape(x.shape[0], x.shape[1] * 9, h * w).transpose(0, 2, 1)

    if operation == "forward":
        cols = im2col(act)                                        # [N, HW, C*9]
        first = np.repeat(cols[:, None], k, 1).reshape(-1, c * 9)
        second = np.broadcast_to(weight.reshape(1, k, 1, c * 9),
                                 (n, k, h * w, c * 9)).reshape(-1, c * 9)
    elif operation == "input_gradient":
        cols = im2col(grad)                                       # [N, HW, K*9]
        flipped = weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3).reshape(c, k * 9)
        first = np.repeat(cols[:, None], c, 1).reshape(-1, k * 9)
        second = np.broadcast_to(flipped.reshape(1, c, 1, k * 9),
                                 (n, c, h * w, k * 9)).reshape(-1, k * 9)
    else:
        cols = im2col(act)                                        # [N, HW, C*9]
        g = grad.reshape(n, k, h * w)
        first = np.repeat(g.transpose(1, 0, 2).reshape(k, 1, -1), c * 9, 1).reshape(-1, n * h * w)
        second = np.repeat(cols.transpose(2, 0, 1).reshape(1, c * 9, -1), k, 0).reshape(
            -1, n * h * w)
    return first, second


def measure_operation(first, second, params, rng, *, max_dots=MAX_DOTS):
    """Run both designs on a sample of the dot products, both operand orders; return a dict."""
    from golden import bfloat
    from golden.fpraker import bf16_mac_dot, fpraker_dot, set_statistics

    total = first.shape[0]
    chosen = np.sort(rng.choice(total, min(total, max_dots), replace=False))
    a16, b16 = _bf16(first[chosen]), _bf16(second[chosen])
    reference = (bfloat.bits_float32(bfloat.bf16_to_f32(a16)).astype(np.float64)
                 * bfloat.bits_float32(bfloat.bf16_to_f32(b16)).astype(np.float64)).sum(-1)
    mac = bf16_mac_dot(a16, b16, params)
    out = {"dots_total": int(total), "dots_sampled": int(len(chosen)),
           "length": int(first.shape[1]), "sets_per_dot": int(mac.sets),
           "mac_rel_error": _median_rel_error(mac.bits, reference)}
    for label, (a, b) in (("first", (a16, b16)), ("second", (b16, a16))):
        result = fpraker_dot(a, b, params)
        stats = set_statistics(result, params.lanes)
        nonzero = int((((a >> 7) & 0xFF) != 0).sum())
        sets = stats["sets"]
        out[label] = {
            "terms_per_value": stats["terms"] / max(1, nonzero) if nonzero else 0.0,
            "terms_per_nonzero_a": _terms_per_nonzero(a, params.encoding),
            "zero_fraction_a": 1 - nonzero / a.size,
            "skipped_fraction": stats["skipped_terms"] / max(1, stats["terms"]),
            "zero_lane_terms": stats["zero_lane_terms"],
            "cycles_per_set": stats["cycles"] / sets,
            "cycles_per_mac": stats["cycles"] / (sets * params.lanes),
            "speedup": sets / stats["cycles"],
            "speedup_no_skip": sets / stats["cycles_no_skip"],
            "speedup_ideal": sets / max(stats["ideal_cycles"], 1e-9),
            "rel_error": _median_rel_error(result.bits, reference),
            **stats,
        }
    return out


def _terms_per_nonzero(bits, encoding):
    from golden import terms

    nonzero = ((bits >> 7) & 0xFF) != 0
    if not nonzero.any():
        return 0.0
    sig = (bits[nonzero] & 0x7F) | 0x80
    return float(terms.term_count(sig, encoding=encoding, width=8).mean())


def _median_rel_error(bits, reference):
    from golden import bfloat

    got = bfloat.bits_float32(bits).astype(np.float64)
    nonzero = reference != 0
    if not nonzero.any():
        return 0.0
    return float(np.median(np.abs(got[nonzero] - reference[nonzero]) / np.abs(reference[nonzero])))


def synth_counts(blocks=("fpraker_pe", "bf16_mac"), *, cache=None, log=print):
    """Return ``{block: {family: {"luts", "flip_flops"}}}`` of the default configurations,
    synthesized with `effectual.synth.synthesize` (cached by Verilog hash)."""
    from hw.blocks import emit_verilog, get_block

    from .synth import SYNTH_COMMANDS, synthesize
    from .workloads import cache_dir

    root = pathlib.Path(cache or cache_dir()) / "fpraker-synth"
    results = {}
    for name in blocks:
        text, _ = emit_verilog(name)
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        work = root / f"{name}-{digest}"
        cached = work / "counts.json"
        if cached.is_file():
            results[name] = json.loads(cached.read_text())
            continue
        (work / "src").mkdir(parents=True, exist_ok=True)
        module = get_block(name).module_name
        verilog = work / "src" / f"{module}.v"     # synthesize() copies it into `work`
        verilog.write_text(text)
        counts = {}
        for family in SYNTH_COMMANDS:
            start = time.perf_counter()
            result = synthesize(verilog, module, family, work)
            counts[family] = {"luts": result["luts"], "flip_flops": result["flip_flops"]}
            log(f"  synthesized {module} for {family} in {time.perf_counter() - start:.0f} s")
        cached.write_text(json.dumps(counts, indent=2) + "\n")
        results[name] = counts
    return results


OPERATIONS = ("forward", "input_gradient", "weight_gradient")
OPERANDS = {"forward": ("activations", "weights"), "input_gradient": ("gradients", "weights"),
            "weight_gradient": ("gradients", "activations")}


def suite(args):
    """Run the suite: print the tables, return the JSON-able results."""
    from hw.params import FPRakerParams

    params = FPRakerParams()
    seed = getattr(args, "seed", SEED)
    start = time.perf_counter()
    layers, accuracy = training_tensors(seed=seed)
    print(f"LeNet on digits, {EPOCHS} epochs, test accuracy {accuracy:.3f}; one batch of "
          f"{BATCH}; FPRaker {params.lanes} lanes, W = {params.acc_width}, {params.encoding}; "
          f"at most {MAX_DOTS} dot products per operation")
    rng = np.random.default_rng(seed)
    rows = []
    for layer in layers:
        for operation in OPERATIONS:
            first, second = operation_pairs(layer, operation)
            measured = measure_operation(first, second, params, rng)
            rows.append({"layer": layer["name"], "operation": operation, **measured})
    header = (f"{'layer':<6} {'operation':<16} {'A (serial)':<12} {'len':>5} {'terms/A':>7} "
              f"{'zeroA':>6} {'oob skip':>8} {'cyc/set':>7} {'cyc/MAC':>7} {'speedup':>7} "
              f"{'no-skip':>7} {'ideal':>6} {'relerr':>8}")
    print(header)
    print("-" * len(header))
    for row in rows:
        for label, operand in zip(("first", "second"), OPERANDS[row["operation"]]):
            r = row[label]
            print(f"{row['layer']:<6} {row['operation']:<16} {operand:<12} {row['length']:>5} "
                  f"{r['terms_per_nonzero_a']:>7.2f} {r['zero_fraction_a']:>6.1%} "
                  f"{r['skipped_fraction']:>8.2%} {r['cycles_per_set']:>7.2f} "
                  f"{r['cycles_per_mac']:>7.3f} {r['speedup']:>7.3f} {r['speedup_no_skip']:>7.3f} "
                  f"{r['speedup_ideal']:>6.3f} {r['rel_error']:>8.1e}")
    # per operation, whole network: cycles weighted by each layer's total dot products
    summary = {}
    print(f"\nwhole network (cycles scaled from the samples to every dot product), baseline = 1 "
          f"set per cycle; MAC median relative error per row in the JSON")
    print(f"{'operation':<16} {'A (serial)':<12} {'speedup':>8} {'no-skip':>8} {'ideal':>8}")
    for operation in OPERATIONS:
        for label, operand in zip(("first", "second"), OPERANDS[operation]):
            sets = cycles = no_skip = ideal = 0.0
            for row in rows:
                if row["operation"] != operation:
                    continue
                scale = row["dots_total"] / row["dots_sampled"]
                r = row[label]
                sets += r["sets"] * scale
                cycles += r["cycles"] * scale
                no_skip += r["cycles_no_skip"] * scale
                ideal += r["ideal_cycles"] * scale
            summary[f"{operation}/{operand}"] = {"speedup": sets / cycles,
                                                 "speedup_no_skip": sets / no_skip,
                                                 "speedup_ideal": sets / ideal}
            print(f"{operation:<16} {operand:<12} {sets / cycles:>8.3f} {sets / no_skip:>8.3f} "
                  f"{sets / ideal:>8.3f}")
    # accumulator width sweep: narrower windows skip more terms (and lose more precision)
    print(f"\naccumulator window sweep (A = first operand of each operation, at most "
          f"{SWEEP_DOTS} dot products per layer and operation)")
    print(f"{'W':>3} {'operation':<16} {'oob skip':>8} {'speedup':>8} {'relerr PE':>10} "
          f"{'relerr MAC':>10}")
    sweep = {}
    for width in SWEEP_WIDTHS:
        sweep_params = FPRakerParams(acc_width=width)
        sweep_rng = np.random.default_rng(seed + width)
        for operation in OPERATIONS:
            sets = cycles = terms = skipped = 0.0
            errors, mac_errors = [], []
            for layer in layers:
                first, second = operation_pairs(layer, operation)
                measured = measure_operation(first, second, sweep_params, sweep_rng,
                                             max_dots=SWEEP_DOTS)
                scale = measured["dots_total"] / measured["dots_sampled"]
                r = measured["first"]
                sets += r["sets"] * scale
                cycles += r["cycles"] * scale
                terms += r["terms"] * scale
                skipped += r["skipped_terms"] * scale
                errors.append(r["rel_error"])
                mac_errors.append(measured["mac_rel_error"])
            sweep[f"{width}/{operation}"] = {
                "skipped_fraction": skipped / terms, "speedup": sets / cycles,
                "rel_error": float(np.median(errors)),
                "mac_rel_error": float(np.median(mac_errors))}
            row = sweep[f"{width}/{operation}"]
            print(f"{width:>3} {operation:<16} {row['skipped_fraction']:>8.2%} "
                  f"{row['speedup']:>8.3f} {row['rel_error']:>10.1e} "
                  f"{row['mac_rel_error']:>10.1e}")
    golden_seconds = time.perf_counter() - start

    print("\nFPGA fabric (Yosys generic synthesis, default parameters; equal clock assumed)")
    synth = synth_counts()
    speedups = [s["speedup"] for s in summary.values()]
    mean_speedup = float(np.exp(np.mean(np.log(speedups))))
    fpga = {}
    print(f"{'family':<6} {'PE LUTs':>8} {'PE FFs':>7} {'MAC LUTs':>9} {'MAC FFs':>8} "
          f"{'PE MAC/cyc/kLUT':>16} {'MAC MAC/cyc/kLUT':>17} {'PE/MAC':>7}")
    for family in ("ice40", "ecp5"):
        pe, mac = synth["fpraker_pe"][family], synth["bf16_mac"][family]
        pe_rate = params.lanes * mean_speedup / pe["luts"] * 1000
        mac_rate = params.lanes / mac["luts"] * 1000
        fpga[family] = {"pe": pe, "mac": mac, "pe_macs_per_cycle_per_klut": pe_rate,
                        "mac_macs_per_cycle_per_klut": mac_rate, "ratio": pe_rate / mac_rate}
        print(f"{family:<6} {pe['luts']:>8} {pe['flip_flops']:>7} {mac['luts']:>9} "
              f"{mac['flip_flops']:>8} {pe_rate:>16.2f} {mac_rate:>17.2f} "
              f"{pe_rate / mac_rate:>7.2f}")
    print(f"(PE throughput uses the geometric mean speedup {mean_speedup:.3f} over the six "
          f"operation/operand rows above)")
    return {"params": {"lanes": params.lanes, "acc_width": params.acc_width,
                       "encoding": params.encoding},
            "epochs": EPOCHS, "batch": BATCH, "test_accuracy": accuracy, "rows": rows,
            "summary": summary, "width_sweep": sweep, "fpga": fpga, "mean_speedup": mean_speedup,
            "golden_seconds": golden_seconds}
