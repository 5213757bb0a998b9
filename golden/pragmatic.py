"""Term-serial designs: Pragmatic and TCLe (Bit-Tactical's term-serial back end), cycle-exact.

Both designs process activations as *terms* (signed powers of two, `golden.terms`) one term per
lane per cycle, LSB first, with bit-parallel weights. They run on the tile and lowering of
:mod:`golden.tcl` (see :mod:`golden.designs` for the lane mapping): F filter lanes x N weight
lanes per column, W columns (windows). This module registers the designs ``pragmatic`` and
``tcle`` in :data:`golden.designs.DESIGNS`.

The processing element (PE) and its cycles
------------------------------------------
A PE is one (filter, window) pair; per schedule row it receives the N activations its N slots
read and adds ``sum_l sign * (w_l << position)`` for one term of each lane per cycle. The
*two-stage shifter* (Pragmatic; spec section 1.5): a per-lane first-stage shifter covers
``2**L1`` positions above a per-PE *base*, the smallest pending term position of the PE; the
adder tree sums the lanes and one shared second-stage shifter shifts the sum by the base. So a
lane whose next term lies outside ``base .. base + 2**L1 - 1`` waits. Per row (DNNsim
``BitPragmatic::process_pe``)::

    cycles = 0
    while some lane has a term left:
        base = smallest next-term position over the lanes
        every lane whose next term is <= base + 2**L1 - 1 consumes it
        cycles += 1
    row cycles = max(cycles, 1)          # a row without any term still takes one cycle

``first_stage_bits`` (L1, default 2: shifts 0..3) sets the window; ``None`` turns the window
off (every lane consumes a term each cycle: row cycles = ``max(1, most terms in one lane)``).

A lane's terms are those of `golden.terms.encode_terms` with ``width = act_bits`` under the
option ``encoding``: ``"booth"`` (DNNsim's Booth-like encoding, the default: it is what the
authors' public simulator models), ``"naf"`` (canonical signed digit, the fewest terms) or
``"binary"`` (Pragmatic's plain one-offsets). Negative activations are sign-magnitude (each
term's sign flipped), as in `golden.terms`.

Designs (options in brackets, defaults after ``=``)
---------------------------------------------------
``pragmatic`` [filters=16, lanes=16, windows=act_bits, encoding="booth", first_stage_bits=2,
run_ahead=0]
    Dense rows (no weight skipping); weights are not inspected, so every lane's activation is
    processed whatever its weight (a padding lane's activation is 0: no term). All F PEs of a
    column read the same N activations, so a column's row cost is the PE cost of that N-lane
    group.
``tcle`` [the same, plus pattern="T<2,5>"]
    The TCL front end (:func:`golden.tcl.schedule`) on the term-serial back end: PE ``(f, w)`` at
    row ``r`` takes, per slot, the activation its select reads (``Schedule.read_positions``);
    a slot whose weight is zero (a hole) contributes no terms (its term list is empty: the
    schedule marks it, so the hardware loads nothing for it). A column's row cost is the largest
    of its F PEs' costs.

Columns: with ``run_ahead=0`` all W columns run in lock-step, each row costing the largest of
the columns' row costs (the RTL); ``run_ahead=A`` lets a column run up to A rows ahead
(:func:`golden.tcl.pass_cycles`). Passes (filter tile x chunk of W windows) run one after the
other; a missing window of the last chunk costs 1 per row. FC layers have one window (one
column works).

Ideal cycles (terms only, no synchronization or window losses): ``ceil(work / (F * N * W))``
where work = the sum, over the MACs the design processes (``pragmatic``: every MAC of the
layer, padding included, ``layer.macs``; ``tcle``: every MAC with a non-zero weight), of the
activation's term count. ``achieved / ideal = ideal / cycles``.

:func:`loss_breakdown` gives, for one layer, the cycles with each loss switched off in the
model: no first-stage window (``first_stage_bits=None``), no synchronization (every PE runs its
own rows back to back: a pass costs the largest per-PE sum), and neither.
"""

