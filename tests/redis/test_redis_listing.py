"""The workflow list from indexes on a real Redis: every filter (state, flow name, id or name
prefix) and order, paging and counts, against a brute-force filter of every workflow; and
the indexes kept by each change, deletion, resume and restore."""

from __future__ import annotations

import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rediscluster import on_server_and_cluster

from littleflow import compile_flow
from littleflow.redis import listing
from littleflow.redis.store import STATES, StoreError
from littleflow.tasks import Registry


@pytest.fixture
def tasks():
    """A: echo; B: fails; hang: blocks until the test ends."""
    gate = threading.Event()
    registry = Registry()
    registry.add("A", lambda input: {"a": input})
    registry.add("B", lambda input: (_ for _ in ()).throw(RuntimeError("no")))
    registry.add("hang", lambda input: gate.wait(30) and {})
    yield registry
    gate.set()


@pytest.fixture
def system(started, tasks):
    return started.services_on(tasks=tasks)


def submit(client, text: str, id: str | None = None) -> str:
    return client.store.create(compile_flow(text), {}, text=text, id=id).id


@pytest.fixture
def population(system, client, until) -> list[str]:
    """Workflows of every state under names that share prefixes (and hold colons), some
    unnamed, some with ids of their own that begin as names do."""
    finished = [
        submit(client, "@flow alpha\nA"),
        submit(client, "@flow alphabet\nA", "alpha-1"),
        submit(client, "@flow a:b\nA"),
        submit(client, "A", "beta-7"),
    ]
    failed = [submit(client, "@flow alpha\nA → B"), submit(client, "@flow beta\nB", "alphabet-2")]
    running = [
        submit(client, "@flow beta\nnobody:serves"),
        submit(client, "@flow a\nnobody:serves", "a:b-3"),
        submit(client, "nobody:serves"),
        submit(client, "@flow a:b\nnobody:serves", "zz.top"),
    ]
    terminated = [submit(client, "@flow alpha\nhang"), submit(client, "@flow a\nhang", "b-1")]
    for id in finished + failed:
        client.wait(id, timeout=10)
    for id in terminated:
        until(lambda: client.status(id)["nodes"][1]["status"] == "running", what="hang running")
        client.terminate(id)
    more = [submit(client, "@flow alpha\nnobody:serves") for _ in range(3)]
    return finished + failed + running + terminated + more


def brute(client, state, name, search, newest):
    """The ids that match, in order, and the counts per state: from every workflow, filtered here."""
    rows = [
        w
        for w in client.list()
        if (name is None or w["name"] == name)
        and (not search or w["id"].startswith(search) or (w["name"] or "").startswith(search))
    ]
    counts = {each: sum(w["state"] == each for w in rows) for each in STATES}
    chosen = sorted(((w["created"], w["id"]) for w in rows if state in (None, w["state"])), reverse=newest)
    return [id for _, id in chosen], counts


def prefixes(ids: list[str]) -> list[str]:
    names = ["alpha", "alphabet", "a:b", "a", "beta"]
    return sorted({text[:n] for text in ids + names for n in (1, 3, 5, 40)} | {"zzz", "Alpha"})


def test_every_filter_and_order_answers_as_a_filter_of_every_workflow(population, client, monkeypatch):
    pool = prefixes(population)

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        state=st.sampled_from([None, *STATES]),
        name=st.sampled_from([None, "alpha", "alphabet", "a", "a:b", "beta", "nobody"]),
        search=st.one_of(st.none(), st.just(""), st.sampled_from(pool)),
        offset=st.integers(0, 20),
        count=st.one_of(st.none(), st.integers(0, 6)),
        newest=st.booleans(),
        few=st.sampled_from([0, 2, 2000]),
    )
    def check(state, name, search, offset, count, newest, few):
        monkeypatch.setattr(listing, "FEW", few)
        ids, counts = brute(client, state, name, search, newest)
        page = client.page(state, name, offset, count, search, newest)
        assert [w["id"] for w in page.workflows] == ids[offset : None if count is None else offset + count]
        assert page.total == len(ids)
        assert page.counts == counts

    check()


@on_server_and_cluster
def test_every_combination_of_filters_in_both_orders(population, client, monkeypatch):
    year = population[0][:4]
    for few in (0, 2000):  # (an id prefix walked, or read whole)
        monkeypatch.setattr(listing, "FEW", few)
        for search in (None, "alpha", "a", "a:", "b", "be", year, population[0], "zz", "nothing"):
            for name in (None, "alpha", "alphabet", "a", "a:b", "beta"):
                for state in (None, *STATES):
                    for newest in (False, True):
                        ids, counts = brute(client, state, name, search, newest)
                        page = client.page(state, name, 1, 3, search, newest)
                        assert ([w["id"] for w in page.workflows], page.total, page.counts) == (
                            ids[1:4],
                            len(ids),
                            counts,
                        ), (few, search, name, state, newest)


