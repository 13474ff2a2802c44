"""Retention (redis/retention.py): ended workflows go once their retention has passed,
with every key and index entry of theirs, archived first when asked; running ones never."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time

from click.testing import CliRunner

from littleflow.cli import main
from littleflow.redis.client import Client
from littleflow.redis.retention import Sweeper
from littleflow.tasks import Registry

FLOW = "A → A → A"


def registry() -> Registry:
    found = Registry()
    found.add("A", lambda input: input)
    found.add("B", lambda input: (_ for _ in ()).throw(RuntimeError("no")))
    return found


def traces(raw, id: str) -> list[str]:
    """Every key that holds ``id`` in its name or as a member (of a set, sorted set or list)."""
    found = [key for key in raw.scan_iter(f"*{id}*")]
    for key in raw.scan_iter("*"):
        kind = raw.type(key)
        if kind == "zset" and raw.zscore(key, id) is not None or kind == "set" and raw.sismember(key, id):
            found.append(key)
    return found


def ended(client: Client, count: int, flow: str = FLOW) -> list[str]:
    ids = client.submit_many(flow, [{"n": n} for n in range(count)])
    for id in ids:
        client.wait(id, timeout=20)
    return ids


def test_the_engine_removes_what_ended_longer_ago_than_the_retention_and_never_what_runs(
    started, client, raw, until
):
    services = started.services_on(tasks=registry(), retention=1.0)
    sweepers = [group.sweeper for group in services.engines[0].groups()]
    for sweeper in sweepers:
        sweeper.every = 0.05
    running = client.submit("A → later:b", {})  # (nobody serves later:b)
    done = [*ended(client, 3), client.submit("A → B", {})]
    client.wait(done[-1], timeout=20)
    assert client.status(done[-1])["state"] == "failed"
    client.terminate(terminated := client.submit("later:b", {}))
    until(
        lambda: [w["id"] for w in client.list()] == [running], timeout=15, what="the ended workflows removed"
    )
    for id in [*done, terminated]:
        assert traces(raw, id) == []
    assert len(list(raw.scan_iter(client.keys.flow("*")))) == 1  # the running one's flow, shared no more
    time.sleep(1.5)
    assert client.status(running)["state"] == "running"
    assert sum(sweeper.removed for sweeper in sweepers) == 5


def test_zero_keeps_them_for_ever(started, client):
    started.services_on(tasks=registry(), retention=0)
    ids = ended(client, 2)
    assert Sweeper(client.store, retention=0).sweep(now=time.time() + 10**9) == 0
    assert {w["id"] for w in client.list()} == set(ids)


def test_a_sweep_removes_only_what_ended_before_its_cutoff(started, client):
    started.services_on(tasks=registry())
    first = ended(client, 2)
    time.sleep(0.05)
    cutoff = time.time()
    later = ended(client, 2)
    sweeper = Sweeper(client.store, retention=100)
    assert sweeper.sweep(now=cutoff + 100) == 2
    assert {w["id"] for w in client.list()} == set(later)
    assert sweeper.sweep(now=cutoff + 100) == 0
    assert all(client.redis.exists(client.keys.workflow(id)) == 0 for id in first)


def test_archived_first_to_a_directory_and_restored_from_there(started, client, tmp_path):
    started.services_on(tasks=registry())
    ids = ended(client, 2)
    before = {id: client.status(id) for id in ids}
    archives = tmp_path / "archives"
    archives.mkdir()
    assert Sweeper(client.store, retention=60, archive_dir=archives).sweep(now=time.time() + 61) == 2
    assert client.list() == []
    for id in ids:
        path = archives / f"{id}.json"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert client.restore(json.loads(path.read_text())) == id
        after = client.status(id)
        assert (after["state"], after["output"], after["created"]) == (
            before[id]["state"],
            before[id]["output"],
            before[id]["created"],
        )
        assert [entry["kind"] for entry in client.archive(id)["log"]] == ["submitted", "finished", "restored"]
    assert sorted(os.listdir(archives)) == sorted(f"{id}.json" for id in ids)  # (no temporary files left)


def test_a_workflow_that_cannot_be_archived_is_kept(started, client, tmp_path):
    started.services_on(tasks=registry())
    ids = ended(client, 1)
    missing = tmp_path / "not-there"
    assert Sweeper(client.store, retention=1, archive_dir=missing).sweep(now=time.time() + 2) == 0
    assert [w["id"] for w in client.list()] == ids


def test_two_engines_sweeping_at_once_remove_each_workflow_once(started, client, raw, redis_url, tmp_path):
    services = started.services_on(tasks=registry())
    ids = ended(client, 120)
    started.stop(services)
    clients = [Client(redis_url), Client(redis_url)]
    sweepers = [Sweeper(each.store, retention=10, archive_dir=tmp_path, batch=7) for each in clients]
    errors: list[BaseException] = []

    def sweep(sweeper: Sweeper) -> None:
        try:
            while sweeper.sweep(now=time.time() + 11) or raw.zcard(client.keys.ended):
                pass
        except BaseException as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=sweep, args=(sweeper,)) for sweeper in sweepers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert sum(sweeper.removed for sweeper in sweepers) == 120
    assert client.list() == [] and not list(raw.scan_iter(client.keys.flow("*")))
    assert sorted(os.listdir(tmp_path)) == sorted(f"{id}.json" for id in ids)
    for id in ids[:3]:
        client.restore(json.loads((tmp_path / f"{id}.json").read_text()))
        assert client.status(id)["state"] == "finished"
    for each in clients:
        each.redis.close()


def test_the_options_refuse_a_bad_duration_in_one_line():
    for command in ("engine", "serve"):
        result = CliRunner().invoke(main, [command, "--retention", "soon"])
        assert result.exit_code == 2
        assert "Invalid value for '--retention': bad duration \"soon\"" in result.output
        assert "Traceback" not in result.output


def test_an_engine_process_with_retention_and_an_archive_directory(
    started, client, redis_url, tmp_path, until
):
    started.services_on(tasks=registry(), engine=False)
    archives = tmp_path / "archives" / "new"  # (made by the engine, for its user alone)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LITTLEFLOW_")}
    engine = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "littleflow",
            "engine",
            "--redis",
            redis_url,
            "--retention",
            "1s",
            "--archive-dir",
            str(archives),
        ],
        env={**env, "LITTLEFLOW_HOME": str(tmp_path / "home")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ids = ended(client, 2)
        until(lambda: client.list() == [], timeout=20, what="the ended workflows removed")
    finally:
        engine.send_signal(signal.SIGTERM)
        _, stderr = engine.communicate(timeout=15)
    assert engine.returncode == 0 and "Traceback" not in stderr, stderr
    assert stat.S_IMODE(archives.stat().st_mode) == 0o700
    for id in ids:
        assert client.restore(json.loads((archives / f"{id}.json").read_text())) == id
        assert client.status(id)["state"] == "finished"


def test_a_workflow_resumed_after_the_sweep_read_it_is_kept(started, client):
    """The sweep reads the ended workflows, then removes them: one resumed in between (it
    runs again) is kept, and one still ended goes."""
    services = started.services_on(tasks=registry())
    failed, finished = client.submit("B"), client.submit("A")
    assert client.wait(failed, timeout=20)["state"] == "failed"
    assert client.wait(finished, timeout=20)["state"] == "finished"
    started.stop(services)  # (no engine: the resumed one stays running)
    client.resume(failed)
    assert client.store.forget([failed, finished], ended_before=time.time() + 60) == 1
    assert client.status(failed)["state"] == "running"
    assert [w["id"] for w in client.list()] == [failed]
