"""The MQTT sink's outbox: a bounded, crash-safe FIFO of messages on disk."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from edge.errors import MqttError

log = logging.getLogger("edge.mqtt")


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
