"""edge.build's start-up order: what fails, and what it costs before it does."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge import build as build_module
from edge import config as config_module
from edge.errors import ModelError, SourceError


def camera_config(**model: str) -> config_module.Config:
    return config_module.load(None, {"source": {"input": "/dev/video57"}, "log": {"path": ""},
                                     "model": model})


def test_a_missing_camera_fails_before_any_model_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    """A service restarted every RestartSec while its camera is unplugged must not load
    the models (and start the scan's helper) each time only to find no camera."""
    loads: list[object] = []
    monkeypatch.setattr(build_module, "build_pipeline", lambda *a, **k: loads.append(a))
    with pytest.raises(SourceError, match="could not be opened"):
        build_module.build(camera_config())
    assert loads == []


def test_a_missing_model_is_still_said_first(tmp_path: Path) -> None:
    """A wrong model path needs a person (exit 2), whether or not the camera is there."""
    with pytest.raises(ModelError, match="model file not found"):
        build_module.build(camera_config(path=str(tmp_path / "nothing.tflite")))
    with pytest.raises(ModelError, match="landmark model not found"):
        build_module.build(camera_config(landmarks=str(tmp_path / "nothing.dat")))
