"""The task worker: reads the start-task streams of the tasks its executors serve
(one stream per task name, one per shared namespace such as ``wait:``), runs them,
and sends end-task messages."""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import redis

from .. import tracing
from ..calling import Caller, Cancelled, message
from ..tasklogs import RunLog
from ..tasks import Registry
from ..values import check_value
from .connection import is_cluster
from .engine import consumer_name
from .protocol import (
    MAX_ATTEMPTS,
    REGISTER_EVERY,
    SHARED_NAMESPACES,
    WORKERS,
    EndTask,
    Keys,
    Malformed,
    StartTask,
    compact,
    namespace,
)
from .store import Store
from .streams import Streams, surviving, unreachable

log = logging.getLogger("littleflow.worker")

#: Returned by an executor that has taken the task over: it will end it later (a timer, an event).
DEFERRED = object()
#: Seconds between sends of the logs of running tasks.
LOGS_EVERY = 1.0
#: Characters of a failed attempt's error kept in its run's attempts (the last one's is whole).
ATTEMPT_ERROR = 300


@dataclass
class Job:
    """One start-task message being handled."""

    stream: str
    id: str
    task: StartTask
    worker: str
    cancelled: threading.Event = field(default_factory=threading.Event)
    started: float | None = None
    attempt: int = 1
    future: Future | None = None
    detached: Future | None = None  # what an executor runs elsewhere (an event loop): cancelled on terminate
    log: RunLog | None = None  # what the task writes, sent with its end (and while it runs: see Worker._logs)
    logged: int = 0  # the log's lines sent while it ran
    span: Any = None  # its OpenTelemetry span, a child of its workflow's (littleflow.tracing)
    attempts: list[list[Any]] = field(default_factory=list)  # [number, started, ended, status, error]

    def tried(self) -> list[list[Any]] | None:
        """Its attempts as its end and task info carry them: None when it ran once."""
        return self.attempts[-MAX_ATTEMPTS:] if len(self.attempts) > 1 else None


class Executor:
    """Base of the executors: runs the tasks of some names, ``names()`` (each read from its
    own stream), and every name of ``namespaces()`` (shared namespaces, see
    :data:`~.protocol.SHARED_NAMESPACES`, read from the namespace's stream).

    ``execute(job, handle)`` returns the output, raises to fail the task, returns
    :data:`DEFERRED` after taking the task over (acking it itself, ``handle.ack``), or returns
    a :class:`~concurrent.futures.Future` of the output: the task's thread is free at once,
    the task ends when the future is done, and the future is cancelled if the workflow is
    terminated. Its :class:`Handle` is all it gets of the worker.

    Hooks, no-ops here: ``background(handle, stop)`` runs on a thread of its own until
    ``stop`` is set, and ``terminate(workflow)`` is called (on a thread) when a workflow is
    terminated. An object with ``names``, ``namespaces``, ``serves`` and ``execute`` alone
    serves as an executor too; the hooks are called on subclasses only."""

    def names(self) -> set[str]:
        """The task names served, each from its own stream."""
        return set()

    def namespaces(self) -> set[str]:
        """The shared namespaces served."""
        return set()

    def serves(self, name: str) -> bool:
        """Whether task ``name`` is one of this executor's."""
        raise NotImplementedError

    def execute(self, job: Job, handle: Handle) -> Any:
        """Run ``job``'s task (see the class)."""
        raise NotImplementedError

    def background(self, handle: Handle, stop: threading.Event) -> None:
        """Work of its own while the worker runs (timers, watches); returns when ``stop`` is set."""

    def terminate(self, workflow: str) -> Any:
        """``workflow`` was terminated: stop what runs for it outside the worker (its tasks'
        futures are cancelled and ``job.cancelled`` set by the worker)."""


