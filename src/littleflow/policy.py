"""Retries with exponential backoff and jitter, and timeouts, for task runs."""

from __future__ import annotations

import difflib
import math
import random
from dataclasses import dataclass, replace
from typing import Any

from .errors import LittleflowError
from .schedules import flow_schedule
from .values import brief

#: The keys a policy may have in ``@flow`` parameters and in ``@task(...)``.
KEYS = ("retries", "timeout", "backoff")


class OptionError(LittleflowError, ValueError):
    """A wrong run-time option; ``path`` is where in the ``@flow`` parameters, as the keys
    leading to it (``("tasks", "fetch", "retrys")``), so that a check can point at it."""

    def __init__(self, message: str, path: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.path = path


def _unknown(key: str, known: tuple[str, ...], where: str, path: tuple[str, ...]) -> OptionError:
    close = difflib.get_close_matches(str(key), known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return OptionError(
        f"unknown option {key!r} in {where} (known: {', '.join(known)}{hint})", (*path, str(key))
    )


@dataclass(frozen=True, slots=True)
class Policy:
    """How to run a task: ``retries`` extra attempts after a failure, each
    ``timeout`` seconds at most (``None``: no limit), waiting about
    ``backoff`` × 2ⁿ seconds (with jitter, at most ``max_backoff``) before retry n+1."""

    retries: int = 0
    timeout: float | None = None
    backoff: float = 0.5
    max_backoff: float = 60.0

    @classmethod
    def from_options(cls, **options: Any) -> Policy:
        """A policy from keyword options, ignoring those that are ``None``."""
        return cls().updated(options)

    def updated(
        self, options: dict[str, Any], where: str = "task options", path: tuple[str, ...] = ()
    ) -> Policy:
        """This policy with the given keys replaced; raises :class:`OptionError` (a
        ``ValueError``) for bad values, its ``path`` the key's, after ``path``."""
        changes = {}
        for key, value in options.items():
            if value is None:
                continue
            if key not in KEYS:
                raise _unknown(key, KEYS, where, path)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
                raise OptionError(f"{key} in {where} must be a number ≥ 0, not {brief(value)}", (*path, key))
            if key == "retries" and isinstance(value, float) and not value.is_integer():
                raise OptionError(
                    f"retries in {where} must be a whole number, not {brief(value)}", (*path, key)
                )
            changes[key] = int(value) if key == "retries" else float(value)
        return replace(self, **changes)

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (attempts count from 1)."""
        ceiling = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)


#: The keys ``@flow`` parameters may have: a policy's keys for every task, ``tasks``
#: for one task's, and ``parallelism`` (the whole workflow's, no task's).
FLOW_KEYS = (*KEYS, "tasks", "parallelism", "schedule")  # (schedule: see littleflow.schedules)


def flow_options(
    flow_parameters: Any, names: set[str] | None = None
) -> tuple[dict[str, Any], dict[str, dict]]:
    """The ``@flow`` parameters' policy options, checked: ``(defaults, entries)``, the
    options for every task and the ``tasks: {NAME: {…}}`` entries (NAME: a task's name or
    an alias). ``names``, when given, are the names an entry may use. Raises a one-line
    :class:`OptionError` (a ``ValueError``) for anything wrong, ``parallelism`` included."""
    if flow_parameters is None:
        flow_parameters = {}
    if not isinstance(flow_parameters, dict):
        raise OptionError(
            "@flow parameters must be an object (write @flow NAME (- retries: 1, timeout: 30 -))"
        )
    for key in flow_parameters:
        if key not in FLOW_KEYS:
            raise _unknown(key, FLOW_KEYS, "@flow parameters", ())
    flow_parallelism(flow_parameters)
    if "schedule" in flow_parameters:
        try:
            flow_schedule(flow_parameters["schedule"])
        except ValueError as error:
            raise OptionError(str(error), ("schedule",)) from None
    defaults = {k: v for k, v in flow_parameters.items() if k in KEYS}
    Policy().updated(defaults, "@flow parameters")
    entries = flow_parameters.get("tasks") or {}
    if not isinstance(entries, dict):
        raise OptionError(
            "'tasks' in @flow parameters must map task names to options (tasks: {NAME: {retries: 1}})",
            ("tasks",),
        )
    for name, options in entries.items():
        if not isinstance(options, dict):
            raise OptionError(
                f"tasks.{name} in @flow parameters must be an object (tasks: {{{name}: {{retries: 1}}}})",
                ("tasks", name),
            )
        if names is not None and name not in names:
            close = difflib.get_close_matches(name, sorted(names), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise OptionError(
                f"tasks.{name} in @flow parameters names no task of this flow{hint}", ("tasks", name)
            )
        Policy().updated(options, f"@flow parameters for task {name}", ("tasks", name))
    return defaults, dict(entries)


def flow_entry(entries: dict[str, dict], name: str | None, alias: str | None = None) -> dict[str, Any]:
    """The flow's entry for a task ``name`` invoked as ``alias`` (the name written, when it
    is another): the real name's entry, with the alias's keys winning (but for ``None``s,
    which set nothing, as everywhere in a policy)."""
    entry = dict(entries.get(name) or {}) if name is not None else {}
    if alias is not None and alias != name:
        entry.update((key, value) for key, value in (entries.get(alias) or {}).items() if value is not None)
    return entry


def resolve(
    defaults: dict[str, Any] | None,
    task_options: dict[str, Any] | None = None,
    entry: dict[str, Any] | None = None,
    name: str | None = None,
) -> Policy:
    """THE rule, for every driver: the policy of a task run, each key taken from the
    strongest layer that sets it — the flow's ``entry`` for the task (see :func:`flow_entry`),
    then the task's own ``task_options`` (``@task(...)``), then the flow's ``defaults``.
    Resource reads and writes have no task options and no entry: the flow's defaults."""
    return (
        Policy()
        .updated(defaults or {}, "@flow parameters")
        .updated(task_options or {}, f"@task options of {name}" if name else "@task options")
        .updated(
            entry or {}, f"@flow parameters for task {name}" if name else "@flow parameters for the task"
        )
    )


def task_policy(
    flow_parameters: Any,
    name: str | None,
    alias: str | None = None,
    task_options: dict[str, Any] | None = None,
) -> Policy:
    """The policy of task ``name`` invoked as ``alias``, from the ``@flow`` parameters and the
    task's ``@task(...)`` options (``name`` None: a resource read or write) — :func:`resolve`."""
    defaults, entries = flow_options(flow_parameters)
    entry = flow_entry(entries, name, alias) if name is not None else None
    return resolve(defaults, task_options, entry, alias or name)


def flow_parallelism(flow_parameters: Any) -> int | None:
    """The ``parallelism`` of the ``@flow`` parameters: the most task runs of one workflow
    queued or running at once (``None``: no limit); raises ``ValueError`` if it is not a
    whole number ≥ 1."""
    if not isinstance(flow_parameters, dict):
        return None
    value = flow_parameters.get("parallelism")
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 1 <= value < math.inf
        or isinstance(value, float)
        and not value.is_integer()
    ):
        raise OptionError(
            f"parallelism in @flow parameters must be a whole number ≥ 1, not {brief(value)}",
            ("parallelism",),
        )
    return int(value)
