"""The Client on a real Redis: submit, status documents, list with filters, archive,
delete and restore, and what it does when Redis is not there."""

from __future__ import annotations

import json
import threading
import time

import pytest
import redis

from littleflow import compile_flow
from littleflow.redis import store as store_module
from littleflow.redis.client import Client
from littleflow.redis.protocol import Keys
from littleflow.redis.server import free_port
from littleflow.redis.store import (
    MAX_INFO_VALUE,
    VALID_ID,
    InvalidArchive,
    StoreError,
    WorkflowExists,
    WorkflowNotFound,
    capped,
    info_json,
)
from littleflow.tasks import Registry

NODE_KEYS = {
    "id",
    "label",
    "kind",
    "name",
    "line",
    "column",
    "status",
    "attempt",
    "started",
    "ended",
    "error",
    "worker",
    "note",
    "input",
    "output",
    "items",
}
BIG = {"x": "y" * MAX_INFO_VALUE}


@pytest.fixture
def tasks():
    """A: echo; B: fails; hang: blocks until the test ends; big: outputs more than the task info keeps."""
    gate = threading.Event()
    registry = Registry()
    registry.add("A", lambda input: {"a": input})
    registry.add("B", lambda input: (_ for _ in ()).throw(RuntimeError("no more bananas")))
    registry.add("hang", lambda input: gate.wait(30) and {})
    registry.add("big", lambda input: BIG)
    yield registry
    gate.set()


@pytest.fixture
def system(started, tasks):
    return started.services_on(tasks=tasks)


@pytest.fixture
def four(system, client, until) -> dict[str, str]:
    """One workflow in each state: finished, failed, terminated, running."""
    ids = {
        "finished": client.submit("@flow alpha\nA", {"k": 1}),
        "failed": client.submit("@flow beta\nA → B", {"k": 2}),
        "terminated": client.submit("@flow alpha\nhang → A", {"k": 3}),
        "running": client.submit("@flow gamma\nhang", {"k": 4}),
    }
    client.wait(ids["finished"], timeout=10)
    client.wait(ids["failed"], timeout=10)
    until(lambda: client.status(ids["terminated"])["nodes"][1]["status"] == "running", what="hang running")
    client.terminate(ids["terminated"])
    return ids


def test_the_status_document(four, client):
    for state, id in four.items():
        document = client.status(id)
        assert {"id", "state", "output", "nodes"} <= set(document)
        assert document["id"] == id and document["state"] == state
        assert isinstance(document["nodes"], list)
        assert all(set(node) == NODE_KEYS for node in document["nodes"])
        assert [node["id"] for node in document["nodes"]] == list(range(len(document["nodes"])))
        assert document["nodes"][0]["kind"] == "start" and document["nodes"][-1]["kind"] == "end"
    finished = client.status(four["finished"])
    assert finished["output"] == {"a": {"k": 1}} and finished["error"] is None
    assert finished["name"] == "alpha" and finished["input"] == {"k": 1}
    assert [n["status"] for n in finished["nodes"]] == ["done"] * 3
    task = finished["nodes"][1]
    assert (task["label"], task["kind"], task["attempt"], task["error"]) == ("A", "task", 1, None)
    assert task["started"] <= task["ended"] and task["worker"]
    failed = client.status(four["failed"])
    assert failed["output"] is None
    assert failed["error"]["name"] == "B" and "no more bananas" in failed["error"]["error"]
    assert [n["status"] for n in failed["nodes"]][1:3] == ["done", "failed"]
    assert client.status(four["running"])["nodes"][1]["status"] == "running"


def test_nodes_show_their_input_and_output(four, client):
    finished = client.status(four["finished"])["nodes"]
    assert [(n["input"], n["output"]) for n in finished] == [
        (None, None),
        ({"k": 1}, {"a": {"k": 1}}),
        (None, None),
    ]
    a, b = client.status(four["failed"])["nodes"][1:3]
    assert (a["input"], a["output"]) == ({"k": 2}, {"a": {"k": 2}})
    assert (b["status"], b["input"], b["output"]) == ("failed", {"a": {"k": 2}}, None)
    assert "no more bananas" in b["error"]
    assert [n["status"] for n in client.status(four["failed"])["nodes"]] == [
        "done",
        "done",
        "failed",
        "unreached",
    ]
    hang, end = client.status(four["running"])["nodes"][1:]
    assert (hang["status"], hang["input"], hang["output"]) == ("running", {"k": 4}, None)
    assert end["status"] == "waiting"  # (not reached yet: the run goes on)
    hang, a = client.status(four["terminated"])["nodes"][1:3]
    assert (hang["status"], hang["input"], a["input"], a["status"]) == (
        "terminated",
        {"k": 3},
        None,
        "unreached",
    )


