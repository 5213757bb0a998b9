"""``effectual import``: turn a trained model into a network directory of layer files.

Usage::

    effectual import MODEL [--input IMAGE ...] [--bits 8|16] [--per-channel] -o DIR
                     [--input-range=LO,HI] [--layout nchw|nhwc] [--skip-unsupported]
                     [--act-signedness auto|signed] [--name NAME]

``--input`` takes every argument up to the next option, so ``MODEL`` comes before it.
``--name`` sets the network's name (manifest ``name``, the label of ``stats`` and ``report``);
by default the model file's stem or the workload's name. Give each import of the same model
(8 and 16 bits, per-channel...) its own name to tell them apart in a report.

``MODEL`` is one of

* a path ending in ``.onnx``: `effectual.importers.onnx_import.import_onnx`;
* a path ending in ``.tflite``: ``effectual.importers.tflite_import.import_tflite`` (worker
  "tflite-workloads");
* the name of a built-in workload: ``effectual.workloads.WORKLOADS[name]`` (same worker).

Every importer has the signature (and returns a `effectual.importers.common.Capture`)::

    import_onnx(model_path, inputs, *, input_range=None, layout=None, skip_unsupported=False)
    import_tflite(model_path, inputs, *, input_range=None, layout=None)
    WORKLOADS[name](inputs, *, input_range=None, layout=None)

``inputs`` is the list of ``--input`` paths (possibly empty: a workload then uses its own real
images; a model file needs at least one). ``input_range`` is ``None`` unless ``--input-range``
was given (each importer has its default: ONNX ``(0, 1)``); ``layout`` is ``None`` unless
``--layout`` was given (ONNX default ``nchw``, TFLite ``nhwc``). The capture is then quantized
and written by `effectual.importers.common.write_network` (``--bits``, ``--per-channel``,
``--act-signedness``: ``auto``, the default, gives unsigned codes to a layer input without
negative values and signed codes otherwise; ``signed`` gives signed symmetric codes to every
layer input, the convention of ``shared/realdata.md``'s figures).

Images (``--input``): PNG/JPEG/... read by matplotlib, scaled to [0, 1], converted to the
model's channel count, resized bilinearly to the model's input height and width, then mapped
linearly to ``--input-range`` (write ``--input-range=-1,1`` with ``=``, as argparse would take
``-1,1`` for an option); ``.npy`` tensors are fed as they are. See
`effectual.importers.common` for the exact steps.
"""

import os

__all__ = ["add_arguments", "run", "load_capture"]

MODEL_SUFFIXES = (".onnx", ".tflite")


def _input_range(text):
    import argparse

    parts = text.split(",")
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI (two numbers), not {text!r}") from None
    if not lo < hi:
        raise argparse.ArgumentTypeError(f"LO must be less than HI, not {text!r}")
    return (lo, hi)


def add_arguments(parser):
    """Register the ``import`` subcommand's arguments on ``parser``."""
    parser.add_argument("model", metavar="MODEL",
                        help="an .onnx or .tflite file, or a built-in workload name")
    parser.add_argument("--input", "-i", dest="inputs", nargs="+", action="extend", default=[],
                        metavar="IMAGE", help="input images (PNG/JPEG...) or .npy tensors; "
                        "--input takes every argument up to the next option, so give MODEL "
                        "first: effectual import MODEL --input A B -o DIR")
    parser.add_argument("--bits", type=int, choices=(8, 16), default=8,
                        help="width of weights and activations (default 8)")
    parser.add_argument("--per-channel", action="store_true",
                        help="per-output-channel weight scales (default: per tensor)")
    parser.add_argument("-o", "--output", required=True, metavar="DIR",
                        help="network directory to write (network.json + layer files)")
    parser.add_argument("--input-range", type=_input_range, default=None, metavar="LO,HI",
                        help="map image pixels [0,1] to [LO,HI] (default: the importer's, "
                             "ONNX 0,1); write --input-range=-1,1")
    parser.add_argument("--layout", choices=("nchw", "nhwc"), default=None,
                        help="layout of the model's image input (default: ONNX nchw, TFLite "
                             "nhwc)")
    parser.add_argument("--skip-unsupported", action="store_true",
                        help="ONNX: skip unsupported conv-like nodes (ConvTranspose, dilated "
                             "conv...) with a warning instead of failing")
    parser.add_argument("--name", default=None, metavar="NAME",
                        help="network name recorded in network.json and shown by stats and "
                             "report (default: the model file's stem or the workload name)")
    parser.add_argument("--act-signedness", default="auto", metavar="{auto,signed}",
                        help="activation codes: auto (default) = unsigned for a layer input "
                             "without negative values, signed otherwise; signed = signed "
                             "symmetric codes for every layer input (as shared/realdata.md)")


