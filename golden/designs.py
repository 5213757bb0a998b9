"""The registry of designs: every design's cycle count for a layer, and its speedup.

Every design the report shows is a :class:`Design` in :data:`DESIGNS`, added with
:func:`register`; ``design.cycles(layer, **options)`` returns the exact number of cycles one tile
of that design spends on one layer (one image). Speedups are over the bit-parallel baseline
(:data:`BASELINE`) with default options. The models here are *work/cycle models*: exact counts
of tile steps from the layer's shape and values, with no memory, bandwidth or pipeline-fill
effects. The RTL of each design must reproduce these counts exactly, so the schedule is defined
below to the step.

The tile and its schedule (shared by every design here)
-------------------------------------------------------
A tile has ``filters`` (F) rows of processing elements, one filter each, and every PE takes
``lanes`` (N) (activation, weight) pairs per step and adds their products to its filter's
output. The F filters of a tile see the same N activations in a step. Bit-serial designs
replicate the rows over ``columns`` (M) columns, one output window each.

*Lane mapping* (which activations a step reads). For a convolution, output windows are
``(oy, ox)`` in row-major order; for each window the steps enumerate kernel positions ``(r, s)``
row-major (``r`` outer), and within one position the channels in blocks of N: lane ``l`` of block
``c0`` carries channel ``c0 + l`` of the filter's group at input pixel ``(oy*sh + r - top,
ox*sw + s - left)`` (a zero if that pixel is padding or ``c0 + l >= C/groups``). Filters are tiled
per convolution group: group ``g`` has ``ceil((K/groups)/F)`` filter tiles of consecutive filters,
all reading channels ``g*C/groups + c0 + l``. A depthwise layer (``groups > 1`` and ``C/groups ==
1``) is mapped diagonally instead: a filter tile holds ``F' = min(F, N)`` consecutive filters
``k0 .. k0+F'-1`` and lane ``i`` carries filter ``k0 + i``'s channel ``(k0 + i) // (K/groups)``,
so a tile does ``R*S`` steps per window and there are ``ceil(K/F')`` tiles. An FC layer is one
window with ``R = S = 1``.

* ``steps per window = R * S * ceil((C/groups) / N)`` (depthwise: ``R * S``), FC ``ceil(C/N)``.
* ``filter tiles = groups * ceil((K/groups) / F)`` (depthwise: ``ceil(K / min(F, N))``).

Registered designs
------------------
``bit-parallel``  DaDianNao-like baseline, one window at a time, every step one cycle (N x F
    full-width MACs per cycle): ``cycles = filter tiles * windows * steps per window``.
``stripes``  Stripes-like bit-serial activations: M = ``columns`` windows are processed together
    (consecutive windows in row-major order, the last chunk possibly partial) and each step costs
    ``P`` cycles, the layer's profiled precision, here the lossless width of this layer's
    activation tensor (:func:`golden.precision.group_precision` over the whole tensor; the paper
    profiles per layer over a data set with an accuracy budget). ``cycles = filter tiles *
    ceil(windows / M) * steps per window * P``. FC layers have one window, so the M columns take
    M different filter tiles over the same activations: ``cycles = ceil(filter tiles / M) *
    steps * P`` (a pure work model; it ignores that each column then needs its own weights).
    ``columns`` defaults to the layer's ``act_bits``, which makes peak throughput equal to the
    baseline's at full precision (F*N*M one-bit products per cycle = F*N MACs per ``act_bits``).
    Option ``precision`` sets ``P`` explicitly (e.g. a precision profiled over many inputs); it
    must lie between this input's lossless width and ``act_bits``. The default, the lossless
    width of this one input, is the most favourable precision any profile could give.
``dynamic-stripes``  as ``stripes``, but each step of a window chunk costs the largest dynamic
    precision over its windows: the precision of window ``w`` at a step is
    ``group_precision`` of the N lane values that step reads for ``w`` (padding and unused lanes
    are zeros; >= 1), and all M columns wait for the slowest (lock-step, no run-ahead
    registers). With ``N`` equal to the statistics' group size and channel blocks aligned, the
    lane values are exactly one activation group of :mod:`golden.stats`. FC: all columns read the
    same lanes, so each step costs its lane group's precision, times ``ceil(filter tiles / M)``.
    Option ``trim_lsb`` also trims common trailing zeros (DNNsim's non-"leading_bit" mode).
"""

import dataclasses
from collections.abc import Callable

import numpy as np

from golden.precision import group_precision
from hw.params import check_bool, check_int

__all__ = ["Design", "DESIGNS", "BASELINE", "DESIGN_MODULES", "register", "get_design",
           "load_designs", "layer_cycles", "tile_schedule", "profiled_precision"]

