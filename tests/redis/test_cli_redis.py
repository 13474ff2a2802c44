"""The littleflow commands of a system on Redis (cli_redis.py), run as real processes
against a real redis-server: serve, engine, worker, submit, status, list, terminate,
resume, send, events, archive, delete, restore, workers, dead, logs."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from rediscluster import on_server_and_cluster
from support import need_redis_server, readable

from littleflow.redis.client import DEFAULT_URL, redis_url

COMMAND = [sys.executable, "-m", "littleflow"]
ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{12}")

TASKS = """
def double(input):
    return {"n": input["n"] * 2}

def boom(input):
    print("about to go boom")
    raise RuntimeError("boom")

def echo(input):
    print(f"echo {input}")
    return input
"""

FLOWS = {
    "double.flow": "double\n",
    "boom.flow": "double → boom\n",
    "wait.flow": 'wait:event ({"event": "go"}) → echo\n',
}


def base_env(tmp_path: Path, url: str | None) -> dict[str, str]:
    """The environment of the commands: this test's Redis, and a home of its own (so that
    no redis.url of the machine's is ever read)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LITTLEFLOW_")}
    env["LITTLEFLOW_HOME"] = str(tmp_path / "home")
    if url is not None:
        env["LITTLEFLOW_REDIS_URL"] = url
    return env


class Shell:
    """Runs littleflow commands in ``cwd`` with ``env``."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd, self.env = cwd, env

    def __call__(
        self, *args: str, stdin: str | None = None, timeout: float = 20
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*COMMAND, *args],
            input=stdin,
            capture_output=True,
            text=True,
            cwd=self.cwd,
            env=self.env,
            timeout=timeout,
        )

    def start(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            [*COMMAND, *args],
            cwd=self.cwd,
            env=self.env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def json(self, *args: str, stdin: str | None = None) -> Any:
        result = self(*args, "--json", stdin=stdin)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def submit(self, flow: str, input: str | None = None) -> str:
        result = self("submit", flow, *(["--input", input] if input else []))
        assert result.returncode == 0, result.stderr
        assert ID.fullmatch(result.stdout.strip()), result.stdout
        return result.stdout.strip()

    def status_until(self, id: str, ready: Callable[[dict], bool], timeout: float = 20) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            document = self.json("status", id)
            if ready(document):
                return document
            assert time.monotonic() < deadline, f"gave up waiting: {document}"
            time.sleep(0.05)


def one_line(stderr: str) -> str:
    """The single line an error prints (and no traceback)."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def started(process: subprocess.Popen, marker: str, timeout: float = 20) -> str:
    """Read standard error up to the line that starts with ``marker`` (the process is ready
    then: it handles SIGTERM) and return what was read."""
    seen = b""
    deadline = time.monotonic() + timeout
    fd = process.stderr.fileno()  # read unbuffered: communicate() later reads the rest from the same pipe
    while not any(
        line.startswith(marker.encode()) for line in seen.splitlines(keepends=True) if line[-1:] == b"\n"
    ):
        assert time.monotonic() < deadline, f"not ready after {timeout} s: {seen.decode()}"
        if readable(fd, 0.1):
            chunk = os.read(fd, 65536)
            assert chunk, f"ended before it was ready: {seen.decode()}"
            seen += chunk
    return seen.decode()


def stop(process: subprocess.Popen, timeout: float = 15, before: str = "") -> tuple[int, str]:
    """SIGTERM, then its exit status and standard error (after ``before``, what was read of it)."""
    process.send_signal(signal.SIGTERM)
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
        pytest.fail(f"still running {timeout} s after SIGTERM: {stderr}")
    return process.returncode, before + stderr


def project(tmp_path: Path) -> Path:
    (tmp_path / "tasks_for_cli.py").write_text(textwrap.dedent(TASKS))
    for name, text in FLOWS.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


