"""Bit-Tactical (TCL) tile golden model: lowering, static weight scheduler, execution, precision.

This is the golden side of ``docs/tcl-contract.md``. numpy only.

Lowering (:func:`lower`)
------------------------
A layer is cut into *filter tiles* of ``F`` filters and, per output window, ``T`` *steps* of
``N`` lanes, in the order of :mod:`golden.designs`' docstring: windows ``(oy, ox)`` row-major;
steps = kernel position ``(r, s)`` row-major (``r`` outer), then channel blocks of ``N`` lanes
(a partial block zero-padded). Group ``g`` of a grouped convolution has ``ceil((K/groups)/F)``
tiles of consecutive filters reading channels ``g*C/groups + c``. A depthwise layer (``groups >
1`` and ``C/groups == 1``) is mapped diagonally: a tile holds ``F' = min(F, N)`` consecutive
filters ``k0..k0+F'-1`` and lane ``i`` carries filter ``k0+i``'s channel (filter ``k0+i``'s
only weight sits in lane ``i``), ``T = R*S``. An FC layer is one window with ``R = S = 1``.
*Dense weight rows* of a tile: int64 ``[T, F, N]`` (unused filters: zero rows). *Activation rows*
of a window: int64 ``[T, N]`` (padding pixels and unused lanes are zeros). ``act_zero_point``
must be 0 (the tile multiplies the stored codes).

Schedule (:func:`schedule`, :class:`Schedule`)
----------------------------------------------
The greedy scheduler of spec section 1.3 for a *pattern* of promotion offsets ``(dt, dl)``
(:func:`hw.params.parse_pattern`; select index ``k >= 1`` is ``offsets[k-1]``, 0 is the slot's own
position; ``h`` = the largest ``dt``). Rows ``t = 0..T-1`` in order:

1. *Skip check before filling*: if fewer than ``h`` rows have been skipped in a row and row ``t``
   is all zero in every filter (after the promotions already made), it is skipped.
2. Otherwise, each filter independently fills its zero slots (holes) of row ``t``: repeatedly,
   among the holes that have at least one candidate (a non-zero weight at ``(t+dt, (l+dl) mod N)``
   with ``t+dt < T``), take the hole with the fewest candidates (ties: lowest lane), and promote
   its first candidate in ``offsets`` order into it (the weight leaves a zero behind); stop when
   no hole has a candidate. The row is executed: ``skip`` = rows skipped just before it.
3. Trailing all-zero rows are skipped by the same rule. If that would leave no row at all (a tile
   whose every step is zero and ``T <= h``), the last step is executed anyway, so ``R >= 1``.

Only rows of later steps are ever read, and a weight in a future row always sits at its original
position, so every weight is promoted at most once. The weight in slot ``(f, l)`` of row ``r``
multiplies the activation at step ``step[r] + dt_k``, lane ``(l + dl_k) mod N`` of the same window
(``k = select``; steps ``>= T`` read zero). Zero slots have select 0. With pattern ``"none"``
(``h = 0``) the schedule is the dense rows, nothing skipped.

Precision (:func:`row_precision`)
---------------------------------
The precision of row ``r`` in window ``w`` is :func:`golden.precision.group_precision` of the set
of activation values the row's ``F x N`` slots read in that window (zero-weight slots read their
own position, select 0): minimal two's-complement width for signed activations (minimal unsigned
width otherwise), at least 1. A bit-serial tile spends ``p_r = max_w p(r, w)`` cycles on row ``r``
when its ``W`` columns run in lock-step; see :func:`pass_cycles` for run-ahead.

Per-layer evaluation of the design models lives in :mod:`golden.designs`; this module also
provides the cached per-layer machinery they use (:func:`layer_model`).
"""

import dataclasses
import hashlib
import weakref

import numpy as np

from golden.precision import bit_length, check_range
from hw.params import MAX_LOOKAHEAD, TileParams, check_int, parse_pattern

__all__ = ["Lowering", "lower", "Schedule", "schedule", "execute", "row_precision",
           "pass_cycles", "bit_serial_value", "Pass", "passes", "pack_act_rows", "layer_model",
           "LayerModel"]

