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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from convert import qat, split
from convert.augment import Augmentation, augment_batch
from convert.calibration import calibration_set
from convert.checkpoints import RUN, load_starting_model
from convert.data import FaceSet, class_weights
from convert.model import ModelSpec, build_model, with_input_scaling
from convert.tf_env import backend_version, compute_description, import_keras

HISTORY = "history.csv"
QAT_CALIBRATION_FACES = 1000


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
    erase: float = 0.0
    seed: int = 1234
    threads: int = 0  # 0: TensorFlow's default (all cores)
    workers: int = 2  # threads augmenting batches beside the training step
    init: str | None = None  # start from this trained model's weights (fine-tuning)
    quantization_aware: bool = False  # simulate the int8 model's rounding while training
    consistency: float = 0.0  # weight of KL(float || simulated int8), quantization-aware only
    val_fraction: float = split.DEFAULT_FRACTION  # carved from Training when no val set is given
    val_seed: int = split.DEFAULT_SEED
    spec: ModelSpec = field(default_factory=ModelSpec)

    def augmentation(self) -> Augmentation:
        return Augmentation(shift=self.shift, rotation_degrees=self.rotation_degrees,
                            zoom=self.zoom, flip=self.flip, erase=self.erase)


def _training_batches(keras: Any, faces: FaceSet, config: TrainConfig) -> Any:
    """Shuffled, augmented, class-weighted batches, reshuffled every epoch.

    A Keras `PyDataset`, so every backend consumes it; the class is defined here
    because Keras is imported lazily. Each batch's randomness comes from
    (seed, epoch, batch index), so worker threads do not change the result.
    """
    classes = config.spec.classes
    weights = class_weights(faces.class_counts(classes), config.class_weight)
    onehot = np.eye(classes, dtype=np.float32)
    aug = config.augmentation()
    workers = max(1, config.workers)

    class Batches(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__(workers=workers, use_multiprocessing=False,
                             max_queue_size=4 * workers)
            self.epoch = 0
            self.order = self._order(0)

        def _order(self, epoch: int) -> np.ndarray:
            return np.random.default_rng([config.seed, epoch]).permutation(len(faces))

        def __len__(self) -> int:
            return int(np.ceil(len(faces) / config.batch_size))

        def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            take = self.order[index * config.batch_size:(index + 1) * config.batch_size]
            rng = np.random.default_rng([config.seed, self.epoch, index])
            x = augment_batch(faces.x[take], aug, rng).astype(np.float32)[..., None]
            y = faces.y[take]
            if config.consistency > 0:  # each face twice: float, then simulated int8
                x, y = qat.paired(x, y)
            return x, onehot[y], weights[y].astype(np.float32)

        def on_epoch_end(self) -> None:
            self.epoch += 1
            self.order = self._order(self.epoch)

    return Batches()


def calibration_pixels(faces: FaceSet, config: TrainConfig) -> np.ndarray:
    """The class-balanced faces `quantize` calibrates on, drawn the same way."""
    return calibration_set(faces, QAT_CALIBRATION_FACES, config.seed).x


def run_record(out_dir: Path, chosen: split.Selection, test_faces: FaceSet | None,
               config: TrainConfig, parameters: int, keras_version: str, initial_epoch: int,
               command: str | None) -> dict[str, Any]:
    """run.json: the command, data, configuration and machine; a resume appends itself."""
    typed = command or shlex.join(sys.argv)
    record: dict[str, Any] = {
        "command": typed,
        "train": chosen.train_record,
        "val": chosen.val_record,
        "test": {"source": test_faces.source, "n": len(test_faces)} if test_faces else None,
        "config": asdict(config),
        "parameters": parameters,
        "backend": backend_version(),
        "keras": keras_version,
        "hardware": compute_description(),
    }
    if initial_epoch and (out_dir / RUN).exists():
        # Keep the command that started the run; record each resume after it.
        earlier = json.loads((out_dir / RUN).read_text())
        split.check_resumed(earlier.get("val"), chosen.val_record)
        record["command"] = earlier.get("command", typed)
        record["resumed"] = [*earlier.get("resumed", []),
                             {"command": typed, "from_epoch": initial_epoch,
                              "hardware": record["hardware"]}]
    return record


def new_model(keras: Any, config: TrainConfig, steps_per_epoch: int) -> Any:
    """The network (quantization-aware if asked), from --init's weights if given, compiled."""
    model = (qat.quantization_aware_model(config.spec) if config.quantization_aware
             else with_input_scaling(keras, build_model(config.spec), config.spec))
    if config.init:
        qat.transfer_weights(load_starting_model(keras, Path(config.init)), model)
    if config.schedule == "cosine":
        lr: Any = keras.optimizers.schedules.CosineDecay(config.learning_rate,
                                                         config.epochs * steps_per_epoch)
    else:
        lr = config.learning_rate
    model.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss=(qat.consistency_loss(config.label_smoothing, config.consistency)
              if config.consistency > 0 else
              keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)),
        metrics=["accuracy"],
    )
    return model


