"""Restarts: `littleflow serve` keeps its private server's port across restarts (so that
workers started with its URL reach it again), and engines and workers say once that Redis
went away and once that it is back. Real processes: serve, worker and redis-server."""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from support import need_redis_server, readable
from test_cli_redis import Shell, base_env, project, started, stop

from littleflow.redis.client import Client
from littleflow.redis.serve import PORT_FILE
from littleflow.redis.server import free_port

READY = "littleflow: in another terminal"  # serve's last line before it serves


@pytest.fixture
def lf(tmp_path: Path) -> Shell:
    """Commands with no Redis URL: `serve` starts a private server in $LITTLEFLOW_HOME."""
    need_redis_server()
    return Shell(project(tmp_path), base_env(tmp_path, None))


def home(lf: Shell) -> Path:
    return Path(lf.env["LITTLEFLOW_HOME"])


def serving(lf: Shell, *args: str) -> tuple[subprocess.Popen, str, int]:
    """Start `serve` (no Python tasks: only a worker of its own runs them) and wait until it
    serves; returns the process, what it said so far and its server's port."""
    process = lf.start("serve", *args)
    said = started(process, READY)
    port = re.search(r"serving on redis://\*\*\*@127\.0\.0\.1:(\d+)/0", said)
    assert port, said
    return process, said, int(port[1])


def stopped(process: subprocess.Popen, before: str) -> str:
    code, said = stop(process, before=before)
    assert code == 0, said
    return said


def read_until(process: subprocess.Popen, text: str, timeout: float = 30) -> str:
    """Read standard error until it holds ``text``; returns what was read."""
    seen = b""
    deadline = time.monotonic() + timeout
    fd = process.stderr.fileno()
    while text.encode() not in seen:
        assert time.monotonic() < deadline, f"no {text!r} after {timeout} s: {seen.decode()}"
        if readable(fd, 0.1):
            chunk = os.read(fd, 65536)
            assert chunk, f"ended before saying {text!r}: {seen.decode()}"
            seen += chunk
    return seen.decode()


def test_a_restarted_serve_keeps_its_port_and_its_workers_come_back(lf):
    serve, said, port = serving(lf)
    url = (home(lf) / "redis.url").read_text().strip()
    worker = lf.start("worker", "--tasks", "tasks_for_cli.py", "--verbose")  # reads redis.url once
    log = ""
    try:
        log += started(worker, "littleflow worker: worker-")
        result = lf("submit", "double.flow", "--input", '{"n": 1}', "--wait", "--quiet")
        assert (result.returncode, result.stdout) == (0, '{"n": 2}\n'), result.stderr
        stopped(serve, said)  # redis.url goes with it: the worker holds the URL
        log += read_until(worker, "Redis unreachable")
        time.sleep(2)  # the worker retries some times meanwhile
        serve, said, again = serving(lf)
        assert again == port
        assert (home(lf) / "redis.url").read_text().strip() == url
        result = lf("submit", "double.flow", "--input", '{"n": 8}', "--wait", "--quiet", timeout=60)
        assert (result.returncode, result.stdout) == (0, '{"n": 16}\n'), result.stderr
        log += read_until(worker, "Redis is back")
    finally:
        code, rest = stop(worker)
        stopped(serve, said)
    log += rest
    assert code == 0, log
    lines = Counter(
        "unreachable" if "Redis unreachable" in line else "back" if "Redis is back" in line else None
        for line in log.splitlines()
    )
    assert (lines["unreachable"], lines["back"]) == (1, 1), log
    assert "Traceback" not in log


def test_port_wins_over_the_kept_one_and_is_kept(lf):
    serve, said, kept = serving(lf)
    stopped(serve, said)
    assert (home(lf) / PORT_FILE).read_text() == f"{kept}\n"
    given = free_port()
    serve, said, port = serving(lf, "--port", str(given))
    stopped(serve, said)
    assert port == given != kept
    assert (home(lf) / PORT_FILE).read_text() == f"{given}\n"


def test_a_kept_port_another_program_took_is_one_line_and_a_new_port(lf):
    serve, said, kept = serving(lf)
    stopped(serve, said)
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", kept))
        squatter.listen()
        serve, said, port = serving(lf)
        said = stopped(serve, said)
    assert port != kept
    assert (home(lf) / PORT_FILE).read_text() == f"{port}\n"
    about = [line for line in said.splitlines() if str(kept) in line]
    assert about == [
        f"littleflow serve: port {kept} (kept in {home(lf) / PORT_FILE}) is taken by another program: "
        "the private Redis server moves to a new one, and workers started with the old URL must be "
        "started again"
    ], said


def test_engines_and_workers_say_once_that_redis_went_and_came_back(started, own_redis_server, caplog):
    url = own_redis_server.url
    services = started.services_on(url=url, tasks=None)
    with caplog.at_level(logging.INFO, "littleflow"):
        own_redis_server.stop()
        time.sleep(2)  # 0.5 s between rounds: some rounds fail meanwhile
        own_redis_server.start()
        client = Client(url)
        document = client.wait(client.submit('wait:delay ({"duration": 0.01})', {"n": 1}), timeout=30)
        assert document["state"] == "finished", document
        deadline = time.monotonic() + 10
        while sum("Redis is back" in r.getMessage() for r in caplog.records) < 2:
            assert time.monotonic() < deadline, caplog.text
            time.sleep(0.05)
    said = Counter(
        (r.getMessage().partition(":")[0], "back" if "Redis is back" in r.getMessage() else "away")
        for r in caplog.records
        if "Redis" in r.getMessage()
    )
    loops = [f"engine {part.name}" for part in services.engines] + [
        f"worker {part.name}" for part in services.workers
    ]
    assert len(loops) == 2
    assert said == Counter({(loop, kind): 1 for loop in loops for kind in ("away", "back")}), caplog.text
