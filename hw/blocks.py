"""Registry of the hardware blocks Effectual can emit, and their Verilog emission.

A block is a `wiring.Component` class configured by one parameter object from `hw.params`. The
registry is what ``effectual verilog``, ``make verilog``, ``make lint``, ``make synth`` and the
cocotb runner iterate over, so a new block becomes visible everywhere by adding one entry here.
"""

import dataclasses
import importlib
import re

from .params import PrecisionParams

__all__ = ["Block", "BLOCKS", "get_block", "build", "emit_verilog", "verilog_ports"]


@dataclasses.dataclass(frozen=True)
class Block:
    """One emittable block: CLI name, Verilog module name, parameter class and component."""

    name: str
    module_name: str
    params_class: type
    component: str  # "package.module:ClassName", imported on demand
    summary: str

    def component_class(self):
        """Import and return the component class."""
        module_name, class_name = self.component.split(":")
        return getattr(importlib.import_module(module_name), class_name)


BLOCKS = {
    block.name: block for block in [
        Block(name="precision", module_name="dynamic_precision_detector",
              params_class=PrecisionParams, component="hw.precision:DynamicPrecisionDetector",
              summary="per-group dynamic precision (and trimmed LSB) of a stream of value groups"),
    ]
}


def get_block(name):
    """Return the `Block` called ``name``; raise ``ValueError`` naming the known blocks."""
    try:
        return BLOCKS[name]
    except KeyError:
        raise ValueError(f"unknown block {name!r}; known blocks: {', '.join(BLOCKS)}") from None


def build(name, params=None):
    """Return a new component of block ``name`` configured by ``params`` (defaults if None)."""
    block = get_block(name)
    if params is None:
        params = block.params_class()
    if not isinstance(params, block.params_class):
        raise TypeError(f"params for block {name!r} must be a {block.params_class.__name__}, "
                        f"not {params!r}")
    return block.component_class()(**dataclasses.asdict(params))


def emit_verilog(name, params=None):
    """Return ``(verilog_text, component)`` for block ``name`` with ``params``."""
    from amaranth.back import verilog

    component = build(name, params)
    text = verilog.convert(component, name=get_block(name).module_name, emit_src=False)
    return text, component


_PORT_DECL = re.compile(r"^\s*(input|output|inout)\s+(?:wire\s+|reg\s+)?(?:\[(\d+):(\d+)\]\s+)?"
                        r"\\?([A-Za-z_][\w$.]*)\s*;", re.MULTILINE)


def verilog_ports(text, module_name):
    """Return the ports of ``module_name`` in emitted Verilog as dicts (name, direction, width)."""
    match = re.search(rf"^module\s+\\?{re.escape(module_name)}\s*\(.*?^endmodule",
                      text, re.MULTILINE | re.DOTALL)
    if match is None:
        raise ValueError(f"module {module_name!r} not found in the Verilog text")
    return [{"name": m.group(4), "direction": m.group(1),
             "width": int(m.group(2)) - int(m.group(3)) + 1 if m.group(2) else 1}
            for m in _PORT_DECL.finditer(match.group(0))]
