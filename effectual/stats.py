"""``effectual stats DIR``: value statistics and potential speedups of a network directory.

Prints one table per network (a row per layer, then the network totals) of the statistics of
:mod:`golden.stats`: zero weights and activations, mean per-group precision, zero bits, terms per
value and the work-bound potential speedups over a bit-parallel baseline. Two total rows: TOTAL
averages each statistic over the layers weighted by their MACs (and gives the potentials as total
work ratios); POOLED counts every value and group of the network once (no potentials: those are
work ratios already). ``--act-grouping flat`` forms the activation groups of the grpP/grpW
statistics from runs of the flattened NHWC tensor, the convention of ``shared/realdata.md``
(:func:`golden.stats.layer_stats`); the potentials keep the per-pixel groups. ``--json FILE``
also writes everything (exact counts included) as JSON. The analysis functions here are shared
with ``effectual report``.

Units: ``MACs`` are per image (every image of a network has the same layers); the work, counts
and design cycles are summed over all the images of the network (the JSON keys say so:
``cycles_all_images``); ratios (statistics, potentials, speedups) are those of the sums.
``effectual stats`` computes no design output errors and no DPRed traffic (``effectual
report`` does: see :func:`analyze_network`).
"""

import json
import math
from pathlib import Path

from golden import designs as design_registry
from golden import stats as golden_stats

__all__ = ["add_arguments", "add_grouping_argument", "check_grouping", "run", "analyze_network",
           "check_network_dir", "layer_rows", "format_table", "jsonable", "short_names",
           "STAT_COLUMNS", "POTENTIAL_COLUMNS", "LEGEND", "UNITS", "CYCLES", "IDEAL"]

#: (header, statistic key, format) of the per-layer statistics shown in the text tables
STAT_COLUMNS = (
    ("0 w %", "zero_weights", "pct"),
    ("0 a %", "zero_acts", "pct"),
    ("grpP a", "act_group_magnitude", "f2"),
    ("grpW a", "act_group_width", "f2"),
    ("grpW w", "weight_group_width", "f2"),
    ("0bit a %", "act_zero_bits", "pct"),
    ("NAF a", "act_naf_terms", "f2"),
    ("Booth a", "act_booth_terms", "f2"),
)
#: (header, potential key) in table order
POTENTIAL_COLUMNS = tuple((key, key) for key in golden_stats.POTENTIALS)
#: the key of a design's cycle count in the analysis (summed over every image of the network)
CYCLES = "cycles_all_images"
#: the key of a design's ideal (work-bound) cycle count, summed like ``CYCLES``
IDEAL = "ideal_all_images"
#: what each number of an analysis counts (written into the JSON files)
UNITS = {
    "macs": "per image (every image of a network has the same layers)",
    "work": "summed over all images of the network",
    "counts": "summed over all images of the network",
    CYCLES: "design cycles summed over all images of the network",
    IDEAL: "design ideal (work-bound) cycles summed over all images of the network",
    "stats, potentials, speedup": "ratios of the sums over all images",
}


def add_arguments(parser):
    """Add the ``stats`` arguments to ``parser``."""
    parser.add_argument("directories", nargs="+", metavar="DIR",
                        help="network directory (network.json + layer files) written by "
                             "`effectual import` or golden.layers.save_network")
    parser.add_argument("--group-size", type=int, default=16, metavar="N",
                        help="values per precision group (default 16)")
    add_grouping_argument(parser)
    parser.add_argument("--json", metavar="FILE", help="also write all results as JSON")


def add_grouping_argument(parser):
    """Add ``--act-grouping`` (shared by ``stats`` and ``report``) to ``parser``."""
    parser.add_argument("--act-grouping", default="pixel", metavar="{pixel,flat}",
                        help="activation groups of the grpP/grpW statistics: pixel (default) = "
                             "G consecutive channels at one pixel; flat = runs of G consecutive "
                             "values of the flattened NHWC tensor, crossing pixels "
                             "(shared/realdata.md's convention); potentials always use pixel "
                             "groups")