@pytest.fixture
def lf(tmp_path: Path, redis_url: str) -> Iterator[Shell]:
    """Commands on the test's Redis, with `littleflow serve --tasks tasks_for_cli.py` running."""
    shell = Shell(project(tmp_path), base_env(tmp_path, redis_url))
    server = shell.start("serve", "--tasks", "tasks_for_cli.py")
    before = ""
    try:
        before = started(server, "littleflow: an engine")
        yield shell
    finally:
        code, stderr = stop(server, before=before)
        assert code == 0, stderr
        assert "Traceback" not in stderr, stderr


def test_submit_prints_the_id_alone_and_status_follows_it_to_the_output(lf):
    id = lf.submit("double.flow", '{"n": 21}')
    document = lf.json("status", id)
    assert document["id"] == id and document["state"] in ("running", "finished")
    assert {
        "id",
        "name",
        "state",
        "input",
        "output",
        "error",
        "created",
        "updated",
        "nodes",
    } <= document.keys()
    document = lf.status_until(id, lambda d: d["state"] != "running")
    assert document["state"] == "finished" and document["output"] == {"n": 42}
    assert document["input"] == {"n": 21} and document["error"] is None
    assert [(n["label"], n["status"]) for n in document["nodes"]] == [
        ("START", "done"),
        ("double", "done"),
        ("END", "done"),
    ]
    readable = lf("status", id)
    assert readable.returncode == 0
    assert f"workflow  {id}" in readable.stdout and "state     finished" in readable.stdout
    assert re.search(r"1\s+double\s+done\s+1\s", readable.stdout), readable.stdout


def test_submit_wait_prints_the_output_as_run_does(lf):
    result = lf("submit", "double.flow", "--input", '{"n": 4}', "--wait")
    assert result.returncode == 0, result.stderr
    assert result.stdout == '{"n": 8}\n'
    assert re.fullmatch(r"littleflow: submitted \d{8}-\d{6}-[0-9a-f]{12}\n", result.stderr)
    quiet = lf("submit", "-", "--input", '{"n": 1}', "--wait", "--quiet", stdin="double")
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, '{"n": 2}\n', "")


def test_a_failing_task_exits_1_with_the_failure_lines(lf):
    result = lf("submit", "boom.flow", "--input", '{"n": 4}', "--wait", "--quiet")
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == "littleflow: flow failed: task boom at 1:10: RuntimeError: boom"
    assert lines[1] == '  input: {"n": 8}'
    assert "Traceback" not in result.stderr
    done = lf("submit", "double.flow", "--input", '{"n": 1}', "--wait")
    done_id = done.stderr.split()[-1]
    finished = lf.json("list", "--state", "finished")["workflows"]
    failed = lf.json("list", "--state", "failed")["workflows"]
    assert [s["id"] for s in finished] == [done_id]
    assert len(failed) == 1 and failed[0]["state"] == "failed"
    assert {s["id"] for s in lf.json("list")["workflows"]} == {done_id, failed[0]["id"]}
    table = lf("list")
    assert table.returncode == 0 and done_id in table.stdout and "failed" in table.stdout


def test_logs_prints_each_runs_lines_under_a_header(lf):
    lf("submit", "boom.flow", "--input", '{"n": 4}', "--wait", "--quiet")
    (failed,) = lf.json("list", "--state", "failed")["workflows"]
    shown = lf("logs", failed["id"])
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == [
        "── node 2 boom (attempt 1, failed)",
        "about to go boom",
        "── attempt 1 failed: RuntimeError: boom",
    ]
    assert lf("logs", failed["id"], "--node", "1").stdout == ""  # (double wrote nothing)
    (run,) = lf.json("logs", failed["id"])["runs"]
    assert (run["name"], run["lines"][0], run["status"]) == ("boom", "about to go boom", "failed")
    missing = lf("logs", "20260101-000000-000000000000")
    assert (missing.returncode, one_line(missing.stderr)) == (
        2,
        "littleflow: error: no workflow 20260101-000000-000000000000",
    )


