"""Retries with exponential backoff and jitter, and timeouts, for task runs."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any

#: The keys a policy may have in ``@flow`` parameters and in ``@task(...)``.
KEYS = ("retries", "timeout", "backoff")


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

    def updated(self, options: dict[str, Any], where: str = "task options") -> Policy:
        """This policy with the given keys replaced; raises ``ValueError`` for bad values."""
        changes = {}
        for key, value in options.items():
            if value is None:
                continue
            if key not in KEYS:
                raise ValueError(f"unknown option {key!r} in {where} (known: {', '.join(KEYS)})")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{key} in {where} must be a number ≥ 0, not {value!r}")
            if key == "retries" and value != int(value):
                raise ValueError(f"retries in {where} must be a whole number, not {value!r}")
            changes[key] = int(value) if key == "retries" else float(value)
        return replace(self, **changes)

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (attempts count from 1)."""
        ceiling = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)


def policies(flow_parameters: Any, task_options: dict[str, dict[str, Any]],
             names: set[str] | None = None) -> tuple[Policy, dict[str, Policy]]:
    """The default policy and per-task policies for a run.

    ``flow_parameters`` are the ``@flow`` declaration's parameters: ``retries``,
    ``timeout`` and ``backoff`` for every task, and ``tasks: {NAME: {…}}`` for one task.
    The order of precedence, strongest first: the flow's entry for the task, the
    task's own ``@task(...)`` options (``task_options``), the flow's defaults.
    ``names``, when given, are the task names (and aliases) a ``tasks:`` entry may use.
    """
    if flow_parameters is None:
        flow_parameters = {}
    if not isinstance(flow_parameters, dict):
        raise ValueError("@flow parameters must be an object")
    defaults = {k: v for k, v in flow_parameters.items() if k != "tasks"}
    base = Policy().updated(defaults, "@flow parameters")
    per_task = flow_parameters.get("tasks") or {}
    if not isinstance(per_task, dict):
        raise ValueError("'tasks' in @flow parameters must map task names to options")
    result = {name: base.updated(options) for name, options in task_options.items() if options}
    for name, options in per_task.items():
        if not isinstance(options, dict):
            raise ValueError(f"tasks.{name} in @flow parameters must be an object")
        if names is not None and name not in names:
            raise ValueError(f"tasks.{name} in @flow parameters names no task of this flow")
        result[name] = result.get(name, base).updated(options, f"@flow parameters for task {name}")
    return base, result
