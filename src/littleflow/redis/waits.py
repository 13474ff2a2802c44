"""The Redis side of the built-in ``wait:`` tasks: durable timers, event waiters
and named latches, each change one call of scripts/waits.lua."""

from __future__ import annotations

import json
from typing import Any

from .protocol import WORKERS, Keys, StartTask
from .store import EVENTS_LENGTH, Store


def member(task: StartTask, started: float, worker: str, output: Any, **extra: Any) -> str:
    """The JSON a waiting task is kept as: enough to send its end later."""
    return json.dumps(
        {
            "workflow": task.workflow,
            "task": task.task,
            "seq": task.seq,
            "attempt": task.attempt,
            "node": task.node,
            "name": task.name,
            "started": started,
            "worker": worker,
            "output": json.dumps(output, ensure_ascii=False),
            **extra,
        },
        ensure_ascii=False,
    )


def _take(
    store: Store,
    op: str,
    stream: str,
    message_id: str,
    task: StartTask,
    keys: list[str],
    entry: str,
    number: Any = None,
) -> bool:
    """Take the start message over for ``op`` (in its workflow's partition); False if it had
    been handled already."""
    k = store.keys.of(task.workflow)
    args = [op, k.root, WORKERS, message_id, entry] + ([] if number is None else [number])
    return bool(store.scripts.waits(keys=[k.ends, stream, k.task_info(task.workflow), *keys], args=args))


def delay(store: Store, stream: str, message_id: str, task: StartTask, seconds: float, entry: str) -> None:
    """``task`` ends ``seconds`` from now (by the Redis server's clock), even across restarts."""
    _take(
        store,
        "delay",
        stream,
        message_id,
        task,
        [store.keys.of(task.workflow).delays],
        entry,
        repr(float(seconds)),
    )


def due(store: Store, count: int = 500) -> int:
    """End the delays that are due (up to ``count`` in each partition); returns how many."""
    return sum(
        store.scripts.waits(keys=[part.ends, part.delays], args=["due", part.root, count])
        for part in store.keys.parts
    )


def listen(
    store: Store, stream: str, message_id: str, task: StartTask, event: str, match: dict | None, entry: str
) -> None:
    """``task`` ends with the data of the first ``event`` sent since its start message
    was queued whose data has the fields of ``match``."""
    part = store.keys.of(task.workflow)
    if not _take(store, "listen", stream, message_id, task, [part.waiters(event)], entry):
        return
    # sent between the queuing and now? (``send`` wakes those that listen from here on)
    for _, fields in store.redis.xrange(part.events, min=message_id, count=EVENTS_LENGTH):
        if fields.get("kind") == "event" and fields.get("event") == event:
            data = json.loads(fields["data"])
            if matches(match, data):
                _wake(store, part, event, fields["data"], [waiter_field(task)])
                return


def send(store: Store, event: str, data: Any) -> int:
    """Send ``event``: the ``wait:event`` tasks waiting for it whose match fits ``data``
    end with ``data``; returns how many."""
    check_name(event, "event")
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    parts = store.keys.parts
    pipe = store.redis.pipeline(transaction=False)  # (each partition's listeners read its own stream)
    for part in parts:
        pipe.xadd(
            part.events,
            {"kind": "event", "event": event, "data": text},
            maxlen=EVENTS_LENGTH,
            approximate=True,
        )
    for part in parts:
        pipe.hgetall(part.waiters(event))
    woken = 0
    for part, waiters in zip(parts, pipe.execute()[len(parts) :]):
        waiting = [field for field, entry in waiters.items() if matches(json.loads(entry).get("match"), data)]
        if waiting:
            woken += _wake(store, part, event, text, waiting)
    return woken


def _wake(store: Store, part: Keys, event: str, data: str, fields: list[str]) -> int:
    """End the waiters ``fields`` of ``event`` in partition ``part`` that still wait (each ends once)."""
    return store.scripts.waits(keys=[part.ends, part.waiters(event)], args=["wake", part.root, data, *fields])


def waiter_field(task: StartTask) -> str:
    return f"{task.workflow}|{task.task}#{task.seq}"


def matches(match: dict | None, data: Any) -> bool:
    """Whether ``data`` has every field of ``match`` with the same JSON value (``1`` is not
    ``1.0`` nor ``true``; ``[]`` is not ``{}``)."""
    if not match:
        return True
    if not isinstance(data, dict):
        return False
    return all(field in data and _same(data[field], value) for field, value in match.items())


def _same(one: Any, other: Any) -> bool:
    return json.dumps(one, sort_keys=True) == json.dumps(other, sort_keys=True)


def latch(
    store: Store,
    op: str,
    stream: str,
    message_id: str,
    task: StartTask,
    name: str,
    entry: str,
    number: int | None = None,
) -> None:
    """``acquire`` (``number``: places), ``release`` or ``countdown`` (``number``: arrivals) on latch ``name``."""
    check_name(name, "latch")
    shared, part = store.keys.base, store.keys.of(task.workflow)
    queue = shared.latch_queue(name, "countdown" if op == "countdown" else "queue")
    args = [op, shared.root, entry] + ([] if number is None else [number])
    # two steps: the latch (shared by every partition) where it is, then the start message
    # where its workflow is; the marker makes the first happen once should the second not
    note = store.scripts.waits(
        keys=[shared.ends, shared.took(stream, message_id), shared.latch(name), queue], args=args
    )
    store.scripts.waits(
        keys=[stream, part.task_info(task.workflow)],
        args=["took", part.root, WORKERS, message_id, entry, note],
    )


def cancel(store: Store, workflow: str) -> int:
    """Drop the timers, event waiters and latch places the tasks of ``workflow`` wait in."""
    k = store.keys
    return sum(
        store.scripts.waits(keys=[held], args=["cancel", k.root])
        for held in (k.waits(workflow), k.latched(workflow))
    )


def check_name(name: Any, what: str) -> str:
    """A name of an event or latch: non-empty text without ``|``."""
    if not isinstance(name, str) or not name or "|" in name:
        raise ValueError(f"the {what} name must be non-empty text without '|', not {name!r}")
    return name
