"""``effectual report DIR... -o REPORT_DIR``: Markdown, CSV, JSON and PNG report of networks.

For every network directory the report holds the value statistics and potential speedups of
:mod:`golden.stats`, the cycles and speedups of every design registered in
:data:`golden.designs.DESIGNS` (a design that registers itself appears with no change here),
the output error of the approximate designs (``Design.exact`` False: ``sysmt2``, ``sysmt4``,
``sparq``) and the DPRed off-chip traffic (:func:`golden.dpred.network_traffic`).

Designs: per layer and per network, cycles (summed over all images), ideal (work-bound)
cycles, speedup over ``baseline`` (the 16 x 16 tile, 256 MACs per cycle like the 16 x 16
systolic arrays), achieved/ideal and, for a design with ``Design.relative_to`` (``sysmt1`` for
the multithreaded arrays), the speedup over that design. A design that cannot run a layer
(``Design.unsupported``, e.g. the 8-bit systolic arrays on a 16-bit network) shows ``-`` (CSV:
empty cells) for that layer and for the network totals, with the reason in
``<design>_unsupported``.

Approximate designs: the output of each layer is compared with
:func:`golden.layers.layer_output` on the first ``--error-images`` images (default 1; ``all``
or 0 = none; cycles always cover every image): values that differ (fraction), the largest
absolute error, the relative RMS error ``||y - y_exact|| / ||y_exact||`` (mean over the
evaluated layer outputs, per layer and per network, as ``effectual bench --suite sparq``) and
for NB-SMT the fraction of active thread operations that were squeezed
(:func:`golden.designs.combine_errors`). These outputs cost about 3 s CPU per BlazeFace image
(the 4-thread NB-SMT model dominates), which is why they are bounded by ``--error-images``.

DPRed traffic (``--dpred-group-size G``, default 16; 32-bit memory words; per tensor the
smaller of the plain and zero-bitmap variants): bytes of weights, activations and outputs
moved off chip, uncompressed and compressed, and compressed/uncompressed, per layer and per
network, summed over all images. A layer's outputs are the next layer's activations when the
shapes match; otherwise (pooling, concatenation, the last layer) their compressed size is
unknown: empty per layer, counted uncompressed in the totals.

Files written into ``REPORT_DIR``:

``report.md``       summary tables (one row per network), definitions, then per-layer tables
``networks.csv``    one row per network: statistics (MAC-weighted and pooled), potentials, work,
                    counts, design cycles and speedups, design errors, DPRed traffic
``layers.csv``      one row per (network, layer) with the same columns (no pooled ones), and
                    the network's ``directory``, which tells imports of the same model apart
``report.json``     everything, nested (non-finite numbers as the strings "inf"/"nan"), with
                    ``"format": "effectual-report"`` and ``files``, the names written
``summary.png``     per-network bars of potential and design speedups
``<network>.png``   per-layer bars of potential and design speedups, one file per network

Units: MACs are per image (``MACs/image``, CSV ``macs_per_image``); design cycles are summed
over all the images of a network (``<design> cycles (all images)``, CSV
``<design>_cycles_all_images``, JSON ``cycles_all_images``), as are the design's ideal
(work-bound) cycles (CSV ``<design>_ideal_all_images``, JSON ``ideal_all_images``) and the CSV
``work_*`` and ``count_*`` columns; statistics, potentials, speedups (over the ``baseline``
design) and achieved/ideal (``<design>_achieved_over_ideal`` = ideal / cycles) are ratios of
those sums. Further CSV columns: ``<design>_speedup_over_<reference>`` (designs with a
``relative_to``), ``<design>_unsupported`` (designs that may refuse layers), for approximate
designs ``<design>_error_{evaluated,values,differing,differ_fraction,max_abs,rel_rms,
squeezed_fraction}``, and ``dpred_group_size`` plus ``dpred_<part>_{uncompressed_bytes,
compressed_bytes,ratio}`` for ``<part>`` in weights, activations, outputs, total.

``REPORT_DIR`` is checked (and created) before any statistics are computed: a path that is an
existing file or cannot be created is a one-line error. A non-empty ``REPORT_DIR`` must hold an
earlier Effectual report (its ``report.json``); the files that report wrote (``report.md``, the
CSV files, ``report.json`` and the PNG files it lists, or for a report.json without that list,
``summary.png`` and the ``<network>.png`` of its networks) are deleted before the new report is
written, and any other file is left alone. A non-empty directory without an Effectual
``report.json`` is refused (one-line error), so a report never mixes with unrelated files.
"""

