"""The built-in tasks on a real Redis: wait:delay (durable), wait:event, wait:acquire and
wait:release, wait:countdown, http:get|post|put|delete against a real HTTP server, and
terminate dropping what a workflow waits in. (``http_server`` comes from tests/httpserver.py
through conftest.py.)"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest

from littleflow.confine import Confinement
from littleflow.redis.client import Client
from littleflow.redis.protocol import Keys
from littleflow.redis.server import free_port
from littleflow.tasks import Registry

KEYS = Keys()
#: The test HTTP server is on loopback, which the built-in tasks refuse unless allowed.
LOOPBACK = Confinement(http_allow=("127.0.0.1",))


def node(document: dict, label: str) -> dict:
    (found,) = [n for n in document["nodes"] if n["label"] == label]
    return found


def params(**values) -> str:
    """Task parameters as flow text (JSON is YAML)."""
    return "(- " + json.dumps(values) + " -)"


# -- wait:delay ------------------------------------------------------------------------


def test_a_delay_outputs_its_input_after_its_duration(started, client):
    started.services_on()
    began = time.monotonic()
    document = client.wait(client.submit(f"wait:delay {params(duration=0.3)}", {"x": 1}), timeout=10)
    assert time.monotonic() - began >= 0.3
    assert (document["state"], document["output"]) == ("finished", {"x": 1})
    delay = node(document, "wait:delay")
    assert delay["ended"] - delay["started"] >= 0.3


@pytest.mark.parametrize("duration", ["250ms", 0.25, "0.25s"])
def test_a_duration_may_be_written_with_a_unit(duration, started, client):
    started.services_on()
    began = time.monotonic()
    assert (
        client.wait(client.submit(f"wait:delay {params(duration=duration)}"), timeout=10)["state"]
        == "finished"
    )
    assert time.monotonic() - began >= 0.25


def test_a_bad_duration_fails_the_task(started, client):
    started.services_on()
    document = client.wait(client.submit(f"wait:delay {params(duration=['soon'])}"), timeout=10)
    assert document["state"] == "failed"
    assert document["error"]["error"].endswith(
        'needs a duration ≥ 0 in seconds or like 30s, 5m, 2h, not ["soon"]'
    )


def test_a_delay_survives_its_workers_and_its_redis_restarting(started, own_redis_server):
    url = own_redis_server.url
    client = Client(url)
    first = started.services_on(url=url)
    began = time.monotonic()
    id = client.submit(f"wait:delay {params(duration=1.0)}", {"kept": True})
    while client.redis.zcard(KEYS.delays) == 0:
        time.sleep(0.01)
    started.stop(first)  # mid-delay: nobody runs a timer now
    own_redis_server.restart()  # append-only: the timer is data, and comes back
    client = Client(url)
    assert client.status(id)["state"] == "running"
    assert client.redis.zcard(KEYS.delays) == 1
    started.services_on(url=url)
    document = client.wait(id, timeout=10)
    assert time.monotonic() - began >= 1.0
    assert (document["state"], document["output"]) == ("finished", {"kept": True})


# -- wait:event ------------------------------------------------------------------------


def waiting(client: Client, *ids: str) -> None:
    """Wait until the wait:event task of each workflow waits (its start message taken)."""
    deadline = time.monotonic() + 10
    while not all(node(client.status(id), "wait:event")["note"] == "waiting for an event" for id in ids):
        assert time.monotonic() < deadline, "the tasks did not begin waiting"
        time.sleep(0.01)


def test_an_event_sent_after_the_wait_started_ends_it_with_its_data(started, client):
    started.services_on()
    assert client.send("go", {"early": True}) == 0  # before anyone waits: lost, not kept
    id = client.submit(f"wait:event {params(event='go')}")
    waiting(client, id)
    time.sleep(0.1)
    assert client.status(id)["state"] == "running"
    assert client.send("go", {"late": True}) == 1
    assert client.wait(id, timeout=10)["output"] == {"late": True}
    assert client.send("go", {"again": True}) == 0


@pytest.mark.parametrize("match", [["order"], "order"], ids=["list", "one-name"])
def test_match_by_fields_of_the_input(match, started, client):
    started.services_on()
    id = client.submit(f"wait:event {params(event='paid', match=match)}", {"order": 7, "other": "x"})
    waiting(client, id)
    assert client.send("paid", {"order": 9}) == 0
    assert client.send("paid", {"amount": 3}) == 0
    assert client.send("paid", [7]) == 0
    assert client.status(id)["state"] == "running"
    assert client.send("paid", {"order": 7, "amount": 3}) == 1
    assert client.wait(id, timeout=10)["output"] == {"order": 7, "amount": 3}


def test_match_by_an_object(started, client):
    started.services_on()
    id = client.submit(f"wait:event {params(event='done', match={'kind': 'b', 'n': 1, 'tags': ['x', 'y']})}")
    waiting(client, id)
    assert client.send("done", {"kind": "a", "n": 1, "tags": ["x", "y"]}) == 0
    assert client.send("done", {"kind": "b", "n": 2, "tags": ["x", "y"]}) == 0
    assert client.send("done", {"kind": "b", "n": 1, "tags": ["y", "x"]}) == 0
    assert client.send("done", {"kind": "b", "n": 1}) == 0
    assert client.status(id)["state"] == "running"
    assert client.send("done", {"kind": "b", "n": 1, "tags": ["x", "y"], "extra": 0}) == 1
    assert client.wait(id, timeout=10)["output"] == {"kind": "b", "n": 1, "tags": ["x", "y"], "extra": 0}


def test_one_event_ends_every_workflow_waiting_for_it(started, client):
    started.services_on()
    ids = [client.submit(f"wait:event {params(event='all')}", {"n": n}) for n in range(3)]
    waiting(client, *ids)
    assert client.send("all", {"to": "all"}) == 3
    assert [client.wait(id, timeout=5)["output"] for id in ids] == [{"to": "all"}] * 3


def test_an_event_ends_only_the_workflows_it_matches(started, client):
    started.services_on()
    seven, eight = (
        client.submit(f"wait:event {params(event='paid', match=['order'])}", {"order": n}) for n in (7, 8)
    )
    waiting(client, seven, eight)
    assert client.send("paid", {"order": 7}) == 1
    assert client.wait(seven, timeout=5)["output"] == {"order": 7}
    assert client.status(eight)["state"] == "running"
    assert client.send("paid", {"order": 8}) == 1
    assert client.wait(eight, timeout=5)["output"] == {"order": 8}


def test_match_on_a_false_field(started, client):
    started.services_on()
    id = client.submit(f"wait:event {params(event='flag', match={'ok': False})}")
    waiting(client, id)
    assert client.send("flag", {"ok": False}) == 1
    assert client.wait(id, timeout=10)["output"] == {"ok": False}


def test_a_match_naming_fields_the_input_lacks_fails_the_task(started, client):
    started.services_on()
    document = client.wait(
        client.submit(f"wait:event {params(event='e', match=['missing'])}", {}), timeout=10
    )
    assert document["state"] == "failed"
    assert "missing" in document["error"]["error"]


# -- latches ---------------------------------------------------------------------------


def test_acquire_and_release_with_limit_one_never_run_the_work_at_once(started, client):
    lock = threading.Lock()
    active = Counter()

    def work(input):
        with lock:
            active["now"] += 1
            active["most"] = max(active["most"], active["now"])
            active["runs"] += 1
        time.sleep(0.05)  # room for another to come in, were the latch not there
        with lock:
            active["now"] -= 1
        return input

    registry = Registry()
    registry.add("work", work)
    started.services_on(tasks=registry, concurrency=4)
    text = f"wait:acquire {params(name='L')} → work → wait:release {params(name='L')}"
    ids = [client.submit(text, {"n": n}) for n in range(4)]
    documents = [client.wait(id, timeout=20) for id in ids]
    assert [d["output"] for d in documents] == [{"n": n} for n in range(4)]
    assert active["runs"] == 4
    assert active["most"] == 1
    assert client.redis.hget(KEYS.latch("L"), "held") == "0"


def test_without_the_latch_the_work_does_overlap(started, client):
    """The control for the test above: its counter does see overlaps."""
    barrier = threading.Barrier(2, timeout=10)  # passes only when both run at once

    def work(input):
        barrier.wait()
        return input

    registry = Registry()
    registry.add("work", work)
    started.services_on(tasks=registry, concurrency=4)
    ids = [client.submit("work", {"n": n}) for n in range(2)]
    assert [client.wait(id, timeout=10)["state"] for id in ids] == ["finished", "finished"]


def test_a_countdown_holds_everyone_until_the_last_arrives(started, client):
    calls = Counter()
    registry = Registry()
    registry.add("after", lambda input: calls.update(["after"]) or input)
    started.services_on(tasks=registry)
    text = f"wait:countdown {params(name='C', count=3)} → after"
    ids = [client.submit(text, {"n": n}) for n in range(2)]
    queue = KEYS.latch_queue("C", "countdown")
    deadline = time.monotonic() + 10
    while client.redis.llen(queue) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.1)
    assert calls["after"] == 0
    assert [client.status(id)["state"] for id in ids] == ["running", "running"]
    ids.append(client.submit(text, {"n": 2}))
    assert [client.wait(id, timeout=10)["output"] for id in ids] == [{"n": n} for n in range(3)]
    assert calls["after"] == 3


# -- http ------------------------------------------------------------------------------


def test_http_get_outputs_the_json_answer_and_sends_the_headers(started, client, http_server):
    url = http_server.serve("/data", '{"a": [1, 2]}', "application/json")
    started.services_on(confine=LOOPBACK)
    document = client.wait(
        client.submit(f"http:get {params(url=url, headers={'X-Token': 'abc'})}"), timeout=10
    )
    assert (document["state"], document["output"]) == ("finished", {"a": [1, 2]})
    (request,) = http_server.received("GET")
    assert request.path == "/data" and request.headers["x-token"] == "abc"


def test_http_get_sends_the_query(started, client, http_server):
    http_server.serve("/search?q=bananas&n=2", '{"found": 2}', "application/json")
    started.services_on(confine=LOOPBACK)
    text = f"http:get {params(url=http_server.url('/search'), query={'q': 'bananas', 'n': 2})}"
    assert client.wait(client.submit(text), timeout=10)["output"] == {"found": 2}


@pytest.mark.parametrize("method", ["post", "put"])
def test_http_post_and_put_send_the_input_as_json(method, started, client, http_server):
    started.services_on(confine=LOOPBACK)
    url = http_server.url("/things")
    document = client.wait(
        client.submit(f"http:{method} {params(url=url)}", {"name": "banana", "n": 3}), timeout=10
    )
    assert (document["state"], document["output"]) == ("finished", {})  # an empty answer is {}
    (request,) = http_server.received(method.upper())
    assert json.loads(request.body) == {"name": "banana", "n": 3}
    assert request.headers["content-type"] == "application/json"


def test_http_delete_sends_no_body(started, client, http_server):
    started.services_on(confine=LOOPBACK)
    document = client.wait(
        client.submit(f"http:delete {params(url=http_server.url('/things/1'))}", {"x": 1}), timeout=10
    )
    assert document["state"] == "finished"
    (request,) = http_server.received("DELETE")
    assert request.path == "/things/1" and request.body == b""


@pytest.mark.parametrize("method,status", [("get", 404), ("post", 500)])
def test_an_answer_that_is_not_2xx_fails_the_task_with_its_status(
    method, status, started, client, http_server
):
    url = (
        http_server.serve("/broken", "no bananas today", "text/plain", status=status)
        if status != 404
        else http_server.url("/missing")
    )
    started.services_on(confine=LOOPBACK)
    document = client.wait(client.submit(f"http:{method} {params(url=url)}", {}), timeout=10)
    assert document["state"] == "failed"
    error = document["error"]["error"]
    assert str(status) in error and "\n" not in error


def test_an_unreachable_http_server_fails_the_task(started, client, http_server):
    started.services_on(confine=LOOPBACK)
    text = f"http:get {params(url=f'http://127.0.0.1:{free_port()}/x')}"
    document = client.wait(client.submit(text), timeout=20)
    assert document["state"] == "failed" and "GET" in document["error"]["error"]


# -- terminate -----------------------------------------------------------------------------


def test_terminate_drops_the_delays_and_waiters_of_the_workflow(started, client, raw):
    calls = Counter()
    registry = Registry()
    registry.add("T", lambda input: calls.update(["T"]))
    started.services_on(tasks=registry)
    holder = client.submit(f"wait:acquire {params(name='M')} → wait:event {params(event='never')}")
    text = (
        f"wait:delay {params(duration=0.4)} → T\n"
        f"wait:event {params(event='e')} → T\n"
        f"wait:acquire {params(name='M')} → T"
    )
    id = client.submit(text)
    deadline = time.monotonic() + 10
    while not (
        raw.zcard(KEYS.delays) == 1
        and raw.hlen(KEYS.waiters("e")) == 1
        and raw.llen(KEYS.latch_queue("M", "queue")) == 1
    ):
        assert time.monotonic() < deadline, "the waits did not all begin"
        time.sleep(0.01)
    assert client.terminate(id)["state"] == "terminated"
    assert raw.zcard(KEYS.delays) == 0
    assert raw.hlen(KEYS.waiters("e")) == 0
    assert raw.llen(KEYS.latch_queue("M", "queue")) == 0
    assert not raw.exists(KEYS.waits(id))
    assert client.send("e", {}) == 0
    time.sleep(0.6)  # past the delay
    document = client.status(id)
    assert document["state"] == "terminated"
    assert calls["T"] == 0
    assert raw.xlen(KEYS.dead) == 0
    assert client.status(holder)["state"] == "running"  # the other workflow is left alone


# -- what a review found -----------------------------------------------------------------


def test_an_event_sent_before_the_worker_took_the_task_still_ends_it(started, client):
    id = client.submit(f"wait:event {params(event='early')}")
    assert client.send("early", {"first": True}) == 0  # nobody listens yet: the task is only queued
    started.services_on()
    assert client.wait(id, timeout=10)["output"] == {"first": True}


def test_an_event_sent_before_the_task_was_queued_does_not_end_it(started, client, until):
    client.send("past", {"old": True})
    started.services_on()
    id = client.submit(f"wait:event {params(event='past')}")
    until(lambda: node(client.status(id), "wait:event")["note"] == "waiting for an event", what="the waiter")
    assert client.status(id)["state"] == "running"
    client.send("past", {"new": True})
    assert client.wait(id, timeout=10)["output"] == {"new": True}


@pytest.mark.parametrize(
    "wanted, sent",
    [(123456789012345678, 123456789012345999), (0.3, 0.30000000000000004), ([], {}), (1, True), (1, 1.0)],
)
def test_match_compares_json_values_exactly(started, client, until, wanted, sent):
    started.services_on()
    id = client.submit(f"wait:event {params(event='exact', match={'v': wanted})}")
    until(lambda: node(client.status(id), "wait:event")["note"] == "waiting for an event", what="the waiter")
    assert client.send("exact", {"v": sent}) == 0
    assert client.send("exact", {"v": wanted}) == 1
    assert client.wait(id, timeout=10)["output"] == {"v": wanted}


def test_a_start_delivered_twice_takes_one_place_of_a_latch(started, client, raw, redis_url):
    from littleflow.redis.connection import connect
    from littleflow.redis.protocol import StartTask
    from littleflow.redis.store import Store
    from littleflow.redis.waits import latch, member

    started.services_on()
    assert (
        client.wait(client.submit(f"wait:acquire {params(name='twice')}"), timeout=10)["state"] == "finished"
    )
    ((message_id, fields),) = raw.xrange(KEYS.namespace_stream("wait"))
    task = StartTask.parse(fields)
    ends = raw.xlen(KEYS.ends)
    latch(
        Store(connect(redis_url)),
        "acquire",
        KEYS.namespace_stream("wait"),
        message_id,
        task,
        "twice",
        member(task, time.time(), "late-worker", task.input),
        1,
    )  # the same start, handled again
    assert raw.hget(KEYS.latch("twice"), "held") == "1"
    assert raw.xlen(KEYS.ends) == ends


def test_a_terminated_arrival_no_longer_counts_down(started, client, until, raw):
    started.services_on()
    first = client.submit(f"wait:countdown {params(name='two', count=2)}")
    until(lambda: raw.hget(KEYS.latch("two"), "arrived") == "1", what="the first arrival")
    client.terminate(first)
    assert raw.hget(KEYS.latch("two"), "arrived") == "0"
    second = client.submit(f"wait:countdown {params(name='two', count=2)}")
    until(lambda: raw.hget(KEYS.latch("two"), "arrived") == "1", what="the second arrival")
    assert client.status(second)["state"] == "running"
    client.resume(first)
    assert client.wait(second, timeout=10)["state"] == client.wait(first, timeout=10)["state"] == "finished"


def test_resuming_a_failed_workflow_does_not_leave_its_old_latch_place_queued(started, client, until, raw):
    calls = Counter()

    def boom(input):
        calls["boom"] += 1
        if calls["boom"] == 1:
            raise RuntimeError("first time")
        return {}

    registry = Registry()
    registry.add("boom", boom)
    started.services_on(tasks=registry)
    holder = client.submit(
        f"wait:acquire {params(name='L')} → wait:event {params(event='hold')} → "
        f"wait:release {params(name='L')}"
    )
    until(lambda: raw.hget(KEYS.latch("L"), "held") == "1", what="the holder's place")
    waiter = client.submit(f"{{ boom  wait:acquire {params(name='L')} → wait:release {params(name='L')} }}")
    assert client.wait(waiter, timeout=10)["state"] == "failed"
    until(lambda: raw.llen(KEYS.latch_queue("L", "queue")) == 1, what="the waiter in the queue")
    client.resume(waiter)
    until(lambda: raw.llen(KEYS.latch_queue("L", "queue")) == 1, what="the waiter queued again")
    client.send("hold")
    assert client.wait(holder, timeout=10)["state"] == "finished"
    assert client.wait(waiter, timeout=10)["state"] == "finished"
    assert raw.hget(KEYS.latch("L"), "held") == "0"
