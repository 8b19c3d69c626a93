"""The device classifier on the shipped model: exact input quantization, contract checks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge.classify import EmotionClassifier
from edge.errors import ModelError

MODEL = Path(__file__).resolve().parents[2] / "models" / "emotion_int8.tflite"


@pytest.fixture(scope="module")
def classifier() -> EmotionClassifier:
    return EmotionClassifier(MODEL, threads=1)


def test_int8_input_is_pixel_minus_128(classifier: EmotionClassifier) -> None:
    faces = np.arange(48 * 48 * 2, dtype=np.int64).reshape(2, 48, 48) % 256
    tensor = classifier.preprocess(faces.astype(np.uint8))
    assert tensor.dtype == np.int8 and tensor.shape == (2, 48, 48, 1)
    assert np.array_equal(tensor[..., 0].astype(np.int64), faces - 128)  # exact, no rounding


def test_probabilities_are_a_distribution(classifier: EmotionClassifier) -> None:
    faces = np.random.default_rng(0).integers(0, 256, (3, 48, 48), dtype=np.uint8)
    probs = classifier.predict(faces)
    assert probs.shape == (3, 7)
    assert np.all(probs >= 0) and np.allclose(probs.sum(axis=1), 1.0, atol=0.03)
    with pytest.raises(ValueError, match="faces must be"):
        classifier.predict(np.zeros((1, 32, 32), np.uint8))


@pytest.mark.parametrize("sidecar_says", [True, False])
def test_mirror_average_from_the_sidecar_unless_overridden(tmp_path: Path,
                                                           sidecar_says: bool) -> None:
    model = tmp_path / "m.tflite"
    shutil.copy(MODEL, model)
    sidecar = json.loads(MODEL.with_suffix(".json").read_text())
    sidecar["inference"] = {"mirror_average": sidecar_says}
    model.with_suffix(".json").write_text(json.dumps(sidecar))
    faces = np.random.default_rng(1).integers(0, 256, (2, 48, 48), dtype=np.uint8)
    single = EmotionClassifier(model, threads=1, mirror_average=False)
    plain, flipped = single.predict(faces), single.predict(faces[:, :, ::-1])
    assert not np.allclose(plain, flipped)  # else the check below proves nothing
    averaged = 0.5 * (plain + flipped)

    by_sidecar = EmotionClassifier(model, threads=1)
    assert by_sidecar.mirror_average is sidecar_says
    assert np.allclose(by_sidecar.predict(faces), averaged if sidecar_says else plain)
    forced = EmotionClassifier(model, threads=1, mirror_average=True)
    assert np.allclose(forced.predict(faces), averaged)


def test_mirror_margin_mirrors_only_near_ties(tmp_path: Path) -> None:
    """A sidecar margin: the second invoke only for faces whose top two are close."""
    model = tmp_path / "m.tflite"
    shutil.copy(MODEL, model)
    shutil.copy(MODEL.with_suffix(".json"), model.with_suffix(".json"))
    faces = np.random.default_rng(2).integers(0, 256, (40, 48, 48), dtype=np.uint8)
    single = EmotionClassifier(model, threads=1, mirror_average=False)
    plain, flipped = single.predict(faces), single.predict(faces[:, :, ::-1])
    top_two = np.sort(plain, axis=1)[:, -2:]
    margins = top_two[:, 1] - top_two[:, 0]
    margin = float(np.median(margins))  # half the faces on each side
    sidecar = json.loads(MODEL.with_suffix(".json").read_text())
    sidecar["inference"] = {"mirror_average": True, "mirror_margin": margin}
    model.with_suffix(".json").write_text(json.dumps(sidecar))

    gated = EmotionClassifier(model, threads=1)
    assert gated.mirror_margin == margin
    near = margins < margin
    assert 0 < near.sum() < len(faces)
    expected = np.where(near[:, None], 0.5 * (plain + flipped), plain)
    assert np.allclose(gated.predict(faces), expected)
    # One face at a time, as the device calls it, gives the same.
    assert np.allclose(np.concatenate([gated.predict(f) for f in faces]), expected)
    forced = EmotionClassifier(model, threads=1, mirror_average=True)  # config "on": all
    assert np.allclose(forced.predict(faces), 0.5 * (plain + flipped))


def test_needs_mirror_rule() -> None:
    from edge.model_contract import ALWAYS, needs_mirror

    probs = np.array([[0.5, 0.45, 0.05], [0.9, 0.05, 0.05], [0.35, 0.3, 0.35]])
    assert needs_mirror(probs, 0.1).tolist() == [True, False, True]
    assert needs_mirror(probs, ALWAYS).all()


def test_sidecar_round_trip_is_byte_identical(tmp_path: Path) -> None:
    """Read and written through Sidecar, the shipped sidecar keeps every byte."""
    from edge.model_contract import Sidecar

    sidecar = Sidecar.read(MODEL.with_suffix(".json"))
    sidecar.write(tmp_path / "copy.json")
    assert (tmp_path / "copy.json").read_bytes() == MODEL.with_suffix(".json").read_bytes()
    patched = sidecar.with_metrics({"n": 1})
    assert patched.metrics == {"n": 1} and patched.to_dict() | {"metrics": sidecar.metrics} \
        == sidecar.to_dict()


@pytest.mark.parametrize("found", ["edge-emotion-model/2", None])
def test_sidecar_of_another_format_is_refused(tmp_path: Path, found: str | None) -> None:
    model = tmp_path / "m.tflite"
    shutil.copy(MODEL, model)
    sidecar = json.loads(MODEL.with_suffix(".json").read_text())
    if found is None:
        del sidecar["format"]
    else:
        sidecar["format"] = found
    model.with_suffix(".json").write_text(json.dumps(sidecar))
    with pytest.raises(ModelError, match=r"sidecar format .* reads 'edge-emotion-model/1'") as e:
        EmotionClassifier(model)
    assert "\n" not in str(e.value)


def test_config_mirror_average_choices(tmp_path: Path) -> None:
    from edge import config

    path = tmp_path / "c.toml"
    for text, expected in [("", None), ('mirror_average = "on"', True),
                           ('mirror_average = "off"', False)]:
        path.write_text(f"[model]\n{text}\n")
        assert config.load(path).mirror_average() is expected
    path.write_text('[model]\nmirror_average = "sometimes"\n')
    with pytest.raises(config.ConfigError, match=r"model\.mirror_average: 'sometimes' is not one"):
        config.load(path)


