"""Config: defaults, TOML, CLI overrides, and one-line errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge import config
from edge.config import tomllib
from edge.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_defaults_round_trip_through_toml(tmp_path: Path) -> None:
    text = config.to_toml(config.Config())
    assert config.load(write(tmp_path, text)) == config.Config()
    assert tomllib.loads(text)["detect"]["width"] == config.DetectConfig().width


def test_file_then_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, '[source]\ninput = 0\n[detect]\nevery = 5\n[log]\nsummary_every = 10\n')
    cfg = config.load(path, {"detect": {"every": 2}})
    assert cfg.source.input == "0"  # an integer camera index is accepted
    assert cfg.detect.every == 2  # command line wins
    assert cfg.log.summary_every == 10.0


@pytest.mark.parametrize(("text", "message"), [
    ("[detect]\nwidht = 3\n", "unknown key detect.widht"),
    ("[camera]\nindex = 0\n", "unknown section [camera]"),
    ("[detect]\nwidth = 'big'\n", "detect.width: expected an integer"),
    ("[detect]\nwidth = 10\n", "detect.width: 10 is out of range"),
    ("[model]\nthreads = 0\n", "model.threads: 0 is out of range"),
    ("[display]\nmode = 'hologram'\n", "display.mode: 'hologram' is not one of"),
    ("[blink]\nenabled = 1\n", "blink.enabled: expected true or false"),
    ("[detect\nwidth = 3\n", "invalid TOML"),
    ("[source]\nretry_initial = 5.0\nretry_max = 1.0\n", "retry_max must be >="),
    ("[blink]\nclose_ratio = 0.9\nopen_ratio = 0.8\n", "open_ratio must be >="),
    ("[blink]\nclose_sigma = 2.0\nopen_sigma = 3.0\n", "open_sigma must be <="),
    ("[blink]\nclose_sigma = 0.5\n", "blink.close_sigma: 0.5 is out of range"),
    ("[blink]\nappearance = 1\n", "blink.appearance: expected true or false"),
])
def test_bad_values_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        config.load(write(tmp_path, text))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        config.load(tmp_path / "nope.toml")
