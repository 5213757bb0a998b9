"""Systolic designs in the registry: the output-stationary array (SySMT / NB-SMT) and SPARQ.

Importing this module registers four designs in :data:`golden.designs.DESIGNS` (it is listed
in :data:`golden.designs.DESIGN_MODULES`). Every model here is the one of :mod:`golden.nbsmt`
and :mod:`golden.sparq` (this module only wires them into the registry); the RTL
(``hw.sysmt.SySMTArray``, ``hw.sparq.SparqPE``) reproduces them exactly.

Designs (options in brackets, defaults after ``=``)
---------------------------------------------------
``sysmt1`` [rows=16, cols=16], exact
    The one-thread output-stationary R x C systolic array of 8b x 8b MACs (the SySMT paper's
    baseline): :func:`golden.nbsmt.layer_cycles` with ``threads=1``. Its output goes through
    :func:`golden.nbsmt.nbsmt_layer_output` with one thread (never squeezed: exact).
``sysmt2``, ``sysmt4`` [rows=16, cols=16], approximate
    NB-SMT with 2 or 4 threads per PE (``SySMTParams(threads=T)`` defaults: rounding on, zero
    weights idle a thread); operands are squeezed to 4 bits when threads collide, never
    stalled, so cycles are data independent. Output and the ``macs``/``active``/``squeezed``
    counts: :func:`golden.nbsmt.nbsmt_layer_output`.
``sparq`` [rows=16, cols=16], approximate
    SPARQ (vSPARQ, 4-bit windows, 5opt placements, ROUND: ``SparqParams()``) PEs on the
    2-thread schedule of the same array: each PE takes two (activation, weight) pairs per cycle
    and never stalls, so cycles are ``golden.nbsmt.layer_cycles`` with ``threads=2``; output:
    :func:`golden.sparq.sparq_layer_output` (it does not depend on the array size).

Each layer is the array's im2col GEMM: output positions on the R rows, the output channels of
one convolution group on the C columns, ``ceil(L / T)`` input steps per tile plus the
``R + C - 2`` flush and ``R`` output-row cycles (:func:`golden.nbsmt.tile_cycles`). A 16 x 16
array does 256 MACs per cycle, the peak of the 16 x 16 ``baseline`` tile, so speedups over
``baseline`` compare equal peak throughput; :attr:`Design.relative_to` is ``sysmt1`` for the
three multithreaded designs (the report also shows their speedup over the one-thread array).

Ideal (work-bound) cycles: ``ceil(layer.macs / (T * R * C))``, T = 1 (``sysmt1``), 2
(``sysmt2``, ``sparq``) or 4 (``sysmt4``). Every MAC of the layer (padding included) occupies
one thread slot: NB-SMT and SPARQ assign reduction elements to threads statically and skip no
MAC (zeros only spare a squeeze), so the only waste is the array's: partial tiles (fewer than R
positions or C channels, e.g. one channel per group of a depthwise layer), a reduction that is
not a multiple of T, and the fill/flush/output cycles.

Layers the designs cannot run (:func:`unsupported`): the datapaths take 8-bit activations
(unsigned; signed ones are squeezed on their magnitude, up to 255) and int8 weights, and a zero
code must be a real zero (``act_zero_point == 0``). Cycles are still defined for any layer
(they do not look at the data); outputs raise ``ValueError`` with the reason.
"""

import numpy as np

from hw.params import SparqParams, SySMTParams

from . import designs
from .nbsmt import layer_cycles, nbsmt_layer_output
from .sparq import sparq_layer_output

__all__ = ["SYSTOLIC_BASELINE", "SPARQ_PARAMS", "unsupported", "array_params"]

#: the one-thread array, the reference of the multithreaded designs' second speedup
SYSTOLIC_BASELINE = "sysmt1"
#: the SPARQ mode of the ``sparq`` design: 4-bit windows, 5opt, ROUND
SPARQ_PARAMS = SparqParams(window_width=4, placements=5, rounding=True)


def array_params(rows, cols, threads):
    """Return the validated ``SySMTParams`` of an R x C array with T threads (defaults
    otherwise); ``rows`` 2..16, ``cols`` 1..16."""
    return SySMTParams(rows=rows, cols=cols, threads=threads)


def unsupported(layer):
    """Return why the systolic designs cannot compute ``layer``'s output, or ``None``."""
    if layer.act_zero_point != 0:
        return f"act_zero_point must be 0, not {layer.act_zero_point}"
    if layer.weight_bits > 8:
        return f"weights must be 8-bit, not {layer.weight_bits}-bit"
    if layer.act_bits > (9 if layer.act_signed else 8):
        kind = "signed activations need magnitudes up to 255" if layer.act_signed else \
            "activations must be unsigned 8-bit"
        return f"{kind}, not {layer.act_bits}-bit"
    if layer.act_signed and layer.activations.size and np.abs(layer.activations).max() > 255:
        return "signed activations need magnitudes up to 255"
    return None


def _check(layer, name):
    reason = unsupported(layer)
    if reason is not None:
        raise ValueError(f"layer {layer.name!r}: {name} cannot run it: {reason}")


def _ideal(layer, params):
    return -(-layer.macs // (params.threads * params.rows * params.cols))


def _systolic(threads):
    name = f"sysmt{threads}"

    def cycles(layer, *, rows=16, cols=16):
        return layer_cycles(layer, array_params(rows, cols, threads))

    def ideal(layer, *, rows=16, cols=16):
        return _ideal(layer, array_params(rows, cols, threads))

    def output_counts(layer, *, rows=16, cols=16):
        params = array_params(rows, cols, threads)
        _check(layer, name)
        return nbsmt_layer_output(layer, params)

    def output(layer, *, rows=16, cols=16):
        return output_counts(layer, rows=rows, cols=cols)[0]

    return cycles, ideal, output, output_counts


def _sparq_cycles(layer, *, rows=16, cols=16):
    return layer_cycles(layer, array_params(rows, cols, 2))


def _sparq_ideal(layer, *, rows=16, cols=16):
    return _ideal(layer, array_params(rows, cols, 2))


def _sparq_output(layer, *, rows=16, cols=16):
    array_params(rows, cols, 2)
    _check(layer, "sparq")
    return sparq_layer_output(layer, SPARQ_PARAMS)


_DESCRIPTIONS = {
    1: "output-stationary 16x16 systolic array of 8b x 8b MACs, one thread (SySMT baseline)",
    2: "NB-SMT 16x16 systolic array, 2 threads per PE, activations squeezed to 4 bits on "
       "collisions (approximate)",
    4: "NB-SMT 16x16 systolic array, 4 threads per PE, operands squeezed to 4 bits on "
       "collisions (approximate)",
}

for _threads in (1, 2, 4):
    _cycles, _ideal_fn, _output, _counts = _systolic(_threads)
    designs.register(designs.Design(
        f"sysmt{_threads}", _DESCRIPTIONS[_threads], _cycles, _ideal_fn, _output,
        exact=_threads == 1, output_counts=_counts, unsupported=unsupported,
        relative_to=None if _threads == 1 else SYSTOLIC_BASELINE))

designs.register(designs.Design(
    "sparq", "SPARQ 4-bit windows (5opt, ROUND) with zero-partner pairs on the 2-thread 16x16 "
    "systolic array (approximate)", _sparq_cycles, _sparq_ideal, _sparq_output, exact=False,
    unsupported=unsupported, relative_to=SYSTOLIC_BASELINE))
