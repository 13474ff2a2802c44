"""Task workers on a real Redis: retries and timeouts as in local runs, queued tasks,
namespaces, concurrency, cancelling on terminate, resume, heartbeats, bad messages."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter

import pytest
import redis

from littleflow import FlowFailed, run_workflow
from littleflow.redis.client import Client
from littleflow.redis.connection import connect
from littleflow.redis.protocol import WORKERS, Keys, StartTask
from littleflow.redis.store import Store
from littleflow.redis.worker import PythonTasks, Worker
from littleflow.tasks import Registry

KEYS = Keys()


@pytest.fixture
def gate(started):
    """An event that blocking tasks wait on; set before the workers stop (tasks must end for that)."""
    event = threading.Event()
    yield event
    event.set()


def node(document: dict, label: str) -> dict:
    (found,) = [n for n in document["nodes"] if n["label"] == label]
    return found


def local_outcome(text: str, registry: Registry) -> tuple:
    try:
        return "finished", run_workflow(text, registry)
    except FlowFailed as failure:
        return "failed", failure.task, failure.error


def redis_outcome(client, text: str) -> tuple:
    document = client.wait(client.submit(text), timeout=15)
    if document["state"] == "failed":
        return "failed", document["error"]["name"], document["error"]["error"]
    return document["state"], document["output"]


def flaky(calls: Counter, failures: int):
    """A task that fails its first ``failures`` calls, then returns how many calls it took."""

    def function(input):
        calls["flaky"] += 1
        if calls["flaky"] <= failures:
            raise RuntimeError(f"failure {calls['flaky']}")
        return {"calls": calls["flaky"]}

    return function


# -- retries and timeouts ------------------------------------------------------------

RETRY_CASES = {  # flow text, @task options of flaky (which fails twice, then succeeds)
    "flow retries": ("@flow f (- {retries: 2, backoff: 0} -)\nflaky", {}),
    "task retries": ("flaky", {"retries": 2, "backoff": 0}),
    "too few retries": ("@flow f (- {retries: 1, backoff: 0} -)\nflaky", {}),
    "flow entry beats the task's": (
        "@flow f (- {tasks: {flaky: {retries: 0}}} -)\nflaky",
        {"retries": 2, "backoff": 0},
    ),
    "task beats the flow defaults": ("@flow f (- {retries: 0, backoff: 0} -)\nflaky", {"retries": 2}),
}


@pytest.mark.parametrize("case", RETRY_CASES, ids=list(RETRY_CASES))
def test_retries_behave_as_in_a_local_run(case, started, client):
    text, options = RETRY_CASES[case]
    calls = Counter()
    registry = Registry()
    registry.task("flaky", **options)(flaky(calls, 2))
    local = local_outcome(text, registry)
    local_calls = calls["flaky"]
    calls.clear()
    started.services_on(tasks=registry)
    assert redis_outcome(client, text) == local
    assert calls["flaky"] == local_calls


def test_a_retried_task_reports_its_attempt(started, client):
    calls = Counter()
    registry = Registry()
    registry.task("flaky", retries=2, backoff=0)(flaky(calls, 2))
    started.services_on(tasks=registry)
    document = client.wait(client.submit("flaky"), timeout=10)
    assert document["output"] == {"calls": 3}
    assert node(document, "flaky")["attempt"] == 3


TIMEOUTS = {"flow": ("@flow f (- {timeout: 0.2} -)\nslow", {}), "task": ("slow", {"timeout": 0.2})}


@pytest.mark.parametrize("where", TIMEOUTS, ids=list(TIMEOUTS))
def test_a_timeout_fails_the_task_as_in_a_local_run(where, started, client, gate):
    text, options = TIMEOUTS[where]
    registry = Registry()
    registry.task("slow", **options)(lambda input: gate.wait(5))
    local = local_outcome(text, registry)
    assert local[0] == "failed" and "timed out after 0.2 s" in local[2]
    started.services_on(tasks=registry)
    assert redis_outcome(client, text) == local


def test_an_async_timeout_fails_the_task_as_in_a_local_run(started, client):
    async def slow(input):
        await asyncio.sleep(3)

    registry = Registry()
    registry.add("slow", slow)
    text = TIMEOUTS["flow"][0]
    local = local_outcome(text, registry)
    assert local[0] == "failed" and "timed out" in local[2]
    started.services_on(tasks=registry)
    id = client.submit(text)
    try:
        document = client.wait(id, timeout=2)  # far longer than 0.2 s
        assert ("failed", document["error"]["name"], document["error"]["error"]) == local
    finally:
        if client.status(id)["state"] == "running":
            client.terminate(id)  # the cancel event ends the spinning


# -- who runs what -------------------------------------------------------------------


def test_a_task_nobody_serves_stays_queued_until_a_worker_for_it_starts(started, client, raw, until):
    registry = Registry()
    registry.add("a:x", lambda input: {"x": 1})
    started.services_on(tasks=registry)
    id = client.submit("a:x → b:y")
    until(lambda: node(client.status(id), "b:y")["status"] == "queued", what="b:y queued")
    time.sleep(0.6)  # longer than claim_idle: it stays so
    document = client.status(id)
    assert document["state"] == "running" and node(document, "b:y")["status"] == "queued"
    assert raw.xlen(KEYS.dead) == 0
    other = Registry()
    other.add("b:y", lambda input: {"y": input["x"] + 1})
    started.services_on(tasks=other, engine=False, builtins=False)
    document = client.wait(id, timeout=10)
    assert (document["state"], document["output"]) == ("finished", {"y": 2})
    assert node(document, "b:y")["status"] == "done"


def test_a_worker_takes_only_the_messages_of_its_tasks(started, client, raw, until):
    calls = Counter()
    registry = Registry()
    registry.add("a:x", lambda input: calls.update(["a:x"]))
    started.services_on(tasks=registry)
    id = client.submit("b:y")
    until(lambda: node(client.status(id), "b:y")["status"] == "queued", what="b:y queued")
    until(lambda: raw.exists(KEYS.stream("a:x")), what="the worker joined its stream")
    assert raw.xlen(KEYS.stream("b:y")) == 1
    assert raw.xinfo_groups(KEYS.stream("b:y")) == []  # nobody even reads that stream
    assert raw.xinfo_groups(KEYS.stream("a:x"))[0]["name"] == WORKERS
    assert client.wait(client.submit("a:x"), timeout=10)["state"] == "finished"
    assert calls == {"a:x": 1}
    assert client.status(id)["state"] == "running"


def test_a_task_its_namespace_worker_lacks_stays_queued_until_a_worker_for_it_starts(
    started, client, until, redis_url
):
    registry = Registry()
    registry.add("A", lambda input: {"a": 1})
    started.services_on(tasks=registry, claim_idle=0.2)  # serves the plain names, but has no X
    id = client.submit("X")
    until(lambda: node(client.status(id), "X")["status"] == "queued", what="X queued")
    time.sleep(1.0)  # five claim_idle periods with nobody able to run X
    assert node(client.status(id), "X")["status"] == "queued"
    other = Registry()
    other.add("X", lambda input: {"x": 1})
    # max_deliveries=1: fails what a dead worker had started, so any bounce of X shows at once
    worker = Worker(
        Store(connect(redis_url)),
        connect(redis_url, decode=False),
        [PythonTasks(other)],
        claim_idle=0.2,
        max_deliveries=1,
    )
    started.part(worker, block=0.05)
    until(lambda: client.status(id)["state"] != "running", timeout=5, what="X run")
    document = client.status(id)
    assert (document["state"], document["output"], document["error"]) == ("finished", {"x": 1}, None)


def test_concurrency_n_runs_n_tasks_at_once_and_no_more(started, client):
    n = 3
    barrier = threading.Barrier(n, timeout=10)  # a task passes once n are inside at once
    lock = threading.Lock()
    active = Counter()

    def together(input):
        with lock:
            active["now"] += 1
            active["most"] = max(active["most"], active["now"])
        try:
            barrier.wait()
        finally:
            with lock:
                active["now"] -= 1
        return {"item": input}

    registry = Registry()
    registry.add("T", together)
    started.services_on(tasks=registry, concurrency=n)
    document = client.wait(client.submit("* T", list(range(2 * n))), timeout=20)
    assert document["state"] == "finished", document["error"]
    assert document["output"] == [{"item": i} for i in range(2 * n)]
    assert active["most"] == n


# -- terminate and resume -----------------------------------------------------------


def test_terminate_cancels_a_running_async_task(started, client, until):
    entered, cancelled = threading.Event(), threading.Event()

    async def long(input):
        entered.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    registry = Registry()
    registry.add("long", long)
    started.services_on(tasks=registry)
    id = client.submit("long → after")
    assert entered.wait(10)
    assert client.terminate(id)["state"] == "terminated"
    assert cancelled.wait(5)
    document = until(
        lambda: (d := client.status(id)) and node(d, "long")["error"] and d, what="the task's end"
    )
    assert document["state"] == "terminated"
    assert "terminated" in node(document, "long")["error"]
    assert node(document, "after")["started"] is None


@pytest.mark.parametrize("restart", [False, True], ids=["same-services", "after-a-restart"])
def test_resume_reruns_what_was_interrupted_and_not_what_finished(restart, started, client, until):
    calls = Counter()
    entered = threading.Event()

    def counted(name):
        def function(input):
            calls[name] += 1
            return {**input, name: calls[name]}

        return function

    async def middle(input):
        calls["B"] += 1
        if calls["B"] == 1:
            entered.set()
            await asyncio.sleep(30)  # interrupted
        return {**input, "B": calls["B"]}

    registry = Registry()
    registry.add("A", counted("A"))
    registry.add("B", middle)
    registry.add("C", counted("C"))
    services = started.services_on(tasks=registry)
    id = client.submit("A → B → C", {})
    assert entered.wait(10)
    client.terminate(id)
    until(lambda: node(client.status(id), "B")["status"] == "failed", what="B cancelled")
    if restart:
        started.stop(services)
        started.services_on(tasks=registry)
    assert client.resume(id)["state"] == "running"
    document = client.wait(id, timeout=10)
    assert (document["state"], document["output"]) == ("finished", {"A": 1, "B": 2, "C": 1})
    assert calls == {"A": 1, "B": 2, "C": 1}


# -- liveness ------------------------------------------------------------------------


def long_task(calls: Counter, entered: threading.Event, gate: threading.Event, seconds: float):
    def function(input):
        calls["long"] += 1
        entered.set()
        gate.wait(seconds)
        return {"calls": calls["long"]}

    return function


@pytest.mark.parametrize("concurrency", [4, 1], ids=["free-slots", "saturated"])
def test_heartbeats_keep_a_long_task_from_being_taken_over(concurrency, started, client, gate, redis_url):
    """A task running for 2.5 claim_idle periods is not run again by another worker
    (one that reads fast, so it would take the message over the moment it looked idle).
    (claim_idle 1 s: at 0.4 s, three test runs at once on two cores let heartbeats lag.)"""
    calls, entered = Counter(), threading.Event()
    registry = Registry()
    registry.add("long", long_task(calls, entered, gate, 2.5))
    started.services_on(tasks=registry, concurrency=concurrency, claim_idle=1.0)
    id = client.submit("long")
    assert entered.wait(10)
    second = Worker(
        Store(connect(redis_url)), connect(redis_url, decode=False), [PythonTasks(registry)], claim_idle=1.0
    )
    started.part(second, block=0.02)
    document = client.wait(id, timeout=10)
    assert (document["state"], document["output"]) == ("finished", {"calls": 1})
    assert calls["long"] == 1
    assert second.done == 0


# -- bad messages and dying workers -------------------------------------------------------


def test_malformed_start_messages_are_set_aside_and_the_worker_goes_on(started, client, raw, until):
    registry = Registry()
    registry.add("A", lambda input: {"a": input})
    services = started.services_on(tasks=registry)
    bad = [
        {"kind": "start"},
        {"kind": "end", "workflow": "w"},
        {"kind": b"\xffstart"},
        {b"\xfe\xff": b"x", "kind": "start"},
        {
            "kind": "start",
            "workflow": "w",
            "task": "|1|-1",
            "seq": "1",
            "node": "1",
            "name": "A",
            "input": "{nope",
        },
    ]
    ids = [raw.xadd(KEYS.stream("A"), fields) for fields in bad]
    letters = until(
        lambda: len(raw.xrange(KEYS.dead)) == len(bad) and raw.xrange(KEYS.dead), what="dead letters"
    )
    assert sorted(fields["id"] for _, fields in letters) == sorted(ids)
    assert all("malformed start-task message" in fields["reason"] for _, fields in letters)
    assert all(thread.is_alive() for thread in services.threads)
    assert client.wait(client.submit("A", {"k": 1}), timeout=10)["output"] == {"a": {"k": 1}}


def test_a_task_whose_workers_died_too_often_fails_visibly(started, client, raw, until, redis_url):
    registry = Registry()
    calls = Counter()
    registry.add("A", lambda input: calls.update(["A"]))
    started.services_on(engine=True, builtins=False)  # the engine; workers come later
    id = client.submit("A")
    until(lambda: raw.exists(KEYS.stream("A")) and raw.xlen(KEYS.stream("A")) == 1, what="A's start")
    raw.xgroup_create(KEYS.stream("A"), WORKERS, id="0")
    ((_, ((message, fields),)),) = raw.xreadgroup(WORKERS, "dying-1", {KEYS.stream("A"): ">"}, count=1)
    assert StartTask.parse(fields).workflow == id
    raw.xclaim(KEYS.stream("A"), WORKERS, "dying-2", 0, [message])
    worker = Worker(
        Store(connect(redis_url)),
        connect(redis_url, decode=False),
        [PythonTasks(registry)],
        claim_idle=0.1,
        max_deliveries=2,
    )
    started.part(worker, block=0.02)
    document = client.wait(id, timeout=10)
    assert document["state"] == "failed"
    assert "worker stopped" in document["error"]["error"]
    assert calls["A"] == 0  # not run a third time


def test_a_worker_survives_its_redis_restarting(started, own_redis_server):
    """Workers and engine ride out a restart of the server (append-only: nothing is lost)."""
    registry = Registry()
    registry.add("A", lambda input: {"a": input["n"]})
    started.services_on(url=own_redis_server.url, tasks=registry)
    client = Client(own_redis_server.url)
    assert client.wait(client.submit("A", {"n": 1}), timeout=10)["output"] == {"a": 1}
    own_redis_server.restart()
    for _ in range(100):
        try:
            id = client.submit("A", {"n": 2})
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    else:
        pytest.fail("the client could not reconnect")
    assert client.wait(id, timeout=15)["output"] == {"a": 2}


def test_an_output_that_is_not_json_data_fails_its_task_and_the_workflow_stays_readable(started, client):
    """A NaN output once reached the engine as invalid JSON and made the status document a 500;
    an executor's output (a Kubernetes Job's, say) is checked as a Python task's is."""

    class Executor:
        def names(self):
            return {"odd:nan", "odd:many"}

        def namespaces(self):
            return set()

        def serves(self, name):
            return name.startswith("odd:")

        def execute(self, job, worker):
            return {"odd:nan": {"x": float("nan")}, "odd:many": list(range(2_000_000))}[job.task.name]

    registry = Registry()
    registry.add("python", lambda input: {"x": float("inf")})
    started.services_on(tasks=registry)
    started.part(Worker(Store(connect(client.url)), connect(client.url, decode=False), [Executor()]))
    for name, says in (
        ("python", "task python returned inf in the output['x'], which is not a JSON number"),
        ("odd:nan", "the task's output holds nan, which is not a JSON number"),
        ("odd:many", "the task's output is too large: more than 1,000,000 values"),
    ):
        document = client.wait(client.submit(name, {}), timeout=20)
        assert document["state"] == "failed" and document["error"]["error"] == says
        json.dumps(document, allow_nan=False)
        client.restore(client.archive(document["id"]), replace=True)


