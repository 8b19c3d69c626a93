"""Train the Xception-family network on FER2013, with checkpoints and resume.

The regimen is the original project's (augmentation by shift, rotation, zoom and
horizontal flip; L2; class-weighted loss; learning rate reduced on plateau; early
stopping; best checkpoint kept by validation accuracy) plus a fixed seed, a
per-epoch CSV log and `--resume` from the last checkpoint.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from convert.data import FaceSet, class_weights
from convert.model import ModelSpec, build_model
from convert.tf_env import import_tensorflow

BEST = "best.keras"
LAST = "last.keras"
STATE = "state.json"
HISTORY = "history.csv"
RUN = "run.json"


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 80
    batch_size: int = 128
    learning_rate: float = 1e-3
    schedule: str = "plateau"  # or "cosine"
    plateau_patience: int = 5
    early_stop_patience: int = 12
    label_smoothing: float = 0.0
    class_weight: str = "sqrt"
    shift: float = 0.1
    rotation_degrees: float = 10.0
    zoom: float = 0.1
    flip: bool = True
    seed: int = 1234
    threads: int = 0  # 0: TensorFlow's default (all cores)
    spec: ModelSpec = field(default_factory=ModelSpec)


def _augmenter(tf: Any, config: TrainConfig) -> Any:
    layers = tf.keras.layers
    steps = []
    if config.flip:
        steps.append(layers.RandomFlip("horizontal", seed=config.seed))
    if config.rotation_degrees > 0:
        steps.append(layers.RandomRotation(config.rotation_degrees / 360.0, fill_mode="nearest",
                                           seed=config.seed + 1))
    if config.shift > 0:
        steps.append(layers.RandomTranslation(config.shift, config.shift, fill_mode="nearest",
                                              seed=config.seed + 2))
    if config.zoom > 0:
        steps.append(layers.RandomZoom(config.zoom, fill_mode="nearest", seed=config.seed + 3))
    return tf.keras.Sequential(steps, name="augment")


def _dataset(tf: Any, faces: FaceSet, config: TrainConfig, training: bool) -> Any:
    classes = config.spec.classes
    x = faces.x[..., None].astype(np.float32)
    y = np.eye(classes, dtype=np.float32)[faces.y]
    if training:
        weights = class_weights(faces.class_counts(classes), config.class_weight)
        w = weights[faces.y].astype(np.float32)
        ds = tf.data.Dataset.from_tensor_slices((x, y, w))
        ds = ds.shuffle(len(faces), seed=config.seed, reshuffle_each_iteration=True)
        ds = ds.batch(config.batch_size)
        augment = _augmenter(tf, config)
        ds = ds.map(lambda a, b, c: (augment(a, training=True), b, c),
                    num_parallel_calls=tf.data.AUTOTUNE)
    else:
        ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(256)
    return ds.prefetch(tf.data.AUTOTUNE)


def _with_input_scaling(tf: Any, core: Any, spec: ModelSpec) -> Any:
    """Wrap the network so it takes raw 0..255 pixels.

    Scaling inside the graph means the int8 input quantization is exactly
    (scale 1, zero point -128): the device feeds `pixel - 128`, with no float
    maths and no way for the two sides to normalise differently.
    """
    keras = tf.keras
    inputs = keras.Input((spec.input_size, spec.input_size, 1), name="pixels")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="normalise")(inputs)
    return keras.Model(inputs, core(x), name="edge_emotion")


def train(train_faces: FaceSet, val_faces: FaceSet, out_dir: Path, config: TrainConfig,
          resume: bool = False, verbose: int = 1, command: str | None = None) -> dict[str, Any]:
    tf = import_tensorflow(config.threads or None)
    keras = tf.keras
    out_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(config.seed)

    state_path = out_dir / STATE
    initial_epoch, best_val, elapsed_before = 0, None, 0.0
    if resume and (out_dir / LAST).exists() and state_path.exists():
        state = json.loads(state_path.read_text())
        initial_epoch = int(state["epoch"])
        best_val = state.get("best_val_accuracy")
        elapsed_before = float(state.get("wall_seconds", 0.0))
        model = keras.models.load_model(out_dir / LAST)
        print(f"resuming from epoch {initial_epoch} (best val accuracy {best_val})")
    else:
        model = _with_input_scaling(tf, build_model(config.spec), config.spec)
        if config.schedule == "cosine":
            steps = config.epochs * int(np.ceil(len(train_faces) / config.batch_size))
            lr: Any = keras.optimizers.schedules.CosineDecay(config.learning_rate, steps)
        else:
            lr = config.learning_rate
        model.compile(
            optimizer=keras.optimizers.Adam(lr),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
            metrics=["accuracy"],
        )
    params = model.count_params()
    print(f"model: {params:,} parameters ({json.dumps(config.spec.to_dict())})")

    run_info = {
        "command": command or shlex.join(sys.argv),
        "train": {"source": train_faces.source, "n": len(train_faces)},
        "val": {"source": val_faces.source, "n": len(val_faces)},
        "config": asdict(config),
        "parameters": params,
        "tensorflow": tf.__version__,
    }
    (out_dir / RUN).write_text(json.dumps(run_info, indent=2))

    started = time.monotonic()

    class SaveState(keras.callbacks.Callback):
        """Writes last.keras and state.json after each epoch, atomically."""

        def __init__(self) -> None:
            super().__init__()
            self.best = best_val

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = logs or {}
            val = logs.get("val_accuracy")
            if val is not None and (self.best is None or val > self.best):
                self.best = float(val)
            tmp = out_dir / (LAST + ".tmp.keras")
            self.model.save(tmp)
            tmp.replace(out_dir / LAST)
            state = {"epoch": epoch + 1, "best_val_accuracy": self.best,
                     "wall_seconds": elapsed_before + time.monotonic() - started,
                     "learning_rate": float(keras.ops.convert_to_numpy(
                         self.model.optimizer.learning_rate))}
            state_path.with_suffix(".tmp").write_text(json.dumps(state))
            state_path.with_suffix(".tmp").replace(state_path)

    callbacks: list[Any] = [
        keras.callbacks.ModelCheckpoint(out_dir / BEST, monitor="val_accuracy", mode="max",
                                        save_best_only=True, initial_value_threshold=best_val),
        keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max",
                                      patience=config.early_stop_patience),
        keras.callbacks.CSVLogger(out_dir / HISTORY, append=resume),
        SaveState(),
    ]
    if config.schedule == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=0.5, patience=config.plateau_patience, min_lr=1e-5,
            verbose=1))

    model.fit(
        _dataset(tf, train_faces, config, training=True),
        validation_data=_dataset(tf, val_faces, config, training=False),
        epochs=config.epochs, initial_epoch=initial_epoch, callbacks=callbacks, verbose=verbose,
    )
    state = json.loads(state_path.read_text())
    summary = {**run_info, "epochs_run": state["epoch"], "wall_seconds": state["wall_seconds"],
               "best_val_accuracy": state["best_val_accuracy"], "best_model": str(out_dir / BEST)}
    (out_dir / RUN).write_text(json.dumps(summary, indent=2))
    return summary
