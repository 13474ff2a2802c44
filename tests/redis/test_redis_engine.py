"""The engine process on a real Redis: ends applied exactly once, bad messages set
aside, several engines at once, take-over of a dead engine's messages, trimming.

Several tests play the worker by hand: the engine runs alone, the test reads the
start-task messages and XADDs end-task messages to Keys.ends itself."""

from __future__ import annotations

import threading
import time
from collections import Counter

import redis

from littleflow.redis.connection import connect
from littleflow.redis.engine import EngineProcess
from littleflow.redis.protocol import ENGINES, WORKERS, EndTask, Keys, StartTask
from littleflow.redis.store import Store
from littleflow.redis.streams import Streams
from littleflow.tasks import Registry

KEYS = Keys()


def starts(raw: redis.Redis) -> list[StartTask]:
    """Every start-task message queued so far (in any task's stream), oldest first."""
    streams = [
        *raw.scan_iter(KEYS.stream("*"), _type="stream"),
        *raw.scan_iter(KEYS.namespace_stream("*"), _type="stream"),
    ]
    found = sorted(
        (tuple(map(int, id.split("-"))), fields) for stream in streams for id, fields in raw.xrange(stream)
    )
    return [StartTask.parse(fields) for _, fields in found]


def start_of(raw: redis.Redis, workflow: str, name: str, until) -> StartTask:
    """The start-task message of task ``name`` of ``workflow`` (waiting for it)."""
    return until(
        lambda: next((s for s in starts(raw) if s.workflow == workflow and s.name == name), None),
        what=f"a start of {name}",
    )


def end(start: StartTask, output=None) -> dict[str, str]:
    """The fields of the end-task message a worker would send for ``start``."""
    return EndTask(start.workflow, start.task, start.seq, "done", {} if output is None else output).fields()


def dead_letters(raw: redis.Redis) -> list[dict[str, str]]:
    return [fields for _, fields in raw.xrange(KEYS.dead)]


def engine_alive(services) -> bool:
    return all(thread.is_alive() for thread in services.threads)


def test_an_end_sent_twice_is_applied_once_and_the_second_is_set_aside(started, client, raw, until):
    engine = started.services_on(builtins=False).engines[0]
    id = client.submit("A → B", {"n": 1})
    a = start_of(raw, id, "A", until)
    for _ in range(2):
        raw.xadd(KEYS.ends, end(a, {"from": "A"}))
    b = start_of(raw, id, "B", until)
    assert b.input == {"from": "A"}
    (letter,) = until(lambda: dead_letters(raw), what="a dead letter")
    assert "duplicate" in letter["reason"]
    assert letter["field:task"] == a.task and letter["field:workflow"] == id
    raw.xadd(KEYS.ends, end(b, {"from": "B"}))
    document = client.wait(id, timeout=10)
    assert (document["state"], document["output"]) == ("finished", {"from": "B"})
    assert [s.name for s in starts(raw)] == ["A", "B"]  # A's second end started nothing
    assert engine.applied == 2
    assert raw.xpending(KEYS.ends, ENGINES)["pending"] == 0


def test_a_late_end_of_an_earlier_run_is_stale(started, client, raw, until):
    """After a resume, the end of the interrupted run (an older seq) is not applied."""
    started.services_on(builtins=False)
    id = client.submit("A", {})
    first = start_of(raw, id, "A", until)
    client.terminate(id)
    client.resume(id)
    again = until(
        lambda: [s for s in starts(raw) if s.name == "A" and s.seq > first.seq], what="a second start"
    )[0]
    raw.xadd(KEYS.ends, end(first, {"run": "first"}))
    until(lambda: dead_letters(raw), what="a dead letter")
    assert client.status(id)["state"] == "running"
    raw.xadd(KEYS.ends, end(again, {"run": "second"}))
    assert client.wait(id, timeout=10)["output"] == {"run": "second"}


def test_the_end_of_a_task_restarted_by_resume_is_applied(started, client, raw, until):
    """The engine has stepped the workflow (and may remember it); then a client terminates
    and resumes it: the end of the new run of the interrupted task is applied."""
    started.services_on(builtins=False)
    id = client.submit("A → B")
    a = start_of(raw, id, "A", until)
    raw.xadd(KEYS.ends, end(a, {"a": 1}))
    first_b = start_of(raw, id, "B", until)
    client.terminate(id)
    client.resume(id)
    (b,) = [s for s in starts(raw) if s.name == "B" and s.seq > first_b.seq]
    raw.xadd(KEYS.ends, end(b, {"b": 2}))
    until(
        lambda: client.status(id)["state"] != "running" or dead_letters(raw),
        timeout=5,
        what="B's end handled",
    )
    assert dead_letters(raw) == []
    assert client.wait(id, timeout=5)["output"] == {"b": 2}


