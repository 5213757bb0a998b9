"""The registry of designs: every design's cycles, ideal cycles and computed output for a layer.

Every design the report and ``effectual eval`` show is a :class:`Design` in :data:`DESIGNS`,
added with :func:`register`. For a layer (one image) and documented options,
``design.cycles(layer, **options)`` is the exact number of cycles one tile of that design
spends on the layer, ``design.ideal(layer, **options)`` its work-bound count (the cycles if every
multiplier slot of the tile did useful work every cycle) and ``design.output(layer, **options)``
the int64 output the design computes (conv ``[K, OH, OW]``, fc ``[K]``), modelled bit-exactly
through the tile's datapath (bit-serial designs reconstruct each activation from the number of
bit planes they spend on it, so a precision that is too small gives a wrong output). Speedups
are over :data:`BASELINE` with default options. The models count tile cycles only (no memory,
bandwidth or pipeline fill); the RTL tiles (``hw/tile.py``) reproduce them exactly per pass.

The tile, the lowering and the schedule
---------------------------------------
A tile has ``filters`` (F) filter lanes, each taking ``lanes`` (N) (activation, weight) pairs per
step, for ``windows`` (W) output windows at once (columns; the F filters and W windows share
the weights of a step). The mapping of a layer onto it is :func:`golden.tcl.lower`:

*Lane mapping*. For a convolution, output windows are ``(oy, ox)`` in row-major order; for each
window the steps enumerate kernel positions ``(r, s)`` row-major (``r`` outer), and within one
position the channels in blocks of N: lane ``l`` of block ``c0`` carries channel ``c0 + l`` of
the filter's group at input pixel ``(oy*sh + r - top, ox*sw + s - left)`` (a zero if that pixel is
padding or ``c0 + l >= C/groups``). Filters are tiled per convolution group: group ``g`` has
``ceil((K/groups)/F)`` filter tiles of consecutive filters, all reading channels ``g*C/groups + c0
+ l``. A depthwise layer (``groups > 1`` and ``C/groups == 1``) is mapped diagonally instead: a
filter tile holds ``F' = min(F, N)`` consecutive filters ``k0 .. k0+F'-1`` and lane ``i`` carries
filter ``k0 + i``'s channel ``(k0 + i) // (K/groups)``, so a tile does ``R*S`` steps per window
and there are ``ceil(K/F')`` tiles. An FC layer is one window with ``R = S = 1``.

* ``T = steps per window = R * S * ceil((C/groups) / N)`` (depthwise: ``R * S``), FC
  ``ceil(C/N)``; ``filter tiles = groups * ceil((K/groups) / F)`` (depthwise ``ceil(K/F')``).
* A *pass* is one filter tile times one chunk of W consecutive windows (the last chunk may be
  partial; its missing windows are zeros) times all steps. ``passes = filter tiles *
  ceil(windows / W)``. FC has one window, so a tile with W columns runs an FC layer on one
  column (in the RTL all columns share each row's weights, so the other columns cannot take other
  filters); its other columns idle. The cycle count of a layer is the sum over its passes.
* The *schedule* of a filter tile (:func:`golden.tcl.schedule`) is its dense rows, or with a
  weight-skipping *pattern* (``"T<2,5>"``, ``"L<h,d>"``, offset lists) the greedy static
  schedule of Bit-Tactical: R rows, R <= T. With pattern ``"none"`` R = T.
* The *row precision* ``p(r, w)`` (:func:`golden.tcl.row_precision`) is the minimal width of
  the activation values row r reads in window w; lock-step columns spend ``max_w p(r, w)``.

Registered designs (options in brackets, defaults after ``=``)
---------------------------------------------------------------
``baseline`` [filters=16, lanes=16, windows=1]
    Bit-parallel, dense (DaDianNao-like): F x N full-width MACs per cycle per window.
    Cycles per pass = T. ``cycles = filter tiles * ceil(windows / W) * T``.
``stripes`` [filters=16, lanes=16, windows=act_bits, precision=None]
    Bit-serial activations at one per-layer precision P (Stripes-like), dense. Cycles per pass
    = ``T * P``. P defaults to the lossless width of this layer's activation tensor
    (:func:`profiled_precision`; the paper profiles per layer over a data set with an accuracy
    budget, so this is the most favourable precision any profile could give); option
    ``precision`` sets it (from that width to ``act_bits``).
``dstripes`` [filters=16, lanes=16, windows=act_bits]
    Dynamic Stripes: bit-serial with per-group dynamic precision, dense; the TCLp back end with
    pattern ``"none"``. Cycles per pass = ``sum_t max_w p(t, w)``, p of the N lanes of step t.
``wskip`` [filters=16, lanes=16, windows=1, pattern="T<2,5>"]
    The TCL weight-skipping front end on the bit-parallel back end. Cycles per pass = R.
``tclp`` [filters=16, lanes=16, windows=act_bits, pattern="T<2,5>", run_ahead=0]
    TCLp: the TCL front end and the dynamic-precision bit-serial back end. Cycles per pass =
    ``sum_r max_w p(r, w)`` with lock-step columns (``run_ahead=0``, the RTL); ``run_ahead=A``
    lets each column run up to A rows ahead of the slowest (:func:`golden.tcl.pass_cycles`).

The bit-serial designs default to W = ``act_bits`` columns, which makes their peak throughput
equal to the 1-window baseline's at full precision (F*N*W one-bit products per cycle = F*N MACs
per ``act_bits`` cycles).

Ideal (work-bound) cycles: ``ceil(work / (F * N * W))`` with the tile's own F, N, W, where the
work counts every MAC of the layer (padding pixels included, ``layer.macs``) that the design
cannot skip, times its cost in cycles of one multiplier slot: ``baseline`` 1 per MAC;
``stripes`` P per MAC; ``dstripes`` per MAC the precision ``p(t, w)`` of its dense step's N-lane
group; ``wskip`` 1 per MAC with a non-zero weight; ``tclp`` ``p(t, w)`` per MAC with a non-zero
weight. ``achieved / ideal = ideal / cycles`` (1 = every slot busy).

More designs (:data:`DESIGN_MODULES`, imported by :func:`load_designs`)
------------------------------------------------------------------------
``golden.approx_designs`` registers ``sysmt1`` (the one-thread 16 x 16 output-stationary
systolic array, exact), ``sysmt2`` and ``sysmt4`` (NB-SMT with 2 and 4 threads, approximate)
and ``sparq`` (SPARQ 5opt ROUND on the 2-thread schedule, approximate); options ``rows`` and
``cols``; their cycles, ideal cycles and outputs are documented there.

Exact and approximate designs
-----------------------------
A design is *exact* (:attr:`Design.exact`, the default) when its output must equal
:func:`golden.layers.layer_output`: ``effectual eval`` fails on any difference. An
*approximate* design (``exact=False``) computes a different output by construction (squeezed or
windowed operands); ``effectual eval`` and the report measure its error instead
(:func:`output_error`). :func:`design_output` returns a design's output together with the
event counts its datapath model gives (:attr:`Design.output_counts`, e.g. NB-SMT's ``macs``,
``active`` and ``squeezed``). A design that cannot compute some layers says why with
:attr:`Design.unsupported` (the report shows ``-`` for those layers and for the network
totals that contain them; ``effectual eval`` refuses them with that reason).
"""

