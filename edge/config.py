"""Configuration: dataclasses with defaults, a TOML file on top, CLI overrides on top of that.

Every key is checked: an unknown key, a wrong type or an out-of-range value is a
ConfigError whose one-line message names the key (`detect.width`), so
`edge-run check` and start-up can say exactly what is wrong.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_CLIP = PACKAGE_DIR / "assets" / "pyfeat_single_face.mp4"


def default_model_path() -> Path:
    """The shipped model: in the repository's models/, or installed beside the package."""
    installed = PACKAGE_DIR / "models" / "emotion_int8.tflite"
    source_tree = PACKAGE_DIR.parent / "models" / "emotion_int8.tflite"
    return installed if installed.exists() or not source_tree.exists() else source_tree


@dataclass
class SourceConfig:
    # Camera index ("0"), device ("/dev/video0"), file, URL, "picamera", or "" for
    # the embedded sample clip.
    input: str = ""
    width: int = 640
    height: int = 480
    fps: float = 30.0
    loop: bool = False  # files only: start again at the end (soak tests, kiosk demos)
    max_frames: int = 0  # 0: no limit
    realtime: bool = False  # files only: pace to the clip's fps, like a camera
    retry_initial: float = 0.5  # seconds before the first reconnect attempt
    retry_max: float = 30.0  # cap of the exponential backoff


@dataclass
class DetectConfig:
    # Detection runs on the frame downscaled to `width`. dlib's HOG window finds faces
    # down to a ~75 px box at the scale the detector sees, so a 640x480 frame needs an
    # effective 2x scale for 40-45 px faces (2-core x86_64, 640x480, one face):
    #   width/upsample   smallest face found (640 px frame)   time
    #   320 / 0          ~100 px                              ~4 ms
    #   320 / 1          ~55-60 px                            ~13 ms
    #   480 / 1          ~40-44 px                            ~30 ms
    #   640 / 1          ~37 px                               ~53 ms
    # 480/1 is the cheapest setting that finds a 44 px face (a person ~2 m from a
    # 60-degree 640x480 webcam); 320/1 is the choice when faces are known to be close.
    width: int = 480
    upsample: int = 1
    # dlib's own threshold is 0.0. Real faces score ~0.5-3; texture false positives such
    # as the astronaut photo's mission patch score <= 0.07 at any scale we tried.
    threshold: float = 0.2
    min_face: int = 40  # pixels, in the full frame
    every: int = 3  # re-find tracked faces near their boxes every N frames (between frames)
    scan_every: int = 15  # with faces tracked, full-frame scans at most every N frames
    max_faces: int = 4
    # Motion gating (edge/motion.py): while no face is tracked and nothing moves, the
    # full-frame scan runs only every idle_scan seconds (a still person is still found).
    motion: bool = True
    motion_threshold: float = 12.0  # gray levels a thumbnail pixel must change by
    motion_area: float = 0.003  # share of the frame that must change
    idle_scan: float = 2.0  # seconds: the longest time between two full-frame scans
    # ... while the picture (outside tracked people) differs from what the last scan saw;
    # an unchanged one, which a scan would find the same in, only every still_scan s.
    still_scan: float = 10.0
    # Frames between starting a scan beside the loop and using its faces (edge/scan.py);
    # 0 runs it on the loop's thread, stalling that frame. A scan not done by then makes
    # the loop wait on a file (same events on any machine), joins later on a camera.
    # A scan only adds faces, so the lag delays a new face and changes nothing else.
    scan_lag: int = 2
    # With scan_lag >= 1: the scan runs in a helper process (edge/scan_worker.py) at a
    # lower priority, its own core where there is one; false: on a thread of this
    # process, which saves the helper's ~30 MB but shares the loop's priority and GIL.
    scan_process: bool = True