#: modules that register more designs when imported (``load_designs`` imports them); a design
#: written in its own module (e.g. ``"golden.tcl"``) is listed here to appear in every report
DESIGN_MODULES = ()

#: the design every speedup is relative to
BASELINE = "bit-parallel"


@dataclasses.dataclass(frozen=True)
class Design:
    """A design in the registry.

    Parameters
    ----------
    name : str
        Unique registry key; short, lower case (used as a table column and a file name part).
    description : str
        One line for the report.
    cycles : callable ``(layer, **options) -> int``
        Exact cycles of one tile on one layer (one image); options have documented defaults.
    """

    name: str
    description: str
    cycles: Callable

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name or self.name != self.name.strip():
            raise TypeError(f"Design name must be a non-empty string, not {self.name!r}")
        if not isinstance(self.description, str):
            raise TypeError(f"Design description must be a string, not {self.description!r}")
        if not callable(self.cycles):
            raise TypeError(f"Design cycles must be callable, not {self.cycles!r}")


#: name -> Design, in registration order (the report's column order)
DESIGNS = {}


def register(design):
    """Add ``design`` to :data:`DESIGNS` and return it; ``ValueError`` if the name is taken."""
    if not isinstance(design, Design):
        raise TypeError(f"register() takes a Design, not {design!r}")
    if design.name in DESIGNS:
        raise ValueError(f"a design named {design.name!r} is already registered")
    DESIGNS[design.name] = design
    return design


def load_designs():
    """Import every module in :data:`DESIGN_MODULES` (each registers its designs); return
    :data:`DESIGNS`."""
    import importlib

    for module in DESIGN_MODULES:
        importlib.import_module(module)
    return DESIGNS


def get_design(name):
    """Return the registered design ``name``; ``ValueError`` listing the known names otherwise."""
    try:
        return DESIGNS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown design {name!r}; known: {', '.join(DESIGNS)}") from None


def layer_cycles(layer, designs=None):
    """Return ``{name: (cycles, speedup over the baseline)}`` for the given or all designs.

    Every design runs with its default options; ``speedup = baseline cycles / cycles``.
    """
    names = list(DESIGNS) if designs is None else list(designs)
    baseline = get_design(BASELINE).cycles(layer)
    result = {}
    for name in names:
        cycles = get_design(name).cycles(layer)
        result[name] = (cycles, baseline / cycles)
    return result


@dataclasses.dataclass(frozen=True)
class TileSchedule:
    """How a layer maps onto a tile (see the module docstring).

    ``lane_channels`` is ``[steps, N]`` int64: the input channel each lane carries at each
    channel step (``-1``: the lane carries a zero), and ``repeats`` the number of filter tiles
    that run these channel steps (per window, each step at every kernel position). For a
    depthwise layer every filter tile has its own single channel step, so ``steps`` is the number
    of filter tiles and ``repeats`` is 1. ``entries`` is a list of ``(repeats, lane_channels)``,
    one per convolution group (one in total unless ``1 < groups < C``). ``filter_tiles`` is the
    total number of filter tiles (the module docstring's formula), ``windows`` the number of
    output windows (1 for FC) and ``taps`` the kernel positions ``R * S`` (1 for FC).
    """

    entries: list
    filter_tiles: int
    windows: int
    taps: int


