"""The ``area`` bench suite: LUTs of the baseline, TCLp and TCLe tiles at equal peak throughput,
and the throughput per LUT of each design on each 8-bit network.

Designs (all 4 filters x 4 lanes, 8-bit weights, 8-bit unsigned activations, 256-row buffers,
the configuration of :data:`COMMON`):

* ``baseline``: block ``bit_parallel`` with 1 window (16 8-bit MACs per cycle, dense);
* ``tclp``: block ``tclp`` with W = 8 windows, T<2,5> (16 x 8 one-bit products per cycle: 16
  MACs per cycle at full 8-bit precision);
* ``tcle``: block ``tcle_small`` re-parameterized to W = 8 windows, T<2,5>, DNNsim Booth terms,
  L1 = 2 (16 x 8 terms per cycle). W = 8 gives TCLe the TCLp tile's columns and activation
  buffers, so the two differ only in the back end, and it is the golden model's default
  (``windows = act_bits``). An unsigned 8-bit value has at most 6 Booth terms (5 NAF), so at
  worst-case density TCLe does 16 x 8 / 6 = 21.3 MACs per cycle, the others 16.

Cycles come from the golden models (`golden.designs` after `golden.designs.load_designs`) with
the tiles' options (:attr:`AreaDesign.options`), summed over the layers of one image (the first
by default) of ``build/workloads/<network>-8`` (imported with ``effectual import`` when
missing). Work is ``layer.macs`` (padding included), so throughput = network MACs / cycles.

Synthesis is slow (minutes per design), so the suite runs it only when the environment variable
``EFFECTUAL_AREA_SYNTH=1`` is set: it emits each design with ``effectual verilog BLOCK --param
... -o ROOT/verilog/<design>/<module>.v`` and runs ``effectual synth ROOT/verilog/<design> -o
ROOT/synth/<design>``, recording the wall time in ``ROOT/synth/<design>/time.json``. Otherwise
it reads ``ROOT/synth/<design>/synth.json`` when present (ROOT = ``EFFECTUAL_AREA_DIR``, default
``build/area``) and prints ``-`` for the designs without results. A result whose module or
parameters differ from the design's configuration is refused (``ValueError``), so a table never
mixes configurations. ``EFFECTUAL_AREA_IMAGES=all`` evaluates every image instead of the first.

Throughput per LUT = MACs per cycle / LUTs; the table shows it per 1000 LUTs and as a ratio to
the baseline's on the same network and FPGA family. On ECP5 the baseline's multipliers are DSP
blocks (MULT18X18D), not LUTs, so its ECP5 LUT count understates its cost; the DSP count is
printed beside it.
"""

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["AreaDesign", "AREA_DESIGNS", "COMMON", "NETWORKS", "FAMILIES", "suite",
           "verilog_arguments", "run_synthesis", "load_synthesis", "network_work",
           "throughput_table", "peak_macs_per_cycle"]

#: tile parameters every design shares (hw.params.TileParams fields)
COMMON = {"filters": 4, "lanes": 4, "weight_width": 8, "act_width": 8, "act_signed": False,
          "weight_rows": 256, "act_rows": 256}
#: FPGA families of `effectual synth`
FAMILIES = ("ice40", "ecp5")
#: networks (workload, bits) under build/workloads
NETWORKS = (("blazeface-short", 8), ("blazeface-sparse", 8), ("lenet-digits", 8),
            ("lenet-digits-pruned", 8))
#: cells counted as block RAM / DSP per family
BRAM_CELLS = {"ice40": ("SB_RAM40_4K",), "ecp5": ("DP16KD", "PDPW16KD")}
DSP_CELLS = {"ice40": ("SB_MAC16",), "ecp5": ("MULT18X18D", "ALU54B", "MULT9X9D")}


@dataclasses.dataclass(frozen=True)
class AreaDesign:
    """One design of the comparison: its registry name, the block and parameters it is emitted
    with, its top module and the golden-model options that match that configuration."""

    name: str
    block: str
    module: str
    params: dict
    options: dict
    #: worst-case cycles one 8-bit activation costs a lane (1: bit-parallel)
    worst_cycles_per_value: int


