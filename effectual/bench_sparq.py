"""``effectual bench --suite sparq``: SPARQ and NB-SMT (SySMT) on the real workloads.

For every 8-bit network built by ``make report`` (``build/workloads/<name>-8``; another root
with ``EFFECTUAL_WORKLOADS_DIR``), on the first `IMAGES` images (``EFFECTUAL_SPARQ_IMAGES``):

* **speedup** of an output-stationary ``ARRAY x ARRAY`` SySMT array with 2 and 4 threads over
  the 1-thread array (`golden.nbsmt.layer_cycles`, summed over layers); SPARQ's PE takes two
  pairs per cycle, so a SPARQ array runs the 2-thread schedule; also the *steady* speedup of
  the input steps alone (every tile's ``rows + cols - 2 + rows`` fill/drain cycles hidden);
* the **fraction of squeezed operations**: NB-SMT, active thread-operations whose operands were
  squeezed; SPARQ, multiply-accumulates whose activation was windowed (both partners non-zero);
* the **output error** of every mode at every layer output: the relative RMS error
  ``||approx - exact|| / ||exact||`` of the layer's integer output (`golden.layers.layer_output`
  is exact), averaged over layers and images (each layer counts once);
* for the LeNets, the **test accuracy** of the whole quantized network (all 450 held-out digits)
  with every layer computed in each mode (`lenet_accuracy`).

With ``EFFECTUAL_SPARQ_BN=1`` it also runs `bn_recalibration` (a LeNet with batch norm, trained
here: neither built-in network has batch norm), a few minutes more.

The results are set against the papers' claims (SPARQ 2x; SySMT 2x with 2 threads, 3.4x with 4
threads on a 40 %-pruned ResNet-18) in `PAPER_NOTES`.
"""

import os
import pathlib
import time

import numpy as np

__all__ = ["suite", "network_metrics", "lenet_accuracy", "quantized_lenet", "modes",
           "bn_recalibration", "BN_CONFIG",
           "ARRAY", "IMAGES", "NETWORKS"]

#: networks measured (directories under the workloads root)
NETWORKS = ("lenet-digits-8", "lenet-digits-pruned-8", "blazeface-short-8", "blazeface-sparse-8")
#: images per network (default; ``EFFECTUAL_SPARQ_IMAGES`` overrides)
IMAGES = 1
#: rows = columns of the systolic array used for cycles
ARRAY = 16

PAPER_NOTES = {
    "sparq": "paper: 2x over an 8b x 8b MAC array (two 4b x 8b pairs per PE and cycle); the "
             "cycle gain is exactly 2x in the long-reduction limit, less here only by the "
             "array's fill/drain (rows + cols - 2 + rows cycles per tile), which short "
             "reductions (depthwise 3x3, LeNet conv1: 9 elements) cannot hide",
    "sysmt2": "paper: 2x with 2 threads: the same bound as SPARQ (non-blocking: never stalls), "
              "reached here up to fill/drain overhead",
    "sysmt4": "paper: 3.4x with 4 threads on a 40 %-pruned ResNet-18, where the authors run "
              "accuracy-sensitive layers with fewer threads; this model runs every layer with "
              "4 threads, so its cycles give up to 4x minus fill/drain, and the accuracy cost "
              "is what every-layer 4-thread squeezing costs",
}


def modes():
    """Return ``(name, kind, params)`` of every mode: ``sparq-<mode>`` for each
    `hw.params.sparq_modes` and ``sysmt2``/``sysmt4`` (NB-SMT, ROUND, zero weights idle)."""
    from hw.params import SySMTParams, sparq_modes

    result = [(f"sparq-{p.name}", "sparq", p) for p in sparq_modes()]
    result += [(f"sysmt{t}", "nbsmt", SySMTParams(rows=ARRAY, cols=ARRAY, threads=t))
               for t in (2, 4)]
    return result