def load_capture(model, inputs, *, input_range=None, layout=None, skip_unsupported=False):
    """Dispatch ``model`` to its importer; return the `Capture`.

    Raises `effectual.cli.UsageError` for an unknown model name or an unsupported file type.
    """
    from effectual.cli import UsageError

    try:
        return _dispatch(model, inputs, input_range=input_range, layout=layout,
                         skip_unsupported=skip_unsupported)
    except ModuleNotFoundError as error:
        if error.name is None or error.name.startswith("effectual"):
            raise
        raise UsageError(f"{model}: needs the Python module {error.name!r}, which is not "
                         f"installed (built-in workloads and TFLite: pip install "
                         f"'effectual[workloads]')") from None


def _dispatch(model, inputs, *, input_range, layout, skip_unsupported):
    from effectual.cli import UsageError

    suffix = os.path.splitext(model)[1].lower()
    options = {"input_range": input_range, "layout": layout}
    if suffix in MODEL_SUFFIXES and not os.path.isfile(model):
        raise UsageError(f"{model}: no such model file")
    if suffix == ".onnx":
        from effectual.importers.onnx_import import import_onnx

        return import_onnx(model, inputs, skip_unsupported=skip_unsupported, **options)
    if skip_unsupported:
        raise UsageError("--skip-unsupported applies to ONNX models only")
    if suffix == ".tflite":
        try:
            from effectual.importers.tflite_import import import_tflite
        except ModuleNotFoundError as error:
            if error.name != "effectual.importers.tflite_import":
                raise
            raise UsageError("TFLite import is not available in this installation") from None
        return import_tflite(model, inputs, **options)
    if os.path.exists(model):
        raise UsageError(f"{model}: unsupported model file type {suffix or '(no suffix)'!r} "
                         f"(expected .onnx or .tflite)")
    try:
        from effectual.workloads import WORKLOADS
    except ModuleNotFoundError as error:
        if error.name != "effectual.workloads":
            raise
        WORKLOADS = {}
    if model not in WORKLOADS:
        known = ", ".join(sorted(WORKLOADS)) or "none installed"
        raise UsageError(f"unknown model {model!r}: expected an .onnx or .tflite file or a "
                         f"built-in workload ({known})")
    return WORKLOADS[model](inputs, **options)


def run(args):
    """Run ``effectual import``; return the exit status."""
    from effectual.importers.common import ACT_SIGNEDNESS, write_network

    # Checked before the (possibly long) capture; a bad value is a one-line error, exit 2.
    if args.act_signedness not in ACT_SIGNEDNESS:
        raise ValueError(f"--act-signedness must be 'auto' or 'signed', not "
                         f"{args.act_signedness!r}")
    name = getattr(args, "name", None)
    if name is not None and (not name.strip() or name != name.strip()):
        raise ValueError(f"--name must be a non-empty name without leading or trailing "
                         f"spaces, not {name!r}")
    capture = load_capture(args.model, args.inputs, input_range=args.input_range,
                           layout=args.layout, skip_unsupported=args.skip_unsupported)
    if name is not None:
        capture.name = name
    write_network(args.output, capture, bits=args.bits, per_channel=args.per_channel,
                  act_signedness=args.act_signedness)
    return 0