def test_every_node_of_a_branch_not_taken_shows_skipped(system, client):
    """A run records the first node of a branch not taken; the status document (what the
    console and `status` show) says the whole branch was skipped, as the pictures do."""
    id = client.submit("if `$[?@.k == 1]` then { A → A → A } else A", {"k": 2})
    document = client.wait(id, timeout=10)
    assert document["state"] == "finished"
    tasks = [(node["id"], node["status"]) for node in document["nodes"] if node["kind"] == "task"]
    assert [status for _, status in tasks] == ["skipped", "skipped", "skipped", "done"]


def test_a_queued_node_shows_its_input(system, client, until):
    id = client.submit("A → nobody:serves", {"k": 5})
    node = until(lambda: (n := client.status(id)["nodes"][2])["status"] == "queued" and n, what="queued")
    assert (node["input"], node["output"]) == ({"a": {"k": 5}}, None)


def test_huge_inputs_and_outputs_are_kept_as_their_size(system, client, until):
    size = len(json.dumps(BIG, separators=(",", ":")).encode())
    done = client.wait(client.submit("big → A"), timeout=10)
    big, a = done["nodes"][1:3]
    assert (big["input"], big["output"]) == ({}, {"truncated": size})
    assert (a["input"], a["output"]) == ({"truncated": size}, {"truncated": size + len('{"a":}')})
    assert done["output"] == {"a": BIG}  # the flow's own output is whole
    running = client.submit("big → hang")
    node = until(lambda: (n := client.status(running)["nodes"][2])["status"] == "running" and n, what="hang")
    assert node["input"] == {"truncated": size}
    assert len(client.redis.hget(client.keys.task_info(done["id"]), "|2|-1")) < 1000


def test_capped_counts_bytes_of_utf8():
    assert capped("é" * 10, limit=22) == "é" * 10  # 20 bytes and the quotes
    assert capped("é" * 10, limit=21) == {"truncated": 22}
    assert capped([1, 2], limit=5) == [1, 2] and capped([1, 2], limit=4) == {"truncated": 5}
    assert capped(None) is None


def test_task_info_keeps_what_fits_and_the_size_of_what_does_not():
    assert json.loads(info_json({"node": 1}, input={"k": "é"}, output=[1])) == {
        "node": 1,
        "input": {"k": "é"},
        "output": [1],
    }
    size = len(json.dumps(BIG, separators=(",", ":")))
    assert json.loads(info_json({"node": 1, "error": None}, input=BIG, output=None)) == {
        "node": 1,
        "input": {"truncated": size},
    }  # (nothing is kept of what is null)
    euros = {"x": "€" * 22_000}  # fewer characters than the limit, more bytes
    assert json.loads(info_json({"node": 1}, input=euros, output=[euros["x"][:100]])) == {
        "node": 1,
        "input": {"truncated": 66_008},
        "output": [euros["x"][:100]],
    }
    assert json.loads(info_json({"node": 1}, input=euros["x"][:20_000], output=euros["x"][:20_000])) == {
        "node": 1,
        "input": euros["x"][:20_000],
        "output": euros["x"][:20_000],
    }  # large together, each fits


def test_list_searches_prefixes_of_ids_and_names(four, client):
    assert [w["id"] for w in client.list(search="alp")] == [four["finished"], four["terminated"]]
    assert client.list(search="ALPHA") == client.list(search="lpha") == []  # prefixes, case-sensitive
    assert [w["id"] for w in client.list(search="gam")] == [four["running"]]
    assert [w["id"] for w in client.list(search=four["failed"])] == [four["failed"]]
    assert client.list(search=four["failed"][-8:]) == []
    assert client.list(search="alpha", state="running") == []
    assert [w["id"] for w in client.list(search="a", name="alpha", state="terminated")] == [
        four["terminated"]
    ]
    assert client.list(search="no such thing") == []
    assert [w["id"] for w in client.list(search="")] == list(four.values())
    assert [w["id"] for w in client.list(search=four["running"][:4])] == list(four.values())  # the year


ONE_EACH = {"running": 1, "finished": 1, "failed": 1, "terminated": 1}
NONE = dict.fromkeys(ONE_EACH, 0)


