"""``effectual verilog``: emit Verilog and a JSON manifest for one block or for every block.

    effectual verilog BLOCK [--param value ...] -o FILE     one block, any parameters
    effectual verilog --all -o DIR                          every block, default parameters

Block parameters become options generated from the block's parameter dataclass
(``group_size`` -> ``--group-size N``; booleans -> ``--signed/--no-signed``). The manifest,
written next to each Verilog file as ``<file>.json``, holds the module name, the block, the
parameters, the ports with direction and width (read back from the emitted Verilog) and the
latency in cycles.
"""

import dataclasses
import json
import pathlib

from hw.blocks import BLOCKS, emit_verilog, get_block, verilog_ports

from .block_options import add_parameter_options, given_parameters, params_from_args

__all__ = ["add_arguments", "run", "write_block", "read_manifest", "verilog_files"]


def add_arguments(parser):
    """Register the ``verilog`` options; parameter options come from every block's dataclass."""
    parser.add_argument("block", nargs="?", metavar="BLOCK",
                        help=f"block to emit: {', '.join(BLOCKS)}")
    parser.add_argument("--all", action="store_true",
                        help="emit every block's default configuration into the directory -o")
    parser.add_argument("-o", "--output", required=True, type=pathlib.Path,
                        help="output Verilog file (one block) or directory (--all)")
    add_parameter_options(parser)


def write_block(name, params, path):
    """Emit block ``name`` with ``params`` to ``path`` and its manifest to ``path + '.json'``.

    Returns the manifest dictionary.
    """
    block = get_block(name)
    text, component = emit_verilog(name, params)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    manifest = {
        "module": block.module_name,
        "block": block.name,
        "file": path.name,
        "parameters": dataclasses.asdict(component.params),
        "ports": verilog_ports(text, block.module_name),
        "latency": component.latency,
    }
    _write_if_changed(path, text)
    _write_if_changed(path.with_name(path.name + ".json"), json.dumps(manifest, indent=2) + "\n")
    return manifest


def read_manifest(verilog_path):
    """Return the manifest written next to ``verilog_path`` by `write_block`.

    Raises `effectual.cli.UsageError` (one line) if it is missing, not JSON or has no module name.
    """
    from .cli import UsageError

    path = pathlib.Path(verilog_path)
    manifest_path = path.with_name(path.name + ".json")
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{path}: no manifest {manifest_path.name} next to it "
                         "(emit Verilog with `effectual verilog`)") from None
    except (OSError, ValueError) as error:
        raise UsageError(f"{manifest_path}: unreadable manifest ({error})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("module"), str):
        raise UsageError(f"{manifest_path}: manifest has no 'module' name")
    return manifest


def verilog_files(paths):
    """Return the ``.v`` files named by ``paths`` (files, or directories searched for ``*.v``).

    Raises `effectual.cli.UsageError` for a missing path or when no ``.v`` file is found.
    """
    from .cli import UsageError

    files = []
    for path in map(pathlib.Path, paths):
        if path.is_dir():
            files.extend(sorted(path.glob("*.v")))
        elif path.is_file():
            files.append(path)
        else:
            raise UsageError(f"{path}: no such file or directory")
    if not files:
        raise UsageError(f"no .v files in {', '.join(map(str, paths))} (run make verilog first)")
    return files


def _write_if_changed(path, text):
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def run(args):
    """Emit the requested Verilog; return the exit status."""
    from .cli import UsageError

    if args.all:
        if args.block is not None or given_parameters(args):
            raise UsageError("--all emits default configurations; give no BLOCK or parameters")
        for name, block in BLOCKS.items():
            path = args.output / f"{block.module_name}.v"
            write_block(name, block.default_params(), path)
            print(f"wrote {path}")
        return 0
    if args.block is None:
        raise UsageError(f"give a BLOCK ({', '.join(BLOCKS)}) or --all")
    block = get_block(args.block)
    params = params_from_args(block, args)
    write_block(block.name, params, args.output)
    print(f"wrote {args.output}")
    return 0
