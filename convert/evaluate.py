"""Evaluate the int8 model the way the device runs it, against the float model.

The .tflite goes through `edge.classify.EmotionClassifier`, the device's own
preprocessing and dequantization, so the numbers here are the numbers the Pi
gets. The float Keras model (optional) shows what quantization cost.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from convert.checkpoints import load_keras_model, model_kind
from convert.data import FaceSet
from convert.split import selection_role
from convert.tf_env import quiet_tensorflow
from edge.classify import EmotionClassifier, sha256_of
from edge.errors import ModelError
from edge.model_contract import ALWAYS, Sidecar, mirror_averaged

LATENCY_WARMUP = 10
FLOAT_BATCH = 256


# --- predictions --------------------------------------------------------------------


def float_probabilities(model_path: Path, x: np.ndarray) -> np.ndarray:
    """Softmax outputs of the float model (.keras, .h5 or SavedModel) for uint8 faces.

    The float model takes raw 0..255 pixels (it rescales internally), which is
    what the sidecar's mean 0 / std 1 says, so nothing is normalised here.
    """
    kind = model_kind(model_path)
    tf = quiet_tensorflow()
    pixels = x[..., None].astype(np.float32)
    if kind == "savedmodel":
        try:
            serve = tf.saved_model.load(str(model_path)).signatures["serving_default"]
        except Exception as exc:  # corrupt graph, missing signature
            raise ModelError(f"{model_path}: unusable SavedModel ({exc!s:.200})") from None

        def predict(batch: np.ndarray) -> np.ndarray:
            return next(iter(serve(tf.constant(batch)).values())).numpy()
    else:
        model = load_keras_model(tf, model_path)

        def predict(batch: np.ndarray) -> np.ndarray:
            return np.asarray(model(batch, training=False))
    return np.concatenate([predict(pixels[i : i + FLOAT_BATCH])
                           for i in range(0, len(pixels), FLOAT_BATCH)])


def measure_latency(classifier: EmotionClassifier, x: np.ndarray, faces: int) -> dict[str, Any]:
    """Per-face time of single-face predict calls: preprocessing, invoke, dequantize."""
    sample = x[: max(1, min(faces, len(x)))]
    for face in sample[:LATENCY_WARMUP]:  # first invokes plan XNNPACK and warm caches
        classifier.predict(face)
    times = []
    for face in sample:
        start = time.perf_counter()
        classifier.predict(face)
        times.append(time.perf_counter() - start)
    ms = np.array(times) * 1000.0
    # The mean is the cost per face when only uncertain faces get a mirror pass.
    return {"median": round(float(np.median(ms)), 4), "mean": round(float(ms.mean()), 4),
            "p90": round(float(np.percentile(ms, 90)), 4),
            "faces": len(sample), "threads": 1, "runtime": classifier.runtime,
            "machine": platform.machine()}


# --- metrics ------------------------------------------------------------------------


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, classes: int) -> np.ndarray:
    """Rows: true class, columns: predicted class."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def per_class(matrix: np.ndarray, labels: tuple[str, ...]) -> dict[str, dict[str, float]]:
    true_positive = np.diag(matrix).astype(np.float64)
    predicted, actual = matrix.sum(axis=0), matrix.sum(axis=1)
    # A class never predicted (or absent) has precision (recall) 0, not NaN.
    precision = np.divide(true_positive, predicted, out=np.zeros_like(true_positive),
                          where=predicted > 0)
    recall = np.divide(true_positive, actual, out=np.zeros_like(true_positive),
                       where=actual > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(both), where=both > 0)
    return {label: {"precision": round(float(precision[i]), 6),
                    "recall": round(float(recall[i]), 6),
                    "f1": round(float(f1[i]), 6), "support": int(actual[i])}
            for i, label in enumerate(labels)}


def scores(probabilities: np.ndarray, y: np.ndarray, labels: tuple[str, ...]) -> dict[str, Any]:
    predicted = probabilities.argmax(axis=1)
    matrix = confusion_matrix(y, predicted, len(labels))
    return {"accuracy": round(float((predicted == y).mean()), 6),
            "per_class": per_class(matrix, labels), "confusion": matrix.tolist()}


def agreement(int8: np.ndarray, floats: np.ndarray) -> dict[str, float]:
    difference = np.abs(int8 - floats)
    return {"argmax": round(float((int8.argmax(axis=1) == floats.argmax(axis=1)).mean()), 6),
            "max_abs_probability_difference": round(float(difference.max()), 6),
            "mean_abs_probability_difference": round(float(difference.mean()), 6)}


def data_summary(faces: FaceSet, split: str) -> dict[str, Any]:
    source = Path(faces.source)
    summary: dict[str, Any] = {"source": faces.source, "split": split, "n": len(faces)}
    if source.is_file():  # a folder tree has no single hash worth the time
        summary["sha256"] = sha256_of(source)
    return summary


def inference_summary(classifier: EmotionClassifier, mirrored: np.ndarray) -> dict[str, Any]:
    """How the sidecar says to classify, and how many faces got the mirror pass."""
    summary: dict[str, Any] = {"mirror_average": classifier.mirror_average}
    if classifier.mirror_average and classifier.mirror_margin < ALWAYS:
        summary |= {"mirror_margin": classifier.mirror_margin,
                    "mirrored_fraction": round(float(mirrored.mean()), 6)}
    return summary


