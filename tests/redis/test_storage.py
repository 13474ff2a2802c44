"""What a workflow costs Redis (issue #12, bounded storage): a finished three-task workflow's
own keys fit in 2 KiB, and a flow is stored once, for as long as a workflow runs it."""

from __future__ import annotations

import json

import pytest

from littleflow import compile_flow
from littleflow.redis import WorkflowExists
from littleflow.tasks import Registry

FLOW = "A → A → A"


def registry() -> Registry:
    found = Registry()
    found.add("A", lambda input: input)
    return found


def own_keys(raw, id: str) -> dict[str, int]:
    """MEMORY USAGE of every key with ``id`` in its name."""
    return {key: raw.memory_usage(key, samples=0) for key in raw.scan_iter(f"*{id}*")}


def flows(raw, client) -> list[str]:
    return list(raw.scan_iter(client.keys.flow("*")))


def test_a_finished_three_task_workflow_keeps_within_2_kib(started, client, raw):
    started.services_on(tasks=registry())
    ids = client.submit_many(FLOW, [{"n": n} for n in range(20)])
    for id in ids:
        assert client.wait(id, timeout=20)["state"] == "finished"
    sizes = own_keys(raw, ids[10])
    assert sizes and sum(sizes.values()) <= 2048, sizes
    assert len(flows(raw, client)) == 1  # (twenty workflows, one flow)


def test_a_flow_is_stored_once_and_goes_with_its_last_workflow(started, client, raw):
    started.services_on(tasks=registry())
    first, second = client.submit_many(FLOW, [1, 2])
    other = client.submit("A", 3)
    for id in (first, second, other):
        client.wait(id, timeout=20)
    assert len(flows(raw, client)) == 2
    client.delete(first)
    assert len(flows(raw, client)) == 2
    assert client.definition(second)["text"] == FLOW
    archive = client.archive(second)
    client.delete(second)
    assert len(flows(raw, client)) == 1
    client.restore(archive)  # (the flow is stored again)
    assert len(flows(raw, client)) == 2
    assert client.definition(second)["flow"] == archive["flow"]
    client.restore(archive, replace=True)  # (replaced by itself: still one workflow of it)
    client.delete(second)
    client.delete(other)
    assert flows(raw, client) == []


def test_the_same_flow_with_another_limit_or_base_is_another_definition(started, client, raw):
    started.services_on(tasks=registry())
    ids = [
        client.submit(FLOW, 1),
        client.submit(FLOW, 2, limit=50),
        client.submit(FLOW, 3, base="file:///tmp/"),
    ]
    for id in ids:
        client.wait(id, timeout=20)
    assert len(flows(raw, client)) == 3
    assert [client.archive(id)["limit"] for id in ids][1] == "50"
    assert client.archive(ids[2])["base"] == "file:///tmp/"


def test_task_info_keeps_no_nulls_and_the_log_short_entries(started, client, raw):
    started.services_on(tasks=registry())
    id = client.submit(FLOW, {"n": 1})
    client.wait(id, timeout=20)
    infos = [text for field, text in raw.hgetall(client.keys.task_info(id)).items() if "|" in field]
    assert len(infos) == 3
    for text in infos:
        assert ": " not in text and "null" not in text
        assert json.loads(text)["status"] == "done"
    log = client.archive(id)["log"]
    assert [entry["kind"] for entry in log] == ["submitted", "finished"]
    assert stream_id(log[0]["id"]) < stream_id(log[1]["id"])


def stream_id(text: str) -> tuple[int, int]:
    ms, seq = text.split("-")
    return int(ms), int(seq)


def test_a_long_log_keeps_its_latest_entries(started, client):
    started.services_on(tasks=registry())
    id = client.submit(FLOW, 1)
    client.wait(id, timeout=20)
    archive = client.archive(id)
    archive["log"] = [{"id": f"{1_700_000_000_000 + n}-0", "kind": "note", "n": str(n)} for n in range(5000)]
    client.delete(id)
    client.restore(archive)
    log = client.archive(id)["log"]
    assert 500 < len(log) < 5000
    assert log[-2] == archive["log"][-1] and log[-1]["kind"] == "restored"
    assert [stream_id(entry["id"]) for entry in log] == sorted({stream_id(entry["id"]) for entry in log})


def defines(commit: dict) -> bool:
    """Whether a creation's commit brings its flow's shared definition."""
    return "fields" in json.loads(commit["args"][3])["flow"]


def test_a_batch_sends_its_flow_once_and_a_creation_that_wrote_nothing_leaves_none_without_it(
    started, client, raw
):
    started.services_on(tasks=registry())
    taken = client.submit("A", 0)  # an id in use, by another flow
    flow, store = compile_flow(FLOW), client.store
    sent = []
    commit = store.commit_call
    store.commit_call = lambda *args, **kwargs: sent.append(commit(*args, **kwargs)) or sent[-1]
    fresh = [store.new_id() for _ in range(3)]
    with pytest.raises(WorkflowExists):  # the first, which was to bring the definition, wrote nothing
        store.create_many(flow, [1, 2, 3, 4], text=FLOW, ids=[taken, *fresh])
    assert [defines(call) for call in sent] == [True, False, False, False, True, True, True]
    for id in fresh:  # the others were created again, with it
        assert client.wait(id, timeout=20)["state"] == "finished"
        assert client.definition(id)["text"] == FLOW
    (shared,) = [key for key in flows(raw, client) if raw.hget(key, "text") == FLOW]
    assert raw.hget(shared, "refs") == "3"

    sent.clear()
    ids = [run.id for run in store.create_many(flow, [5, 6, 7], text=FLOW)]
    assert [defines(call) for call in sent] == [True, False, False]  # one per partition
    for id in ids:
        assert client.wait(id, timeout=20)["output"] is not None
    assert raw.hget(shared, "refs") == "6"
