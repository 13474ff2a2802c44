"""The built-in tasks: ``wait:delay``, ``wait:event``, ``wait:acquire``,
``wait:release``, ``wait:countdown``, ``http:get|post|put|delete``, and the
reads and writes of ``<resource>`` nodes."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any

import httpx

from .. import resources
from ..calling import Caller, Cancelled, TaskTimeout, message
from ..confine import LOCKED, Confinement, Refused
from ..durations import seconds
from ..policy import Policy
from ..tasks import TaskError, json_output
from ..values import brief
from . import waits
from .protocol import RESOURCE
from .worker import DEFERRED, Executor, Handle, Job

log = logging.getLogger("littleflow.builtins")

WAITS = ("wait:delay", "wait:event", "wait:acquire", "wait:release", "wait:countdown")
HTTP = ("http:get", "http:post", "http:put", "http:delete")
RESOURCES = (f"{RESOURCE}:read", f"{RESOURCE}:write")


class BuiltinTasks(Executor):
    """Executor of the built-in tasks; its timer thread ends ``wait:delay`` tasks when due.
    HTTP (``http:`` tasks and http(s) resources) runs on one event loop thread, so that
    calls that hang hold no task thread; ``confine`` says which files and addresses the
    flows may touch (by default none of the files, public addresses only)."""

    def __init__(self, timer_interval: float = 0.02, confine: Confinement = LOCKED) -> None:
        self.caller = Caller()
        self.timer_interval = timer_interval
        self.confine = confine
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None
        self._lock = threading.Lock()

    def namespaces(self) -> set[str]:
        return {"wait", "http", RESOURCE}

    def serves(self, name: str) -> bool:
        return name in WAITS or name in HTTP or name in RESOURCES

    def background(self, handle: Handle, stop: threading.Event) -> None:
        """End due delays until ``stop`` is set."""
        while not stop.is_set():
            try:
                if waits.due(handle.store) < 500:
                    stop.wait(self.timer_interval)
            except Exception as error:  # noqa: BLE001 - Redis away for a moment: try again
                log.warning("timers: %s", error)
                stop.wait(0.5)

    def execute(self, job: Job, handle: Handle) -> Any:
        task = job.task
        params = task.parameters if isinstance(task.parameters, dict) else {}
        if task.name in WAITS:
            job.started = time.time()
            self._wait(job, handle, task.name.partition(":")[2], params)
            return DEFERRED
        policy, hook, base = task.run_policy(), handle.hook(job), task.base or None
        if task.name in HTTP:
            method = task.name.partition(":")[2].upper()
            seconds = _timeout(params, policy)
            return self._detach(
                job,
                handle,
                lambda client: http_async(method, params, task.input, client, seconds),
                policy,
                seconds,
                task.name,
            )
        uri, resource_params = params.get("uri"), params.get("parameters")
        resource_params = resource_params if isinstance(resource_params, dict) else {}
        if resources.is_http(uri, base):
            seconds = _timeout(resource_params, policy)
            if task.name.endswith(":read"):
                return self._detach(
                    job,
                    handle,
                    lambda client: resources.read_http(uri, resource_params, base, self.confine, client),
                    policy,
                    seconds,
                )
            return self._detach(
                job,
                handle,
                lambda client: resources.write_http(
                    uri, resource_params, base, task.input, self.confine, client
                ),
                policy,
                seconds,
            )
        if task.name.endswith(":read"):
            call = lambda: resources.read(uri, resource_params, base, self.confine)  # noqa: E731
        else:
            call = lambda: resources.write(uri, resource_params, base, task.input, self.confine)  # noqa: E731
        return self.caller.attempts(call, policy, hook, task.attempt, job.cancelled)

    # -- HTTP on the event loop thread ------------------------------------------------
    def _detach(
        self,
        job: Job,
        handle: Handle,
        request: Callable[[httpx.AsyncClient], Awaitable[Any]],
        policy: Policy,
        seconds: float,
        name: str | None = None,
    ) -> Future:
        """Run ``request`` (with its retries) on the event loop; the worker ends the task when
        the returned future is done, and cancels it if the workflow is terminated."""
        return asyncio.run_coroutine_threadsafe(
            self._attempts(job, handle, request, policy, seconds, name), self._running_loop()
        )

    async def _attempts(
        self,
        job: Job,
        handle: Handle,
        request: Callable[[httpx.AsyncClient], Awaitable[Any]],
        policy: Policy,
        seconds: float,
        name: str | None,
    ) -> Any:
        """Attempts of ``request``, each ``seconds`` at most in all (redirects included),
        with the retries and backoff of ``policy``, as the Caller runs other tasks."""
        hook, first = handle.hook(job), job.task.attempt
        attempt = first
        while True:
            if job.cancelled.is_set():
                raise Cancelled("the workflow was terminated")
            began = time.time()
            hook("start", attempt, began, None)
            try:
                try:
                    output = await asyncio.wait_for(request(self._client), seconds)
                except TimeoutError:
                    raise TaskTimeout(f"timed out after {seconds:g} s") from None
                return output if name is None else json_output(output, name)
            except Exception as error:
                if attempt - first >= policy.retries:
                    raise
                hook("retry", attempt, began, message(error))
            await asyncio.sleep(policy.delay(attempt))
            attempt += 1

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        """The event loop thread of HTTP requests (started when first needed), with one confined client."""
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="littleflow-http", daemon=True).start()
                asyncio.run_coroutine_threadsafe(self._open_client(), loop).result()
                self._loop = loop
            return self._loop

    async def _open_client(self) -> None:
        self._client = httpx.AsyncClient(transport=self.confine.async_transport())

    def _wait(self, job: Job, handle: Handle, kind: str, params: dict[str, Any]) -> None:
        task, store = job.task, handle.store
        if kind == "delay":
            seconds = duration(params.get("duration", params.get("seconds", 0)))
            waits.delay(
                store,
                job.stream,
                job.id,
                task,
                seconds,
                waits.member(task, job.started, handle.name, task.input),
            )
        elif kind == "event":
            event = waits.check_name(params.get("event", params.get("name")), "event")
            match = _match(params.get("match"), task.input)
            entry = waits.member(task, job.started, handle.name, None, match=match)
            waits.listen(store, job.stream, job.id, task, event, match, entry)
        else:
            name = params.get("name")
            number = None
            if kind == "acquire":
                number = _count(params.get("limit", 1), "limit")
            elif kind == "countdown":
                number = _count(params.get("count"), "count")
            waits.latch(
                store,
                kind,
                job.stream,
                job.id,
                task,
                name,
                waits.member(task, job.started, handle.name, task.input),
                number,
            )


def duration(value: Any) -> float:
    """Seconds from a number or text like ``250ms``, ``30s``, ``5m``, ``2h``, ``1d``."""
    try:
        return seconds(value)
    except ValueError:
        raise TaskError(
            f"wait:delay needs a duration ≥ 0 in seconds or like 30s, 5m, 2h, not {brief(value)}"
        ) from None


async def http_async(
    method: str, params: dict[str, Any], body: Any, client: httpx.AsyncClient, timeout: float
) -> Any:
    """One HTTP request with ``client``: ``url``, ``headers`` and ``query`` from the parameters,
    the task's input as the JSON body (POST and PUT); the response's JSON is the output."""
    url, options = _request(method, params, body)
    try:
        response = await resources.fetch(client, method, url, timeout=timeout, **options)
    except (httpx.HTTPError, Refused) as error:
        raise TaskError(f"{method} {url}: {_reason(error)}") from None
    return _answer(method, url, response)


def _request(method: str, params: dict[str, Any], body: Any) -> tuple[str, dict[str, Any]]:
    url = params.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise TaskError(
            f"http:{method.lower()} needs a url parameter (http:// or https://), not {brief(url)}"
        )
    headers = params.get("headers") or {}
    if not isinstance(headers, dict):
        raise TaskError("headers must be an object of names to values")
    return url, {
        "headers": {str(k): str(v) for k, v in headers.items()},
        "params": params.get("query"),
        "json": body if method in ("POST", "PUT") else None,
        "follow_redirects": True,
    }


def _reason(error: Exception) -> str:
    return str(error) if isinstance(error, Refused) else f"{type(error).__name__}: {error}"


def _answer(method: str, url: str, response: httpx.Response) -> Any:
    text = response.text
    if not 200 <= response.status_code < 300:
        raise TaskError(
            f"{method} {url} answered {response.status_code} {response.reason_phrase}: "
            f"{' '.join(text.split())[:200]}"
        )
    if not text.strip():
        return {}
    try:
        return response.json()
    except ValueError:
        return {"status": response.status_code, "text": text}


def _timeout(params: dict[str, Any], policy: Policy) -> float:
    """An HTTP request's seconds: its ``timeout`` parameter, else the flow's, else 30 (300 at most)."""
    try:
        return resources.timeout(params, policy.timeout)
    except resources.ResourceError as error:
        raise TaskError(str(error)) from None


def _match(match: Any, input: Any) -> dict[str, Any] | None:
    """What an event's data must hold: ``{field: value}`` as given, or fields named in a
    list taking their values from the task's input."""
    if match is None:
        return None
    if isinstance(match, str):
        match = [match]
    if isinstance(match, list):
        if not isinstance(input, dict) or any(not isinstance(f, str) or f not in input for f in match):
            raise TaskError(f"wait:event match {brief(match)} names fields its input does not have")
        return {field: input[field] for field in match}
    if isinstance(match, dict):
        return match
    raise TaskError(f"wait:event match must be a field name, a list of them or an object, not {brief(match)}")


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TaskError(f"{what} must be a whole number ≥ 1, not {brief(value)}")
    return value
