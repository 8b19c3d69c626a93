"""edge-convert end to end on tiny fake data: train, quantize, evaluate, and bad input.

TensorFlow is slow to import and to convert, so one tiny model is trained,
quantized and evaluated once per module by a fixture (on the Kaggle CSV form; the
image-folder form is checked to read the same faces), and the tests only look at
the results. The tiny network trains for ~250 steps:
enough for batch-norm statistics to settle, so its outputs have real margins and
int8-vs-float agreement means something.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner, Result

from convert.calibration import calibration_set
from convert.checkpoints import source_sha256
from convert.cli import main
from convert.data import FaceSet, load_faces
from convert.errors import ConversionError, DataError
from convert.quantize import DEFAULT_FRAMING, load_framing
from convert.ranges import DEFAULT_RANGE_QUANTILE
from convert.tf_env import quiet_native_output, quiet_tensorflow
from convert.tflite import inspect_tflite
from edge.classify import EmotionClassifier
from edge.errors import ModelError
from edge.model_contract import FER2013_LABELS, Sidecar
from tests.conftest import MODELS_DIR, require_path, require_shared, synthetic_faces

slow = pytest.mark.slow  # needs TensorFlow: trains, converts or starts a process

TINY = ["--width", "8", "--modules", "2", "--middle", "0", "--stem", "8", "--epochs", "12",
        "--batch-size", "4", "--lr", "0.01", "--l2", "0", "--dropout", "0", "--threads", "1"]
TRAIN_PER_CLASS, TEST_PER_CLASS = 12, 4
SIDECAR_KEYS = {"format", "labels", "input", "output", "framing", "inference", "source_model",
                "tflite_sha256", "size_bytes", "calibration", "converter", "metrics",
                "selftest"}


def run_cli(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_ok(result: Result) -> Result:
    assert result.exit_code == 0, f"{result.output}\n{result.stderr}\n{result.exception!r}"
    return result


def assert_one_line_error(result: Result, *fragments: str) -> str:
    """Non-zero exit, exactly one `edge-convert: error:` line, no traceback."""
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("edge-convert: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- fake FER2013 in two forms ------------------------------------------------------


def write_csv(path: Path, rows: list[tuple[int, str, str]]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["emotion", "pixels", "Usage"])
        writer.writerows(rows)
    return path


def csv_rows(x: np.ndarray, y: np.ndarray, usage: str) -> list[tuple[int, str, str]]:
    return [(int(label), " ".join(map(str, image.ravel())), usage)
            for image, label in zip(x, y, strict=True)]


def write_folders(root: Path, split_dir: str, prefix: str, x: np.ndarray, y: np.ndarray) -> None:
    for i, (image, label) in enumerate(zip(x, y, strict=True)):
        folder = root / split_dir / FER2013_LABELS[label].lower()
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{prefix}_{i:04d}.png"), image)


@pytest.fixture(scope="module")
def fake_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fer")
    train = synthetic_faces(TRAIN_PER_CLASS, seed=1)
    test = synthetic_faces(TEST_PER_CLASS, seed=2)
    write_csv(root / "fer2013.csv",
              csv_rows(*train, "Training") + csv_rows(*test, "PublicTest"))
    write_folders(root / "folders", "train", "Training", *train)
    write_folders(root / "folders", "test", "PublicTest", *test)
    return {"csv": root / "fer2013.csv", "folders": root / "folders"}


@dataclass(frozen=True)
class Pipeline:
    """One trained, quantized and evaluated tiny model."""

    data: Path
    keras: Path
    tflite: Path
    sidecar_before_evaluate: dict
    report: Path
    confusion: Path


def run_pipeline(data: Path, work: Path) -> Pipeline:
    assert_ok(run_cli("train", "--data", data, "--out", work / "run", *TINY))
    keras = work / "run" / "best.keras"
    tflite = work / "models" / "tiny.tflite"
    assert_ok(run_cli("quantize", keras, "--data", data, "--out", tflite,
                      "--calibration-size", 7 * TRAIN_PER_CLASS, "--seed", 7))
    before = json.loads(tflite.with_suffix(".json").read_text())
    report, confusion = work / "report.json", work / "confusion.png"
    assert_ok(run_cli("evaluate", tflite, "--data", data, "--keras", keras, "--report", report,
                      "--confusion", confusion, "--update-sidecar", "--latency-faces", 20))
    return Pipeline(data, keras, tflite, before, report, confusion)


@pytest.fixture(scope="module")
def pipeline(fake_data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    return run_pipeline(fake_data["csv"], tmp_path_factory.mktemp("csv"))


def as_set(faces: FaceSet) -> list[tuple[int, bytes]]:
    """The faces with their labels, in a canonical order (folders list classes A-Z)."""
    return sorted((int(label), image.tobytes()) for image, label in zip(faces.x, faces.y,
                                                                        strict=True))


@pytest.mark.parametrize("split", ["train", "publictest"])
def test_folders_read_the_same_faces_as_the_csv(fake_data: dict[str, Path], split: str) -> None:
    """The data form only changes the reader: the pipeline runs on one of them."""
    from_csv = load_faces(fake_data["csv"], split)
    from_folders = load_faces(fake_data["folders"], split)
    assert len(from_csv) == (7 * (TRAIN_PER_CLASS if split == "train" else TEST_PER_CLASS))
    assert as_set(from_folders) == as_set(from_csv)


# --- the quantized model ------------------------------------------------------------


@slow
def test_model_loads_in_device_classifier(pipeline: Pipeline) -> None:
    classifier = EmotionClassifier(pipeline.tflite, threads=1)
    faces, _ = synthetic_faces(2, seed=3)
    probabilities = classifier.predict(faces)
    assert classifier.labels == FER2013_LABELS
    assert probabilities.shape == (len(faces), len(FER2013_LABELS))
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=0.05)


@slow
def test_every_op_is_int8(pipeline: Pipeline) -> None:
    inspection = inspect_tflite(pipeline.tflite.read_bytes())
    assert inspection.input.dtype == "int8" and inspection.output.dtype == "int8"
    assert (inspection.input.scale, inspection.input.zero_point) == (1.0, -128)
    assert (inspection.output.scale, inspection.output.zero_point) == (1 / 256, -128)
    assert inspection.non_int8_ops == ()
    assert not {"QUANTIZE", "DEQUANTIZE", "DELEGATE"} & set(inspection.ops)
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "SOFTMAX"} <= set(inspection.ops)


@slow
def test_no_float_tensor_in_any_op(pipeline: Pipeline) -> None:
    """Independent of inspect_tflite: read the ops straight from the interpreter."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(
        model_path=str(pipeline.tflite),
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    dtypes = {t["index"]: np.dtype(t["dtype"]) for t in interpreter.get_tensor_details()}
    for op in interpreter._get_ops_details():
        for index in (*op["inputs"], *op["outputs"]):
            if index >= 0:
                assert dtypes[index] in (np.int8, np.int32), (op["op_name"], dtypes[index])
        assert all(dtypes[i] == np.int8 for i in op["outputs"]), op["op_name"]


