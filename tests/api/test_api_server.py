"""`littleflow serve --api HOST:PORT` serves the API beside the engine and workers."""

import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

import httpx
import pytest
from support import readable

from littleflow.api.auth import Tokens
from littleflow.api.server import ApiServer
from littleflow.redis.server import free_port


def start_serve(redis_url: str, *args: str) -> tuple[subprocess.Popen, str, str]:
    """A `littleflow serve --api` process on a free loopback port, answering: (process, base URL,
    the line of stderr that gives the console's address)."""
    port = free_port()
    env = {**os.environ, "LITTLEFLOW_REDIS_URL": redis_url, "LITTLEFLOW_API_TOKENS": ""}
    process = subprocess.Popen(
        [sys.executable, "-m", "littleflow", "serve", "--api", f"127.0.0.1:{port}", *args],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready").status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline and process.poll() is None, "the API never answered"
        time.sleep(0.1)
    while "the console on" not in (line := process.stderr.readline()):
        assert line, "serve never said where the console is"
    return process, f"http://127.0.0.1:{port}", line


def stop(process: subprocess.Popen) -> str:
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert "Traceback" not in err and "ERROR" not in err and "Cancel" not in err, err
    return err


def test_serve_with_api_answers_and_runs_workflows(redis_url, tmp_path):
    process, base, _ = start_serve(redis_url, "--data", str(tmp_path))
    try:
        admin = {"Authorization": f"Bearer {(tmp_path / 'api.token').read_text().strip()}"}
        id = httpx.post(
            f"{base}/workflows",
            json={"flow": "wait:delay (- duration: 0 -)", "input": {"k": 1}},
            headers=admin,
        ).json()["id"]
        deadline = time.monotonic() + 20
        while (document := httpx.get(f"{base}/workflows/{id}", headers=admin).json())["state"] == "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert document["output"] == {"k": 1}
        assert httpx.head(f"{base}/health").status_code == 200
        events = httpx.Client(timeout=30, headers=admin)
        opened = events.stream("GET", f"{base}/events")  # left open while serve stops
        assert next(opened.__enter__().iter_lines()) == ": littleflow events"
    finally:
        stop(process)


def test_serve_makes_a_private_token_prints_it_once_and_keeps_it(redis_url, tmp_path):
    process, base, line = start_serve(redis_url, "--data", str(tmp_path))
    try:
        token = (tmp_path / "api.token").read_text().strip()
        assert stat.S_IMODE((tmp_path / "api.token").stat().st_mode) == 0o600 and len(token) >= 32
        assert (
            line.strip() == f"littleflow: the console on {base}/console/#token={token}, the API beside it "
            "(/docs, /openapi.json)"
        )
        assert httpx.get(f"{base}/workflows").status_code == 401
        assert (
            httpx.get(f"{base}/workflows", headers={"Authorization": "Bearer " + "x" * 43}).status_code == 401
        )
        assert httpx.get(f"{base}/workflows", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert (
            httpx.post(
                f"{base}/workflows", content="wait:delay", headers={"Content-Type": "text/plain"}
            ).status_code
            == 401
        )
    finally:
        err = stop(process)
    assert err.count(token) == 0  # (printed once: the line read above)
    process, base, line = start_serve(redis_url, "--data", str(tmp_path))  # a restart keeps it
    try:
        assert line.strip().split("#token=")[1].startswith(f"{token},")
        assert httpx.get(f"{base}/workflows", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    finally:
        stop(process)
    (tmp_path / "api.token").chmod(0o644)  # readable by others: it may have leaked, so it is replaced
    process, base, line = start_serve(redis_url, "--data", str(tmp_path))
    try:
        assert token not in line and stat.S_IMODE((tmp_path / "api.token").stat().st_mode) == 0o600
        assert httpx.get(f"{base}/workflows", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    finally:
        stop(process)


def test_serve_refuses_a_foreign_host_even_with_the_token(redis_url, tmp_path):
    process, base, _ = start_serve(redis_url, "--data", str(tmp_path), "--api-host", "lf.example.org")
    try:
        admin = {"Authorization": f"Bearer {(tmp_path / 'api.token').read_text().strip()}"}
        for host, status in (
            ("evil.example", 403),
            ("evil.example:" + base.rpartition(":")[2], 403),
            ("lf.example.org", 200),
            ("localhost", 200),
        ):
            answer = httpx.get(f"{base}/workflows", headers={**admin, "Host": host})
            assert answer.status_code == status, (host, answer.text)
        assert httpx.get(f"{base}/ready", headers={"Host": "10.0.0.7:8080"}).status_code == 200
    finally:
        stop(process)


def test_serve_without_auth_on_loopback_and_never_beyond(redis_url):
    process, base, line = start_serve(redis_url, "--api-no-auth")
    try:
        assert "#token=" not in line
        assert httpx.get(f"{base}/workflows").status_code == 200
        assert (
            httpx.post(
                f"{base}/workflows",
                content="wait:delay",
                headers={"Content-Type": "text/plain", "Origin": "http://evil.example"},
            ).status_code
            == 403
        )
    finally:
        stop(process)
    env = {**os.environ, "LITTLEFLOW_REDIS_URL": redis_url, "LITTLEFLOW_API_TOKENS": ""}
    refused = subprocess.run(
        [sys.executable, "-m", "littleflow", "serve", "--api", f"0.0.0.0:{free_port()}", "--api-no-auth"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1] == (
        "littleflow: error: --api-no-auth is for loopback addresses only, "
        "not 0.0.0.0: give tokens (--api-tokens FILE or "
        "$LITTLEFLOW_API_TOKENS)"
    )


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "example.org"])
def test_beyond_loopback_the_api_needs_tokens(host):
    with pytest.raises(ValueError, match="needs tokens"):
        ApiServer("redis://127.0.0.1:6379/0", "lf", host, 8080)
    with pytest.raises(ValueError, match="--api-no-auth is for loopback addresses only"):
        ApiServer("redis://127.0.0.1:6379/0", "lf", host, 8080, no_auth=True)
    ApiServer("redis://127.0.0.1:6379/0", "lf", host, 8080, Tokens.parse("admin:" + "s" * 20, "test"))


@pytest.mark.parametrize("name", ["https://flows.example.com", "flows.example.com/x", "a b", "[::1"])
def test_an_api_host_must_be_a_host_name(name):
    with pytest.raises(ValueError, match="--api-host wants a host name or address"):
        ApiServer("redis://127.0.0.1:6379/0", "lf", "127.0.0.1", 8080, no_auth=True, names=[name])


@pytest.mark.parametrize("text", ["admin:short", "root:" + "x" * 20, "no-colon-here-at-all"])
def test_bad_token_entries_are_refused_with_where(text):
    with pytest.raises(ValueError, match="tokens.txt: entry 1 must be read:TOKEN or admin:TOKEN"):
        Tokens.parse(text, "tokens.txt")


def test_tokens_are_kept_only_as_digests():
    tokens = Tokens.parse("read:" + "r" * 20 + "\n# a comment\nadmin:" + "a" * 20, "test")
    assert (
        tokens.scope("r" * 20) == "read" and tokens.scope("a" * 20) == "admin" and tokens.scope("x") is None
    )
    assert "r" * 20 not in repr(vars(tokens))


def test_a_request_head_that_trickles_is_cut_off_but_a_long_answer_is_not(redis_url):
    api, stop_api = (
        ApiServer(redis_url, "lf", "127.0.0.1", free_port(), no_auth=True, header_timeout=1.5),
        threading.Event(),
    )
    thread = threading.Thread(target=api.run, args=(stop_api,), daemon=True)
    thread.start()
    while not api.server.started:
        assert thread.is_alive()
        time.sleep(0.02)
    try:
        with (
            socket.create_connection(("127.0.0.1", api.port), timeout=10) as slow,
            socket.create_connection(("127.0.0.1", api.port), timeout=10) as streaming,
        ):
            streaming.sendall(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            head = b""
            while b"littleflow events" not in head:
                head += streaming.recv(65536)
            started, sent = time.monotonic(), 0
            for byte in b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"x" * 100:
                if readable(slow):
                    break
                slow.sendall(bytes([byte]))
                sent += 1
                time.sleep(0.25)
            print(
                f"a head a byte each 0.25 s: closed after {time.monotonic() - started:.1f} s and {sent} bytes"
            )
            assert slow.recv(65536) == b"" and sent < 100  # closed, unanswered
            assert not readable(streaming)  # the stream open past the head's time stays
        with httpx.Client(base_url=f"http://127.0.0.1:{api.port}") as http:  # kept alive between requests
            assert [http.get("/health").status_code for _ in range(3)] == [200] * 3
    finally:
        stop_api.set()
        thread.join(10)