import csv
import json
import math
import re
from pathlib import Path

from effectual.stats import (CYCLES, IDEAL, LEGEND, POTENTIAL_COLUMNS, UNITS, add_grouping_argument,
                             analyze_network, check_grouping, check_network_dir, describe,
                             jsonable, short_names)
from effectual import report_fpraker
from golden import stats as golden_stats

__all__ = ["add_arguments", "run", "write_report", "prepare_output", "REPORT_FORMAT"]

#: potentials drawn in the plots (Ae_booth is in the tables only)
PLOTTED_POTENTIALS = ("A", "W", "W+A", "Ap", "Ae_naf", "W+Ap", "W+Ae")
#: ``report.json``'s ``format``: marks a directory as an Effectual report directory
REPORT_FORMAT = "effectual-report"
#: the files every report writes, whatever its networks
FIXED_FILES = ("report.md", "layers.csv", "networks.csv", "report.json", "summary.png")
#: suffixes of the files a report writes (nothing else is ever deleted from REPORT_DIR)
_REPORT_SUFFIXES = (".md", ".csv", ".json", ".png")


def add_arguments(parser):
    """Add the ``report`` arguments to ``parser``."""
    parser.add_argument("directories", nargs="+", metavar="DIR",
                        help="network directories written by `effectual import` or "
                             "golden.layers.save_network")
    parser.add_argument("-o", "--output", required=True, metavar="REPORT_DIR",
                        help="folder for report.md, CSV, JSON and PNG files (created; the "
                             "files of an earlier report there are replaced; any other "
                             "non-empty folder is refused)")
    parser.add_argument("--group-size", type=int, default=16, metavar="N",
                        help="values per precision group (default 16)")
    add_grouping_argument(parser)
    parser.add_argument("--dpred-group-size", type=int, default=16, metavar="G",
                        help="values per DPRed group of the off-chip traffic model (1..256, "
                             "default 16)")
    parser.add_argument("--error-images", default="1", metavar="N",
                        help="images on which the output error of the approximate designs is "
                             "measured: a count (default 1, the first image; 0: none) or all")
    report_fpraker.add_arguments(parser)


def _safe(name):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "network"


def _number(value):
    """CSV cell: exact ``repr`` of floats (``inf``/``nan`` as such), ints as they are."""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("nan" if math.isnan(value) else "inf")
    return value


def _fmt(value, style="f2"):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    if style == "pct":
        return f"{100 * value:.1f} %"
    if style == "int":
        return f"{value:,}"
    return f"{value:.2f}"


#: the error columns of approximate designs: (CSV suffix, key of combine_errors)
ERROR_COLUMNS = (("evaluated", "evaluated"), ("values", "values"), ("differing", "differing"),
                 ("differ_fraction", "differ_fraction"), ("max_abs", "max_abs_error"),
                 ("rel_rms", "rel_rms_error"), ("squeezed_fraction", "squeezed_fraction"))
#: the tensors of the traffic columns
TRAFFIC_PARTS = ("weights", "activations", "outputs", "total")


def _design(name):
    from golden.designs import DESIGNS

    return DESIGNS[name]


