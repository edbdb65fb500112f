"""The one rule for the integer type that holds label values (numpy only)."""

from __future__ import annotations

import numpy as np

__all__ = ["labels_dtype"]

_UNSIGNED = (np.uint8, np.uint16, np.uint32, np.uint64)


def labels_dtype(max_value: int) -> np.dtype:
    """The smallest unsigned integer dtype that holds ``0 .. max_value`` (uint8, uint16, uint32 or uint64).

    Raises
    ------
    ValueError
        For a negative ``max_value`` (labels are never negative) or one beyond uint64.
    """
    value = int(max_value)
    if value < 0:
        raise ValueError(f"label values must not be negative, got {value}")
    for candidate in _UNSIGNED:
        if value <= np.iinfo(candidate).max:
            return np.dtype(candidate)
    raise ValueError(f"label value {value} does not fit in 64 bits")