def test_logs_follow_prints_lines_as_they_come_and_ends_with_the_workflow(lf):
    id = lf.submit("wait.flow", '{"x": 1}')
    follow = lf.start("logs", id, "--follow")
    lf.status_until(
        id, lambda d: any(n["name"] == "wait:event" and n["status"] == "running" for n in d["nodes"])
    )
    assert lf("send", "go", "--data", '{"a": 1}').returncode == 0
    out, err = follow.communicate(timeout=20)
    assert follow.returncode == 0, err
    assert out.splitlines()[1:] == ["echo {'a': 1}"] and out.startswith("── node 2 echo (attempt 1")


def test_list_searches_prefixes_of_ids_and_flow_names(lf):
    (lf.cwd / "nightly.flow").write_text("@flow Nightly\ndouble\n", encoding="utf-8")
    first, second = lf.submit("double.flow", '{"n": 1}'), lf.submit("nightly.flow", '{"n": 2}')
    assert [s["id"] for s in lf.json("list", "--search", first[:-1])["workflows"]] == [first]
    assert [s["id"] for s in lf.json("list", "--search", "Night")["workflows"]] == [second]
    assert lf.json("list", "--search", "nIGHT")["workflows"] == []
    assert lf.json("list", "--search", first[-8:])["workflows"] == []
    nothing = lf("list", "--search", "no such thing")
    assert (nothing.returncode, nothing.stdout) == (0, "")
    assert one_line(nothing.stderr) == "littleflow: no workflows matching 'no such thing'"


def test_list_limit_and_json_of_the_api_s_shape(lf):
    ids = [lf.submit("double.flow", f'{{"n": {n}}}') for n in range(3)]
    page = lf.json("list", "--limit", "2")
    assert set(page) == {"workflows", "offset", "limit", "total", "counts"}  # GET /workflows's answer
    assert [w["id"] for w in page["workflows"]] == ids[:2]
    assert (page["offset"], page["limit"], page["total"], sum(page["counts"].values())) == (0, 2, 3, 3)
    shown = lf("list", "--limit", "2")
    assert shown.returncode == 0 and ids[1] in shown.stdout and ids[2] not in shown.stdout
    assert one_line(shown.stderr) == "littleflow: the first 2 of 3 workflows (--limit)"
    assert lf.json("list")["limit"] == 100
    assert lf("list", "--limit", "0").returncode == 2


@on_server_and_cluster
def test_terminate_resume_and_send(lf):
    id = lf.submit("wait.flow")

    def waiting(document: dict) -> bool:
        node = document["nodes"][1]
        return node["status"] == "running" and node["note"] == "waiting for an event"

    lf.status_until(id, waiting)
    result = lf("terminate", id)
    assert (result.returncode, result.stdout) == (0, f"{id} terminated\n"), result.stderr
    assert lf.json("status", id)["state"] == "terminated"
    again = lf("terminate", id)
    assert again.returncode == 2
    assert one_line(again.stderr) == f"littleflow: error: workflow {id} is terminated, not running"
    resumed = lf.json("resume", id)
    assert resumed["state"] == "running"
    lf.status_until(id, waiting)
    sent = lf("send", "go", "--data", '{"a":1}')
    assert (sent.returncode, sent.stdout, sent.stderr) == (0, "", "1 task woken\n")
    document = lf.status_until(id, lambda d: d["state"] != "running")
    assert document["state"] == "finished" and document["output"] == {"a": 1}
    assert lf.json("send", "nobody-waits") == {"event": "nobody-waits", "ended": 0}

    events = [json.loads(line) for line in lf("events", "--json").stdout.splitlines()]
    assert [e["state"] for e in events if e.get("workflow") == id] == [
        "running",
        "terminated",
        "running",
        "finished",
    ]
    sent_events = [e for e in events if e["kind"] == "event"]
    assert [(e["event"], e["data"]) for e in sent_events] == [("go", {"a": 1}), ("nobody-waits", {})]
    assert all(isinstance(e["time"], float) and e["id"] for e in events)
    lines = lf("events").stdout.splitlines()
    assert len(lines) == len(events)
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}  event     event=go data=\{\"a\": 1\}", lines[-3]
    )