def _common_columns(item, design_names, dpred=None):
    row = {}
    for key in golden_stats.STATISTICS:
        row[key] = item["stats"][key]
    for key in golden_stats.POTENTIALS:
        row[f"potential_{key}"] = item["potentials"][key]
    for key, value in item["work"].items():
        row[f"work_{key}"] = value
    for key, value in item["counts"].items():
        row[f"count_{key}"] = value
    for name in design_names:
        entry = item["designs"][name]
        design = _design(name)
        row[f"{name}_{CYCLES}"] = entry[CYCLES]
        row[f"{name}_speedup"] = entry["speedup"]
        row[f"{name}_{IDEAL}"] = entry[IDEAL]
        row[f"{name}_achieved_over_ideal"] = entry["achieved_over_ideal"]
        if design.relative_to is not None:
            row[f"{name}_speedup_over_{design.relative_to}"] = entry["speedup_over_reference"]
        if design.unsupported is not None:
            row[f"{name}_unsupported"] = entry["unsupported"] or ""
        if not design.exact:
            error = entry["error"] or {}
            for suffix, key in ERROR_COLUMNS:
                row[f"{name}_error_{suffix}"] = error.get(key)
    if dpred is not None:
        row["dpred_group_size"] = dpred["group_size"]
        for part in TRAFFIC_PARTS:
            for key in ("uncompressed_bytes", "compressed_bytes", "ratio"):
                row[f"dpred_{part}_{key}"] = item["traffic"][part][key]
    return row