def test_a_page_counts_all_that_match(four, client):
    assert [len(page.workflows) for page in [client.page(count=2), client.page(offset=3)]] == [2, 1]
    assert client.page(count=2).total == 4 and client.page(state="running", count=0) == ([], 1, ONE_EACH)
    found, total, _ = client.page(search=four["running"][:4], offset=1, count=1)  # every id: the year
    assert total == 4 and [w["id"] for w in found] == [four["failed"]]
    assert client.page(name="alpha", count=1).total == 2
    assert client.page(search="zzz") == ([], 0, NONE)


def test_a_page_counts_each_state_whatever_the_state_filter(four, client):
    alpha = {**NONE, "finished": 1, "terminated": 1}
    for state in (None, *ONE_EACH):
        assert client.page(state).counts == ONE_EACH
        assert client.page(state, name="alpha").counts == alpha
        assert client.page(state, search="alph", count=0).counts == alpha
        assert client.page(state, search=four["failed"]).counts == {**NONE, "failed": 1}
    year = four["running"][:4]
    page = client.page("terminated", search=year, newest=True)
    assert (page.total, page.counts) == (1, ONE_EACH) and [w["id"] for w in page.workflows] == [
        four["terminated"]
    ]
    page = client.page(search=year, newest=True, offset=1, count=2)
    assert [w["id"] for w in page.workflows] == [four["terminated"], four["failed"]] and page.total == 4
    client.delete(four["failed"])
    assert client.page().counts == client.page(search=year).counts == {**ONE_EACH, "failed": 0}


def test_list_filters_by_state_and_name(four, client):
    everything = client.list()
    assert [w["id"] for w in everything] == list(four.values())  # oldest first
    assert all(set(w) == {"id", "name", "state", "created", "updated"} for w in everything)
    for state, id in four.items():
        assert [w["id"] for w in client.list(state=state)] == [id]
    assert [w["id"] for w in client.list(name="alpha")] == [four["finished"], four["terminated"]]
    assert [w["id"] for w in client.list(state="terminated", name="alpha")] == [four["terminated"]]
    assert client.list(state="failed", name="alpha") == []
    assert client.list(name="nobody") == []
    assert [w["id"] for w in client.list(offset=1, count=2)] == [four["failed"], four["terminated"]]
    with pytest.raises(StoreError, match="unknown state"):
        client.list(state="sleeping")


def test_the_state_indexes_follow_every_change_and_page(four, client, raw):
    finished = [client.submit("A", {"n": n}) for n in range(5)]
    for id in finished:
        client.wait(id, timeout=10)
    ids = [four["finished"], *finished]
    assert [w["id"] for w in client.list(state="finished")] == ids
    assert [w["id"] for w in client.list(state="finished", offset=2, count=2)] == ids[2:4]
    client.resume(four["terminated"])  # terminated → running
    assert client.list(state="terminated") == []
    archive = client.archive(four["failed"])
    client.delete(four["failed"])
    assert client.list(state="failed") == []
    client.restore(archive)
    assert [w["id"] for w in client.list(state="failed")] == [four["failed"]]
    states = ("running", "finished", "failed", "terminated")
    indexed = sorted(id for state in states for id in raw.zrange(Keys().by_state(state), 0, -1))
    assert indexed == sorted(w["id"] for w in client.list())  # each workflow in one index


@pytest.mark.parametrize("state", ["finished", "failed", "terminated"])
def test_archive_delete_restore_gives_the_same_status_document(state, four, client):
    id = four[state]
    before = client.status(id)
    archive = client.archive(id)
    client.delete(id)
    with pytest.raises(StoreError, match="no workflow"):
        client.status(id)
    assert id not in [w["id"] for w in client.list()]
    assert client.restore(archive) == id
    assert client.status(id) == before
    again = client.archive(id)
    # the same but for its counters (moved past anything of the id's earlier life) and the
    # log's new last line
    assert again["version"] > archive["version"] and again["run"]["seq"] > archive["run"]["seq"]
    assert again["log"][:-1] == archive["log"] and again["log"][-1]["kind"] == "restored"
    counters = ("version", "log")
    assert {k: v for k, v in again.items() if k not in counters} == {
        **{k: v for k, v in archive.items() if k not in counters},
        "run": {**archive["run"], "seq": again["run"]["seq"]},
    }
    assert id in [w["id"] for w in client.list(state=state)]


