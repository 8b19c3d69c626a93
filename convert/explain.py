"""Where on the face the model looks: Grad-CAM (float) and occlusion (any model).

Grad-CAM (Selvaraju et al., 2017) weighs a convolutional layer's channels by the
mean gradient of a class logit and keeps the positive part of their sum. It needs
the float Keras graph. The layer is a trade between meaning and resolution: this
network (`convert/model.py`) halves the side in each downsampling module, so the
last module's output is 3x3 in the shipped 4-module model, one cell a third of the
face, which cannot tell the mouth from the nose. The default is therefore the
deepest *block output* (a module's residual sum, or the head's ReLU) that is still
at least `MIN_SIDE` pixels a side: `m2_add` (6x6, 8-pixel cells) in the shipped
model. A block output carries the whole signal, shortcut included, so the gradient
there accounts for everything the decision depends on, unlike a convolution inside
one branch.

Occlusion sensitivity needs no gradients, so it runs on the int8 model exactly as
the device runs it (`edge.classify.EmotionClassifier`): slide a patch filled with
the face's mean grey over the face and record how much the class probability
drops. The same procedure on the float model gives a like-for-like comparison.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.errors import ModelError

SIDE = 48
MIN_SIDE = 6  # a Grad-CAM layer coarser than this cannot separate eyes from mouth
CORE = "edge_xception"  # the network inside the input-scaling wrapper (convert/model.py)
LOGITS = "logits"
Predict = Callable[[np.ndarray], np.ndarray]  # uint8 (N, 48, 48) -> probabilities (N, C)


# --- Grad-CAM -----------------------------------------------------------------------


def _block_outputs(core: Any) -> list[Any]:
    """Layers whose output carries the whole signal: stem, module sums, head."""
    names = ("stem2_relu", "head_relu")
    return [layer for layer in core.layers
            if layer.name in names or (layer.name.endswith("_add") and layer.name[0] == "m")]


def _side(layer: Any) -> int:
    shape = layer.output.shape
    return int(shape[1]) if len(shape) == 4 and shape[1] is not None else 0


def default_layer(core: Any) -> str:
    """The deepest block output at least MIN_SIDE a side (see the module docstring)."""
    blocks = [layer for layer in _block_outputs(core) if _side(layer) >= MIN_SIDE]
    if not blocks:
        raise ModelError(f"no block output of at least {MIN_SIDE}x{MIN_SIDE} in the network")
    return str(blocks[-1].name)


@dataclass
class GradCam:
    """Grad-CAM for an edge-emotion Keras model (raw 0..255 pixels in)."""

    model: Any
    layer: str = ""

    def __post_init__(self) -> None:
        from convert.tf_env import import_keras, import_tensorflow, keras_backend

        if keras_backend() != "tensorflow":
            raise ModelError("Grad-CAM needs the tensorflow Keras backend (unset KERAS_BACKEND)")
        self._tf = import_tensorflow()
        keras = import_keras()
        try:
            core = self.model.get_layer(CORE)
            logits = core.get_layer(LOGITS)
            self._scaling = self.model.get_layer("normalise")
        except ValueError:
            raise ModelError("Grad-CAM needs an edge-emotion network (`edge-convert train`'s "
                             f"'{CORE}' with 'normalise' and '{LOGITS}' layers)") from None
        self.layer = self.layer or default_layer(core)
        try:
            target = core.get_layer(self.layer)
        except ValueError:
            names = ", ".join(layer.name for layer in _block_outputs(core))
            raise ModelError(f"no layer {self.layer!r} in the network (block outputs: "
                             f"{names})") from None
        if _side(target) < 2:
            raise ModelError(f"layer {self.layer!r} has no spatial map to explain")
        self.side = _side(target)
        self._probe = keras.Model(core.inputs, [target.output, logits.output])

    def maps(self, faces: np.ndarray, targets: np.ndarray, batch: int = 128) -> np.ndarray:
        """Float32 (N, 48, 48) class activation maps, >= 0, for class targets[i] of face i."""
        if len(faces) == 0:
            return np.zeros((0, SIDE, SIDE), dtype=np.float32)
        return np.concatenate([self._batch(faces[i:i + batch], targets[i:i + batch])
                               for i in range(0, len(faces), batch)])

    def _batch(self, faces: np.ndarray, targets: np.ndarray) -> np.ndarray:
        tf = self._tf
        x = self._scaling(faces[..., None].astype(np.float32))
        with tf.GradientTape() as tape:
            activations, logits = self._probe(x, training=False)
            # Faces are independent in inference mode, so one sum gives every gradient.
            score = tf.reduce_sum(tf.gather(logits, targets, axis=1, batch_dims=1))
        gradients = tape.gradient(score, activations)
        weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(weights * activations, axis=-1)).numpy()
        return upsample(cam)


def upsample(maps: np.ndarray) -> np.ndarray:
    """(N, h, w) maps to (N, 48, 48), bilinear, each cell centred on the pixels it sees."""
    import cv2

    return np.stack([cv2.resize(m.astype(np.float32), (SIDE, SIDE),
                                interpolation=cv2.INTER_LINEAR) for m in maps])


# --- occlusion ----------------------------------------------------------------------


@dataclass(frozen=True)
class Occlusion:
    patch: int = 8
    stride: int = 4

    def positions(self) -> list[tuple[int, int]]:
        starts = list(range(0, SIDE - self.patch + 1, self.stride))
        if starts[-1] != SIDE - self.patch:  # cover the last rows and columns too
            starts.append(SIDE - self.patch)
        return [(r, c) for r in starts for c in starts]

    def maps(self, predict: Predict, faces: np.ndarray, targets: np.ndarray,
             faces_per_call: int = 16) -> np.ndarray:
        """Float32 (N, 48, 48): mean drop in p(target) over the patches covering each pixel.

        Positive where hiding the pixel lowers the class probability (evidence for
        it), negative where hiding it raises it. `predict` sees many faces per call
        so a batched runtime can batch them.
        """
        out = np.empty((len(faces), SIDE, SIDE), dtype=np.float32)
        for i in range(0, len(faces), faces_per_call):
            out[i:i + faces_per_call] = self._chunk(predict, faces[i:i + faces_per_call],
                                                    targets[i:i + faces_per_call])
        return out

    def _chunk(self, predict: Predict, faces: np.ndarray, targets: np.ndarray) -> np.ndarray:
        positions = self.positions()
        n, p = len(faces), len(positions)
        occluded = np.repeat(faces[:, None], p, axis=1)  # (n, p, 48, 48)
        fill = faces.reshape(n, -1).mean(axis=1).round().astype(np.uint8)
        for k, (r, c) in enumerate(positions):
            occluded[:, k, r:r + self.patch, c:c + self.patch] = fill[:, None, None]
        probabilities = predict(np.concatenate([faces, occluded.reshape(n * p, SIDE, SIDE)]))
        base = probabilities[np.arange(n), targets]
        hidden = probabilities[n:].reshape(n, p, -1)[np.arange(n), :, targets]  # (n, p)
        drop = base[:, None] - hidden
        total = np.zeros((n, SIDE, SIDE), dtype=np.float64)
        coverage = np.zeros((SIDE, SIDE), dtype=np.float64)
        for k, (r, c) in enumerate(positions):
            total[:, r:r + self.patch, c:c + self.patch] += drop[:, k, None, None]
            coverage[r:r + self.patch, c:c + self.patch] += 1
        return (total / coverage).astype(np.float32)


# --- summaries ----------------------------------------------------------------------


def normalised(maps: np.ndarray) -> np.ndarray:
    """Positive part of each map scaled to a maximum of 1 (all-zero maps stay zero),
    so every face weighs the same in a mean and maps of two methods compare."""
    positive = np.maximum(maps, 0.0)
    peak = positive.reshape(len(maps), -1).max(axis=1)
    return positive / np.where(peak > 0, peak, 1.0)[:, None, None]


def class_means(maps: np.ndarray, labels: np.ndarray, classes: int) -> np.ndarray:
    """(classes, 48, 48) mean of the normalised maps of each class's faces (0 if none)."""
    unit = normalised(maps)
    means = np.zeros((classes, SIDE, SIDE), dtype=np.float32)
    for c in range(classes):
        if (labels == c).any():
            means[c] = unit[labels == c].mean(axis=0)
    return means


def correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-face Pearson correlation of two (N, 48, 48) map stacks (NaN for a flat map)."""
    a = a.reshape(len(a), -1) - a.reshape(len(a), -1).mean(axis=1, keepdims=True)
    b = b.reshape(len(b), -1) - b.reshape(len(b), -1).mean(axis=1, keepdims=True)
    norm = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(axis=1) / norm


REGION_DEFINITION = {
    "eyes_brows": "rows from 0.6 d above to 0.35 d below the eye row, within d of the centre "
                  "line",
    "mouth": "rows from 0.75 d to 1.45 d below the eye row, within 0.7 d of the centre line",
    "border": "the outer eighth of the side (6 pixels) all round; excluded from the others",
    "where": "eye row = eye_y x 48, d = eye_distance x 48 (the sidecar's framing)",
}


def regions(framing: dict[str, float]) -> dict[str, np.ndarray]:
    """Boolean 48x48 masks of face regions, placed by the model's framing (sidecar).

    The face is aligned with the eyes at row eye_y and eye_distance apart; by the
    usual proportions the mouth lies about 1.1 eye distances below the eyes. The
    border (an eighth of the side) is hair, ears and background in FER2013 crops.
    """
    eye, d, mid = framing["eye_y"] * SIDE, framing["eye_distance"] * SIDE, SIDE / 2
    rows, cols = np.mgrid[0:SIDE, 0:SIDE] + 0.5
    edge = SIDE // 8
    border = (rows < edge) | (rows > SIDE - edge) | (cols < edge) | (cols > SIDE - edge)
    eyes = ((rows >= eye - 0.6 * d) & (rows < eye + 0.35 * d)
            & (np.abs(cols - mid) < 1.0 * d) & ~border)
    mouth = ((rows >= eye + 0.75 * d) & (rows < eye + 1.45 * d)
             & (np.abs(cols - mid) < 0.7 * d) & ~border)
    return {"eyes_brows": eyes, "mouth": mouth, "border": border}


def region_shares(mean_map: np.ndarray, masks: dict[str, np.ndarray]) -> dict[str, float]:
    """Share of a map's positive mass inside each region."""
    positive = np.maximum(mean_map, 0.0)
    total = float(positive.sum())
    return {name: round(float(positive[mask].sum()) / total, 4) if total > 0 else 0.0
            for name, mask in masks.items()}