@on_server_and_cluster
def test_archive_delete_and_restore_bring_back_the_same_workflow(lf, tmp_path):
    result = lf("submit", "double.flow", "--input", '{"n": 3}', "--wait")
    id = result.stderr.split()[-1]
    before = lf.json("status", id)
    archive = lf("archive", id)
    assert archive.returncode == 0 and json.loads(archive.stdout)["id"] == id
    assert lf("archive", id, "-o", "saved.json").returncode == 0
    assert json.loads((tmp_path / "saved.json").read_text()) == json.loads(archive.stdout)
    running = lf("delete", id)
    assert (running.returncode, running.stdout) == (0, f"{id} deleted\n")
    assert lf("events").stdout.splitlines()[-1].endswith(f"  workflow  workflow={id} state=deleted")
    gone = lf("status", id)
    assert gone.returncode == 2 and one_line(gone.stderr) == f"littleflow: error: no workflow {id}"
    restored = lf("restore", "saved.json")
    assert (restored.returncode, restored.stdout) == (0, f"{id}\n"), restored.stderr
    assert lf.json("status", id) == before
    twice = lf("restore", "-", stdin=archive.stdout)
    assert twice.returncode == 2 and "exists" in one_line(twice.stderr)
    assert lf.json("restore", "-", "--replace", stdin=archive.stdout) == before
    bad = lf("restore", "-", stdin='{"format": "something else"}')
    assert bad.returncode == 2 and "not a littleflow archive" in one_line(bad.stderr)


def test_bad_values_and_damaged_archives_are_one_line_and_exit_2(lf, tmp_path):
    nan = lf("submit", "double.flow", "--input", '{"n": NaN}')
    assert nan.returncode == 2 and "NaN is not a JSON number" in one_line(nan.stderr)
    deep = lf("send", "go", "--data", "[" * 501 + "]" * 501)
    assert deep.returncode == 2 and one_line(deep.stderr) == (
        "littleflow: error: bad input in --data: the value is nested too deeply: more than 500 levels"
    )
    assert lf.json("list")["workflows"] == []
    id = lf.submit("double.flow", '{"n": 1}')
    archive = json.loads(lf("archive", id).stdout)
    archive["run"]["state"]["running"].append(["", 0, -1, {}])
    damaged = lf("restore", "-", "--replace", stdin=json.dumps(archive))
    assert damaged.returncode == 2 and "damaged archive" in one_line(damaged.stderr)
    bomb = lf("restore", "-", stdin="[" * 100_000 + "]" * 100_000)
    assert bomb.returncode == 2 and "not JSON" in one_line(bomb.stderr)
    infinite = lf("restore", "-", stdin='{"format": "littleflow-archive/1", "created": Infinity}')
    assert infinite.returncode == 2 and "not a JSON number" in one_line(infinite.stderr)
    assert [w["id"] for w in lf.json("list")["workflows"]] == [id]


@on_server_and_cluster
def test_workers_and_dead_letters(lf):
    lf("submit", "double.flow", "--input", '{"n": 1}', "--wait")
    workers = lf.json("workers")
    assert sorted((w["tasks"], w["namespaces"]) for w in workers) == [
        ([], ["http", "resource", "wait"]),
        (["boom", "double", "echo"], []),
    ]
    assert all(w["name"] and isinstance(w["seen"], float) for w in workers)
    assert lf.json("dead") == []
    assert "boom, double, echo" in lf("workers").stdout and "wait:*" in lf("workers").stdout


def test_mistakes_are_one_line_and_exit_2(lf):
    unknown = lf("status", "nope")
    assert unknown.returncode == 2 and one_line(unknown.stderr) == "littleflow: error: no workflow nope"
    options = lf("submit", "-", stdin="@flow f (- retrys: 1 -)\ndouble\n")
    assert options.returncode == 2 and "Traceback" not in options.stderr
    assert "<stdin>:1:12: error: unknown option 'retrys'" in options.stderr  # (a flow error: with its line)
    text = lf("submit", "-", stdin="double → {")
    assert text.returncode == 2 and "unclosed subflow" in text.stderr and "Traceback" not in text.stderr
    event = lf("send", "a|b")
    assert event.returncode == 2 and "event name" in one_line(event.stderr)
    data = lf("send", "go", "--data", "{nope")
    assert data.returncode == 2 and one_line(data.stderr).startswith("littleflow: error: bad input in --data")