def test_restore_over_an_existing_id_is_refused_without_replace(four, client):
    id = four["finished"]
    archive = client.archive(id)
    with pytest.raises(WorkflowExists, match=f"^workflow {id} exists already$"):  # (nor does a creation)
        client.store.create(compile_flow("A"), None, id=id)
    with pytest.raises(WorkflowExists, match="exists") as caught:
        client.restore(archive)
    assert "\n" not in str(caught.value)
    changed = {
        **archive,
        "run": {**archive["run"], "state": {**archive["run"]["state"], "output": {"new": 1}}},
    }
    assert client.restore(changed, replace=True) == id
    assert client.status(id)["output"] == {"new": 1}


def test_delete_tells_the_events_stream_and_trims_it_as_steps_do(four, client, monkeypatch):
    monkeypatch.setattr(store_module, "EVENTS_LENGTH", 1)
    for i in range(300):
        client.redis.xadd(client.keys.events, {"kind": "event", "event": "e", "data": str(i)})
    client.delete(four["failed"])
    events = list(client.events())
    assert {k: v for k, v in events[-1].items() if k not in ("id", "time")} == {
        "kind": "workflow",
        "workflow": four["failed"],
        "state": "deleted",
    }
    assert abs(events[-1]["time"] - time.time()) < 60
    assert len(events) < 300
    with pytest.raises(StoreError):
        client.delete(four["failed"])
    assert list(client.events(since=events[-1]["id"])) == []


def test_a_running_workflow_cannot_be_deleted(four, client):
    with pytest.raises(StoreError, match="running"):
        client.delete(four["running"])
    assert client.status(four["running"])["state"] == "running"


def test_a_restored_running_workflow_runs_its_tasks_again(system, started, client, until):
    id = client.submit("A → later:b", {"k": 1})  # nobody serves later:b yet
    until(lambda: client.status(id)["nodes"][2]["status"] == "queued", what="later:b queued")
    archive = client.archive(id)
    client.terminate(id)
    client.delete(id)
    assert client.restore(archive) == id
    assert client.status(id)["state"] == "running"
    later = Registry()
    later.add("later:b", lambda input: {"b": input})
    started.services_on(tasks=later, engine=False, builtins=False)
    document = client.wait(id, timeout=10)
    assert (document["state"], document["output"]) == ("finished", {"b": {"a": {"k": 1}}})


def test_a_restore_is_not_confused_with_what_the_workflow_did_after_its_archive(
    system, started, client, until
):
    """An engine that advanced the workflow after it was archived must not take the
    restored workflow for the one it remembers, nor apply ends of that later life."""
    id = client.submit('wait:event ({"event": "go"}) → later:b', {"k": 1})
    until(lambda: client.status(id)["nodes"][1]["note"] == "waiting for an event", what="the waiter")
    archive = client.archive(id)
    client.send("go", {"went": 1})
    until(
        lambda: client.status(id)["nodes"][2]["status"] == "queued", what="later:b queued (nobody serves it)"
    )
    client.restore(archive, replace=True)  # back to waiting for the event
    later = Registry()
    later.add("later:b", lambda input: {"b": input})
    started.services_on(tasks=later, engine=False, builtins=False)  # runs the later life's later:b
    until(lambda: client.dead(), what="the later life's end set aside")
    assert client.status(id)["state"] == "running"
    until(lambda: client.status(id)["nodes"][1]["note"] == "waiting for an event", what="the restored waiter")
    client.send("go", {"went": 2})
    assert client.wait(id, timeout=10)["output"] == {"b": {"went": 2}}


@pytest.mark.parametrize(
    "archive",
    [
        {},
        {"format": "littleflow-archive/1"},
        {"format": "other"},
        {"format": "littleflow-archive/1", "id": "x", "flow": "nope"},
    ],
)
def test_restore_of_something_that_is_not_an_archive_is_one_line(archive, client):
    with pytest.raises(StoreError) as caught:
        client.restore(archive)
    assert "archive" in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("id", [".", "..", "...", "a:b", "", "x" * 201])
def test_restore_refuses_an_id_no_url_or_key_can_hold(id, client):
    archive = {**client.archive(client.submit("A")), "id": id}
    with pytest.raises(InvalidArchive, match="bad workflow id"):
        client.restore(archive)
    assert len(client.list()) == 1


def test_ids_may_hold_dots_among_other_characters():
    assert all(VALID_ID.fullmatch(id) for id in (".a", "a..", "a.b", "-.", "20260101-000000-0a1b2c3d"))
    assert not any(VALID_ID.fullmatch(id) for id in (".", "..", "....", ".\n", "a/b"))


def test_unknown_ids_are_a_store_error(client):
    for call in (client.status, client.archive, client.delete, client.terminate, client.resume, client.wait):
        with pytest.raises(WorkflowNotFound, match="^no workflow nope$") as raised:
            call("nope")
        assert isinstance(raised.value, StoreError) and isinstance(raised.value, LookupError)