GARBAGE = {
    "missing fields": ({"kind": "end"}, "malformed end-task message"),
    "bad JSON output": (
        {
            "kind": "end",
            "workflow": "w",
            "task": "|1|-1",
            "seq": "1",
            "status": "done",
            "output": "{not json",
        },
        "is not JSON",
    ),
    "non-UTF-8 value": ({"kind": b"\xff\xfeend", "workflow": "w"}, "not UTF-8"),
    "wrong kind": (
        {"kind": "start", "workflow": "w", "task": "|1|-1", "seq": "1", "status": "done"},
        "not an end-task message",
    ),
    "bad status": (
        {"kind": "end", "workflow": "w", "task": "|1|-1", "seq": "1", "status": "maybe"},
        "bad status",
    ),
    "bad task id": (
        {"kind": "end", "workflow": "w", "task": "nope", "seq": "1", "status": "done"},
        "bad task id",
    ),
    "seq not a number": (
        {"kind": "end", "workflow": "w", "task": "|1|-1", "seq": "one", "status": "done"},
        "not a whole number",
    ),
    "unknown workflow": (
        {
            "kind": "end",
            "workflow": "no-such-workflow",
            "task": "|1|-1",
            "seq": "1",
            "status": "done",
            "output": "{}",
        },
        "unknown workflow no-such-workflow",
    ),
}


def test_garbage_is_set_aside_and_the_engine_keeps_going(started, client, raw, until):
    registry = Registry()
    registry.add("A", lambda input: {"a": input})
    services = started.services_on(tasks=registry, builtins=False)
    waiting = client.submit("nobody:serves-this")  # a running workflow for the messages that name one
    sent = {}
    for name, (fields, _) in GARBAGE.items():
        sent[raw.xadd(KEYS.ends, fields)] = name
    known = {"kind": "end", "workflow": waiting, "status": "done", "output": "{}"}
    sent[raw.xadd(KEYS.ends, {**known, "task": "|99|-1", "seq": "1"})] = "unknown node"
    sent[raw.xadd(KEYS.ends, {**known, "task": "|-1|-1", "seq": "1"})] = "negative node"
    sent[raw.xadd(KEYS.ends, {**known, "task": "/7.0|1|0", "seq": "1"})] = "unknown frame"
    reasons = {
        **{name: reason for name, (_, reason) in GARBAGE.items()},
        "unknown node": "unknown node 99",
        "negative node": "unknown node -1",
        "unknown frame": "duplicate or stale",
    }

    id = client.submit("A", {"x": 1})
    assert client.wait(id, timeout=10)["output"] == {"a": {"x": 1}}
    letters = until(
        lambda: len(dead_letters(raw)) >= len(sent) and dead_letters(raw), what="every dead letter"
    )
    by_name = {sent[letter["id"]]: letter for letter in letters}
    assert set(by_name) == set(sent.values())
    for name, letter in by_name.items():
        assert reasons[name] in letter["reason"], name
        assert letter["stream"] == KEYS.ends
    assert raw.xpending(KEYS.ends, ENGINES)["pending"] == 0
    assert client.status(waiting)["state"] == "running"
    assert engine_alive(services)


def test_a_field_name_that_is_not_utf8_is_set_aside_too(started, client, raw, until):
    registry = Registry()
    registry.add("A", lambda input: {"a": 1})
    services = started.services_on(tasks=registry, builtins=False)
    raw.xadd(KEYS.ends, {b"\xff\xfe": b"x", "kind": "end"})
    until(lambda: dead_letters(raw) or not engine_alive(services), what="a dead letter")
    assert engine_alive(services)
    assert "not UTF-8" in dead_letters(raw)[0]["reason"]
    assert client.wait(client.submit("A"), timeout=5)["state"] == "finished"