def test_submit_require_workers_refuses_a_flow_whose_tasks_no_live_worker_serves(tmp_path, redis_url):
    lf = Shell(project(tmp_path), base_env(tmp_path, redis_url))
    refused = lf("submit", "double.flow", "--input", '{"n": 1}', "--wait", "--require-workers")
    assert refused.returncode == 2
    assert (
        one_line(refused.stderr) == "littleflow: error: no live worker serves task double; nothing submitted"
    )
    assert lf.json("list")["workflows"] == []
    worker = lf.start("worker", "--tasks", "tasks_for_cli.py")
    try:
        started(worker, "littleflow worker:")
        deadline = time.monotonic() + 10
        while not lf.json("workers"):  # (it says what it serves as its loop begins)
            assert time.monotonic() < deadline, "the worker never said what it serves"
            time.sleep(0.05)
        done = lf("submit", "double.flow", "--input", '{"n": 1}', "--require-workers", "--quiet")
        assert done.returncode == 0 and done.stderr == ""
    finally:
        stop(worker)


def test_submit_with_a_key_prints_the_first_workflow_s_id(tmp_path, redis_url):
    """No engine needed: the key is claimed as the workflow is stored."""
    lf = Shell(project(tmp_path), base_env(tmp_path, redis_url))
    args = ["submit", "double.flow", "--input", '{"n": 1}', "--key", "nightly-2026-12-02"]
    first, again = lf(*args), lf(*args)
    assert first.returncode == again.returncode == 0
    assert first.stderr == "littleflow: no live worker serves task double; its runs wait until one does\n"
    assert ID.fullmatch(first.stdout.strip()) and again.stdout == first.stdout
    id = first.stdout.strip()
    assert one_line(again.stderr) == (
        f"littleflow: workflow {id} was submitted with key 'nightly-2026-12-02' before; nothing new started"
    )
    assert lf.json(*args) == {"id": id}
    other = lf("submit", "double.flow", "--input", '{"n": 2}', "--key", "nightly-2026-12-02")
    assert other.returncode == 2 and f"was given for workflow {id} with another flow or input" in one_line(
        other.stderr
    )
    bad = lf("submit", "double.flow", "--key", " x")
    assert bad.returncode == 2 and "1 to 200 printable ASCII characters" in one_line(bad.stderr)
    assert [w["id"] for w in lf.json("list")["workflows"]] == [id]


def test_an_unreachable_server_is_one_line(tmp_path, own_redis_server):
    url = own_redis_server.url.replace("redis://", "redis://user:secret@")
    own_redis_server.stop()
    lf = Shell(project(tmp_path), base_env(tmp_path, url))
    for args in (
        ["status", "x"],
        ["submit", "double.flow"],
        ["list"],
        ["events", "--follow"],
        ["engine"],
        ["worker", "--builtins"],
        ["serve"],
    ):
        result = lf(*args)
        assert result.returncode == 2, (args, result.stderr)
        line = one_line(result.stderr)
        assert line.startswith(
            f"littleflow: error: cannot reach Redis at redis://user:***@127.0.0.1:{own_redis_server.port}/0: "
        ), line
        assert "secret" not in line


def test_a_bad_url_is_one_line(tmp_path):
    lf = Shell(project(tmp_path), base_env(tmp_path, "http://user:secret@example.org/0"))
    for args in (["status", "x"], ["engine"], ["serve"]):
        result = lf(*args)
        assert result.returncode == 2
        line = one_line(result.stderr)
        assert line.startswith("littleflow: error: bad Redis URL http://user:***@example.org/0: "), line