def check_grouping(value):
    """Return ``value`` if it is a valid ``--act-grouping``; raise ``ValueError`` otherwise."""
    if value not in golden_stats.ACT_GROUPINGS:
        raise ValueError(f"--act-grouping must be 'pixel' or 'flat', not {value!r}")
    return value


def check_network_dir(directory):
    """Raise ``OSError`` with a one-line message unless ``directory`` holds a network."""
    from golden.layers import MANIFEST

    path = Path(directory)
    if not path.is_dir():
        raise OSError(f"{directory}: no such directory")
    if not (path / MANIFEST).is_file():
        raise OSError(f"{directory}: no {MANIFEST} here (write a network with `effectual "
                      f"import`, or from your own Layer objects with "
                      f"golden.layers.save_network)")


def analyze_network(directory, *, group_size=16, act_grouping="pixel", progress=None,
                    error_images=1, dpred_group_size=16):
    """Return the statistics, design cycles, design errors and DPRed traffic of a network.

    Parameters
    ----------
    directory : path of a network directory (``network.json`` plus layer files).
    group_size : values per precision group (:func:`golden.stats.layer_stats`).
    act_grouping : ``"pixel"`` or ``"flat"`` activation groups of the grpP/grpW statistics
        (:func:`golden.stats.layer_stats`).
    progress : optional callable ``progress(n)`` called after each layer file (one per layer and
        image) is analyzed.
    error_images : the output error of every approximate design (``Design.exact`` False) is
        measured on the first ``error_images`` images of the network (``None``: all; 0: none).
        Cycles are always summed over every image.
    dpred_group_size : DPRed group size of the off-chip traffic model
        (:func:`golden.dpred.network_traffic`, 32-bit words, the better variant per tensor);
        ``None``: no traffic.

    Returns
    -------
    dict with ``name``, ``source``, ``directory``, ``bits``, ``per_channel``, ``images`` (count),
    ``group_size``, ``act_grouping``, ``act_signedness`` (the manifest's, ``None`` if it has
    none), ``extra`` (the manifest's), ``error_images`` (images the errors were measured on),
    ``dpred`` (``None`` or the traffic model's ``group_size``, ``word_width``, ``variant``),
    ``layers`` (per layer: the :func:`golden.stats.combine_images` result over all images,
    whose ``macs`` is per image and ``work``/``counts`` are summed over the images, plus
    ``designs`` and ``traffic``) and ``network`` (:func:`golden.stats.network_stats` plus
    ``designs`` and ``traffic`` summed over layers and images).

    ``designs`` maps each design name to ``{"cycles_all_images", "ideal_all_images",
    "speedup", "achieved_over_ideal", "unsupported", "relative_to",
    "speedup_over_reference", "error"}``: cycles and ideal (work-bound) cycles summed over the
    images; speedup over the baseline; ``unsupported`` is ``None`` or why the design cannot
    run a layer (then the cycles and ratios are ``None``, in the network totals too);
    ``speedup_over_reference`` is the speedup over the design ``relative_to`` (both ``None``
    for designs without one); ``error`` is ``None`` for exact designs, else
    :func:`golden.designs.combine_errors` over the evaluated images (network: over every
    evaluated layer and image; ``None`` when nothing was evaluated or a layer is unsupported).

    ``traffic`` (``None`` without ``dpred_group_size``) maps ``weights``, ``activations``,
    ``outputs`` and ``total`` to ``{"uncompressed_bytes", "compressed_bytes", "ratio"}`` summed
    over the images (weights/activations/outputs also ``variants``: the variants chosen). A
    layer's outputs are the next layer's activations when the shapes match; otherwise their
    compressed size is unknown: ``None`` for the layer's outputs, counted uncompressed in
    ``total`` and in the network's ``outputs``.
    Raises ``OSError``/``ValueError`` for a missing, empty or invalid directory.
    """
    from golden.layers import layer_output, load_network

    check_network_dir(directory)
    design_registry.load_designs()
    designs = dict(design_registry.DESIGNS)
    if error_images is not None:
        error_images = check_int("error_images", error_images, 0, 1 << 30)
    manifest, items = load_network(directory)
    if not manifest["layers"]:
        raise ValueError(f"{directory}: the network has no layers")
    layers = []
    current, per_image, acc = None, [], None
    for entry, image, layer in items:
        if current is not None and entry is not current:
            layers.append(_finish_layer(per_image, acc, designs))
            per_image, acc = [], None
        current = entry
        if acc is None:
            acc = {name: {"cycles": 0, "ideal": 0, "unsupported": None, "errors": [],
                          "counts": []} for name in designs}
        per_image.append(golden_stats.layer_stats(layer, group_size=group_size,
                                                  act_grouping=act_grouping))
        measure = error_images is None or image < error_images
        expected = None
        for name, design in designs.items():
            item = acc[name]
            reason = design.why_unsupported(layer)
            if reason is not None:
                item["unsupported"] = item["unsupported"] or reason
                continue
            item["cycles"] += design.cycles(layer)
            item["ideal"] += design.ideal(layer)
            if not design.exact and measure:
                if expected is None:
                    expected = layer_output(layer)
                output, counts = design_registry.design_output(design, layer)
                item["errors"].append(design_registry.output_error(output, expected))
                item["counts"].append(counts)
        if progress is not None:
            progress(1)
    layers.append(_finish_layer(per_image, acc, designs))
    network = golden_stats.network_stats(layers)
    network["designs"] = _network_designs(layers, designs)
    dpred = None
    if dpred_group_size is not None:
        dpred = _add_traffic(directory, layers, network, dpred_group_size,
                             len(manifest["images"]))
    else:
        for item in layers + [network]:
            item["traffic"] = None
    return {"name": manifest["name"], "source": manifest.get("source", ""),
            "directory": str(directory), "bits": manifest.get("bits"),
            "per_channel": manifest.get("per_channel"), "images": len(manifest["images"]),
            "group_size": group_size, "act_grouping": act_grouping,
            "act_signedness": manifest.get("act_signedness"), "extra": manifest.get("extra", {}),
            "error_images": (len(manifest["images"]) if error_images is None
                             else min(error_images, len(manifest["images"]))),
            "dpred": dpred, "layers": layers, "network": network}


