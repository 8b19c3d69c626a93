"""The MQTT sink without a broker: writes that never wait, the bounded queue, secrets,
config checks, Home Assistant payloads and the systemd drop-in. With a real mosquitto:
tests/e2e/test_mqtt.py."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from edge import config as edge_config
from edge.commands.units import systemd_dropin
from edge.errors import MqttError
from edge.sinks.homeassistant import discovery_messages, state_payload
from edge.sinks.mqtt import MqttSink, check_broker, check_private, read_password
from edge.sinks.mqtt_queue import DiskQueue
from tests.mqtt_support import (
    DEVICE,
    blink,
    free_port,
    make_sink,
    mqtt_config,
    queued_files,
    write_without_network,
)

paho = pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed")



# ---------------------------------------------------------------------------- helpers




def test_write_never_blocks_with_no_broker(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    with make_sink(port, tmp_path / "queue") as sink:
        write_without_network(sink, [blink(frame) for frame in range(200)])
        assert len(sink.queue) == 200
    assert len(queued_files(tmp_path / "queue")) == 200


def test_check_says_when_the_broker_is_unreachable() -> None:
    port = free_port()
    with pytest.raises(MqttError, match=rf"cannot reach 127\.0\.0\.1:{port} \(.*refused"):
        check_broker(mqtt_config(port, None))


def test_queue_is_bounded_and_drops_the_oldest(tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    queue = DiskQueue(tmp_path / "q", max_messages=5)
    queue.open()
    with caplog.at_level("WARNING", logger="edge.mqtt"):
        for i in range(8):
            queue.put("t", json.dumps({"i": i}))
    assert len(queue) == 5 and queue.dropped == 3
    assert "queue full (5 messages): dropping the oldest" in caplog.text
    assert [json.loads(m.payload)["i"] for m in queue.pending(set(), 10)] == [3, 4, 5, 6, 7]
    assert len(list((tmp_path / "q").glob("*.json"))) == 5
    queue.sync()

    (tmp_path / "q" / "000000000099.json").write_text('{"topic": "t", "pay')  # torn
    again = DiskQueue(tmp_path / "q", max_messages=5)
    with caplog.at_level("WARNING", logger="edge.mqtt"):
        assert again.open() == 5
    assert "1 unreadable messages discarded" in caplog.text
    assert [json.loads(m.payload)["i"] for m in again.pending(set(), 10)] == [3, 4, 5, 6, 7]
    assert again.put("t", "{}").seq == 9  # numbering goes on; 3 dropped to stay at 5
    smaller = DiskQueue(tmp_path / "q", max_messages=2)  # a lower bound applies at load
    assert smaller.open() == 2 and smaller.dropped == 3


def test_password_file_must_be_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "pw"
    secret.write_text("hunter2\nignored\n")
    secret.chmod(0o640)
    config = mqtt_config(1883, None, username="u", password_file=str(secret))
    with pytest.raises(MqttError, match=r"accessible by group or others \(mode 0640\)"):
        read_password(config)
    with pytest.raises(MqttError, match="group or others"):  # refused before any network
        MqttSink(config).open()
    secret.chmod(0o600)
    assert read_password(config) == "hunter2"
    with pytest.raises(MqttError, match="No such file"):
        read_password(mqtt_config(1883, None, password_file=str(tmp_path / "absent")))
    (tmp_path / "empty").write_text("")
    (tmp_path / "empty").chmod(0o600)
    with pytest.raises(MqttError, match="empty"):
        read_password(mqtt_config(1883, None, password_file=str(tmp_path / "empty")))
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert check_private("pw", "password_file") == secret  # relative: a systemd credential
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600


def test_config_section_validates() -> None:
    with pytest.raises(edge_config.ConfigError, match=r"mqtt\.host: required"):
        edge_config.apply(edge_config.Config(), {"mqtt": {"enabled": True}})
    with pytest.raises(edge_config.ConfigError, match=r"mqtt\.port"):
        edge_config.apply(edge_config.Config(), {"mqtt": {"port": 70000}})
    with pytest.raises(edge_config.ConfigError, match=r"mqtt\.device_id"):
        edge_config.apply(edge_config.Config(), {"mqtt": {"enabled": True, "host": "b",
                                                          "device_id": "a/+"}})
    ok = edge_config.apply(edge_config.Config(), {"mqtt": {"enabled": True, "host": "b"}})
    assert ok.mqtt.topic_prefix == "edge-emotion" and "[mqtt]" in edge_config.to_toml(ok)


def test_state_payload_without_faces() -> None:
    state = state_payload({"event": "summary", "ts": "t", "counts": {"Happy": 0, "Sad": 0},
                           "blinks": 0, "faces": 0, "fps": 4.5, "blink_rate_per_min": 0.0})
    assert state["dominant"] == "none" and state["share"] == {"Happy": 0.0, "Sad": 0.0}
    assert state["fps"] == 4.5


def test_discovery_ids_are_safe_for_odd_labels() -> None:
    config = mqtt_config(1883, None, discovery_prefix="ha")
    topics = [t for t, _ in discovery_messages(config, ["Very happy", "Sad"])]
    assert f"ha/sensor/{DEVICE}_count_very_happy/config" in topics
    assert len(topics) == len(set(topics)) == 4 + 2


def test_systemd_dropin_opens_only_what_mqtt_needs() -> None:
    literal = systemd_dropin(mqtt_config(8883, None, host="192.0.2.7", username="edge",
                                         password_file="mqtt-password",
                                         key_file="/etc/ssl/private/k.pem",
                                         cert_file="/etc/ssl/c.pem"), "/etc/edge-emotion")
    assert "PrivateNetwork=no" in literal and "IPAddressAllow=192.0.2.7" in literal
    assert "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6" in literal
    assert "LoadCredential=mqtt-password:/etc/edge-emotion/mqtt-password" in literal
    assert "k.pem" not in literal  # absolute: the admin arranges access
    assert "\nIPAddressDeny=\n" not in literal
    named = systemd_dropin(mqtt_config(1883, None, host="broker.lan"), "/etc/edge-emotion")
    assert "\nIPAddressDeny=\n" in named and "IPAddressAllow" not in named
    loopback = systemd_dropin(mqtt_config(1883, None, host="127.0.0.1"), "/etc/x")
    assert "IPAddressAllow=localhost" in loopback
