"""The training run's Keras callbacks: checkpoints, speed, and quantization-aware steps.

Imported by `convert.train` once Keras is (it is imported lazily, with the thread
settings first), so the classes can subclass `keras.callbacks.Callback` here.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from convert import qat
from convert.data import FaceSet
from convert.model import ModelSpec
from convert.ranges import DEFAULT_RANGE_QUANTILE
from convert.tf_env import import_keras

keras = import_keras()

BEST = "best.keras"
LAST = "last.keras"
STATE = "state.json"


@dataclass
class Progress:
    """What SaveBest and SaveState share: the best validation accuracy so far and time."""

    out_dir: Path
    best: float | None = None
    seconds_before: float = 0.0  # wall time of earlier sessions of a resumed run
    started: float = field(default_factory=time.monotonic)

    def improved(self, logs: dict | None) -> bool:
        """Record this epoch's val_accuracy; True when it is a new best."""
        val = (logs or {}).get("val_accuracy")
        if val is None or (self.best is not None and val <= self.best):
            return False
        self.best = float(val)
        return True

    def wall_seconds(self) -> float:
        return self.seconds_before + time.monotonic() - self.started


def save_atomically(model: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp.keras")
    model.save(tmp)
    tmp.replace(path)


class SaveBest(keras.callbacks.Callback):
    """best.keras by validation accuracy, always as the plain (deployable) graph."""

    def __init__(self, progress: Progress, plain: Any | None) -> None:
        super().__init__()
        self.progress = progress
        self.plain = plain  # the plain graph a quantization-aware model's weights go into

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if not self.progress.improved(logs):
            return
        keep = self.model
        if self.plain is not None:
            qat.transfer_weights(self.model, self.plain)
            keep = self.plain
        save_atomically(keep, self.progress.out_dir / BEST)


class SaveState(keras.callbacks.Callback):
    """Writes last.keras and state.json after each epoch, atomically (for --resume)."""

    def __init__(self, progress: Progress) -> None:
        super().__init__()
        self.progress = progress

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        out_dir = self.progress.out_dir
        save_atomically(self.model, out_dir / LAST)
        state = {"epoch": epoch + 1, "best_val_accuracy": self.progress.best,
                 "wall_seconds": self.progress.wall_seconds(),
                 "learning_rate": float(keras.ops.convert_to_numpy(
                     self.model.optimizer.learning_rate))}
        tmp = (out_dir / STATE).with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(out_dir / STATE)


class EpochSeconds(keras.callbacks.Callback):
    """Adds each epoch's wall time to the logs, so history.csv records speed."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.began = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["epoch_seconds"] = round(time.monotonic() - self.began, 2)


class Recalibrate(keras.callbacks.Callback):
    """Re-measures the simulated int8 ranges as the weights move."""

    def __init__(self, pixels: np.ndarray, mode: qat.Mode) -> None:
        super().__init__()
        self.pixels, self.mode = pixels, mode

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        # The ranges `edge-convert quantize` will measure by default.
        qat.calibrate(self.model, self.pixels, DEFAULT_RANGE_QUANTILE, mode=self.mode)


class QuantizedValidation(keras.callbacks.Callback):
    """val_accuracy of the simulated int8 model, with the float one's and agreement."""

    def __init__(self, faces: FaceSet, mode: qat.Mode) -> None:
        super().__init__()
        self.pixels = faces.x[..., None].astype(np.float32)
        self.labels, self.mode = faces.y, mode

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs.update(qat.validation_scores(self.model, self.pixels, self.labels, self.mode))


def training_callbacks(progress: Progress, spec: ModelSpec, history: Path, *, resume: bool,
                       early_stop_patience: int, plateau_patience: int | None,
                       quantization_aware: bool, calibration: np.ndarray | None = None,
                       val_faces: FaceSet | None = None,
                       mode: qat.Mode = qat.Mode.ON) -> list[Any]:
    """In order: the quantization-aware ones first (they set val_accuracy), then the rest.

    plateau_patience: None for a schedule without plateau reduction.
    """
    callbacks: list[Any] = []
    if quantization_aware:
        assert calibration is not None and val_faces is not None
        callbacks += [Recalibrate(calibration, mode), QuantizedValidation(val_faces, mode)]
    callbacks += [
        EpochSeconds(),
        SaveBest(progress, qat.plain_model(spec) if quantization_aware else None),
        keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max",
                                      patience=early_stop_patience),
        keras.callbacks.CSVLogger(history, append=resume),
        SaveState(progress),
    ]
    if plateau_patience is not None:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            # Quantization-aware validation reports accuracies, not a loss.
            **({"monitor": "val_accuracy", "mode": "max"} if quantization_aware
               else {"monitor": "val_loss"}),
            factor=0.5, patience=plateau_patience, min_lr=1e-5, verbose=1))
    return callbacks