def check_int(name, value, minimum, maximum):
    """``hw.params.check_int`` (imported lazily: this module's imports stay light)."""
    from hw.params import check_int as check

    return check(name, value, minimum, maximum)


def _design_entry(design, cycles, ideal, unsupported, baseline, reference, error):
    """One design's figures (see `analyze_network`); ``None`` cycles for unsupported layers."""
    supported = cycles is not None
    entry = {CYCLES: cycles, IDEAL: ideal,
             "speedup": (baseline / cycles if cycles else math.inf)
             if supported and baseline is not None else None,
             "achieved_over_ideal": (ideal / cycles if cycles else math.nan)
             if supported else None,
             "unsupported": unsupported, "relative_to": design.relative_to,
             "speedup_over_reference": None,
             "error": None}
    if design.relative_to is not None and supported and reference is not None:
        entry["speedup_over_reference"] = reference / cycles if cycles else math.inf
    if not design.exact and supported:
        entry["error"] = error
    return entry


def _entries(values, designs, errors):
    """``{name: (cycles or None, ideal or None, unsupported)}`` -> design entries."""
    baseline = values[design_registry.BASELINE][0]
    result = {}
    for name, design in designs.items():
        cycles, ideal, unsupported = values[name]
        reference = values[design.relative_to][0] if design.relative_to in values else None
        result[name] = _design_entry(design, cycles, ideal, unsupported, baseline,
                                     reference, errors.get(name))
    return result


def _finish_layer(per_image, acc, designs):
    result = golden_stats.combine_images(per_image)
    values = {name: ((None, None, item["unsupported"]) if item["unsupported"] is not None
                     else (item["cycles"], item["ideal"], None)) for name, item in acc.items()}
    errors = {name: design_registry.combine_errors(item["errors"], item["counts"])
              for name, item in acc.items()}
    result["designs"] = _entries(values, designs, errors)
    # the raw per-image errors, for the network's mean (dropped from the final analysis)
    result["_errors"] = {name: (item["errors"], item["counts"]) for name, item in acc.items()}
    return result