def evaluate(model_path: Path, faces: FaceSet, split: str, keras_path: Path | None = None,
             latency_faces: int = 300) -> dict[str, Any]:
    """The JSON report: int8 scores, float scores and agreement, size, latency."""
    classifier = EmotionClassifier(model_path, threads=1)  # 1 thread: the latency we report
    labels = classifier.labels
    int8, mirrored = classifier.predict_and_mirrored(faces.x)
    report: dict[str, Any] = {
        "model": {"path": str(model_path), "sha256": sha256_of(model_path),
                  "size_bytes": model_path.stat().st_size,
                  "sidecar_matches": classifier.sidecar.tflite_sha256 == sha256_of(model_path)},
        "data": data_summary(faces, split),
        "labels": list(labels),
        "inference": inference_summary(classifier, mirrored),
        "int8": scores(int8, faces.y, labels),
        "float": None,
        "agreement": None,
        "latency_ms": measure_latency(classifier, faces.x, latency_faces),
    }
    role = selection_role(keras_path, faces.source)
    if role:  # what the training run used this data for, as its run.json says
        report["data"]["role"] = role
    if keras_path is not None:
        floats = float_probabilities(keras_path, faces.x)
        if classifier.mirror_average:  # compare like with like: the same inference rule
            floats, _ = mirror_averaged(floats, faces.x, classifier.mirror_margin,
                                        lambda flipped: float_probabilities(keras_path, flipped))
        report["float"] = {"model": str(keras_path), **scores(floats, faces.y, labels)}
        report["agreement"] = agreement(int8, floats)
    return report


# --- output -------------------------------------------------------------------------


def format_report(report: dict[str, Any]) -> str:
    """The table printed by `edge-convert evaluate`."""
    data, int8 = report["data"], report["int8"]
    lines = [f"data: {data['source']} (split {data['split']}, {data['n']} faces)",
             f"model: {report['model']['path']} ({report['model']['size_bytes']:,} bytes)",
             f"int8 accuracy: {int8['accuracy']:.4f}"]
    if report["float"] is not None:
        agree = report["agreement"]
        lines += [f"float accuracy: {report['float']['accuracy']:.4f}",
                  f"int8 vs float argmax agreement: {agree['argmax']:.4f} "
                  f"(max |dp| {agree['max_abs_probability_difference']:.4f})"]
    latency = report["latency_ms"]
    mirrored = report.get("inference", {}).get("mirrored_fraction")
    lines += [f"latency: {latency['median']:.3f} ms per face (median of {latency['faces']}, "
              f"mean {latency.get('mean', latency['median']):.3f}, 1 thread, "
              f"{latency['runtime']})"
              + (f"; {mirrored:.1%} of faces got the mirror pass" if mirrored is not None else ""),
              "",
              f"{'class':<10} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>8}"]
    for label, row in int8["per_class"].items():
        lines.append(f"{label:<10} {row['precision']:>9.3f} {row['recall']:>7.3f} "
                     f"{row['f1']:>7.3f} {row['support']:>8d}")
    if data.get("role") == "test":
        lines.append("test figure: the float model's checkpoint was selected on other faces "
                     "(its run.json)")
    elif data.get("role") == "selection":
        lines.append("note: the float model's checkpoint was selected on this data (its "
                     "run.json): a selection figure, optimistic as a test figure")
    if not report["model"]["sidecar_matches"]:
        lines.append("warning: the sidecar's tflite_sha256 does not match this model file")
    return "\n".join(lines)


def plot_confusion(report: dict[str, Any], path: Path) -> None:
    """Counts and row-normalised (recall) confusion matrices side by side."""
    import matplotlib

    matplotlib.use("Agg")  # no display on build servers
    import matplotlib.pyplot as plt

    labels = report["labels"]
    counts = np.array(report["int8"]["confusion"])
    rows = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    figure, axes = plt.subplots(1, 2, figsize=(14, 6), constrained_layout=True)
    for ax, values, title, fmt in ((axes[0], counts, "counts", "{:.0f}"),
                                   (axes[1], normalised, "row-normalised (recall)", "{:.2f}")):
        image = ax.imshow(values, cmap="Blues", vmin=0)
        figure.colorbar(image, ax=ax, fraction=0.046)
        ax.set(xticks=range(len(labels)), yticks=range(len(labels)), xlabel="predicted",
               ylabel="true", title=title)
        ax.set_xticklabels(labels, rotation=45, ha="right")
        ax.set_yticklabels(labels)
        threshold = values.max() / 2 if values.max() > 0 else 1
        for (i, j), value in np.ndenumerate(values):
            ax.text(j, i, fmt.format(value), ha="center", va="center", fontsize=9,
                    color="white" if value > threshold else "black")
    data = report["data"]
    figure.suptitle(f"{Path(report['model']['path']).name} on {data['split']} "
                    f"({data['n']} faces): int8 accuracy {report['int8']['accuracy']:.4f}")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def sidecar_metrics(report: dict[str, Any]) -> dict[str, Any]:
    data = report["data"]
    return {
        "source": data["source"], "split": data["split"], "n": data["n"],
        "int8_accuracy": report["int8"]["accuracy"],
        "float_accuracy": report["float"]["accuracy"] if report["float"] else None,
        "agreement": report["agreement"]["argmax"] if report["agreement"] else None,
        "per_class": report["int8"]["per_class"],
        "latency_ms": {k: report["latency_ms"][k]
                       for k in ("median", "threads", "runtime", "machine")},
    }


def update_sidecar(model_path: Path, report: dict[str, Any]) -> Path:
    """Replace the sidecar's "metrics" and nothing else."""
    sidecar_path = model_path.with_suffix(".json")
    sidecar = Sidecar.read(sidecar_path)
    # Metrics of one model must not land in another model's sidecar.
    if sidecar.tflite_sha256 != report["model"]["sha256"]:
        raise ModelError(f"{sidecar_path}: tflite_sha256 does not match {model_path}; "
                         "re-run quantize rather than updating a stale sidecar")
    sidecar.with_metrics(sidecar_metrics(report)).write(sidecar_path)
    return sidecar_path