def test_a_worker_needs_tasks(tmp_path, redis_url):
    result = Shell(project(tmp_path), base_env(tmp_path, redis_url))("worker")
    assert result.returncode == 2 and "--tasks" in one_line(result.stderr)


@on_server_and_cluster
def test_engine_and_worker_processes_run_a_workflow_and_stop_on_sigterm(tmp_path, redis_url):
    lf = Shell(project(tmp_path), base_env(tmp_path, redis_url))
    engine = lf.start("engine", "--claim-idle", "5")
    worker = lf.start("worker", "--tasks", "tasks_for_cli.py", "--concurrency", "2")
    try:
        result = lf("submit", "boom.flow", "--input", '{"n": 5}', "--wait", "--quiet")
        assert result.returncode == 1 and "task boom" in result.stderr
        id = lf.json("list", "--state", "failed")["workflows"][0]["id"]
        document = lf.json("status", id)
        assert [n["status"] for n in document["nodes"]] == ["done", "done", "failed", "unreached"]
        assert document["nodes"][2]["error"] == "RuntimeError: boom"
        assert lf.json("workers")[0]["tasks"] == ["boom", "double", "echo"]
    finally:
        engine_code, engine_err = stop(engine)
        worker_code, worker_err = stop(worker)
    assert engine_code == 0 and "Traceback" not in engine_err, engine_err
    assert worker_code == 0 and "Traceback" not in worker_err, worker_err
    assert "littleflow engine: stopped (2 task ends applied)" in engine_err
    assert "serving boom, double, echo; concurrency 2" in worker_err
    assert "littleflow worker: stopped (2 tasks run)" in worker_err


@on_server_and_cluster
def test_events_follow_ends_quietly_on_sigterm(lf):
    follow = lf.start("events", "--follow", "--json")
    try:
        lf.submit("double.flow", '{"n": 1}')
        first = json.loads(follow.stdout.readline())
        assert first["kind"] == "workflow" and first["state"] == "running"
    finally:
        code, stderr = stop(follow)
    assert (code, stderr) == (0, "")


def test_serve_without_a_url_starts_a_private_server(tmp_path):
    need_redis_server()
    lf = Shell(project(tmp_path), base_env(tmp_path, None))
    home = tmp_path / "home"
    serve = lf.start("serve", "--tasks", "tasks_for_cli.py")
    try:
        saved = home / "redis.url"
        deadline = time.monotonic() + 20
        while not saved.exists():
            assert serve.poll() is None, serve.communicate()[1]
            assert time.monotonic() < deadline, "no redis.url"
            time.sleep(0.05)
        url = saved.read_text().strip()
        found = re.fullmatch(r"redis://:([A-Za-z0-9_-]{43})@127\.0\.0\.1:(\d+)/0", url)
        assert found, url
        password, port = found[1], int(found[2])
        assert stat.S_IMODE(saved.stat().st_mode) == 0o600  # the URL holds the password
        assert stat.S_IMODE((home / "redis.password").stat().st_mode) == 0o600
        assert (home / "redis.password").read_text().strip() == password
        with redis.Redis(port=port, socket_connect_timeout=2) as stranger:  # another user of the machine
            with pytest.raises(redis.AuthenticationError):
                stranger.ping()
        command_lines = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        assert f"127.0.0.1:{port}" in command_lines or f"--port {port}" in command_lines
        assert password not in command_lines  # the password is in a 0600 config file, not on the command line
        result = lf("submit", "double.flow", "--input", '{"n": 8}', "--wait", "--quiet")
        assert (result.returncode, result.stdout) == (0, '{"n": 16}\n'), result.stderr
        second = lf("serve")
        assert second.returncode == 2 and "another `littleflow serve`" in one_line(second.stderr)
    finally:
        code, stderr = stop(serve)
    assert code == 0, stderr
    assert f"littleflow: serving on redis://***@127.0.0.1:{port}/0 (data in {home}" in stderr
    assert f"littleflow: in another terminal: export LITTLEFLOW_REDIS_URL={url}" in stderr
    assert not saved.exists()
    with pytest.raises(redis.ConnectionError), redis.Redis.from_url(url, socket_connect_timeout=2) as client:
        client.ping()