def _network_designs(layers, designs):
    values, errors = {}, {}
    for name in designs:
        entries = [layer["designs"][name] for layer in layers]
        unsupported = next((e["unsupported"] for e in entries if e["unsupported"]), None)
        if unsupported is not None:
            values[name] = (None, None, unsupported)
        else:
            values[name] = (sum(e[CYCLES] for e in entries), sum(e[IDEAL] for e in entries),
                            None)
            raw = [layer["_errors"][name] for layer in layers]
            errors[name] = design_registry.combine_errors(
                [e for errs, _ in raw for e in errs], [c for _, cnts in raw for c in cnts])
    for layer in layers:
        del layer["_errors"]
    return _entries(values, designs, errors)


def _ratio(compressed, uncompressed):
    if compressed is None:
        return None
    return compressed / uncompressed if uncompressed else math.nan


def _add_traffic(directory, layers, network, dpred_group_size, images):
    """Add ``traffic`` to every layer and the network (see `analyze_network`)."""
    from golden.dpred import network_traffic

    word_width, variant = 32, "best"
    traffic = network_traffic(directory, group_size=check_int(
        "--dpred-group-size", dpred_group_size, 1, 256), word_width=word_width, variant=variant)
    rows = traffic["layers"]
    for index, layer in enumerate(layers):
        mine = rows[index * images:(index + 1) * images]
        if [row["layer"] for row in mine] != [layer["name"]] * images:
            raise ValueError(f"{directory}: the traffic rows do not follow the layers")
        item = {}
        for part in ("weights", "activations", "outputs"):
            uncompressed = sum(row[part]["uncompressed_bytes"] for row in mine)
            known = all(row[part]["compressed_bytes"] is not None for row in mine)
            compressed = sum(row[part]["compressed_bytes"] for row in mine) if known else None
            item[part] = {"uncompressed_bytes": uncompressed, "compressed_bytes": compressed,
                          "ratio": _ratio(compressed, uncompressed),
                          "variants": sorted({row[part]["variant"] for row in mine
                                              if row[part]["variant"] is not None})}
        uncompressed = sum(row["total"]["uncompressed_bytes"] for row in mine)
        compressed = sum(row["total"]["compressed_bytes"] for row in mine)
        item["total"] = {"uncompressed_bytes": uncompressed, "compressed_bytes": compressed,
                         "ratio": _ratio(compressed, uncompressed)}
        layer["traffic"] = item
    total = traffic["total"]
    network["traffic"] = {part: dict(total[part]) for part in ("weights", "activations",
                                                                "outputs")}
    network["traffic"]["total"] = dict(total["all"])
    return {"group_size": dpred_group_size, "word_width": word_width, "variant": variant}


def short_names(names):
    """Return ``names`` without the leading ``/``-separated components they all share.

    For example ``model_1/model/conv2d/Conv2D`` and ``model_1/model/dense/MatMul`` become
    ``conv2d/Conv2D`` and ``dense/MatMul``; a name is never shortened to nothing.
    """
    parts = [str(name).split("/") for name in names]
    common = 0
    while parts and all(len(p) > common + 1 and p[common] == parts[0][common] for p in parts):
        common += 1
    return ["/".join(p[common:]) for p in parts]


def _format(value, style):
    if isinstance(value, str):
        return value
    if value is None or math.isnan(value):
        return "-"
    if math.isinf(value):
        return "inf"
    if style == "pct":
        return f"{100 * value:.1f}"
    if style == "int":
        return f"{value:,}"
    return f"{value:.2f}"