def _write_csv(path, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({key: _number(value) for key, value in row.items()})


def _md_table(headers, rows):
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


_MD_STATS = (("zero w", "zero_weights", "pct"), ("zero a", "zero_acts", "pct"),
             ("grpP a", "act_group_magnitude", "f2"), ("grpW a", "act_group_width", "f2"),
             ("grpW w", "weight_group_width", "f2"), ("0 bits a", "act_zero_bits", "pct"),
             ("NAF a", "act_naf_terms", "f2"), ("Booth a", "act_booth_terms", "f2"))


def _markdown(analyses, names, descriptions, group_size, command, act_grouping="pixel"):
    design_names = list(descriptions)
    out = ["# Effectual report: value statistics, potential speedups and designs", ""]
    if command:
        grouping = ("G consecutive channels at one pixel" if act_grouping == "pixel" else
                    "runs of G values of the flattened NHWC tensor, crossing pixels, for the "
                    "grpP/grpW statistics (shared/realdata.md's convention); potentials and "
                    "designs use per-pixel groups")
        out += [f"Generated by `{command}`; precision groups of G = {group_size} values; "
                f"activation groups: {grouping}.", ""]
    out += ["## Summary", "", "### Value statistics (layers weighted by MACs)", ""]
    rows = []
    for analysis in analyses:
        net = analysis["network"]
        rows.append([analysis["name"], net["layers"], analysis["images"], _fmt(net["macs"], "int"),
                     analysis["bits"]] + [_fmt(net["stats"][k], s) for _, k, s in _MD_STATS])
    out += [_md_table(["network", "layers", "images", "MACs/image", "bits"]
                      + [h for h, _, _ in _MD_STATS], rows), ""]
    out += ["### Value statistics pooled over every value and group of the network", ""]
    rows = [[a["name"]] + [_fmt(a["network"]["pooled_stats"][k], s) for _, k, s in _MD_STATS]
            for a in analyses]
    out += [_md_table(["network"] + [h for h, _, _ in _MD_STATS], rows), ""]
    out += ["### Work-bound potential speedups over bit-parallel", ""]
    rows = [[a["name"]] + [_fmt(a["network"]["potentials"][k]) for k, _ in POTENTIAL_COLUMNS]
            for a in analyses]
    out += [_md_table(["network"] + [h for h, _ in POTENTIAL_COLUMNS], rows), ""]
    out += ["### Designs (cycle models; cycles summed over all images; speedup over "
            f"{design_names[0]})", ""]
    relative = [n for n in design_names if _design(n).relative_to is not None]
    rows = []
    for analysis in analyses:
        designs = analysis["network"]["designs"]
        rows.append([analysis["name"], analysis["images"]]
                    + [_fmt(designs[n][CYCLES], "int") for n in design_names]
                    + [_fmt(designs[n]["speedup"]) for n in design_names[1:]]
                    + [_fmt(designs[n]["speedup_over_reference"]) for n in relative])
    out += [_md_table(["network", "images"] + [f"{n} cycles (all images)" for n in design_names]
                      + [f"{n} speedup" for n in design_names[1:]]
                      + [f"{n} speedup over {_design(n).relative_to}" for n in relative],
                      rows), ""]
    out += ["### Designs: achieved / ideal (ideal = work-bound cycles on the design's own tile)",
            ""]
    rows = [[a["name"]] + [_fmt(a["network"]["designs"][n]["achieved_over_ideal"])
                           for n in design_names] for a in analyses]
    out += [_md_table(["network"] + design_names, rows), ""]
    unsupported = [(a["name"], n, a["network"]["designs"][n]["unsupported"])
                   for a in analyses for n in design_names
                   if a["network"]["designs"][n]["unsupported"]]
    if unsupported:
        out += ["Not applicable (shown as -): " + "; ".join(
            f"{n} on {net}: {reason}" for net, n, reason in unsupported) + ".", ""]
    out += _error_section(analyses, design_names)
    out += _traffic_section(analyses)
    out += ["![summary](summary.png)", "", "## Definitions", "", LEGEND, "",
            "Potentials: " + "; ".join(f"**{k}** {d}" for k, (d, _, _)
                                       in golden_stats.POTENTIALS.items()) + ".", "",
            "Designs: " + "; ".join(f"**{n}** {descriptions[n]}" for n in design_names)
            + ". Exact definitions: golden/stats.py, golden/designs.py and "
            "golden/approx_designs.py.", "",
            ERROR_LEGEND, "", TRAFFIC_LEGEND, "",
            "Units: MACs are per image; design cycles are summed over all the images of a "
            "network (networks.csv/layers.csv: `macs_per_image`, `<design>_cycles_all_images`; "
            "the `work_*` and `count_*` columns are summed over all images too); statistics, "
            "potentials and speedups are ratios of those sums.", ""]
    for analysis, name in zip(analyses, names):
        out += [f"## {analysis['name']}", "", describe(analysis) + ".", ""]
        if analysis["source"]:
            out += [f"Source: {analysis['source']}.", ""]
        notes = _notes(analysis["extra"])
        if notes:
            out += ["Importer notes: " + notes + ".", ""]
        headers = ["#", "layer", "kind", "MACs/image"] + [h for h, _, _ in _MD_STATS] + \
            [h for h, _ in POTENTIAL_COLUMNS] + design_names[1:]
        rows = []
        short = short_names(x["name"] for x in analysis["layers"])
        for index, (item, label, kind) in enumerate(
                [(x, n, x["kind"]) for x, n in zip(analysis["layers"], short)]
                + [(analysis["network"], "**total**", "")]):
            rows.append([index if kind else "", label, kind, _fmt(item["macs"], "int")]
                        + [_fmt(item["stats"][k], s) for _, k, s in _MD_STATS]
                        + [_fmt(item["potentials"][k]) for k, _ in POTENTIAL_COLUMNS]
                        + [_fmt(item["designs"][n]["speedup"]) for n in design_names[1:]])
        out += [_md_table(headers, rows), ""]
        out += _layer_detail_table(analysis, design_names, short)
        out += [f"![{name}]({name}.png)", ""]
    return "\n".join(out)


ERROR_LEGEND = ("Approximate designs: each layer's output is compared with the exact "
                "golden.layers.layer_output on the first images (see the error table): differ = "
                "fraction of output values that differ, max |err| = the largest absolute "
                "difference, rel RMS = ||y - y_exact|| / ||y_exact|| averaged over the evaluated "
                "layer outputs, squeezed = squeezed / active thread operations (NB-SMT).")
TRAFFIC_LEGEND = ("DPRed traffic: bytes moved off chip per image, summed over all images: "
                  "weights and activations read, outputs written, each tensor once, uncompressed "
                  "and DPRed-compressed (per-group precision headers, 32-bit words, the smaller "
                  "of plain and zero-bitmap per tensor; golden/dpred.py); ratio = compressed / "
                  "uncompressed. Outputs that the next layer does not read as they are (pooling, "
                  "concatenation, the last layer) count uncompressed in the totals.")


def _approximate(design_names):
    return [n for n in design_names if not _design(n).exact]


def _error_section(analyses, design_names):
    approximate = _approximate(design_names)
    if not approximate:
        return []
    images = sorted({a.get("error_images") for a in analyses}, key=str)
    out = [f"### Approximate designs: output error (first {', '.join(map(str, images))} "
           f"image(s) of each network)", ""]
    rows = []
    for analysis in analyses:
        for name in approximate:
            error = analysis["network"]["designs"][name]["error"]
            if error is None:
                rows.append([analysis["name"], name] + ["-"] * 6)
                continue
            rows.append([analysis["name"], name, _fmt(error["evaluated"], "int"),
                         _fmt(error["values"], "int"), _fmt(error["differ_fraction"], "pct"),
                         _fmt(error["max_abs_error"], "int"), f"{error['rel_rms_error']:.4f}",
                         _fmt(error["squeezed_fraction"], "pct")])
    out += [_md_table(["network", "design", "layer outputs", "values", "differ", "max abs err",
                       "rel RMS", "squeezed"], rows), ""]
    return out


def _traffic_section(analyses):
    if not any(a["network"].get("traffic") for a in analyses):
        return []
    sizes = sorted({a["dpred"]["group_size"] for a in analyses if a.get("dpred")})
    out = [f"### DPRed off-chip traffic (G = {', '.join(map(str, sizes))}, 32-bit words, "
           f"better variant per tensor; bytes summed over all images)", ""]
    rows = []
    for analysis in analyses:
        traffic = analysis["network"]["traffic"]
        if traffic is None:
            continue
        row = [analysis["name"]]
        for part in TRAFFIC_PARTS:
            row += [_fmt(traffic[part]["uncompressed_bytes"], "int"),
                    _fmt(traffic[part]["compressed_bytes"], "int"),
                    _fmt(traffic[part]["ratio"])]
        rows.append(row)
    headers = ["network"]
    for part in TRAFFIC_PARTS:
        headers += [f"{part} bytes", f"{part} DPRed", f"{part} ratio"]
    out += [_md_table(headers, rows), ""]
    return out


def _layer_detail_table(analysis, design_names, short):
    """Per layer: the approximate designs' errors, speedups over the reference designs and
    the DPRed traffic ratios."""
    approximate = _approximate(design_names)
    relative = [n for n in design_names if _design(n).relative_to is not None]
    traffic = analysis["network"].get("traffic") is not None
    if not (approximate or relative or traffic):
        return []
    headers = ["#", "layer"] + [f"{n} / {_design(n).relative_to}" for n in relative] \
        + [f"{n} rel RMS" for n in approximate] + [f"{n} max abs err" for n in approximate]
    if traffic:
        headers += ["bytes", "DPRed bytes"] + [f"{p[0]} ratio" if p != "total" else "ratio"
                                                for p in TRAFFIC_PARTS]
    rows = []
    for index, (item, label) in enumerate(list(zip(analysis["layers"], short))
                                          + [(analysis["network"], "**total**")]):
        designs = item["designs"]
        row = [index if index < len(analysis["layers"]) else "", label]
        row += [_fmt(designs[n]["speedup_over_reference"]) for n in relative]
        row += [f"{designs[n]['error']['rel_rms_error']:.4f}" if designs[n]["error"] else "-"
                for n in approximate]
        row += [_fmt(designs[n]["error"]["max_abs_error"], "int") if designs[n]["error"]
                else "-" for n in approximate]
        if traffic:
            row += [_fmt(item["traffic"]["total"]["uncompressed_bytes"], "int"),
                    _fmt(item["traffic"]["total"]["compressed_bytes"], "int")]
            row += [_fmt(item["traffic"][p]["ratio"]) for p in TRAFFIC_PARTS]
        rows.append(row)
    return ["Per layer: speedups over the reference designs, output errors of the approximate "
            "designs (first images), DPRed traffic (w = weights, a = activations, o = outputs; "
            "ratio = compressed / uncompressed):", "", _md_table(headers, rows), ""]


def _notes(extra):
    """The manifest's scalar extras (and flat dicts of scalars) as one line."""
    scalar = (str, int, float, bool)
    items = []
    for key, value in extra.items():
        if isinstance(value, scalar):
            items.append(f"{key} = {value:.4g}" if isinstance(value, float) else f"{key} = {value}")
        elif isinstance(value, dict) and value and all(isinstance(v, scalar)
                                                       for v in value.values()):
            inner = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                              for k, v in value.items())
            items.append(f"{key} = ({inner})")
    return "; ".join(items)


