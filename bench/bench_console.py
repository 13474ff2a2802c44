"""What the web console waits for: graph pictures of big flows, and the API's answers with
many workflows stored.

* graph: ``diagram.svg`` (layout included) of flows of 100, 300 and 1,000 nodes (parallel
  chains of ten tasks between a fork and a join)
* the API's SVG limit (``MAX_SVG_NODES``): the hardest shapes drawn at it — the chains, one
  fork of that many tasks, one long chain, drawn alone and as the API draws them (under its
  time budget, whose trace hook costs a little on every Python call); the limit is picked to
  keep these under about 1 s
* API: a real uvicorn server on a private Redis holding 10,000 workflows (none running a
  task: no worker), timing the requests the console makes — a page of the list, a search, a
  300-node workflow's status document and its SVG graph. Each the median of 20 requests.

Targets (2-core machine): a 300-node graph drawn in under 0.5 s; a page of the list in
under 50 ms and a search over 10,000 workflows in under 0.5 s. Figures are printed, never
checked. ``.venv/bin/python bench/bench_console.py [--workflows 10000]``
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

try:
    import littleflow  # noqa: F401
except ImportError:  # a checkout without an install: use ../src
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import httpx

from littleflow import diagram
from littleflow.api.auth import Tokens, ensure_local_token
from littleflow.api.common import DRAW_SECONDS, MAX_SVG_NODES, drawn
from littleflow.api.server import ApiServer
from littleflow.compiler import Compiler
from littleflow.parser import Parser
from littleflow.redis.client import Client
from littleflow.redis.server import RedisServer, free_port

REQUESTS = 20


def chains_text(nodes: int) -> str:
    """A flow of about ``nodes`` nodes: parallel chains of ten tasks between a fork and a join."""
    chains = max(1, (nodes - 6) // 10)
    return (
        "first → { "
        + "  ".join(" → ".join(f"t{c}_{i}" for i in range(10)) for c in range(chains))
        + " } → last"
    )


def best_of(action: object, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


@contextlib.contextmanager
def api(url: str, token: str) -> Iterator[str]:
    """The API as ``littleflow serve --api`` runs it, with its admin ``token``, on a thread;
    yields its base URL."""
    api = ApiServer(url, "lf", "127.0.0.1", free_port(), Tokens([("admin", token)]))
    stop = threading.Event()
    thread = threading.Thread(target=api.run, args=(stop,), daemon=True)
    thread.start()
    while not api.server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{api.port}"
    finally:
        stop.set()
        thread.join(10)


def median_ms(http: httpx.Client, url: str) -> float:
    times = []
    for _ in range(REQUESTS):
        start = time.perf_counter()
        answer = http.get(url)
        times.append(time.perf_counter() - start)
        answer.raise_for_status()
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workflows", type=int, default=10_000, help="workflows stored for the API cases")
    args = parser.parse_args()

    print("graph (diagram.svg, layout included), best of 3:")
    print("| nodes | edges | seconds |\n| ---: | ---: | ---: |")
    flows = {}
    for nodes in (100, 300, 1000):
        flow = Compiler().compile(Parser().parse(chains_text(nodes), "<bench>"))
        flows[nodes] = flow
        print(
            f"| {len(flow.nodes):,} | {sum(1 for _ in flow.edges()):,} | {best_of(lambda f=flow: diagram.svg(f)):.3f} |"
        )

    print(f"\nthe API's SVG limit, {MAX_SVG_NODES:,} nodes (diagram.svg), best of 3:")
    print("| shape | nodes | seconds | in the API (time budget on) |\n| --- | ---: | ---: | ---: |")
    shapes = {
        "chains of ten": chains_text(MAX_SVG_NODES),
        "one fork": "first → { " + " ".join(f"t{i}" for i in range(MAX_SVG_NODES - 6)) + " } → last",
        "one chain": " → ".join(f"t{i}" for i in range(MAX_SVG_NODES - 2)),
    }
    for shape, text in shapes.items():
        flow = Compiler().compile(Parser().parse(text, "<bench>"))
        alone = best_of(lambda f=flow: diagram.svg(f))
        api = best_of(lambda f=flow: drawn(f, None, MAX_SVG_NODES, DRAW_SECONDS))
        print(f"| {shape} | {len(flow.nodes):,} | {alone:.3f} | {api:.3f} |")

    with tempfile.TemporaryDirectory() as data, RedisServer(Path(data)).start() as server:
        client = Client(server.url)
        for start in range(0, args.workflows - 1, 1000):
            client.submit_many(
                f"@flow batch{start // 1000}\nnoop → noop",
                [{"i": i} for i in range(start, min(start + 1000, args.workflows - 1))],
            )
        big = client.submit(chains_text(300))
        token = ensure_local_token(Path(data))  # (as `littleflow serve --data DATA` keeps it)
        with (
            api(server.url, token) as base,
            httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {token}"}) as http,
        ):
            cases = [
                (
                    "a page of the list (50, newest first, with state counts)",
                    "/workflows?order=newest&limit=50",
                ),
                ("the same, one state", "/workflows?order=newest&limit=50&state=running"),
                (f"a search over {args.workflows:,} workflows", "/workflows?order=newest&limit=50&q=batch3"),
                (f"status document of a {len(flows[300].nodes)}-node workflow", f"/workflows/{big}"),
                ("its SVG graph", f"/workflows/{big}/graph?format=svg"),
            ]
            print(f"\nAPI, {args.workflows:,} workflows stored, median of {REQUESTS} requests:")
            print("| request | ms |\n| --- | ---: |")
            for what, url in cases:
                print(f"| {what} | {median_ms(http, url):.1f} |")


if __name__ == "__main__":
    main()
