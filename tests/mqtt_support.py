"""What the MQTT tests share: a sink on a loopback port, sample events, the queue on disk."""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Any

from edge.config import MqttConfig
from edge.sinks.mqtt import MqttSink
from edge.types import Event

DEVICE = "test-dev"
LABELS = ["Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral"]
BASE = f"edge-emotion/{DEVICE}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mqtt_config(port: int, queue_dir: Path | None, **overrides: Any) -> Any:
    values = {"enabled": True, "host": "127.0.0.1", "port": port, "device_id": DEVICE,
              "queue_dir": str(queue_dir) if queue_dir else "", "keepalive": 5,
              **overrides}
    return MqttConfig(**values)


def make_sink(port: int, queue_dir: Path | None, **overrides: Any) -> MqttSink:
    # Short reconnect delays keep a broker restart to well under a second.
    return MqttSink(mqtt_config(port, queue_dir, **overrides), reconnect_min=0.1,
                    reconnect_max=0.5, close_flush_seconds=5.0)


def write_without_network(sink: MqttSink, events: list[Event]) -> None:
    """Write `events`, failing if write() itself talks to paho (the network is the
    flusher's job: the pipeline's thread must never wait on it)."""
    client = sink._client
    touched: list[str] = []
    caller = threading.current_thread()
    for name in ("publish", "reconnect", "connect", "loop"):
        original = getattr(client, name)

        def spy(*args: Any, _original: Any = original, _name: str = name, **kwargs: Any) -> Any:
            if threading.current_thread() is caller:
                touched.append(_name)
            return _original(*args, **kwargs)

        setattr(client, name, spy)
    try:
        for event in events:
            sink.write(event)
    finally:
        for name in ("publish", "reconnect", "connect", "loop"):
            delattr(client, name)  # the instance attribute goes; the method shows again
    assert touched == []


def blink(frame: int) -> Event:
    return Event("blink", frame=frame, face=1, data={"duration_s": 0.12,
                                                      "face_blinks": frame,
                                                      "detected_frame": frame + 3})


def summary(counts: dict[str, int], blinks: int = 3, final: bool = False) -> Event:
    period = {"counts": {k: counts.get(k, 0) for k in LABELS}, "blinks": blinks, "faces": 1,
              "frames": 300, "seconds": 60.0, "media_seconds": 60.0, "fps": 5.0,
              "blink_rate_per_min": float(blinks)}
    return Event("summary", data={**period, "total": period, "final": final})


def queued_files(queue_dir: Path) -> list[Path]:
    return sorted(queue_dir.glob("*.json")) if queue_dir.exists() else []