@slow
def test_sidecar_is_complete_and_right(pipeline: Pipeline) -> None:
    sidecar = pipeline.sidecar_before_evaluate
    assert set(sidecar) == SIDECAR_KEYS
    assert sidecar["format"] == "edge-emotion-model/1"
    assert sidecar["labels"] == list(FER2013_LABELS)
    assert sidecar["input"] == {
        "shape": [1, 48, 48, 1], "dtype": "int8",
        "normalisation": {"mean": 0.0, "std": 1.0, "note": sidecar["input"]["normalisation"]
                          ["note"]},
        "quantization": {"scale": 1.0, "zero_point": -128}}
    assert "0..255" in sidecar["input"]["normalisation"]["note"]
    assert sidecar["output"] == {"shape": [1, 7], "dtype": "int8", "kind": "probabilities",
                                 "quantization": {"scale": 1 / 256, "zero_point": -128}}
    assert sidecar["framing"] == DEFAULT_FRAMING
    assert sidecar["source_model"] == {"path": str(pipeline.keras),
                                       "sha256": sha256(pipeline.keras)}
    assert sidecar["tflite_sha256"] == sha256(pipeline.tflite)
    assert sidecar["size_bytes"] == pipeline.tflite.stat().st_size
    assert sidecar["calibration"] == {"source": str(pipeline.data),
                                      "per_class": TRAIN_PER_CLASS,
                                      "total": 7 * TRAIN_PER_CLASS, "seed": 7,
                                      "range_quantile": DEFAULT_RANGE_QUANTILE,
                                      "ranges": "0.95-quantile of per-face extremes",
                                      "equalization": "depthwise output channels scaled "
                                                      "toward the widest, at most 8x"}
    assert sidecar["converter"]["tensorflow"].startswith("2.")
    assert sidecar["metrics"] == {}
    assert sidecar["selftest"]["count"] == len(sidecar["selftest"]["expected"]) > 0
    assert EmotionClassifier(pipeline.tflite).self_test.startswith("self-test passed")
    parsed = Sidecar.read(pipeline.tflite.with_suffix(".json"))
    assert parsed.input_shape == (1, 48, 48, 1) and parsed.labels == FER2013_LABELS


@slow
def test_float_and_int8_agree(pipeline: Pipeline) -> None:
    report = json.loads(pipeline.report.read_text())
    agreement = report["agreement"]
    assert agreement["argmax"] >= 0.9
    assert agreement["max_abs_probability_difference"] <= 0.06
    assert abs(report["int8"]["accuracy"] - report["float"]["accuracy"]) <= 0.1
    assert report["data"]["n"] == 7 * TEST_PER_CLASS and report["data"]["split"] == "publictest"