# -- the run context and retry control (issue #14) -----------------------------------------------


def test_a_task_in_a_worker_knows_its_run_and_its_key_holds_over_attempts(started, client):
    from littleflow import current

    seen: list = []
    registry = Registry()

    @registry.task("flaky", retries=2, backoff=0)
    def flaky(input):
        seen.append(current())
        if len(seen) < 3:
            raise OSError("not yet")
        return {"key": current().key}

    @registry.task("each")
    def each(input):
        return {"item": current().item, "task": current().task}

    started.services_on(tasks=registry)
    id = client.submit("flaky → <[1, 2]> → * each", {})
    document = client.wait(id, timeout=15)
    assert document["state"] == "finished"
    assert [run.attempt for run in seen] == [1, 2, 3] and {run.workflow for run in seen} == {id}
    assert len({run.key for run in seen}) == 1
    flaky_node = node(document, "flaky")["id"]
    assert seen[0].key == f"{id}||{flaky_node}|-1#1" and seen[0].node == flaky_node and seen[0].item is None
    assert sorted(document["output"], key=lambda o: o["item"]) == [
        {"item": 0, "task": "each"},
        {"item": 1, "task": "each"},
    ]


RETRY_CONTROL = {  # the task, what it raises, how many calls
    "retry_on another type": (dict(retries=3, backoff=0, retry_on=(IOError,)), ValueError("bad"), 1),
    "retry_on its type": (dict(retries=3, backoff=0, retry_on=(IOError,)), OSError("away"), 4),
    "Fail": (dict(retries=3, backoff=0), None, 1),
}


