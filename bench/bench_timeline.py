"""What a workflow's timeline costs: a finished 1,000-node workflow (parallel chains of ten
tasks, run by a real engine and worker on a private Redis), its timeline built and drawn as
SVG, answered by the API, and drawn by the console in headless Chromium (when Playwright and a
Chromium are installed).

Target: under 0.5 s from asking to bars on the page. Figures are printed, never checked.
``.venv/bin/python bench/bench_timeline.py [--nodes 1000]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

try:
    import littleflow  # noqa: F401
except ImportError:  # a checkout without an install: use ../src
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import httpx
from bench_console import api, best_of, chains_text

from littleflow import timeline
from littleflow.api.auth import ensure_local_token
from littleflow.api.common import DRAW_SECONDS, MAX_TIMELINE_RUNS
from littleflow.api.workflows import timeline_document, timeline_svg
from littleflow.redis import Client, Services
from littleflow.redis.server import RedisServer
from littleflow.tasks import Registry

REQUESTS = 20


def browser_seconds(base: str, token: str, id: str, runs: int) -> list[float] | None:
    """Seconds from a click on Timeline to all ``runs`` bars on the page, a few times; None
    without Playwright or a Chromium."""
    chromium = (
        os.environ.get("LITTLEFLOW_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if chromium is None:
        return None
    times = []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        for _ in range(5):
            page.goto(f"{base}/console/#token={token}")
            page.goto(f"{base}/console/#/workflows/{id}")
            page.wait_for_selector("h1 .badge.status-finished")
            began = time.perf_counter()
            page.get_by_role("tab", name="Timeline").click()
            page.locator(".timeline g.run").nth(runs - 1).wait_for(state="attached", timeout=30_000)
            times.append(time.perf_counter() - began)
            assert page.locator(".timeline g.run").count() == runs
        browser.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=1000, help="nodes of the workflow")
    args = parser.parse_args()
    registry = Registry()
    text = chains_text(args.nodes + 9)  # (at least that many nodes)
    for name in {part for part in text.replace("{", " ").replace("}", " ").replace("→", " ").split()}:
        registry.add(name, lambda input: {})
    with tempfile.TemporaryDirectory() as data, RedisServer(Path(data)).start() as server:
        client = Client(server.url)
        with Services(server.url, tasks=registry):
            id = client.submit(text)
            assert client.wait(id, 300)["state"] == "finished"
        document = timeline_document(client, id)
        runs = len(document["runs"])
        print(f"a finished workflow of {len(client.status(id)['nodes']):,} nodes, {runs:,} task runs")
        print("| step | seconds |\n| --- | ---: |")
        built = best_of(lambda: timeline_document(client, id))
        print(f"| read and build the timeline (JSON document), best of 3 | {built:.4f} |")
        print(
            f"| draw it (timeline.svg), best of 3 | {best_of(lambda: timeline.svg(document, time.time())):.4f} |"
        )
        print(
            f"| draw it as the API does (time budget on), best of 3 | "
            f"{best_of(lambda: timeline_svg(document, MAX_TIMELINE_RUNS, DRAW_SECONDS)):.4f} |"
        )
        token = ensure_local_token(Path(data))
        with (
            api(server.url, token) as base,
            httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {token}"}) as http,
        ):
            for format in ("json", "svg"):
                times = []
                for _ in range(REQUESTS):
                    began = time.perf_counter()
                    http.get(f"/workflows/{id}/timeline", params={"format": format}).raise_for_status()
                    times.append(time.perf_counter() - began)
                size = len(http.get(f"/workflows/{id}/timeline", params={"format": format}).content)
                print(
                    f"| GET /workflows/ID/timeline?format={format} ({size / 1024:,.0f} KiB), median of {REQUESTS} "
                    f"| {statistics.median(times):.4f} |"
                )
            drawn = browser_seconds(base, token, id, runs)
            if drawn is None:
                print("| the console (no Playwright or Chromium here) | - |")
            else:
                print(
                    f"| the console: a click on Timeline to all bars drawn, median of {len(drawn)} "
                    f"| {statistics.median(drawn):.4f} |"
                )


if __name__ == "__main__":
    main()
