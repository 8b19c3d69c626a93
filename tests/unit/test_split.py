"""The validation split carved from Training: stratified, seeded, disjoint, recorded,
selected on; PublicTest scored once as the test figure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from convert.data import FaceSet
from convert.split import (
    SplitError,
    carve_indices,
    check_resumed,
    default_test_path,
    indices_sha256,
    select,
    selection_role,
)
from tests.conftest import synthetic_faces


def fer_like_labels() -> np.ndarray:
    """FER2013 Training's class counts, Disgust's 436 included."""
    counts = [3995, 436, 4097, 7215, 4830, 3171, 4965]
    return np.repeat(np.arange(7), counts)


def test_carve_is_stratified() -> None:
    y = fer_like_labels()
    val = carve_indices(y, 0.1, seed=3)
    counts, per_class = np.bincount(y[val], minlength=7), np.bincount(y, minlength=7)
    assert counts.tolist() == [round(0.1 * n) for n in per_class]
    assert counts[1] == 44  # Disgust keeps its share


def test_carve_is_deterministic_and_seeded() -> None:
    y = np.random.default_rng(0).permutation(fer_like_labels())
    first, again = carve_indices(y, 0.1, seed=3), carve_indices(y, 0.1, seed=3)
    np.testing.assert_array_equal(first, again)
    assert indices_sha256(first) == indices_sha256(again)
    other = carve_indices(y, 0.1, seed=4)
    assert indices_sha256(other) != indices_sha256(first)
    assert len(other) == len(first)  # another draw, the same counts


def test_small_classes_keep_a_face_on_each_side() -> None:
    y = np.array([0, 0, 1, 1, 1, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3])
    val = carve_indices(y, 0.1, seed=1, classes=4)
    counts = np.bincount(y[val], minlength=4).tolist()
    assert counts == [1, 1, 0, 1]  # class 2 has one face: it stays for training


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_fraction_out_of_range(fraction: float) -> None:
    with pytest.raises(SplitError, match="--val-fraction"):
        carve_indices(np.zeros(10, dtype=np.int64), fraction, seed=1)


def test_select_is_disjoint_and_recorded() -> None:
    x, y = synthetic_faces(20, seed=1)
    x[:, 0, 0] = np.arange(len(x)) % 256  # tell the faces apart
    x[:, 0, 1] = np.arange(len(x)) // 256
    faces = FaceSet(x, y, "train.npz")
    chosen = select(faces, None, 0.2, seed=9)
    ids = lambda f: set((f.x[:, 0, 0].astype(int) + 256 * f.x[:, 0, 1].astype(int)).tolist())  # noqa: E731
    assert not ids(chosen.train) & ids(chosen.val)
    assert ids(chosen.train) | ids(chosen.val) == set(range(len(x)))
    carved = chosen.val_record["carved"]
    assert carved["per_class"] == [4] * 7 and chosen.val_record["n"] == 28
    assert chosen.train_record["n"] == 112 and chosen.train_record["per_class"] == [16] * 7
    assert carved["fraction"] == 0.2 and carved["seed"] == 9 and carved["of_n"] == 140
    assert carved["indices_sha256"] == indices_sha256(carve_indices(y, 0.2, 9))
    assert chosen.val_record["role"] == "selection"


def test_select_on_given_data_carves_nothing() -> None:
    x, y = synthetic_faces(3, seed=1)
    train, val = FaceSet(x, y, "a.csv"), FaceSet(x[:7], y[:7], "b.csv")
    chosen = select(train, val, 0.1, seed=1)
    assert chosen.train is train and chosen.val is val
    assert "carved" not in chosen.val_record and chosen.val_record["source"] == "b.csv"


def test_resume_needs_the_same_split() -> None:
    x, y = synthetic_faces(10, seed=1)
    faces = FaceSet(x, y, "train.npz")
    record = select(faces, None, 0.2, seed=1).val_record
    check_resumed(record, select(faces, None, 0.2, seed=1).val_record)
    check_resumed(None, record)  # a run without a record yet
    for other in (select(faces, None, 0.2, seed=2).val_record,
                  select(faces, None, 0.3, seed=1).val_record,
                  select(faces, FaceSet(x, y, "publictest.npz"), 0, 1).val_record):
        with pytest.raises(SplitError, match="another validation split"):
            check_resumed(record, other)


def test_default_test_path(tmp_path: Path) -> None:
    assert default_test_path(tmp_path / "fer2013.csv") == tmp_path / "fer2013.csv"
    assert default_test_path(tmp_path / "train.npz") is None
    (tmp_path / "publictest.npz").write_bytes(b"")
    assert default_test_path(tmp_path / "train.npz") == tmp_path / "publictest.npz"


def test_selection_role(tmp_path: Path) -> None:
    keras = tmp_path / "run" / "best.keras"
    keras.parent.mkdir()
    assert selection_role(keras, "publictest.npz") is None
    (keras.parent / "run.json").write_text(json.dumps({"val": {"source": "publictest.npz"}}))
    assert selection_role(keras, "publictest.npz") == "selection"
    (keras.parent / "run.json").write_text(json.dumps(
        {"val": {"source": "train.npz", "carved": {}}}))
    assert selection_role(keras, "publictest.npz") == "test"