def test_redis_url_falls_back_to_the_url_serve_left(tmp_path, monkeypatch):
    monkeypatch.delenv("LITTLEFLOW_REDIS_URL", raising=False)
    monkeypatch.setenv("LITTLEFLOW_HOME", str(tmp_path))
    assert redis_url() == DEFAULT_URL
    (tmp_path / "redis.url").write_text("redis://127.0.0.1:7777/0\n")
    assert redis_url() == "redis://127.0.0.1:7777/0"
    assert redis_url("redis://elsewhere:1/0") == "redis://elsewhere:1/0"
    monkeypatch.setenv("LITTLEFLOW_REDIS_URL", "redis://env:2/0")
    assert redis_url() == "redis://env:2/0"


def test_serve_api_only_runs_no_engine_and_no_tasks(tmp_path, redis_url):
    import socket

    import httpx

    from littleflow.api.auth import local_token

    lf = Shell(project(tmp_path), base_env(tmp_path, redis_url))
    for args in (["serve", "--api-only"], ["serve", "--api-only", "--api", "127.0.0.1:1", "--tasks", "x.py"]):
        refused = lf(*args)
        assert refused.returncode == 2 and "--api-only" in one_line(refused.stderr)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    serve = lf.start("serve", "--api-only", "--api", f"127.0.0.1:{port}")
    before = ""
    try:
        before = started(serve, "littleflow: the console on")
        assert "littleflow: the API alone (no engine, no tasks)" in before
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the API never got ready"
            time.sleep(0.05)
        token = local_token(tmp_path / "home")  # (made by serve, as no token is configured)
        assert token is not None and f"#token={token}" in before
        answer = httpx.post(
            f"http://127.0.0.1:{port}/workflows",
            json={"flow": "double", "input": {"n": 1}},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert answer.status_code in (200, 201), answer.text
        id = answer.json()["id"]
        time.sleep(0.5)
        assert lf.json("status", id)["state"] == "running"  # queued: no engine or worker took it
        assert lf.json("workers") == []
    finally:
        code, stderr = stop(serve, before=before)
    assert code == 0 and "Traceback" not in stderr, stderr


def test_serve_allows_no_file_resources_without_files(lf):
    (lf.cwd / "data.json").write_text('{"a": 1}')
    result = lf("submit", "-", "--wait", "--quiet", stdin="<data.json>\n")
    assert result.returncode == 1
    assert "file resources are off: start the server with --files DIR to allow a directory" in result.stderr


def test_worker_files_and_http_allow_confine_the_built_in_tasks(tmp_path, redis_url, http_server):
    lf = Shell(project(tmp_path), base_env(tmp_path, redis_url))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.json").write_text('{"inside": 1}')
    (tmp_path / "secret.json").write_text('{"secret": 1}')
    url = http_server.serve("/y.json", '{"http": 2}', "application/json")
    engine = lf.start("engine", "--claim-idle", "5")
    worker = lf.start("worker", "--builtins", "--files", "data", "--http-allow", "127.0.0.1")
    try:
        result = lf("submit", "-", "--wait", "--quiet", stdin=f'<x.json>\nhttp:get ({{"url": "{url}"}})\n')
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == [{"inside": 1}, {"http": 2}]
        result = lf("submit", "-", "--wait", "--quiet", stdin="<../secret.json>\n")
        assert result.returncode == 1 and "outside the directories allowed with --files" in result.stderr
        assert '"secret"' not in result.stderr
    finally:
        stop(engine)
        worker_code, worker_err = stop(worker)
    assert worker_code == 0 and "Traceback" not in worker_err, worker_err


def test_a_bad_http_allow_is_one_line(tmp_path, redis_url):
    result = Shell(project(tmp_path), base_env(tmp_path, redis_url))(
        "worker", "--builtins", "--http-allow", "a b"
    )
    assert result.returncode == 2 and "--http-allow 'a b'" in one_line(result.stderr)
