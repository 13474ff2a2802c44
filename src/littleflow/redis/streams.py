"""One consumer of Redis Streams in a consumer group: reading, reclaiming the
messages of consumers that died, setting bad messages aside, trimming."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import redis

from .connection import UNREACHABLE
from .protocol import Keys, entry_order

log = logging.getLogger("littleflow.streams")

#: Entries kept in the dead-letter stream (approximately).
DEAD_LENGTH = 10_000
#: A stream is trimmed every few seconds, and as soon as this consumer has read this many of
#: its messages since its last trim: what it keeps beyond what is pending stays bounded in
#: size (about this many entries per consumer, plus the node XTRIM ~ leaves), not only in time.
TRIM_AFTER = 1000


class Streams:
    """Reads streams as ``consumer`` of ``group``; ``claim_idle`` seconds after a
    message was last delivered (or heartbeated) another consumer may take it over."""

    def __init__(
        self,
        raw: redis.Redis,
        keys: Keys,
        group: str,
        consumer: str,
        claim_idle: float = 30.0,
        max_deliveries: int = 5,
    ) -> None:
        self.raw = raw
        self.keys = keys
        self.group = group
        self.consumer = consumer
        self.claim_idle = claim_idle
        self.max_deliveries = max_deliveries
        self._next_maintenance = 0.0
        self._next_trim = 0.0
        self._cursors: dict[str, str] = {}  # where the last XAUTOCLAIM of each stream stopped
        self._read: dict[str, int] = {}  # messages read from each stream since it was last trimmed

    def join(self, *streams: str) -> None:
        """Create the group on each stream (from its first entry) unless it exists."""
        for stream in streams:
            try:
                self.raw.xgroup_create(stream, self.group, id="0", mkstream=True)
            except redis.ResponseError as error:
                if "BUSYGROUP" not in str(error):
                    raise

    def read(self, streams: dict[str, str], count: int, block: float) -> list[tuple[str, str, dict, int]]:
        """New messages: (stream, id, fields, 1), at most ``count`` of each stream, waiting up
        to ``block`` seconds; in the order they were queued, whatever their stream (:func:`_queued`)."""
        if not streams:  # (a worker whose executors serve nothing yet)
            time.sleep(block)
            return []
        found = self._read_once(streams, count, 0)
        if not found and block:
            found = self._read_once(streams, count, block)
            if found and len(streams) > 1:
                # a blocked read is woken by the first stream that gets messages and given
                # that one's alone: what the others got at the same moment (one step's starts)
                # is read now, or a message queued later could be read before them
                found += self._read_once(streams, count, 0)
        found.sort(key=_queued)
        return found

    def _read_once(
        self, streams: dict[str, str], count: int, block: float
    ) -> list[tuple[str, str, dict, int]]:
        try:
            found = self.raw.xreadgroup(
                self.group,
                self.consumer,
                streams,
                count=count,
                block=max(1, int(block * 1000)) if block else None,
            )
        except redis.ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            log.warning("%s: the consumer group is gone (Redis lost its data?); joining again", self.consumer)
            self.join(*streams)
            return []
        for stream, messages in found or ():
            self._read[_text(stream)] = self._read.get(_text(stream), 0) + len(messages)
        return [
            (_text(stream), _text(message_id), fields, 1)
            for stream, messages in found or ()
            for message_id, fields in messages
        ]

    def maintain(self, *streams: str) -> list[tuple[str, str, dict, int]]:
        """Now and then: take over messages idle longer than ``claim_idle`` and trim
        what every consumer is done with. Returns (stream, id, fields, deliveries)."""
        now = time.monotonic()
        if now < self._next_maintenance:
            for stream in streams:  # (read a lot since its last trim: trimmed already)
                if self._read.get(stream, 0) >= TRIM_AFTER:
                    self.trim(stream)
            return []
        self._next_maintenance = now + max(0.05, self.claim_idle / 4)
        claimed = []
        for stream in streams:
            claimed += self.reclaim(stream)
        if now >= self._next_trim:
            self._next_trim = now + 5.0
            for stream in streams:
                self.trim(stream)
                self.forget_idle_consumers(stream)
        return claimed

    def reclaim(self, stream: str, count: int = 100) -> list[tuple[str, str, dict, int]]:
        """Messages of this group idle for ``claim_idle`` seconds, now this consumer's,
        with how often each has been delivered."""
        idle = int(self.claim_idle * 1000)
        try:
            result = self.raw.xautoclaim(
                stream, self.group, self.consumer, idle, self._cursors.get(stream, "0-0"), count=count
            )
        except redis.ResponseError as error:
            if "NOGROUP" in str(error):
                return []
            raise
        # Redis looks at no more than 10 × count entries a call: go on from where it stopped
        self._cursors[stream] = _text(result[0])
        messages, deleted = result[1], (result[2] if len(result) > 2 else [])
        if deleted:  # trimmed away while pending: nothing left to do with them
            self.raw.xack(stream, self.group, *deleted)
        found = []
        for message_id, fields in messages:
            message_id = _text(message_id)
            if fields is None:
                self.raw.xack(stream, self.group, message_id)
                continue
            info = self.raw.xpending_range(stream, self.group, message_id, message_id, 1)
            deliveries = info[0]["times_delivered"] if info else 1
            log.info(
                "%s: took over message %s of %s (delivery %d)", self.consumer, message_id, stream, deliveries
            )
            found.append((stream, message_id, fields, deliveries))
        return found

    def heartbeat(self, stream: str, ids: list[str]) -> None:
        """Tell the group these messages are still being worked on (resets their idle time)."""
        if ids:
            self.raw.xclaim(stream, self.group, self.consumer, 0, ids, justid=True)

    def ack(self, stream: str, *ids: str) -> None:
        if ids:
            self.raw.xack(stream, self.group, *ids)

    def set_aside(self, stream: str, message_id: str, fields: dict, reason: str) -> None:
        """Move a message to the dead-letter stream (of its stream's partition), with why, and ack it."""
        log.warning("%s: set aside message %s of %s: %s", self.consumer, message_id, stream, reason)
        entry = {
            "stream": stream,
            "id": message_id,
            "reason": reason,
            "consumer": self.consumer,
            "time": repr(time.time()),
        }
        for key, value in (fields or {}).items():
            name = key.decode("utf-8", "backslashreplace") if isinstance(key, bytes) else str(key)
            entry[f"field:{name}"] = value
        pipe = self.raw.pipeline(transaction=True)
        pipe.xadd(self.keys.of_key(stream).dead, entry, maxlen=DEAD_LENGTH, approximate=True)
        pipe.xack(stream, self.group, message_id)
        pipe.execute()

    def forget_idle_consumers(self, stream: str, idle: float = 3600.0) -> None:
        """Remove consumers of the group that hold nothing and were not heard from for ``idle`` s."""
        try:
            consumers = self.raw.xinfo_consumers(stream, self.group)
        except redis.ResponseError:
            return
        for consumer in consumers:
            name = _text(consumer["name"])
            if name != self.consumer and consumer["pending"] == 0 and consumer["idle"] > idle * 1000:
                self.raw.xgroup_delconsumer(stream, self.group, name)

    def trim(self, stream: str) -> None:
        """Drop entries older than anything still pending or not yet delivered to the group."""
        self._read[stream] = 0
        try:
            groups = self.raw.xinfo_groups(stream)
        except redis.ResponseError:
            return
        mine = [g for g in groups if _text(g["name"]) == self.group]
        if len(groups) != 1 or not mine:
            return  # another group reads it too: leave trimming to whoever owns it
        floor = _text(mine[0]["last-delivered-id"])
        pending = self.raw.xpending(stream, self.group)
        if pending["pending"]:
            floor = min(floor, _text(pending["min"]), key=entry_order)
        if floor != "0-0":
            self.raw.xtrim(stream, minid=floor, approximate=True)


@contextmanager
def surviving(who: str, stop: threading.Event, probe: Callable[[], Any] | None = None) -> Iterator[None]:
    """One round of a loop that must never die: Redis away or any other error is
    logged, and the loop pauses and goes on (what was not acknowledged comes back).
    Redis away is said once (see :func:`unreachable`), and once that it is back when a
    round goes through again; with ``probe`` (say, a PING), when ``probe()`` does too
    (for loops whose rounds may not reach Redis)."""
    try:
        yield
        if probe is not None and who in _away:
            probe()
    except UNREACHABLE as error:
        unreachable(who, error)
        stop.wait(0.5)
    except Exception:
        log.exception("%s: this round failed; what it did not acknowledge will come back", who)
        stop.wait(0.5)
    else:
        reachable(who)


_away: set[str] = set()  # the loops (by who) that found Redis away and have not reached it since
_away_lock = threading.Lock()


def unreachable(who: str, error: Exception) -> None:
    """Say that ``who`` cannot reach Redis: a warning the first time, until :func:`reachable`
    (the other threads of ``who`` may call it too: it is still said once)."""
    with _away_lock:
        first = who not in _away
        _away.add(who)
    if first:
        log.warning("%s: Redis unreachable (%s); retrying until it answers", who, error)
    else:
        log.debug("%s: Redis still unreachable (%s)", who, error)


def reachable(who: str) -> None:
    """Say that Redis answers ``who`` again, if it was unreachable."""
    with _away_lock:
        back = who in _away
        _away.discard(who)
    if back:
        log.info("%s: Redis is back", who)


def _queued(message: tuple[str, str, dict, int]) -> tuple[int, int, int]:
    """What orders messages read from several streams: when they were queued (the
    millisecond of their id), then their run number (``seq``: in one step, a workflow's starts
    to several streams are queued in one millisecond, each stream numbering its own ids from 0,
    and ``seq`` keeps the order the engine released them in), then their id's own number."""
    ms, number = entry_order(message[1])
    seq = message[2].get(b"seq", message[2].get("seq", b""))
    return ms, int(seq) if seq.isdigit() else 0, number


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else value