import dataclasses
from collections.abc import Callable

import numpy as np

from golden import tcl
from hw.params import check_int, parse_pattern

__all__ = ["Design", "DESIGNS", "BASELINE", "DESIGN_MODULES", "register", "get_design",
           "load_designs", "layer_cycles", "layer_results", "profiled_precision",
           "design_output", "output_error", "combine_errors"]

#: modules that register more designs when imported (``load_designs`` imports them)
DESIGN_MODULES = ("golden.pragmatic", "golden.approx_designs")

#: the design every speedup is relative to
BASELINE = "baseline"


@dataclasses.dataclass(frozen=True)
class Design:
    """A design in the registry.

    Parameters
    ----------
    name : str
        Unique registry key; short, lower case (a table column, a file name part, the name
        ``effectual eval --design`` takes).
    description : str
        One line for the report.
    cycles : callable ``(layer, **options) -> int``
        Exact cycles of one tile on one layer (one image); options have documented defaults.
    ideal : callable ``(layer, **options) -> int``
        The work-bound cycles with the same options.
    output : callable ``(layer, **options) -> int64 ndarray``
        The output the design computes (conv ``[K, OH, OW]``, fc ``[K]``).
    exact : bool, default True
        ``True``: the output must equal :func:`golden.layers.layer_output` (a difference is a
        bug). ``False``: an approximate design whose output error is measured and reported.
    output_counts : callable ``(layer, **options) -> (output, dict)`` or None
        The output together with the datapath's event counts (int values); ``output`` must
        return the same array. ``None``: the design has no counts (:func:`design_output`
        then calls ``output`` and gives ``{}``).
    unsupported : callable ``(layer) -> str | None`` or None
        Why the design cannot compute a layer (one line), or ``None`` if it can. ``None``
        (the default): every layer is supported.
    relative_to : str or None
        The name of a second reference design: the report adds the speedup over it (e.g.
        ``sysmt1`` for the multithreaded arrays) beside the speedup over :data:`BASELINE`.
    """

    name: str
    description: str
    cycles: Callable
    ideal: Callable
    output: Callable
    exact: bool = True
    output_counts: Callable | None = None
    unsupported: Callable | None = None
    relative_to: str | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name or self.name != self.name.strip():
            raise TypeError(f"Design name must be a non-empty string, not {self.name!r}")
        if not isinstance(self.description, str):
            raise TypeError(f"Design description must be a string, not {self.description!r}")
        for field in ("cycles", "ideal", "output"):
            if not callable(getattr(self, field)):
                raise TypeError(f"Design {field} must be callable, not "
                                f"{getattr(self, field)!r}")
        if not isinstance(self.exact, bool):
            raise TypeError(f"Design exact must be a bool, not {self.exact!r}")
        for field in ("output_counts", "unsupported"):
            value = getattr(self, field)
            if value is not None and not callable(value):
                raise TypeError(f"Design {field} must be callable or None, not {value!r}")
        if self.relative_to is not None and (not isinstance(self.relative_to, str)
                                             or not self.relative_to):
            raise TypeError(f"Design relative_to must be a design name or None, not "
                            f"{self.relative_to!r}")

    def why_unsupported(self, layer):
        """Return why this design cannot compute ``layer`` (one line), or ``None``."""
        return None if self.unsupported is None else self.unsupported(layer)


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


