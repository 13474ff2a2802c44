"""Schedules with real processes: the `littleflow schedule` commands against a real Redis,
their one-line errors, and engines SIGKILLed and restarted around the ticks of an
`--every 1s` schedule: every tick makes exactly one workflow."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rediscluster import on_server_and_cluster
from test_cli_redis import ID, Shell, base_env, one_line

from littleflow.redis.client import Client
from littleflow.redis.schedules import Schedules


@pytest.fixture
def shell(tmp_path: Path, redis_url: str) -> Shell:
    (tmp_path / "a.flow").write_text("@flow ticking\nA\n")
    (tmp_path / "nightly.flow").write_text(
        '@flow nightly (- schedule: {cron: "0 2 * * *", timezone: Europe/Paris, catchup: skip} -)\nA\n'
    )
    return Shell(tmp_path, base_env(tmp_path, redis_url))


@on_server_and_cluster
def test_the_schedule_commands(shell, redis_url):
    added = shell(
        "schedule", "add", "often", "a.flow", "--every", "1h", "--input", '{"n": 1}', "--overlap", "skip"
    )
    assert added.returncode == 0 and added.stdout.startswith("schedule often: every 1h, next at "), (
        added.stderr
    )
    shown = shell.json("schedule", "add", "nightly", "nightly.flow")
    assert (shown["cron"], shown["timezone"], shown["catchup"]) == ("0 2 * * *", "Europe/Paris", "skip")
    assert [s["name"] for s in shell.json("schedule", "list")] == ["nightly", "often"]
    listed = shell("schedule", "list").stdout.splitlines()
    assert listed[0].split() == ["schedule", "flow", "when", "next", "last", "run"]
    assert "cron 0 2 * * * (Europe/Paris)" in listed[1]
    id = shell("schedule", "run", "often").stdout.strip()
    assert ID.fullmatch(id)
    document = shell.json("status", id)
    assert (
        document["schedule"] == "often"
        and isinstance(document["tick"], int)
        and document["input"] == {"n": 1}
    )
    assert [w["id"] for w in shell.json("list", "--schedule", "often")["workflows"]] == [id]
    assert shell.json("list", "--schedule", "nightly")["workflows"] == []
    show = shell("schedule", "show", "often").stdout
    assert "overlap   skip" in show and id in show and "(run now)" in show
    assert len(shell.json("schedule", "show", "nightly")["ticks"]) == 5
    assert shell("schedule", "pause", "often").stdout.strip() == "schedule often: paused"
    assert shell("schedule", "resume", "often").stdout.startswith("schedule often: active, next at ")
    assert shell("schedule", "delete", "often").stdout.strip() == "schedule often: deleted"
    assert [s["name"] for s in shell.json("schedule", "list")] == ["nightly"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["add", "s", "a.flow", "--cron", "0 2 * *"],
            "bad cron '0 2 * *': 5 fields (minute hour day month weekday), or 6 with the second first",
        ),
        (
            ["add", "s", "a.flow", "--cron", "0 2 * * *", "--timezone", "Mars/Olympus"],
            "unknown time zone 'Mars/Olympus' (an IANA name like Europe/Paris or UTC)",
        ),
        (["add", "s", "a.flow", "--every", "soon"], 'bad duration "soon"'),
        (
            ["add", "s", "a.flow"],
            "schedule s: give --cron EXPR or --every DURATION (the flow has no schedule option)",
        ),
        (
            ["add", "s", "a.flow", "--cron", "* * * * *", "--every", "1s"],
            "a schedule needs --cron EXPR or --every",
        ),
        (["add", "no/slash", "a.flow", "--every", "1s"], "bad schedule name 'no/slash'"),
        (["show", "nothing"], "no schedule nothing"),
        (["pause", "nothing"], "no schedule nothing"),
        (["run", "nothing"], "no schedule nothing"),
        (["delete", "nothing"], "no schedule nothing"),
    ],
)
def test_one_line_errors(shell, args, message):
    result = shell("schedule", *args)
    assert result.returncode == 2
    assert one_line(result.stderr).startswith(f"littleflow: error: {message}")


def test_a_flow_error_points_at_its_place(shell, tmp_path):
    (tmp_path / "bad.flow").write_text('@flow x (- schedule: {cron: "0 2 * *"} -)\nA\n')
    result = shell("schedule", "add", "s", "bad.flow")
    assert result.returncode == 2 and "bad.flow:1:12: error: bad cron '0 2 * *'" in result.stderr


def engine(shell: Shell, log: Path) -> subprocess.Popen:
    with open(log, "ab") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "littleflow", "engine", "--claim-idle", "0.5"],
            cwd=shell.cwd,
            env=shell.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


@on_server_and_cluster
def test_engines_sigkilled_around_ticks_make_one_workflow_per_tick(shell, redis_url, tmp_path):
    rng = random.Random(14)
    assert shell("schedule", "add", "beat", "a.flow", "--every", "1s", "--catchup", "all").returncode == 0
    log = tmp_path / "engines.log"
    engines = [engine(shell, log), engine(shell, log)]
    try:
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            time.sleep(rng.uniform(0.2, 0.9))
            victim = rng.randrange(len(engines))
            engines[victim].kill()  # SIGKILL: mid-tick, perhaps
            engines[victim].wait(10)
            if rng.random() < 0.25:  # and now and then no engine at all for a while
                other = engines[1 - victim]
                other.kill()
                other.wait(10)
                time.sleep(rng.uniform(1.0, 2.0))
                engines[1 - victim] = engine(shell, log)
            engines[victim] = engine(shell, log)
        for process in engines:
            process.kill()
            process.wait(10)
        stopped = time.time()
        engines = [engine(shell, log)]  # one more catches up the ticks missed
        client = Client(redis_url)
        schedules = Schedules(client.store)
        give_up = time.monotonic() + 30
        while schedules.get("beat")["next"] <= stopped:
            assert time.monotonic() < give_up, log.read_text()[-3000:]
            time.sleep(0.1)
        schedules.pause("beat")
        time.sleep(0.5)  # (a tick being fired as it was paused ends)
        ids = [w["id"] for w in client.list(schedule="beat")]
        pipe = client.redis.pipeline(transaction=False)
        for id in ids:
            pipe.hget(client.keys.workflow(id), "tick")
        ticks = sorted(int(tick) for tick in pipe.execute())
        client.redis.close()
    finally:
        for process in engines:
            process.kill()
            process.wait(10)
    assert len(ticks) == len(set(ticks)), "a tick made more than one workflow"
    assert ticks == list(range(ticks[0], ticks[-1] + 1)), "a tick was lost"
    assert ticks[-1] >= stopped - 1 and len(ticks) >= 9
