"""The representative faces int8 conversion measures activation ranges on.

Drawn class-balanced from the training split (never a test split), with the
conversion options that shape the ranges (`range_quantile`, `equalize_cap`);
the sidecar records all of it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from convert.data import FaceSet
from convert.equalize import DEFAULT_CAP
from convert.errors import ConversionError
from convert.ranges import DEFAULT_RANGE_QUANTILE
from edge.model_contract import FER2013_LABELS


@dataclass(frozen=True)
class Calibration:
    """The faces, how they were drawn, and the range options converting with them."""

    x: np.ndarray  # float32 (N, 48, 48, 1), raw 0..255 pixels like the Keras model takes
    source: str
    per_class: int
    seed: int
    range_quantile: float  # 1: TFLite's absolute min/max; below: convert.ranges
    index: np.ndarray  # which training faces were drawn
    equalize_cap: float = DEFAULT_CAP  # convert.equalize before converting; 0: off

    def to_dict(self, equalized: int) -> dict[str, Any]:
        """The sidecar's record; `equalized`: how many layers equalization really scaled."""
        return {"source": self.source, "per_class": self.per_class, "total": len(self.x),
                "seed": self.seed, "range_quantile": self.range_quantile,
                "ranges": ("absolute min/max" if self.range_quantile >= 1 else
                           f"{self.range_quantile:g}-quantile of per-face extremes"),
                "equalization": (f"depthwise output channels scaled toward the widest, "
                                 f"at most {self.equalize_cap:g}x" if equalized > 0
                                 else "none")}


def calibration_set(faces: FaceSet, size: int, seed: int, classes: int = len(FER2013_LABELS),
                    range_quantile: float = DEFAULT_RANGE_QUANTILE,
                    equalize_cap: float = DEFAULT_CAP) -> Calibration:
    """Class-balanced sample: Disgust is 1.5% of FER2013, yet its activations count too."""
    if size < 1:
        raise ConversionError(f"calibration size must be >= 1, is {size}")
    if not 0.5 <= range_quantile <= 1.0:
        raise ConversionError(f"--range-quantile must be in 0.5..1, is {range_quantile:g}")
    if equalize_cap != 0 and equalize_cap < 1:
        raise ConversionError(f"--equalize-cap must be 0 (off) or >= 1, is {equalize_cap:g}")
    rng = np.random.default_rng(seed)
    per_class = max(1, size // classes)
    picked: list[np.ndarray] = []
    for label in range(classes):
        members = np.flatnonzero(faces.y == label)
        if len(members):  # a class the data lacks cannot be represented
            picked.append(rng.choice(members, min(per_class, len(members)), replace=False))
    index = rng.permutation(np.concatenate(picked))
    x = _pin_input_range(faces.x[index])
    # Record what was drawn: a class short of faces shows as total < 7 * per_class.
    drawn = max(len(p) for p in picked)
    return Calibration(x[..., None].astype(np.float32), faces.source, drawn, seed,
                       range_quantile, index, equalize_cap)


def _pin_input_range(x: np.ndarray) -> np.ndarray:
    """Make sure the sample spans 0..255, so the input quantization is exactly (1, -128).

    The converter derives the input scale from the observed pixel range. Real FER2013
    samples of any useful size contain both extremes and are left untouched; only a
    sample that lacks one gets a single corner pixel set, which barely moves any
    other layer's range.
    """
    if x.min() == 0 and x.max() == 255:
        return x
    x = x.copy()
    x[0, 0, 0] = 0
    x[-1, 0, -1] = 255
    return x


def representative_dataset(calibration: Calibration) -> Callable[[], Iterator[list[np.ndarray]]]:
    def faces() -> Iterator[list[np.ndarray]]:
        for i in range(len(calibration.x)):
            yield [calibration.x[i : i + 1]]

    return faces