# ---------------------------------------------------------------------------------------------
# Lowering
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, eq=False)
class Lowering:
    """How a layer maps onto an ``F x N`` tile (see the module docstring).

    Attributes
    ----------
    filters, lanes : F and N.
    steps : T, steps per window (``R * S * ceil((C/groups)/N)``; depthwise ``R * S``).
    windows : number of output windows (``OH * OW``; FC 1).
    tile_filters : int64 ``[tiles, F]``, the output channel of each filter lane (-1 unused).
    tile_mapping : int64 ``[tiles]``, index into ``mappings`` of each tile's lane mapping.
    mappings : list of int64 ``[B, N]`` arrays: the input channel each lane carries in each
        channel block (-1 = zero lane). Depthwise: one ``[1, N]`` mapping per tile.
    depthwise : the diagonal mapping is used.
    output_shape : the layer's output shape.
    """

    filters: int
    lanes: int
    steps: int
    windows: int
    tile_filters: np.ndarray
    tile_mapping: np.ndarray
    mappings: list
    depthwise: bool
    output_shape: tuple
    _weights: np.ndarray = dataclasses.field(repr=False)
    _padded: np.ndarray = dataclasses.field(repr=False)
    _geometry: tuple = dataclasses.field(repr=False)

    @property
    def tiles(self):
        """Number of filter tiles."""
        return len(self.tile_filters)

    def dense_rows(self, tile):
        """Return the dense weight rows ``[T, F, N]`` (int64) of filter tile ``tile``."""
        kernel, groups_c = self._geometry[0], self._geometry[1]
        filters = self.tile_filters[tile]
        channels = self.mappings[self.tile_mapping[tile]]  # [B, N]
        F, N = self.filters, self.lanes
        blocks = channels.shape[0]
        weights = self._weights  # [K, Cg, R*S] (fc: [K, C, 1])
        valid_f = filters >= 0
        k = np.where(valid_f, filters, 0)
        if self.depthwise:
            rows = np.zeros((kernel, F, N), dtype=np.int64)
            lanes = np.arange(F)
            diag = valid_f & (lanes < N)
            rows[:, lanes[diag], lanes[diag]] = weights[k[diag], 0, :].T
            return rows
        group = int(self.tile_mapping[tile])  # one mapping per convolution group
        local = np.where(channels >= 0, channels - group * groups_c, 0)  # [B, N]
        gathered = weights[k[:, None, None], local[None], :]  # [F, B, N, RS]
        valid = valid_f[:, None, None] & (channels >= 0)[None]
        gathered = np.where(valid[..., None], gathered, 0)
        return np.ascontiguousarray(gathered.transpose(3, 1, 0, 2).reshape(kernel * blocks, F, N))

    def valid_slots(self, tile):
        """Return ``[T, F, N]`` bool: the slot holds one of the layer's MACs (a real filter and a
        real channel, padding pixels included)."""
        filters = self.tile_filters[tile]
        channels = self.mappings[self.tile_mapping[tile]]
        kernel = self._geometry[0]
        if self.depthwise:
            lanes = np.arange(self.filters)
            valid = np.zeros((self.filters, self.lanes), dtype=bool)
            ok = (filters >= 0) & (lanes < self.lanes)
            valid[lanes[ok], lanes[ok]] = True
            return np.broadcast_to(valid, (kernel,) + valid.shape)
        valid = (filters >= 0)[None, :, None] & (channels >= 0)[:, None, :]  # [B, F, N]
        return np.broadcast_to(valid[None], (kernel,) + valid.shape).reshape(
            -1, self.filters, self.lanes)

    def act_rows(self, mapping, windows=None):
        """Return the activation rows ``[nW, T, N]`` (int64) of lane mapping ``mapping`` for all
        windows (or the window indices ``windows``)."""
        rows = self.step_major_rows(mapping).transpose(2, 0, 1)
        if windows is not None:
            rows = rows[np.asarray(windows, dtype=np.int64)]
        return np.ascontiguousarray(rows)

    def step_major_rows(self, mapping, *, extra_steps=0, magnitudes=False):
        """Return the activation rows of ``mapping`` step-major, ``[T + extra_steps, N, nW]``
        (the extra steps are zeros); with ``magnitudes``, the uint32 magnitudes of the values
        (``v`` or, signed and negative, ``~v``: bit length + signed = minimal width)."""
        channels = self.mappings[mapping]
        blocks, N = channels.shape
        padded = self._padded  # [C + 1, Hp, Wp], channel C is the zero lane
        picked = padded[np.where(channels < 0, padded.shape[0] - 1, channels)]  # [B, N, Hp, Wp]
        if magnitudes:
            picked = _magnitudes(picked, self._geometry[6])
        kernel, _, _, (R, S), (sh, sw), (OH, OW), _ = self._geometry
        out = np.zeros((kernel * blocks + extra_steps, N, OH * OW), dtype=picked.dtype)
        for index, (r, s) in enumerate((r, s) for r in range(R) for s in range(S)):
            out[index * blocks:(index + 1) * blocks].reshape(blocks, N, OH, OW)[...] = \
                picked[:, :, r:r + sh * (OH - 1) + 1:sh, s:s + sw * (OW - 1) + 1:sw]
        return out