def layer_results(layer, designs=None):
    """Return ``{name: {"cycles", "ideal"}}`` (default options) for the given or all designs."""
    names = list(DESIGNS) if designs is None else list(designs)
    return {name: {"cycles": get_design(name).cycles(layer),
                   "ideal": get_design(name).ideal(layer)} for name in names}


def design_output(design, layer, **options):
    """Return ``(output, counts)`` of ``design`` (a :class:`Design` or a name) on ``layer``.

    ``counts`` is the dict of :attr:`Design.output_counts` (``{}`` for designs without one);
    ``output`` is an int64 array. ``ValueError`` (with the reason) for an unsupported layer.
    """
    design = get_design(design) if isinstance(design, str) else design
    reason = design.why_unsupported(layer)
    if reason is not None:
        raise ValueError(f"layer {layer.name!r}: {design.name} cannot run it: {reason}")
    if design.output_counts is None:
        return np.asarray(design.output(layer, **options)), {}
    output, counts = design.output_counts(layer, **options)
    return np.asarray(output), dict(counts)


def output_error(output, expected):
    """Return the error of ``output`` against the exact ``expected`` (same shape, integers).

    Keys: ``values`` (count), ``differing`` (values that differ), ``max_abs_error``,
    ``rel_rms_error`` = ``||output - expected||_2 / ||expected||_2`` (divided by 1 instead when
    ``expected`` is all zero), as in ``effectual.bench_sparq``.
    """
    output = np.asarray(output, dtype=np.int64)
    expected = np.asarray(expected, dtype=np.int64)
    if output.shape != expected.shape:
        raise ValueError(f"output shape {list(output.shape)} is not the expected "
                         f"{list(expected.shape)}")
    diff = output - expected
    norm = float(np.sqrt(np.sum(expected.astype(np.float64) ** 2))) or 1.0
    return {"values": int(expected.size), "differing": int(np.count_nonzero(diff)),
            "max_abs_error": int(np.abs(diff).max()) if diff.size else 0,
            "rel_rms_error": float(np.sqrt(np.sum(diff.astype(np.float64) ** 2))) / norm}