def activation_scales(tflite: Path) -> dict[str, float]:
    """Per-tensor activation scales by tensor name (weights are per-channel, skipped)."""
    from ai_edge_litert.interpreter import Interpreter

    details = Interpreter(model_path=str(tflite)).get_tensor_details()
    return {d["name"]: float(d["quantization"][0]) for d in details
            if d["dtype"] == np.int8 and len(d["quantization_parameters"]["scales"]) == 1}


@slow
def test_robust_ranges_are_never_wider_than_absolute(pipeline: Pipeline,
                                                     tmp_path: Path) -> None:
    absolute = tmp_path / "absolute.tflite"
    assert_ok(run_cli("quantize", pipeline.keras, "--data", pipeline.data, "--out",
                      absolute, "--calibration-size", 7 * TRAIN_PER_CLASS, "--seed", 7,
                      "--range-quantile", 1))
    sidecar = json.loads(absolute.with_suffix(".json").read_text())
    assert sidecar["calibration"]["ranges"] == "absolute min/max"
    assert sidecar["calibration"]["equalization"].startswith("depthwise output channels")
    wide, robust = activation_scales(absolute), activation_scales(pipeline.tflite)
    shared = [name for name in robust if name in wide]
    assert len(shared) >= 10
    assert all(robust[n] <= wide[n] * 1.0001 for n in shared)
    assert sum(robust[n] < wide[n] * 0.99 for n in shared) >= len(shared) // 3
    # The pinned input and the fixed softmax output keep their exact quantization.
    assert sidecar["input"] == pipeline.sidecar_before_evaluate["input"]
    assert sidecar["output"] == pipeline.sidecar_before_evaluate["output"]


@slow
def test_mirror_margin_in_sidecar_and_evaluation(pipeline: Pipeline, tmp_path: Path) -> None:
    tflite = tmp_path / "gated.tflite"
    assert_ok(run_cli("quantize", pipeline.keras, "--data", pipeline.data, "--out",
                      tflite, "--calibration-size", 7 * TRAIN_PER_CLASS, "--mirror-average",
                      "--mirror-margin", "0.5"))
    inference = json.loads(tflite.with_suffix(".json").read_text())["inference"]
    assert inference == {"mirror_average": True, "mirror_margin": 0.5}
    report_path = tmp_path / "report.json"
    result = assert_ok(run_cli("evaluate", tflite, "--data", pipeline.data, "--keras",
                               pipeline.keras, "--report", report_path,
                               "--latency-faces", 10))
    report = json.loads(report_path.read_text())
    assert report["inference"]["mirror_margin"] == 0.5
    assert 0.0 <= report["inference"]["mirrored_fraction"] <= 1.0
    assert "got the mirror pass" in result.output
    assert report["latency_ms"]["mean"] > 0 and report["agreement"]["argmax"] >= 0.9


def test_mirror_margin_needs_mirror_average(fake_data: dict[str, Path], tmp_path: Path) -> None:
    result = run_cli("quantize", tmp_path / "missing.keras", "--data", fake_data["csv"],
                     "--out", tmp_path / "m.tflite", "--mirror-margin", "0.3")
    assert_one_line_error(result, "--mirror-margin")


def test_equalize_cap_out_of_bounds(fake_data: dict[str, Path], tmp_path: Path) -> None:
    result = run_cli("quantize", tmp_path / "missing.keras", "--data", fake_data["csv"],
                     "--out", tmp_path / "m.tflite", "--equalize-cap", "0.5")
    assert_one_line_error(result, "--equalize-cap")


def test_range_quantile_out_of_bounds(fake_data: dict[str, Path], tmp_path: Path) -> None:
    result = run_cli("quantize", tmp_path / "none.keras", "--data", fake_data["csv"], "--out",
                     tmp_path / "m.tflite", "--range-quantile", 0.3)
    assert_one_line_error(result, "--range-quantile", "0.5..1")


@pytest.mark.parametrize("backend", ["no-such-backend", "torch"])
def test_missing_keras_backend_is_one_line(fake_data: dict[str, Path], tmp_path: Path,
                                           backend: str) -> None:
    """`KERAS_BACKEND` names a backend this machine lacks: one line, exit 2."""
    import importlib.util

    if importlib.util.find_spec(backend) is not None:
        pytest.skip(f"{backend} is installed here, so it is not missing")
    done = subprocess.run(
        [sys.executable, "-m", "convert.cli", "train", "--data", str(fake_data["csv"]),
         "--out", str(tmp_path / "run"), *TINY], capture_output=True, text=True, timeout=120,
        env={**os.environ, "KERAS_BACKEND": backend})
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edge-convert: error: "), done.stderr
    assert backend in lines[0]