def test_a_flow_mistake_is_refused_before_anything_is_stored(client):
    from littleflow import FlowError

    with pytest.raises(FlowError):
        client.submit("A → {")
    with pytest.raises(ValueError, match="retries"):
        client.submit("@flow f (- {retries: -1} -)\nA")
    assert client.list() == []


# -- no Redis -------------------------------------------------------------------------------


@pytest.fixture
def closed_url(own_redis_server) -> str:
    """The URL of a Redis that was there and is gone (its port now refuses connections)."""
    url = own_redis_server.url
    own_redis_server.kill()
    return url


def test_ping_on_a_closed_port_is_a_one_line_store_error(closed_url):
    with pytest.raises(StoreError) as caught:
        Client(closed_url).ping()
    message = str(caught.value)
    assert "\n" not in message and "cannot reach Redis" in message and closed_url in message


def test_ping_does_not_show_the_password(own_redis_server):
    port = own_redis_server.port
    own_redis_server.kill()
    with pytest.raises(StoreError) as caught:
        Client(f"redis://user:secret@127.0.0.1:{port}/0").ping()
    assert "secret" not in str(caught.value) and "user:***@" in str(caught.value)


CALLS = {
    "submit": lambda c: c.submit("A"),
    "status": lambda c: c.status("x"),
    "list": lambda c: c.list(),
    "wait": lambda c: c.wait("x"),
    "send": lambda c: c.send("e", {}),
    "terminate": lambda c: c.terminate("x"),
}


@pytest.mark.parametrize("call", CALLS, ids=list(CALLS))
def test_other_calls_on_a_closed_port_raise_a_one_line_connection_error(call, closed_url):
    """Only ping turns the failure into a StoreError; the rest let redis-py's ConnectionError through."""
    with pytest.raises((redis.ConnectionError, StoreError)) as caught:
        CALLS[call](Client(closed_url))
    assert isinstance(caught.value, redis.ConnectionError)
    message = str(caught.value)
    assert "\n" not in message and "Connection refused" in message


def test_a_client_is_made_without_connecting(closed_url):
    """Constructing a Client does not touch Redis (so the mistake shows on first use)."""
    Client(closed_url)
    Client(f"redis://127.0.0.1:{free_port()}/0")


def test_a_bad_url_is_a_one_line_store_error():
    with pytest.raises(StoreError) as caught:
        Client("http://not-redis")
    assert "\n" not in str(caught.value) and "not-redis" in str(caught.value)


@pytest.mark.parametrize(
    "bad, says",
    [
        ({"x": float("nan")}, "not a JSON number"),
        ([float("-inf")], "not a JSON number"),
        ({"x": {1, 2}}, "not JSON data"),
        ([[[]]] * 2, None),
    ],
)
def test_values_that_are_not_json_are_refused_before_anything_is_stored(client, bad, says, monkeypatch):
    from littleflow import values

    monkeypatch.setattr(values, "MAX_DEPTH", 2)  # (the depth limit, smaller)
    for call in (
        lambda: client.submit("A", bad),
        lambda: client.submit_many("A", [{}, bad]),
        lambda: client.send("go", bad),
    ):
        with pytest.raises(ValueError, match=says or "nested too deeply: more than 2 levels") as caught:
            call()
        assert "\n" not in str(caught.value)
    assert client.list() == [] and list(client.events()) == []
    cyclic: list = []
    cyclic.append(cyclic)
    with pytest.raises(ValueError, match="nested too deeply"):
        client.submit("A", cyclic)


def test_a_fresh_id_that_another_workflow_has_is_drawn_again_not_taken_for_ours(client, monkeypatch):
    """Two submissions given the same generated id (a collision of the random part): the second
    gets a new id and is stored, rather than being answered with the first workflow's."""
    from littleflow.redis import store

    drawn = iter(
        ["20261202-000000-aaaaaaaaaaaa", "20261202-000000-aaaaaaaaaaaa", "20261202-000000-bbbbbbbbbbbb"]
    )
    monkeypatch.setattr(store, "new_id", lambda: next(drawn))
    first = client.submit("A", {"n": 1})
    second = client.submit("A", {"n": 2})
    assert (first, second) == ("20261202-000000-aaaaaaaaaaaa", "20261202-000000-bbbbbbbbbbbb")
    assert client.status(second)["input"] == {"n": 2} and client.status(first)["input"] == {"n": 1}