#: tick mantissas per decade, finest first; `_log_ticks` takes the finest that is not crowded
_TICK_STEPS = ((1, 1.1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 9), (1, 1.5, 2, 3, 5, 7), (1, 2, 5),
               (1, 3), (1,))


def _log_ticks(low, high, most=8):
    """Return readable tick values in ``[low, high]`` for a log axis (at most ``most``).

    The values are ``m * 10**e`` for the finest mantissa set of `_TICK_STEPS` that gives at
    most ``most`` ticks (e.g. 0.8, 0.9, 1, 1.1, 1.25, 1.5, 2 over 0.75..2.2; 1, 2, 5, 10, 20 over
    0.8..30); wider ranges keep every k-th power of ten. ``1`` is a tick whenever it is in range.
    """
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    for steps in _TICK_STEPS:
        ticks = [float(f"{m * 10.0 ** e:.6g}") for e in range(first, last + 1) for m in steps]
        ticks = [t for t in ticks if low <= t <= high]
        if len(ticks) <= most:
            return ticks
    stride = math.ceil(len(ticks) / most)
    return [t for t in ticks if round(math.log10(t)) % stride == 0]


def _bar_chart(axis, labels, series, title):
    """Grouped bars of ``series`` (name -> list of values) on a log axis; inf drawn clipped."""
    import matplotlib.ticker
    import numpy as np

    finite = [v for values in series.values() for v in values if math.isfinite(v) and v > 0]
    top = max(finite + [1.0]) * 1.5
    low, high = min(finite + [1.0]) / 1.2, top * 1.2
    axis.set_ylim(low, high)
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(labels))
    for i, (name, values) in enumerate(series.items()):
        values = [top if math.isinf(v) else (v if math.isfinite(v) and v > 0 else np.nan)
                  for v in values]
        axis.bar(x + (i - (len(series) - 1) / 2) * width, np.array(values) - 1.0, width,
                 bottom=1.0, label=name)
    axis.set_yscale("log")
    axis.set_ylim(low, high)
    axis.yaxis.set_major_locator(matplotlib.ticker.FixedLocator(_log_ticks(low, high)))
    axis.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    axis.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axis.axhline(1.0, color="black", linewidth=0.8)
    axis.set_xticks(x)
    axis.set_xticklabels(labels, rotation=90 if len(labels) > 6 else 0, fontsize=7)
    axis.set_ylabel("speedup over bit-parallel")
    axis.set_title(title, fontsize=10)
    axis.legend(fontsize=7, ncol=min(len(series), 8))


