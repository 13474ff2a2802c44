"""Partitions: a prefix's workflows spread over P partitions, each in one hash slot, so that
a Redis Cluster spreads them over its nodes; engines and workers serve all of them (or a
share), and what crosses partitions (latches, events, the listing) works as with one."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from rediscluster import on_server_and_cluster

from littleflow.redis.client import Client
from littleflow.redis.connection import connect, is_cluster
from littleflow.redis.engine import EngineProcess
from littleflow.redis.protocol import EndTask, Keys
from littleflow.redis.store import Store, StoreError
from littleflow.redis.worker import Worker
from littleflow.tasks import Registry

PARTITIONS = 5


@pytest.fixture
def spread(redis_url: str) -> Client:
    """A client of a prefix fixed at PARTITIONS partitions (before anything else used it)."""
    Store(connect(redis_url)).partitions(PARTITIONS)
    found = Client(redis_url)
    assert found.keys.partitions == PARTITIONS
    yield found
    found.redis.close()


def echo() -> Registry:
    registry = Registry()
    registry.add("A", lambda input: {"n": input.get("n", 0) + 1})
    registry.add("B", lambda input: {"n": input.get("n", 0) * 10})
    return registry


def test_keys_of_a_workflow_share_its_partition_tag():
    keys = Keys("lf", 4)
    ids = [f"wf-{n}" for n in range(200)]
    assert {keys.partition_of(id) for id in ids} == {0, 1, 2, 3}
    for id in ids:
        part = keys.of(id)
        tag = "{lf}" if part.partition == 0 else "{lf/" + str(part.partition) + "}"
        for key in (
            keys.workflow(id),
            keys.journal(id),
            keys.waits(id),
            part.ends,
            part.stream("A"),
            part.events,
            part.by_state("running"),
            part.flow("d" * 32),
        ):
            assert key.startswith(tag + ":"), key
    assert keys.latch("x") == keys.part(3).latch("x") == "{lf}:latch:x"  # (shared by every partition)
    assert keys.of_key("{lf/3}:task:A") is keys.part(3) and keys.of_key("{lf}:ends") is keys.part(0)
    assert keys.of_key("{lf/9}:task:A") is keys.part(0)  # (no such partition: the shared one)
    assert Keys("lf", 1).of("anything").root == "{lf}:"


@on_server_and_cluster
def test_the_number_of_partitions_is_fixed_by_the_first_user(redis_url):
    store = Store(connect(redis_url))
    assert store.partitions(3) == 3
    assert Store(connect(redis_url)).partitions() == 3
    assert Store(connect(redis_url)).keys.partitions == 3
    with pytest.raises(StoreError, match="spread over 3 partition"):
        Store(connect(redis_url)).partitions(4)
    with pytest.raises(StoreError, match="from 1 to 1024"):
        Store(connect(redis_url)).partitions(0)


@on_server_and_cluster
def test_the_default_is_one_on_a_server_and_more_on_a_cluster(redis_url):
    store = Store(connect(redis_url))
    assert store.keys.partitions == (8 if is_cluster(store.redis) else 1)


@on_server_and_cluster
def test_engine_refuses_other_partitions_in_one_line(redis_url):
    Store(connect(redis_url)).partitions(2)
    found = subprocess.run(
        [sys.executable, "-m", "littleflow", "engine", "--redis", redis_url, "--partitions", "3"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert found.returncode != 0
    lines = [line for line in found.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "spread over 2 partition" in lines[0] and "Traceback" not in found.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "littleflow", "engine", "--redis", redis_url, "--share", "2/2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0 and bad.stderr.count("\n") == 1 and "--share" in bad.stderr


FLOW = """
A → { wait:delay (- seconds: 0.05 -)  wait:acquire (- name: gate, limit: 2 -) → B → wait:release (- name: gate -) }
  → wait:event (- event: go -) → B
