"""``effectual verilog``: emit Verilog and a JSON manifest for one block or for every block.

    effectual verilog BLOCK [--param value ...] -o FILE     one block, any parameters
    effectual verilog --all -o DIR                          every block, default parameters

Block parameters become options generated from the block's parameter dataclass
(``group_size`` -> ``--group-size N``; booleans -> ``--signed/--no-signed``). The manifest,
written next to each Verilog file as ``<file>.json``, holds the module name, the block, the
parameters, the ports with direction and width (read back from the emitted Verilog) and the
latency in cycles.
"""

import argparse
import dataclasses
import json
import pathlib

from hw.blocks import BLOCKS, emit_verilog, get_block, verilog_ports

__all__ = ["add_arguments", "run", "write_block"]


def _option_name(field_name):
    return "--" + field_name.replace("_", "-")


def add_arguments(parser):
    """Register the ``verilog`` options; parameter options come from every block's dataclass."""
    parser.add_argument("block", nargs="?", metavar="BLOCK",
                        help=f"block to emit: {', '.join(BLOCKS)}")
    parser.add_argument("--all", action="store_true",
                        help="emit every block's default configuration into the directory -o")
    parser.add_argument("-o", "--output", required=True, type=pathlib.Path,
                        help="output Verilog file (one block) or directory (--all)")
    seen = {}
    for block in BLOCKS.values():
        group = parser.add_argument_group(f"parameters of block {block.name!r}")
        for field in dataclasses.fields(block.params_class):
            if field.name in seen:
                continue
            seen[field.name] = block.name
            option = _option_name(field.name)
            if field.type in (bool, "bool"):
                group.add_argument(option, dest=field.name, default=None,
                                   action=argparse.BooleanOptionalAction,
                                   help=f"(default {field.default})")
            else:
                group.add_argument(option, dest=field.name, default=None, metavar="N",
                                   help=f"(default {field.default})")


def _params_from_args(block, args):
    kwargs = {}
    for field in dataclasses.fields(block.params_class):
        value = getattr(args, field.name, None)
        if value is None:
            continue
        if field.type not in (bool, "bool"):
            try:
                value = int(value, 0)
            except ValueError:
                raise ValueError(f"{field.name} must be an integer, not {value!r}") from None
        kwargs[field.name] = value
    return block.params_class(**kwargs)


def _given_parameters(args):
    return sorted(name for block in BLOCKS.values()
                  for name in (f.name for f in dataclasses.fields(block.params_class))
                  if getattr(args, name, None) is not None)


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


def _write_if_changed(path, text):
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def run(args):
    """Emit the requested Verilog; return the exit status."""
    from .cli import UsageError

    if args.all:
        if args.block is not None or _given_parameters(args):
            raise UsageError("--all emits default configurations; give no BLOCK or parameters")
        for name, block in BLOCKS.items():
            path = args.output / f"{block.module_name}.v"
            write_block(name, block.params_class(), path)
            print(f"wrote {path}")
        return 0
    if args.block is None:
        raise UsageError(f"give a BLOCK ({', '.join(BLOCKS)}) or --all")
    block = get_block(args.block)
    known = {f.name for f in dataclasses.fields(block.params_class)}
    foreign = [name for name in _given_parameters(args) if name not in known]
    if foreign:
        raise UsageError(f"block {block.name!r} has no parameter "
                         f"{', '.join(_option_name(n) for n in foreign)}; it takes "
                         f"{', '.join(_option_name(n) for n in sorted(known))}")
    params = _params_from_args(block, args)
    write_block(block.name, params, args.output)
    print(f"wrote {args.output}")
    return 0
