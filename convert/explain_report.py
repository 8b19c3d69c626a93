"""`edge-convert explain`: the maps of a float and/or int8 model over one split, on disk.

Writes, into the output folder:
- `samples_<Class>.png`: per true class, up to N correctly and N wrongly classified
  faces, each with its maps side by side (Grad-CAM float, occlusion float, occlusion
  int8: whichever models were given), for the class the model predicted;
- `mean_maps.png` and `mean_maps.npz`: per class, the mean map over the split's
  faces of that class, for the true class, over the class's mean face;
- `explain.json`: settings, how much of each mean map falls on the eyes and brows,
  the mouth and the border, and how alike the float and int8 maps are.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from convert import explain
from convert.data import FaceSet
from edge.classify import EmotionClassifier, sha256_of
from edge.errors import ModelError

FORMAT = "edge-emotion-explain/1"
FLOAT_BATCH = 256
GRADCAM, OCC_FLOAT, OCC_INT8 = "gradcam_float", "occlusion_float", "occlusion_int8"
TITLES = {GRADCAM: "Grad-CAM, float", OCC_FLOAT: "occlusion, float",
          OCC_INT8: "occlusion, int8 (device)"}


@dataclass(frozen=True)
class Settings:
    per_class: int = 6  # sample faces per class, correct and wrong each
    seed: int = 1234
    occlusion: explain.Occlusion = field(default_factory=explain.Occlusion)
    layer: str = ""  # Grad-CAM layer; empty: explain.default_layer
    occlusion_faces: int = 0  # faces for the occlusion means, stratified; 0: all
    threads: int = 1  # interpreter threads of the int8 model
    command: str = ""  # as typed, for the record


@dataclass
class Loaded:
    """The models a run explains: either or both."""

    keras_path: Path | None
    tflite_path: Path | None
    gradcam: explain.GradCam | None = None
    float_predict: explain.Predict | None = None
    classifier: EmotionClassifier | None = None
    labels: tuple[str, ...] = ()
    framing: dict[str, float] | None = None


def load(keras_path: Path | None, tflite_path: Path | None, settings: Settings) -> Loaded:
    from convert.checkpoints import load_keras_model, model_kind
    from convert.tf_env import quiet_tensorflow
    from edge.align import FER_FRAMING
    from edge.model_contract import FER2013_LABELS

    loaded = Loaded(keras_path, tflite_path, labels=FER2013_LABELS, framing=dict(FER_FRAMING))
    if tflite_path is not None:
        loaded.classifier = EmotionClassifier(tflite_path, threads=settings.threads)
        loaded.labels = loaded.classifier.labels
        loaded.framing = {**FER_FRAMING, **loaded.classifier.sidecar.framing}
    if keras_path is not None:
        if model_kind(keras_path) == "savedmodel":
            raise ModelError(f"{keras_path}: Grad-CAM needs a .keras or .h5 model, "
                             "not a SavedModel")
        model = load_keras_model(quiet_tensorflow(), keras_path)
        loaded.gradcam = explain.GradCam(model, settings.layer)

        def predict(faces: np.ndarray) -> np.ndarray:
            pixels = faces[..., None].astype(np.float32)
            return np.concatenate([np.asarray(model(pixels[i:i + FLOAT_BATCH], training=False))
                                   for i in range(0, len(pixels), FLOAT_BATCH)])

        loaded.float_predict = predict
    return loaded


def draw(y: np.ndarray, hits: np.ndarray, per_class: int, seed: int, classes: int
         ) -> tuple[np.ndarray, np.ndarray]:
    """Indices of up to `per_class` correct and `per_class` wrong faces of each class,
    drawn at random (seeded), and for each drawn face whether it was correct."""
    rng = np.random.default_rng(seed)
    chosen, correct = [], []
    for c in range(classes):
        for right in (True, False):
            pool = np.flatnonzero((y == c) & (hits == right))
            take = np.sort(rng.permutation(pool)[:per_class])
            chosen.append(take)
            correct.append(np.full(len(take), right))
    return np.concatenate(chosen).astype(np.int64), np.concatenate(correct)


def stratified(y: np.ndarray, size: int, seed: int, classes: int) -> np.ndarray:
    """About `size` indices, each class in its share (at least one face), sorted."""
    if size <= 0 or size >= len(y):
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    picks = []
    for c in range(classes):
        pool = np.flatnonzero(y == c)
        if len(pool):
            picks.append(rng.permutation(pool)[:max(1, round(size * len(pool) / len(y)))])
    return np.sort(np.concatenate(picks))


def run(loaded: Loaded, faces: FaceSet, split: str, out_dir: Path, settings: Settings,
        log: Any = print) -> dict[str, Any]:
    """Compute every map, write the figures and explain.json; returns the summary."""
    from convert import explain_plot
    from convert.evaluate import data_summary

    out_dir.mkdir(parents=True, exist_ok=True)
    labels, classes = loaded.labels, len(loaded.labels)
    seconds: dict[str, float] = {}
    occlusion = settings.occlusion

    primary = loaded.float_predict or loaded.classifier.predict  # type: ignore[union-attr]
    started = time.monotonic()
    predicted = primary(faces.x).argmax(axis=1)
    seconds["predict"] = round(time.monotonic() - started, 2)
    hits = predicted == faces.y

    # Sample faces: maps for the class the (primary) model predicted.
    index, correct = draw(faces.y, hits, settings.per_class, settings.seed, classes)
    sample_maps = _maps(loaded, faces.x[index], predicted[index], occlusion, seconds, "samples")
    for c, label in enumerate(labels):
        mine = faces.y[index] == c
        if mine.any():
            explain_plot.plot_samples(
                label, faces.x[index][mine], faces.y[index][mine], predicted[index][mine],
                correct[mine], {m: v[mine] for m, v in sample_maps.items()}, labels,
                out_dir / f"samples_{label}.png", TITLES)

    # Class means: maps for the true class. Grad-CAM is cheap: the whole split.
    means: dict[str, np.ndarray] = {}
    if loaded.gradcam is not None:
        started = time.monotonic()
        means[GRADCAM] = explain.class_means(loaded.gradcam.maps(faces.x, faces.y), faces.y,
                                             classes)
        seconds["gradcam_means"] = round(time.monotonic() - started, 2)
    some = stratified(faces.y, settings.occlusion_faces, settings.seed, classes)
    for method, predict in ((OCC_FLOAT, loaded.float_predict),
                            (OCC_INT8, loaded.classifier.predict if loaded.classifier else None)):
        if predict is None:
            continue
        started = time.monotonic()
        maps = occlusion.maps(predict, faces.x[some], faces.y[some])
        means[method] = explain.class_means(maps, faces.y[some], classes)
        seconds[f"{method}_means"] = round(time.monotonic() - started, 2)
        log(f"{TITLES[method]}: {len(some)} faces x {len(occlusion.positions())} patches in "
            f"{seconds[f'{method}_means']:.0f} s")
    mean_faces = np.stack([faces.x[faces.y == c].mean(axis=0) if (faces.y == c).any()
                           else np.zeros((explain.SIDE, explain.SIDE)) for c in range(classes)])
    np.savez_compressed(out_dir / "mean_maps.npz", labels=np.array(labels),
                        mean_faces=mean_faces.astype(np.float32), **means)
    explain_plot.plot_means(means, mean_faces, labels, out_dir / "mean_maps.png", TITLES,
                            f"{Path(faces.source).name} ({split}), mean map per true class")

    masks = explain.regions(loaded.framing or {})
    summary: dict[str, Any] = {
        "format": FORMAT,
        "command": settings.command,
        "data": data_summary(faces, split),
        "models": {"float": _model_record(loaded.keras_path),
                   "int8": _model_record(loaded.tflite_path),
                   "int8_converted_from_float": _same_source(loaded)},
        "labels": list(labels),
        "accuracy": round(float(hits.mean()), 6),
        "accuracy_of": "float" if loaded.float_predict else "int8",
        "methods": _methods(loaded, occlusion),
        "samples": {"per_class": settings.per_class, "seed": settings.seed,
                    "faces": len(index), "target": "the predicted class",
                    "images": {label: f"samples_{label}.png" for c, label in enumerate(labels)
                               if (faces.y[index] == c).any()}},
        "means": {"target": "the true class",
                  "faces_gradcam": len(faces) if loaded.gradcam else 0,
                  "faces_occlusion": len(some), "subsampled": len(some) < len(faces),
                  "image": "mean_maps.png", "arrays": "mean_maps.npz",
                  "normalisation": "each face's map: positive part scaled to a maximum of 1"},
        "regions": {"framing": loaded.framing, "definition": explain.REGION_DEFINITION,
                    "area_share": {n: round(float(m.mean()), 4) for n, m in masks.items()},
                    "shares": {method: {label: explain.region_shares(means[method][c], masks)
                                        for c, label in enumerate(labels)}
                               for method in means}},
        "agreement": _agreement(sample_maps, means, labels),
        "seconds": seconds,
    }
    from edge.model_contract import write_json

    write_json(out_dir / "explain.json", summary)
    return summary


def _maps(loaded: Loaded, x: np.ndarray, targets: np.ndarray, occlusion: explain.Occlusion,
          seconds: dict[str, float], what: str) -> dict[str, np.ndarray]:
    maps: dict[str, np.ndarray] = {}
    started = time.monotonic()
    if loaded.gradcam is not None:
        maps[GRADCAM] = loaded.gradcam.maps(x, targets)
    if loaded.float_predict is not None:
        maps[OCC_FLOAT] = occlusion.maps(loaded.float_predict, x, targets)
    if loaded.classifier is not None:
        maps[OCC_INT8] = occlusion.maps(loaded.classifier.predict, x, targets)
    seconds[what] = round(time.monotonic() - started, 2)
    return maps


def _same_source(loaded: Loaded) -> bool | None:
    """Whether the int8 model's sidecar names the float model as its source (by hash)."""
    if loaded.classifier is None or loaded.keras_path is None:
        return None
    source = loaded.classifier.sidecar.source_model or {}
    if not source.get("sha256") or not loaded.keras_path.is_file():
        return None
    return bool(source["sha256"] == sha256_of(loaded.keras_path))


