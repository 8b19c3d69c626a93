"""The model's start-up self-test (edge.selftest) on the shipped model, real interpreters.

The wrong-kernel cases are made real, not mocked: a sidecar whose reference outputs are
tampered with is wrong for every kernel set (exit 2), and a sidecar recorded from the
builtin kernels' exact outputs with zero tolerance is one that XNNPACK (which rounds
differently) fails and the builtin kernels pass: the fallback path, end to end.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from convert.cli import main as convert_main
from edge import selftest
from edge.classify import EmotionClassifier, sha256_of
from edge.errors import ModelError
from edge.model_contract import Sidecar
from tests.conftest import MODELS_DIR
from tests.conftest import copy_shipped_model as copy_model

MODEL = MODELS_DIR / "emotion_int8.tflite"


def test_reference_faces_are_reproducible_and_distinct() -> None:
    faces = selftest.reference_faces(13, 12)
    assert faces.shape == (12, 48, 48) and faces.dtype == np.uint8
    assert np.array_equal(faces, selftest.reference_faces(13, 12))
    assert not np.array_equal(faces, selftest.reference_faces(14, 12))
    assert len({face.tobytes() for face in faces}) == 12
    assert faces.min() < 40 and faces.max() > 200  # structured faces, not flat grey
    # The sha256 the shipped sidecar recorded on the build machine: same pixels here.
    recorded = json.loads(MODEL.with_suffix(".json").read_text())["selftest"]
    assert selftest.pixels_sha256(selftest.reference_faces(
        recorded["seed"], recorded["count"])) == recorded["inputs_sha256"]


def test_shipped_model_passes_its_own_self_test() -> None:
    classifier = EmotionClassifier(MODEL, threads=1)
    assert classifier.kernels == "XNNPACK"  # LiteRT's default delegate on this CPU
    assert classifier.self_test.startswith("self-test passed")
    # and the faces are not all one answer: the test can see a wrong kernel
    expected = np.array(json.loads(MODEL.with_suffix(".json").read_text())
                        ["selftest"]["expected"])
    assert len(set(expected.argmax(axis=1))) >= 3


def test_a_stuck_output_would_be_caught() -> None:
    """What the qemu `max` CPU does (one class at 100% for every face) fails the test."""
    sidecar = Sidecar.read(MODEL.with_suffix(".json"))
    reference = selftest.Reference.from_sidecar(sidecar)
    stuck = np.zeros((reference.count, 7))
    stuck[:, 4] = 1.0  # "Sad 100%"
    assert not selftest.compare(stuck, reference, sidecar.output).passed
    right = selftest.dequantize(reference.expected, sidecar.output)
    assert selftest.compare(right, reference, sidecar.output).passed


def test_tampered_reference_fails_every_kernel_set(tmp_path: Path) -> None:
    def tamper(sidecar: dict) -> None:
        for row in sidecar["selftest"]["expected"]:
            row[:] = [-128] * 4 + [127] + [-128] * 2  # "Sad 100%" expected everywhere
    model = copy_model(tmp_path, tamper)
    with pytest.raises(ModelError, match="self-test failed") as failure:
        EmotionClassifier(model, threads=1)
    message = str(failure.value)
    assert "\n" not in message and "XNNPACK" in message and "builtin" in message




def test_wrong_xnnpack_falls_back_to_builtin_kernels(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """Reference = the builtin kernels' exact outputs, zero tolerance: XNNPACK rounds
    differently on these faces, so it fails for real and the builtin kernels pass."""
    raw = json.loads(MODEL.with_suffix(".json").read_text())
    faces = selftest.reference_faces(raw["selftest"]["seed"], raw["selftest"]["count"])
    builtin = selftest._raw_outputs(MODEL.read_bytes(), faces,
                                    "BUILTIN_WITHOUT_DEFAULT_DELEGATES")
    xnnpack = selftest._raw_outputs(MODEL.read_bytes(), faces, None)
    assert not np.array_equal(builtin, xnnpack)  # else this test proves nothing

    def exact_builtin(sidecar: dict) -> None:
        sidecar["selftest"]["expected"] = builtin.tolist()
        sidecar["selftest"]["tolerance"] = {"mean": 0.0, "max": 0.0}
    model = copy_model(tmp_path, exact_builtin)
    with caplog.at_level(logging.WARNING, logger="edge"):
        classifier = EmotionClassifier(model, threads=1)
    assert classifier.kernels == "builtin"
    assert "after XNNPACK" in classifier.self_test
    assert "using builtin kernels" in caplog.text
    assert np.array_equal(np.rint(classifier.predict_once(faces) * 256).astype(int) - 128,
                          builtin)


def test_sidecar_without_self_test_still_loads(tmp_path: Path) -> None:
    model = copy_model(tmp_path, lambda sidecar: sidecar.pop("selftest"))
    classifier = EmotionClassifier(model, threads=1)
    assert classifier.self_test == "no self-test in the sidecar"


def test_unreadable_self_test_block_is_a_model_error(tmp_path: Path) -> None:
    model = copy_model(tmp_path, lambda sidecar: sidecar["selftest"].update(generator="x/9"))
    with pytest.raises(ModelError, match="selftest block unreadable"):
        EmotionClassifier(model, threads=1)


def test_recording_keeps_the_model_and_the_rest_of_the_sidecar(tmp_path: Path) -> None:
    model = copy_model(tmp_path, lambda sidecar: sidecar.pop("selftest"))
    before = json.loads(model.with_suffix(".json").read_text())
    digest = sha256_of(model)
    result = CliRunner().invoke(convert_main, ["selftest", str(model)])
    assert result.exit_code == 0, result.output
    after = json.loads(model.with_suffix(".json").read_text())
    assert sha256_of(model) == digest
    assert {k: v for k, v in after.items() if k != "selftest"} == before
    shipped = json.loads(MODEL.with_suffix(".json").read_text())["selftest"]
    assert after["selftest"] == shipped  # the shipped block is what this command records


def test_recording_refuses_a_stale_sidecar(tmp_path: Path) -> None:
    model = copy_model(tmp_path, lambda sidecar: sidecar.update(tflite_sha256="0" * 64))
    result = CliRunner().invoke(convert_main, ["selftest", str(model)])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "re-quantize" in result.output
