"""`littleflow serve --api HOST:PORT` serves the API beside the engine and workers."""

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from littleflow.api.auth import Tokens
from littleflow.api.server import ApiServer
from littleflow.redis.server import free_port


def test_serve_with_api_answers_and_runs_workflows(redis_url):
    port = free_port()
    env = {**os.environ, "LITTLEFLOW_REDIS_URL": redis_url}
    process = subprocess.Popen([sys.executable, "-m", "littleflow", "serve", "--api", f"127.0.0.1:{port}"],
                               env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and process.poll() is None, "the API never answered"
            time.sleep(0.1)
        id = httpx.post(f"http://127.0.0.1:{port}/workflows", json={"flow": "wait:delay (- duration: 0 -)",
                                                                     "input": {"k": 1}}).json()["id"]
        while (document := httpx.get(f"http://127.0.0.1:{port}/workflows/{id}").json())["state"] == "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert document["output"] == {"k": 1}
        assert httpx.head(f"http://127.0.0.1:{port}/health").status_code == 200
        events = httpx.Client(timeout=30)
        opened = events.stream("GET", f"http://127.0.0.1:{port}/events")  # left open while serve stops
        assert next(opened.__enter__().iter_lines()) == ": littleflow events"
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert "Traceback" not in err and "ERROR" not in err and "Cancel" not in err, err


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "example.org"])
def test_beyond_loopback_the_api_needs_tokens(host):
    with pytest.raises(ValueError, match="needs tokens"):
        ApiServer("redis://127.0.0.1:6379/0", "lf", host, 8080)
    ApiServer("redis://127.0.0.1:6379/0", "lf", host, 8080, Tokens.parse("admin:" + "s" * 20, "test"))


@pytest.mark.parametrize("text", ["admin:short", "root:" + "x" * 20, "no-colon-here-at-all"])
def test_bad_token_entries_are_refused_with_where(text):
    with pytest.raises(ValueError, match="tokens.txt: entry 1 must be read:TOKEN or admin:TOKEN"):
        Tokens.parse(text, "tokens.txt")


def test_tokens_are_kept_only_as_digests():
    tokens = Tokens.parse("read:" + "r" * 20 + "\n# a comment\nadmin:" + "a" * 20, "test")
    assert tokens.scope("r" * 20) == "read" and tokens.scope("a" * 20) == "admin" and tokens.scope("x") is None
    assert "r" * 20 not in repr(vars(tokens))
