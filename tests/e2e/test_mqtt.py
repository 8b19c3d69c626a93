"""The MQTT sink against a real mosquitto on 127.0.0.1: payloads, Home Assistant discovery,
the last will, and nothing lost while the broker is away or the sink restarts.

The broker runs from a config file on a free loopback port, with persistence so that a
subscriber's session (clean_session=False, QoS 1) outlives a broker restart: messages the
sink sends right after the restart are kept for the subscriber whatever order the two
reconnect in, so the tests do not depend on timing. Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.errors import MqttError
from edge.sinks.mqtt import check_broker
from edge.types import Event
from tests.mqtt_support import (
    BASE,
    DEVICE,
    LABELS,
    blink,
    free_port,
    make_sink,
    mqtt_config,
    queued_files,
    summary,
    write_without_network,
)

paho = pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed")

REPO_ROOT = Path(__file__).resolve().parents[2]
MOSQUITTO = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/sbin")
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or shutil.which(
    "mosquitto_passwd", path="/usr/bin:/usr/sbin")
needs_broker = pytest.mark.skipif(
    MOSQUITTO is None, reason="mosquitto not installed (apt-get install mosquitto)")
TIMEOUT = 10.0  # seconds: the longest any single wait may take


# ---------------------------------------------------------------------------- helpers




def wait_until(predicate: Callable[[], bool], timeout: float = TIMEOUT,
               what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


class Broker:
    """mosquitto on 127.0.0.1:port, restartable on the same port, state kept in `workdir`."""

    def __init__(self, workdir: Path, extra: str = "") -> None:
        self.workdir = workdir
        self.port = free_port()
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        # As root mosquitto would switch to user `mosquitto`, which cannot write here.
        user = pwd.getpwuid(os.geteuid()).pw_name
        self.conf.write_text(textwrap.dedent(f"""\
            listener {self.port} 127.0.0.1
            allow_anonymous true
            persistence true
            persistence_location {workdir}/
            user {user}
            log_dest file {self.log}
            """) + extra)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Broker:
        self.proc = subprocess.Popen([str(MOSQUITTO), "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._listening, 5.0, f"mosquitto on port {self.port}")
        return self

    def _listening(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            log = self.log.read_text() if self.log.exists() else ""
            raise AssertionError(f"mosquitto exited: {log[-500:]}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
        except OSError:
            return False
        return True

    def stop(self) -> None:
        """SIGTERM: mosquitto saves sessions and queued messages, then exits."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=5)
        self.proc = None


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    if MOSQUITTO is None:
        pytest.skip("mosquitto not installed (apt-get install mosquitto)")
    workdir = tmp_path / "broker"
    workdir.mkdir()
    b = Broker(workdir).start()
    try:
        yield b
    finally:
        b.stop()


class Subscriber:
    """A paho client that records every message under `topic` (QoS 1)."""

    def __init__(self, port: int, topic: str = "#", client_id: str = "",
                 persistent: bool = False, auth: tuple[str, str] | None = None) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id,
                             clean_session=not persistent)
        if auth:
            client.username_pw_set(*auth)
        client.on_connect = lambda c, _u, _f, _rc, _p: c.subscribe(topic, qos=1)
        client.on_subscribe = lambda *_a: self._subscribed.set()
        client.on_message = self._on_message
        client.reconnect_delay_set(0.1, 0.5)  # type: ignore[arg-type]
        client.connect("127.0.0.1", port, keepalive=5)
        client.loop_start()
        self.client = client
        assert self._subscribed.wait(5.0), "subscriber never got SUBACK"

    def _on_message(self, _client: Any, _userdata: Any, msg: Any) -> None:
        with self._lock:
            self.messages.append((msg.topic, msg.payload, bool(msg.retain)))

    def on(self, topic: str) -> list[bytes]:
        with self._lock:
            return [payload for t, payload, _r in self.messages if t == topic]

    def json_on(self, topic: str) -> list[dict[str, Any]]:
        return [json.loads(p) for p in self.on(topic)]

    def wait_for(self, topic: str, count: int = 1, timeout: float = TIMEOUT) -> list[bytes]:
        wait_until(lambda: len(self.on(topic)) >= count, timeout,
                   f"{count} message(s) on {topic}")
        return self.on(topic)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
















# ---------------------------------------------------------------------------- with a broker


