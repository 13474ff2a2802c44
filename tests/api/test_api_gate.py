"""What the API checks before it reads a request (littleflow.api.app's Gate and LimitBody)
and the caps on its event streams, on a real uvicorn server and a real Redis."""

from __future__ import annotations

import contextlib
import socket
import time

import httpx
import pytest
from support import readable
from test_api_app import serving

from littleflow.api import create_app
from littleflow.api.auth import Tokens, host_name, own_hosts

ADMIN, OTHER = "admin-token-0123456789", "other-token-0123456789"
TOKENS = Tokens.parse(f"admin:{ADMIN},admin:{OTHER}", "test")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def guarded(redis_url):
    """The base URL of an API with tokens, known also as api.example.org."""
    with serving(
        create_app(
            redis_url,
            tokens=TOKENS,
            hosts=own_hosts("127.0.0.1", ["api.example.org"]),
            cors=["https://ok.example"],
        )
    ) as base:
        yield base


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "evil.example:8080",
        "127.0.0.1.evil.example",
        "10.0.0.1",
        "[::1",
        "[::1]x",
        "localhost@evil.example",
        "",
    ],
)
def test_a_foreign_host_is_refused_even_with_a_valid_token(guarded, host):
    answer = httpx.get(f"{guarded}/workflows", headers={**bearer(ADMIN), "Host": host})
    assert answer.status_code == 403 and answer.headers["content-type"] == "application/problem+json"
    assert "Host header" in answer.json()["detail"]
    answer = httpx.post(
        f"{guarded}/workflows",
        content="wait:delay",
        headers={**bearer(ADMIN), "Host": host, "Content-Type": "text/plain"},
    )
    assert answer.status_code == 403
    assert httpx.get(f"{guarded}/workflows", headers=bearer(ADMIN)).json()["total"] == 0


@pytest.mark.parametrize(
    "host", ["localhost", "LOCALHOST:1234", "127.0.0.1", "[::1]:80", "api.example.org", "api.example.org:443"]
)
def test_the_servers_own_names_are_let_in(guarded, host):
    assert httpx.get(f"{guarded}/workflows", headers={**bearer(ADMIN), "Host": host}).status_code == 200


def test_the_probes_answer_whatever_the_host(guarded):
    """Kubernetes' probes name the pod's address."""
    for path in ("/health", "/ready"):
        assert httpx.get(f"{guarded}{path}", headers={"Host": "10.1.2.3:8080"}).status_code == 200


@pytest.mark.parametrize(
    "origin", ["http://evil.example", "null", "http://127.0.0.1:1", "https://ok.example.evil"]
)
def test_a_change_from_a_foreign_origin_is_refused(guarded, origin):
    for path, body in (("/workflows", "wait:delay"), ("/compile", "A"), ("/events/go", "{}")):
        answer = httpx.post(
            f"{guarded}{path}",
            content=body,
            headers={**bearer(ADMIN), "Origin": origin, "Content-Type": "text/plain"},
        )
        assert answer.status_code == 403, (path, answer.text)
        assert "may not change anything" in answer.json()["detail"]
    assert httpx.get(f"{guarded}/workflows", headers=bearer(ADMIN)).json()["total"] == 0


def test_a_change_from_its_own_or_a_cors_origin_is_let_in(guarded):
    port = guarded.rpartition(":")[2]
    for origin in (guarded, f"https://127.0.0.1:{port}", "https://ok.example"):
        answer = httpx.post(
            f"{guarded}/workflows", json={"flow": "wait:delay"}, headers={**bearer(ADMIN), "Origin": origin}
        )
        assert answer.status_code == 201, (origin, answer.text)
    assert (
        httpx.get(
            f"{guarded}/workflows", headers={**bearer(ADMIN), "Origin": "http://evil.example"}
        ).status_code
        == 200
    )  # (reading: a foreign page cannot see the answer)


def test_without_tokens_host_and_origin_are_still_checked(redis_url):
    with serving(create_app(redis_url)) as base:
        assert httpx.get(f"{base}/workflows", headers={"Host": "evil.example"}).status_code == 403
        assert (
            httpx.post(
                f"{base}/workflows",
                content="wait:delay",
                headers={"Origin": "http://evil.example", "Content-Type": "text/plain"},
            ).status_code
            == 403
        )
        assert httpx.get(f"{base}/workflows").json()["total"] == 0
        assert (
            httpx.post(
                f"{base}/workflows", content="wait:delay", headers={"Content-Type": "text/plain"}
            ).status_code
            == 201
        )


