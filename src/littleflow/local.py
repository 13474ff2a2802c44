"""Running flows in this process: Python tasks, resources, retries, timeouts,
in order (concurrency 1) or on a thread pool."""

from __future__ import annotations

import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from . import resources
from .calling import Caller, message
from .compiler import compile_flow
from .confine import Confinement
from .engine import DEFAULT_LIMIT, Engine, Start
from .errors import LittleflowError
from .flow import Flow
from .memory import fewer_collections
from .policy import Policy, flow_entry, flow_options, flow_parallelism, resolve
from .state import State, failed_node
from .tasklogs import RunLog
from .taskrun import TaskRun, enter, leave, run_key
from .tasks import collect, json_output


class FlowFailed(LittleflowError):
    """A flow ended FAILED; ``task``, ``node``, ``input`` and ``error`` say where
    and why, and the task's own exception is chained as ``__cause__``."""

    def __init__(self, failure: dict[str, Any], state: State | None = None) -> None:
        self.failure = failure
        self.task = failure["name"]
        self.node = failure["node"]
        self.input = failure["input"]
        self.error = failure["error"]
        self.state = state
        super().__init__(f"{failed_node(failure)} failed: {self.error}")


class UnknownTasks(LittleflowError, LookupError):
    """The flow uses task names nothing provides."""


def load_workflow(workflow: str | Path | Flow) -> tuple[Flow, str | None]:
    """A compiled flow and its base directory, from flow text, a file path or a Flow."""
    if isinstance(workflow, Flow):
        return workflow, None
    if isinstance(workflow, Path):
        text = workflow.read_text(encoding="utf-8-sig")
        return compile_flow(text, str(workflow)), str(workflow.resolve().parent)
    return compile_flow(workflow), None


def run_workflow(workflow: str | Path | Flow, tasks: Any = None, input: Any = None, **options: Any) -> Any:
    """Run a flow here and return its output (END's value).

    ``workflow`` is flow text, a :class:`~pathlib.Path` to a flow file or a compiled
    :class:`Flow`; ``tasks`` maps task names to callables (``locals()`` works), or is a
    :class:`~littleflow.tasks.Registry`, or a list of those; functions registered with
    ``@task`` are found too. Options: ``concurrency`` (default 1: one task at a time,
    in a fixed order; the ``@flow`` option ``parallelism`` caps it), ``limit`` (runs
    allowed per node, default :data:`~littleflow.engine.DEFAULT_LIMIT`), ``base`` (where
    relative resource URIs are resolved), ``files`` (directories file resources are confined
    to; relative paths then resolve in the first) and ``http_allow`` (hosts and CIDR networks beyond the
    public addresses that HTTP resources may reach; an empty list: public ones only) —
    both default to None: no confinement; ``workflow_id``, the workflow that
    :func:`littleflow.current` gives its tasks (default: a new ``local-…`` id each run).
    Raises :class:`FlowFailed` when a task fails.
    """
    flow, base = load_workflow(workflow)
    options.setdefault("base", base)
    run = LocalRun(flow, tasks, **options)
    state = run.run(input)
    if state.status == "failed":
        failure = state.failure
        raise FlowFailed(failure, state) from run.causes.get(tuple(failure["key"]))
    return state.output