def _model_record(path: Path | None) -> dict[str, str] | None:
    if path is None:
        return None
    return {"path": str(path), "sha256": sha256_of(path) if path.is_file() else ""}


def _methods(loaded: Loaded, occlusion: explain.Occlusion) -> dict[str, Any]:
    methods: dict[str, Any] = {}
    if loaded.gradcam is not None:
        methods["gradcam"] = {"layer": loaded.gradcam.layer,
                              "layer_side": loaded.gradcam.side,
                              "score": "the class logit (before softmax)"}
    else:
        methods["gradcam"] = None  # it needs the float checkpoint's gradients
    methods["occlusion"] = {"patch": occlusion.patch, "stride": occlusion.stride,
                            "positions": len(occlusion.positions()),
                            "fill": "the face's mean grey",
                            "value": "drop of the class probability, averaged over the "
                                     "patches covering each pixel",
                            "int8_inference": "edge.classify.EmotionClassifier.predict, as "
                                              "the device runs it (the sidecar's mirror rule)"}
    return methods


def _agreement(sample_maps: dict[str, np.ndarray], means: dict[str, np.ndarray],
               labels: tuple[str, ...]) -> dict[str, Any]:
    """How alike the float and int8 occlusion maps are (same method, same faces)."""
    if OCC_FLOAT not in sample_maps or OCC_INT8 not in sample_maps:
        return {}
    r = explain.correlation(explain.normalised(sample_maps[OCC_FLOAT]),
                            explain.normalised(sample_maps[OCC_INT8]))
    r = r[np.isfinite(r)]
    class_r = explain.correlation(means[OCC_FLOAT], means[OCC_INT8])
    return {"occlusion_float_vs_int8": {
        "sample_faces": len(r),
        "median_correlation": round(float(np.median(r)), 4) if len(r) else None,
        "mean_correlation": round(float(r.mean()), 4) if len(r) else None,
        "class_mean_correlation": {label: round(float(v), 4)
                                   for label, v in zip(labels, class_r, strict=True)}}}