@slow
def test_resume_keeps_the_first_command_and_history(fake_data: dict[str, Path],
                                                     tmp_path: Path) -> None:
    run = tmp_path / "run"
    def epochs(n: int) -> list[str]:
        at = TINY.index("--epochs") + 1
        return [*TINY[:at], str(n), *TINY[at + 1:]]

    assert_ok(run_cli("train", "--data", fake_data["csv"], "--out", run, *epochs(2)))
    first = json.loads((run / "run.json").read_text())["command"]
    assert_ok(run_cli("train", "--data", fake_data["csv"], "--out", run, *epochs(3), "--resume"))
    record = json.loads((run / "run.json").read_text())
    assert record["command"] == first and "--resume" not in first
    assert [r["from_epoch"] for r in record["resumed"]] == [2]
    assert "--resume" in record["resumed"][0]["command"]
    assert record["epochs_run"] == 3 and record["backend"].startswith("tensorflow ")
    with open(run / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    assert all(float(r["epoch_seconds"]) > 0 for r in rows)


def with_epochs(n: int) -> list[str]:
    at = TINY.index("--epochs") + 1
    return [*TINY[:at], str(n), *TINY[at + 1:]]


@slow
def test_quantization_aware_fine_tune(pipeline: Pipeline, tmp_path: Path) -> None:
    """--init + --quantization-aware: a plain best.keras that quantizes and follows float."""
    run = tmp_path / "qat"
    # No network options: --init reads them from the starting run's run.json.
    fine_tune = ["--epochs", "2", "--batch-size", "4", "--threads", "1",
                 "--lr", "0.001"]  # as fine-tuning is meant: a low rate
    assert_ok(run_cli("train", "--data", pipeline.data, "--out", run, *fine_tune,
                      "--init", pipeline.keras, "--quantization-aware", "--consistency", "5"))
    record = json.loads((run / "run.json").read_text())
    assert record["config"]["quantization_aware"] is True
    assert record["config"]["consistency"] == 5
    with open(run / "history.csv") as f:  # both networks validated every epoch
        assert {"val_accuracy", "val_float_accuracy", "val_agreement"} <= set(
            next(csv.DictReader(f)))
    assert record["config"]["init"] == str(pipeline.keras)
    assert record["config"]["spec"] == json.loads(
        (pipeline.keras.parent / "run.json").read_text())["config"]["spec"]
    assert "--quantization-aware" in record["command"]
    # best.keras is the deployable graph: the same layers as the model it started from.
    with zipfile.ZipFile(run / "best.keras") as z:
        config = z.read("config.json").decode()
    assert "FakeQuant" not in config and "fq_" not in config
    tflite = tmp_path / "qat.tflite"
    assert_ok(run_cli("quantize", run / "best.keras", "--data", pipeline.data, "--out",
                      tflite, "--calibration-size", 7 * TRAIN_PER_CLASS))
    report = tmp_path / "report.json"
    assert_ok(run_cli("evaluate", tflite, "--data", pipeline.data, "--keras",
                      run / "best.keras", "--report", report, "--latency-faces", 5))
    assert json.loads(report.read_text())["agreement"]["argmax"] >= 0.9
    # The card lists both commands behind the model: the training and the fine-tuning.
    card = tmp_path / "MODEL.md"
    assert_ok(run_cli("card", "--run", run, "--model", tflite, "--report", report,
                      "--quantize-command", "edge-convert q", "--evaluate-command",
                      "edge-convert e", "--out", card))
    text = card.read_text()
    base = json.loads((pipeline.keras.parent / "run.json").read_text())["command"]
    assert text.index(base) < text.index("--quantization-aware")
    assert "Quantization-aware fine-tuning" in text
    assert f"{json.loads((run / 'run.json').read_text())['parameters']:,} parameters" in text
    assert record["parameters"] == base_parameters(pipeline)
    # A quantization-aware run resumes from its own last checkpoint.
    fine_tune[fine_tune.index("--epochs") + 1] = "3"
    assert_ok(run_cli("train", "--data", pipeline.data, "--out", run, *fine_tune,
                      "--init", pipeline.keras, "--quantization-aware", "--consistency", "5",
                      "--resume"))
    assert json.loads((run / "run.json").read_text())["epochs_run"] == 3


def base_parameters(pipeline: Pipeline) -> int:
    return json.loads((pipeline.keras.parent / "run.json").read_text())["parameters"]


@slow
def test_init_that_does_not_fit_is_one_line(pipeline: Pipeline, tmp_path: Path) -> None:
    wider = [*with_epochs(1)]
    wider[wider.index("--width") + 1] = "16"
    assert_one_line_error(run_cli("train", "--data", pipeline.data, "--out", tmp_path / "a",
                                  *wider, "--init", pipeline.keras), "--width", "--init")
    assert_one_line_error(run_cli("train", "--data", pipeline.data, "--out", tmp_path / "b",
                                  *with_epochs(1), "--init", tmp_path / "none.keras"),
                          "starting model not found")
    junk = tmp_path / "junk" / "best.keras"
    junk.parent.mkdir()
    junk.write_bytes(b"not a zip")
    shutil.copy(pipeline.keras.parent / "run.json", junk.parent / "run.json")
    assert_one_line_error(run_cli("train", "--data", pipeline.data, "--out", tmp_path / "c",
                                  *with_epochs(1), "--init", junk), "not a loadable Keras model")
    # A model without its run record: its network is unknown, not guessed from flags.
    lone = tmp_path / "lone.keras"
    shutil.copy(pipeline.keras, lone)
    assert_one_line_error(run_cli("train", "--data", pipeline.data, "--out", tmp_path / "d",
                                  *with_epochs(1), "--init", lone), "--init", "run.json")


@slow
def test_report_and_confusion_png(pipeline: Pipeline) -> None:
    report = json.loads(pipeline.report.read_text())
    confusion = np.array(report["int8"]["confusion"])
    assert confusion.shape == (7, 7) and confusion.sum() == 7 * TEST_PER_CLASS
    assert list(report["int8"]["per_class"]) == list(FER2013_LABELS)
    assert report["model"]["sidecar_matches"] is True
    assert report["latency_ms"]["threads"] == 1 and report["latency_ms"]["median"] > 0
    image = cv2.imread(str(pipeline.confusion))
    assert image is not None and image.shape[1] > 1000


@slow
def test_model_card_carries_the_recorded_figures(pipeline: Pipeline, tmp_path: Path
                                                 ) -> None:
    card = tmp_path / "MODEL.md"
    assert_ok(run_cli("card", "--run", pipeline.keras.parent, "--model", pipeline.tflite,
                      "--report", pipeline.report, "--quantize-command", "edge-convert q",
                      "--evaluate-command", "edge-convert e", "--out", card))
    text = card.read_text()
    report = json.loads(pipeline.report.read_text())
    run = json.loads((pipeline.keras.parent / "run.json").read_text())
    assert f"**{report['int8']['accuracy'] * 100:.2f}%**" in text
    assert f"{run['parameters']:,} parameters" in text
    assert "edge-convert train --data" in text  # the command as run, minus this machine's path
    assert "## Limits and biases" in text and "| Disgust |" in text


@slow
def test_update_sidecar_changes_only_metrics(pipeline: Pipeline) -> None:
    after = json.loads(pipeline.tflite.with_suffix(".json").read_text())
    metrics = after.pop("metrics")
    before = dict(pipeline.sidecar_before_evaluate)
    before.pop("metrics")
    assert after == before
    report = json.loads(pipeline.report.read_text())
    assert metrics["split"] == "publictest" and metrics["n"] == 7 * TEST_PER_CLASS
    assert metrics["int8_accuracy"] == report["int8"]["accuracy"]
    assert metrics["float_accuracy"] == report["float"]["accuracy"]
    assert metrics["agreement"] == report["agreement"]["argmax"]
    assert set(metrics["per_class"]) == set(FER2013_LABELS)
    assert metrics["latency_ms"]["threads"] == 1
    assert "sha256" not in json.dumps(metrics["latency_ms"])


# --- other model and data forms ----------------------------------------------------


@slow
@pytest.mark.parametrize("form", ["h5", "savedmodel"])
def test_quantize_h5_and_savedmodel(form: str, tmp_path: Path, pipeline: Pipeline) -> None:
    """The same weights as .h5 or SavedModel convert to an int8 model that predicts alike."""
    tf = quiet_tensorflow()
    model = tf.keras.models.load_model(pipeline.keras, compile=False)
    source = tmp_path / ("m.h5" if form == "h5" else "saved")
    with quiet_native_output():  # Keras prints the exported signatures
        if form == "h5":
            model.save(source)
        else:
            model.export(source)
    tflite = tmp_path / f"{form}.tflite"
    assert_ok(run_cli("quantize", source, "--data", pipeline.data, "--out", tflite,
                      "--calibration-size", 7 * TRAIN_PER_CLASS, "--seed", 7))
    assert inspect_tflite(tflite.read_bytes()).non_int8_ops == ()
    sidecar = json.loads(tflite.with_suffix(".json").read_text())
    assert sidecar["source_model"]["sha256"] == source_sha256(source)
    # Equalization needs the Keras network: a SavedModel converts without it, and says so.
    equalization = sidecar["calibration"]["equalization"]
    assert (equalization == "none") if form == "savedmodel" else equalization.startswith(
        "depthwise output channels")
    faces, _ = synthetic_faces(TEST_PER_CLASS, seed=2)
    ours = EmotionClassifier(tflite).predict(faces)
    reference = EmotionClassifier(pipeline.tflite).predict(faces)
    assert (ours.argmax(axis=1) == reference.argmax(axis=1)).mean() >= 0.9


@slow
def test_evaluate_npz_records_its_split(tmp_path: Path, pipeline: Pipeline) -> None:
    x, y = synthetic_faces(TEST_PER_CLASS, seed=2)
    npz = tmp_path / "publictest.npz"
    np.savez(npz, x=x, y=y)
    result = assert_ok(run_cli("evaluate", pipeline.tflite, "--data", npz, "--report",
                               tmp_path / "r.json", "--latency-faces", 5))
    assert "int8 accuracy" in result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["data"]["split"] == "publictest" and report["data"]["n"] == len(y)
    assert report["data"]["sha256"] == sha256(npz)
    assert_one_line_error(run_cli("evaluate", pipeline.tflite, "--data", npz, "--split",
                                  "train"), "holds one split")


def test_quantize_refuses_test_split_for_calibration(tmp_path: Path) -> None:
    x, y = synthetic_faces(1, seed=2)
    np.savez(tmp_path / "publictest.npz", x=x, y=y)
    assert_one_line_error(run_cli("quantize", tmp_path / "m.keras", "--data",
                                  tmp_path / "publictest.npz", "--out", tmp_path / "m.tflite"),
                          "training data")


# --- calibration and options ---------------------------------------------------------


def test_calibration_is_class_balanced_and_seeded() -> None:
    x, y = synthetic_faces(30, seed=5)
    keep = (y != 1) | (np.arange(len(y)) % 30 < 4)  # only 4 Disgust faces, like FER2013's few
    faces = FaceSet(x[keep], y[keep], "fake")
    calibration = calibration_set(faces, 70, seed=3)
    assert calibration.to_dict(equalized=3) == {
        "source": "fake", "per_class": 10, "total": 64, "seed": 3,
        "range_quantile": DEFAULT_RANGE_QUANTILE, "ranges": "0.95-quantile of per-face extremes",
        "equalization": "depthwise output channels scaled toward the widest, at most 8x"}
    # What ran is recorded: a model equalization could not touch says so.
    assert calibration.to_dict(equalized=0)["equalization"] == "none"
    assert calibration.x.shape == (64, 48, 48, 1) and calibration.x.dtype == np.float32
    assert np.array_equal(calibration.x, calibration_set(faces, 70, seed=3).x)
    assert not np.array_equal(calibration.x, calibration_set(faces, 70, seed=4).x)
    assert (calibration.x.min(), calibration.x.max()) == (0.0, 255.0)


def test_calibration_pins_the_input_range() -> None:
    """A sample missing 0 or 255 still gives the exact (1, -128) input quantization."""
    x = np.full((7, 48, 48), 100, dtype=np.uint8)
    calibration = calibration_set(FaceSet(x, np.arange(7), "flat"), 7, seed=0)
    assert (calibration.x.min(), calibration.x.max()) == (0.0, 255.0)
    assert np.count_nonzero(calibration.x != 100) == 2


def test_framing_json_overrides_default(tmp_path: Path) -> None:
    framing_file = tmp_path / "framing.json"
    framing_file.write_text('{"eye_y": 0.4, "eye_distance": 0.5, "mouth_y": 0.8}')
    assert load_framing(str(framing_file)) == {"eye_y": 0.4, "eye_distance": 0.5, "mouth_y": 0.8}
    assert load_framing('{"eye_y": 0.35}') == {"eye_y": 0.35}
    assert load_framing(None) == DEFAULT_FRAMING
    with pytest.raises(ConversionError):
        load_framing('{"eye_y": "high"}')


# --- bad input: one line, non-zero exit ---------------------------------------------


def test_csv_row_with_2303_pixels(tmp_path: Path) -> None:
    x, y = synthetic_faces(1, seed=4)
    rows = csv_rows(x, y, "Training")
    rows[2] = (rows[2][0], " ".join(rows[2][1].split()[:2303]), "Training")
    bad = write_csv(tmp_path / "short.csv", rows)
    assert_one_line_error(run_cli("quantize", tmp_path / "m.keras", "--data", bad, "--out",
                                  tmp_path / "m.tflite"), f"{bad}:4", "2303 pixels")


def test_csv_unknown_label(tmp_path: Path) -> None:
    x, y = synthetic_faces(1, seed=4)
    rows = csv_rows(x, y, "PublicTest")
    rows[0] = (9, rows[0][1], "PublicTest")
    bad = write_csv(tmp_path / "label.csv", rows)
    assert_one_line_error(run_cli("evaluate", tmp_path / "m.tflite", "--data", bad),
                          f"{bad}:2", "unknown label 9")


def test_binary_csv(tmp_path: Path) -> None:
    bad = tmp_path / "binary.csv"
    bad.write_bytes(b"emotion,pixels\n\xff\xfe\x00\x81 not text")
    assert_one_line_error(run_cli("evaluate", tmp_path / "m.tflite", "--data", bad),
                          str(bad), "not a readable CSV")


def test_csv_splits_never_mix_in_training(tmp_path: Path) -> None:
    x, y = synthetic_faces(1, seed=4)
    path = write_csv(tmp_path / "fer.csv", csv_rows(x[:3], y[:3], "Training")
                     + csv_rows(x[3:5], y[3:5], "PublicTest")
                     + csv_rows(x[5:], y[5:], "PrivateTest"))
    assert list(load_faces(path, "test").y) == [3, 4, 5, 6]
    assert list(load_faces(path, "privatetest").y) == [5, 6]
    with pytest.raises(DataError, match="unknown split"):
        load_faces(path, "validation")


def test_folder_unknown_label(tmp_path: Path) -> None:
    x, y = synthetic_faces(1, seed=4)
    write_folders(tmp_path, "test", "PublicTest", x, y)
    (tmp_path / "test" / "happy").rename(tmp_path / "test" / "contempt")
    assert_one_line_error(run_cli("evaluate", tmp_path / "m.tflite", "--data", tmp_path),
                          "contempt", "unknown label")


def test_unreadable_image(tmp_path: Path) -> None:
    x, y = synthetic_faces(1, seed=4)
    write_folders(tmp_path, "train", "Training", x, y)
    broken = tmp_path / "train" / "sad" / "Training_9999.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    assert_one_line_error(run_cli("quantize", tmp_path / "m.keras", "--data", tmp_path, "--out",
                                  tmp_path / "m.tflite"), str(broken), "unreadable image")


