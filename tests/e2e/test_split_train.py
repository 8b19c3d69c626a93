"""`edge-convert train` selects on its own validation split and scores PublicTest once;
the card and `evaluate` say which figure is which."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from convert.split import carve_indices, indices_sha256
from tests.conftest import synthetic_faces
from tests.e2e.test_convert import (
    TINY,
    assert_ok,
    assert_one_line_error,
    csv_rows,
    run_cli,
    with_epochs,
    write_csv,
)


@pytest.mark.slow
def test_train_selects_on_the_carved_split_and_scores_the_test(tmp_path: Path) -> None:
    train, test = synthetic_faces(12, seed=1), synthetic_faces(4, seed=2)
    data = write_csv(tmp_path / "fer2013.csv",
                     csv_rows(*train, "Training") + csv_rows(*test, "PublicTest"))
    run = tmp_path / "run"
    result = assert_ok(run_cli("train", "--data", data, "--out", run, *with_epochs(3),
                               "--val-seed", "5"))
    record = json.loads((run / "run.json").read_text())
    carved = record["val"]["carved"]
    assert carved["fraction"] == 0.1 and carved["seed"] == 5 and carved["of_n"] == 84
    assert carved["per_class"] == [1] * 7 and record["val"]["n"] == 7
    assert record["train"]["n"] == 77 and record["train"]["per_class"] == [11] * 7
    assert carved["indices_sha256"] == indices_sha256(carve_indices(train[1], 0.1, 5))
    assert record["config"]["val_fraction"] == 0.1 and record["config"]["val_seed"] == 5
    # Selection ran on the 7 carved faces (accuracies in sevenths), not on the 28 test faces.
    with open(run / "history.csv") as f:
        for row in csv.DictReader(f):
            sevenths = float(row["val_accuracy"]) * 7
            assert abs(sevenths - round(sevenths)) < 1e-4, row["val_accuracy"]
    test_figure = record["test"]
    assert test_figure["role"] == "test" and test_figure["n"] == 28
    assert 0 <= test_figure["float_accuracy"] <= 1
    assert "selection: 7 faces carved" in result.output and "test accuracy" in result.output
    # The card says which figure is which.
    tflite = tmp_path / "m.tflite"
    assert_ok(run_cli("quantize", run / "best.keras", "--data", data, "--out", tflite,
                      "--calibration-size", 70))
    report = tmp_path / "report.json"
    evaluated = assert_ok(run_cli("evaluate", tflite, "--data", data, "--keras",
                                  run / "best.keras", "--report", report,
                                  "--latency-faces", 5))
    assert "test figure" in evaluated.output
    card = tmp_path / "MODEL.md"
    assert_ok(run_cli("card", "--run", run, "--model", tflite, "--report", report,
                      "--quantize-command", "q", "--evaluate-command", "e", "--out", card))
    text = card.read_text()
    assert "## Results on PublicTest (test figure)" in text
    assert "best epoch by validation accuracy" in text and "selection figure" in text
    assert carved["indices_sha256"][:16] in text
    assert "selected on PublicTest" not in text
    # Resuming with another split is refused; so are contradictory options.
    assert_one_line_error(run_cli("train", "--data", data, "--out", run, *with_epochs(4),
                                  "--resume", "--val-seed", "6"), "another validation split")
    assert_one_line_error(run_cli("train", "--data", data, "--out", tmp_path / "b", *TINY,
                                  "--val", data, "--val-fraction", "0.2"), "--val-fraction")
    assert_one_line_error(run_cli("train", "--data", data, "--out", tmp_path / "c", *TINY,
                                  "--val-fraction", "1"), "--val-fraction")
