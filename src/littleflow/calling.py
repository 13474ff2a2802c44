"""Calling one task instance: its policy's retries with backoff and its timeout,
sync functions on their own thread when timed, async ones on an event-loop thread.
Shared by the local runner and the Redis task worker."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, wait
from concurrent.futures import TimeoutError as FutureTimeout
from copy import deepcopy
from dataclasses import replace
from typing import Any

from . import resources
from .errors import LittleflowError
from .policy import Policy
from .tasklogs import RunLog, capturing
from .taskrun import TaskRun, enter, leave
from .tasks import CallError, Fail, TaskSpec, json_output


class TaskTimeout(LittleflowError, TimeoutError):
    """A task ran longer than its timeout (a ``TimeoutError``, so ``retry_on`` may name either)."""


class Cancelled(LittleflowError):
    """The task's run was stopped (its workflow was terminated)."""


#: Told of each attempt: (event, attempt, began, error) with event "start", "done", "failed" or "retry".
AttemptHook = Callable[[str, int, float, "str | None"], None]


class Caller:
    """Calls tasks under a :class:`Policy`; owns the event loop thread of async tasks."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def call(
        self,
        spec: TaskSpec,
        parameters: Any,
        input: Any,
        policy: Policy,
        hook: AttemptHook | None = None,
        first_attempt: int = 1,
        cancelled: threading.Event | None = None,
        run: TaskRun | None = None,
        log: RunLog | None = None,
    ) -> Any:
        """Run task ``spec`` with ``input`` until an attempt succeeds or the retries
        are spent (only failures of its ``retry_on`` types, if it has them, are retried);
        returns its JSON output, or raises the last attempt's error. ``run`` is what
        :func:`littleflow.current` says in the task (its attempt set for each attempt);
        ``log``, if given, gets what the task writes (see :mod:`littleflow.tasklogs`)."""
        return self.attempts(
            self.task_call(spec, parameters, input, policy.timeout, cancelled),
            policy,
            hook,
            first_attempt,
            cancelled,
            spec.name,
            spec.retry_on,
            run,
            log,
        )

    def attempts(
        self,
        call: Callable[[], Any],
        policy: Policy,
        hook: AttemptHook | None = None,
        first_attempt: int = 1,
        cancelled: threading.Event | None = None,
        name: str | None = None,
        retry_on: tuple[type[BaseException], ...] | None = None,
        run: TaskRun | None = None,
        log: RunLog | None = None,
    ) -> Any:
        """``call()`` with the retries of ``policy``; its output is checked as JSON when ``name`` is given.
        :class:`~littleflow.tasks.Fail` and :class:`~littleflow.tasks.CallError` are never retried, and
        with ``retry_on`` only the errors of those types are."""
        attempt = first_attempt
        while True:
            began = time.time()
            if hook is not None:
                hook("start", attempt, began, None)
            token = (
                None
                if run is None
                else enter(run if run.attempt == attempt else replace(run, attempt=attempt))
            )
            try:
                with capturing(log):
                    output = call()
                if name is not None:
                    output = json_output(output, name)
            except Exception as error:
                if log is not None:
                    log.flush()
                    log.add(f"── attempt {attempt} failed: {message(error)}")
                if hook is not None:
                    hook("failed", attempt, began, message(error))
                if (
                    attempt - first_attempt >= policy.retries
                    or (cancelled is not None and cancelled.is_set())
                    or not retryable(error, retry_on)
                ):
                    raise
                if hook is not None:
                    hook("retry", attempt, began, message(error))
                if cancelled is not None:
                    if cancelled.wait(policy.delay(attempt)):
                        raise Cancelled("the workflow was terminated") from error
                else:
                    time.sleep(policy.delay(attempt))
                attempt += 1
                continue
            finally:
                if token is not None:
                    leave(token)
            if log is not None:
                log.flush()
            if hook is not None:
                hook("done", attempt, began, None)
            return output

    def task_call(
        self,
        spec: TaskSpec,
        parameters: Any,
        input: Any,
        timeout: float | None,
        cancelled: threading.Event | None = None,
    ) -> Callable[[], Any]:
        """One attempt of the task, as a call: an async task is cancelled when it
        runs out of time (or its run is cancelled); a plain function's thread cannot
        be stopped, and is left to finish. Each attempt gets its own copy of the parameters."""
        if spec.is_async:
            return lambda: self._await(spec.call(input, deepcopy(parameters)), timeout, cancelled)
        if timeout is None:
            return lambda: spec.call(input, deepcopy(parameters))
        return lambda: _timed(lambda: spec.call(input, deepcopy(parameters)), timeout)

    def _await(self, coroutine: Any, timeout: float | None, cancelled: threading.Event | None) -> Any:
        """Run a coroutine on the event loop thread and wait for its result."""
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="littleflow-asyncio", daemon=True).start()
                self._loop = loop
        if timeout is not None:
            coroutine = asyncio.wait_for(coroutine, timeout)
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        if cancelled is not None:
            while not wait([future], 0.05).done:  # (not result(0.05): its TimeoutError is the task's too)
                if cancelled.is_set():
                    future.cancel()
                    raise Cancelled("the workflow was terminated")
        try:
            return future.result()
        except TimeoutError:
            if timeout is None:
                raise
            raise TaskTimeout(f"timed out after {timeout:g} s") from None

    def close(self) -> None:
        """Stop the event loop thread, if one was started."""
        with self._lock:
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._loop = None


def retryable(error: BaseException, retry_on: tuple[type[BaseException], ...] | None = None) -> bool:
    """Whether a failed attempt may be retried: never for :class:`~littleflow.tasks.Fail` or a
    :class:`~littleflow.tasks.CallError`; with ``retry_on``, only for errors of those types."""
    if isinstance(error, (Fail, CallError)):
        return False
    return retry_on is None or isinstance(error, retry_on)


def _timed(call: Callable[[], Any], timeout: float) -> Any:
    """``call()`` on a thread of its own (in a copy of this context: :func:`littleflow.current`
    works there), timed from when it begins; a call that runs out of time is left behind on
    that (daemon) thread."""
    future: Future = Future()
    context = contextvars.copy_context()

    def attempt() -> None:
        try:
            future.set_result(context.run(call))
        except BaseException as error:  # noqa: BLE001 - handed to the waiting thread
            future.set_exception(error)

    threading.Thread(target=attempt, name="littleflow-timed", daemon=True).start()
    try:
        return future.result(timeout)
    except FutureTimeout:
        raise TaskTimeout(f"timed out after {timeout:g} s") from None


def message(error: BaseException) -> str:
    """One line about an exception: its type and its message."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    kind = type(error).__name__
    if (
        isinstance(error, (TaskTimeout, Cancelled, resources.ResourceError, Fail, CallError))
        or kind == "TaskError"
    ):
        return text or kind
    return f"{kind}: {text}" if text else kind