import functools
import weakref

import numpy as np

from golden import designs, tcl
from golden.terms import encode_terms
from hw.params import check_bool, check_int, parse_pattern

__all__ = ["term_masks", "pe_cycles", "row_costs", "schedule_cycles", "pragmatic_cycles",
           "tcle_cycles", "pragmatic_ideal", "tcle_ideal", "term_serial_output", "loss_breakdown",
           "ENCODINGS", "DEFAULT_ENCODING", "DEFAULT_FIRST_STAGE_BITS"]

#: encodings the designs accept
ENCODINGS = ("booth", "naf", "binary")
DEFAULT_ENCODING = "booth"
DEFAULT_FIRST_STAGE_BITS = 2
# Process at most this many PE lanes at once (bounds the temporary arrays).
_CHUNK = 1 << 22
# per tcl.LayerModel (itself cached per layer): row costs by (tile, offsets, encoding, L1)
_COSTS = weakref.WeakKeyDictionary()


def _check_encoding(encoding):
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}, not {encoding!r}")
    return encoding


def _check_first_stage(first_stage_bits):
    if first_stage_bits is None:
        return None
    return check_int("first_stage_bits", first_stage_bits, 0, 4)


@functools.cache
def _mask_table(encoding, width, signed):
    """``uint32 [2**width]``: the term-position mask of every value, indexed by ``v - min``."""
    low = -(1 << (width - 1)) if signed else 0
    values = np.arange(low, low + (1 << width), dtype=np.int64)
    _, position, _ = encode_terms(values, encoding=encoding, width=width)
    valid = position >= 0
    masks = np.bitwise_or.reduce(
        np.where(valid, np.uint32(1) << np.maximum(position, 0).astype(np.uint32),
                 np.uint32(0)), axis=-1) if position.shape[-1] else np.zeros(values.shape,
                                                                             np.uint32)
    masks = masks.astype(np.uint32)
    masks.flags.writeable = False
    return masks, low


def term_masks(values, *, encoding, width, signed):
    """Return the term-position mask (``uint32``, bit ``k``: a term at position ``k``) of each
    ``width``-bit signed/unsigned activation in ``values`` under ``encoding``."""
    _check_encoding(encoding)
    width = check_int("width", width, 1, 16)
    table, low = _mask_table(encoding, width, bool(signed))
    values = np.asarray(values, dtype=np.int64)
    if values.size and (values.min() < low or values.max() >= low + (1 << width)):
        raise ValueError(f"values must fit {width}-bit {'signed' if signed else 'unsigned'} "
                         f"activations")
    return table[values - low]


def pe_cycles(masks, *, first_stage_bits=DEFAULT_FIRST_STAGE_BITS):
    """Return the cycles of each PE from its lanes' term masks.

    Parameters
    ----------
    masks : uint32 array ``[..., N]``
        Per PE (leading axes) and lane (last axis), the positions of the lane's terms.
    first_stage_bits : int 0..4 or None
        L1: a lane consumes its next term in a cycle only if it lies within ``2**L1`` positions
        of the PE's smallest pending position; None: no window.

    Returns
    -------
    int64 array ``masks.shape[:-1]``: the module docstring's per-row cycles (at least 1).
    """
    first_stage_bits = _check_first_stage(first_stage_bits)
    masks = np.asarray(masks, dtype=np.uint32)
    shape = masks.shape[:-1]
    lanes = masks.shape[-1]
    flat = masks.reshape(-1, lanes)
    if first_stage_bits is None:
        counts = np.bitwise_count(flat).max(axis=1, initial=0) if lanes else \
            np.zeros(len(flat), np.int64)
        return np.maximum(counts.astype(np.int64), 1).reshape(shape)
    one = np.uint64(1)
    span = np.uint64((1 << (1 << first_stage_bits)) - 1)  # 2**L1 ones
    cycles = np.ones(len(flat), dtype=np.int64)
    active = np.flatnonzero(flat.any(axis=1))
    pending = flat[active].astype(np.uint64)  # 17 positions + a 16-position window fit
    cycles[active] = 0
    while active.size:
        union = np.bitwise_or.reduce(pending, axis=1)
        base = union & (~union + one)                       # lowest pending position, one-hot
        window = base * span                                # base .. base + 2**L1 - 1
        lowest = pending & (~pending + one)
        pending ^= np.where((lowest & window[:, None]) != 0, lowest, np.uint64(0))
        cycles[active] += 1
        alive = pending.any(axis=1)
        if not alive.all():
            active, pending = active[alive], pending[alive]
    return cycles.reshape(shape)