def _approx_output(kind, params, layer):
    from golden.nbsmt import nbsmt_layer_output
    from golden.sparq import sparq_layer_output

    if kind == "sparq":
        return sparq_layer_output(layer, params), None
    return nbsmt_layer_output(layer, params)


def _sparq_windowed(layer):
    """Multiply-accumulates of ``layer`` whose activation SPARQ windows (both partners
    non-zero)."""
    from golden.layers import layer_patches
    from golden.sparq import layer_reduction_order

    order = layer_reduction_order(layer)
    kg = layer.out_channels // layer.groups
    if layer.kind == "fc":
        chunks = [layer.activations.reshape(1, 1, -1)]
    else:
        oh = layer.output_shape[1]
        step = max(1, (1 << 20) // max(1, layer.output_shape[2] * layer.in_channels
                                       * layer.reduction_length // layer.channels_per_group))
        chunks = (layer_patches(layer, rows=slice(start, min(oh, start + step)))
                  for start in range(0, oh, step))
    windowed = 0
    for patches in chunks:
        acts = patches[..., order]
        if acts.shape[-1] % 2:
            acts = np.concatenate([acts, np.zeros(acts.shape[:-1] + (1,), dtype=np.int64)], -1)
        both = (acts[..., 0::2] != 0) & (acts[..., 1::2] != 0)
        windowed += 2 * int(both.sum()) * kg
    return windowed


def network_metrics(directory, *, images=IMAGES, selected=None, log=print):
    """Return the per-mode metrics of the network in ``directory`` (see the module docstring).

    Keys: ``name``, ``layers``, ``images``, ``macs`` (per image), ``cycles`` (threads ->
    array cycles per image), ``speedup`` (``sysmt2``, ``sysmt4`` over 1 thread),
    ``error`` (mode -> mean relative RMS error), ``squeezed`` (mode -> fraction),
    ``active`` (NB-SMT: active thread-operations / MACs), ``seconds``.
    """
    from golden.layers import layer_output, load_network
    from golden.nbsmt import layer_cycles, tile_cycles
    from hw.params import SySMTParams

    selected = selected or modes()
    manifest, layers = load_network(directory, images=list(range(min(images, len(
        _manifest_images(directory))))))
    start = time.perf_counter()
    errors = {name: [] for name, _, _ in selected}
    squeezed = {name: [0, 0] for name, _, _ in selected}
    cycles = {1: 0, 2: 0, 4: 0}
    steps = {1: 0, 2: 0, 4: 0}
    macs = 0
    names = set()
    used_images = set()
    for entry, image, layer in layers:
        used_images.add(image)
        exact = layer_output(layer).astype(np.float64)
        norm = float(np.sqrt(np.sum(exact ** 2))) or 1.0
        if image == 0:
            names.add(layer.name)
            macs += layer.macs
            for threads in cycles:
                params = SySMTParams(rows=ARRAY, cols=ARRAY, threads=threads)
                cycles[threads] += layer_cycles(layer, params)
                fill = params.rows + params.cols - 2 + params.rows
                steps[threads] += layer_cycles(layer, params) // tile_cycles(
                    layer.reduction_length, params) * (tile_cycles(layer.reduction_length,
                                                                   params) - fill)
        windowed = None
        for name, kind, params in selected:
            out, counts = _approx_output(kind, params, layer)
            errors[name].append(float(np.sqrt(np.sum((out - exact) ** 2))) / norm)
            if kind == "nbsmt":
                squeezed[name][0] += counts["squeezed"]
                squeezed[name][1] += counts["active"]
            else:
                if windowed is None:
                    windowed = _sparq_windowed(layer)
                squeezed[name][0] += windowed
                squeezed[name][1] += layer.macs
    result = {
        "name": manifest["name"], "layers": len(names), "images": len(used_images),
        "macs": macs, "cycles": {str(t): c for t, c in cycles.items()},
        "speedup": {"sysmt2": cycles[1] / cycles[2], "sysmt4": cycles[1] / cycles[4],
                    "sparq": cycles[1] / cycles[2]},
        "steps": {str(t): c for t, c in steps.items()},
        "steady_speedup": {"sysmt2": steps[1] / steps[2], "sysmt4": steps[1] / steps[4]},
        "error": {name: float(np.mean(values)) for name, values in errors.items()},
        "squeezed": {name: (s[0] / s[1] if s[1] else 0.0) for name, s in squeezed.items()},
        "seconds": time.perf_counter() - start,
    }
    log(f"{manifest['name']}: {len(names)} layers x {len(used_images)} images in "
        f"{result['seconds']:.1f} s")
    return result


