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
    ("[detect]\nmotion = 'yes'\n", "detect.motion: expected true or false"),
    ("[detect]\nscan_process = 3\n", "detect.scan_process: expected true or false"),
    ("[detect]\nmotion_threshold = 0\n", "detect.motion_threshold: 0.0 is out of range"),
    ("[detect]\nmotion_threshold = 300\n", "detect.motion_threshold: 300.0 is out of range"),
    ("[detect]\nmotion_area = 1.5\n", "detect.motion_area: 1.5 is out of range"),
    ("[detect]\nmotion_area = -0.1\n", "detect.motion_area: -0.1 is out of range"),
    ("[detect]\nidle_scan = 0\n", "detect.idle_scan: 0.0 is out of range"),
    ("[detect]\nstill_scan = 0\n", "detect.still_scan: 0.0 is out of range"),
    ("[detect]\nscan_lag = -1\n", "detect.scan_lag: -1 is out of range"),
    ("[detect]\nscan_lag = 1.5\n", "detect.scan_lag: expected an integer"),
    ("[source]\ninput = 'rtsp://u:pw@[fe80::1/x'\n", "source.input: not a valid URL"),
])
def test_bad_values_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        config.load(write(tmp_path, text))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        config.load(tmp_path / "nope.toml")


def test_motion_gating_can_be_turned_off(tmp_path: Path) -> None:
    """The loop as it was: no gating, the scan on the loop's thread."""
    cfg = config.load(write(tmp_path, "[detect]\nmotion = false\nscan_lag = 0\nidle_scan = 5\n"))
    assert (cfg.detect.motion, cfg.detect.scan_lag, cfg.detect.idle_scan) == (False, 0, 5.0)
    defaults = config.DetectConfig()
    assert defaults.motion and defaults.scan_lag == 2  # same events as without: scans only add