AREA_DESIGNS = (
    AreaDesign("baseline", "bit_parallel", "bit_parallel_tile",
               {**COMMON, "windows": 1, "pattern": "none"},
               {"filters": 4, "lanes": 4, "windows": 1}, 1),
    AreaDesign("tclp", "tclp", "tclp_tile",
               {**COMMON, "windows": 8, "pattern": "T<2,5>"},
               {"filters": 4, "lanes": 4, "windows": 8, "pattern": "T<2,5>"}, 8),
    AreaDesign("tcle", "tcle_small", "tcle_tile_small",
               {**COMMON, "windows": 8, "pattern": "T<2,5>", "encoding": "booth",
                "first_stage_bits": 2},
               {"filters": 4, "lanes": 4, "windows": 8, "pattern": "T<2,5>",
                "encoding": "booth", "first_stage_bits": 2}, 6),
)


def peak_macs_per_cycle(design):
    """MACs per cycle of ``design`` at worst-case dense 8-bit activations."""
    p = design.params
    return p["filters"] * p["lanes"] * p["windows"] / design.worst_cycles_per_value


def verilog_arguments(design, output):
    """``effectual verilog`` arguments that emit ``design`` to the file ``output``."""
    args = ["verilog", design.block]
    for key, value in design.params.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            args.append(flag if value else "--no-" + key.replace("_", "-"))
        else:
            args += [flag, str(value)]
    return args + ["-o", str(output)]


def _cli(args):
    subprocess.run([sys.executable, "-m", "effectual.cli", *args], check=True)


def run_synthesis(root, designs=AREA_DESIGNS):
    """Emit and synthesize every design under ``root``; return ``{design: wall seconds}``."""
    root = Path(root)
    seconds = {}
    for design in designs:
        vdir = root / "verilog" / design.name
        sdir = root / "synth" / design.name
        vdir.mkdir(parents=True, exist_ok=True)
        sdir.mkdir(parents=True, exist_ok=True)
        for stale in vdir.glob("*.v*"):
            stale.unlink()
        _cli(verilog_arguments(design, vdir / f"{design.module}.v"))
        start = time.perf_counter()
        _cli(["synth", str(vdir), "-o", str(sdir)])
        seconds[design.name] = time.perf_counter() - start
        (sdir / "time.json").write_text(json.dumps(
            {"wall_seconds": seconds[design.name], "command": "effectual " + " ".join(
                ["synth", str(vdir), "-o", str(sdir)])}, indent=2) + "\n")
    return seconds


def _count(cells, names):
    return sum(cells.get(name, 0) for name in names)


def load_synthesis(root, designs=AREA_DESIGNS):
    """Return ``{design: {family: {"luts", "flip_flops", "bram", "dsp"}, "seconds": s}}`` for
    every design with a ``synth.json`` under ``root/synth/<design>``.

    Raises ``ValueError`` naming the file when a result's module or parameters are not the
    design's configuration, or when a family is missing.
    """
    root = Path(root)
    found = {}
    for design in designs:
        path = root / "synth" / design.name / "synth.json"
        if not path.is_file():
            continue
        entries = json.loads(path.read_text())
        figures = {}
        for entry in entries:
            if entry.get("module") != design.module:
                raise ValueError(f"{path}: module {entry.get('module')!r} is not "
                                 f"{design.name}'s {design.module!r}")
            if entry.get("parameters") != design.params:
                raise ValueError(f"{path}: parameters {entry.get('parameters')!r} are not "
                                 f"{design.name}'s {design.params!r}")
            family = entry["family"]
            cells = entry.get("cells", {})
            figures[family] = {"luts": int(entry["luts"]),
                               "flip_flops": int(entry["flip_flops"]),
                               "bram": _count(cells, BRAM_CELLS.get(family, ())),
                               "dsp": _count(cells, DSP_CELLS.get(family, ()))}
        missing = [family for family in FAMILIES if family not in figures]
        if missing:
            raise ValueError(f"{path}: no result for {', '.join(missing)}")
        timing = path.parent / "time.json"
        figures["seconds"] = (json.loads(timing.read_text())["wall_seconds"]
                              if timing.is_file() else None)
        found[design.name] = figures
    return found


def network_work(directory, *, images=0, designs=AREA_DESIGNS):
    """Return ``{"macs": int, "layers": int, "images": int, "cycles": {design: int}}`` summed
    over the layers (and ``images``: an index, a list, or None for all) of a network."""
    from golden import designs as registry
    from golden.layers import load_network

    registry.load_designs()
    _, items = load_network(directory, images=images)
    macs = 0
    layers = set()
    seen_images = set()
    cycles = {design.name: 0 for design in designs}
    for entry, image, layer in items:
        macs += int(layer.macs)
        layers.add(entry["name"])
        seen_images.add(image)
        for design in designs:
            cycles[design.name] += int(registry.get_design(design.name).cycles(
                layer, **design.options))
    return {"macs": macs, "layers": len(layers), "images": len(seen_images), "cycles": cycles}


