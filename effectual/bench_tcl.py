"""The ``tcl`` bench suite: every design of :mod:`golden.designs` on the BlazeFace workloads.

Networks: MediaPipe BlazeFace short range (37 conv layers) and full range sparse (91 conv
layers, 1x1 convolutions shipped 70 % pruned), each imported at 8 and 16 bits on the six default
photos (``effectual import <workload> --bits B -o build/tcl/<workload>-<B>``; an existing
default import at the same width is reused, there or the 8-bit one ``make report`` writes in
``build/workloads/<workload>``; otherwise the import runs here and needs the ``workloads``
extra). For each network: per-layer and whole-network cycles of every design
(default options: 16 x 16 tiles, W = 1 bit-parallel, W = act_bits bit-serial, T<2,5>), speedup
over ``baseline``, ideal (work-bound) cycles and achieved/ideal; cycles are summed over the six
images. ``tclp`` is also run with ``run_ahead=1`` (columns one row ahead of the slowest) for
comparison. Timing: the whole-network golden evaluation (cycles and ideal cycles of the five
designs, every layer) of the 91-layer sparse BlazeFace at 8 bits, for its first image from a
cold start (empty schedule cache: the scheduler runs) and for all six images; plus the time of
checking every design's output against ``golden.layers.layer_output`` on the first image.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["suite", "NETWORKS", "network_dir"]

#: (workload, bits) evaluated, in table order
NETWORKS = (("blazeface-short", 8), ("blazeface-short", 16), ("blazeface-sparse", 8),
            ("blazeface-sparse", 16))
#: the network whose whole-network evaluation is timed
TIMED = ("blazeface-sparse", 8)
#: where the suite keeps its imports
ROOT = Path("build") / "tcl"


def _usable(directory, bits):
    """Whether ``directory`` holds a default import (auto signedness) at ``bits``."""
    manifest = Path(directory) / "network.json"
    if not manifest.is_file():
        return False
    data = json.loads(manifest.read_text())
    return (data.get("bits") == bits and bool(data.get("layers"))
            and data.get("act_signedness", "auto") == "auto" and not data.get("per_channel"))


def network_dir(workload, bits, root=ROOT):
    """Return the directory of ``workload`` at ``bits``: ``root/<workload>-<bits>``, or the
    8-bit import ``make report`` writes (``build/workloads/<workload>``); import it if neither
    holds a default import at ``bits``."""
    directory = Path(root) / f"{workload}-{bits}"
    if _usable(directory, bits):
        return directory
    made_by_report = Path("build") / "workloads" / workload
    if bits == 8 and _usable(made_by_report, bits):
        return made_by_report
    print(f"importing {workload} at {bits} bits into {directory} ...", flush=True)
    subprocess.run([sys.executable, "-m", "effectual.cli", "import", workload, "--bits",
                    str(bits), "-o", str(directory)], check=True, stdout=subprocess.DEVNULL)
    return directory


def _evaluate(directory, extra):
    """Per-layer ``{design: [cycles, ideal]}`` summed over images, in manifest order."""
    from golden.designs import DESIGNS
    from golden.layers import load_network

    manifest, items = load_network(directory)
    layers = {}
    for entry, _, layer in items:
        row = layers.setdefault(entry["index"], {"name": entry["name"], "macs": entry["macs"],
                                                 "designs": {}})
        for name, design in DESIGNS.items():
            cycles = row["designs"].setdefault(name, [0, 0])
            cycles[0] += design.cycles(layer)
            cycles[1] += design.ideal(layer)
        for name, (design, options) in extra.items():
            cycles = row["designs"].setdefault(name, [0, 0])
            cycles[0] += DESIGNS[design].cycles(layer, **options)
            cycles[1] += DESIGNS[design].ideal(layer, **options)
    return manifest, [layers[i] for i in sorted(layers)]


def _timing(directory):
    """Seconds of the whole-network golden evaluation (see the module docstring)."""
    import numpy as np

    from golden import tcl
    from golden.designs import DESIGNS
    from golden.layers import layer_output, load_network

    _, items = load_network(directory)
    images = {}
    for _, image, layer in items:
        images.setdefault(image, []).append(layer)
    tcl._SCHEDULE_CACHE.clear()
    seconds = {}

    def timed(key, work):
        wall, cpu = time.perf_counter(), time.process_time()
        work()
        seconds[key] = time.perf_counter() - wall
        seconds[key + "_cpu"] = time.process_time() - cpu

    def cycles(layers):
        for layer in layers:
            for design in DESIGNS.values():
                design.cycles(layer)
                design.ideal(layer)

    def check(layers):
        for layer in layers:
            expected = layer_output(layer)
            for name, design in DESIGNS.items():
                if design.exact and not np.array_equal(design.output(layer), expected):
                    raise AssertionError(f"{name} output differs on {layer.name}")

    timed("first_image_cold", lambda: cycles(images[0]))
    timed("first_image_output_check", lambda: check(images[0]))
    _, items = load_network(directory)  # fresh Layer objects: nothing cached but the schedules
    timed("all_images", lambda: cycles(layer for _, _, layer in items))
    seconds["images"] = len(images)
    seconds["layers_per_image"] = len(images[0])
    return seconds


def _table(headers, rows):
    widths = [max(len(str(r[i])) for r in [headers] + rows) for i in range(len(headers))]
    line = lambda cells: "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)  # noqa: E731
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(headers), "  ".join("-" * w for w in widths)]
                     + [line(r) for r in rows])


def suite(args):
    """Run the suite: print the tables, return the figures (JSON-serializable)."""
    from golden.designs import BASELINE, DESIGNS

    extra = {"tclp-ra1": ("tclp", {"run_ahead": 1})}
    names = list(DESIGNS) + list(extra)
    results = {}
    for workload, bits in NETWORKS:
        directory = network_dir(workload, bits)
        manifest, layers = _evaluate(directory, extra)
        total = {n: [sum(layer["designs"][n][i] for layer in layers) for i in (0, 1)]
                 for n in names}
        base = total[BASELINE][0]
        key = f"{workload}-{bits}"
        print(f"\n{key}: {len(layers)} layers, {len(manifest['images'])} images, "
              f"{manifest['macs']:,} MACs per image ({directory})")
        rows = [[n, f"{c:,}", f"{base / c:.2f}", f"{i:,}", f"{i / c:.3f}"]
                for n, (c, i) in total.items()]
        print(_table(["design", "cycles (all images)", "speedup", "ideal", "achieved/ideal"],
                     rows))
        per_layer = [[str(index), layer["name"][-40:], f"{layer['designs'][BASELINE][0]:,}"]
                     + [f"{layer['designs'][BASELINE][0] / layer['designs'][n][0]:.2f}"
                        for n in names[1:]]
                     + [f"{layer['designs']['tclp'][1] / layer['designs']['tclp'][0]:.2f}"]
                     for index, layer in enumerate(layers)]
        print(_table(["#", "layer", "baseline cycles"] + [f"{n} x" for n in names[1:]]
                     + ["tclp ach/ideal"], per_layer))
        results[key] = {"directory": str(directory), "images": len(manifest["images"]),
                        "macs_per_image": manifest["macs"],
                        "network": {n: {"cycles": c, "ideal": i, "speedup": base / c,
                                        "achieved_over_ideal": i / c}
                                    for n, (c, i) in total.items()},
                        "layers": [{"name": layer["name"], "macs": layer["macs"],
                                    "designs": {n: {"cycles": c, "ideal": i}
                                                for n, (c, i) in layer["designs"].items()}}
                                   for layer in layers]}
    seconds = _timing(network_dir(*TIMED))
    print(f"\nwhole-network golden evaluation of the {seconds['layers_per_image']}-layer "
          f"{TIMED[0]} ({TIMED[1]} bits), cycles + ideal cycles of {len(DESIGNS)} designs "
          f"(wall / CPU seconds of this process):")
    print(f"  first image, cold start (scheduler runs): {seconds['first_image_cold']:.2f} / "
          f"{seconds['first_image_cold_cpu']:.2f} s")
    print(f"  all {seconds['images']} images (schedules shared): {seconds['all_images']:.2f} / "
          f"{seconds['all_images_cpu']:.2f} s")
    print(f"  every design's output checked against layer_output, first image: "
          f"{seconds['first_image_output_check']:.2f} / "
          f"{seconds['first_image_output_check_cpu']:.2f} s")
    return {"networks": results, "timing_seconds": seconds}