@needs_broker
def test_events_arrive_with_documented_payloads(broker: Broker, tmp_path: Path) -> None:
    sub = Subscriber(broker.port, f"{BASE}/#")
    try:
        with make_sink(broker.port, tmp_path / "queue") as sink:
            sink.write(Event("start", data={"version": "9.9", "labels": LABELS,
                                            "config": {"secret": "not published"}}))
            sink.write(Event("emotion", frame=5, face=1, data={
                "emotion": "Happy", "previous": None, "scores": {"Happy": 0.9}}))
            sink.write(blink(7))
            sink.write(summary({"Happy": 40, "Neutral": 10}, blinks=3))
            sink.write(Event("stop", data={"reason": "end of input", "frames": 300}))
            sub.wait_for(f"{BASE}/stop")
            wait_until(lambda: len(sink.queue) == 0, what="the queue to drain")
            assert queued_files(tmp_path / "queue") == []  # deleted once acknowledged
        sub.wait_for(f"{BASE}/availability", 2)
        assert sub.on(f"{BASE}/availability") == [b"online", b"offline"]  # clean close
        assert sub.on(f"{BASE}/start") == []  # the start line carries the whole config

        (emotion,) = sub.json_on(f"{BASE}/emotion")
        assert emotion["event"] == "emotion" and emotion["emotion"] == "Happy"
        assert emotion["face"] == 1 and emotion["frame"] == 5 and emotion["previous"] is None
        (event,) = sub.json_on(f"{BASE}/blink")
        assert event["event"] == "blink" and event["duration_s"] == 0.12
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", event["ts"])
        (period,) = sub.json_on(f"{BASE}/summary")
        assert period["counts"]["Happy"] == 40 and period["total"]["blinks"] == 3

        (state,) = sub.json_on(f"{BASE}/state")
        assert state["dominant"] == "Happy" and state["counts"]["Neutral"] == 10
        assert state["share"]["Happy"] == 80.0 and state["blink_rate_per_min"] == 3.0
        assert state["faces"] == 1 and state["fps"] == 5.0 and state["ts"].endswith("Z")
    finally:
        sub.close()


def template_value(template: str, state: dict[str, Any]) -> Any:
    """Evaluates the simple Jinja forms discovery uses: value_json.a / value_json.a["b"]."""
    match = re.fullmatch(r'\{\{ value_json\.(\w+)(?:\[("[^"]+")\])?( \| default\(0\))? \}\}',
                         template)
    assert match, f"unexpected template {template}"
    value = state[match.group(1)]
    return value[json.loads(match.group(2))] if match.group(2) else value


@needs_broker
def test_discovery_configs_are_retained_and_complete(broker: Broker, tmp_path: Path) -> None:
    with make_sink(broker.port, tmp_path / "queue") as sink:
        sink.write(Event("start", data={"version": "1.2.3", "labels": LABELS}))
        sink.write(summary({"Sad": 7}))
        wait_until(lambda: sink.published >= 1, what="the summary's PUBACK")
        # A subscriber that comes later (Home Assistant restarting) gets them retained.
        late = Subscriber(broker.port, "homeassistant/#")
        try:
            wait_until(lambda: len(late.messages) >= 4 + len(LABELS), what="discovery")
            configs = {t: json.loads(p) for t, p, retained in late.messages if retained}
        finally:
            late.close()
        state_sub = Subscriber(broker.port, f"{BASE}/state")
        try:
            (state,) = [json.loads(p) for p in state_sub.wait_for(f"{BASE}/state")]
        finally:
            state_sub.close()

    assert len(configs) == 4 + len(LABELS)
    required = {"name", "unique_id", "state_topic", "value_template", "availability_topic",
                "device"}
    for topic, cfg in configs.items():
        assert re.fullmatch(rf"homeassistant/sensor/{DEVICE}_[a-z_]+/config", topic), topic
        assert required <= cfg.keys(), topic
        assert cfg["state_topic"] == f"{BASE}/state"
        assert cfg["availability_topic"] == f"{BASE}/availability"
        assert cfg["device"]["identifiers"] == [f"edge_emotion_{DEVICE}"]
        assert {"name", "model", "sw_version"} <= cfg["device"].keys()
        assert cfg["device"]["sw_version"] == "1.2.3"
        template_value(cfg["value_template"], state)  # every template resolves
    assert len({c["unique_id"] for c in configs.values()}) == len(configs)
    by_key = {t.split("/")[2].removeprefix(f"{DEVICE}_"): c for t, c in configs.items()}
    assert by_key["blink_rate"]["unit_of_measurement"] == "blinks/min"
    assert by_key["fps"]["unit_of_measurement"] == "fps"
    assert by_key["faces"]["unit_of_measurement"] == "faces"
    assert "unit_of_measurement" not in by_key["dominant_emotion"]
    assert template_value(by_key["dominant_emotion"]["value_template"], state) == "Sad"
    assert template_value(by_key["count_sad"]["value_template"], state) == 7


