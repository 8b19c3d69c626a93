"""MQTT sink: events to a broker, Home Assistant discovery, and a disk queue for outages.

An `EventSink` like the JSONL log (open/write/sync/close). The pipeline never waits
for the network:

- `write()` turns an event into messages and appends them to a bounded queue kept on
  disk (one small file per message in `queue_dir`), then returns;
- a flusher thread hands queued messages to paho (QoS 1) while connected and deletes
  a message's file only once its PUBACK arrived, so a broker outage or a restart of
  this process loses nothing within the bound (delivery is at-least-once);
- paho's own thread (`loop_start`, `connect_async`) connects and reconnects with
  backoff. On every (re)connect paho's unacknowledged copies are dropped and the
  flusher resends from the disk queue: one source of truth, no stall if paho and the
  queue ever disagree.

Topics (`<prefix>/<device>/...`; payloads in docs/MQTT.md): `availability` (retained
`online`, last will `offline`), `state` (retained, for Home Assistant), and `summary`,
`blink`, `emotion`, `error`, `stop` (the event's log line as JSON).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge import __version__
from edge.errors import MqttError
from edge.model_contract import FER2013_LABELS
from edge.sinks.homeassistant import device_id, discovery_messages, state_payload
from edge.sinks.mqtt_queue import DiskQueue
from edge.types import Event

if TYPE_CHECKING:
    from edge.config import MqttConfig

log = logging.getLogger("edge.mqtt")

# Events published on <base>/<kind>. Not `start`: it carries the whole config.
EVENT_TOPICS = ("summary", "blink", "emotion", "error", "stop")
WINDOW = 20  # messages handed to paho and not yet acknowledged (paho's default inflight)
CLOSE_FLUSH_SECONDS = 2.0  # how long close() waits for the queue to drain when connected



# ---------------------------------------------------------------------------- settings


def secret_path(name: str) -> Path:
    """A relative name is a systemd credential (LoadCredential=) when running as a service."""
    path = Path(name)
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    if not path.is_absolute() and credentials:
        return Path(credentials) / path
    return path


def check_private(name: str, key: str) -> Path:
    """The secret file's path; MqttError if missing or open to group or others."""
    path = secret_path(name)
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise MqttError(f"mqtt.{key} {path}: {exc.strerror}") from None
    if mode & 0o077:
        raise MqttError(f"mqtt.{key} {path}: accessible by group or others (mode "
                        f"{mode & 0o777:04o}); make it readable only by the service "
                        f"user (chmod 600)")
    return path


def read_password(config: MqttConfig) -> str | None:
    if not config.password_file:
        return None
    path = check_private(config.password_file, "password_file")
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise MqttError(f"mqtt.password_file {path}: unreadable ({exc})") from None
    if not lines or not lines[0]:
        raise MqttError(f"mqtt.password_file {path}: empty")
    return lines[0]


def _warn_if_no_network() -> None:
    # The hardened unit allows AF_UNIX only; MQTT needs the drop-in that `service install`
    # writes. Not fatal: the camera and the local log go on, messages wait in the queue.
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()
    except OSError as exc:
        log.error("mqtt: this process may not open network sockets (%s); under systemd, "
                  "run `edge-run service install` again to add the MQTT drop-in",
                  exc.strerror or exc)


def _import_paho() -> Any:
    try:
        import paho.mqtt.client as paho
    except ImportError:
        raise MqttError("mqtt.enabled needs paho-mqtt: pip install paho-mqtt"
                        ) from None
    return paho


def make_client(config: MqttConfig, paho: Any, password: str | None, client_id: str) -> Any:
    """A paho client with our credentials, TLS and in-flight window; not connected."""
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id,
                         clean_session=True)
    if config.username:
        client.username_pw_set(config.username, password)
    if config.tls:
        _set_tls(client, config)
    client.max_inflight_messages_set(WINDOW)
    return client


def _set_tls(client: Any, config: MqttConfig) -> None:
    key = str(check_private(config.key_file, "key_file")) if config.key_file else None
    for name in ("ca_file", "cert_file"):
        value = getattr(config, name)
        if value and not Path(value).is_file():
            raise MqttError(f"mqtt.{name} {value}: not found")
    try:
        client.tls_set(ca_certs=config.ca_file or None,
                       certfile=config.cert_file or None, keyfile=key)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise MqttError(f"mqtt: TLS setup failed ({exc})") from None


# ---------------------------------------------------------------------------- the sink


