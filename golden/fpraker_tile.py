"""The FPRaker tile for the boards: P FPRaker PEs in lock-step behind the integer tiles' host
interface (`hw.fpraker_tile.FPRakerTile`); results, cycles, row packing and layer passes.

A *pass* computes P dot products that share their A operand (the term-serial activations) and
differ in B (the weights): P filters at one output position. The host loads R *schedule rows*
(row ``r`` holds the N B values of set ``r`` of every PE, PE ``p`` in slots ``p*N .. p*N+N-1``)
and T = R activation rows (row ``r`` holds the N A values of set ``r``, shared by the PEs); the
tile returns P float32 patterns in PE order, each PE's result being exactly
`golden.fpraker.fpraker_dot` of its pairs (with `hw.params.FPRakerTileParams.pe_params`).
A set ``r`` at or beyond the steps T loaded reads A as ``+0`` (pattern 0); activation rows at
or beyond R are not used.

Cycle model (lock-step)
-----------------------
Every set is given to all P PEs at once and the next set only when every PE has finished the
current one, so set ``r`` costs ``max over PEs of c[p, r]``, where ``c[p, r]`` is PE ``p``'s
cycles on its set ``r`` (`golden.fpraker.DotResult.set_cycles`: ``max(1, max over lanes of the
in-window terms)``, which depends on PE ``p``'s own accumulator exponent, so PEs with the same
A still differ). The pass's ``cycles`` are ``sum over r of max over p of c[p, r]``; the PE-level
figure without lock-step would be ``max over p of sum over r`` (`lockstep_cycles` returns both
the lock-step figure and the per-PE totals).

Packing
-------
A row word is an ``int`` whose 16-bit field ``i`` (bits ``16 i .. 16 i + 15``) is slot ``i``:
the bit layout of `hw.layouts.schedule_row_layout` (its ``weight`` array of ``signed(16)``
elements holds the bfloat16 patterns bit for bit) and of `hw.layouts.act_row_layout`
(``unsigned(16)`` elements). A result word is the float32 pattern (non-negative in the
33-bit signed result stream).
"""

import dataclasses

import numpy as np

from hw.params import FPRakerTileParams, check_int

from .fpraker import fpraker_dot
from .fpraker_layers import layer_pairs

__all__ = ["TilePassResult", "TilePass", "pass_result", "lockstep_cycles", "pack_rows",
           "pack_weight_rows", "pack_act_rows", "make_pass", "layer_passes", "selftest_pass"]


def _check_params(params):
    if not isinstance(params, FPRakerTileParams):
        raise TypeError(f"params must be an FPRakerTileParams, not {params!r}")
    return params


def _check_patterns(x, name, shape):
    x = np.asarray(x)
    if x.dtype == np.bool_ or not np.issubdtype(x.dtype, np.integer):
        raise TypeError(f"{name} must be an integer array of bfloat16 patterns, not dtype "
                        f"{x.dtype}")
    if x.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, not {x.shape}")
    if x.size and (x.min() < 0 or x.max() > 0xFFFF):
        raise ValueError(f"{name} must hold bfloat16 patterns from 0 to 0xffff; found "
                         f"{int(x.min())}..{int(x.max())}")
    return x.astype(np.int64)


@dataclasses.dataclass(frozen=True)
class TilePassResult:
    """One pass (see :func:`pass_result`).

    Attributes
    ----------
    results : ``uint32`` array [P]
        float32 result patterns, PE order.
    cycles : int
        Lock-step compute cycles of the pass (module docs).
    set_cycles : ``int64`` array [P, R]
        Each PE's cycles on each set.
    pe_cycles : ``int64`` array [P]
        Each PE's own total (its `golden.fpraker.DotResult.cycles`).
    """

    results: np.ndarray
    cycles: int
    set_cycles: np.ndarray
    pe_cycles: np.ndarray


def lockstep_cycles(set_cycles):
    """Return the lock-step cycles ``sum_r max_p set_cycles[..., p, r]`` (int64 over the
    leading axes) of per-PE, per-set cycles ``[..., P, R]``."""
    return np.asarray(set_cycles, dtype=np.int64).max(-2).sum(-1)


