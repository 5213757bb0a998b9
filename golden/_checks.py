"""Argument checks and integer ranges shared by the golden modules (numpy and stdlib only).

Parameter checks that hardware code shares live in `hw.params` (``check_int``, ``check_bool``);
this module holds the ones only the golden model needs, so each is written (and words its error)
once.
"""

import operator

__all__ = ["check_axis", "integer_bounds"]


def check_axis(axis, ndim):
    """Return ``axis`` normalized to ``0..ndim-1`` (None stays None).

    Raises ``TypeError`` unless ``axis`` is None or an integer (``bool`` is refused), and
    ``ValueError`` unless ``-ndim <= axis < ndim`` (a 0-dimensional array accepts only None).
    """
    if axis is None:
        return None
    if isinstance(axis, bool):
        raise TypeError(f"axis must be None or an integer, not {axis!r}")
    try:
        axis = operator.index(axis)
    except TypeError:
        raise TypeError(f"axis must be None or an integer, not {axis!r}") from None
    if not -ndim <= axis < ndim:
        if ndim == 0:
            raise ValueError(f"axis must be None for a 0-dimensional array, not {axis}")
        raise ValueError(f"axis must be None or an integer from {-ndim} to {ndim - 1} for a "
                         f"{ndim}-dimensional array, not {axis}")
    return axis % ndim


def integer_bounds(bits, signed):
    """Return ``(low, high)`` of ``bits``-wide signed or unsigned integers, as Python ints.

    ``bits`` must already be a validated positive ``int``; callers check it against their own
    limit (`golden.fixedpoint.integer_range`: 32, `golden.precision.check_range`: 64).
    """
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1
