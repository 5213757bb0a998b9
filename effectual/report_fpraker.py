"""The FPRaker section of ``effectual report`` (hooks called by :mod:`effectual.report`).

Every layer's float view (:mod:`golden.fpraker_layers`: dequantized, rounded to bfloat16) runs
on the FPRaker PE model on ``--fpraker-pes`` PEs (default 16) against the bit-parallel BF16
MAC on as many PEs (the same peak throughput). To bound the report's time, only the first
``--fpraker-images`` images (default 1; ``0`` skips the section, ``all``) and the first
``--fpraker-outputs`` outputs of each layer (default 4096, ``(k, oy, ox)`` order; ``all``) are
evaluated; cycles and speedups are over those outputs. Columns (``layers.csv`` and
``networks.csv``; absent when skipped): ``fpraker_outputs``, ``fpraker_cycles``,
``fpraker_bf16mac_cycles``, ``fpraker_ideal``, ``fpraker_speedup_over_bf16mac``,
``fpraker_achieved_over_ideal``, ``fpraker_max_abs_error``, ``fpraker_max_rel_error``
(relative to the exact dot product of the same bfloat16 inputs) and ``fpraker_outside_bound``
(outputs outside `golden.fpraker.error_bound`: 0 unless the model is wrong). ``report.json``
holds the same under each network's ``"fpraker"``.
"""

__all__ = ["add_arguments", "options", "command_options", "analyze", "columns", "markdown"]

#: CSV column -> key of `golden.fpraker_layers.network_fpraker`'s per-layer / network figures
COLUMNS = (("fpraker_outputs", "outputs"), ("fpraker_cycles", "cycles"),
           ("fpraker_bf16mac_cycles", "baseline_cycles"), ("fpraker_ideal", "ideal_cycles"),
           ("fpraker_speedup_over_bf16mac", "speedup"),
           ("fpraker_achieved_over_ideal", "achieved_over_ideal"),
           ("fpraker_max_abs_error", "max_abs_error"), ("fpraker_max_rel_error", "max_rel_error"),
           ("fpraker_outside_bound", "outside_bound"))


def add_arguments(parser):
    """Add ``--fpraker-images``, ``--fpraker-outputs`` and ``--fpraker-pes``."""
    parser.add_argument("--fpraker-images", default="1", metavar="N",
                        help="images of each network run on FPRaker in bfloat16 (default 1; "
                             "0 skips the FPRaker section; all)")
    parser.add_argument("--fpraker-outputs", default="4096", metavar="N",
                        help="outputs per layer run on FPRaker (default 4096; all)")
    parser.add_argument("--fpraker-pes", type=int, default=16, metavar="P",
                        help="processing elements of FPRaker and the BF16 MAC (default 16)")


def _count(text, option, low):
    value = str(text).strip()
    if value == "all":
        return None
    if not value.isdigit() or int(value) < low:
        raise ValueError(f"{option} must be a count ({low} or more) or 'all', not {text!r}")
    return int(value)


def options(args):
    """Return ``(images, outputs, pes)`` from the parsed arguments (``images`` 0: skip;
    ``None``: all); ``ValueError`` for a bad value."""
    from hw.params import check_int

    images = _count(getattr(args, "fpraker_images", "1"), "--fpraker-images", 0)
    outputs = _count(getattr(args, "fpraker_outputs", "4096"), "--fpraker-outputs", 1)
    pes = check_int("--fpraker-pes", getattr(args, "fpraker_pes", 16), 1, 1 << 20)
    return images, outputs, pes


def command_options(args):
    """The non-default FPRaker options, for the report's command line."""
    out = []
    for option, default in (("fpraker_images", "1"), ("fpraker_outputs", "4096"),
                            ("fpraker_pes", 16)):
        value = getattr(args, option, default)
        if str(value) != str(default):
            out += ["--" + option.replace("_", "-"), str(value)]
    return out


def analyze(analyses, directories, images, outputs, pes, progress=None):
    """Attach ``analysis["fpraker"]`` (`golden.fpraker_layers.network_fpraker`) to each
    analysis; nothing when ``images`` is 0."""
    from golden.fpraker_layers import network_fpraker
    from golden.layers import load_manifest

    if images == 0:
        return
    for analysis, directory in zip(analyses, directories):
        count = len(load_manifest(directory)["images"])
        analysis["fpraker"] = network_fpraker(
            directory, images=None if images is None else min(images, count), outputs=outputs,
            pes=pes, progress=progress)


def columns(analyses, analysis, layer_name=None):
    """Return the FPRaker CSV columns of one layer (``layer_name``) or of the network (None);
    empty when no analysis has an FPRaker section."""
    if not any("fpraker" in a for a in analyses):
        return {}
    section = analysis.get("fpraker")
    figures = None
    if section is not None:
        if layer_name is None:
            figures = section["network"]
        else:
            figures = next((row for row in section["layers"] if row["name"] == layer_name), None)
    return {column: None if figures is None else figures[key] for column, key in COLUMNS}


def _row(label, figures):
    return [label, f"{figures['outputs']:,}", f"{figures['cycles']:,}",
            f"{figures['baseline_cycles']:,}", f"{figures['speedup']:.3f}",
            f"{figures['achieved_over_ideal']:.3f}", f"{figures['max_rel_error']:.2e}",
            f"{figures['outside_bound']:,}"]


def markdown(analyses, table):
    """Return the report.md lines of the FPRaker section (``table(headers, rows)`` formats a
    Markdown table); empty when skipped."""
    with_section = [a for a in analyses if "fpraker" in a]
    if not with_section:
        return []
    first = with_section[0]["fpraker"]
    limit = first["outputs_per_layer"]
    p = first["params"]
    headers = ["", "outputs", "FPRaker cycles (these outputs)",
               "BF16 MAC cycles (these outputs)", "speedup",
               "achieved/ideal", "max rel err", "outside bound"]
    out = ["## FPRaker (bfloat16) against the bit-parallel BF16 MAC", "",
           f"Each layer's float view (dequantized, rounded to float32 then bfloat16, "
           f"golden/fpraker_layers.py) on {first['pes']} FPRaker PEs and {first['pes']} BF16 "
           f"MACs ({p['lanes']} lanes, {p['acc_width']}-bit accumulator window, {p['encoding']} "
           f"terms of the activations), first {first['images']} image(s), "
           + ("all outputs" if limit is None else f"the first {limit:,} outputs")
           + " of each layer. Speedup = BF16 MAC cycles / FPRaker cycles; achieved/ideal = "
           "effectual terms / (lanes x PEs) / cycles; max rel err = largest |y - exact| / "
           "|exact| over the outputs, exact = the exact dot product of the same bfloat16 "
           "inputs; outside bound = outputs outside golden.fpraker.error_bound.", ""]
    out += [table(["network"] + headers[1:],
                  [_row(a["name"], a["fpraker"]["network"]) for a in with_section]), ""]
    for analysis in with_section:
        out += [f"### FPRaker per layer: {analysis['name']}", ""]
        out += [table(["layer"] + headers[1:],
                      [_row(r["name"], r) for r in analysis["fpraker"]["layers"]]), ""]
    return out
