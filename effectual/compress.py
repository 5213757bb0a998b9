"""``effectual compress PATH``: DPRed-compressed sizes of a layer file or a network directory.

    effectual compress LAYER.npz [--group-size N] [--word-width W] [--json FILE]
    effectual compress NETWORK_DIR [--images 0|all|i,j,...] [...]

Every tensor is encoded in the DPRed word layout of `golden.dpred` (the hardware's memory
format), stored channel-minor as `golden.dpred.layer_traffic` describes (weights ``[K, R, S,
C]``, activations ``[H, W, C]``, fc as is; a group is ``--group-size`` consecutive values),
``--word-width``-bit memory words. For each tensor the table shows the values, their width, the
uncompressed bytes, the bytes of the plain variant (header + packed values), of the zero-bitmap
variant (header + non-zero bitmap + non-zero values), the smaller of the two (``best``, the
per-tensor choice) and ``best`` as a fraction of the uncompressed size. For a network directory
there is one weights row per layer (the weights are the same for every image) and one
activations row per layer summed over the selected images (default: image 0), then the
network totals. ``--json`` writes the same numbers.
"""

import json
import pathlib

__all__ = ["add_arguments", "run", "compress_layer", "compress_network", "format_rows"]


def _integer(text):
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, not {text!r}") from None
    return value


def add_arguments(parser):
    """Register the ``compress`` options."""
    parser.add_argument("path", type=pathlib.Path, metavar="PATH",
                        help="a layer file (.npz) or a network directory (with network.json)")
    parser.add_argument("--group-size", type=_integer, default=16, metavar="N",
                        help="values per group, 1..256 (default 16)")
    parser.add_argument("--word-width", type=_integer, default=32, metavar="W",
                        help="memory word width: 8, 16, 32 or 64 (default 32)")
    parser.add_argument("--images", default="0", metavar="SEL",
                        help="network directories: images whose activations are counted: an "
                             "index, a comma-separated list or 'all' (default 0)")
    parser.add_argument("--json", type=pathlib.Path, metavar="FILE",
                        help="also write the sizes as JSON")


def _tensor_row(layer_name, tensor, traffic):
    return {"layer": layer_name, "tensor": tensor, "values": traffic["values"],
            "bits": traffic["value_width"], "uncompressed_bytes": traffic["uncompressed_bytes"],
            "plain_bytes": traffic["plain_bytes"], "bitmap_bytes": traffic["bitmap_bytes"],
            "best_bytes": min(traffic["plain_bytes"], traffic["bitmap_bytes"]),
            "best": traffic["variant"]}


def compress_layer(layer, *, group_size=16, word_width=32):
    """Return the weights and activations rows (dicts) of one `golden.layers.Layer`."""
    from golden.dpred import layer_traffic

    traffic = layer_traffic(layer, group_size=group_size, word_width=word_width,
                            variant="best")
    return [_tensor_row(layer.name, "weights", traffic["weights"]),
            _tensor_row(layer.name, "activations", traffic["activations"])]


def _add(rows, name, tensor):
    keys = ("values", "uncompressed_bytes", "plain_bytes", "bitmap_bytes", "best_bytes")
    total = {"layer": name, "tensor": tensor, "bits": None, "best": None}
    for key in keys:
        total[key] = sum(row[key] for row in rows)
    return total


def _select_images(text, count):
    from .cli import UsageError

    if text == "all":
        return list(range(count))
    try:
        images = [int(part) for part in text.split(",")]
    except ValueError:
        raise UsageError(f"--images must be 'all', an index or a comma-separated list of "
                         f"indices, not {text!r}") from None
    for image in images:
        if not 0 <= image < count:
            raise UsageError(f"--images: image {image} does not exist (the network has "
                             f"{count} images: 0..{count - 1})")
    return images


def compress_network(directory, *, group_size=16, word_width=32, images=(0,)):
    """Return the rows of a network directory: per layer weights (once) and activations
    (summed over ``images``), then the totals for weights, activations and both."""
    from golden.layers import load_network

    _, layers = load_network(directory, images=list(images))
    rows, weights, activations = [], [], []
    current = None
    for entry, image, layer in layers:
        weights_row, activations_row = compress_layer(layer, group_size=group_size,
                                                      word_width=word_width)
        if entry["name"] != current:
            current = entry["name"]
            weights.append(weights_row)
            rows.append(weights_row)
            activations.append(activations_row)
            rows.append(activations_row)
        else:
            merged = activations[-1]
            for key in ("values", "uncompressed_bytes", "plain_bytes", "bitmap_bytes",
                        "best_bytes"):
                merged[key] += activations_row[key]
            if merged["best"] != activations_row["best"]:
                merged["best"] = "mixed"  # the choice is per tensor, i.e. per image
    both = _add(weights + activations, "TOTAL", "both")
    rows += [_add(weights, "TOTAL", "weights"), _add(activations, "TOTAL", "activations"), both]
    return rows


def format_rows(rows):
    """Return the rows as an aligned text table."""
    header = ("layer", "tensor", "values", "bits", "uncompressed B", "plain B", "bitmap B",
              "best B", "best", "best/uncompr.")
    lines = []
    for row in rows:
        ratio = row["best_bytes"] / row["uncompressed_bytes"] if row["uncompressed_bytes"] \
            else float("nan")
        lines.append((row["layer"], row["tensor"], f"{row['values']:,}",
                      "" if row["bits"] is None else str(row["bits"]),
                      f"{row['uncompressed_bytes']:,}", f"{row['plain_bytes']:,}",
                      f"{row['bitmap_bytes']:,}", f"{row['best_bytes']:,}", row["best"] or "",
                      f"{ratio:.1%}"))
    widths = [max(len(line[i]) for line in [header] + lines) for i in range(len(header))]
    out = []
    for line in [header] + lines:
        out.append("  ".join(cell.ljust(width) if i < 2 or i == 8 else cell.rjust(width)
                             for i, (cell, width) in enumerate(zip(line, widths))).rstrip())
    out.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(out)


def run(args):
    """Print the compressed sizes of ``args.path``; optionally write ``--json``."""
    from golden.dpred import WORD_WIDTHS
    from golden.layers import MANIFEST, load_layer, load_manifest

    from .cli import UsageError

    if not 1 <= args.group_size <= 256:
        raise UsageError(f"--group-size must be from 1 to 256, not {args.group_size}")
    if args.word_width not in WORD_WIDTHS:
        raise UsageError(f"--word-width must be one of 8, 16, 32, 64, not {args.word_width}")
    path = args.path
    if path.is_dir():
        if not (path / MANIFEST).is_file():
            raise UsageError(f"{path}: not a network directory (no {MANIFEST})")
        manifest = load_manifest(path)
        images = _select_images(args.images, len(manifest["images"]))
        rows = compress_network(path, group_size=args.group_size, word_width=args.word_width,
                                images=images)
        title = (f"{manifest['name']}: DPRed sizes, group size {args.group_size}, "
                 f"{args.word_width}-bit words, activations of image(s) "
                 f"{','.join(map(str, images))}")
    elif path.is_file():
        rows = compress_layer(load_layer(path), group_size=args.group_size,
                              word_width=args.word_width)
        title = f"{path}: DPRed sizes, group size {args.group_size}, {args.word_width}-bit words"
    else:
        raise OSError(f"{path}: no such file or directory")
    print(title)
    print(format_rows(rows))
    if args.json:
        args.json.write_text(json.dumps({"path": str(path), "group_size": args.group_size,
                                         "word_width": args.word_width, "rows": rows},
                                        indent=2) + "\n")
    return 0
