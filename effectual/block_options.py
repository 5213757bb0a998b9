"""Command-line options for block parameters, shared by ``effectual verilog`` and ``board``.

Every field of every block's parameter dataclass becomes one option (``group_size`` ->
``--group-size N``; booleans ``--signed/--no-signed``), default None so that only the options
actually given reach the parameter object, which validates them.
"""

import argparse
import dataclasses

from hw.blocks import BLOCKS

__all__ = ["option_name", "add_parameter_options", "given_parameters", "params_from_args"]


def option_name(field_name):
    """Return the option of parameter ``field_name``: ``group_size`` -> ``--group-size``."""
    return "--" + field_name.replace("_", "-")


def add_parameter_options(parser):
    """Add one option per parameter of every block (booleans as ``--x/--no-x``), default None."""
    seen = {}
    for block in BLOCKS.values():
        group = parser.add_argument_group(f"parameters of block {block.name!r}")
        for field in dataclasses.fields(block.params_class):
            if field.name in seen:
                continue
            seen[field.name] = block.name
            option = option_name(field.name)
            if field.type in (bool, "bool"):
                group.add_argument(option, dest=field.name, default=None,
                                   action=argparse.BooleanOptionalAction,
                                   help=f"(default {field.default})")
            else:
                group.add_argument(option, dest=field.name, default=None, metavar="N",
                                   help=f"(default {field.default})")


def given_parameters(args):
    """Return the sorted names of the block parameters given on the command line."""
    return sorted({name for block in BLOCKS.values()
                   for name in (f.name for f in dataclasses.fields(block.params_class))
                   if getattr(args, name, None) is not None})


def params_from_args(block, args):
    """Return ``block``'s parameter object from the options in ``args``.

    Raises `effectual.cli.UsageError` if an option of another block's parameter was given and
    ``ValueError`` if an integer option is not an integer (the parameter class validates ranges).
    """
    from .cli import UsageError

    known = {f.name for f in dataclasses.fields(block.params_class)}
    foreign = [name for name in given_parameters(args) if name not in known]
    if foreign:
        raise UsageError(f"block {block.name!r} has no parameter "
                         f"{', '.join(option_name(n) for n in foreign)}; it takes "
                         f"{', '.join(option_name(n) for n in sorted(known))}")
    kwargs = {}
    for field in dataclasses.fields(block.params_class):
        value = getattr(args, field.name, None)
        if value is None:
            continue
        if field.type not in (bool, "bool", str, "str"):
            try:
                value = int(value, 0)
            except ValueError:
                raise ValueError(f"{field.name} must be an integer, not {value!r}") from None
        kwargs[field.name] = value
    return dataclasses.replace(block.default_params(), **kwargs)
