"""MQTT sink: events to a broker, Home Assistant discovery, and a disk queue for outages.

Same interface as `JsonlLog` (open/write/sync/close, context manager), so the runner
treats it as one more event sink. The pipeline never waits for the network:

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
import re
import socket
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge import __version__
from edge.errors import EdgeError
from edge.eventlog import event_to_dict
from edge.model_contract import FER2013_LABELS
from edge.types import Event

if TYPE_CHECKING:
    from edge.config import MqttConfig

log = logging.getLogger("edge.mqtt")

# Events published on <base>/<kind>. Not `start`: it carries the whole config.
EVENT_TOPICS = ("summary", "blink", "emotion", "error", "stop")
WINDOW = 20  # messages handed to paho and not yet acknowledged (paho's default inflight)
CLOSE_FLUSH_SECONDS = 2.0  # how long close() waits for the queue to drain when connected
ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


class MqttError(EdgeError):
    """Unusable MQTT settings (credentials, TLS files, missing paho): one line."""


# ---------------------------------------------------------------------------- settings


def device_id(config: MqttConfig) -> str:
    """The configured id, or the hostname with characters MQTT topics and HA ids dislike."""
    return config.device_id or ID_UNSAFE.sub("_", socket.gethostname()) or "edge"


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
        raise MqttError("mqtt.enabled needs paho-mqtt: pip install 'edge-emotion[mqtt]'"
                        ) from None
    return paho


# ---------------------------------------------------------------------------- the queue


@dataclass
class Message:
    seq: int
    topic: str
    payload: str
    retain: bool = False
    path: Path | None = None  # None: memory only (no queue_dir, or the disk failed)


class DiskQueue:
    """Bounded FIFO of messages, one JSON file per message, oldest dropped past the bound.

    A file per message keeps every operation one create or one unlink: nothing to
    compact, and a file torn by a power cut only loses itself (skipped on load).
    Thread-safe: the pipeline puts, the flusher reads and removes.
    """

    def __init__(self, directory: str | Path | None, max_messages: int) -> None:
        self.directory = Path(directory) if directory else None
        self.max_messages = max_messages
        self.dropped = 0  # since start, past the bound
        self._items: OrderedDict[int, Message] = OrderedDict()
        self._lock = threading.Lock()
        self._next_seq = 1
        self._unsynced: set[Path] = set()  # written since the last sync, still queued
        self._disk_failing = False
        self._dropping = False

    def open(self) -> int:
        """Load what an earlier run left; returns how many messages that was."""
        if self.directory is None:
            return 0
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            files = sorted(p for p in self.directory.iterdir()
                           if p.suffix == ".json" and p.stem.isdigit())
        except OSError as exc:
            raise MqttError(f"mqtt.queue_dir {self.directory}: {exc.strerror}") from None
        garbled = 0
        for path in files:
            message = self._load(path)
            if message is None:
                garbled += 1
                path.unlink(missing_ok=True)
            else:
                self._items[message.seq] = message
        if garbled:
            log.warning("mqtt queue %s: %d unreadable messages discarded (torn by a crash)",
                        self.directory, garbled)
        self._next_seq = max(self._items, default=0) + 1
        with self._lock:
            self._trim()
        return len(self._items)

    @staticmethod
    def _load(path: Path) -> Message | None:
        try:
            data = json.loads(path.read_bytes())
            return Message(int(path.stem), str(data["topic"]), str(data["payload"]),
                           bool(data.get("retain", False)), path)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, topic: str, payload: str, retain: bool = False) -> Message:
        with self._lock:
            message = Message(self._next_seq, topic, payload, retain)
            self._next_seq += 1
            message.path = self._write(message)
            self._items[message.seq] = message
            self._trim()
        return message

    def _write(self, message: Message) -> Path | None:
        if self.directory is None:
            return None
        path = self.directory / f"{message.seq:012d}.json"
        data = json.dumps({"topic": message.topic, "retain": message.retain,
                           "payload": message.payload}, separators=(",", ":")).encode()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                if os.write(fd, data) != len(data):
                    raise OSError(28, "short write")
            finally:
                os.close(fd)
        except OSError as exc:
            path.unlink(missing_ok=True)
            if not self._disk_failing:
                log.error("mqtt queue %s: write failed (%s); queuing in memory only",
                          self.directory, exc.strerror or exc)
            self._disk_failing = True
            return None
        if self._disk_failing:
            log.warning("mqtt queue %s: writable again", self.directory)
            self._disk_failing = False
        self._unsynced.add(path)
        return path

    def _trim(self) -> None:
        while len(self._items) > self.max_messages:
            _, oldest = self._items.popitem(last=False)
            self._unlink(oldest)
            self.dropped += 1
            if not self._dropping:
                log.warning("mqtt queue full (%d messages): dropping the oldest",
                            self.max_messages)
            self._dropping = True

    def _unlink(self, message: Message) -> None:
        if message.path is not None:
            self._unsynced.discard(message.path)
            try:
                message.path.unlink(missing_ok=True)
            except OSError as exc:  # a read-only disk: the message comes back once, no harm
                log.debug("mqtt queue: cannot remove %s: %s", message.path, exc)

    def remove(self, seq: int) -> None:
        with self._lock:
            message = self._items.pop(seq, None)
            if message is not None:
                self._unlink(message)

    def pending(self, skip: set[int], limit: int) -> list[Message]:
        """Up to `limit` oldest messages whose seq is not in `skip` (those in flight)."""
        out: list[Message] = []
        with self._lock:
            for seq, message in self._items.items():
                if len(out) >= limit:
                    break
                if seq not in skip:
                    out.append(message)
        return out

    def take_drop_notice(self) -> bool:
        """True once after the queue overflowed: the caller reports the count."""
        with self._lock:
            was, self._dropping = self._dropping, False
        return was

    def sync(self) -> None:
        """fsync the messages written since the last sync, and the folder (summary, stop)."""
        with self._lock:
            paths, self._unsynced = sorted(self._unsynced), set()
        if self.directory is None or not paths:
            return  # the usual case while connected: everything was acknowledged already
        for path in paths:
            _fsync(path)
        _fsync(self.directory)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


def _fsync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # already acknowledged and removed
        return
    try:
        with contextlib.suppress(OSError):  # a failing disk: already reported by the write
            os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------- payloads


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


# ---------------------------------------------------------------------------- the sink


class MqttSink:
    """Publishes events to an MQTT broker without ever blocking the caller on the network."""

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
        self._client = self._make_client(paho, password, f"edge-emotion-{self.device}")
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

    def _make_client(self, paho: Any, password: str | None, client_id: str) -> Any:
        config = self.config
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id,
                             clean_session=True)
        if config.username:
            client.username_pw_set(config.username, password)
        if config.tls:
            self._set_tls(client)
        client.max_inflight_messages_set(WINDOW)
        return client

    def _set_tls(self, client: Any) -> None:
        config = self.config
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
            self._enqueue(event_to_dict(event))
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


# ---------------------------------------------------------------------------- check & unit


def check_broker(config: MqttConfig, timeout: float = 5.0) -> str:
    """`edge-run check`: credentials, TLS and an MQTT handshake; MqttError if any fails."""
    paho = _import_paho()
    where = f"{config.host}:{config.port}"
    # Its own client id: the running service's connection must not be taken over.
    client = MqttSink(config)._make_client(paho, read_password(config),
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


def systemd_dropin(config: MqttConfig, config_dir: str | Path) -> str:
    """The drop-in `service install` writes when mqtt.enabled: network for the broker only."""
    lines = [
        "# Written by `edge-run service install` because mqtt.enabled = true; the next",
        "# install removes it when mqtt is off. Opens the sandbox's network for the broker.",
        "[Unit]",
        "# Stopped before the network at shutdown, so the broker hears \"offline\".",
        "After=network.target",
        "",
        "[Service]",
        "PrivateNetwork=no",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
    ]
    lines += _address_lines(config.host)
    for key in ("password_file", "key_file"):
        name = getattr(config, key)
        if name and not Path(name).is_absolute():
            # DynamicUser= cannot own a 0600 file: systemd hands the service a private
            # copy in $CREDENTIALS_DIRECTORY, where a relative name is looked up.
            lines.append(f"LoadCredential={name}:{Path(config_dir) / name}")
    return "\n".join(lines) + "\n"


def _address_lines(host: str) -> list[str]:
    import ipaddress

    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return ["# mqtt.host is a name: DNS and the broker's address are unknown here, so",
                "# any address is allowed. An IP literal in mqtt.host narrows this to one.",
                "IPAddressDeny="]
    return ["# The unit's IPAddressDeny=any stays; only the broker is allowed.",
            f"IPAddressAllow={'localhost' if address.is_loopback else address}"]
