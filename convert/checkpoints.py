"""Model files: what kind a path is, loading it with one-line errors, hashing it,
and the architecture a trained run recorded (for `train --init`)."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

from convert.data import INPUT_SHAPE
from convert.errors import InitError
from convert.model import ModelSpec
from convert.tf_env import quiet_native_output
from edge.classify import sha256_of
from edge.errors import ModelError, first_line
from edge.model_contract import FER2013_LABELS

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
RUN = "run.json"  # the run record `train` writes beside its checkpoints
# The ModelSpec fields that shape the weights: a starting model fixes them.
ARCHITECTURE = ("width", "modules", "middle", "stem", "classes", "input_size")


def model_kind(path: Path) -> str:
    """'savedmodel', 'keras' or 'h5', checked before TensorFlow is imported."""
    if not path.exists():
        raise ModelError(f"{path}: no such model file or folder")
    if path.is_dir():
        if not (path / "saved_model.pb").exists():
            raise ModelError(f"{path}: folder is not a SavedModel (no saved_model.pb)")
        return "savedmodel"
    suffix = path.suffix.lower()
    if suffix == ".keras":
        # Keras reports a non-zip .keras file as "File not found": say what is wrong.
        if not zipfile.is_zipfile(path):
            raise ModelError(f"{path}: not a Keras model (a .keras file is a zip archive)")
        return "keras"
    if suffix in (".h5", ".hdf5"):
        with open(path, "rb") as f:
            if f.read(len(HDF5_MAGIC)) != HDF5_MAGIC:
                raise ModelError(f"{path}: not a Keras model (not an HDF5 file)")
        return "h5"
    raise ModelError(f"{path}: not a .keras, .h5 or SavedModel folder")


def load_keras_model(tf: Any, path: Path) -> Any:
    """A Keras model from .keras/.h5, checked to map (N,48,48,1) pixels to 7 classes."""
    try:
        with quiet_native_output():
            model = tf.keras.models.load_model(path, compile=False)
    except Exception as exc:  # Keras raises ValueError/OSError/KeyError variously
        raise ModelError(f"{path}: not a loadable Keras model ({first_line(exc)})") from None
    in_shape = tuple(model.input_shape[1:]) if not isinstance(model.input_shape, list) else ()
    out_shape = tuple(model.output_shape[1:]) if not isinstance(model.output_shape, list) else ()
    if in_shape != INPUT_SHAPE[1:] or out_shape != (len(FER2013_LABELS),):
        raise ModelError(f"{path}: model maps {model.input_shape} to {model.output_shape}, "
                         f"expected (None, 48, 48, 1) to (None, {len(FER2013_LABELS)})")
    return model


def source_sha256(path: Path) -> str:
    """sha256 of a model file, or of a SavedModel folder's relative paths and bytes."""
    if path.is_file():
        return sha256_of(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        digest.update(sha256_of(file).encode())
    return digest.hexdigest()


def load_starting_model(keras: Any, path: Path) -> Any:
    """The trained model that `--init` fine-tunes; one-line errors for a bad file."""
    from convert import qat

    if not path.exists():
        raise InitError(f"{path}: starting model not found")
    qat.register()  # a quantization-aware checkpoint may be the start too
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many types for a corrupt or foreign file
        raise InitError(f"{path}: not a loadable Keras model ({first_line(exc)})") from None


def starting_spec(path: Path, given: dict[str, Any]) -> ModelSpec:
    """The network `--init PATH` was trained as, from the run.json beside it.

    `given`: the network options typed on the command line. Architecture options
    must agree with the record (the weights fix them); l2 and dropout may change.
    """
    if not path.exists():
        raise InitError(f"{path}: starting model not found")
    record = path.parent / RUN
    try:
        recorded = json.loads(record.read_text())["config"]["spec"]
        spec = ModelSpec(**recorded)
    except FileNotFoundError:
        raise InitError(f"{path}: no {RUN} beside it, so --init cannot know its network "
                        "(fine-tune a model that edge-convert train wrote)") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InitError(f"{record}: no network recorded ({first_line(exc)})") from None
    for name, value in given.items():
        if name in ARCHITECTURE and value != recorded.get(name):
            raise InitError(f"{path}: trained with --{name} {recorded.get(name)}, not "
                            f"--{name} {value} (leave the network options out: --init reads "
                            f"them from its {RUN})")
    return ModelSpec(**{**spec.to_dict(), **given})
