"""np.median's value by one partial sort: on the small arrays of a frame (a thumbnail,
a few seconds of eye samples) np.median's own checks cost as much as the sort."""

from __future__ import annotations

import numpy as np


def median(values: np.ndarray) -> np.ndarray:
    """Medians along the first axis (of a 1-D array: its median, as a 0-d array), the
    mean of the middle two for an even count, bit for bit what np.median gives."""
    n = len(values)
    k = n // 2
    if n % 2:
        return np.partition(values, k, axis=0)[k]
    part = np.partition(values, (k - 1, k), axis=0)
    return 0.5 * (part[k - 1] + part[k])