def test_empty_class_folder(tmp_path: Path) -> None:
    x, y = synthetic_faces(1, seed=4)
    write_folders(tmp_path, "train", "Training", x, y)
    (tmp_path / "train" / "fear" / "Training_0002.png").unlink()
    assert_one_line_error(run_cli("quantize", tmp_path / "m.keras", "--data", tmp_path, "--out",
                                  tmp_path / "m.tflite"), "fear", "empty class folder")


def test_missing_keras_model(tmp_path: Path, fake_data: dict[str, Path]) -> None:
    assert_one_line_error(run_cli("quantize", tmp_path / "nope.keras", "--data",
                                  fake_data["csv"], "--out", tmp_path / "m.tflite"),
                          "nope.keras", "no such model")


def test_missing_tflite_model(tmp_path: Path, fake_data: dict[str, Path]) -> None:
    assert_one_line_error(run_cli("evaluate", tmp_path / "nope.tflite", "--data",
                                  fake_data["csv"]), "nope.tflite", "not found")


@slow
def test_corrupt_tflite(tmp_path: Path, pipeline: Pipeline) -> None:
    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(pipeline.tflite.read_bytes()[:5000])
    corrupt.with_suffix(".json").write_bytes(pipeline.tflite.with_suffix(".json").read_bytes())
    assert_one_line_error(run_cli("evaluate", corrupt, "--data", pipeline.data),
                          str(corrupt), "not a loadable TFLite model")


