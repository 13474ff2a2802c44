"""Reading the events streams (one per partition) as one: events sent and workflow state
changes, oldest first, after a cursor.

A cursor is where a reader stands in each partition's stream: one stream id (``MS-N``) for
all of them — a time, since ids are times — or, with several partitions, their ids joined
by commas, partition 0's first. Each event read carries the cursor just after it, so that a
reader (a browser's Last-Event-ID) goes on from there. An event sent is in every partition's
stream (for the ``wait:event`` tasks of each to find); it is read from partition 0's."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

from .connection import is_cluster
from .protocol import Keys, entry_order

#: A stream id, as a cursor accepts it.
STREAM_ID = re.compile(r"0|(\d{1,19})-(\d{1,19})")
#: Seconds between reads of a cluster's streams while none has anything (one XREAD may not
#: wait on streams of several hash slots).
CLUSTER_POLL = 0.1


def cursor(text: str, keys: Keys) -> list[str]:
    """The position in each partition's events stream that ``text`` says; raises ValueError."""
    parts = text.split(",")
    if len(parts) not in (1, keys.partitions) or not all(_valid(part) for part in parts):
        raise ValueError(
            f"an event id is one stream id (MS-N) or {keys.partitions} of them joined by commas, not {text!r}"
        )
    return parts * keys.partitions if len(parts) == 1 else parts


def latest(redis: Any, keys: Keys) -> list[str]:
    """The cursor of the newest events (what follows it is new)."""
    pipe = redis.pipeline(transaction=False)
    for part in keys.parts:
        pipe.xrevrange(part.events, count=1)
    return [_text(found[0][0]) if found else "0" for found in pipe.execute()]


def read(
    redis: Any, keys: Keys, at: list[str], count: int = 500, block: float = 0.0
) -> list[tuple[str, float, dict]]:
    """Events after cursor ``at`` (at most ``count`` from each partition), oldest first, each
    as (the cursor just after it, its time, its fields); waits up to ``block`` seconds for some."""
    deadline = time.monotonic() + block
    while True:
        if not is_cluster(redis):
            found = redis.xread(_streams(keys, at), count=count, block=int(block * 1000) if block else None)
        else:
            pipe = redis.pipeline(transaction=False)
            for part, position in zip(keys.parts, at):
                pipe.xread({part.events: position}, count=count)
            found = [entry for answer in pipe.execute() for entry in answer or ()]
        events = _merged(keys, at, found)
        if events or time.monotonic() >= deadline or not is_cluster(redis):
            return events
        time.sleep(min(CLUSTER_POLL, max(0.0, deadline - time.monotonic())))


async def read_async(
    redis: Any, keys: Keys, at: list[str], count: int = 500, block: float = 0.0
) -> list[tuple[str, float, dict]]:
    """:func:`read` with an asyncio client."""
    deadline = time.monotonic() + block
    cluster = is_cluster(redis)
    while True:
        if not cluster:
            found = await redis.xread(
                _streams(keys, at), count=count, block=int(block * 1000) if block else None
            )
        else:
            found = [
                entry
                for part, position in zip(keys.parts, at)
                for entry in await redis.xread({part.events: position}, count=count) or ()
            ]
        events = _merged(keys, at, found)
        if events or time.monotonic() >= deadline or not cluster:
            return events
        await asyncio.sleep(min(CLUSTER_POLL, max(0.0, deadline - time.monotonic())))


def decoded(fields: dict[str, str]) -> dict[str, Any]:
    """An entry of an events stream, its ``data`` JSON decoded."""
    data = {_text(name): _text(value) for name, value in fields.items()}
    if "data" in data:
        try:
            data["data"] = json.loads(data["data"])
        except ValueError:
            pass
    return data


def _streams(keys: Keys, at: list[str]) -> dict[str, str]:
    return {part.events: position for part, position in zip(keys.parts, at)}


def _merged(keys: Keys, at: list[str], found: Any) -> list[tuple[str, float, dict]]:
    """The entries XREAD ``found`` in the partitions' streams, oldest first, each with the
    cursor after it and its time."""
    entries = []
    for stream, messages in found or ():
        partition = keys.of_key(_text(stream)).partition
        entries += [
            (entry_order(_text(entry_id)), partition, _text(entry_id), fields)
            for entry_id, fields in messages
            if partition == 0 or _text(fields.get("kind", fields.get(b"kind", ""))) != "event"
        ]
    entries.sort(key=lambda entry: entry[:2])
    position, events = list(at), []
    for (ms, _), partition, entry_id, fields in entries:
        position[partition] = entry_id
        events.append((position[0] if len(position) == 1 else ",".join(position), ms / 1000, fields))
    return events


def _valid(part: str) -> bool:
    match = STREAM_ID.fullmatch(part)
    return match is not None and all(int(number) < 2**64 for number in match.groups() if number)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else value