@pytest.mark.parametrize("case", RETRY_CONTROL, ids=list(RETRY_CONTROL))
def test_retry_control_behaves_as_in_a_local_run(case, started, client):
    from littleflow import Fail

    options, error, tries = RETRY_CONTROL[case]
    calls = Counter()
    registry = Registry()

    @registry.task("t", **options)
    def t(input):
        calls["t"] += 1
        raise error if error is not None else Fail("refused")

    local = local_outcome("t", registry)
    assert calls["t"] == tries
    calls.clear()
    started.services_on(tasks=registry)
    assert redis_outcome(client, "t") == local
    assert calls["t"] == tries


def test_a_call_the_signature_refuses_fails_at_once_in_a_worker(started, client):
    calls = Counter()
    registry = Registry()

    @registry.task("peel", retries=3, backoff=0)
    def peel(input, knife="small"):
        calls["peel"] += 1

    started.services_on(tasks=registry)
    assert redis_outcome(client, "peel (- knif: big -)") == (
        "failed",
        "peel",
        "peel(input, knife='small') cannot take the parameters knif: "
        "got an unexpected keyword argument 'knif'",
    )
    assert calls["peel"] == 0


# -- task logs (issue #14) -----------------------------------------------------------------------


def test_each_runs_lines_are_kept_with_it_even_with_concurrency(started, client):
    import logging

    registry = Registry()

    @registry.task("talk")
    def talk(input):
        for number in range(20):
            print(f"item {input} line {number}")
            time.sleep(0.001)  # (the others write between)
        logging.getLogger("talk").warning("done %s", input)

    started.services_on(tasks=registry, concurrency=4)
    id = client.submit("<[0, 1, 2, 3]> → * talk", {})
    assert client.wait(id, timeout=15)["state"] == "finished"
    runs = client.logs(id)["runs"]
    assert [run["item"] for run in runs] == [0, 1, 2, 3]
    for run in runs:
        assert run["lines"] == [f"item {run['item']} line {n}" for n in range(20)] + [
            f"WARNING talk: done {run['item']}"
        ]
        assert (run["name"], run["status"], run["attempt"]) == ("talk", "done", 1)
    assert client.logs(id, node=runs[0]["node"] + 1)["runs"] == []


def test_a_running_tasks_lines_are_sent_while_it_runs_and_a_failed_ones_kept(started, client, gate, until):
    from littleflow.redis.worker import LOGS_EVERY

    registry = Registry()

    @registry.task("slow", retries=1, backoff=0)
    def slow(input):
        print("started")
        gate.wait(10)
        raise ValueError("no luck")

    started.services_on(tasks=registry)
    id = client.submit("slow", {})
    until(lambda: client.logs(id)["runs"], timeout=5 + LOGS_EVERY, what="the running task's lines")
    (run,) = client.logs(id)["runs"]
    assert (run["lines"], run["status"]) == (["started"], "running")
    gate.set()
    assert client.wait(id, timeout=15)["state"] == "failed"
    (run,) = client.logs(id)["runs"]
    assert run["lines"] == [
        "started",
        "── attempt 1 failed: ValueError: no luck",
        "started",
        "── attempt 2 failed: ValueError: no luck",
    ]
    assert (run["status"], run["attempt"]) == ("failed", 2)
