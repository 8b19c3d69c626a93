"""Per-face emotion probabilities averaged over time, so one odd frame is no new emotion."""

from __future__ import annotations

import math

import numpy as np


class EmotionSmoother:
    """Exponential average in time (not in frames), so smoothing is the same at 6 or 30 fps."""

    def __init__(self, time_constant: float) -> None:
        self.time_constant = time_constant
        self.probabilities: np.ndarray | None = None
        self._at = 0.0

    def update(self, probabilities: np.ndarray, timestamp: float) -> np.ndarray:
        if self.probabilities is None or self.time_constant <= 0:
            self.probabilities = probabilities.copy()
        else:
            dt = max(0.0, timestamp - self._at)
            alpha = 1.0 - math.exp(-dt / self.time_constant)
            # A new array, not +=: a FrameResult handed out earlier keeps its values.
            self.probabilities = self.probabilities + alpha * (probabilities - self.probabilities)
        self._at = timestamp
        return self.probabilities
