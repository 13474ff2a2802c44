"""A workflow's state on Redis: written whole now and then, and between those times only the
ends each step applied, appended to its journal — so a step costs the same whatever the
workflow's size. Reading it back (any engine, any client) replays the journal."""

from __future__ import annotations

import json

import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rediscluster import any_client, on_server_and_cluster

from littleflow.redis.connection import connect
from littleflow.redis.engine import EngineProcess
from littleflow.redis.protocol import EndTask, Keys, StartTask
from littleflow.redis.store import JOURNAL_MIN, Store

pytestmark = on_server_and_cluster


def queued(raw: redis.Redis, seen: set[tuple[str, str]], keys: Keys, id: str) -> list[tuple[str, StartTask]]:
    """The start messages of workflow ``id`` sent since last time (``seen``: the (stream, id)
    already returned)."""
    found = []
    for stream in raw.scan_iter(keys.of(id).stream("*"), _type="stream"):
        for message_id, fields in raw.xrange(stream):
            if (stream, message_id) not in seen and fields["workflow"] == id:
                seen.add((stream, message_id))
                found.append((message_id, StartTask.parse(fields)))
    # (starts sent in one step to different streams may have the same id: the task id breaks the
    # tie, not the order SCAN happens to give the streams in)
    return sorted(found, key=lambda pair: (*map(int, pair[0].split("-")), pair[1].task))


def end(raw: redis.Redis, start: StartTask, output=None, error: str | None = None, *, keys: Keys) -> None:
    status = "failed" if error else "done"
    raw.xadd(
        keys.of(start.workflow).ends,
        EndTask(start.workflow, start.task, start.seq, status, output, error).fields(),
    )


def test_a_step_appends_to_the_journal_and_the_whole_state_is_written_once_it_outgrows_it(redis_url):
    raw = any_client(redis_url, decode_responses=True)
    store = Store(connect(redis_url))
    engine = EngineProcess(store, connect(redis_url, decode=False))
    engine.join()
    keys = store.keys
    id = Store(connect(redis_url)).create(store_flow(300), {"pad": "x" * 100}).id
    seen: set[tuple[str, str]] = set()
    writes, journal_lengths = 0, []
    whole = raw.hget(keys.workflow(id), "run")
    for _ in range(300):
        ((_, start),) = queued(raw, seen, keys, id)
        end(raw, start, {"pad": "x" * 100}, keys=keys)
        engine.step(block=0)
        now = raw.hget(keys.workflow(id), "run")
        writes += now != whole
        whole = now
        journal_lengths.append(raw.llen(keys.journal(id)))
        kept = engine._runs.get(id)  # (an engine keeps no run that ended)
        loaded = store.load(id).state
        assert loaded.to_json() == kept.state.to_json() if kept else loaded.status == "finished"
    state = json.loads(raw.hget(keys.workflow(id), "run"))["state"]
    assert state["status"] == "finished"  # the last step writes the whole state: nothing to replay
    assert raw.exists(keys.journal(id)) == 0
    assert 2 <= writes <= 12  # (300 steps; the state outgrows the journal's bound a few times)
    assert max(journal_lengths) * 130 <= 2 * max(JOURNAL_MIN, len(whole))


def store_flow(length: int):
    from littleflow.local import load_workflow

    return load_workflow(" → ".join(["T"] * length))[0]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=st.integers(0, 6), parallelism=st.integers(1, 4), data=st.data())
def test_any_order_and_batching_of_ends_reads_back_as_the_engine_has_it(redis_url, items, parallelism, data):
    """Ends in any order and in batches of any size, some failing: after every step, the
    state read back (whole state + journal) is the engine's own."""
    raw = any_client(redis_url, decode_responses=True)
    raw.flushall()
    store = Store(connect(redis_url))
    engine = EngineProcess(store, connect(redis_url, decode=False), parallelism=parallelism)
    engine.join()
    keys = store.keys
    from littleflow.local import load_workflow

    flow = load_workflow("A → * B → { C  D } → E")[0]
    id = store.create(flow, {}).id
    seen: set[tuple[str, str]] = set()
    waiting = [start for _, start in queued(raw, seen, keys, id)]
    while waiting:
        batch = data.draw(
            st.lists(st.sampled_from(waiting), min_size=1, max_size=len(waiting), unique_by=id_of)
        )
        for start in batch:
            waiting.remove(start)
            if start.name == "A":
                end(raw, start, list(range(items)), keys=keys)
            elif start.name == "C" and data.draw(st.booleans(), label="C fails"):
                end(raw, start, error="no", keys=keys)
            else:
                end(raw, start, {start.name: start.task}, keys=keys)
        engine.step(block=0)
        loaded, kept = Store(connect(redis_url)).load(id), engine._runs.get(id)  # (none kept once it ended)
        assert loaded.blob() == kept.blob() if kept else not loaded.state.running and loaded.seqs == {}
        assert len(loaded.seqs) <= parallelism
        waiting += [start for _, start in queued(raw, seen, keys, id)]
    assert store.load(id).state.status in ("finished", "failed")


def id_of(start: StartTask) -> tuple[str, int]:
    return (start.task, start.seq)
