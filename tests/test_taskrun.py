"""littleflow.current(): what a task runs as, in local runs (sequential, threaded, async,
timed), and from a Kubernetes Job's environment (taskrun.py)."""

from __future__ import annotations

import asyncio
import threading

import pytest

import littleflow
from littleflow import FlowFailed, current, run_workflow
from littleflow.taskrun import ENV, OutsideTask, TaskRun
from littleflow.tasks import Registry


def recorder():
    """A task that records current() for each call (in a list, under a lock: threads share it)."""
    seen: list[TaskRun] = []
    lock = threading.Lock()

    def record(input):
        with lock:
            seen.append(current())
        return input

    return seen, record


def test_current_outside_a_task_raises_a_clear_error():
    with pytest.raises(OutsideTask, match=r"littleflow.current\(\) was called outside a task"):
        current()
    assert issubclass(OutsideTask, RuntimeError)


def test_current_is_exported():
    assert littleflow.current is current and "current" in littleflow.__all__


def test_a_sequential_run_tells_each_task_its_workflow_node_and_name():
    seen, record = recorder()
    flow = littleflow.compile_flow("A → B")
    run_workflow(flow, {"A": record, "B": record}, workflow_id="wf-1")
    a, b = seen
    assert (a.workflow, a.node, a.task, a.attempt, a.item) == ("wf-1", flow.nodes[1].id, "A", 1, None)
    assert (b.workflow, b.task) == ("wf-1", "B")
    assert a.key != b.key and a.key.startswith("wf-1|")


def test_without_a_workflow_id_each_run_has_its_own():
    seen, record = recorder()
    run_workflow("A", {"A": record})
    run_workflow("A", {"A": record})
    first, second = seen
    assert first.workflow.startswith("local-") and first.workflow != second.workflow
    assert first.key != second.key


def test_items_of_a_star_are_told_their_index_and_have_keys_of_their_own():
    seen, record = recorder()
    run_workflow("* A", {"A": record}, input=[10, 20, 30], concurrency=3)
    assert sorted(run.item for run in seen) == [0, 1, 2]
    assert len({run.key for run in seen}) == 3


def test_every_attempt_of_a_run_has_the_same_key_and_counts_its_attempts():
    seen: list[TaskRun] = []
    registry = Registry()

    @registry.task("flaky", retries=2, backoff=0)
    def flaky(input):
        seen.append(current())
        if len(seen) < 3:
            raise OSError("not yet")

    run_workflow("flaky", registry)
    assert [run.attempt for run in seen] == [1, 2, 3]
    assert len({run.key for run in seen}) == 1


def test_each_pass_of_a_loop_is_another_run_with_another_key():
    seen: list[TaskRun] = []

    def count(input):
        seen.append(current())
        return {"n": input.get("n", 0) + 1}

    run_workflow("repeat count until `$[?@.n >= 3]`", {"count": count})
    assert len(seen) == 3
    assert len({run.key for run in seen}) == 3 and len({run.node for run in seen}) == 1


@pytest.mark.parametrize("concurrency", [1, 4])
def test_concurrent_tasks_each_see_their_own_run(concurrency):
    barrier = threading.Barrier(concurrency, timeout=5) if concurrency > 1 else None
    seen: dict[str, str] = {}

    def make(name):
        def task(input):
            if barrier is not None:
                barrier.wait()  # all running at once: a shared variable would show one of them
            seen[name] = current().task

        return task

    names = ["A", "B", "C", "D"]
    run_workflow("{ A B C D }", {name: make(name) for name in names}, concurrency=concurrency)
    assert seen == {name: name for name in names}


def test_async_and_timed_tasks_see_their_run():
    registry = Registry()
    seen: dict[str, TaskRun] = {}

    @registry.task("waits")
    async def waits(input):
        await asyncio.sleep(0)
        seen["waits"] = current()

    @registry.task("timed", timeout=5)
    def timed(input):  # (runs on a thread of its own)
        seen["timed"] = current()

    run_workflow("waits → timed", registry, workflow_id="wf-2")
    assert seen["waits"].task == "waits" and seen["timed"].task == "timed"
    assert {run.workflow for run in seen.values()} == {"wf-2"}


def test_after_a_task_current_raises_again():
    run_workflow("A", {"A": lambda input: current().key})
    with pytest.raises(OutsideTask):
        current()


def test_a_failed_task_can_say_its_key_in_its_error():
    def A(input):
        raise RuntimeError(current().key)

    with pytest.raises(FlowFailed, match=r"wf-3\|\|1\|-1#1"):
        run_workflow("A", {"A": A}, workflow_id="wf-3")


def test_a_job_container_finds_its_run_in_its_environment(monkeypatch):
    run = TaskRun("wf", 4, "k8s:train", 2, 7, "wf||4|7#1")
    for name, value in run.to_env().items():
        monkeypatch.setenv(name, value)
    assert current() == run
    monkeypatch.setenv(ENV["item"], "")
    assert current().item is None