@pytest.mark.parametrize("walk, lots", [(20_000, 200_000), (1000, 200_000), (1000, 10)])
def test_a_broad_id_prefix_walks_the_time_index_slice_by_slice(client, monkeypatch, walk, lots):
    monkeypatch.setattr(listing, "WALK", walk)  # (how far a walk goes before the matches are read whole)
    monkeypatch.setattr(listing, "LOTS", lots)
    flow = compile_flow("@flow many\nnobody:serves")
    made = [run.id for run in client.store.create_many(flow, [{"n": n} for n in range(2300)])]
    odd = [
        submit(client, "@flow other\nA", f"{made[0][:4]}-mine-{n}") for n in range(3)
    ]  # (no engine: running)
    assert listing.FEW < len(made)
    year = made[0][:4]
    for offset, count, newest in [
        (0, 5, True),
        (995, 10, True),
        (1998, 10, False),
        (2290, 50, True),
        (2400, 5, False),
        (3, 0, True),
        (2296, 3, False),
    ]:
        ids, counts = brute(client, None, None, year, newest)
        page = client.page(offset=offset, count=count, search=year, newest=newest)
        assert [w["id"] for w in page.workflows] == ids[offset : offset + count]
        assert (page.total, page.counts) == (2303, counts)
    page = client.page("running", offset=2301, count=5, search=year, newest=False)
    assert [w["id"] for w in page.workflows] == [*odd[1:]]
    page = client.page(name="other", search=year, newest=True)  # the name's few, not the many ids
    assert [w["id"] for w in page.workflows] == odd[::-1] and page.total == 3
    assert client.page(name="many", search=made[7]).workflows[0]["id"] == made[7]


def indexed(client, id: str) -> set[str]:
    """The indexes that hold workflow ``id`` (of those its flow name and any state give)."""
    keys, name = client.keys.of(id), client.redis.hget(client.keys.workflow(id), "name") or ""
    candidates = [keys.workflows, keys.ended, *map(keys.by_state, STATES), *map(keys.ids, STATES)]
    if name:
        candidates += [keys.by_name(name), *(keys.by_name(name, state) for state in STATES)]
    return {key for key in candidates if client.redis.zscore(key, id) is not None}


@on_server_and_cluster
def test_each_state_keeps_its_indexes_and_deletion_takes_the_workflow_out_of_all(system, client):
    id = submit(client, "@flow solo:one\nA")
    keys = client.keys.of(id)  # (the indexes of its partition)
    client.wait(id, timeout=10)
    assert indexed(client, id) == {
        keys.workflows,
        keys.ended,
        keys.by_state("finished"),
        keys.ids("finished"),
        keys.by_name("solo:one"),
        keys.by_name("solo:one", "finished"),
    }
    assert client.redis.zrangebylex(keys.names, "[solo", "(solp") == ["solo:one"]
    client.delete(id)
    assert not any(
        client.redis.zscore(key, id)
        for key in [
            keys.workflows,
            keys.ended,
            *map(keys.by_state, STATES),
            *map(keys.ids, STATES),
            keys.by_name("solo:one"),
            *(keys.by_name("solo:one", state) for state in STATES),
        ]
    )
    assert client.redis.zrangebylex(keys.names, "[solo", "(solp") == []  # its last workflow gone
    assert client.page(search="solo") == ([], 0, dict.fromkeys(STATES, 0))
    assert client.list(name="solo:one") == []


def test_forget_removes_every_key_releases_the_key_and_tells_the_events(system, client):
    first = client.submit("@flow kept\nA", key="k-1")
    other = client.submit("@flow kept\nA")
    client.wait(first, timeout=10)
    client.wait(other, timeout=10)
    before = len(list(client.events()))
    assert client.store.forget([first, "no-such-one", "bad:id", first]) == 1
    keys = client.keys.of(first)
    assert not client.redis.exists(keys.workflow(first), keys.journal(first), keys.waits(first))
    assert client.redis.get(keys.idempotency("k-1")) is None
    assert client.submit("@flow kept\nB", key="k-1") != first  # the key starts a new one
    deleted = [e for e in list(client.events())[before:] if e.get("state") == "deleted"]
    assert [e["workflow"] for e in deleted] == [first]
    assert client.redis.zrangebylex(keys.names, "[kept", "[kept") == ["kept"]  # (the others still run it)
    assert client.store.forget([]) == 0


def test_a_running_workflow_is_not_deleted(system, client, until):
    id = submit(client, "@flow busy\nhang")
    with pytest.raises(StoreError, match="running; terminate it first"):
        client.delete(id)
    assert [w["id"] for w in client.list(name="busy")] == [id]


@on_server_and_cluster
def test_ended_holds_when_a_workflow_ended_and_resume_takes_it_out(system, client, until):
    id = submit(client, "@flow later\nhang")
    keys = client.keys.of(id)
    until(lambda: client.status(id)["nodes"][1]["status"] == "running", what="hang running")
    assert client.redis.zscore(keys.ended, id) is None
    ended = client.terminate(id)["updated"]
    assert client.redis.zscore(keys.ended, id) == pytest.approx(ended, abs=0.5)
    client.resume(id)
    assert client.redis.zscore(keys.ended, id) is None
    assert [w["id"] for w in client.list(state="running", name="later")] == [id]
    assert client.page(name="later").counts == {**dict.fromkeys(STATES, 0), "running": 1}


def test_restore_under_another_flow_name_leaves_nothing_of_the_old_one(system, client):
    keys = client.keys.of("same-id")
    old = submit(client, "@flow before\nA", "same-id")
    client.wait(old, timeout=10)
    archive = client.archive(old)
    client.delete(old)
    new = submit(client, "@flow after\nA", "same-id")
    client.wait(new, timeout=10)
    client.restore(archive, replace=True)
    assert indexed(client, "same-id") == {
        keys.workflows,
        keys.ended,
        keys.by_state("finished"),
        keys.ids("finished"),
        keys.by_name("before"),
        keys.by_name("before", "finished"),
    }
    assert client.redis.zscore(keys.by_name("after"), "same-id") is None
    assert [w["id"] for w in client.list(search="aft")] == [] and client.page(search="bef").total == 1