@dataclass
class ModelConfig:
    path: str = ""  # "" = the shipped model
    landmarks: str = ""  # "" = face-recognition-models' 68-point file
    threads: int = 1
    smoothing: float = 0.5  # seconds: time constant of the per-face probability average
    # "auto": as the model's sidecar says (which may mirror only near-ties); "off": one
    # invoke per face; "on" forces averaging every face with its mirror image (2 invokes).
    mirror_average: str = "auto"


@dataclass
class BlinkConfig:
    # See edge/blinks.py for why these values and docs/BLINKS.md for the figures; the
    # thresholds are measured against each person's own open eyes (their noise, their
    # level), so glasses, narrow eyes or a small face need no change.
    enabled: bool = True
    # Closed when the eyes' dip (EAR and, with appearance, the eye patches against
    # their open-eye templates) reaches close_sigma robust sigmas of this person's
    # own open-eye noise; open again when a cue is back within open_sigma.
    close_sigma: float = 4.0
    open_sigma: float = 2.0
    appearance: bool = True  # compare eye patches too (~0.2 ms a face); false: EAR only
    close_ratio: float = 0.75  # also closed below this x open-eye EAR (the classic cue)
    open_ratio: float = 0.85  # ...and held closed below this x open-eye EAR
    min_duration: float = 0.07  # seconds; shorter closures are landmark jitter
    max_duration: float = 0.5  # seconds; longer closures are not blinks


@dataclass
class LogConfig:
    # "" disables the event log. The folder must exist. Not used by the demo (no
    # source.input) unless set in the file or with --log.
    path: str = "edge-emotion.jsonl"
    summary_every: float = 60.0  # seconds between summary lines
    max_bytes: int = 10_000_000  # rotate when the file grows past this
    backups: int = 5  # rotated files kept: LOG.1 ... LOG.N


@dataclass
class DisplayConfig:
    mode: str = "none"  # none | window | fullscreen | framebuffer
    framebuffer: str = "/dev/fb0"


@dataclass
class SnapshotConfig:
    # Privacy by default: no face image is ever written unless this is set.
    dir: str = ""
    every: float = 0.0  # seconds between snapshots; 0 = on emotion change only


@dataclass
class MqttConfig:
    # Off by default: the service then has no network at all (docs/MQTT.md).
    enabled: bool = False
    host: str = ""  # broker name or IP address; required when enabled
    port: int = 1883  # usually 8883 with tls
    device_id: str = ""  # "" = this machine's hostname; topics <topic_prefix>/<device_id>/...
    topic_prefix: str = "edge-emotion"
    discovery_prefix: str = "homeassistant"  # "" = no Home Assistant discovery
    tls: bool = False
    ca_file: str = ""  # "" = the system's CA certificates
    cert_file: str = ""  # client certificate (with key_file)
    key_file: str = ""  # must be readable by the service user only
    username: str = ""
    # The password, in a file readable by the service user only (never on the command
    # line). A relative name is read from $CREDENTIALS_DIRECTORY (systemd LoadCredential=).
    password_file: str = ""
    queue_dir: str = "mqtt-queue"  # unsent messages survive restarts here; "" = memory only
    queue_max_messages: int = 10_000  # past this the oldest are dropped (and counted)
    keepalive: int = 60  # seconds