def lower(layer, *, filters=16, lanes=16):
    """Return the :class:`Lowering` of ``layer`` (a :class:`golden.layers.Layer`) on an
    ``filters x lanes`` tile. ``ValueError`` if ``act_zero_point`` is not 0."""
    F = check_int("filters", filters, 1, 4096)
    N = check_int("lanes", lanes, 1, 4096)
    if int(layer.act_zero_point) != 0:
        raise ValueError(f"layer {layer.name!r}: act_zero_point must be 0 for the tile (it "
                         f"multiplies the stored codes), not {layer.act_zero_point}")
    weights = np.asarray(layer.weights, dtype=np.int64)
    acts = np.asarray(layer.activations, dtype=np.int64)
    K = weights.shape[0]
    if layer.kind == "fc":
        groups, Cg = 1, weights.shape[1]
        weights = weights[:, :, None]
        padded = np.zeros((acts.shape[0] + 1, 1, 1), dtype=np.int64)
        padded[:-1, 0, 0] = acts
        R = S = 1
        stride, out_hw = (1, 1), (1, 1)
        output_shape = (K,)
    else:
        groups, Cg = int(layer.groups), weights.shape[1]
        R, S = weights.shape[2:]
        weights = weights.reshape(K, Cg, R * S)
        top, bottom, left, right = (int(p) for p in layer.padding)
        C, H, W = acts.shape
        padded = np.zeros((C + 1, H + top + bottom, W + left + right), dtype=np.int64)
        padded[:C, top:top + H, left:left + W] = acts
        stride = tuple(int(s) for s in layer.stride)
        out_hw = tuple(layer.output_shape[1:])
        output_shape = tuple(layer.output_shape)
    Kg = K // groups
    depthwise = groups > 1 and Cg == 1
    if depthwise:
        per_tile = min(F, N)
        tiles = -(-K // per_tile)
        index = np.arange(tiles)[:, None] * per_tile + np.arange(F)[None]
        tile_filters = np.where((np.arange(F)[None] < per_tile) & (index < K), index, -1)
        lane_filter = np.arange(tiles)[:, None] * per_tile + np.arange(N)[None]
        ok = (np.arange(N)[None] < per_tile) & (lane_filter < K)
        mappings = [np.where(ok[t], lane_filter[t] // Kg, -1)[None] for t in range(tiles)]
        tile_mapping = np.arange(tiles)
        steps = R * S
    else:
        blocks = -(-Cg // N)
        offset = np.arange(blocks)[:, None] * N + np.arange(N)[None]
        per_group = -(-Kg // F)
        mappings = [np.where(offset < Cg, g * Cg + offset, -1) for g in range(groups)]
        index = np.arange(per_group)[:, None] * F + np.arange(F)[None]  # within a group
        tile_filters = np.concatenate(
            [np.where(index < Kg, g * Kg + index, -1) for g in range(groups)])
        tile_mapping = np.repeat(np.arange(groups), per_group)
        steps = R * S * blocks
    return Lowering(filters=F, lanes=N, steps=steps, windows=out_hw[0] * out_hw[1],
                    tile_filters=tile_filters.astype(np.int64),
                    tile_mapping=tile_mapping.astype(np.int64), mappings=mappings,
                    depthwise=depthwise, output_shape=output_shape, _weights=weights,
                    _padded=padded,
                    _geometry=(R * S, Cg, groups, (R, S), stride, out_hw,
                               bool(layer.act_signed)))


# ---------------------------------------------------------------------------------------------
# Scheduler
# ---------------------------------------------------------------------------------------------

def _offsets(pattern, lanes):
    if isinstance(pattern, tuple):
        text = ",".join(f"({dt},{dl})" for dt, dl in pattern) if pattern else "none"
        return parse_pattern(text, lanes=lanes)
    return parse_pattern(pattern, lanes=lanes)


@dataclasses.dataclass(frozen=True, eq=False)
class Schedule:
    """The schedule of one filter tile: what the tile's weight memory holds, row by row.

    Attributes
    ----------
    weight : int64 ``[R, F, N]``, the weight in each slot of each executed row.
    select : int64 ``[R, F, N]`` in ``0..len(offsets)``: 0 = own position, ``k`` = ``offsets[k-1]``.
    skip : int64 ``[R]`` in ``0..h``: all-zero rows skipped just before row ``r``.
    step : int64 ``[R]``: the original step ``t_r = t_{r-1} + 1 + skip_r`` (not stored in hardware).
    offsets : the pattern's offsets ``((dt, dl), ...)``.
    steps : T, the dense steps of the tile.
    """

    weight: np.ndarray
    select: np.ndarray
    skip: np.ndarray
    step: np.ndarray
    offsets: tuple
    steps: int

    @property
    def rows(self):
        """R, the executed rows."""
        return len(self.step)

    @property
    def lookahead(self):
        """h, the largest step offset of the pattern (0 for none)."""
        return max((dt for dt, _ in self.offsets), default=0)

    def read_positions(self):
        """Return ``(steps, lanes)``, int64 ``[R, F, N]`` each: the activation each slot reads."""
        dt = np.array([0] + [o[0] for o in self.offsets], dtype=np.int64)
        dl = np.array([0] + [o[1] for o in self.offsets], dtype=np.int64)
        N = self.weight.shape[2]
        return (self.step[:, None, None] + dt[self.select],
                (np.arange(N)[None, None, :] + dl[self.select]) % N)

    def pack(self, params):
        """Return the packed row words (``list[int]``, one per row) for ``params``.

        The layout is ``StructLayout({"weight": ArrayLayout(signed(weight_width), F*N),
        "select": ArrayLayout(unsigned(select_bits), F*N), "skip": unsigned(advance_bits)})``,
        fields LSB first, slot ``s = f*N + l``. ``ValueError`` if ``params`` (a
        :class:`hw.params.TileParams`) does not match the schedule (filters, lanes, pattern) or a
        weight does not fit ``weight_width``.
        """
        if not isinstance(params, TileParams):
            raise TypeError(f"params must be a TileParams, not {params!r}")
        R, F, N = self.weight.shape
        if (params.filters, params.lanes) != (F, N):
            raise ValueError(f"params has filters x lanes = {params.filters} x {params.lanes}, "
                             f"the schedule {F} x {N}")
        if tuple(params.offsets) != tuple(self.offsets):
            raise ValueError(f"params pattern {params.pattern!r} is not the schedule's "
                             f"offsets {self.offsets}")
        ww, sb = params.weight_width, params.select_bits
        check_range(self.weight, value_width=ww, signed=True, name="schedule weights")
        weight_mask = (1 << ww) - 1
        words = []
        slots = F * N
        for r in range(R):
            word = 0
            for s, (w, k) in enumerate(zip(self.weight[r].ravel().tolist(),
                                           self.select[r].ravel().tolist())):
                word |= (w & weight_mask) << (s * ww)
                word |= k << (slots * ww + s * sb)
            word |= int(self.skip[r]) << (slots * (ww + sb))
            words.append(word)
        return words


_SCHEDULE_CACHE = {}
_SCHEDULE_CACHE_LIMIT = 4096


def schedule(dense_rows, pattern="T<2,5>"):
    """Return the :class:`Schedule` of one filter tile's dense rows ``[T, F, N]``.

    ``pattern`` is a pattern string (:func:`hw.params.parse_pattern`) or a tuple of offsets.
    Implements the module docstring's greedy rules exactly; each filter's promotion loop is run
    for all filters at once (filters are independent). Results are memoized on the rows' bytes
    and the offsets (a network's images share their weights).
    """
    dense = np.asarray(dense_rows)
    if dense.ndim != 3 or 0 in dense.shape:
        raise ValueError(f"dense_rows must be a non-empty [T, F, N] array, not shape "
                         f"{dense.shape}")
    dense = check_range(dense, value_width=64, signed=True, name="dense_rows")
    T, F, N = dense.shape
    offsets = _offsets(pattern, N)
    key = (hashlib.blake2b(dense.tobytes(), digest_size=16).digest(), dense.shape, offsets)
    cached = _SCHEDULE_CACHE.get(key)
    if cached is not None:
        return cached
    result = _schedule(dense, offsets)
    if len(_SCHEDULE_CACHE) >= _SCHEDULE_CACHE_LIMIT:
        _SCHEDULE_CACHE.clear()
    _SCHEDULE_CACHE[key] = result
    return result


def _schedule(dense, offsets):
    T, F, N = dense.shape
    if not offsets:
        return Schedule(weight=dense.copy(), select=np.zeros_like(dense),
                        skip=np.zeros(T, dtype=np.int64), step=np.arange(T, dtype=np.int64),
                        offsets=offsets, steps=T)
    h = max(dt for dt, _ in offsets)
    K = len(offsets)
    work = np.zeros((T + h, F, N), dtype=np.int64)
    work[:T] = dense
    dts = np.array([dt for dt, _ in offsets], dtype=np.int64)
    source_lane = (np.arange(N)[None, :] + np.array([dl for _, dl in offsets])[:, None]) % N
    filter_index = np.arange(F)[None, :, None]
    rows_w, rows_s, skips, steps = [], [], [], []
    skipped = 0
    for t in range(T):
        if skipped < h and not work[t].any():
            skipped += 1
            continue
        select = np.zeros((F, N), dtype=np.int64)
        row = work[t]
        active = np.ones(F, dtype=bool)
        while True:
            holes = row == 0  # [F, N]
            holes &= active[:, None]
            if not holes.any():
                break
            # cand[k, f, l]: a non-zero weight waits at (t + dt_k, (l + dl_k) mod N) of filter f
            cand = work[t + dts[:, None, None], filter_index, source_lane[:, None, :]] != 0
            cand &= holes[None]
            count = cand.sum(axis=0)  # [F, N]
            fillable = count > 0
            active = fillable.any(axis=1)
            if not active.any():
                break
            fs = np.flatnonzero(active)
            lane = np.where(fillable, count, K + 1)[fs].argmin(axis=1)  # first lane of the min
            k = cand[:, fs, lane].argmax(axis=0)  # first candidate in offsets order
            tt, ll = t + dts[k], source_lane[k, lane]
            row[fs, lane] = work[tt, fs, ll]
            work[tt, fs, ll] = 0
            select[fs, lane] = k + 1
        rows_w.append(row.copy())
        rows_s.append(select)
        skips.append(skipped)
        steps.append(t)
        skipped = 0
    if not steps:  # every step is zero and T <= h: execute the last one so that R >= 1
        rows_w.append(work[T - 1].copy())
        rows_s.append(np.zeros((F, N), dtype=np.int64))
        skips.append(T - 1)
        steps.append(T - 1)
    return Schedule(weight=np.array(rows_w, dtype=np.int64),
                    select=np.array(rows_s, dtype=np.int64),
                    skip=np.array(skips, dtype=np.int64), step=np.array(steps, dtype=np.int64),
                    offsets=offsets, steps=T)


# ---------------------------------------------------------------------------------------------
# Execution and precision
# ---------------------------------------------------------------------------------------------

def _padded_rows(acts, schedule_):
    """``acts [W, T, N]`` with ``h`` zero steps appended (positions past T read zero)."""
    W, T, N = acts.shape
    padded = np.zeros((W, T + schedule_.lookahead, N), dtype=acts.dtype)
    padded[:, :T] = acts
    return padded


def _check_acts(acts, schedule_):
    acts = np.asarray(acts)
    if acts.ndim != 3 or acts.shape[1:] != (schedule_.steps, schedule_.weight.shape[2]):
        raise ValueError(f"acts must have shape [W, {schedule_.steps}, "
                         f"{schedule_.weight.shape[2]}], not {acts.shape}")
    return check_range(acts, value_width=64, signed=True, name="acts")


def execute(schedule_, acts):
    """Return the outputs ``[F, W]`` (int64) of running ``schedule_`` on activation rows
    ``acts [W, T, N]``: every slot's weight times the activation its select reads."""
    acts = _check_acts(acts, schedule_)
    padded = _padded_rows(acts, schedule_)
    steps, lanes = schedule_.read_positions()
    values = padded[:, steps, lanes]  # [W, R, F, N]
    return np.einsum("wrfn,rfn->fw", values, schedule_.weight)


def _union_mask(schedule_):
    """``[R, h+1, N]`` bool: the positions (step offset, lane) any slot of each row reads."""
    R, F, N = schedule_.weight.shape
    steps, lanes = schedule_.read_positions()
    mask = np.zeros((R, schedule_.lookahead + 1, N), dtype=bool)
    rows = np.broadcast_to(np.arange(R)[:, None, None], steps.shape)
    mask[rows, steps - schedule_.step[:, None, None], lanes] = True
    return mask


def _magnitudes(acts, signed):
    """Per value, a non-negative number whose bit length + signed is its minimal width (uint32:
    activations are at most 32 bits wide)."""
    return (np.where(acts < 0, ~acts, acts) if signed else acts).astype(np.uint32)


def _step_major(magnitudes, lookahead):
    """``[W, T, N]`` -> ``[T + lookahead, N, W]`` with zero steps appended (fast gathers and
    reductions over the lanes)."""
    W, T, N = magnitudes.shape
    out = np.zeros((T + lookahead, N, W), dtype=magnitudes.dtype)
    out[:T] = magnitudes.transpose(1, 2, 0)
    return out


def _width(largest, signed):
    return bit_length(largest) + 1 if signed else np.maximum(bit_length(largest), 1)


def row_precision(schedule_, acts, *, act_width, act_signed):
    """Return ``p [W, R]`` (int64): the precision of each row in each window (module docstring).

    ``acts [W, T, N]`` are the windows' activation rows; they must fit ``act_width``-bit signed
    or unsigned numbers (``act_width`` 1..32; ``ValueError`` otherwise).
    """
    act_width = check_int("act_width", act_width, 1, 32)
    acts = check_range(_check_acts(acts, schedule_), value_width=act_width, signed=act_signed,
                       name="acts")
    magnitudes = _step_major(_magnitudes(acts, act_signed), schedule_.lookahead)
    return _row_precision(schedule_, magnitudes, act_signed)


def _row_precision(schedule_, magnitudes, signed):
    """``row_precision`` on step-major magnitudes ``[T + h' (h' >= h), N, W]`` (no checks)."""
    mask = _union_mask(schedule_)
    largest = np.zeros((schedule_.rows, magnitudes.shape[2]), dtype=magnitudes.dtype)
    for dt in range(schedule_.lookahead + 1):
        used = mask[:, dt, :]  # [R, N]
        if not used.any():
            continue
        values = magnitudes[schedule_.step + dt]  # [R, N, W]
        if not used.all():
            values = values * used[:, :, None]
        np.maximum(largest, values.max(axis=1), out=largest)
    return _width(largest, signed).T


def pass_cycles(precision, *, run_ahead=0):
    """Return the bit-serial cycles of passes from their per-row precisions.

    ``precision`` is ``[P, W, R]`` (passes, windows, rows; pad missing windows with 1). With
    ``run_ahead = 0`` all ``W`` columns run in lock-step: ``cycles = sum_r max_w p``. With
    ``run_ahead = A > 0`` a column may start row ``r`` once it has finished row ``r-1`` and every
    column has finished row ``r-1-A`` (the shared weight buffer holds ``A+1`` rows):
    ``end[r][c] = max(end[r-1][c], max_c' end[r-1-A][c']) + p[c][r]``, and the pass takes
    ``max_c end[R-1][c]`` cycles. Passes never overlap. Returns int64 ``[P]``.
    """
    p = np.asarray(precision, dtype=np.int64)
    run_ahead = check_int("run_ahead", run_ahead, 0, 1 << 16)
    if run_ahead == 0:
        return p.max(axis=1).sum(axis=1)
    P, W, R = p.shape
    end = np.zeros((P, W), dtype=np.int64)
    finished = []  # finished[r]: [P], when every column has finished row r
    for r in range(R):
        if r - 1 - run_ahead >= 0:
            end = np.maximum(end, finished[r - 1 - run_ahead][:, None])
        end = end + p[:, :, r]
        finished.append(end.max(axis=1))
    return end.max(axis=1)


def bit_serial_value(values, precision, *, signed):
    """Return what a ``precision``-cycle bit-serial unit reconstructs from ``values``.

    Bits ``0 .. p-1`` are processed LSB first; signed, plane ``p-1`` is subtracted: the result is
    ``values`` reduced to ``p``-bit two's complement (unsigned: modulo ``2**p``). It equals
    ``values`` exactly when they fit ``p`` bits (a too-small precision changes them).
    """
    values = np.asarray(values, dtype=np.int64)
    p = np.asarray(precision, dtype=np.int64)
    low = values & ((np.int64(1) << p) - 1)
    if not signed:
        return low
    sign = np.int64(1) << (p - 1)
    return (low ^ sign) - sign


# ---------------------------------------------------------------------------------------------
# Per-layer machinery (shared by the design models of golden.designs)
# ---------------------------------------------------------------------------------------------

def _exact_matmul(a, b):
    """``a @ b`` in int64 (exact: the layer's declared widths bound every sum below 2**63)."""
    return np.asarray(a, dtype=np.int64) @ np.asarray(b, dtype=np.int64)


class LayerModel:
    """Lowering of one layer on one ``F x N`` tile, with the per-mapping and per-tile results the
    design models share (dense precisions, schedules, per-row precisions), computed on demand
    and kept. Obtain it with :func:`layer_model` (cached per layer object)."""

    def __init__(self, layer, filters, lanes):
        # no reference to the layer itself: it is the key of the weak cache in `layer_model`
        self._activations = layer.activations
        self.lowering = lower(layer, filters=filters, lanes=lanes)
        self.signed = bool(layer.act_signed)
        self._cache = {}

    def _get(self, key, compute):
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def act_rows(self, mapping):
        """``[nW, T, N]`` activation rows of a lane mapping."""
        return self._get(("acts", mapping), lambda: self.lowering.act_rows(mapping))

    def magnitudes(self, mapping):
        """``[T + 7, N, nW]`` step-major magnitudes (``_magnitudes``) of a mapping's activation
        rows, 7 (the largest lookahead) zero steps appended."""
        return self._get(("mag", mapping), lambda: self.lowering.step_major_rows(
            mapping, extra_steps=MAX_LOOKAHEAD, magnitudes=True))

    def dense_rows(self, tile):
        """``[T, F, N]`` dense weight rows of a filter tile."""
        return self._get(("dense", tile), lambda: self.lowering.dense_rows(tile))

    def schedule(self, tile, offsets):
        """The :class:`Schedule` of a filter tile for a tuple of offsets."""
        return self._get(("schedule", tile, offsets),
                         lambda: schedule(self.dense_rows(tile), offsets))

    def dense_precision(self, mapping):
        """``[nW, T]``: precision of the N lanes of each dense step of each window."""
        return self._get(("dense_p", mapping),
                         lambda: _width(self.magnitudes(mapping)[:self.lowering.steps]
                                        .max(axis=1), self.signed).T)

    def row_precision(self, tile, offsets):
        """``[nW, R]``: :func:`row_precision` of the tile's schedule in every window."""
        def compute():
            sched = self.schedule(tile, offsets)
            if not offsets:
                return self.dense_precision(self.lowering.tile_mapping[tile])
            return _row_precision(sched, self.magnitudes(self.lowering.tile_mapping[tile]),
                                  self.signed)
        return self._get(("row_p", tile, offsets), compute)

    def layer_precision(self):
        """The lossless width of the whole activation tensor (Stripes' per-layer precision)."""
        def compute():
            acts = np.asarray(self._activations, dtype=np.int64).ravel()
            return int(_width(_magnitudes(acts, self.signed).max(initial=0), self.signed))
        return self._get(("layer_p",), compute)


_MODELS = weakref.WeakKeyDictionary()


def layer_model(layer, *, filters=16, lanes=16):
    """Return the :class:`LayerModel` of ``layer`` on an ``F x N`` tile, cached per layer object
    (layers are treated as immutable; the cache entry goes when the layer is freed)."""
    filters = check_int("filters", filters, 1, 4096)
    lanes = check_int("lanes", lanes, 1, 4096)
    try:
        per_layer = _MODELS.setdefault(layer, {})
    except TypeError:  # not weak-referenceable: no caching
        return LayerModel(layer, filters, lanes)
    key = (filters, lanes)
    if key not in per_layer:
        per_layer[key] = LayerModel(layer, filters, lanes)
    return per_layer[key]


# ---------------------------------------------------------------------------------------------
# Passes: what the RTL testbench runs
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, eq=False)
class Pass:
    """One pass of the tile: a filter tile times a chunk of ``W`` windows, all steps.

    Attributes
    ----------
    tile, chunk : filter tile index and window chunk index.
    filters : int64 ``[F]`` output channels (-1 unused). windows : int64 ``[W]`` window indices
        (row-major ``oy*OW + ox``; -1 = missing window of a partial chunk, all-zero activations).
    schedule : the tile's :class:`Schedule`. dense_rows : int64 ``[T, F, N]``.
    acts : int64 ``[W, T, N]`` activation rows, window-major (the order the tile loads them).
    outputs : int64 ``[F, W]``, the results the tile must emit (window-major, filter-minor when
        flattened as ``outputs.T.ravel()``).
    cycles_bit_parallel : R. cycles_bit_serial : ``sum_r max_w p(r, w)`` (lock-step).
    """

    tile: int
    chunk: int
    filters: np.ndarray
    windows: np.ndarray
    schedule: Schedule
    acts: np.ndarray
    outputs: np.ndarray
    cycles_bit_parallel: int
    cycles_bit_serial: int
    dense_rows: np.ndarray


def passes(layer, params, *, max_windows=None):
    """Yield every :class:`Pass` of ``layer`` on the tile ``params`` (a ``TileParams``).

    Order: filter tiles outer, window chunks inner (a tile's schedule is loaded once and reused
    for its chunks). ``max_windows`` limits the run to the first windows (row-major) of the
    layer; the last chunk may then be partial. The layer must match the tile: same
    ``act_signed``, ``act_bits <= act_width``, ``weight_bits <= weight_width`` and ``T <=
    act_rows``; every schedule must fit ``weight_rows`` (``ValueError`` naming the parameter).
    """
    if not isinstance(params, TileParams):
        raise TypeError(f"params must be a TileParams, not {params!r}")
    if bool(layer.act_signed) != params.act_signed:
        raise ValueError(f"act_signed: the layer's activations are "
                         f"{'signed' if layer.act_signed else 'unsigned'}, the tile's are not")
    if layer.act_bits > params.act_width:
        raise ValueError(f"act_width {params.act_width} is narrower than the layer's act_bits "
                         f"{layer.act_bits}")
    if layer.weight_bits > params.weight_width:
        raise ValueError(f"weight_width {params.weight_width} is narrower than the layer's "
                         f"weight_bits {layer.weight_bits}")
    model = layer_model(layer, filters=params.filters, lanes=params.lanes)
    lowering = model.lowering
    if lowering.steps > params.act_rows:
        raise ValueError(f"act_rows {params.act_rows} is less than the layer's {lowering.steps} "
                         f"steps per window")
    total = lowering.windows
    if max_windows is not None:
        total = min(total, check_int("max_windows", max_windows, 1, 1 << 40))
    offsets = params.offsets
    W = params.windows
    for tile in range(lowering.tiles):
        sched = model.schedule(tile, offsets)
        if sched.rows > params.weight_rows:
            raise ValueError(f"weight_rows {params.weight_rows} is less than the {sched.rows} "
                             f"schedule rows of filter tile {tile}")
        rows = model.act_rows(lowering.tile_mapping[tile])
        for chunk in range(-(-total // W)):
            windows = chunk * W + np.arange(W)
            windows = np.where(windows < total, windows, -1)
            acts = np.zeros((W, lowering.steps, lowering.lanes), dtype=np.int64)
            acts[windows >= 0] = rows[windows[windows >= 0]]
            p = row_precision(sched, acts, act_width=params.act_width,
                              act_signed=params.act_signed)
            yield Pass(tile=tile, chunk=chunk, filters=lowering.tile_filters[tile].copy(),
                       windows=windows, schedule=sched, acts=acts,
                       outputs=execute(sched, acts), cycles_bit_parallel=sched.rows,
                       cycles_bit_serial=int(pass_cycles(p[None])[0]),
                       dense_rows=model.dense_rows(tile))


def pack_act_rows(acts, params):
    """Return the activation row words (``list[int]``) of ``acts [..., N]`` in order:
    ``ArrayLayout(signed/unsigned(act_width), N)``, lane 0 in the LSBs."""
    acts = check_range(np.asarray(acts), value_width=params.act_width,
                       signed=params.act_signed, name="acts")
    if acts.shape[-1] != params.lanes:
        raise ValueError(f"acts must have {params.lanes} lanes, not {acts.shape[-1]}")
    mask = (1 << params.act_width) - 1
    words = []
    for row in acts.reshape(-1, params.lanes).tolist():
        word = 0
        for lane, value in enumerate(row):
            word |= (value & mask) << (lane * params.act_width)
        words.append(word)
    return words
