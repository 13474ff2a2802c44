"""Routing by capability and fairness: each task name has its stream, so worker pools with
different tasks never see (nor wait on) each other's; a workflow has at most ``parallelism``
task runs queued or running, so a big one cannot hold the queues."""

from __future__ import annotations

import threading
import time

import pytest
import redis
from rediscluster import on_server_and_cluster

from littleflow.redis.connection import is_cluster
from littleflow.redis.protocol import Keys
from littleflow.tasks import Registry

KEYS = Keys()
pytestmark = on_server_and_cluster


def pool(*names: str, seen: list | None = None, nap: float = 0.0) -> Registry:
    """A registry whose tasks ``names`` pass their input on (adding their name to ``path``)."""
    registry = Registry()
    for name in names:

        def task(input, name=name):
            if nap:
                time.sleep(nap)
            if seen is not None:
                seen.append(name)
            return {"path": [*input.get("path", []), name]}

        registry.add(name, task)
    return registry


def test_two_pools_share_a_flow_without_waiting_on_each_other(started, client):
    """8 steps alternating between two pools: each start goes to the pool that has the task.
    (Before streams per task, every start that reached the wrong pool waited the claim idle time.)"""
    started.services_on(tasks=pool("cpu1", "cpu2", "cpu3", "cpu4"), claim_idle=30)
    started.services_on(
        tasks=pool("gpu1", "gpu2", "gpu3", "gpu4"), engine=False, builtins=False, claim_idle=30
    )
    flow = "cpu1 → gpu1 → cpu2 → gpu2 → cpu3 → gpu3 → cpu4 → gpu4"
    began = time.monotonic()
    ids = client.submit_many(flow, [{} for _ in range(20)])
    for id in ids:
        document = client.wait(id, timeout=25)  # (a single hand-over by idle time would take 30 s)
        assert document["state"] == "finished"
        assert document["output"]["path"] == flow.split(" → ")
    assert time.monotonic() - began < 25
    assert client.dead() == []


def test_a_worker_reads_only_the_streams_of_its_tasks(started, client, raw, until):
    started.services_on(tasks=pool("mine"))
    id = client.submit("mine → theirs")
    keys = client.keys.of(id)
    until(lambda: raw.exists(keys.stream("theirs")), what="theirs queued")
    assert raw.xinfo_groups(keys.stream("theirs")) == []  # nobody reads it: it waits for its worker
    assert {g["name"] for g in raw.xinfo_groups(keys.stream("mine"))} == {"workers"}
    assert client.status(id)["state"] == "running"
    assert client.stalled(id) == ["task theirs at 1:8 is queued, and no worker serves it"]
    started.services_on(tasks=pool("theirs"), engine=False, builtins=False)
    assert client.wait(id, timeout=10)["output"] == {"path": ["mine", "theirs"]}


def test_submit_names_the_tasks_no_live_worker_serves(started, client, until):
    assert client.unserved("a → b → wait:delay (- seconds: 0 -)") == ["a", "b", "wait:delay"]
    started.services_on(tasks=pool("a"))
    until(
        lambda: client.unserved("a → b → wait:delay (- seconds: 0 -)") == ["b"], what="the workers registered"
    )
    assert client.unserved("<in.json> → a → <out.json>") == []  # resources: the built-in worker


def counting(items: int) -> tuple[Registry, list[int]]:
    """Tasks ``items`` (a list of ``items`` numbers) and ``T`` (10 ms, passing its input on),
    and ``[most]``: how many runs of T ran at once, at most."""
    running, most, lock = [0], [0], threading.Lock()

    def task(input):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.01)
        with lock:
            running[0] -= 1
        return input

    registry = Registry()
    registry.add("T", task)
    registry.add("items", lambda input: list(range(items)))
    return registry, most


def test_a_workflow_has_at_most_parallelism_task_runs_in_flight(started, client):
    registry, most = counting(40)
    started.services_on(tasks=registry, concurrency=16)
    id = client.submit("@flow f (- parallelism: 3 -)\nitems → * T")
    assert client.wait(id, timeout=30)["output"] == list(range(40))
    assert most[0] == 3  # 16 threads could run all at once; the flow lets 3


def test_the_engine_parallelism_applies_to_flows_that_do_not_say(started, client):
    registry, most = counting(30)
    started.services_on(tasks=registry, concurrency=16, parallelism=2)
    assert client.wait(client.submit("items → * T"), timeout=30)["output"] == list(range(30))
    assert most[0] == 2


def test_a_small_workflow_is_not_queued_behind_a_big_one(started, client, until):
    """A 5,000-item map submitted first holds at most ``parallelism`` runs in the streams:
    a two-task workflow of the same task submitted behind it finishes long before it."""
    registry = pool("T", nap=0.001)
    registry.add("items", lambda input: [{} for _ in range(5000)])
    started.services_on(tasks=registry, concurrency=4, parallelism=20)
    big = client.submit("items → * T")
    until(lambda: client.redis.exists(client.keys.of(big).stream("T")), what="the map started")
    small = client.submit("T → T")
    assert client.wait(small, timeout=20)["state"] == "finished"
    assert client.status(big)["state"] == "running"
    assert client.wait(big, timeout=120)["state"] == "finished"


def test_terminating_keeps_the_queued_runs_for_resume(started, client, until):
    registry = pool("T", nap=0.02)
    registry.add("items", lambda input: [{} for _ in range(30)])
    started.services_on(tasks=registry, concurrency=2)
    id = client.submit("@flow f (- parallelism: 2 -)\nitems → * T")
    until(lambda: sum(n["status"] == "done" for n in client.status(id)["nodes"]) >= 1, what="items done")
    client.terminate(id)
    assert client.wait(id, timeout=10)["state"] == "terminated"
    client.resume(id)
    assert len(client.wait(id, timeout=30)["output"]) == 30


def test_the_cluster_runs_go_through_a_node_that_does_not_hold_the_keys(redis_url, client):
    """On the cluster, ``redis_url`` names a node that does not serve the ``{lf}`` slot: a plain
    client is sent elsewhere (MOVED), so these tests pass only if littleflow follows the cluster."""
    with redis.Redis.from_url(redis_url) as plain:
        if not is_cluster(client.redis):
            assert plain.xlen(KEYS.ends) == 0
            return
        with pytest.raises(redis.exceptions.MovedError):
            plain.xlen(KEYS.ends)