def raw(base: str) -> socket.socket:
    host, _, port = base.removeprefix("http://").rpartition(":")
    return socket.create_connection((host, int(port)), timeout=10)


def answer_of(connection: socket.socket) -> bytes:
    """What the server sends until it closes the connection or is quiet for a while."""
    received = b""
    with contextlib.suppress(TimeoutError, ConnectionError):
        while chunk := connection.recv(65536):
            received += chunk
            if b"\r\n\r\n" in received and b"}" in received:
                break
    return received


def answered(connection: socket.socket) -> bool:
    """Whether the server has sent something (or closed), without waiting."""
    return readable(connection)


def test_a_large_body_without_a_token_is_refused_before_it_is_read(guarded):
    size = 10 * 1024 * 1024
    with raw(guarded) as connection:
        connection.sendall(
            f"POST /workflows HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {size}\r\n\r\n".encode()
            + b"x" * 65536
        )
        answer = answer_of(connection)  # (only 64 KB of the 10 MB sent)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]


def test_a_body_that_trickles_is_cut_off(redis_url):
    with serving(create_app(redis_url, body_timeout=3, body_pause=1.5)) as base:
        for pace in (0.5, 3.0):  # slow but steady (past the whole body's time), then one long pause
            started = time.monotonic()
            with raw(base) as connection:
                connection.sendall(
                    b"POST /workflows HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
                    b"Content-Length: 100\r\n\r\n"
                )
                with contextlib.suppress(OSError):
                    for sent in range(1, 101):  # noqa: B007 -- read after the loop
                        connection.sendall(b"A")
                        time.sleep(pace)
                        if answered(connection):
                            break
                answer = answer_of(connection)
            print(f"a byte each {pace} s: answered after {time.monotonic() - started:.1f} s and {sent} bytes")
            assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
            assert b"came too slowly" in answer and sent < 100
        assert httpx.get(f"{base}/workflows").json()["total"] == 0


def test_event_streams_are_capped_per_token_and_in_all(redis_url):
    app = create_app(redis_url, tokens=TOKENS, max_streams=3, max_streams_per_token=2)
    reading = []  # (a dropped line iterator would close its stream)
    with (
        serving(app) as base,
        httpx.Client(base_url=base, timeout=30) as http,
        contextlib.ExitStack() as open,
    ):

        def stream(token: str, path: str = "/events") -> httpx.Response:
            answer = open.enter_context(http.stream("GET", path, headers=bearer(token)))
            if answer.status_code == 200:
                reading.append(answer.iter_lines())
                next(reading[-1])  # (it has begun)
            return answer

        id = http.post("/workflows", json={"flow": "nobody:serves"}, headers=bearer(ADMIN)).json()["id"]
        assert stream(ADMIN).status_code == 200 and stream(ADMIN, f"/workflows/{id}/watch").status_code == 200
        third = stream(ADMIN)
        assert third.status_code == 429 and third.headers["retry-after"] == "10"
        third.read()
        assert "this token has 2 event streams open" in third.json()["detail"]
        kept = stream(OTHER)
        assert kept.status_code == 200
        past = stream(OTHER)
        assert past.status_code == 429 and "3 event streams are open" in past.read().decode()
        kept.close()
        deadline = time.monotonic() + 10
        while stream(OTHER).status_code != 200:  # a closed stream makes room
            assert time.monotonic() < deadline, "a closed stream still counts"
            time.sleep(0.2)


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("Example.ORG.", "example.org"),
        ("[::1]:8080", "::1"),
        ("127.0.0.1:80", "127.0.0.1"),
        ("", ""),
        ("[::1", ""),
        ("[::1]x", ""),
        ("localhost@evil", ""),
        ("a:80:80", ""),
        ("127.0.0.1:123456", ""),
    ],
)
def test_host_names_are_read_without_port(header, name):
    assert host_name(header) == name


def test_a_token_written_another_way_counts_as_the_same_holder():
    assert (
        TOKENS.holder(f"Bearer {ADMIN}")
        == TOKENS.holder(f"bearer   {ADMIN} ")
        != TOKENS.holder(f"Bearer {OTHER}")
    )