def layer_rows(analysis, *, designs=False):
    """Return ``(headers, rows)`` of formatted strings: a row per layer, then the network totals.

    The last two rows are the MAC-weighted TOTAL (statistics weighted by MACs, potentials and
    design speedups as total work/cycle ratios) and POOLED (statistics over every value and group
    of the network counted once; its potential and design cells are empty). With ``designs`` the
    design speedups over the baseline are appended as columns.
    """
    headers = ["layer", "kind", "MACs/image"] + [h for h, _, _ in STAT_COLUMNS] + \
        [h for h, _ in POTENTIAL_COLUMNS]
    design_names = list(analysis["network"]["designs"]) if designs else []
    headers += design_names
    rows = []
    names = short_names(layer["name"] for layer in analysis["layers"])
    for item, label, kind in [(layer, name, layer["kind"])
                              for layer, name in zip(analysis["layers"], names)] + \
            [(analysis["network"], f"TOTAL ({analysis['network']['layers']} layers)", "")]:
        row = [label, kind, _format(item["macs"], "int")]
        row += [_format(item["stats"][key], style) for _, key, style in STAT_COLUMNS]
        row += [_format(item["potentials"][key], "f2") for _, key in POTENTIAL_COLUMNS]
        row += [_format(item["designs"][name]["speedup"], "f2") for name in design_names]
        rows.append(row)
    net = analysis["network"]
    row = ["POOLED (every value once)", "", _format(net["macs"], "int")]
    row += [_format(net["pooled_stats"][key], style) for _, key, style in STAT_COLUMNS]
    row += [""] * (len(POTENTIAL_COLUMNS) + len(design_names))
    rows.append(row)
    return headers, rows


def format_table(headers, rows, *, footer=2):
    """Return an aligned text table (first column left-aligned, the others right-aligned).

    The last ``footer`` rows (the totals) are set off by a rule.
    """
    widths = [max(len(str(r[i])) for r in [headers] + rows) for i in range(len(headers))]

    def line(cells):
        return "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    body, totals = rows[:len(rows) - footer], rows[len(rows) - footer:]
    return "\n".join([line(headers), rule] + [line(r) for r in body] + [rule]
                     + [line(r) for r in totals])


def jsonable(value):
    """Return ``value`` with non-finite floats as the strings ``"inf"``/``"nan"`` (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def describe(analysis):
    """One header line describing a network analysis."""
    net = analysis["network"]
    signedness = analysis.get("act_signedness")
    return (f"{analysis['name']}: {net['layers']} layers, {analysis['images']} image(s), "
            f"{net['macs']:,} MACs per image, {analysis['bits']}-bit"
            + (f" (act signedness {signedness})" if signedness else "")
            + f", group size {analysis['group_size']}"
            + f" ({analysis.get('act_grouping', 'pixel')} activation groups for grpP/grpW)"
            + f" ({analysis['directory']})")


LEGEND = ("0 w/0 a: zero weights/activations; grpP: mean per-group bit length of max |value| "
          "(no sign); grpW: mean per-group minimal width: two's-complement (sign bit included) "
          "for signed tensors, unsigned for unsigned ones (weights are signed); 0bit: zero "
          "magnitude bits in non-zero activations; NAF/Booth: terms per activation; A, W, "
          "W+A, Ap, Ae_*, W+Ap, W+Ae: work-bound potential speedups over bit-parallel "
          "(golden/stats.py). TOTAL: statistics weighted by MACs, potentials = total work "
          "ratios. POOLED: every value "
          "and group of the network counts once. Activation groups: pixel = G channels at one "
          "pixel; flat (--act-grouping flat, grpP/grpW only) = runs of G values of the "
          "flattened NHWC tensor.")


def run(args):
    """Print the tables; return 0."""
    from hw.params import check_int

    group_size = check_int("--group-size", args.group_size, 1, 256)
    act_grouping = check_grouping(args.act_grouping)
    for directory in args.directories:
        check_network_dir(directory)
    analyses = [analyze_network(d, group_size=group_size, act_grouping=act_grouping,
                                error_images=0, dpred_group_size=None)
                for d in args.directories]
    for index, analysis in enumerate(analyses):
        if index:
            print()
        print(describe(analysis))
        print(format_table(*layer_rows(analysis)))
    print()
    print(LEGEND)
    if args.json:
        Path(args.json).write_text(json.dumps(
            jsonable({"group_size": group_size, "act_grouping": act_grouping,
                      "units": UNITS, "networks": analyses}), indent=1) + "\n")
    return 0