"""


@on_server_and_cluster
def test_workflows_spread_over_partitions_run_as_with_one(spread, started, until):
    """Plain tasks, timers, a latch shared by every partition and an event: 40 workflows, in
    every partition, finish; the listing, the counts and the events read them all as one."""
    keys = spread.keys
    started.services_on(tasks=echo())
    ids = spread.submit_many(FLOW, [{"n": n} for n in range(40)])
    assert {keys.partition_of(id) for id in ids} == set(range(PARTITIONS))
    until(
        lambda: (
            sum(
                1
                for id in ids
                if any(
                    n["status"] == "running" and n["name"] == "wait:event" for n in spread.status(id)["nodes"]
                )
            )
            == len(ids)
        ),
        timeout=30,
        what="all waiting",
    )
    assert spread.send("go", {"n": 1}) == 40
    for id in ids:
        document = spread.wait(id, timeout=30)
        assert document["state"] == "finished", document
        assert document["output"] == {"n": 10}
        assert {n["name"]: n["status"] for n in document["nodes"]}["wait:release"] == "done"
    assert spread.dead() == []
    assert spread.counts() == {"running": 0, "finished": 40, "failed": 0, "terminated": 0}
    listed = [w["id"] for w in spread.list()]
    assert sorted(listed) == sorted(ids)
    created = [w["created"] for w in spread.list()]
    assert created == sorted(created)
    assert [w["id"] for w in spread.page(offset=10, count=5, newest=True).workflows] == listed[::-1][10:15]
    assert spread.page(state="finished", count=3).total == 40
    states = {}
    for event in spread.events():
        if event.get("kind") == "workflow":
            states.setdefault(event["workflow"], []).append(event["state"])
    assert all(states[id] == ["running", "finished"] for id in ids)
    assert [e["event"] for e in spread.events() if e.get("kind") == "event"] == [
        "go"
    ]  # (once, not per partition)
    raw = spread.redis
    assert raw.hgetall(keys.latch("gate")).get("held", "0") == "0"
    if is_cluster(raw):  # the workflows live on more than one node
        assert len({raw.get_node_from_key(keys.workflow(id)).name for id in ids}) > 1


@on_server_and_cluster
def test_events_go_on_from_a_cursor_in_every_partition(spread, started):
    started.services_on(tasks=echo())
    first = spread.submit_many("A", [{} for _ in range(10)])
    for id in first:
        spread.wait(id, timeout=20)
    seen = list(spread.events())
    cursor = seen[-1]["id"]
    assert cursor.count(",") == PARTITIONS - 1
    later = spread.submit_many("B", [{} for _ in range(10)])
    for id in later:
        spread.wait(id, timeout=20)
    after = [e for e in spread.events(since=cursor) if e.get("kind") == "workflow"]
    assert {e["workflow"] for e in after} == set(later)
    with pytest.raises(StoreError, match="event id"):
        list(spread.events(since="1-0,2-0"))


@on_server_and_cluster
def test_an_end_in_another_partitions_stream_is_forwarded_once(spread, started, until):
    """A latch sends every end to partition 0's stream; so may a confused writer: the engine
    forwards it to its workflow's partition, once, even if it stops before acking the original."""
    keys = spread.keys
    id = next(id for id in (spread.store.new_id() for _ in range(100)) if keys.partition_of(id) != 0)
    store = Store(connect(spread.url))
    registry = Registry()
    registry.add("slow", lambda input: time.sleep(60))
    from littleflow import compile_flow

    run = store.create(compile_flow("slow → B"), {}, id=id)
    task = next(iter(run.seqs))
    end = EndTask(id, task, run.seqs[task], "done", {"n": 7})
    wrong = keys.part(0).ends
    engine = EngineProcess(store, connect(spread.url, decode=False), claim_idle=0.5)
    engine.groups()
    for group in engine.groups():
        group.streams.join(*group.ends)
    message = spread.redis.xadd(wrong, end.fields())
    # forwarded, then "crashed" before the ack: forwarding it again adds nothing
    engine._forward(engine.groups()[0].streams, wrong, message, end.fields(), keys.of(id).ends)
    engine._forward(engine.groups()[0].streams, wrong, message, end.fields(), keys.of(id).ends)
    assert spread.redis.xlen(keys.of(id).ends) == 1
    started.part(engine)
    started.services_on(tasks=echo(), engine=False, builtins=False)
    assert spread.wait(id, timeout=20)["output"] == {"n": 70}
    assert spread.dead() == []


@on_server_and_cluster
def test_a_latch_op_is_done_once_though_its_message_is_acked_apart(spread, started, until):
    """The latch (partition 0) and the start message (its workflow's partition) change in two
    steps; a worker that stops between them and another that takes the message over do not
    take a second place."""
    from littleflow.redis import waits
    from littleflow.redis.protocol import StartTask

    store = spread.store
    id = next(id for id in (store.new_id() for _ in range(100)) if spread.keys.partition_of(id) != 0)
    task = StartTask(id, "|0|0", 1, 0, "wait:acquire", {"name": "g", "limit": 5}, {})
    stream = spread.keys.of(id).stream("wait:acquire")
    Worker(store, connect(spread.url, decode=False), []).streams.join(stream)
    message = spread.redis.xadd(stream, task.fields())
    spread.redis.xreadgroup("workers", "w1", {stream: ">"})
    entry = waits.member(task, 1.0, "w1", {})
    shared = spread.keys.base
    args = ["acquire", shared.root, entry, 5]
    keys = [shared.ends, shared.took(stream, message), shared.latch("g"), shared.latch_queue("g", "queue")]
    assert store.scripts.waits(keys=keys, args=args) == "acquired"
    assert store.scripts.waits(keys=keys, args=args) == "acquired"  # (the second worker: nothing more)
    assert spread.redis.hget(shared.latch("g"), "held") == "1"
    waits.latch(store, "acquire", stream, message, task, "g", entry, 5)
    assert spread.redis.hget(shared.latch("g"), "held") == "1"
    assert spread.redis.xpending(stream, "workers")["pending"] == 0


@on_server_and_cluster
def test_two_engines_each_serve_their_share(spread, started, until):
    started.services_on(tasks=echo(), engine=False)
    store = spread.store
    ids = spread.submit_many("A → B", [{"n": n} for n in range(30)])
    first = EngineProcess(
        Store(connect(spread.url)), connect(spread.url, decode=False), claim_idle=0.5, share=(0, 2)
    )
    started.part(first)
    mine = [id for id in ids if spread.keys.partition_of(id) % 2 == 0]
    theirs = [id for id in ids if id not in mine]
    assert mine and theirs
    for id in mine:
        assert spread.wait(id, timeout=20)["state"] == "finished"
    assert all(spread.status(id)["state"] == "running" for id in theirs)
    started.part(
        EngineProcess(
            Store(connect(spread.url)), connect(spread.url, decode=False), claim_idle=0.5, share=(1, 2)
        )
    )
    for id in theirs:
        assert spread.wait(id, timeout=20)["state"] == "finished"
    assert store.keys.partitions == PARTITIONS