def pass_result(params, a_sets, b_sets, *, steps=None):
    """Return the `TilePassResult` of one pass.

    Parameters
    ----------
    params : `hw.params.FPRakerTileParams`
    a_sets : integer array_like ``[T, N]``
        bfloat16 patterns of the activation rows (the shared A sets), T = ``steps``.
    b_sets : integer array_like ``[P, R, N]``
        bfloat16 patterns of every PE's B sets (R = the pass's rows, 1..weight_rows).
    steps : int, optional
        T (default: ``len(a_sets)``); sets ``r >= T`` use A = +0, rows ``>= R`` are unused.
    """
    params = _check_params(params)
    b_sets = np.asarray(b_sets)
    if b_sets.ndim != 3:
        raise ValueError(f"b_sets must have shape [P, R, N], not {b_sets.shape}")
    rows = check_int("rows", b_sets.shape[1], 1, params.weight_rows)
    b_sets = _check_patterns(b_sets, "b_sets", (params.filters, rows, params.lanes))
    a_sets = np.asarray(a_sets)
    steps = check_int("steps", len(a_sets) if steps is None else steps, 1, params.act_rows)
    a_sets = _check_patterns(a_sets, "a_sets", (steps, params.lanes))
    a = np.zeros((rows, params.lanes), dtype=np.int64)
    used = min(rows, steps)
    a[:used] = a_sets[:used]
    a = np.broadcast_to(a.reshape(1, -1), (params.filters, rows * params.lanes))
    dot = fpraker_dot(a, b_sets.reshape(params.filters, -1), params.pe_params)
    return TilePassResult(results=dot.bits, cycles=int(lockstep_cycles(dot.set_cycles)),
                          set_cycles=dot.set_cycles, pe_cycles=dot.cycles)


def pack_rows(values):
    """Return the row words (list of ``int``) of 16-bit fields ``values[..., slots]``: field
    ``i`` of a row at bits ``16 i .. 16 i + 15`` (module docs); leading axes flattened."""
    values = np.asarray(values)
    if values.size and (values.min() < 0 or values.max() > 0xFFFF):
        raise ValueError("row fields must be 16-bit patterns from 0 to 0xffff")
    flat = values.astype("<u2").reshape(-1, values.shape[-1])
    return [int.from_bytes(row.tobytes(), "little") for row in flat]


def pack_weight_rows(params, b_sets):
    """Return the R schedule row words of B sets ``[P, R, N]`` (row ``r``: PE ``p``'s lane
    ``l`` in slot ``p*N + l``)."""
    params = _check_params(params)
    b_sets = np.asarray(b_sets)
    if b_sets.ndim != 3 or b_sets.shape[0] != params.filters or \
            b_sets.shape[2] != params.lanes:
        raise ValueError(f"b_sets must have shape [{params.filters}, R, {params.lanes}], not "
                         f"{b_sets.shape}")
    return pack_rows(b_sets.transpose(1, 0, 2).reshape(b_sets.shape[1], -1))


def pack_act_rows(params, a_sets):
    """Return the activation row words of A sets ``[T, N]``."""
    params = _check_params(params)
    a_sets = np.asarray(a_sets)
    if a_sets.ndim != 2 or a_sets.shape[1] != params.lanes:
        raise ValueError(f"a_sets must have shape [T, {params.lanes}], not {a_sets.shape}")
    return pack_rows(a_sets)


@dataclasses.dataclass(frozen=True)
class TilePass:
    """One pass of a layer on the tile, ready for the host link (see :func:`layer_passes`).

    Attributes
    ----------
    rows, steps : int
        R and T (equal) for ``start``.
    load_weights : bool
        Whether this pass loads its schedule rows (False: the tile reuses the rows of the
        previous pass, which are these same rows).
    schedule, acts : list of int
        The R schedule row words and the R activation row words.
    results : list of int
        The P expected float32 patterns, PE order.
    cycles : int
        The expected ``cycles`` of the pass.
    a_sets, b_sets : ``int64`` arrays [R, N] and [P, R, N]
        The bfloat16 patterns packed into ``acts`` and ``schedule``.
    outputs : ``int64`` array [P]
        Flat layer output index ``(k, oy, ox)`` of each PE's result (-1: a padding PE with
        B = +0, whose result is +0).
    """

    rows: int
    steps: int
    load_weights: bool
    schedule: list
    acts: list
    results: list
    cycles: int
    a_sets: np.ndarray
    b_sets: np.ndarray
    outputs: np.ndarray


def make_pass(params, a_sets, b_sets, *, load_weights=True, outputs=None):
    """Return the `TilePass` of A sets ``[R, N]`` and B sets ``[P, R, N]`` (patterns)."""
    res = pass_result(params, a_sets, b_sets)
    rows = res.set_cycles.shape[1]
    outputs = np.full(params.filters, -1, dtype=np.int64) if outputs is None else \
        np.asarray(outputs, dtype=np.int64)
    return TilePass(rows=rows, steps=rows, load_weights=bool(load_weights),
                    schedule=pack_weight_rows(params, b_sets),
                    acts=pack_act_rows(params, a_sets),
                    results=[int(x) for x in res.results], cycles=res.cycles,
                    a_sets=np.asarray(a_sets, dtype=np.int64),
                    b_sets=np.asarray(b_sets, dtype=np.int64), outputs=outputs)


