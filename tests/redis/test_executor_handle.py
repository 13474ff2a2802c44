"""An executor of its own on a real engine and Redis, through the Executor base and the Handle
it gets instead of the worker: a task taken over and ended later (as the ``k8s:`` executor's
Jobs are), its end sent once, the terminate hook, and the no-op hooks of the base."""

from __future__ import annotations

import queue
import threading
import time

from littleflow.redis.connection import connect
from littleflow.redis.protocol import EndTask, Keys
from littleflow.redis.store import Store
from littleflow.redis.worker import DEFERRED, Executor, Handle, Job, Worker

KEYS = Keys()


class Outside(Executor):
    """Runs ``out:side`` tasks "outside": ``execute`` takes a task over, ``background`` ends it."""

    def __init__(self) -> None:
        self.taken: queue.SimpleQueue[Job] = queue.SimpleQueue()
        self.terminated: list[str] = []
        self.running: list[bool] = []

    def names(self) -> set[str]:
        return {"out:side"}

    def serves(self, name: str) -> bool:
        return name == "out:side"

    def execute(self, job: Job, handle: Handle) -> object:
        self.running.append(handle.workflow_running(job.task.workflow))
        handle.running(job, time.time())
        handle.ack(job)
        self.taken.put(job)
        return DEFERRED

    def background(self, handle: Handle, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                job = self.taken.get(timeout=0.05)
            except queue.Empty:
                continue
            if job.task.input.get("hang"):
                continue  # (ends when its workflow is terminated, as a deleted Job's would)
            end = EndTask(
                job.task.workflow,
                job.task.task,
                job.task.seq,
                "done",
                {"n": job.task.input["n"] + 1},
                started=job.started,
                ended=time.time(),
                worker=handle.name,
            )
            for _ in range(2):  # (as every worker following the same Job would)
                handle.end_once(f"run-{job.task.workflow}", end, 60)

    def terminate(self, workflow: str) -> None:
        self.terminated.append(workflow)


def test_an_executor_ends_a_task_it_took_over_once_through_its_handle(started, client, raw, until):
    started.services_on()
    executor = Outside()
    started.part(Worker(Store(connect(client.url)), connect(client.url, decode=False), [executor]))
    id = client.submit("out:side", {"n": 1})
    document = client.wait(id, timeout=15)
    assert document["state"] == "finished" and document["output"] == {"n": 2}
    assert executor.running == [True]
    assert raw.exists(KEYS.of(id).k8s_ended(f"run-{id}"))
    assert raw.xlen(KEYS.of(id).ends) <= 1  # the second end_once sent nothing (read ends may be trimmed)


def test_terminate_reaches_the_executors_hook(started, client, until):
    started.services_on()
    executor = Outside()
    started.part(Worker(Store(connect(client.url)), connect(client.url, decode=False), [executor]))
    id = client.submit("out:side", {"n": 1, "hang": True})
    until(lambda: executor.running, what="the task's start")
    assert client.terminate(id)["state"] == "terminated"
    until(lambda: id in executor.terminated, what="the terminate hook")


def test_the_base_executor_hooks_do_nothing():
    class Plain(Executor):
        def serves(self, name: str) -> bool:
            return False

    plain, stop = Plain(), threading.Event()
    stop.set()
    assert plain.names() == set() and plain.namespaces() == set()
    assert plain.background(None, stop) is None  # type: ignore[arg-type]
    assert plain.terminate("w") is None