class MqttSink:
    """Publishes events to an MQTT broker without ever blocking the caller on the network."""

    name = "mqtt"

    def __init__(self, config: MqttConfig, reconnect_min: float = 1.0,
                 reconnect_max: float = 60.0,
                 close_flush_seconds: float = CLOSE_FLUSH_SECONDS) -> None:
        self.config = config
        self.device = device_id(config)
        self.base = f"{config.topic_prefix}/{self.device}"
        self.availability = f"{self.base}/availability"
        self.queue = DiskQueue(config.queue_dir or None, config.queue_max_messages)
        self.reconnect = (reconnect_min, reconnect_max)
        self.close_flush_seconds = close_flush_seconds
        self.published = 0  # messages acknowledged by the broker since open
        self._labels: tuple[str, ...] = FER2013_LABELS
        self._version = __version__
        self._state: str | None = None  # latest `state` payload; only the latest matters
        self._dirty = {"discovery": False, "state": False}
        self._client: Any = None
        self._kept: tuple[int, ...] = ()  # publish() codes after which paho holds the message
        self._flusher: threading.Thread | None = None
        self._wake = threading.Event()
        self._stopping = False
        self._connected = False
        self._generation = 0  # bumped by every successful connect
        self._seen_generation = 0
        self._inflight: dict[int, int] = {}  # paho mid -> queue seq; flusher thread only
        self._acks: deque[int] = deque()  # mids acknowledged, from paho's thread
        self._outage_logged = False
        self._write_failed = False

    # -- lifetime ----------------------------------------------------------
    def open(self) -> MqttSink:
        paho = _import_paho()
        password = read_password(self.config)
        _warn_if_no_network()
        waiting = self.queue.open()
        if waiting:
            log.info("mqtt: %d messages from an earlier run are waiting to be sent", waiting)
        self._client = make_client(self.config, paho, password, f"edge-emotion-{self.device}")
        self._client.will_set(self.availability, "offline", qos=1, retain=True)
        self._client.reconnect_delay_set(*self.reconnect)
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._kept = (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN)
        self._flusher = threading.Thread(target=self._flush_loop, name="mqtt-flush",
                                         daemon=True)
        self._flusher.start()
        # Never blocks: paho's thread resolves, connects and retries with backoff.
        self._client.connect_async(self.config.host, self.config.port, self.config.keepalive)
        self._client.loop_start()
        return self

    def __enter__(self) -> MqttSink:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Drain briefly, say "offline", disconnect; anything unsent stays on disk."""
        if self._client is None:
            return
        deadline = time.monotonic() + self.close_flush_seconds
        while self._connected and len(self.queue) and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.02)
        self._stopping = True
        self._wake.set()
        if self._flusher is not None:
            self._flusher.join(timeout=5.0)
        if self._connected:
            info = self._client.publish(self.availability, "offline", qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):  # the connection went
                info.wait_for_publish(timeout=max(0.2, deadline - time.monotonic()))
        self._client.disconnect()
        # loop_stop() joins paho's thread, which may sit in a slow DNS lookup or TCP
        # connect: give it 3 s, then leave it (a daemon thread) so SIGTERM stays prompt.
        stopper = threading.Thread(target=self._client.loop_stop, daemon=True)
        stopper.start()
        stopper.join(timeout=3.0)
        self.queue.sync()
        if len(self.queue):
            log.info("mqtt: %d messages kept in %s for the next run", len(self.queue),
                     self.queue.directory or "memory (lost: no queue_dir)")
        self._client = None

    # -- the sink interface -------------------------------------------------
    def write(self, event: Event) -> None:
        """Queue the event's messages and return: disk and memory only, never the network."""
        try:
            self._enqueue(event.to_dict())
        except Exception as exc:  # an MQTT problem must never stop the pipeline
            if not self._write_failed:
                log.error("mqtt: event not queued: %r", exc)
            self._write_failed = True
        self._wake.set()

    def _enqueue(self, line: dict[str, Any]) -> None:
        kind = line["event"]
        if kind == "start":
            self._labels = tuple(line.get("labels") or self._labels)
            self._version = str(line.get("version") or self._version)
            self._dirty["discovery"] = True
        if kind in EVENT_TOPICS:
            self.queue.put(f"{self.base}/{kind}", json.dumps(line, separators=(",", ":")))
        if kind == "summary":
            self._state = json.dumps(state_payload(line), separators=(",", ":"))
            self._dirty["state"] = True

    def sync(self) -> None:
        """Push queued messages to stable storage (the runner calls this at each summary)."""
        self.queue.sync()

    # -- paho callbacks (paho's thread: record and wake the flusher, nothing slow) --
    def _on_connect(self, client: Any, _userdata: Any, _flags: Any, reason: Any,
                    _properties: Any) -> None:
        if reason.is_failure:
            self._log_outage(f"broker refused the connection: {reason}")
            return
        # Resend from the disk queue, not from paho's copies (see the module docstring).
        client.drop_out_messages()
        self._generation += 1
        self._connected = True
        log.info("mqtt: connected to %s:%d; %d messages queued", self.config.host,
                 self.config.port, len(self.queue))
        if self.queue.take_drop_notice():
            log.warning("mqtt: %d messages dropped so far (queue_max_messages %d)",
                        self.queue.dropped, self.queue.max_messages)
        self._outage_logged = False
        self._wake.set()

    def _on_connect_fail(self, _client: Any, _userdata: Any) -> None:
        self._log_outage(f"cannot connect to {self.config.host}:{self.config.port}")

    def _on_disconnect(self, _client: Any, _userdata: Any, _flags: Any, reason: Any,
                       _properties: Any) -> None:
        self._connected = False
        if not self._stopping:
            self._log_outage(f"connection lost ({reason})")
        self._wake.set()

    def _on_publish(self, _client: Any, _userdata: Any, mid: int, _reason: Any,
                    _properties: Any) -> None:
        self._acks.append(mid)
        self._wake.set()

    def _log_outage(self, what: str) -> None:
        # Once per outage: a broker away for a week must not fill the journal.
        if not self._outage_logged:
            log.warning("mqtt: %s; queuing in %s and retrying", what,
                        self.queue.directory or "memory")
        self._outage_logged = True

    # -- the flusher thread -------------------------------------------------
    def _flush_loop(self) -> None:
        while not self._stopping:
            self._wake.wait(timeout=1.0)
            self._wake.clear()  # before the work: a wake-up during it is not lost
            try:
                self._flush_once()
            except Exception as exc:  # keep flushing whatever happens; paho may raise
                log.error("mqtt: flush failed: %r", exc)
                time.sleep(1.0)
        self._apply_acks()

    def _flush_once(self) -> None:
        self._apply_acks()
        if not self._connected:
            return
        if self._generation != self._seen_generation:
            self._seen_generation = self._generation
            self._inflight.clear()  # dropped from paho on connect: resend them
            self._publish_control(online=True)
        else:
            self._publish_control(online=False)
        self._publish_queued()

    def _apply_acks(self) -> None:
        while self._acks:
            seq = self._inflight.pop(self._acks.popleft(), None)
            if seq is not None:
                self.queue.remove(seq)
                self.published += 1

    def _publish_control(self, online: bool) -> None:
        """Availability, discovery and state: retained, rebuilt on every connect."""
        if online:
            self._publish(self.availability, "online", retain=True)
        if (online or self._dirty["discovery"]) and self.config.discovery_prefix:
            self._dirty["discovery"] = False
            for topic, payload in discovery_messages(self.config, self._labels,
                                                     self._version):
                self._publish(topic, json.dumps(payload), retain=True)
        if (online or self._dirty["state"]) and self._state is not None:
            self._dirty["state"] = False
            self._publish(f"{self.base}/state", self._state, retain=True)

    def _publish_queued(self) -> None:
        room = WINDOW - len(self._inflight)
        if room <= 0:
            return
        for message in self.queue.pending(set(self._inflight.values()), room):
            mid = self._publish(message.topic, message.payload, message.retain)
            if mid is None:
                break
            self._inflight[mid] = message.seq

    def _publish(self, topic: str, payload: str, retain: bool = False) -> int | None:
        """Hand one message to paho; its mid, or None if paho did not keep it."""
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        # NO_CONN: paho keeps the message until the next connect, where it is dropped
        # and resent from the queue.
        if info.rc not in self._kept:
            return None
        return info.mid


