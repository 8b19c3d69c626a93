"""Home Assistant over MQTT: the retained state message and the discovery configs."""

from __future__ import annotations

import json
import re
import socket
from typing import TYPE_CHECKING, Any

from edge import __version__

if TYPE_CHECKING:
    from edge.config import MqttConfig

ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def device_id(config: MqttConfig) -> str:
    """The configured id, or the hostname with characters MQTT topics and HA ids dislike."""
    return config.device_id or ID_UNSAFE.sub("_", socket.gethostname()) or "edge"


def state_payload(summary: dict[str, Any]) -> dict[str, Any]:
    """The retained `state` message Home Assistant reads, from a `summary` line."""
    counts: dict[str, int] = summary.get("counts", {})
    observed = sum(counts.values())
    dominant = max(counts, key=lambda k: counts[k]) if observed else "none"
    return {
        "ts": summary.get("ts"), "dominant": dominant, "counts": counts,
        "share": {k: round(100.0 * v / observed, 1) if observed else 0.0
                  for k, v in counts.items()},
        "blinks": summary.get("blinks", 0),
        "blink_rate_per_min": summary.get("blink_rate_per_min", 0.0),
        "faces": summary.get("faces", 0), "fps": summary.get("fps", 0.0),
        "seconds": summary.get("seconds", 0.0), "final": bool(summary.get("final")),
    }


def discovery_messages(config: MqttConfig, labels: tuple[str, ...] | list[str],
                       version: str = __version__) -> list[tuple[str, dict[str, Any]]]:
    """(topic, config) for each Home Assistant sensor: retained MQTT discovery."""
    device = device_id(config)
    base = f"{config.topic_prefix}/{device}"
    block = {"identifiers": [f"edge_emotion_{device}"], "name": f"edge-emotion {device}",
             "model": "edge-emotion", "manufacturer": "edge-emotion",
             "sw_version": version}
    sensors: list[tuple[str, str, str, dict[str, Any]]] = [
        ("dominant_emotion", "Dominant emotion", "{{ value_json.dominant }}",
         {"icon": "mdi:emoticon-outline"}),
        ("blink_rate", "Blink rate", "{{ value_json.blink_rate_per_min }}",
         {"unit_of_measurement": "blinks/min", "state_class": "measurement",
          "icon": "mdi:eye-outline"}),
        ("faces", "Faces", "{{ value_json.faces }}",
         {"unit_of_measurement": "faces", "state_class": "measurement",
          "icon": "mdi:account-multiple"}),
        ("fps", "Frame rate", "{{ value_json.fps }}",
         {"unit_of_measurement": "fps", "state_class": "measurement",
          "entity_category": "diagnostic", "icon": "mdi:speedometer"}),
    ]
    for label in labels:
        sensors.append((f"count_{ID_UNSAFE.sub('_', label).lower()}", f"{label} count",
                        f"{{{{ value_json.counts[{json.dumps(label)}] | default(0) }}}}",
                        {"unit_of_measurement": "observations", "state_class": "measurement",
                         "icon": "mdi:counter"}))
    messages = []
    for key, name, template, extra in sensors:
        unique = f"edge_emotion_{device}_{key}"
        messages.append((f"{config.discovery_prefix}/sensor/{device}_{key}/config", {
            "name": name, "unique_id": unique, "state_topic": f"{base}/state",
            "value_template": template, "availability_topic": f"{base}/availability",
            "payload_available": "online", "payload_not_available": "offline",
            "device": block, "origin": {"name": "edge-emotion", "sw_version": version},
            **extra}))
    return messages