@needs_broker
def test_last_will_says_offline_when_the_process_dies(broker: Broker, tmp_path: Path) -> None:
    sub = Subscriber(broker.port, f"{BASE}/availability")
    script = textwrap.dedent(f"""\
        import os, signal, time
        from edge.config import MqttConfig
        from edge.sinks.mqtt import MqttSink
        from edge.types import Event
        sink = MqttSink(MqttConfig(enabled=True, host="127.0.0.1", port={broker.port},
                                   device_id="{DEVICE}", queue_dir="", keepalive=5)).open()
        sink.write(Event("blink", frame=1, face=1))
        deadline = time.monotonic() + 10
        while not sink.published and time.monotonic() < deadline:  # so "online" went out
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGKILL)  # no DISCONNECT: the broker sends the will
        """)
    try:
        proc = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, timeout=20,
                              capture_output=True, text=True)
        assert proc.returncode == -9, proc.stderr[-2000:]
        sub.wait_for(f"{BASE}/availability", 2)
        assert sub.on(f"{BASE}/availability")[:2] == [b"online", b"offline"]
    finally:
        sub.close()
    late = Subscriber(broker.port, f"{BASE}/availability")  # the will is retained
    try:
        assert late.wait_for(f"{BASE}/availability") == [b"offline"]
    finally:
        late.close()


@needs_broker
def test_broker_restart_mid_run_loses_nothing(broker: Broker, tmp_path: Path) -> None:
    n, m = 20, 30
    queue = tmp_path / "queue"
    sub = Subscriber(broker.port, f"{BASE}/blink", client_id="test-sub", persistent=True)
    try:
        with make_sink(broker.port, queue) as sink:
            for frame in range(n):
                sink.write(blink(frame))
            sub.wait_for(f"{BASE}/blink", n)
            wait_until(lambda: len(sink.queue) == 0, what="the first PUBACKs")
            broker.stop()
            wait_until(lambda: not sink._connected, what="the sink to see the broker go")
            write_without_network(sink, [blink(frame) for frame in range(n, n + m)])
            assert len(queued_files(queue)) == m  # on disk while the broker is away
            broker.start()
            wait_until(lambda: len({e["frame"] for e in sub.json_on(f"{BASE}/blink")})
                       >= n + m, what="all blinks after the restart")
            wait_until(lambda: not queued_files(queue), what="acknowledged files removed")
        frames = {e["frame"] for e in sub.json_on(f"{BASE}/blink")}
        assert frames == set(range(n + m))  # QoS 1: duplicates allowed, losses not
    finally:
        sub.close()


@needs_broker
def test_queue_survives_a_restart_of_the_sink(tmp_path: Path) -> None:
    queue = tmp_path / "queue"
    workdir = tmp_path / "broker"
    workdir.mkdir()
    broker = Broker(workdir)  # not started: the broker is down while the first run writes
    with make_sink(broker.port, queue) as sink:
        write_without_network(sink, [blink(frame) for frame in range(25)])
    assert len(queued_files(queue)) == 25
    broker.start()
    try:
        sub = Subscriber(broker.port, f"{BASE}/blink")
        try:
            with make_sink(broker.port, queue):  # the next run, same queue folder
                sub.wait_for(f"{BASE}/blink", 25)
            assert sorted(e["frame"] for e in sub.json_on(f"{BASE}/blink")) == list(range(25))
            assert queued_files(queue) == []
        finally:
            sub.close()
    finally:
        broker.stop()


@needs_broker
@pytest.mark.skipif(MOSQUITTO_PASSWD is None, reason="mosquitto_passwd not installed")
def test_password_from_the_credentials_file(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    workdir = tmp_path / "broker"
    workdir.mkdir()
    subprocess.run([str(MOSQUITTO_PASSWD), "-b", "-c", str(workdir / "passwd"), "edge",
                    "s3cret"], check=True, capture_output=True)
    broker = Broker(workdir, extra=f"password_file {workdir / 'passwd'}\n")
    broker.conf.write_text(broker.conf.read_text().replace("allow_anonymous true",
                                                           "allow_anonymous false"))
    broker.start()
    credentials = tmp_path / "credentials"  # what systemd's LoadCredential= provides
    credentials.mkdir()
    (credentials / "mqtt-password").write_text("s3cret\n")
    (credentials / "mqtt-password").chmod(0o400)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    try:
        sub = Subscriber(broker.port, f"{BASE}/blink", auth=("edge", "s3cret"))
        try:
            with make_sink(broker.port, tmp_path / "queue", username="edge",
                           password_file="mqtt-password") as sink:
                sink.write(blink(1))
                sub.wait_for(f"{BASE}/blink")
            good = mqtt_config(broker.port, None, username="edge",
                               password_file="mqtt-password")
            assert check_broker(good).startswith(f"ok: mqtt broker 127.0.0.1:{broker.port}")
            (credentials / "mqtt-password").chmod(0o600)
            (credentials / "mqtt-password").write_text("wrong\n")
            with pytest.raises(MqttError, match="refused the connection"):
                check_broker(good)
            with make_sink(broker.port, tmp_path / "queue", username="edge",
                           password_file="mqtt-password") as sink:
                sink.write(blink(2))  # refused by the broker: kept, nothing raised
                time.sleep(0.5)
                assert not sink._connected and len(sink.queue) == 1
        finally:
            sub.close()
    finally:
        broker.stop()


# ---------------------------------------------------------------------------- no broker
