def train(train_faces: FaceSet, val_faces: FaceSet | None, out_dir: Path, config: TrainConfig,
          resume: bool = False, verbose: int = 1, command: str | None = None,
          test_faces: FaceSet | None = None) -> dict[str, Any]:
    """Without `val_faces`, select on `config.val_fraction` of the training faces;
    `test_faces` (PublicTest) are scored once, at the end, with the best checkpoint."""
    if val_faces is not None:  # nothing is carved: record it so
        config = replace(config, val_fraction=0.0)
    chosen = split.select(train_faces, val_faces, config.val_fraction, config.val_seed,
                          config.spec.classes)
    train_faces, val_faces = chosen.train, chosen.val
    keras = import_keras(config.threads or None)
    from convert import callbacks as cb  # subclasses Keras' Callback: after the import above

    out_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    state_path = out_dir / cb.STATE
    progress = cb.Progress(out_dir)
    initial_epoch = 0
    if config.quantization_aware:
        qat.register()  # before a checkpoint holding the simulation is loaded
    if resume and (out_dir / cb.LAST).exists() and state_path.exists():
        state = json.loads(state_path.read_text())
        initial_epoch = int(state["epoch"])
        progress.best = state.get("best_val_accuracy")
        progress.seconds_before = float(state.get("wall_seconds", 0.0))
        model = keras.models.load_model(out_dir / cb.LAST)
        print(f"resuming from epoch {initial_epoch} (best val accuracy {progress.best})")
    else:
        model = new_model(keras, config, int(np.ceil(len(train_faces) / config.batch_size)))
    params = model.count_params()
    if config.quantization_aware:  # the simulated ranges are not part of the network
        params -= qat.simulation_parameters(model)
    print(f"model: {params:,} parameters ({json.dumps(config.spec.to_dict())})")
    run_info = run_record(out_dir, chosen, test_faces, config, params, keras.__version__,
                          initial_epoch, command)
    (out_dir / RUN).write_text(json.dumps(run_info, indent=2))

    progress.started = time.monotonic()
    callbacks = cb.training_callbacks(
        progress, config.spec, out_dir / HISTORY, resume=resume,
        early_stop_patience=config.early_stop_patience,
        plateau_patience=config.plateau_patience if config.schedule == "plateau" else None,
        quantization_aware=config.quantization_aware,
        calibration=(calibration_pixels(train_faces, config) if config.quantization_aware
                     else None),
        val_faces=val_faces,
        mode=qat.Mode.SECOND_HALF if config.consistency > 0 else qat.Mode.ON)
    validation = None if config.quantization_aware else (  # QuantizedValidation's job
        val_faces.x[..., None].astype(np.float32),
        np.eye(config.spec.classes, dtype=np.float32)[val_faces.y])
    model.fit(
        _training_batches(keras, train_faces, config),
        validation_data=validation,
        validation_batch_size=256,
        epochs=config.epochs, initial_epoch=initial_epoch, callbacks=callbacks, verbose=verbose,
    )
    state = json.loads(state_path.read_text())
    summary = {**run_info, "epochs_run": state["epoch"], "wall_seconds": state["wall_seconds"],
               "best_val_accuracy": state["best_val_accuracy"],
               "best_model": str(out_dir / cb.BEST),
               "test": split.test_figure(keras, out_dir / cb.BEST, test_faces)}
    (out_dir / RUN).write_text(json.dumps(summary, indent=2))
    return summary