def _masks_of(layer, encoding):
    return functools.partial(term_masks, encoding=_check_encoding(encoding),
                             width=int(layer.act_bits), signed=bool(layer.act_signed))


def _options(layer, filters, lanes, windows, encoding, first_stage_bits, run_ahead):
    filters = check_int("filters", filters, 1, 4096)
    lanes = check_int("lanes", lanes, 1, 4096)
    windows = int(layer.act_bits) if windows is None else check_int("windows", windows, 1,
                                                                    4096)
    _check_encoding(encoding)
    first_stage_bits = _check_first_stage(first_stage_bits)
    run_ahead = check_int("run_ahead", run_ahead, 0, 1 << 16)
    return tcl.layer_model(layer, filters=filters, lanes=lanes), windows, first_stage_bits, \
        run_ahead


def row_costs(layer, tile, *, offsets, encoding=DEFAULT_ENCODING,
              first_stage_bits=DEFAULT_FIRST_STAGE_BITS, filters=16, lanes=16, per_pe=False):
    """Return the cycles of every row of filter tile ``tile`` in every window.

    ``offsets`` ``None`` is Pragmatic (dense rows, weights ignored, one cost per column);
    a tuple is TCLe with that pattern's schedule (zero-weight slots have no terms; ``()`` is
    the TCLe back end without weight skipping, the TCLe tile with pattern ``"none"``). Returns int64
    ``[nW, R]`` (the largest PE of each column), or ``[nW, R, F]`` with ``per_pe`` (TCLe; for
    Pragmatic every PE of a column has the column's cost, returned broadcast).
    """
    model = tcl.layer_model(layer, filters=filters, lanes=lanes)
    masks_of = _masks_of(layer, encoding)
    cache = _COSTS.setdefault(model, {})
    key = (tile if offsets is not None else int(model.lowering.tile_mapping[tile]), offsets,
           encoding,
           first_stage_bits)
    if key not in cache:
        cache[key] = _row_costs(model, tile, offsets, masks_of, first_stage_bits)
    costs = cache[key]  # [nW, R, F or 1]
    if per_pe:
        return np.broadcast_to(costs, costs.shape[:2] + (model.lowering.filters,))
    return costs.max(axis=2)


def _row_costs(model, tile, offsets, masks_of, first_stage_bits):
    lowering = model.lowering
    rows = model.act_rows(lowering.tile_mapping[tile])  # [nW, T, N]
    nW = rows.shape[0]
    if offsets is None:
        masks = masks_of(rows)  # [nW, T, N]
        return pe_cycles(masks, first_stage_bits=first_stage_bits)[:, :, None]
    return _schedule_pe_costs(model.schedule(tile, offsets), masks_of(rows), first_stage_bits)