class Handle:
    """What an executor may do with the worker that runs it: record a task running, end it,
    ack its start, ask whether a workflow still runs, send an end once only. ``store`` is
    there for the built-in waits alone (their timers, waiters and latches are Redis scripts,
    see :mod:`.waits`); other executors go through the methods."""

    def __init__(self, worker: Worker) -> None:
        self._worker = worker

    @property
    def name(self) -> str:
        """The worker's name (in end-task messages and task info)."""
        return self._worker.name

    @property
    def prefix(self) -> str:
        """The key prefix of this installation (``lf``), which tells its Jobs from others'."""
        return self._worker.keys.prefix

    @property
    def store(self) -> Store:
        """The worker's :class:`~.store.Store`: for the built-in ``wait:`` tasks only."""
        return self._worker.store

    def hook(self, job: Job) -> Any:
        """The attempt hook (see :mod:`littleflow.calling`) that records ``job`` running."""
        return self._worker.hook(job)

    def running(self, job: Job, began: float) -> None:
        """Record that ``job`` is running (attempt ``job.attempt``), since ``began``."""
        self._worker.running(job, began)

    def end(self, job: Job, status: str, output: Any = None, error: str | None = None) -> None:
        """Send the end of ``job`` (``done`` with ``output``, or ``failed`` with ``error``) and ack its start."""
        self._worker.end(job, status, output, error)

    def ack(self, job: Job) -> None:
        """Ack ``job``'s start message: the executor answers for the task from here on."""
        self._worker.streams.ack(job.stream, job.id)

    def workflow_running(self, workflow: str) -> bool:
        """Whether ``workflow`` is running (not ended, terminated or gone)."""
        worker = self._worker
        return worker.store.redis.hget(worker.keys.workflow(workflow), "status") == "running"

    def end_once(self, marker: str, end: EndTask, ttl: int) -> None:
        """Add ``end`` to its workflow's end-task stream unless it was for ``marker`` in the last
        ``ttl`` seconds: ``marker`` names the outside run that ended (a Kubernetes Job's uid,
        kept as ``Keys.k8s_ended``), so that of several workers seeing it end one sends its end."""
        worker = self._worker
        fields = [part for pair in end.fields().items() for part in pair]
        part = worker.keys.of(end.workflow)
        worker.store.scripts.end_once(keys=[part.k8s_ended(marker), part.ends], args=[ttl, *fields])

    def followed_namespaces(self) -> set[str]:
        """The Kubernetes namespaces whose Jobs the ``k8s:`` workers follow (``Keys.k8s_namespaces``)."""
        worker = self._worker
        return {str(name) for name in worker.store.redis.smembers(worker.keys.k8s_namespaces)}

    def follow_namespaces(self, *namespaces: str) -> None:
        """Record ``namespaces`` as followed, for the ``k8s:`` workers that start later."""
        worker = self._worker
        if namespaces:
            worker.store.redis.sadd(worker.keys.k8s_namespaces, *namespaces)