def _plotted(value):
    """A bar value: ``None`` (design not applicable) becomes nan (no bar)."""
    return math.nan if value is None else value


def _plot(path, labels, potentials, designs, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = min(max(8.0, 0.3 * len(labels) + 2.0), 36.0)
    height = 8.0 + 0.05 * max(len(label) for label in labels) if len(labels) > 6 else 8.0
    figure, axes = plt.subplots(2, 1, figsize=(width, height), constrained_layout=True)
    _bar_chart(axes[0], labels, potentials, f"{title}: work-bound potential speedups")
    _bar_chart(axes[1], labels, designs, f"{title}: design speedups (cycle models)")
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _file_names(names):
    """Return the files a report of networks with the PNG stems ``names`` writes."""
    return list(FIXED_FILES[:4]) + [f"{name}.png" for name in names] + [FIXED_FILES[4]]


def _png_stems(network_names):
    """Return a unique, file-safe PNG stem per network name (``name``, ``name-2``...)."""
    stems, seen = [], set()
    for network_name in network_names:
        stem = _safe(str(network_name))
        base, n = stem, 2
        while stem in seen or stem == "summary":
            stem, n = f"{base}-{n}", n + 1
        seen.add(stem)
        stems.append(stem)
    return stems


def _previous_report_files(output):
    """Return the files an earlier report wrote in the directory ``output`` (existing ones).

    Returns ``None`` if ``output`` holds no ``report.json`` of an Effectual report.
    """
    try:
        previous = json.loads((output / "report.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(previous, dict):
        return None
    if previous.get("format") == REPORT_FORMAT and isinstance(previous.get("files"), list):
        names = [n for n in previous["files"] if isinstance(n, str)]
    elif "format" not in previous and isinstance(previous.get("networks"), list) \
            and "designs" in previous:  # written before reports listed their files
        try:
            names = _file_names(_png_stems(a["name"] for a in previous["networks"]))
        except (KeyError, TypeError):
            return None
    else:
        return None
    files = []
    for name in names:
        path = output / name
        if Path(name).name == name and path.suffix in _REPORT_SUFFIXES and path.is_file():
            files.append(path)
    return files


def prepare_output(output):
    """Check the report directory ``output`` and create it; return ``(created, stale)``.

    ``created`` lists the directories this call created (deepest last), ``stale`` the files of
    an earlier report in ``output`` (see the module docstring), to delete before writing.
    Raises ``NotADirectoryError``/``OSError`` with a one-line message if ``output`` is a file or
    cannot be created, and ``ValueError`` for a non-empty directory that holds no earlier
    Effectual report.
    """
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise NotADirectoryError(f"{output}: exists and is not a directory; give a directory "
                                 f"for the report")
    missing = []
    ancestor = output
    while not ancestor.exists() and ancestor != ancestor.parent:
        missing.append(ancestor)
        ancestor = ancestor.parent
    if missing and not ancestor.is_dir():
        raise NotADirectoryError(f"{output}: cannot create the report directory: {ancestor} "
                                 f"is not a directory")
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise OSError(f"{output}: cannot create the report directory ({reason})") from None
    created = missing[::-1]
    if created or not any(output.iterdir()):
        return created, []
    stale = _previous_report_files(output)
    if stale is None:
        raise ValueError(f"{output}: is not empty and holds no report.json of an earlier "
                         f"Effectual report; refusing to write a report there (give a new or "
                         f"empty directory)")
    return created, stale


def write_report(analyses, output, *, group_size=16, command="", act_grouping="pixel"):
    """Write every report file for ``analyses`` (from `analyze_network`) into ``output``.

    ``group_size`` and ``act_grouping`` are those the analyses used (recorded in the files).
    ``output`` is checked and prepared by `prepare_output`: the files of an earlier report
    there are deleted first, and a non-empty directory without an earlier report is refused
    (``ValueError``) before anything is written. Returns the list of paths written.
    """
    from golden.designs import DESIGNS

    output = Path(output)
    _, stale = prepare_output(output)
    design_names = list(analyses[0]["network"]["designs"])
    descriptions = {n: DESIGNS[n].description for n in design_names}
    names = _png_stems(analysis["name"] for analysis in analyses)
    for path in stale:
        path.unlink()
    written = []

    layer_rows, network_rows = [], []
    for analysis, name in zip(analyses, names):
        for index, layer in enumerate(analysis["layers"]):
            row = {"network": analysis["name"], "directory": analysis["directory"],
                   "index": index, "layer": layer["name"],
                   "kind": layer["kind"], "images": layer["images"],
                   "macs_per_image": layer["macs"],
                   "act_bits": layer["act_bits"], "weight_bits": layer["weight_bits"],
                   "act_signed": layer["act_signed"], "group_size": layer["group_size"]}
            row.update(_common_columns(layer, design_names, analysis.get("dpred")))
            row.update(report_fpraker.columns(analyses, analysis, layer["name"]))
            layer_rows.append(row)
        net = analysis["network"]
        row = {"network": analysis["name"], "directory": analysis["directory"],
               "layers": net["layers"], "images": analysis["images"],
               "macs_per_image": net["macs"],
               "bits": analysis["bits"], "group_size": analysis["group_size"],
               "act_grouping": analysis.get("act_grouping", "pixel"),
               "act_signedness": analysis.get("act_signedness") or ""}
        row.update(_common_columns(net, design_names, analysis.get("dpred")))
        for key, value in net["pooled_stats"].items():
            row[f"pooled_{key}"] = value
        row.update(report_fpraker.columns(analyses, analysis))
        network_rows.append(row)
    for filename, rows in (("layers.csv", layer_rows), ("networks.csv", network_rows)):
        _write_csv(output / filename, rows)
        written.append(output / filename)

    path = output / "report.json"
    path.write_text(json.dumps(jsonable({"format": REPORT_FORMAT, "files": _file_names(names),
                                         "group_size": group_size, "act_grouping": act_grouping,
                                         "command": command, "units": UNITS,
                                         "designs": descriptions,
                                         "design_info": {n: {"exact": DESIGNS[n].exact,
                                                             "relative_to":
                                                                 DESIGNS[n].relative_to}
                                                         for n in design_names},
                                         "networks": analyses}), indent=1) + "\n")
    written.append(path)

    for analysis, name in zip(analyses, names):
        layers = analysis["layers"]
        labels = [f"{index} {name}"[:28] for index, name
                  in enumerate(short_names(layer["name"] for layer in layers))]
        _plot(output / f"{name}.png", labels,
              {k: [layer["potentials"][k] for layer in layers] for k in PLOTTED_POTENTIALS},
              {n: [_plotted(layer["designs"][n]["speedup"]) for layer in layers]
               for n in design_names[1:]},
              analysis["name"])
        written.append(output / f"{name}.png")
    labels = [analysis["name"] for analysis in analyses]
    _plot(output / "summary.png", labels,
          {k: [a["network"]["potentials"][k] for a in analyses] for k in PLOTTED_POTENTIALS},
          {n: [_plotted(a["network"]["designs"][n]["speedup"]) for a in analyses]
           for n in design_names[1:]},
          "networks")
    written.append(output / "summary.png")

    path = output / "report.md"
    path.write_text("\n".join([_markdown(analyses, names, descriptions, group_size, command,
                                         act_grouping)]
                              + report_fpraker.markdown(analyses, _md_table)) + "\n")
    written.append(path)
    return written


def parse_error_images(text):
    """Return the ``--error-images`` count (``None`` for ``all``); ``ValueError`` otherwise."""
    value = str(text).strip()
    if value == "all":
        return None
    if not value.isdigit():
        raise ValueError(f"--error-images must be a count (0 or more) or 'all', not {text!r}")
    return int(value)


def run(args):
    """Analyze every directory (with a progress bar over layer files) and write the report.

    The networks and ``-o`` are checked before any statistics are computed (see the module
    docstring); a report directory this run created is removed again if the analysis fails.
    """
    import shlex
    import sys

    from tqdm import tqdm

    from golden.layers import load_manifest
    from hw.params import check_int

    group_size = check_int("--group-size", args.group_size, 1, 256)
    act_grouping = check_grouping(args.act_grouping)
    dpred_group_size = check_int("--dpred-group-size", args.dpred_group_size, 1, 256)
    error_images = parse_error_images(args.error_images)
    fpraker_images, fpraker_outputs, fpraker_pes = report_fpraker.options(args)
    total = 0
    for directory in args.directories:
        check_network_dir(directory)
        manifest = load_manifest(directory)
        if not manifest["layers"]:
            raise ValueError(f"{directory}: the network has no layers")
        total += len(manifest["layers"]) * len(manifest["images"])
    created, _ = prepare_output(args.output)
    analyses = []
    try:
        with tqdm(total=total, desc="report", unit="layer", file=sys.stderr,
                  mininterval=0.5) as bar:
            for directory in args.directories:
                bar.set_postfix_str(Path(directory).name)
                analyses.append(analyze_network(directory, group_size=group_size,
                                                act_grouping=act_grouping, progress=bar.update,
                                                error_images=error_images,
                                                dpred_group_size=dpred_group_size))
        report_fpraker.analyze(analyses, args.directories, fpraker_images, fpraker_outputs,
                               fpraker_pes)
    except BaseException:
        for path in reversed(created):
            try:
                path.rmdir()
            except OSError:
                break
        raise
    command = "effectual report " + " ".join(
        shlex.quote(a) for a in list(args.directories) + ["-o", str(args.output)]
        + (["--group-size", str(group_size)] if group_size != 16 else [])
        + (["--act-grouping", act_grouping] if act_grouping != "pixel" else [])
        + (["--dpred-group-size", str(dpred_group_size)] if dpred_group_size != 16 else [])
        + (["--error-images", str(args.error_images)] if error_images != 1 else [])
        + report_fpraker.command_options(args))
    written = write_report(analyses, args.output, group_size=group_size, command=command,
                           act_grouping=act_grouping)
    print(f"wrote {len(written)} files to {args.output}: "
          + ", ".join(p.name for p in written))
    return 0
