"""What a task is running as: :func:`current` inside a task gives its :class:`TaskRun`
(workflow, node, task name, attempt, item, and a ``key`` the same for every attempt of one run).

Drivers set it per attempt in a context variable, so it is right on every thread of a pool
and in ``async`` tasks; a Kubernetes Job's container finds it in its environment variables."""

from __future__ import annotations

import os
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

from .errors import LittleflowError

#: The environment variables a Kubernetes Job's container is given (see docs/kubernetes.md).
ENV = {
    "workflow": "LITTLEFLOW_WORKFLOW",
    "node": "LITTLEFLOW_NODE",
    "task": "LITTLEFLOW_TASK",
    "attempt": "LITTLEFLOW_ATTEMPT",
    "item": "LITTLEFLOW_ITEM",
    "key": "LITTLEFLOW_KEY",
}


@dataclass(frozen=True, slots=True)
class TaskRun:
    """One attempt of one task run: ``workflow`` (its id), ``node`` (its id in the flow),
    ``task`` (the task's name), ``attempt`` (from 1), ``item`` (the index of a ``*``
    item, else None) and ``key``, the same for every attempt of this run and different
    for every other run (another workflow, node, item, or another pass of a loop): use it
    to make side effects idempotent."""

    workflow: str
    node: int
    task: str
    attempt: int
    item: int | None
    key: str

    def to_env(self) -> dict[str, str]:
        """As the environment variables of :data:`ENV` (an absent item is empty)."""
        return {
            name: "" if getattr(self, field) is None else str(getattr(self, field))
            for field, name in ENV.items()
        }


def run_key(workflow: str, path: str, node: int, item: int, seq: int) -> str:
    """The ``key`` of a run: ``WORKFLOW|PATH|NODE|ITEM#SEQ`` (item -1 when there is none;
    ``SEQ`` tells apart the runs of one node in a loop)."""
    return f"{workflow}|{path}|{node}|{item}#{seq}"


class OutsideTask(LittleflowError, RuntimeError):
    """:func:`current` was called where no task runs."""


#: The run of the task running in this context: a :class:`TaskRun`, or ``(make, what)``
#: for one made only if asked for (``make(what)``; the local runner's fast path).
_current: ContextVar[Any] = ContextVar("littleflow_task_run", default=None)


def current() -> TaskRun:
    """The :class:`TaskRun` of the task this code runs in (locally, in a Python worker, or
    in a Kubernetes Job's container, from its environment); raises :class:`OutsideTask`
    (a ``RuntimeError``) anywhere else."""
    found = _current.get()
    if found is None:
        found = _from_env()
        if found is None:
            raise OutsideTask(
                "littleflow.current() was called outside a task: only a task that is running "
                "has a workflow, node and attempt"
            )
    elif type(found) is tuple:
        found = found[0](found[1])
    return found


def _from_env() -> TaskRun | None:
    values = {field: os.environ.get(name) for field, name in ENV.items()}
    if not values["key"] or not values["workflow"]:
        return None
    try:
        return TaskRun(
            values["workflow"],
            int(values["node"] or 0),
            values["task"] or "",
            int(values["attempt"] or 1),
            int(values["item"]) if values["item"] else None,
            values["key"],
        )
    except ValueError:
        return None


def enter(run: Any) -> Token:
    """Make ``run`` (a :class:`TaskRun`, or ``(make, what)``) this context's; undo with :func:`leave`."""
    return _current.set(run)


def leave(token: Token) -> None:
    _current.reset(token)