@dataclass
class Config:
    source: SourceConfig = field(default_factory=SourceConfig)
    detect: DetectConfig = field(default_factory=DetectConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    blink: BlinkConfig = field(default_factory=BlinkConfig)
    log: LogConfig = field(default_factory=LogConfig)
    display: DisplayConfig = field(default_factory=DisplayConfig)
    snapshots: SnapshotConfig = field(default_factory=SnapshotConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)

    def model_path(self) -> Path:
        return Path(self.model.path) if self.model.path else default_model_path()

    def mirror_average(self) -> bool | None:
        """The classifier's setting: None leaves it to the model's sidecar."""
        return {"auto": None, "on": True, "off": False}[self.model.mirror_average]


# (section, key) -> (minimum, maximum) for numbers; choices for strings.
RANGES: dict[tuple[str, str], tuple[float, float]] = {
    ("source", "width"): (16, 8192), ("source", "height"): (16, 8192),
    ("source", "fps"): (0.5, 240), ("source", "max_frames"): (0, 10**12),
    ("source", "retry_initial"): (0.01, 60), ("source", "retry_max"): (0.01, 3600),
    ("detect", "width"): (80, 4096), ("detect", "upsample"): (0, 3),
    ("detect", "threshold"): (-2.0, 5.0), ("detect", "min_face"): (8, 4096),
    ("detect", "every"): (1, 100), ("detect", "scan_every"): (1, 1000),
    ("detect", "max_faces"): (1, 64), ("detect", "motion_threshold"): (1.0, 255.0),
    ("detect", "motion_area"): (0.0, 1.0), ("detect", "idle_scan"): (0.1, 3600.0),
    ("detect", "still_scan"): (0.1, 86400.0),
    ("detect", "scan_lag"): (0, 30),
    ("blink", "close_ratio"): (0.1, 1.0), ("blink", "open_ratio"): (0.1, 1.4),
    ("blink", "close_sigma"): (1.0, 100.0), ("blink", "open_sigma"): (0.0, 100.0),
    ("blink", "min_duration"): (0.0, 1.0), ("blink", "max_duration"): (0.05, 5.0),
    ("model", "threads"): (1, 64), ("model", "smoothing"): (0.0, 60.0),
    ("log", "summary_every"): (1.0, 86400.0), ("log", "max_bytes"): (4096, 10**12),
    ("log", "backups"): (0, 1000), ("snapshots", "every"): (0.0, 86400.0),
    ("mqtt", "port"): (1, 65535), ("mqtt", "queue_max_messages"): (1, 10_000_000),
    ("mqtt", "keepalive"): (5, 3600),
}
CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("model", "mirror_average"): ("auto", "on", "off"),
    ("display", "mode"): ("none", "window", "fullscreen", "framebuffer"),
}