def throughput_table(work, synthesis, designs=AREA_DESIGNS, baseline="baseline"):
    """Return the rows ``{network, design, cycles, macs_per_cycle, <family>: {luts,
    per_klut, ratio}}``: MACs per cycle per 1000 LUTs and its ratio to ``baseline``'s on the
    same network and family (None where a design has no synthesis result)."""
    rows = []
    for network, figures in work.items():
        per_klut = {}
        for design in designs:
            mpc = figures["macs"] / figures["cycles"][design.name]
            row = {"network": network, "design": design.name,
                   "cycles": figures["cycles"][design.name], "macs_per_cycle": mpc}
            for family in FAMILIES:
                luts = synthesis.get(design.name, {}).get(family, {}).get("luts")
                value = 1000 * mpc / luts if luts else None
                per_klut[(design.name, family)] = value
                row[family] = {"luts": luts, "per_klut": value}
            rows.append(row)
        for row in rows:
            if row["network"] != network:
                continue
            for family in FAMILIES:
                base = per_klut.get((baseline, family))
                value = row[family]["per_klut"]
                row[family]["ratio"] = value / base if value is not None and base else None
    return rows


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def suite(args):
    """Run the suite: print the tables, return the figures."""
    from effectual.bench_tcle import network_dir

    root = Path(os.environ.get("EFFECTUAL_AREA_DIR", Path("build") / "area"))
    images = None if os.environ.get("EFFECTUAL_AREA_IMAGES") == "all" else 0
    start = time.perf_counter()
    if os.environ.get("EFFECTUAL_AREA_SYNTH") == "1":
        run_synthesis(root)
    synthesis = load_synthesis(root)
    print(f"Tiles at equal peak throughput (4 filters x 4 lanes, 8-bit weights, 8-bit unsigned "
          f"activations); synthesis results from {root}/synth (EFFECTUAL_AREA_SYNTH=1 reruns it)")
    print(f"{'design':<9} {'W':>2} {'peak MAC/c':>10}  {'iCE40 LUT':>9} {'FF':>5} {'BRAM':>4} "
          f"{'DSP':>3}  {'ECP5 LUT':>8} {'FF':>5} {'BRAM':>4} {'DSP':>3}  {'synth s':>7}")
    for design in AREA_DESIGNS:
        s = synthesis.get(design.name, {})
        ice, ecp = s.get("ice40", {}), s.get("ecp5", {})
        print(f"{design.name:<9} {design.params['windows']:>2} "
              f"{peak_macs_per_cycle(design):>10.1f}  {_fmt(ice.get('luts'), 'd'):>9} "
              f"{_fmt(ice.get('flip_flops'), 'd'):>5} {_fmt(ice.get('bram'), 'd'):>4} "
              f"{_fmt(ice.get('dsp'), 'd'):>3}  {_fmt(ecp.get('luts'), 'd'):>8} "
              f"{_fmt(ecp.get('flip_flops'), 'd'):>5} {_fmt(ecp.get('bram'), 'd'):>4} "
              f"{_fmt(ecp.get('dsp'), 'd'):>3}  {_fmt(s.get('seconds'), '.0f'):>7}")
    work = {}
    for name, bits in NETWORKS:
        work[f"{name}-{bits}"] = network_work(network_dir(name, bits), images=images)
    rows = throughput_table(work, synthesis)
    print()
    print(f"Throughput per LUT ({'all images' if images is None else 'first image'}): "
          f"MACs per cycle per 1000 LUTs, ratio to the baseline (ECP5 baseline: multipliers "
          f"in DSP blocks)")
    print(f"{'network':<26} {'design':<9} {'cycles':>9} {'MAC/c':>6}  {'iCE40 /kLUT':>11} "
          f"{'ratio':>6}  {'ECP5 /kLUT':>10} {'ratio':>6}")
    for r in rows:
        print(f"{r['network']:<26} {r['design']:<9} {r['cycles']:>9} "
              f"{r['macs_per_cycle']:>6.2f}  {_fmt(r['ice40']['per_klut'], '.3f'):>11} "
              f"{_fmt(r['ice40']['ratio'], '.2f'):>6}  {_fmt(r['ecp5']['per_klut'], '.3f'):>10} "
              f"{_fmt(r['ecp5']['ratio'], '.2f'):>6}")
    elapsed = time.perf_counter() - start
    print(f"\n(suite time {elapsed:.1f} s)")
    return {"synthesis": synthesis, "work": work, "rows": rows, "seconds": elapsed,
            "designs": [dataclasses.asdict(d) for d in AREA_DESIGNS]}