def combine_errors(errors, counts=()):
    """Combine `output_error` dicts (one per layer and image) and optional count dicts.

    Returns ``evaluated`` (how many outputs were compared), ``values``, ``differing``,
    ``differ_fraction`` = differing / values, ``max_abs_error`` (the largest),
    ``rel_rms_error`` (the mean of the per-output relative RMS errors, as
    ``effectual.bench_sparq`` averages over layers and images) and, when the counts hold
    ``active`` and ``squeezed`` (NB-SMT), ``squeezed_fraction`` = squeezed / active (thread
    operations), else ``None``; with the summed counts under ``counts``. An empty list gives
    ``None``.
    """
    errors = list(errors)
    if not errors:
        return None
    values = sum(e["values"] for e in errors)
    differing = sum(e["differing"] for e in errors)
    summed = {}
    for item in counts:
        for key, value in item.items():
            summed[key] = summed.get(key, 0) + int(value)
    squeezed = None
    if "active" in summed and "squeezed" in summed:
        squeezed = summed["squeezed"] / summed["active"] if summed["active"] else 0.0
    return {"evaluated": len(errors), "values": values, "differing": differing,
            "differ_fraction": differing / values if values else 0.0,
            "max_abs_error": max(e["max_abs_error"] for e in errors),
            "rel_rms_error": float(np.mean([e["rel_rms_error"] for e in errors])),
            "squeezed_fraction": squeezed, "counts": summed}


def profiled_precision(layer):
    """Return the per-layer precision used by ``stripes``: the width of the whole tensor."""
    return tcl.layer_model(layer).layer_precision()


# ---------------------------------------------------------------------------------------------
# The models
# ---------------------------------------------------------------------------------------------

def _tile(layer, filters, lanes, windows, serial):
    """Validated ``(model, W)``; W defaults to 1 (bit-parallel) or ``act_bits`` (bit-serial)."""
    filters = check_int("filters", filters, 1, 4096)
    lanes = check_int("lanes", lanes, 1, 4096)
    if windows is None:
        windows = int(layer.act_bits) if serial else 1
    windows = check_int("windows", windows, 1, 4096)
    return tcl.layer_model(layer, filters=filters, lanes=lanes), windows


def _offsets(pattern, lanes):
    return parse_pattern(pattern, lanes=check_int("lanes", lanes, 1, 4096))