def test_corrupt_keras_model(tmp_path: Path, fake_data: dict[str, Path]) -> None:
    not_zip = tmp_path / "junk.keras"
    not_zip.write_bytes(b"junk")
    assert_one_line_error(run_cli("quantize", not_zip, "--data", fake_data["csv"], "--out",
                                  tmp_path / "m.tflite"), "junk.keras", "not a Keras model")


@slow
def test_stale_sidecar_is_not_updated(tmp_path: Path, pipeline: Pipeline) -> None:
    model = tmp_path / "copy.tflite"
    model.write_bytes(pipeline.tflite.read_bytes())
    sidecar = json.loads(pipeline.tflite.with_suffix(".json").read_text())
    sidecar["tflite_sha256"] = "0" * 64
    model.with_suffix(".json").write_text(json.dumps(sidecar))
    assert_one_line_error(run_cli("evaluate", model, "--data", pipeline.data, "--latency-faces",
                                  1, "--update-sidecar"), "does not match")


@slow
def test_real_process_prints_one_line_without_tensorflow_noise(
        tmp_path: Path, fake_data: dict[str, Path]) -> None:
    """A zip that is no Keras model: TensorFlow is imported, yet stderr stays one line."""
    fake = tmp_path / "fake.keras"
    with zipfile.ZipFile(fake, "w") as archive:
        archive.writestr("config.json", "{not json")
    command = [sys.executable, "-m", "convert.cli", "quantize", str(fake), "--data",
               str(fake_data["csv"]), "--out", str(tmp_path / "m.tflite")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("edge-convert: error: ") and "fake.keras" in done.stderr
    assert "Traceback" not in done.stderr


# --- the shipped model --------------------------------------------------------------


def test_shipped_model_matches_sidecar_and_accuracy() -> None:
    model = require_path(MODELS_DIR / "emotion_int8.tflite", "shipped model")
    publictest = require_shared("data/fer2013/publictest.npz")
    sidecar = json.loads(require_path(model.with_suffix(".json"), "shipped sidecar").read_text())
    assert sidecar["labels"] == list(FER2013_LABELS)
    assert sidecar["input"]["shape"] == [1, 48, 48, 1]
    assert sidecar["tflite_sha256"] == sha256(model)
    assert sidecar["size_bytes"] == model.stat().st_size
    metrics = sidecar.get("metrics", {})
    assert metrics.get("split") == "publictest", (
        "the shipped sidecar records no PublicTest metrics: run `edge-convert evaluate "
        f"{model} --data {publictest} --keras FLOAT_MODEL --update-sidecar`")
    with np.load(publictest) as arrays:
        x, y = arrays["x"], arrays["y"]
    assert metrics["n"] == len(y)
    accuracy = float((EmotionClassifier(model).predict(x).argmax(axis=1) == y).mean())
    assert abs(accuracy - metrics["int8_accuracy"]) <= 0.005  # 0.5 percentage points


def test_robust_range_is_the_quantile_of_per_face_extremes() -> None:
    """One estimator for conversion, quantization-aware training and equalization."""
    from convert.ranges import robust_range, upper_quantile

    rng = np.random.default_rng(0)
    lows = rng.uniform(-3.0, -1.0, (200, 3))
    highs = rng.uniform(1.0, 3.0, (200, 3))
    lows[:, 2], highs[:, 2] = rng.uniform(0.5, 1.0, 200), rng.uniform(-1.0, -0.5, 200)
    low, high = robust_range(lows, highs, 0.9)
    for column in range(2):
        assert low[column] == np.quantile(lows[:, column], 0.1)
        assert high[column] == np.quantile(highs[:, column], 0.9)
    assert (low[2], high[2]) == (0.0, 0.0)  # zero stays representable
    assert np.array_equal(upper_quantile(highs, 0.9)[:2], high[:2])


def test_init_reads_the_network_from_the_starting_run(tmp_path: Path) -> None:
    """--init takes width/modules/... from run.json; typed ones must agree, l2/dropout may not."""
    from convert.checkpoints import starting_spec
    from convert.errors import InitError
    from convert.model import ModelSpec

    recorded = ModelSpec(width=40, modules=4, middle=2, stem=16, l2=1e-4, dropout=0.4)
    start = tmp_path / "run" / "best.keras"
    start.parent.mkdir()
    start.write_bytes(b"weights")
    (start.parent / "run.json").write_text(json.dumps({"config": {"spec": recorded.to_dict()}}))
    assert starting_spec(start, {}) == recorded
    assert starting_spec(start, {"width": 40, "dropout": 0.1}) == ModelSpec(
        width=40, modules=4, middle=2, stem=16, l2=1e-4, dropout=0.1)
    with pytest.raises(InitError, match="trained with --modules 4, not --modules 3"):
        starting_spec(start, {"modules": 3})
    (start.parent / "run.json").unlink()
    with pytest.raises(InitError, match=r"no run\.json"):
        starting_spec(start, {})


def test_card_names_what_the_plateau_schedule_watches() -> None:
    """A quantization-aware run validates by accuracy, so its plateau is of accuracy."""
    from convert.card import _schedule

    plateau = {"schedule": "plateau", "plateau_patience": 5}
    assert "plateau of validation loss" in _schedule(plateau)
    assert "plateau of validation accuracy" in _schedule({**plateau, "quantization_aware": True})


def test_wrong_input_shape_is_refused(tmp_path: Path) -> None:
    """A model whose input is not 48x48x1: the sidecar may not paper over it."""
    tf = pytest.importorskip("tensorflow", reason="building a foreign model needs TensorFlow")
    inputs = tf.keras.Input((64, 64, 3))
    outputs = tf.keras.layers.Dense(7)(tf.keras.layers.GlobalAveragePooling2D()(inputs))
    content = tf.lite.TFLiteConverter.from_keras_model(tf.keras.Model(inputs, outputs)).convert()
    model = tmp_path / "rgb.tflite"
    model.write_bytes(content)
    shutil.copy(MODELS_DIR / "emotion_int8.json", model.with_suffix(".json"))
    with pytest.raises(ModelError, match=r"input shape \[1, 64, 64, 3\] is not"):
        EmotionClassifier(model)