def _coerce(name: str, value: Any, default: Any) -> Any:
    """Check `value` has the type of the default (ints accepted where floats are)."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{name}: expected true or false, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name}: expected an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name}: expected a number, got {value!r}")
        return float(value)
    if isinstance(default, str):
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)  # `input = 0` means camera 0
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{name}: unsupported value {value!r}")  # pragma: no cover


def _validate(section: str, key: str, value: Any) -> None:
    name = f"{section}.{key}"
    if (section, key) in RANGES:
        low, high = RANGES[(section, key)]
        if not low <= value <= high:
            raise ConfigError(f"{name}: {value!r} is out of range [{low:g}, {high:g}]")
    if (section, key) in CHOICES and value not in CHOICES[(section, key)]:
        raise ConfigError(f"{name}: {value!r} is not one of {', '.join(CHOICES[(section, key)])}")


def apply(config: Config, values: dict[str, Any], origin: str = "config") -> Config:
    """Overlay `{section: {key: value}}` on `config`, checking every key and value.

    Every error names `origin` (the file, or "command line") first."""
    try:
        return _apply(config, values)
    except ConfigError as exc:
        raise ConfigError(f"{origin}: {exc}") from None


def _apply(config: Config, values: dict[str, Any]) -> Config:
    for section, entries in values.items():
        if not hasattr(config, section) or section.startswith("_"):
            known = ", ".join(f.name for f in dataclasses.fields(config))
            raise ConfigError(f"unknown section [{section}] (known: {known})")
        if not isinstance(entries, dict):
            raise ConfigError(f"[{section}] must be a table")
        target = getattr(config, section)
        names = {f.name for f in dataclasses.fields(target)}
        for key, value in entries.items():
            if key not in names:
                raise ConfigError(f"unknown key {section}.{key} "
                                  f"(known: {', '.join(sorted(names))})")
            coerced = _coerce(f"{section}.{key}", value, getattr(target, key))
            _validate(section, key, coerced)
            setattr(target, key, coerced)
    if config.source.retry_max < config.source.retry_initial:
        raise ConfigError("source.retry_max must be >= source.retry_initial")
    _check_mqtt(config.mqtt)
    _check_stream_url(config.source.input)
    if _same_file(config.source.input, config.log.path):
        raise ConfigError(f"log.path and source.input are the same file ({config.log.path}): "
                          "the log would append to the video")
    check_blink(config.blink)
    return config


def _check_stream_url(source: str) -> None:
    """A URL urllib cannot read (an unclosed [IPv6 address) is a typo: exit 2 now, not
    exit 3 and a retry every RestartSec for ever. Said without the URL: it may hold a
    password."""
    if "://" not in source:
        return
    try:
        urllib.parse.urlsplit(source)
    except ValueError as exc:
        raise ConfigError(f"source.input: not a valid URL ({exc})") from None


def _same_file(source: str, log_path: str) -> bool:
    if not source or not log_path or source.isdigit() or "://" in source or source == "picamera":
        return False
    return os.path.realpath(source) == os.path.realpath(log_path)


def check_blink(blink: BlinkConfig) -> None:
    """The [blink] rules; BlinkDetector checks a hand-made section with them too."""
    for entry in dataclasses.fields(blink):
        _validate("blink", entry.name, getattr(blink, entry.name))
    if blink.open_ratio < blink.close_ratio:
        raise ConfigError("blink.open_ratio must be >= blink.close_ratio")
    if blink.open_sigma > blink.close_sigma:
        raise ConfigError("blink.open_sigma must be <= blink.close_sigma")
    if blink.max_duration <= blink.min_duration:
        raise ConfigError("blink.max_duration must be > blink.min_duration")


# A topic level: no MQTT wildcards (+ #), and safe in Home Assistant ids.
TOPIC_LEVEL = re.compile(r"[A-Za-z0-9_-]+")


def _check_mqtt(mqtt: MqttConfig) -> None:
    if not mqtt.enabled:
        return
    if not mqtt.host:
        raise ConfigError("mqtt.host: required when mqtt.enabled = true")
    if mqtt.device_id and not TOPIC_LEVEL.fullmatch(mqtt.device_id):
        raise ConfigError(f"mqtt.device_id: {mqtt.device_id!r} may hold only letters, "
                          "digits, _ and -")
    for key in ("topic_prefix", "discovery_prefix"):
        value = getattr(mqtt, key)
        if (value or key == "topic_prefix") and not all(
                TOPIC_LEVEL.fullmatch(level) for level in value.split("/")):
            raise ConfigError(f"mqtt.{key}: {value!r} must be /-separated levels of "
                              "letters, digits, _ and -")
    if bool(mqtt.cert_file) != bool(mqtt.key_file):
        raise ConfigError("mqtt.cert_file and mqtt.key_file go together")


def load(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Defaults, then the TOML file (if any), then `{section: {key: value}}` overrides."""
    config = Config()
    log_set = bool(overrides and "path" in overrides.get("log", {}))
    if path:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: unreadable ({exc.__class__.__name__})") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML ({exc})") from None
        apply(config, data, origin=str(path))
        log_set = log_set or "path" in (data.get("log") or {})
    if overrides:
        apply(config, overrides, origin="command line")
    if not config.source.input and not log_set:
        # The demo on the embedded clip keeps no log unless asked: a file nobody asked for
        # in whatever folder the user stands in (or a failure where that is read-only).
        config.log.path = ""
    return config


def to_toml(config: Config) -> str:
    """The config as a commented TOML file (service install writes this)."""
    lines = ["# edge-emotion configuration. Every key is optional; shown are the values in use."]
    for section in dataclasses.fields(config):
        lines.append(f"\n[{section.name}]")
        for entry in dataclasses.fields(getattr(config, section.name)):
            value = getattr(getattr(config, section.name), entry.name)
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, str):
                text = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
            else:
                text = repr(value)
            lines.append(f"{entry.name} = {text}")
    return "\n".join(lines) + "\n"