class LocalRun:
    """One run of a flow in this process."""

    def __init__(
        self,
        flow: Flow,
        tasks: Any = None,
        *,
        concurrency: int = 1,
        limit: int | None = DEFAULT_LIMIT,
        base: str | None = None,
        echo: bool = False,
        state: State | None = None,
        on_step: Callable[[State], None] | None = None,
        on_event: Callable[[str, Start, dict[str, Any]], None] | None = None,
        on_stop: Callable[[int], None] | None = None,
        trace: bool = False,
        journal: Any = None,
        files: list[str] | None = None,
        http_allow: list[str] | None = None,
        workflow_id: str | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.flow = flow
        self.workflow_id = workflow_id or f"local-{uuid.uuid4().hex[:12]}"  # what littleflow.current() says
        self.engine = Engine(flow, limit)
        self.state = state if state is not None else State(flow.end)
        self.resuming = state is not None
        self.concurrency = concurrency
        self.base = base
        # (None: unconfined; a list, even empty, confines file resources or HTTP: see littleflow.confine)
        self.confine = Confinement(
            None if files is None else tuple(files),
            None if http_allow is None else tuple(http_allow),
            owner="run",
        )
        self.echo = echo
        self.on_step = on_step
        self.journal = journal  # told of every step (see statefile.StateFile: begin, ended, failed)
        self.on_event = on_event
        self.on_stop = on_stop  # told once, with the number of tasks still running, when a stop is noticed
        self._stop = threading.Event()
        self.causes: dict[tuple, BaseException] = {}
        self.trace: list[dict[str, Any]] = []  # every task run, when ``trace`` is set
        self.tracing = trace
        self.traceparent = _workflow_span(self.workflow_id, flow.name)  # OpenTelemetry ("" if off)
        self.caller = Caller()
        self.registry = collect(tasks)
        names = self._check_names()
        aliases = {node.alias for node in flow.nodes if node.alias}
        self.defaults, self.entries = flow_options(
            flow.parameters, names | aliases
        )  # checked before anything runs
        parallelism = flow_parallelism(flow.parameters)
        if parallelism is not None:  # the flow's own cap on the tasks running at once
            self.concurrency = min(concurrency, parallelism)
        self.resource_policy = resolve(self.defaults)
        self._policies: dict[tuple[str, str | None], Policy] = {}
        self._plans: list[tuple | bool | None] = [None] * len(flow)  # how to call each node (see _plan)

    def _check_names(self) -> set[str]:
        """The task names the flow uses; raises :class:`UnknownTasks` for those nothing provides."""
        names: set[str] = set()
        missing = []
        for node in self.flow.nodes:
            if node.kind != "task" or node.name in names:
                continue
            names.add(node.name)
            if not self.echo and node.name not in self.registry:
                missing.append(f"{node.name} ({node.line}:{node.column})")
        if missing:
            known = ", ".join(self.registry.names()[:20]) or "none"
            raise UnknownTasks(
                f"unknown task{'s' * (len(missing) > 1)} {', '.join(missing)}; known tasks: {known}"
            )
        return names

    # -- the loop -----------------------------------------------------------------
    def stop(self) -> None:
        """Start no more tasks: with ``concurrency`` above 1, those running finish and their
        ends are kept (the journal too), and :meth:`run` returns the state, still running,
        to resume later. Safe to call from a signal handler or another thread."""
        self._stop.set()

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stop.is_set()

    def run(self, input: Any = None) -> State:
        """Run (or resume) to the end; returns the final state."""
        engine, state = self.engine, self.state
        starts = engine.resume(state) if self.resuming else engine.start(state, input)
        if self.journal is not None:
            self.journal.begin(state)
        self._step()
        try:
            with fewer_collections():
                if self.concurrency == 1:
                    self._sequential(starts)
                else:
                    self._concurrent(starts)
        finally:
            self.caller.close()
            if self.journal is not None:
                self.journal.close()
        return state

    def _sequential(self, starts: list[Start]) -> None:
        queue = deque(starts)
        popleft, extend = queue.popleft, queue.extend
        ended, state, step, journal = self.engine.ended, self.state, self.on_step, self.journal
        # Plain calls (no policy, events or trace) skip the general path: this is the hot loop.
        plans, plan_for, task_run = self._plans, self._plan, self.task_run
        while queue:
            start = popleft()
            if state.status != "running":  # a task failed: what was queued does not start
                self.engine.hold(state, start)
                continue
            plan = plans[start.node]
            if plan is None:
                plan = plans[start.node] = plan_for(start.node)
            if plan is False:
                extend(self._finish(start, self._outcome(start)))
                continue
            call, name = plan
            token = enter((task_run, start))  # (made only if the task asks: littleflow.current())
            try:
                output = json_output(call(start.input, None), name)
            except Exception as error:  # noqa: BLE001 - a task's error fails the task
                extend(self._finish(start, _Raised(error)))
                continue
            finally:
                leave(token)
            key = (start.path, start.node, start.item)
            extend(ended(state, key, output))
            if journal is not None:
                journal.ended(key, output)
            if step is not None:
                step(state)

    def _concurrent(self, starts: list[Start]) -> None:
        queue = deque(starts)
        running: dict[Future, tuple[int, Start]] = {}
        order = 0
        told = False
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="littleflow-task")
        try:
            while queue or running:
                stopping = self._stop.is_set()
                if stopping and not told:
                    told = True
                    if self.on_stop is not None:
                        self.on_stop(len(running))
                while queue and (stopping or len(running) < self.concurrency):
                    start = queue.popleft()
                    if stopping or self.state.status != "running":
                        self.engine.hold(self.state, start)  # resumed later (a journal replays it as running)
                        continue
                    running[pool.submit(self._outcome, start)] = (order, start)
                    order += 1
                if not running:
                    break
                # (the timeout only lets a stop asked for by a signal handler be noticed)
                done, _ = wait(running, timeout=_NOTICE, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=lambda f: running[f][0]):
                    _, start = running.pop(future)
                    queue.extend(self._finish(start, future.result()))
        finally:  # (interrupted: not waiting for the tasks still running)
            pool.shutdown(wait=not running, cancel_futures=True)

    def _plan(self, node_id: int) -> tuple | bool:
        """How the sequential loop calls a node: ``(call, name)`` for a plain task
        without parameters, ``False`` when it needs the general path of :meth:`_execute`
        (which also copies parameters for each call: a task may change them)."""
        node = self.flow.nodes[node_id]
        if (
            self.echo
            or self.tracing
            or self.traceparent
            or self.on_event is not None
            or node.kind != "task"
            or node.parameters is not None
        ):
            return False
        calling = self.registry.calling(node.name)
        policy = self._policy(node)
        if calling is None or calling[1] or policy.retries or policy.timeout is not None:
            return False
        return calling[0], node.name

    def _policy(self, node: Any) -> Policy:
        """The retry/timeout policy of a task node (see :func:`littleflow.policy.resolve`)."""
        key = (node.name, node.alias)
        policy = self._policies.get(key)
        if policy is None:
            calling = self.registry.calling(node.name)
            policy = self._policies[key] = resolve(
                self.defaults,
                calling[2] if calling else None,
                flow_entry(self.entries, node.name, node.alias),
                node.alias or node.name,
            )
        return policy

    def _outcome(self, start: Start) -> Any:
        """Run a task instance, returning its output or (as :class:`_Raised`) its exception."""
        try:
            return self._execute(start)
        except Exception as error:  # noqa: BLE001 - a task's error fails the task, not the runner
            return _Raised(error)

    def _finish(self, start: Start, outcome: Any) -> list[Start]:
        """Feed one task instance's outcome to the engine; returns what starts next."""
        if isinstance(outcome, _Raised):
            error = outcome.error
            self.causes[start.key] = error
            starts = self.engine.failed(self.state, start.key, message(error))
            if self.journal is not None:
                self.journal.failed(start.key, message(error))
            self._event("fail", start, error=message(error))
        else:
            starts = self.engine.ended(self.state, start.key, outcome)
            if self.journal is not None:
                self.journal.ended(start.key, outcome)
            self._event("end", start)
        self._step()
        return starts

    def _step(self) -> None:
        if self.on_step is not None:
            self.on_step(self.state)

    def _event(self, kind: str, start: Start, **info: Any) -> None:
        if self.on_event is not None:
            self.on_event(kind, start, info)

    # -- one task instance --------------------------------------------------------
    def _execute(self, start: Start) -> Any:
        """Run one task instance with its policy (retries, timeout); returns its output."""
        node = self.flow.nodes[start.node]
        if self.echo:
            if self.tracing:
                self._record(start, node, time.time(), 1, "done")
            self._event("start", start, attempt=1)
            return start.input

        log = RunLog() if self.tracing else None  # (its lines go into the trace, attempt by attempt)
        lines_before = 0
        span = None  # the OpenTelemetry span of the attempt under way

        def hook(event: str, attempt: int, began: float, error: str | None) -> None:
            nonlocal lines_before, span
            if self.traceparent:
                if event == "start":
                    span = self._task_span(start, node, attempt)
                elif event != "retry":
                    _finish_span(span, event, attempt, error)
            if event == "start" or event == "retry":
                if event == "start" and log is not None:
                    lines_before = log.total
                self._event(event, start, attempt=attempt, **({"error": error} if error else {}))
            elif self.tracing:
                self._record(
                    start,
                    node,
                    began,
                    attempt,
                    event,
                    error,
                    log.since(lines_before) if log is not None else None,
                )

        if node.kind == "resource":
            policy = self.resource_policy
            return self.caller.attempts(self._resource_call(node, start.input, policy), policy, hook)
        spec = self.registry.get(node.name)
        return self.caller.call(
            spec, node.parameters, start.input, self._policy(node), hook, run=self.task_run(start), log=log
        )

    def task_run(self, start: Start, attempt: int = 1) -> TaskRun:
        """What :func:`littleflow.current` says in the task of ``start``: its key counts the
        runs of a node in a loop (the engine's count, which a resumed run keeps)."""
        frame = self.state.frames.get(start.path)
        seq = frame.runs.get(start.node, 1) if frame is not None else 1
        node = self.flow.nodes[start.node]
        return TaskRun(
            self.workflow_id,
            start.node,
            node.name or node.label or "",
            attempt,
            None if start.item < 0 else start.item,
            run_key(self.workflow_id, start.path, start.node, start.item, seq),
        )

    def _task_span(self, start: Start, node: Any, attempt: int) -> Any:
        from . import tracing

        task = f"{start.path}|{start.node}|{start.item}"  # (the item last, as in a task id)
        return tracing.task_span(
            self.traceparent, node.name or node.label or "", self.workflow_id, start.node, task, attempt
        )

    def _resource_call(self, node: Any, input: Any, policy: Policy) -> Callable[[], Any]:
        params = node.parameters if isinstance(node.parameters, dict) else {}
        if resources.is_http(node.uri, self.base):  # each request's seconds, as the Redis worker gives them
            params = {**params, "timeout": resources.timeout(params, policy.timeout)}
        if node.mode == "source":
            return lambda: resources.read(node.uri, params, self.base, self.confine)
        return lambda: resources.write(node.uri, params, self.base, input, self.confine)

    def _record(
        self,
        start: Start,
        node: Any,
        began: float,
        attempt: int,
        status: str,
        error: str | None = None,
        log: list[str] | None = None,
    ) -> None:
        self.trace.append(
            {
                "node": start.node,
                "name": node.name or node.label,
                "path": start.path,
                "item": start.item,
                "attempt": attempt,
                "start": began,
                "end": time.time(),
                "status": status,
                "error": error,
                **({"log": log} if log else {}),
            }
        )


def _workflow_span(id: str, name: str | None) -> str:
    """The traceparent of a local run's workflow span, "" when tracing is off. OpenTelemetry
    is set up by importing it (an application, ``opentelemetry-instrument``, or the CLI's
    ``tracing.configure``): until then a run loads none of it."""
    if "opentelemetry.trace" not in sys.modules:
        return ""
    from . import tracing

    return tracing.workflow_span(id, name)


def _finish_span(span: Any, status: str, attempt: int, error: str | None) -> None:
    from . import tracing

    tracing.finish(span, status, attempt, error)


#: Seconds the concurrent loop waits for a task to end before it looks whether it should stop.
_NOTICE = 0.1


class _Raised:
    """An exception carried from a pool thread back to the loop."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error