def wait_all(client, ids: list[str], timeout: float) -> list[dict]:
    """The status documents of ``ids`` once none runs, or as they are after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = client.redis.pipeline(transaction=False)
        for id in ids:
            states.hget(client.keys.workflow(id), "status")
        if "running" not in states.execute():
            break
        time.sleep(0.05)
    return [client.status(id) for id in ids]


def test_two_engines_at_once_apply_each_end_exactly_once(started, client, raw):
    calls = Counter()
    lock = threading.Lock()

    def task(name):
        def function(input):
            with lock:
                calls[name] += 1
            return {name: input.get("n") if isinstance(input, dict) else len(input)}

        return function

    registry = Registry()
    for name in "ABCD":
        registry.add(name, task(name))
    first = started.services_on(tasks=registry, builtins=False)
    second = started.services_on(builtins=False)  # an engine alone
    ids = client.submit_many("A → { B C } → D", [{"n": n} for n in range(200)])
    documents = wait_all(client, ids, timeout=8)
    assert calls == {"A": 200, "B": 200, "C": 200, "D": 200}
    assert raw.xlen(KEYS.dead) == 0, dead_letters(raw)[0]["reason"]
    assert [d["state"] for d in documents] == ["finished"] * 200
    assert all(d["output"] == {"D": 2} for d in documents)  # D got the list of B's and C's outputs
    engines = first.engines + second.engines
    assert sum(engine.applied for engine in engines) == sum(calls.values()) == 800
    assert raw.xpending(KEYS.ends, ENGINES)["pending"] == 0


def test_one_engine_applies_hundreds_of_workflows_exactly_once(started, client, raw):
    """The same load as above on one engine."""
    calls = Counter()
    lock = threading.Lock()

    def function(input):
        with lock:
            calls["all"] += 1
        return {"n": input.get("n") if isinstance(input, dict) else len(input)}

    registry = Registry()
    for name in "ABCD":
        registry.add(name, function)
    services = started.services_on(tasks=registry, builtins=False)
    ids = client.submit_many("A → { B C } → D", [{"n": n} for n in range(200)])
    documents = wait_all(client, ids, timeout=8)
    assert [d["state"] for d in documents] == ["finished"] * 200
    assert all(d["output"] == {"n": 2} for d in documents)
    assert services.engines[0].applied == calls["all"] == 800
    assert raw.xlen(KEYS.dead) == 0


def test_an_end_left_pending_by_a_dead_engine_is_taken_over_after_claim_idle(started, client, raw, until):
    registry = Registry()
    registry.add("A", lambda input: {"a": 1})
    registry.add("B", lambda input: {"b": input["a"] + 1})
    started.services_on(tasks=registry, engine=False, builtins=False)  # workers only, for now
    raw.xgroup_create(KEYS.ends, ENGINES, id="0", mkstream=True)
    id = client.submit("A → B")
    until(lambda: raw.xlen(KEYS.ends) == 1, what="A's end")
    # a consumer of the engines' group reads it and dies without acking
    taken = raw.xreadgroup(ENGINES, "dead-engine", {KEYS.ends: ">"}, count=10)
    assert len(taken[0][1]) == 1
    read_at = time.monotonic()
    live = started.services_on(builtins=False, claim_idle=0.5).engines[0]
    document = client.wait(id, timeout=10)
    assert time.monotonic() - read_at >= 0.5
    assert (document["state"], document["output"]) == ("finished", {"b": 2})
    assert live.applied == 2
    pending = raw.xpending(KEYS.ends, ENGINES)
    assert pending["pending"] == 0
    assert raw.xlen(KEYS.dead) == 0


def test_a_message_delivered_again_and_again_goes_to_dead_letters(started, client, raw, until, redis_url):
    """An end whose engines died while applying it (max_deliveries times) is set aside, not
    applied; its task fails, visibly, and resume runs it again."""
    registry = Registry()
    registry.add("A", lambda input: {"a": 1})
    started.services_on(tasks=registry, engine=False, builtins=False)
    raw.xgroup_create(KEYS.ends, ENGINES, id="0", mkstream=True)
    id = client.submit("A")
    until(lambda: raw.xlen(KEYS.ends) == 1, what="A's end")
    ((_, ((poison, _),)),) = raw.xreadgroup(ENGINES, "dying-1", {KEYS.ends: ">"}, count=1)
    raw.xclaim(KEYS.ends, ENGINES, "dying-2", 0, [poison])  # taken over, and that one died too
    assert raw.xpending_range(KEYS.ends, ENGINES, "-", "+", 1)[0]["times_delivered"] == 2
    engine = EngineProcess(
        Store(connect(redis_url)), connect(redis_url, decode=False), claim_idle=0.1, max_deliveries=2
    )
    started.part(engine, block=0.05)
    (letter,) = until(lambda: dead_letters(raw), what="the message in dead letters")
    assert letter["id"] == poison and letter["field:workflow"] == id
    assert "delivered 2 times" in letter["reason"]
    assert raw.xpending(KEYS.ends, ENGINES)["pending"] == 0
    assert engine.applied == 0
    failed = client.wait(id, timeout=10)
    assert failed["state"] == "failed"
    assert (
        failed["error"]["error"] == "its end could not be applied (delivered 2 times without being applied)"
    )
    assert client.wait(client.submit("A"), timeout=10)["output"] == {"a": 1}  # and the engine goes on
    client.resume(id)
    assert client.wait(id, timeout=10)["output"] == {"a": 1}


def test_an_end_that_fails_every_time_goes_to_dead_letters_and_the_engine_goes_on(
    started, client, raw, until, redis_url
):
    registry = Registry()
    registry.add("A", lambda input: {"a": 1})
    started.services_on(tasks=registry, engine=False, builtins=False)
    # a workflow whose stored definition is broken: every attempt to apply its end fails
    raw.hset(KEYS.workflow("broken"), mapping={"version": 1, "run": "{}", "status": "running"})  # (no flow)
    poison = raw.xadd(
        KEYS.ends,
        {"kind": "end", "workflow": "broken", "task": "|1|-1", "seq": "1", "status": "done", "output": "{}"},
    )
    engine = EngineProcess(
        Store(connect(redis_url)), connect(redis_url, decode=False), claim_idle=0.1, max_deliveries=2
    )
    thread = started.part(engine, block=0.05)
    until(lambda: dead_letters(raw) or not thread.is_alive(), timeout=5, what="a dead letter")
    assert thread.is_alive()
    (letter,) = dead_letters(raw)
    assert letter["id"] == poison and "delivered 2 times" in letter["reason"]
    assert client.wait(client.submit("A"), timeout=5)["output"] == {"a": 1}


def test_streams_are_trimmed_once_everything_is_read(started, client, raw, redis_url):
    registry = Registry()
    registry.add("A", lambda input: input)
    registry.add("B", lambda input: input)
    started.services_on(tasks=registry, builtins=False)
    ids = client.submit_many("A → B", [{"n": n} for n in range(150)])
    for id in ids:
        assert client.wait(id, timeout=30)["state"] == "finished"
    assert raw.xinfo_stream(KEYS.ends)["entries-added"] == 300
    for name in "AB":
        assert raw.xinfo_stream(KEYS.stream(name))["entries-added"] == 150
    plain = connect(redis_url, decode=False)
    Streams(plain, KEYS, ENGINES, "trimmer").trim(KEYS.ends)
    Streams(plain, KEYS, WORKERS, "trimmer").trim(KEYS.stream("A"))
    # trimming is approximate (whole stream nodes of at most 100 entries go), but it goes
    assert raw.xlen(KEYS.ends) <= 100
    assert raw.xlen(KEYS.stream("A")) <= 100


def test_trim_keeps_what_is_still_pending(started, client, raw, redis_url, until):
    """Ends nobody acked are kept by trim, however many come after them."""
    registry = Registry()
    registry.add("A", lambda input: input)
    started.services_on(tasks=registry, engine=False, builtins=False)
    raw.xgroup_create(KEYS.ends, ENGINES, id="0", mkstream=True)
    first = client.submit("A", {"first": True})
    until(lambda: raw.xlen(KEYS.ends) == 1, what="the first end")
    raw.xreadgroup(ENGINES, "dead-engine", {KEYS.ends: ">"}, count=1)
    client.submit_many("A", [{"n": n} for n in range(250)])
    until(lambda: raw.xlen(KEYS.ends) == 251, what="every end")
    raw.xreadgroup(ENGINES, "reader", {KEYS.ends: ">"}, count=1000)
    for message_id, _ in raw.xrange(KEYS.ends)[1:]:
        raw.xack(KEYS.ends, ENGINES, message_id)
    Streams(connect(redis_url, decode=False), KEYS, ENGINES, "trimmer").trim(KEYS.ends)
    assert raw.xrange(KEYS.ends, count=1)[0][1]["workflow"] == first
    assert raw.xlen(KEYS.ends) == 251


def test_an_end_that_cannot_be_applied_does_not_take_the_ends_read_with_it_down(
    started, client, raw, until, redis_url
):
    """A broken workflow's end and good ends read in the same batch: only the broken one
    goes to dead letters; the good workflows finish."""
    registry = Registry()
    registry.add("A", lambda input: input)
    started.services_on(tasks=registry, engine=False, builtins=False)
    raw.hset(KEYS.workflow("broken"), mapping={"version": 1, "run": "{}", "status": "running"})  # (no flow)
    poison = raw.xadd(
        KEYS.ends,
        {"kind": "end", "workflow": "broken", "task": "|1|-1", "seq": "1", "status": "done", "output": "{}"},
    )
    ids = client.submit_many("A", [{"n": n} for n in range(5)])
    until(lambda: raw.xlen(KEYS.ends) == 6, what="the good ends")  # all there before an engine reads
    engine = EngineProcess(
        Store(connect(redis_url)), connect(redis_url, decode=False), claim_idle=0.1, max_deliveries=2
    )
    started.part(engine, block=0.05)
    until(lambda: dead_letters(raw), timeout=5, what="a dead letter")
    documents = [client.wait(id, timeout=5) for id in ids]
    assert [d["output"] for d in documents] == [{"n": n} for n in range(5)]
    assert [letter["id"] for letter in dead_letters(raw)] == [poison]
