"""Registry of the hardware blocks Effectual can emit, and their Verilog emission.

A block is a `wiring.Component` class configured by one parameter object from `hw.params`. The
registry is what ``effectual verilog``, ``make verilog``, ``make lint``, ``make synth`` and the
cocotb runner iterate over, so a new block becomes visible everywhere by adding one entry here.
"""

import dataclasses
import importlib
import re

from .params import PrecisionParams
from .params import TileParams
from .params import DPRedParams
from .params import MacParams, SparqBankParams, SparqParams, SySMTParams
from .params import TermEncoderParams
from .params import TCLeTileParams
from .params import BF16MACParams, FPRakerParams, FPTermEncoderParams
from .params import FPRakerTileParams

__all__ = ["Block", "BLOCKS", "get_block", "build", "emit_verilog", "verilog_ports"]


@dataclasses.dataclass(frozen=True)
class Block:
    """One emittable block: CLI name, Verilog module name, parameter class and component."""

    name: str
    module_name: str
    params_class: type
    component: str  # "package.module:ClassName", imported on demand
    summary: str
    #: the parameters emitted by default (``effectual verilog --all``); None: ``params_class()``
    default: object = None

    def default_params(self):
        """Return the block's default parameter object."""
        return self.params_class() if self.default is None else self.default

    def component_class(self):
        """Import and return the component class."""
        module_name, class_name = self.component.split(":")
        return getattr(importlib.import_module(module_name), class_name)


BLOCKS = {
    block.name: block for block in [
        Block(name="precision", module_name="dynamic_precision_detector",
              params_class=PrecisionParams, component="hw.precision:DynamicPrecisionDetector",
              summary="per-group dynamic precision (and trimmed LSB) of a stream of value groups"),
        Block(name="dpred_encoder", module_name="dpred_encoder", params_class=DPRedParams,
              component="hw.dpred:DPRedEncoder",
              summary="DPRed encoder: values to memory words, one precision header per group"),
        Block(name="dpred_decoder", module_name="dpred_decoder", params_class=DPRedParams,
              component="hw.dpred:DPRedDecoder",
              summary="DPRed decoder: memory words to values, corrupt streams flagged"),
        Block(name="dpred_loopback", module_name="dpred_loopback", params_class=DPRedParams,
              component="hw.dpred:DPRedLoopback",
              summary="DPRed encoder -> decoder round trip with a tap on the memory words"),
        Block(name="term_encoder", module_name="term_encoder",
              params_class=TermEncoderParams, component="hw.terms:TermEncoder",
              summary="activations to LSB-first streams of signed power-of-two terms "
                      "(NAF, DNNsim Booth or binary)"),
        Block(name="sparq", module_name="sparq_pe", params_class=SparqParams,
              component="hw.sparq:SparqPE",
              summary="SPARQ PE: two uint8 x int8 pairs per cycle on two 4b x 8b multipliers "
                      "(vSPARQ windows, exact when a partner is zero)"),
        Block(name="mac", module_name="mac_pe", params_class=MacParams,
              component="hw.sparq:MacPE",
              summary="plain 8b x 8b multiply-accumulate PE, one uint8 x int8 pair per cycle "
                      "(the baseline of SparqPE)"),
        Block(name="sparq_bank", module_name="sparq_bank", params_class=SparqBankParams,
              component="hw.sparq:SparqBank",
              summary="one SparqPE per SPARQ mode side by side on one input stream"),
        Block(name="sysmt", module_name="sysmt_array", params_class=SySMTParams,
              component="hw.sysmt:SySMTArray",
              summary="output-stationary NB-SMT systolic array (1, 2 or 4 threads per PE) "
                      "with a cycle counter"),
        Block(name="fp_term_encoder", module_name="fp_term_encoder",
              params_class=FPTermEncoderParams, component="hw.fpraker:FPTermEncoder",
              summary="bfloat16 significands to MSB-first streams of signed power-of-two "
                      "terms, zero detection"),
        Block(name="fpraker_pe", module_name="fpraker_pe", params_class=FPRakerParams,
              component="hw.fpraker:FPRakerPE",
              summary="FPRaker PE: N bfloat16 MACs per set, term-serial with out-of-bounds "
                      "term skipping, float32 result and cycle count"),
        Block(name="bf16_mac", module_name="bf16_mac", params_class=BF16MACParams,
              component="hw.fpraker:BF16MAC",
              summary="bit-parallel bfloat16 MAC baseline (one set per cycle), same "
                      "accumulator and ports as fpraker_pe"),
        Block(name="tclp", module_name="tclp_tile", params_class=TileParams,
              component="hw.tile:TCLpTile",
              default=TileParams(weight_rows=256, act_rows=256),
              summary="Bit-Tactical TCLp tile, paper configuration: 16 filters x 16 lanes x 16 "
                      "windows, T<2,5> weight skipping, bit-serial 16-bit activations"),
        Block(name="bit_parallel", module_name="bit_parallel_tile", params_class=TileParams,
              component="hw.tile:BitParallelTile",
              default=TileParams(windows=1, pattern="none", weight_rows=256, act_rows=256),
              summary="bit-parallel baseline tile at the TCLp tile's peak throughput: 16 x 16 "
                      "16-bit MACs per cycle, dense front end (same ports as tclp)"),
        Block(name="tclp_small", module_name="tclp_tile_small", params_class=TileParams,
              component="hw.tile:TCLpTile",
              default=TileParams(filters=4, lanes=4, windows=2, weight_width=8, act_width=8,
                                 pattern="T<2,5>", weight_rows=256, act_rows=256),
              summary="TCLp tile that fits an iCE40UP5K: 4 x 4 x 2, T<2,5>, 8-bit"),
        Block(name="tcle_small", module_name="tcle_tile_small", params_class=TCLeTileParams,
              component="hw.term_serial:TCLeTile",
              default=TCLeTileParams(filters=4, lanes=4, windows=2, weight_width=8, act_width=8,
                                     pattern="T<2,5>", weight_rows=256, act_rows=256),
              summary="TCLe tile: 4 x 4 x 2, T<2,5>, 8-bit term-serial activations (DNNsim "
                      "Booth terms, 2-bit first-stage shifters), same ports as tclp"),
        Block(name="bit_parallel_small", module_name="bit_parallel_tile_small",
              params_class=TileParams, component="hw.tile:BitParallelTile",
              default=TileParams(filters=4, lanes=4, windows=1, weight_width=8, act_width=8,
                                 pattern="none", weight_rows=256, act_rows=256),
              summary="bit-parallel baseline tile: 4 x 4 8-bit MACs per cycle, dense front end"),
        Block(name="fpraker_tile", module_name="fpraker_tile", params_class=FPRakerTileParams,
              component="hw.fpraker_tile:FPRakerTile",
              default=FPRakerTileParams(filters=2, lanes=4, weight_rows=16, act_rows=16),
              summary="FPRaker tile: 2 FPRaker PEs x 4 bfloat16 pairs in lock-step, 16 sets "
                      "per pass, same ports as tclp (float32 results)"),
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
        params = block.default_params()
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