def tile_schedule(layer, *, lanes=16, filters=16):
    """Return the :class:`TileSchedule` of ``layer`` on a ``lanes`` x ``filters`` tile."""
    lanes = check_int("lanes", lanes, 1, 4096)
    filters = check_int("filters", filters, 1, 4096)
    K, Cg = layer.weights.shape[:2]
    groups = 1 if layer.kind == "fc" else int(layer.groups)
    Kg = K // groups
    if layer.kind == "conv":
        R, S = layer.weights.shape[2:]
        sh, sw = layer.stride
        top, bottom, left, right = layer.padding
        _, H, W = layer.activations.shape
        windows = ((H + top + bottom - R) // sh + 1) * ((W + left + right - S) // sw + 1)
        taps = R * S
    else:
        windows, taps = 1, 1
    if groups > 1 and Cg == 1:
        per_tile = min(filters, lanes)
        tiles = -(-K // per_tile)
        filter_index = np.arange(tiles)[:, None] * per_tile + np.arange(lanes)
        channels = np.where((np.arange(lanes) < per_tile) & (filter_index < K),
                            filter_index // Kg, -1)
        return TileSchedule([(1, channels)], tiles, windows, taps)
    blocks = -(-Cg // lanes)
    offset = np.arange(blocks)[:, None] * lanes + np.arange(lanes)
    tiles_per_group = -(-Kg // filters)
    entries = [(tiles_per_group, np.where(offset < Cg, g * Cg + offset, -1))
               for g in range(groups)]
    return TileSchedule(entries, groups * tiles_per_group, windows, taps)


def profiled_precision(layer):
    """Return the per-layer precision used by ``stripes``: the width of the whole tensor."""
    acts = np.asarray(layer.activations).reshape(1, -1)
    width, _ = group_precision(acts, value_width=int(layer.act_bits),
                               signed=bool(layer.act_signed))
    return int(width[0])


def _bit_parallel_cycles(layer, *, lanes=16, filters=16):
    """Cycles of the bit-parallel baseline (see the module docstring)."""
    plan = tile_schedule(layer, lanes=lanes, filters=filters)
    steps = sum(repeats * len(channels) for repeats, channels in plan.entries)
    return steps * plan.taps * plan.windows


def _columns(layer, columns):
    return int(layer.act_bits) if columns is None else check_int("columns", columns, 1, 4096)


def _stripes_cycles(layer, *, lanes=16, filters=16, columns=None, precision=None):
    """Cycles of the Stripes-like design (see the module docstring)."""
    columns = _columns(layer, columns)
    plan = tile_schedule(layer, lanes=lanes, filters=filters)
    needed = profiled_precision(layer)
    if precision is None:
        precision = needed
    else:
        precision = check_int("precision", precision, needed, int(layer.act_bits))
    if layer.kind == "fc":
        _, channels = plan.entries[0]
        return -(-plan.filter_tiles // columns) * len(channels) * precision
    steps = sum(repeats * len(channels) for repeats, channels in plan.entries)
    return steps * plan.taps * -(-plan.windows // columns) * precision


def _lane_widths(layer, channels, trim_lsb):
    """Return ``[steps, Hp, Wp]`` precision of the lane group of each channel step and pixel."""
    acts = np.asarray(layer.activations, dtype=np.int64)
    if layer.kind == "fc":
        acts = acts[:, None, None]
        top = bottom = left = right = 0
    else:
        top, bottom, left, right = (int(p) for p in layer.padding)
    C, H, W = acts.shape
    padded = np.zeros((C + 1, H + top + bottom, W + left + right), dtype=np.int64)
    padded[:C, top:top + H, left:left + W] = acts  # channel C stays zero: the unused lanes
    lane_values = padded[np.where(channels < 0, C, channels)]  # [steps, N, Hp, Wp]
    width, _ = group_precision(np.moveaxis(lane_values, 1, -1), value_width=int(layer.act_bits),
                               signed=bool(layer.act_signed), trim_lsb=trim_lsb)
    return width


def _dynamic_stripes_cycles(layer, *, lanes=16, filters=16, columns=None, trim_lsb=False):
    """Cycles of the Dynamic-Stripes-like design (see the module docstring)."""
    columns = _columns(layer, columns)
    trim_lsb = check_bool("trim_lsb", trim_lsb)
    plan = tile_schedule(layer, lanes=lanes, filters=filters)
    if layer.kind == "fc":
        _, channels = plan.entries[0]
        width = _lane_widths(layer, channels, trim_lsb)
        return -(-plan.filter_tiles // columns) * int(width.sum())
    R, S = layer.weights.shape[2:]
    sh, sw = (int(s) for s in layer.stride)
    top, bottom, left, right = layer.padding
    _, H, W = layer.activations.shape
    OH, OW = (H + top + bottom - R) // sh + 1, (W + left + right - S) // sw + 1
    chunks = -(-OH * OW // columns)
    total = 0
    for repeats, channels in plan.entries:
        width = _lane_widths(layer, channels, trim_lsb)  # [steps, Hp, Wp]
        for r in range(R):
            for s in range(S):
                per_window = width[:, r:r + sh * (OH - 1) + 1:sh, s:s + sw * (OW - 1) + 1:sw]
                per_window = per_window.reshape(len(channels), OH * OW)
                chunked = np.zeros((len(channels), chunks * columns), dtype=np.int64)
                chunked[:, :OH * OW] = per_window
                total += repeats * int(chunked.reshape(len(channels), chunks, columns)
                                       .max(axis=2).sum())
    return total


register(Design(BASELINE, "bit-parallel 16 lanes x 16 filters, one window per cycle "
                "(DaDianNao-like)", _bit_parallel_cycles))
register(Design("stripes", "bit-serial activations at one per-layer precision (the lossless width "
                "of each input), act_bits windows (Stripes-like)", _stripes_cycles))
register(Design("dynamic-stripes", "bit-serial activations at per-step dynamic group precision, "
                "columns in lock-step (Dynamic-Stripes-like)", _dynamic_stripes_cycles))