def layer_passes(layer, params, max_positions=None):
    """Yield the `TilePass` es of a layer's float view (`golden.fpraker_layers.layer_pairs`).

    A pass is one output position and P filters of one group (they share the activation
    window A); the reduction (``(r, s, c)`` order) is cut into R = ceil(L / N) sets (the last
    padded with +0). Order: for each group, for each block of P filters (the last block padded
    with B = +0 PEs), for each position (row-major; an FC layer has one): the first pass of a
    block loads the schedule rows, the others reuse them (``load_weights`` False).

    Parameters
    ----------
    layer : `golden.layers.Layer`
    params : `hw.params.FPRakerTileParams`
    max_positions : int, optional
        Only the first ``max_positions`` positions of each block (default all).

    Raises
    ------
    ValueError
        If R exceeds ``params.weight_rows`` (the float accumulator cannot be split over
        passes), or for a bad ``max_positions``.
    """
    params = _check_params(params)
    a, b = layer_pairs(layer)
    outputs, length = a.shape
    n, pes = params.lanes, params.filters
    rows = -(-length // n)
    if rows > params.weight_rows:
        raise ValueError(f"layer {layer.name!r} needs {rows} sets of {n} pairs per output; "
                         f"the tile holds weight_rows = {params.weight_rows}")
    if layer.kind == "fc":
        k, positions, groups = outputs, 1, 1
    else:
        k = layer.output_shape[0]
        positions, groups = outputs // k, layer.groups
    count = positions if max_positions is None else \
        min(positions, check_int("max_positions", max_positions, 1, 1 << 30))
    per_group = k // groups
    a_all = np.zeros((outputs, rows * n), dtype=np.int64)
    a_all[:, :length] = a
    a_all = a_all.reshape(k, positions, rows, n)
    b_all = np.zeros((outputs, rows * n), dtype=np.int64)
    b_all[:, :length] = b
    b_all = b_all.reshape(k, positions, rows, n)
    for g in range(groups):
        for first in range(g * per_group, (g + 1) * per_group, pes):
            ks = np.arange(first, first + pes)
            real = ks < (g + 1) * per_group
            b_sets = np.zeros((pes, rows, n), dtype=np.int64)
            b_sets[real] = b_all[ks[real], 0]
            a_block = a_all[first, :count]                      # [positions, R, N]
            dot = fpraker_dot(np.broadcast_to(a_block.reshape(count, 1, -1),
                                              (count, pes, rows * n)),
                              np.broadcast_to(b_sets.reshape(1, pes, -1),
                                              (count, pes, rows * n)), params.pe_params)
            cycles = lockstep_cycles(dot.set_cycles)
            schedule = pack_weight_rows(params, b_sets)
            for pos in range(count):
                yield TilePass(rows=rows, steps=rows, load_weights=pos == 0,
                               schedule=schedule, acts=pack_act_rows(params, a_block[pos]),
                               results=[int(x) for x in dot.bits[pos]],
                               cycles=int(cycles[pos]), a_sets=a_block[pos], b_sets=b_sets,
                               outputs=np.where(real, ks * positions + pos, -1))


def selftest_pass(params, *, rows=None, seed=0):
    """Return a `TilePass` of deterministic pseudo-random normal bfloat16 operands for a
    built-in self-test (``load_weights`` True).

    ``rows`` (default ``min(4, weight_rows)``) sets of N pairs per PE; signs random, exponent
    fields 100..150 (so the window skips terms of the smaller products), every eighth operand
    ``+0``. The same ``params``, ``rows`` and ``seed`` always give the same vectors (NumPy's
    PCG64 stream of ``seed``).
    """
    params = _check_params(params)
    rows = min(4, params.weight_rows) if rows is None else \
        check_int("rows", rows, 1, params.weight_rows)
    rng = np.random.default_rng(seed)

    def operands(shape):
        bits = (rng.integers(0, 2, shape) << 15) | (rng.integers(100, 151, shape) << 7) \
            | rng.integers(0, 128, shape)
        return np.where(rng.integers(0, 8, shape) == 0, 0, bits).astype(np.int64)

    a = operands((rows, params.lanes))
    b = operands((params.filters, rows, params.lanes))
    return make_pass(params, a, b, load_weights=True)