def _manifest_images(directory):
    from golden.layers import load_manifest

    return load_manifest(directory)["images"]


def quantized_lenet(directory):
    """Return ``(layers, forward)`` for the LeNet network directory ``directory``.

    ``layers`` are the layer files of image 0 (weights, scales and the float ``bias`` the
    importer stored); ``forward(images, gemm)`` runs the quantized network on float digits
    ``[N, 1, 8, 8]``: each layer's input is quantized as the importer did (its ``act_scale``,
    round half to even, unsigned 8 bit), the layer is the integer GEMM ``gemm(acts [M, L],
    weights [K, L])`` with the reduction in ``(r, s, c)`` order (3x3 convs padded by 1), then
    ``* act_scale * weight_scale + bias``, ReLU, and the model's 2x2 max pools (after conv2
    and conv3); returns the logits ``[N, 10]``.
    """
    from golden.fixedpoint import quantize
    from golden.layers import load_network

    _, items = load_network(directory, images=[0])
    layers = [layer for _, _, layer in items]
    names = [layer.name for layer in layers]
    if names != ["conv1", "conv2", "conv3", "fc1", "fc2"]:
        raise ValueError(f"{directory}: not a LeNet of effectual.workloads (layers {names})")

    def forward(images, gemm):
        x = np.asarray(images, dtype=np.float64)
        count = len(x)
        for index, layer in enumerate(layers):
            q = quantize(x, layer.act_scale, bits=layer.act_bits, signed=layer.act_signed)
            if layer.kind == "conv":
                k, c, r, s = layer.weights.shape
                height, width = q.shape[2:]
                padded = np.pad(q, ((0, 0), (0, 0), (1, 1), (1, 1)))
                windows = np.lib.stride_tricks.sliding_window_view(padded, (r, s), axis=(2, 3))
                # [N, C, H, W, R, S] -> [N*H*W, R*S*C] in (r, s, c) order
                acts = windows.transpose(0, 2, 3, 4, 5, 1).reshape(count * height * width, -1)
                weights = layer.weights.transpose(0, 2, 3, 1).reshape(k, -1)
                acc = gemm(acts, weights).reshape(count, height, width, k).transpose(0, 3, 1, 2)
                scale = np.reshape(layer.weight_scale, (-1, 1, 1))
                bias = np.reshape(layer.extra["bias"], (-1, 1, 1))
            else:
                acc = gemm(q.reshape(count, -1), layer.weights)
                scale, bias = layer.weight_scale, layer.extra["bias"]
            y = acc * layer.act_scale * scale + bias
            if index == len(layers) - 1:
                return y
            y = np.maximum(y, 0.0)
            if layer.name in ("conv2", "conv3"):
                n, ch, height, width = y.shape
                y = y.reshape(n, ch, height // 2, 2, width // 2, 2).max(axis=(3, 5))
            x = y
        raise AssertionError("unreachable")

    return layers, forward


def lenet_accuracy(directory, selected=None):
    """Return ``{mode: accuracy}`` of the quantized LeNet in ``directory`` on the 450 held-out
    digits, plus ``"exact"`` (8-bit, exact GEMM) and ``"float"`` (the manifest's accuracy)."""
    from effectual.workloads import _digits
    from golden.layers import load_manifest
    from golden.nbsmt import nbsmt_matmul
    from golden.sparq import sparq_matmul

    manifest = load_manifest(directory)
    _, x_test, _, y_test, _ = _digits("lenet-digits", manifest["extra"]["training"])
    _, forward = quantized_lenet(directory)
    result = {"float": float(manifest["extra"]["accuracy"]),
              "exact": float(np.mean(forward(x_test, lambda a, w: a @ w.T).argmax(1)
                                     == y_test))}
    for name, kind, params in selected or modes():
        if kind == "sparq":
            gemm = lambda a, w, p=params: sparq_matmul(a, w, p)  # noqa: E731
        else:
            gemm = lambda a, w, p=params: nbsmt_matmul(a, w, p)[0]  # noqa: E731
        result[name] = float(np.mean(forward(x_test, gemm).argmax(1) == y_test))
    return result


def _table(rows, header):
    widths = [max(len(str(row[i])) for row in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(str(cell).rjust(w) if i else str(cell).ljust(w)
                       for i, (cell, w) in enumerate(zip(row, widths))) for row in [header] + rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def suite(args):
    """Run the suite: print the tables; return the results (JSON-serializable)."""
    root = pathlib.Path(os.environ.get("EFFECTUAL_WORKLOADS_DIR", "build/workloads"))
    images = int(os.environ.get("EFFECTUAL_SPARQ_IMAGES", IMAGES))
    all_modes = modes()
    results = {"array": ARRAY, "images": images, "networks": {}, "lenet_accuracy": {},
               "paper": PAPER_NOTES}
    for name in NETWORKS:
        directory = root / name
        if not (directory / "network.json").is_file():
            print(f"{name}: not found under {root} (run `make report` first); skipped")
            continue
        metrics = network_metrics(directory, images=images, selected=all_modes)
        results["networks"][name] = metrics
        if name.startswith("lenet"):
            results["lenet_accuracy"][name] = lenet_accuracy(directory, all_modes)
    networks = results["networks"]
    if not networks:
        return results
    print(f"\nSySMT / SPARQ cycles on a {ARRAY}x{ARRAY} output-stationary array "
          f"(speedup over 1 thread; paper: SPARQ 2x, SySMT 2x and 3.4x)")
    rows = [(n, f"{m['macs']:,}", f"{m['cycles']['1']:,}", f"{m['speedup']['sysmt2']:.2f}x",
             f"{m['speedup']['sysmt4']:.2f}x", f"{m['steady_speedup']['sysmt2']:.2f}x",
             f"{m['steady_speedup']['sysmt4']:.2f}x", f"{100 * m['squeezed']['sysmt2']:.1f} %",
             f"{100 * m['squeezed']['sysmt4']:.1f} %",
             f"{100 * m['squeezed']['sparq-5opt-round']:.1f} %")
            for n, m in networks.items()]
    print(_table(rows, ("network", "MACs/image", "cycles T=1", "T=2 (=SPARQ)", "T=4",
                        "steps T=2", "steps T=4", "squeezed T=2", "squeezed T=4",
                        "SPARQ windowed")))
    print("(steps: the speedup of the input steps alone, i.e. with the fill/drain of every tile "
          "hidden, as a double-buffered array would)")
    print("\nrelative RMS error of the layer outputs, mean over layers and images")
    rows = [(mode,) + tuple(f"{100 * m['error'][mode]:.2f} %" for m in networks.values())
            for mode, _, _ in all_modes]
    print(_table(rows, ("mode",) + tuple(networks)))
    if results["lenet_accuracy"]:
        print("\nLeNet test accuracy (450 held-out digits), every layer in the mode")
        accuracy = results["lenet_accuracy"]
        keys = ["float", "exact"] + [mode for mode, _, _ in all_modes]
        rows = [(key,) + tuple(f"{100 * a[key]:.1f} %" for a in accuracy.values())
                for key in keys]
        print(_table(rows, ("mode",) + tuple(accuracy)))
    if os.environ.get("EFFECTUAL_SPARQ_BN", "") not in ("", "0"):
        bn = bn_recalibration(all_modes)
        results["bn_recalibration"] = bn
        print("\nLeNet with batch norm (trained here), test accuracy before/after BN "
              f"recalibration; float {100 * bn['float']:.1f} %")
        rows = [(key, f"{100 * value['before']:.1f} %", f"{100 * value['after']:.1f} %")
                for key, value in bn.items() if key != "float"]
        print(_table(rows, ("mode", "before", "after")))
    print()
    for key, note in PAPER_NOTES.items():
        print(f"{key}: {note}")
    return results


#: training of the batch-norm LeNet of `bn_recalibration` (cached nowhere: a few seconds)
BN_CONFIG = {"epochs": 15, "lr": 3e-3, "batch": 64, "seed": 0, "calibration_images": 256,
             "recalibration_images": 512}


def _bn_lenet(torch):
    nn, functional = torch.nn, torch.nn.functional

    class LeNetBN(nn.Module):
        """The workloads' LeNet with a BatchNorm2d after every conv (before the ReLU)."""

        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16)
            self.conv2, self.bn2 = nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32)
            self.conv3, self.bn3 = nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32)
            self.fc1, self.fc2 = nn.Linear(128, 64), nn.Linear(64, 10)

        def forward(self, x):
            x = functional.relu(self.bn1(self.conv1(x)))
            x = functional.max_pool2d(functional.relu(self.bn2(self.conv2(x))), 2)
            x = functional.max_pool2d(functional.relu(self.bn3(self.conv3(x))), 2)
            return self.fc2(functional.relu(self.fc1(x.flatten(1))))

    return LeNetBN()


