"""What one request can make the API compile is bounded: YAML alias bombs and chains of
named subflows are 422 problem documents, refused before anything is expanded, by a real
`littleflow serve --api` process on a real Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from test_api_app import serving

from littleflow.api import create_app
from littleflow.redis.server import free_port

PROBLEM = "application/problem+json"


def laughs(levels: int = 9, width: int = 9, leaf: str = '"lol"') -> str:
    lines = [f"a0: &a0 {leaf}"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels + 1)]
    return "\n".join(lines)


#: 0.5 MB of YAML naming a 500,000-byte string 1,000 times (500 MB once expanded).
BYTE_BOMB = 'a: &a "' + "x" * 500_000 + '"\nb: [' + ", ".join(["*a"] * 1000) + "]"
#: Named subflows that each invoke the one before twice: 2**31 tasks from 633 bytes.
CHAIN = (
    "@task S1 { A A }\n" + "".join(f"@task S{i} {{ S{i - 1} S{i - 1} }}\n" for i in range(2, 31)) + "S30\n"
)
#: A declared default of 1 MB (a 1,000-byte string named 1,000 times) used by 90 steps: 90 MB in every answer.
DEFAULTS = (
    '@task T (- {x: &a "'
    + "x" * 1000
    + '", y: ['
    + ",".join(["*a"] * 1000)
    + "]} -)\n"
    + " ".join(["T"] * 90)
)


def rss(pid: int) -> int:
    """The resident memory of process ``pid``, in bytes."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) * 1024


@pytest.fixture
def served(redis_url):
    """(base URL, pid) of `littleflow serve --api … --api-max-nodes 100` on ``redis_url``."""
    port = free_port()
    env = {**os.environ, "LITTLEFLOW_REDIS_URL": redis_url}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "littleflow",
            "serve",
            "--api",
            f"127.0.0.1:{port}",
            "--api-no-auth",
            "--api-max-nodes",
            "100",
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and process.poll() is None, "the API never answered"
            time.sleep(0.1)
        yield base, process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=20)
    assert "Traceback" not in err, err


def refused(answer: httpx.Response, what: str) -> dict:
    """The problem document of a 422 ``answer``, checked to be small and positioned."""
    assert answer.status_code == 422, answer.text[:500]
    assert answer.headers["content-type"] == PROBLEM and len(answer.content) < 2000
    problem = answer.json()
    (error,) = problem["errors"]
    assert what in error["message"] and error["line"] >= 1 and error["column"] >= 1
    return error


def test_bombs_are_small_422s_and_create_no_workflow(served):
    base, pid = served
    before = rss(pid)
    cases = [
        ("billion laughs", f"A\n  <-\n{laughs()}\n-> B", "more than 1,000,000 values"),
        ("0.5 MB byte bomb", f"A (-\n{BYTE_BOMB}\n-)", "bytes as JSON once YAML aliases are expanded"),
        ("named-subflow chain", CHAIN, "the flow would have 3,221,225,472 nodes, more than the limit of 100"),
        (
            "declared defaults",
            DEFAULTS,
            "the flow's steps would carry 90,361,260 bytes of parameters and values",
        ),
    ]
    with httpx.Client(timeout=60) as http:
        for name, text, what in cases:
            for path in ("/compile", "/compile?format=svg", "/workflows"):
                began = time.perf_counter()
                answer = http.post(base + path, content=text, headers={"Content-Type": "text/plain"})
                print(
                    f"{name} ({len(text):,} bytes) → POST {path}: {answer.status_code} "
                    f"in {time.perf_counter() - began:.3f} s"
                )
                refused(answer, what)
        assert http.get(f"{base}/workflows").json()["total"] == 0
    grown = rss(pid) - before
    print(f"serve's resident memory grew by {grown / 1e6:.1f} MB")
    assert grown < 200e6


def test_the_node_limit_is_the_option_given_counted_before_expansion(served):
    base, _ = served
    ninety_eight = " ".join(["A"] * 98)  # START, 98 tasks, END: 100 nodes
    with httpx.Client(timeout=30) as http:
        assert len(http.post(f"{base}/compile", content=ninety_eight).json()["nodes"]) == 100
        error = refused(
            http.post(f"{base}/compile", content=ninety_eight + " B"),
            "the flow would have 101 nodes, more than the limit of 100",
        )
        assert (error["line"], error["column"]) == (1, 198)  # B: the END node still fits without it
        text = "@task S { A A A A }\n" + " ".join(["S"] * 20)  # 6 nodes a use: the 17th S is node 103
        error = refused(http.post(f"{base}/compile", content=text), "would have 122 nodes")
        assert (error["line"], error["column"]) == (2, 33)


def test_the_api_allows_20000_nodes_by_default(redis_url):
    text = (
        "@task T { " + " ".join(["A"] * 98) + " }\n" + " ".join(["T"] * 199) + " A" * 98
    )  # 199 × 100 + 98 + START and END
    with serving(create_app(redis_url)) as base, httpx.Client(timeout=60) as http:
        assert len(http.post(f"{base}/compile", content=text).json()["nodes"]) == 20_000
        refused(http.post(f"{base}/compile", content=text + " A"), "more than the limit of 20,000")
