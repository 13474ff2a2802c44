"""The built-in tasks: ``wait:delay``, ``wait:event``, ``wait:acquire``,
``wait:release``, ``wait:countdown``, ``http:get|post|put|delete``, and the
reads and writes of ``<resource>`` nodes."""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any

import httpx

from .. import resources
from ..calling import Caller
from ..tasks import TaskError
from . import waits
from .protocol import RESOURCE
from .worker import DEFERRED, Job, Worker

log = logging.getLogger("littleflow.builtins")

WAITS = ("wait:delay", "wait:event", "wait:acquire", "wait:release", "wait:countdown")
HTTP = ("http:get", "http:post", "http:put", "http:delete")
RESOURCES = (f"{RESOURCE}:read", f"{RESOURCE}:write")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


class BuiltinTasks:
    """Executor of the built-in tasks; its timer thread ends ``wait:delay`` tasks when due."""

    def __init__(self, timer_interval: float = 0.02) -> None:
        self.caller = Caller()
        self.timer_interval = timer_interval

    def namespaces(self) -> set[str]:
        return {"wait", "http", RESOURCE}

    def serves(self, name: str) -> bool:
        return name in WAITS or name in HTTP or name in RESOURCES

    def background(self, worker: Worker, stop: threading.Event) -> None:
        """End due delays until ``stop`` is set."""
        while not stop.is_set():
            try:
                if waits.due(worker.store) < 500:
                    stop.wait(self.timer_interval)
            except Exception as error:  # noqa: BLE001 - Redis away for a moment: try again
                log.warning("timers: %s", error)
                stop.wait(0.5)

    def execute(self, job: Job, worker: Worker) -> Any:
        task = job.task
        params = task.parameters if isinstance(task.parameters, dict) else {}
        if task.name in WAITS:
            job.started = time.time()
            self._wait(job, worker, task.name.partition(":")[2], params)
            return DEFERRED
        policy, hook = task.run_policy(), worker.hook(job)
        if task.name in HTTP:
            call = lambda: http(task.name.partition(":")[2].upper(), params, task.input, policy.timeout)  # noqa: E731
            return self.caller.attempts(call, policy, hook, task.attempt, job.cancelled, task.name)
        uri, resource_params = params.get("uri"), params.get("parameters")
        resource_params = resource_params if isinstance(resource_params, dict) else {}
        if task.name.endswith(":read"):
            call = lambda: resources.read(uri, resource_params, task.base or None)  # noqa: E731
        else:
            call = lambda: resources.write(uri, resource_params, task.base or None, task.input)  # noqa: E731
        return self.caller.attempts(call, policy, hook, task.attempt, job.cancelled)

    def _wait(self, job: Job, worker: Worker, kind: str, params: dict[str, Any]) -> None:
        task, store = job.task, worker.store
        if kind == "delay":
            seconds = duration(params.get("duration", params.get("seconds", 0)))
            waits.delay(store, job.stream, job.id, task, seconds, waits.member(task, job.started, worker.name,
                                                                                 task.input))
        elif kind == "event":
            event = waits.check_name(params.get("event", params.get("name")), "event")
            match = _match(params.get("match"), task.input)
            entry = waits.member(task, job.started, worker.name, None, match=match)
            waits.listen(store, job.stream, job.id, task, event, match, entry)
        else:
            name = params.get("name")
            number = None
            if kind == "acquire":
                number = _count(params.get("limit", 1), "limit")
            elif kind == "countdown":
                number = _count(params.get("count"), "count")
            waits.latch(store, kind, job.stream, job.id, task, name,
                        waits.member(task, job.started, worker.name, task.input), number)


def duration(value: Any) -> float:
    """Seconds from a number or text like ``250ms``, ``30s``, ``5m``, ``2h``, ``1d``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    if isinstance(value, str):
        found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*", value)
        if found:
            return float(found[1]) * _UNITS[found[2] or "s"]
    raise TaskError(f"wait:delay needs a duration ≥ 0 in seconds or like '30s', '5m', '2h', not {value!r}")


def http(method: str, params: dict[str, Any], body: Any, timeout: float | None) -> Any:
    """One HTTP request: ``url``, ``headers`` and ``query`` from the parameters, the task's
    input as the JSON body (POST and PUT); the response's JSON is the output."""
    url = params.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise TaskError(f"http:{method.lower()} needs a url parameter (http:// or https://), not {url!r}")
    headers = params.get("headers") or {}
    if not isinstance(headers, dict):
        raise TaskError("headers must be an object of names to values")
    try:
        response = httpx.request(method, url, headers={str(k): str(v) for k, v in headers.items()},
                                 params=params.get("query"), json=body if method in ("POST", "PUT") else None,
                                 timeout=timeout or 30.0, follow_redirects=True)
    except httpx.HTTPError as error:
        raise TaskError(f"{method} {url}: {type(error).__name__}: {error}") from None
    text = response.text
    if not 200 <= response.status_code < 300:
        raise TaskError(f"{method} {url} answered {response.status_code} {response.reason_phrase}: "
                        f"{' '.join(text.split())[:200]}")
    if not text.strip():
        return {}
    try:
        return response.json()
    except ValueError:
        return {"status": response.status_code, "text": text}


def _match(match: Any, input: Any) -> dict[str, Any] | None:
    """What an event's data must hold: ``{field: value}`` as given, or fields named in a
    list taking their values from the task's input."""
    if match is None:
        return None
    if isinstance(match, str):
        match = [match]
    if isinstance(match, list):
        if not isinstance(input, dict) or any(not isinstance(f, str) or f not in input for f in match):
            raise TaskError(f"wait:event match {match} names fields its input does not have")
        return {field: input[field] for field in match}
    if isinstance(match, dict):
        return match
    raise TaskError(f"wait:event match must be a field name, a list of them or an object, not {match!r}")


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TaskError(f"{what} must be a whole number ≥ 1, not {value!r}")
    return value