def bn_recalibration(selected=None, *, config=None, log=print):
    """Measure batch-norm recalibration under each approximate mode on a LeNet with BN.

    Neither built-in network has batch norm (the BlazeFace TFLite models have it folded into
    the conv weights; the LeNet has none), so this trains the workloads' LeNet with a
    BatchNorm2d after every conv (torch, deterministic, `BN_CONFIG`), quantizes it (weights
    per tensor symmetric 8 bit, activations unsigned 8 bit with the maximum over
    ``calibration_images`` training digits) and runs it in numpy with every conv and fc layer
    in the mode. *Recalibration* re-estimates each BN's mean and variance from the
    approximate conv outputs of ``recalibration_images`` training digits, layer by layer (no
    weight changes; the population statistics are the limit of PyTorch's running average).
    Returns ``{"float": acc, mode: {"before": acc, "after": acc}}`` on the 450 test digits,
    with ``"exact"`` the 8-bit network with exact products.
    """
    from effectual.workloads import LENET_CONFIG, _digits, require
    from golden.fixedpoint import quantize, symmetric_scale
    from golden.nbsmt import nbsmt_matmul
    from golden.sparq import sparq_matmul

    torch = require("torch", "bench sparq")
    cfg = {**BN_CONFIG, **(config or {})}
    x_train, x_test, y_train, y_test, _ = _digits("lenet-digits", LENET_CONFIG)
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True)
        torch.manual_seed(cfg["seed"])
        model = _bn_lenet(torch)
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
        generator = torch.Generator().manual_seed(cfg["seed"] + 1)
        xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
        model.train()
        for _ in range(cfg["epochs"]):
            order = torch.randperm(len(xt), generator=generator)
            for start in range(0, len(order), cfg["batch"]):
                chosen = order[start:start + cfg["batch"]]
                optimizer.zero_grad()
                torch.nn.functional.cross_entropy(model(xt[chosen]), yt[chosen]).backward()
                optimizer.step()
        model.eval()
        with torch.no_grad():
            float_accuracy = float((model(torch.from_numpy(x_test)).argmax(1).numpy()
                                    == y_test).mean())
        state = {k: v.detach().numpy().astype(np.float64) for k, v in model.state_dict().items()
                 if v.dtype.is_floating_point}
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)

    layers = ["conv1", "conv2", "conv3", "fc1", "fc2"]
    weights, weight_scales = {}, {}
    for name in layers:
        w = state[f"{name}.weight"]
        weight_scales[name] = float(symmetric_scale(w, bits=8))
        weights[name] = quantize(w, weight_scales[name], bits=8, signed=True)

    def run(images, gemm, act_scales=None, stats=None, recalibrate=False):
        """Forward; returns (logits, act maxima per layer input, BN statistics used)."""
        x = np.asarray(images, dtype=np.float64)
        count = len(x)
        maxima, used = {}, {}
        for index, name in enumerate(layers):
            maxima[name] = float(x.max())
            if act_scales is None:  # float reference pass (calibration)
                q, scale = x, 1.0
                integer = lambda a, w: a @ w.T  # noqa: E731
                w = state[f"{name}.weight"]
                w_scale = 1.0
            else:
                scale = act_scales[name]
                q = quantize(x, scale, bits=8, signed=False).astype(np.int64)
                integer, w, w_scale = gemm, weights[name], weight_scales[name]
            if name.startswith("conv"):
                k = w.shape[0]
                height, width = q.shape[2:]
                windows = np.lib.stride_tricks.sliding_window_view(
                    np.pad(q, ((0, 0), (0, 0), (1, 1), (1, 1))), (3, 3), axis=(2, 3))
                acts = windows.transpose(0, 2, 3, 4, 5, 1).reshape(count * height * width, -1)
                acc = integer(acts, w.transpose(0, 2, 3, 1).reshape(k, -1))
                y = (acc * scale * w_scale).reshape(count, height, width, k).transpose(0, 3, 1, 2)
                y = y + state[f"{name}.bias"].reshape(-1, 1, 1)
                bn = "bn" + name[-1]
                if recalibrate:
                    mean, var = y.mean(axis=(0, 2, 3)), y.var(axis=(0, 2, 3))
                elif stats is not None:
                    mean, var = stats[bn]
                else:
                    mean, var = state[f"{bn}.running_mean"], state[f"{bn}.running_var"]
                used[bn] = (mean, var)
                y = ((y - mean.reshape(-1, 1, 1)) / np.sqrt(var.reshape(-1, 1, 1) + 1e-5)
                     * state[f"{bn}.weight"].reshape(-1, 1, 1)
                     + state[f"{bn}.bias"].reshape(-1, 1, 1))
                y = np.maximum(y, 0.0)
                if name != "conv1":
                    n, ch, height, width = y.shape
                    y = y.reshape(n, ch, height // 2, 2, width // 2, 2).max(axis=(3, 5))
                x = y
            else:
                acc = integer(q.reshape(count, -1), w)
                y = acc * scale * w_scale + state[f"{name}.bias"]
                x = np.maximum(y, 0.0) if name == "fc1" else y
        return x, maxima, used

    _, maxima, _ = run(x_train[:cfg["calibration_images"]], None)
    act_scales = {name: maxima[name] / 255.0 for name in layers}
    recal_images = x_train[:cfg["recalibration_images"]]
    result = {"float": float_accuracy}
    gemms = [("exact", lambda a, w: a @ w.T)]
    for name, kind, params in selected or modes():
        if kind == "sparq":
            gemms.append((name, lambda a, w, p=params: sparq_matmul(a, w, p)))
        else:
            gemms.append((name, lambda a, w, p=params: nbsmt_matmul(a, w, p)[0]))
    for name, gemm in gemms:
        before = float((run(x_test, gemm, act_scales)[0].argmax(1) == y_test).mean())
        _, _, stats = run(recal_images, gemm, act_scales, recalibrate=True)
        after = float((run(x_test, gemm, act_scales, stats=stats)[0].argmax(1)
                       == y_test).mean())
        result[name] = {"before": before, "after": after}
    log(f"LeNet-BN: float accuracy {100 * float_accuracy:.1f} %")
    return result