class PythonTasks(Executor):
    """Executor of the Python functions of a registry, under their retry/timeout policy."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.caller = Caller()

    def names(self) -> set[str]:
        return set(self.registry.names())

    def serves(self, name: str) -> bool:
        return name in self.registry

    def execute(self, job: Job, handle: Handle) -> Any:
        task = job.task
        spec = self.registry.get(task.name)
        job.log = RunLog()
        return self.caller.call(
            spec,
            task.parameters,
            task.input,
            task.run_policy(spec.options),
            handle.hook(job),
            task.attempt,
            job.cancelled,
            task.run(),
            job.log,
        )


class Worker:
    """Runs tasks for the namespaces its executors serve, ``concurrency`` at a time,
    reading up to ``prefetch`` more ahead (they wait here, kept alive by heartbeats)."""

    def __init__(
        self,
        store: Store,
        raw: redis.Redis,
        executors: list[Executor],
        *,
        concurrency: int = 1,
        prefetch: int = 16,
        name: str | None = None,
        claim_idle: float = 30.0,
        max_deliveries: int = 5,
    ) -> None:
        self.store = store
        self.keys = store.keys
        self.raw = raw
        self.executors = executors
        self.concurrency = concurrency
        self.capacity = (
            concurrency + prefetch
        )  # tasks taken at once: running, and read ahead waiting their turn
        self.name = name or consumer_name("worker")
        self.streams = Streams(raw, self.keys, WORKERS, self.name, claim_idle, max_deliveries)
        self.names: list[str] = []
        self.namespaces: list[str] = []
        self._readers: list[tuple[list[Keys], Streams]] | None = None
        self._learn()
        self._jobs: dict[tuple[str, str], Job] = {}
        self._lock = threading.Lock()
        self._free = threading.Condition(self._lock)
        self._out: queue.SimpleQueue = queue.SimpleQueue()
        self._next_heartbeat = 0.0
        self._next_register = 0.0
        self._next_logs = 0.0
        self.done = 0  # tasks this worker ended
        self.handle = Handle(self)  # what its executors get of it

    # -- the loops ----------------------------------------------------------------
    def readers(self) -> list[tuple[list[Keys], Streams]]:
        """The partitions this worker reads together, each group with its consumer state: all
        in one on one server (one XREADGROUP reads any streams), each on its own on a Redis
        Cluster (where one reads the streams of one hash slot)."""
        if self._readers is None:
            parts = self.keys.parts
            groups = [parts] if not is_cluster(self.store.redis) else [[part] for part in parts]
            self._readers = [
                (
                    group,
                    Streams(
                        self.raw,
                        self.keys,
                        WORKERS,
                        self.name,
                        self.streams.claim_idle,
                        self.streams.max_deliveries,
                    ),
                )
                for group in groups
            ]
        return self._readers

    def run(self, stop: threading.Event, block: float = 1.0) -> None:
        """Run tasks until ``stop`` is set; tasks still running are waited for."""
        while not stop.is_set():  # (Redis may not answer yet: it says how many partitions there are)
            with surviving(f"worker {self.name}", stop):
                readers = self.readers()
                self.streams.join(*self.stream_names)
                break
        else:
            return
        block = min(block, self.streams.claim_idle / 4)  # heartbeats must not wait behind a blocked read
        log.info("worker %s: serving %s", self.name, self.serving())
        writer = threading.Thread(target=self._write, args=(stop,), name="littleflow-writer", daemon=True)
        writer.start()
        listener = threading.Thread(target=self._listen, args=(stop,), name="littleflow-control", daemon=True)
        listener.start()
        for executor in self.executors:
            if isinstance(executor, Executor):
                threading.Thread(
                    target=executor.background,
                    args=(self.handle, stop),
                    name="littleflow-background",
                    daemon=True,
                ).start()
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="littleflow-task")
        others = [
            threading.Thread(
                target=self._read, args=(reader, pool, stop, block), daemon=True, name="littleflow-reader"
            )
            for reader in readers[1:]
        ]
        for thread in others:
            thread.start()
        self._read(readers[0], pool, stop, block, chores=True)
        for thread in others:
            thread.join()
        self._finish(pool)
        self._out.put(None)
        writer.join(10)
        with suppress(redis.RedisError):
            self.raw.hdel(self.keys.workers, self.name)

    def _read(
        self,
        reader: tuple[list[Keys], Streams],
        pool: ThreadPoolExecutor,
        stop: threading.Event,
        block: float,
        chores: bool = False,
    ) -> None:
        """Read and dispatch the tasks of a group of partitions until ``stop`` is set (with
        ``chores``, also learn new task names, register and heartbeat)."""
        parts, streams = reader
        while not stop.is_set():
            with surviving(
                f"worker {self.name}", stop, probe=self.raw.ping
            ):  # a full worker's round skips Redis
                if chores:
                    if self._learn():  # (a registry given more tasks as the worker runs)
                        self.streams.join(*self.stream_names)
                        self._next_register = 0.0
                    self._register()
                    self._heartbeat()
                    self._logs()
                with self._free:
                    if len(self._jobs) >= self.capacity:
                        self._free.wait(0.2)
                        continue
                    free = self.capacity - len(self._jobs)
                names = self._streams_of(parts)
                found = streams.read({stream: ">" for stream in names}, free, block)
                found += streams.maintain(*names)
                for stream, message_id, fields, deliveries in found:
                    self._dispatch(pool, stream, message_id, fields, deliveries)

    def _finish(self, pool: ThreadPoolExecutor, grace: float = 60.0) -> None:
        """Stopping: tasks read ahead stay pending (another worker takes them over);
        running ones get ``grace`` seconds to end, kept alive by heartbeats."""
        pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            for key, job in list(self._jobs.items()):
                if job.future is not None and job.future.cancelled():
                    del self._jobs[key]
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            with self._free:
                if not self._jobs:
                    return
                self._free.wait(0.2)
            self._heartbeat()
        log.warning(
            "worker %s: stopped with %d tasks still running; they will run again elsewhere",
            self.name,
            len(self._jobs),
        )

    def _dispatch(
        self, pool: ThreadPoolExecutor, stream: str, message_id: str, fields: dict, deliveries: int
    ) -> None:
        try:
            task = StartTask.parse(fields)
        except Malformed as error:
            self.streams.set_aside(stream, message_id, fields, f"malformed start-task message: {error}")
            return
        executor = next((e for e in self.executors if e.serves(task.name)), None)
        job = Job(stream, message_id, task, self.name)
        with self._lock:
            self._jobs[(stream, message_id)] = job
        if executor is None or self.keys.of_key(stream).stream(task.name) != stream:  # (a bad writer's)
            self.end(
                job,
                "failed",
                error=f"no task {task.name!r} here (worker {self.name} serves {self.serving()})",
            )
            return
        if deliveries > self.streams.max_deliveries:  # its workers died each time: fail it, visibly
            self.end(
                job,
                "failed",
                error=f"started {deliveries - 1} times, and each time its worker stopped before it ended",
            )
            return
        job.span = tracing.task_span(task.trace, task.name, task.workflow, task.node, task.task, task.attempt)
        job.future = pool.submit(self._execute, executor, job)

    def _execute(self, executor: Executor, job: Job) -> None:
        try:
            output = executor.execute(job, self.handle)
        except Exception as error:  # noqa: BLE001 - a task's error fails the task
            if not isinstance(error, Cancelled):
                log.info(
                    "worker %s: task %s of %s failed: %s",
                    self.name,
                    job.task.name,
                    job.task.workflow,
                    message(error),
                )
            self.end(job, "failed", error=message(error))
            return
        if output is DEFERRED:
            tracing.finish(job.span, "waiting", job.attempt)  # (it ends elsewhere: a timer, an event)
            self._forget(job)
        elif isinstance(output, Future):
            job.detached = output
            if job.cancelled.is_set():  # (terminated while it was being started)
                output.cancel()
            output.add_done_callback(lambda done: self._settle(job, done))
        else:
            self.end(job, "done", output)

    def _settle(self, job: Job, done: Future) -> None:
        """End a task whose executor ran it elsewhere, as its future says."""
        if done.cancelled():
            self.end(job, "failed", error="the workflow was terminated")
        elif (error := done.exception()) is not None:
            if not isinstance(error, Cancelled):
                log.info(
                    "worker %s: task %s of %s failed: %s",
                    self.name,
                    job.task.name,
                    job.task.workflow,
                    message(error),
                )
            self.end(job, "failed", error=message(error))
        else:
            self.end(job, "done", done.result())

    # -- what executors call -------------------------------------------------------
    def hook(self, job: Job) -> Any:
        """The attempt hook (see :mod:`littleflow.calling`) that records ``job`` running."""

        def hook(event: str, attempt: int, began: float, error: str | None) -> None:
            if event == "start":
                job.attempt = attempt
                job.attempts.append([attempt, began, None, "running", None])
                del job.attempts[: -MAX_ATTEMPTS - 1]
                self.running(job, began)
            elif event == "failed" and job.attempts:
                job.attempts[-1][2:] = [time.time(), "failed", (error or "failed")[:ATTEMPT_ERROR]]

        return hook

    def running(self, job: Job, began: float) -> None:
        """Record that ``job`` is running (attempt ``job.attempt``)."""
        if job.started is None:
            job.started = began
        self._info(job.task, self._running_info(job))

    def _running_info(self, job: Job) -> dict[str, Any]:
        """The task info of ``job`` while it runs: since when (its first attempt), which
        attempt, where, what it wrote so far (a retry keeps it) and its earlier attempts."""
        info = {"status": "running", "started": job.started, "attempt": job.attempt, "worker": self.name}
        if job.log is not None and job.log.total:
            info["log"] = job.log.to_json()
        if tried := job.tried():
            info["attempts"] = tried
        return info

    def end(self, job: Job, status: str, output: Any = None, error: str | None = None) -> None:
        """Send the end of ``job`` (and ack its start) from the writer thread; an output
        that is not JSON data within the value limits fails the task instead."""
        if status == "done":
            try:
                check_value(output, "the task's output")
            except ValueError as refused:
                status, output, error = "failed", None, str(refused)
        ended = time.time()
        if job.attempts and job.attempts[-1][3] == "running":
            job.attempts[-1][2:] = [ended, status, None if error is None else error[:ATTEMPT_ERROR]]
        end = EndTask(
            job.task.workflow,
            job.task.task,
            job.task.seq,
            status,
            output,
            error,
            job.attempt,
            job.started,
            ended,
            self.name,
            job.log.to_json() if job.log is not None and job.log.total else None,
            job.tried(),
        )
        tracing.finish(job.span, status, job.attempt, error)
        self._out.put(("end", job, end))

    def _forget(self, job: Job) -> None:
        with self._free:
            self._jobs.pop((job.stream, job.id), None)
            self._free.notify()

    def _info(self, task: StartTask, info: dict[str, Any]) -> None:
        self._out.put(("info", task, info))

    # -- the writer: ends, acks and task info, batched ---------------------------------
    def _write(self, stop: threading.Event) -> None:
        while True:
            item = self._out.get()
            batch = [item]
            while len(batch) < 500:
                try:
                    batch.append(self._out.get_nowait())
                except queue.Empty:
                    break
            last = None in batch
            batch = [entry for entry in batch if entry is not None]
            attempt = 0
            while True:
                try:
                    self._flush(batch)
                    break
                except (redis.ConnectionError, redis.TimeoutError) as error:  # ends must not be lost: wait
                    attempt += 1
                    unreachable(f"worker {self.name}", error)  # said once; the main loop says when it is back
                    time.sleep(min(2.0, 0.1 * attempt))
                except Exception:
                    log.exception(
                        "worker %s: cannot send %d ends; their tasks will run again", self.name, len(batch)
                    )
                    for kind, job, _ in batch:
                        if kind == "end":
                            self._forget(job)
                    break
            if last:
                return

    def _flush(self, batch: list) -> None:
        if not batch:
            return
        cluster = is_cluster(self.raw)
        pipes: dict[int, Any] = {}  # one transaction per partition on a cluster (one hash slot each)

        def pipe_of(key: str) -> Any:
            number = self.keys.of_key(key).partition if cluster else 0
            if number not in pipes:
                pipes[number] = self.raw.pipeline(transaction=True)
            return pipes[number]

        ended = [subject for kind, subject, _ in batch if kind == "end"]
        done = {(job.task.workflow, job.task.task, job.task.seq) for job in ended}
        for kind, subject, info in batch:
            if kind == "end":  # (to the end stream of the start's partition, its workflow's but for a bad
                pipe = pipe_of(subject.stream)  # writer's message, which the engine forwards)
                pipe.xadd(self.keys.of_key(subject.stream).ends, info.fields())
                pipe.xack(subject.stream, self.streams.group, subject.id)
            elif (subject.workflow, subject.task, subject.seq) not in done:  # an end says it all
                task = subject
                info_key = self.keys.task_info(task.workflow)
                self.store.scripts.info(
                    keys=[info_key],
                    client=pipe_of(info_key),
                    args=[task.task, task.seq, compact({"node": task.node, "seq": task.seq, **info})],
                )
        for pipe in pipes.values():
            pipe.execute()
        for job in ended:
            self._forget(job)
        self.done += len(ended)

    # -- control and liveness ----------------------------------------------------------
    def _heartbeat(self) -> None:
        """Keep the messages of running tasks from being taken over as if this worker died."""
        now = time.monotonic()
        if now < self._next_heartbeat:
            return
        self._next_heartbeat = now + self.streams.claim_idle / 3
        with self._lock:
            by_stream: dict[str, list[str]] = {}
            for stream, message_id in self._jobs:
                by_stream.setdefault(stream, []).append(message_id)
        for stream, ids in by_stream.items():
            self.streams.heartbeat(stream, ids)

    def _logs(self) -> None:
        """Send the logs of running tasks that wrote since they were last sent (every
        LOGS_EVERY seconds), for ``littleflow logs --follow``."""
        now = time.monotonic()
        if now < self._next_logs:
            return
        self._next_logs = now + LOGS_EVERY
        with self._lock:
            jobs = [
                job
                for job in self._jobs.values()
                if job.log is not None and job.log.total != job.logged and job.started is not None
            ]
        for job in jobs:
            job.logged = job.log.total
            self._info(job.task, self._running_info(job))

    def _learn(self) -> bool:
        """Take in the names and namespaces the executors serve; True if they changed."""
        names = sorted(set().union(*(executor.names() for executor in self.executors)))
        namespaces = sorted(set().union(*(executor.namespaces() for executor in self.executors)))
        if names == self.names and namespaces == self.namespaces:
            return False
        for name in names:
            if namespace(name) in SHARED_NAMESPACES:
                raise ValueError(
                    f"task {name!r}: the namespace {namespace(name)}: belongs to a built-in executor"
                )
        unknown = set(namespaces) - SHARED_NAMESPACES
        if unknown:
            raise ValueError(
                f"namespaces {sorted(unknown)} are not shared ones "
                f"({', '.join(sorted(SHARED_NAMESPACES))}): serve their tasks by name"
            )
        self.names, self.namespaces = names, namespaces
        return True

    @property
    def stream_names(self) -> list[str]:
        """The streams this worker reads: one per task name, one per shared namespace, in each partition."""
        return self._streams_of(self.keys.parts)

    def _streams_of(self, parts: list[Keys]) -> list[str]:
        """The streams of the tasks this worker serves in partitions ``parts``."""
        return [
            stream
            for part in parts
            for stream in (
                *(part.stream(name) for name in self.names),
                *(part.namespace_stream(space) for space in self.namespaces),
            )
        ]

    def serving(self) -> str:
        """What this worker serves, in words."""
        return ", ".join([*self.names, *(f"{space}:*" for space in self.namespaces)]) or "nothing"

    def _register(self) -> None:
        """Say which tasks and namespaces this worker serves (``littleflow workers`` and
        ``submit`` read it), every REGISTER_EVERY seconds."""
        now = time.time()
        if now < self._next_register:
            return
        self._next_register = now + REGISTER_EVERY
        self.raw.hset(
            self.keys.workers,
            self.name,
            json.dumps(
                {
                    "tasks": self.names,
                    "namespaces": self.namespaces,
                    "concurrency": self.concurrency,
                    "seen": now,
                }
            ),
        )

    def _listen(self, stop: threading.Event) -> None:
        """Cancel the running tasks of workflows that are terminated."""
        while not stop.is_set():
            try:
                pubsub = self.raw.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self.keys.control)
                while not stop.is_set():
                    note = pubsub.get_message(timeout=0.5)
                    if note is None:
                        continue
                    try:
                        workflow = json.loads(note["data"]).get("cancel")
                    except (ValueError, AttributeError):
                        continue
                    with self._lock:
                        for job in self._jobs.values():
                            if job.task.workflow == workflow:
                                job.cancelled.set()
                                if job.detached is not None:
                                    job.detached.cancel()
                    for executor in self.executors:  # (what they run outside this worker, e.g. Jobs)
                        if isinstance(executor, Executor) and isinstance(workflow, str):
                            threading.Thread(
                                target=_terminate,
                                args=(executor, workflow),
                                name="littleflow-terminate",
                                daemon=True,
                            ).start()
            except (redis.ConnectionError, redis.TimeoutError) as error:  # Redis away: listen again
                unreachable(f"worker {self.name}", error)
                stop.wait(0.5)
            except Exception as error:  # noqa: BLE001 - listen again
                log.warning("worker %s: control channel: %s", self.name, error)
                stop.wait(0.5)


def _terminate(executor: Executor, workflow: str) -> None:
    """Tell ``executor`` that ``workflow`` was terminated; what goes wrong is logged."""
    try:
        executor.terminate(workflow)
    except Exception as error:  # noqa: BLE001 - its service away: its own resync catches up
        log.warning("terminating workflow %s in %s: %s", workflow, type(executor).__name__, error)
