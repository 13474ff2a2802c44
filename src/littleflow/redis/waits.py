"""The Redis side of the built-in ``wait:`` tasks: durable timers, event waiters
and named latches, each change one call of scripts/waits.lua."""

from __future__ import annotations

import json
from typing import Any

from .protocol import WORKERS, StartTask
from .store import Store


def member(task: StartTask, started: float, worker: str, output: Any, **extra: Any) -> str:
    """The JSON a waiting task is kept as: enough to send its end later."""
    return json.dumps({"workflow": task.workflow, "task": task.task, "seq": task.seq, "attempt": task.attempt,
                       "node": task.node, "name": task.name, "started": started, "worker": worker,
                       "output": json.dumps(output, ensure_ascii=False), **extra}, ensure_ascii=False)


def _run(store: Store, keys: list[str], op: str, *args: Any) -> int:
    return store.scripts.waits(keys=keys, args=[op, store.keys.prefix, *args])


def delay(store: Store, stream: str, message_id: str, task: StartTask, seconds: float, entry: str) -> None:
    """``task`` ends ``seconds`` from now (by the Redis server's clock), even across restarts."""
    k = store.keys
    _run(store, [k.ends, k.delays, stream, k.task_info(task.workflow)], "delay", WORKERS, message_id,
         repr(float(seconds)), entry)


def due(store: Store, count: int = 500) -> int:
    """End the delays that are due; returns how many."""
    return _run(store, [store.keys.ends, store.keys.delays], "due", count)


def listen(store: Store, stream: str, message_id: str, task: StartTask, event: str, entry: str) -> None:
    """``task`` ends when ``event`` is sent (with matching data)."""
    k = store.keys
    _run(store, [k.ends, k.waiters(event), stream, k.task_info(task.workflow)], "listen", WORKERS, message_id,
         entry)


def send(store: Store, event: str, data: Any) -> int:
    """Send ``event``: the ``wait:event`` tasks waiting for it (whose match fits ``data``)
    end with ``data``; returns how many."""
    check_name(event, "event")
    k = store.keys
    return _run(store, [k.ends, k.waiters(event), k.events], "send", event,
                json.dumps(data, ensure_ascii=False, separators=(",", ":")))


def latch(store: Store, op: str, stream: str, message_id: str, task: StartTask, name: str, entry: str,
          number: int | None = None) -> None:
    """``acquire`` (``number``: places), ``release`` or ``countdown`` (``number``: arrivals) on latch ``name``."""
    check_name(name, "latch")
    k = store.keys
    args: list[Any] = [WORKERS, message_id, entry] + ([] if number is None else [number])
    queue = k.latch_queue(name) if op != "countdown" else k.latch_queue(name) + ":countdown"
    _run(store, [k.ends, k.latch(name), queue, stream, k.task_info(task.workflow)], op, *args)


def cancel(store: Store, workflow: str) -> int:
    """Drop the timers, event waiters and latch places the tasks of ``workflow`` wait in."""
    return _run(store, [store.keys.waits(workflow), store.keys.delays], "cancel")


def check_name(name: Any, what: str) -> str:
    """A name of an event or latch: non-empty text without ``|``."""
    if not isinstance(name, str) or not name or "|" in name:
        raise ValueError(f"the {what} name must be non-empty text without '|', not {name!r}")
    return name