# ---------------------------------------------------------------------------- check


def check_broker(config: MqttConfig, timeout: float = 5.0) -> str:
    """`edge-run check`: credentials, TLS and an MQTT handshake; MqttError if any fails."""
    paho = _import_paho()
    where = f"{config.host}:{config.port}"
    # Its own client id: the running service's connection must not be taken over.
    client = make_client(config, paho, read_password(config),
                         f"edge-emotion-{device_id(config)}-check")
    answers: list[Any] = []
    client.on_connect = lambda _c, _u, _f, reason, _p: answers.append(reason)
    client.connect_timeout = timeout
    try:
        client.connect(config.host, config.port, config.keepalive)
        deadline = time.monotonic() + timeout
        while not answers and time.monotonic() < deadline:
            client.loop(timeout=0.1)
    except OSError as exc:  # refused, unreachable, unknown name, TLS failure
        raise MqttError(f"mqtt: cannot reach {where} ({exc.strerror or exc})") from None
    finally:
        client.disconnect()
    if not answers:
        raise MqttError(f"mqtt: {where} did not answer the MQTT handshake in {timeout:g} s")
    if answers[0].is_failure:
        raise MqttError(f"mqtt: {where} refused the connection: {answers[0]}")
    return f"ok: mqtt broker {where}, topics {config.topic_prefix}/{device_id(config)}/..."