def _chunks(values, W):
    """``values [nW, R]`` -> ``[passes, W, R]``, the missing windows of the last chunk as 1."""
    nW, R = values.shape
    chunks = -(-nW // W)
    padded = np.ones((chunks * W, R), dtype=np.int64)
    padded[:nW] = values
    return padded.reshape(chunks, W, R)


def _serial_cycles(model, offsets, W, run_ahead):
    """Sum over passes of the bit-serial cycles (:func:`golden.tcl.pass_cycles`)."""
    lowering = model.lowering
    total = 0
    done = {}
    for tile in range(lowering.tiles):
        key = int(lowering.tile_mapping[tile]) if not offsets else None
        if key is not None and key in done:
            total += done[key]
            continue
        cycles = int(tcl.pass_cycles(_chunks(model.row_precision(tile, offsets), W),
                                     run_ahead=run_ahead).sum())
        if key is not None:
            done[key] = cycles
        total += cycles
    return total


def _parallel_cycles(model, offsets, W):
    lowering = model.lowering
    passes = -(-lowering.windows // W)
    if not offsets:
        return lowering.tiles * passes * lowering.steps
    return passes * sum(model.schedule(tile, offsets).rows for tile in range(lowering.tiles))


def _ideal(model, W, *, nonzero, cost):
    """``ceil(work / (F N W))``; ``cost`` None (1 per MAC), an int, or ``"dynamic"``."""
    lowering = model.lowering
    work = 0
    per_mapping = {}
    for tile in range(lowering.tiles):
        if nonzero:
            counts = (model.dense_rows(tile) != 0).sum(axis=(1, 2))  # [T]
        else:
            counts = lowering.valid_slots(tile).sum(axis=(1, 2))
        if cost == "dynamic":
            mapping = int(lowering.tile_mapping[tile])
            if mapping not in per_mapping:
                per_mapping[mapping] = model.dense_precision(mapping).sum(axis=0)  # [T]
            work += int(counts @ per_mapping[mapping])
        else:
            work += int(counts.sum()) * lowering.windows * (1 if cost is None else cost)
    return -(-work // (lowering.filters * lowering.lanes * W))


def _run(model, offsets, precision):
    """The layer's output through the tile: each row's weights times the activations it reads,
    each activation reconstructed from ``precision(tile) -> [nW, R]`` bit planes (``None``: the
    bit-parallel datapath, no reconstruction)."""
    lowering = model.lowering
    K = lowering.output_shape[0]
    out = np.zeros((K, lowering.windows), dtype=np.int64)
    for tile in range(lowering.tiles):
        sched = model.schedule(tile, offsets)
        rows = model.act_rows(lowering.tile_mapping[tile])  # [nW, T, N]
        padded = np.zeros((rows.shape[0], sched.steps + sched.lookahead, lowering.lanes),
                          dtype=np.int64)
        padded[:, :sched.steps] = rows
        steps, lanes = sched.read_positions()
        R, F, N = sched.weight.shape
        per_offset = np.zeros((sched.lookahead + 1, R, N, F), dtype=np.int64)
        np.add.at(per_offset, (steps - sched.step[:, None, None],
                               np.broadcast_to(np.arange(R)[:, None, None], steps.shape), lanes,
                               np.broadcast_to(np.arange(F)[None, :, None], steps.shape)),
                  sched.weight)
        p = None if precision is None else precision(tile)
        result = np.zeros((rows.shape[0], F), dtype=np.int64)
        for dt in range(sched.lookahead + 1):
            if not per_offset[dt].any():
                continue
            acts = padded[:, sched.step + dt, :]  # [nW, R, N]
            if p is not None:
                acts = tcl.bit_serial_value(acts, p[:, :, None], signed=model.signed)
            result += tcl._exact_matmul(acts.reshape(len(acts), R * N),
                                        per_offset[dt].reshape(R * N, F))
        filters = lowering.tile_filters[tile]
        out[filters[filters >= 0]] = result[:, filters >= 0].T
    return out.reshape(lowering.output_shape)


# baseline -------------------------------------------------------------------------------------

def _baseline_cycles(layer, *, filters=16, lanes=16, windows=None):
    model, W = _tile(layer, filters, lanes, windows, serial=False)
    return _parallel_cycles(model, (), W)


def _baseline_ideal(layer, *, filters=16, lanes=16, windows=None):
    model, W = _tile(layer, filters, lanes, windows, serial=False)
    return _ideal(model, W, nonzero=False, cost=None)


def _baseline_output(layer, *, filters=16, lanes=16, windows=None):
    model, _ = _tile(layer, filters, lanes, windows, serial=False)
    return _run(model, (), None)


# stripes --------------------------------------------------------------------------------------

def _stripes_precision(model, layer, precision):
    needed = model.layer_precision()
    if precision is None:
        return needed
    return check_int("precision", precision, needed, int(layer.act_bits))


def _stripes_cycles(layer, *, filters=16, lanes=16, windows=None, precision=None):
    model, W = _tile(layer, filters, lanes, windows, serial=True)
    P = _stripes_precision(model, layer, precision)
    return _parallel_cycles(model, (), W) * P


def _stripes_ideal(layer, *, filters=16, lanes=16, windows=None, precision=None):
    model, W = _tile(layer, filters, lanes, windows, serial=True)
    return _ideal(model, W, nonzero=False, cost=_stripes_precision(model, layer, precision))


def _stripes_output(layer, *, filters=16, lanes=16, windows=None, precision=None):
    model, _ = _tile(layer, filters, lanes, windows, serial=True)
    P = _stripes_precision(model, layer, precision)
    return _run(model, (), lambda tile: np.full(
        (model.lowering.windows, model.lowering.steps), P, dtype=np.int64))


# dstripes -------------------------------------------------------------------------------------

def _dstripes_cycles(layer, *, filters=16, lanes=16, windows=None):
    model, W = _tile(layer, filters, lanes, windows, serial=True)
    return _serial_cycles(model, (), W, 0)


def _dstripes_ideal(layer, *, filters=16, lanes=16, windows=None):
    model, W = _tile(layer, filters, lanes, windows, serial=True)
    return _ideal(model, W, nonzero=False, cost="dynamic")


def _dstripes_output(layer, *, filters=16, lanes=16, windows=None):
    model, _ = _tile(layer, filters, lanes, windows, serial=True)
    return _run(model, (), lambda tile: model.row_precision(tile, ()))


# wskip ----------------------------------------------------------------------------------------

def _wskip_cycles(layer, *, filters=16, lanes=16, windows=None, pattern="T<2,5>"):
    model, W = _tile(layer, filters, lanes, windows, serial=False)
    return _parallel_cycles(model, _offsets(pattern, lanes), W)


def _wskip_ideal(layer, *, filters=16, lanes=16, windows=None, pattern="T<2,5>"):
    model, W = _tile(layer, filters, lanes, windows, serial=False)
    _offsets(pattern, lanes)
    return _ideal(model, W, nonzero=True, cost=None)


def _wskip_output(layer, *, filters=16, lanes=16, windows=None, pattern="T<2,5>"):
    model, _ = _tile(layer, filters, lanes, windows, serial=False)
    return _run(model, _offsets(pattern, lanes), None)


# tclp -----------------------------------------------------------------------------------------

def _tclp_cycles(layer, *, filters=16, lanes=16, windows=None, pattern="T<2,5>", run_ahead=0):
    model, W = _tile(layer, filters, lanes, windows, serial=True)
    run_ahead = check_int("run_ahead", run_ahead, 0, 1 << 16)
    return _serial_cycles(model, _offsets(pattern, lanes), W, run_ahead)


def _tclp_ideal(layer, *, filters=16, lanes=16, windows=None, pattern="T<2,5>", run_ahead=0):
    model, W = _tile(layer, filters, lanes, windows, serial=True)
    _offsets(pattern, lanes)
    check_int("run_ahead", run_ahead, 0, 1 << 16)
    return _ideal(model, W, nonzero=True, cost="dynamic")


def _tclp_output(layer, *, filters=16, lanes=16, windows=None, pattern="T<2,5>", run_ahead=0):
    model, _ = _tile(layer, filters, lanes, windows, serial=True)
    offsets = _offsets(pattern, lanes)
    check_int("run_ahead", run_ahead, 0, 1 << 16)
    return _run(model, offsets, lambda tile: model.row_precision(tile, offsets))


register(Design("baseline", "bit-parallel, dense: 16 filters x 16 lanes, one window per cycle "
                "(DaDianNao-like)", _baseline_cycles, _baseline_ideal, _baseline_output))
register(Design("stripes", "bit-serial activations at one per-layer precision, act_bits "
                "windows (Stripes-like)", _stripes_cycles, _stripes_ideal, _stripes_output))
register(Design("dstripes", "bit-serial activations at per-row dynamic precision, columns in "
                "lock-step (Dynamic Stripes)", _dstripes_cycles, _dstripes_ideal,
                _dstripes_output))
register(Design("wskip", "TCL weight skipping (T<2,5> static schedule) on the bit-parallel "
                "back end", _wskip_cycles, _wskip_ideal, _wskip_output))
register(Design("tclp", "TCLp: T<2,5> weight skipping + dynamic-precision bit-serial "
                "activations, act_bits windows in lock-step", _tclp_cycles, _tclp_ideal,
                _tclp_output))