def _schedule_pe_costs(sched, masks, first_stage_bits, gate_zero_weights=True):
    """``[W, R, F]`` PE costs of ``sched`` on the term masks ``[W, T, N]`` of W windows; with
    ``gate_zero_weights`` a slot whose weight is zero has no terms."""
    steps, lanes = sched.read_positions()  # [R, F, N]
    R, F, N = sched.weight.shape
    nW = masks.shape[0]
    padded = np.zeros((nW, sched.steps + sched.lookahead, N), dtype=masks.dtype)
    padded[:, :sched.steps] = masks  # positions at a step >= T read zero
    gate = np.where((sched.weight != 0) | (not gate_zero_weights), np.uint32(0xFFFFFFFF),
                    np.uint32(0))  # [R, F, N]
    out = np.empty((nW, R, F), dtype=np.int64)
    per_window = max(1, _CHUNK // max(1, R * F * N))
    for start in range(0, nW, per_window):
        block = padded[start:start + per_window][:, steps, lanes] & gate  # [w, R, F, N]
        out[start:start + per_window] = pe_cycles(block, first_stage_bits=first_stage_bits)
    return out


def schedule_cycles(sched, acts, *, encoding, act_width, act_signed,
                    first_stage_bits=DEFAULT_FIRST_STAGE_BITS, run_ahead=0,
                    gate_zero_weights=True):
    """Return the TCLe cycles of one pass: what the TCLe tile's cycle counter counts per pass
    (`hw.term_serial.TCLeTile`).

    ``sched`` is a :class:`golden.tcl.Schedule` and ``acts [W, T, N]`` the pass's activation
    rows (a missing window: zeros). A column's row cost is the largest of its F PEs' costs;
    ``run_ahead = 0`` (lock-step) gives ``sum_r max_(w, f)`` PE cost, ``run_ahead = A`` the
    `golden.tcl.pass_cycles` recurrence. ``gate_zero_weights=False`` processes the terms of
    activations paired with zero weights too (Pragmatic, with pattern ``"none"``).
    """
    acts = np.asarray(acts, dtype=np.int64)
    masks = term_masks(acts, encoding=encoding, width=act_width, signed=act_signed)
    costs = _schedule_pe_costs(sched, masks, _check_first_stage(first_stage_bits),
                               check_bool("gate_zero_weights", gate_zero_weights))
    return int(tcl.pass_cycles(costs.max(axis=2)[None], run_ahead=run_ahead)[0])


def tile_design(params):
    """Return ``(name, options)`` of the registered design that a TCLe tile configured by
    ``params`` (a `hw.params.TCLeTileParams`) implements: ``pragmatic`` when it does not gate
    zero weights (pattern ``"none"``), else ``tcle``; the options are the design's keyword
    arguments (``designs.get_design(name).cycles(layer, **options)``)."""
    options = dict(filters=params.filters, lanes=params.lanes, windows=params.windows,
                   encoding=params.encoding, first_stage_bits=params.first_stage_bits,
                   run_ahead=params.run_ahead)
    if params.gate_zero_weights:
        return "tcle", {**options, "pattern": params.pattern}
    return "pragmatic", options


def _chunked(costs, W):
    """``[nW, R]`` -> ``[passes, W, R]``; missing windows of the last chunk cost 1 per row."""
    nW, R = costs.shape
    chunks = -(-nW // W)
    padded = np.ones((chunks * W, R), dtype=np.int64)
    padded[:nW] = costs
    return padded.reshape(chunks, W, R)


def _cycles(layer, offsets, filters, lanes, windows, encoding, first_stage_bits, run_ahead):
    model, W, first_stage_bits, run_ahead = _options(layer, filters, lanes, windows, encoding,
                                                     first_stage_bits, run_ahead)
    total = 0
    for tile in range(model.lowering.tiles):
        costs = row_costs(layer, tile, offsets=offsets, encoding=encoding,
                          first_stage_bits=first_stage_bits, filters=filters, lanes=lanes)
        total += int(tcl.pass_cycles(_chunked(costs, W), run_ahead=run_ahead).sum())
    return total


def _ideal(layer, offsets, filters, lanes, windows, encoding):
    model, W, _, _ = _options(layer, filters, lanes, windows, encoding, None, 0)
    lowering = model.lowering
    masks_of = _masks_of(layer, encoding)
    work = 0
    terms = {}
    for tile in range(lowering.tiles):
        mapping = int(lowering.tile_mapping[tile])
        if mapping not in terms:  # [T, N]: terms summed over the windows
            terms[mapping] = np.bitwise_count(masks_of(model.act_rows(mapping))).astype(
                np.int64).sum(axis=0)
        if offsets is not None:
            macs = (model.dense_rows(tile) != 0).sum(axis=1)  # [T, N]
        else:
            macs = lowering.valid_slots(tile).sum(axis=1)
        work += int((macs * terms[mapping]).sum())
    return -(-work // (lowering.filters * lowering.lanes * W))


def pragmatic_cycles(layer, *, filters=16, lanes=16, windows=None, encoding=DEFAULT_ENCODING,
                     first_stage_bits=DEFAULT_FIRST_STAGE_BITS, run_ahead=0):
    """Cycles of ``pragmatic`` on ``layer`` (module docstring)."""
    return _cycles(layer, None, filters, lanes, windows, encoding, first_stage_bits, run_ahead)


def tcle_cycles(layer, *, filters=16, lanes=16, windows=None, encoding=DEFAULT_ENCODING,
                first_stage_bits=DEFAULT_FIRST_STAGE_BITS, run_ahead=0, pattern="T<2,5>"):
    """Cycles of ``tcle`` on ``layer`` (module docstring)."""
    offsets = parse_pattern(pattern, lanes=check_int("lanes", lanes, 1, 4096))
    return _cycles(layer, offsets, filters, lanes, windows, encoding, first_stage_bits,
                   run_ahead)


def pragmatic_ideal(layer, *, filters=16, lanes=16, windows=None, encoding=DEFAULT_ENCODING,
                    first_stage_bits=DEFAULT_FIRST_STAGE_BITS, run_ahead=0):
    """Ideal (terms-only) cycles of ``pragmatic`` (module docstring)."""
    _check_first_stage(first_stage_bits)
    check_int("run_ahead", run_ahead, 0, 1 << 16)
    return _ideal(layer, None, filters, lanes, windows, encoding)


def tcle_ideal(layer, *, filters=16, lanes=16, windows=None, encoding=DEFAULT_ENCODING,
               first_stage_bits=DEFAULT_FIRST_STAGE_BITS, run_ahead=0, pattern="T<2,5>"):
    """Ideal (terms-only) cycles of ``tcle`` (module docstring)."""
    offsets = parse_pattern(pattern, lanes=check_int("lanes", lanes, 1, 4096))
    _check_first_stage(first_stage_bits)
    check_int("run_ahead", run_ahead, 0, 1 << 16)
    return _ideal(layer, offsets, filters, lanes, windows, encoding)


def term_serial_output(layer, *, offsets=(), filters=16, lanes=16, encoding=DEFAULT_ENCODING):
    """Return the layer's output as the term-serial tile computes it (int64, the layer's
    output shape): for every term slot ``s`` (LSB first), each schedule row adds its weights
    times the ``s``-th term (``sign * 2**position``, 0 when a lane has fewer terms) of the
    activation each slot reads (:func:`golden.tcl.execute`); the sum over slots is the output."""
    model = tcl.layer_model(layer, filters=check_int("filters", filters, 1, 4096),
                            lanes=check_int("lanes", lanes, 1, 4096))
    _check_encoding(encoding)
    lowering = model.lowering
    out = np.zeros((lowering.output_shape[0], lowering.windows), dtype=np.int64)
    for tile in range(lowering.tiles):
        sched = model.schedule(tile, offsets)
        rows = model.act_rows(lowering.tile_mapping[tile])  # [nW, T, N]
        sign, position, _ = encode_terms(rows, encoding=encoding, width=int(layer.act_bits))
        result = np.zeros((sched.weight.shape[1], rows.shape[0]), dtype=np.int64)
        for slot in range(sign.shape[-1]):
            term = sign[..., slot].astype(np.int64) << np.maximum(position[..., slot], 0)
            result += tcl.execute(sched, term)
        filters_ = lowering.tile_filters[tile]
        out[filters_[filters_ >= 0]] = result[filters_ >= 0]
    return out.reshape(lowering.output_shape)


def _pragmatic_output(layer, *, filters=16, lanes=16, windows=None, encoding=DEFAULT_ENCODING,
                      first_stage_bits=DEFAULT_FIRST_STAGE_BITS, run_ahead=0):
    _options(layer, filters, lanes, windows, encoding, first_stage_bits, run_ahead)
    return term_serial_output(layer, filters=filters, lanes=lanes, encoding=encoding)


def _tcle_output(layer, *, filters=16, lanes=16, windows=None, encoding=DEFAULT_ENCODING,
                 first_stage_bits=DEFAULT_FIRST_STAGE_BITS, run_ahead=0, pattern="T<2,5>"):
    offsets = parse_pattern(pattern, lanes=check_int("lanes", lanes, 1, 4096))
    _options(layer, filters, lanes, windows, encoding, first_stage_bits, run_ahead)
    return term_serial_output(layer, offsets=offsets, filters=filters, lanes=lanes,
                              encoding=encoding)


def loss_breakdown(layer, *, design="tcle", filters=16, lanes=16, windows=None,
                   encoding=DEFAULT_ENCODING, first_stage_bits=DEFAULT_FIRST_STAGE_BITS,
                   run_ahead=0, pattern="T<2,5>"):
    """Return the cycles of ``design`` ("pragmatic" or "tcle") on ``layer`` with each loss
    switched off in the model.

    Returns a dict: ``cycles`` (the design as configured), ``no_window`` (first-stage window
    off), ``no_sync`` (no synchronization: each pass costs the largest per-PE sum of row costs,
    every PE running its rows back to back), ``no_window_no_sync`` and ``ideal``.
    """
    if design not in ("pragmatic", "tcle"):
        raise ValueError(f"design must be 'pragmatic' or 'tcle', not {design!r}")
    offsets = None if design == "pragmatic" else parse_pattern(
        pattern, lanes=check_int("lanes", lanes, 1, 4096))
    model, W, first_stage_bits, run_ahead = _options(layer, filters, lanes, windows, encoding,
                                                     first_stage_bits, run_ahead)
    result = {}
    for name, l1 in (("", first_stage_bits), ("no_window", None)):
        synced = unsynced = 0
        for tile in range(model.lowering.tiles):
            costs = row_costs(layer, tile, offsets=offsets, encoding=encoding,
                              first_stage_bits=l1, filters=filters, lanes=lanes, per_pe=True)
            nW, R, F = costs.shape
            synced += int(tcl.pass_cycles(_chunked(costs.max(axis=2), W),
                                          run_ahead=run_ahead).sum())
            per_pe = costs.sum(axis=1)  # [nW, F]
            chunks = -(-nW // W)
            padded = np.full((chunks * W, F), R, dtype=np.int64)
            padded[:nW] = per_pe
            unsynced += int(padded.reshape(chunks, -1).max(axis=1).sum())
        result["cycles" if not name else name] = synced
        result["no_sync" if not name else "no_window_no_sync"] = unsynced
    result["ideal"] = _ideal(layer, offsets, filters, lanes, windows, encoding)
    return result


designs.register(designs.Design(
    "pragmatic", "Pragmatic: term-serial activations (DNNsim Booth terms, 2-bit first-stage "
    "shift window), dense, act_bits windows in lock-step", pragmatic_cycles, pragmatic_ideal,
    _pragmatic_output))
designs.register(designs.Design(
    "tcle", "TCLe: T<2,5> weight skipping + term-serial activations (DNNsim Booth terms, 2-bit "
    "first-stage window), act_bits windows in lock-step", tcle_cycles, tcle_ideal,
    _tcle_output))
