"""The web console in headless Chromium (Debian's, driven by Playwright), served by a real
`littleflow serve --api` process on a real Redis. Screenshots go to artifacts/console/."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from httpserver import http_server  # noqa: F401 - a fixture: the other origin's page
from playwright.sync_api import Page, expect, sync_playwright
from support import missing

from littleflow.api.app import MAX_SVG_NODES
from littleflow.redis.server import free_port

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "console"
TASKS = Path(__file__).with_name("console_tasks.py")
CHROMIUM = (
    os.environ.get("LITTLEFLOW_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
)
ADMIN, READER = "admin-token-0123456789", "read-token-0123456789"

expect.set_options(timeout=15_000)


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        missing(
            "no chromium on PATH (python3 dev.py system chromium installs Debian's): the console's tests need it"
        )
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


def start_serve(redis_url: str, tokens: str = "", args: tuple[str, ...] = ()) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "LITTLEFLOW_REDIS_URL": redis_url, "LITTLEFLOW_API_TOKENS": tokens}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "littleflow",
            "serve",
            "--tasks",
            str(TASKS),
            "--claim-idle",
            "1",
            "--api",
            f"127.0.0.1:{port}",
            *args,
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/ready").status_code == 200:
                return process, base
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise AssertionError(f"littleflow serve did not answer: {process.communicate()[1][-2000:]}")
        time.sleep(0.1)


@pytest.fixture
def serve(redis_url):
    """The base URL of a `littleflow serve --api --api-no-auth` with the tasks of console_tasks.py."""
    process, base = start_serve(redis_url, args=("--api-no-auth",))
    yield base
    stop(process)


@pytest.fixture
def guarded_serve(redis_url):
    """As ``serve``, with a read and an admin token."""
    process, base = start_serve(redis_url, f"admin:{ADMIN},read:{READER}")
    yield base
    stop(process)


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    assert "Traceback" not in err, err


@pytest.fixture
def page(browser, request):
    """A fresh page; it fails the test on any script error, and leaves a screenshot of its end."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console",
        lambda message: (
            errors.append(message.text)
            if message.type == "error" and not message.text.startswith("Failed to load resource")
            else None
        ),
    )  # (answers the test expects)
    yield page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{request.node.name}-end.png", full_page=True)
    context.close()
    assert not errors, f"script errors on the page: {errors}"


def shot(page: Page, name: str, full_page: bool = True) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=full_page)


def submit(base: str, flow: str, input=None, headers=None) -> str:
    answer = httpx.post(f"{base}/workflows", json={"flow": flow, "input": input or {}}, headers=headers)
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def graph_statuses(page: Page) -> dict[str, str]:
    """The status class of each node drawn on the page's graph, by label."""
    return page.eval_on_selector_all(
        ".graph g.node",
        """nodes => Object.fromEntries(nodes.map(n =>
        [n.querySelector('title')?.textContent.split('\\n')[0] || n.dataset.node,
         [...n.classList].find(c => c.startsWith('status-'))]))""",
    )


HELLO = "@flow hello\nfetch → { clean → store  index } → notify"


def test_submit_a_flow_and_watch_it_finish_with_the_graph_coloured(serve, page):
    page.goto(f"{serve}/")
    expect(page.locator("table.workflows")).to_contain_text("No workflows yet")
    page.get_by_role("link", name="New workflow").click()
    page.get_by_label("flow text").fill(HELLO)
    expect(page.locator(".preview g.node")).to_have_count(
        len(
            httpx.post(f"{serve}/compile", content=HELLO, headers={"Content-Type": "text/plain"}).json()[
                "nodes"
            ]
        )
    )
    page.get_by_label("input JSON").fill('{"who": "console", "big": 12345678901234567890}')
    shot(page, "new-workflow")
    page.get_by_role("button", name="Run").click()
    expect(page).to_have_url(re.compile(r"#/workflows/[\w-]+$"))
    expect(page.locator("h1 .badge")).to_have_text("running")
    expect(page.locator(".graph g.node.status-running, .graph g.node.status-queued").first).to_be_visible()
    shot(page, "workflow-running")
    expect(page.locator("h1 .badge")).to_have_text("finished", timeout=30_000)
    tasks = {
        label: status
        for label, status in graph_statuses(page).items()
        if label in ("fetch", "clean", "store", "index", "notify")
    }
    assert tasks == dict.fromkeys(["fetch", "clean", "store", "index", "notify"], "status-done")
    expect(page.locator("pre.output")).to_contain_text('"notified": true')
    row = page.locator("table.nodes tr", has_text="fetch")
    expect(row.locator(".badge")).to_have_text("done")
    expect(row).to_contain_text('"who":"console"')  # its input, in the table
    id = page.url.rsplit("/", 1)[1]
    assert (
        httpx.get(f"{serve}/workflows/{id}").json()["input"]["big"] == 12345678901234567890
    )  # sent as typed
    expect(page.locator(".values pre").first).to_contain_text(
        '"big": 12345678901234567890'
    )  # shown as stored
    page.locator(".graph g.node", has_text="store").click()
    expect(page.locator("aside.details")).to_contain_text('"stored": 1')
    expect(page.locator(".flow-text pre")).to_have_text(HELLO)
    shot(page, "workflow-finished")
    page.get_by_role("button", name="Run again").click()
    expect(page.get_by_label("flow text")).to_have_value(HELLO)
    expect(page.get_by_label("input JSON")).to_have_value(re.compile(r'"who": "console"'))
    expect(page.get_by_role("button", name="Run")).to_be_enabled()


BRANCHES = '@flow branches\nfetch → if `$[?@.document == "bye"]` then { clean → store } else index → notify'


def test_a_branch_not_taken_is_drawn_skipped_and_the_choice_as_a_diamond(serve, page):
    """fetch says hello, so the else branch runs: the whole then branch is skipped (the run
    records its first node only; the console marks the rest as the server's pictures do)."""
    id = submit(serve, BRANCHES)
    page.goto(f"{serve}/console/#/workflows/{id}")
    expect(page.locator("h1 .badge")).to_have_text("finished", timeout=30_000)
    ids = {n["label"]: n["id"] for n in httpx.get(f"{serve}/workflows/{id}").json()["nodes"]}
    node = lambda label: page.locator(f'.graph g.node[data-node="{ids[label]}"]')  # noqa: E731
    for status, labels in (("skipped", ("clean", "store")), ("done", ("fetch", "index", "notify"))):
        for label in labels:
            expect(node(label)).to_have_class(re.compile(rf"\bstatus-{status}\b"))
            expect(page.locator(f'table.nodes tr[data-node="{ids[label]}"] .badge')).to_have_text(status)
    assert {
        label: status
        for label, status in graph_statuses(page).items()
        if label in ("fetch", "clean", "store", "index", "notify")
    } == {
        "fetch": "status-done",
        "clean": "status-skipped",
        "store": "status-skipped",
        "index": "status-done",
        "notify": "status-done",
    }
    skipped, done = (
        node(label).locator(".shape").evaluate("s => getComputedStyle(s).fill")
        for label in ("store", "index")
    )
    assert skipped != done  # (coloured apart, not only classed)
    choice = page.locator(".graph g.node.kind-choice")
    expect(choice).to_have_count(1)
    expect(choice).to_be_visible()
    shape = choice.locator(".shape")
    assert shape.evaluate("s => s.tagName") == "path"
    corners = [
        tuple(map(float, point.split(",")))
        for point in re.findall(r"[\d.]+,[\d.]+", shape.get_attribute("d"))
    ]
    assert len(corners) == 4 and re.fullmatch(r"M[\d.,]+(L[\d.,]+){3}Z", shape.get_attribute("d"))
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = corners  # a diamond: corners at top, right, bottom, left
    assert x0 == x2 and y1 == y3 and y0 < y1 < y2 and x3 < x0 < x1
    shot(page, "workflow-branch-skipped")


def test_terminate_then_resume_another(serve, page):
    id = submit(serve, "@flow waiting\nfetch → wait:event (- event: go -) → notify")
    page.goto(f"{serve}/console/#/workflows/{id}")
    expect(page.locator(".graph g.node.status-running, .graph g.node.status-queued")).to_have_count(
        1, timeout=20_000
    )
    page.get_by_role("button", name="Terminate").click()
    dialog = page.locator("dialog#confirm")
    expect(dialog).to_contain_text(f"Terminate workflow {id}?")
    dialog.get_by_role("button", name="Cancel").click()
    assert httpx.get(f"{serve}/workflows/{id}").json()["state"] == "running"
    page.locator("table.nodes tr", has_text="fetch").click()
    page.locator("aside.details").get_by_role("button", name="close").click()
    page.get_by_role("button", name="Terminate").click()
    dialog.get_by_role("button", name="Terminate").click()
    expect(page.locator("h1 .badge")).to_have_text("terminated")
    expect(page.locator(".graph g.node.status-terminated")).to_have_count(1)
    expect(page.locator("aside.details")).to_be_hidden()  # closed stays closed as the workflow changes
    shot(page, "workflow-terminated")
    page.get_by_role("button", name="Resume").click()
    dialog.get_by_role("button", name="Resume").click()
    expect(page.locator("h1 .badge")).to_have_text("running")
    deadline = time.monotonic() + 20
    while not httpx.post(f"{serve}/events/go", json={}).json()["ended"]:
        assert time.monotonic() < deadline, "the resumed wait never listened"
        time.sleep(0.2)
    expect(page.locator("h1 .badge")).to_have_text("finished", timeout=30_000)
    assert set(graph_statuses(page).values()) <= {"status-done", "status-waiting"}


def test_the_list_filters_searches_and_updates_live(serve, page):
    finished = submit(serve, "@flow alpha\nindex")
    failed = submit(serve, "@flow beta\ncrash")
    page.goto(f"{serve}/console/")
    expect(page.locator("table.workflows tbody tr")).to_have_count(2)
    expect(page.locator(f'tr[data-id="{failed}"] .badge')).to_have_text("failed")
    later = submit(serve, "@flow gamma\nindex → notify")  # appears without a reload
    expect(page.locator(f'tr[data-id="{later}"]')).to_be_visible()
    expect(page.locator(f'tr[data-id="{later}"] .badge')).to_have_text("finished")
    page.locator('.tabs button[data-state="failed"]').click()
    expect(page.locator("table.workflows tbody tr")).to_have_count(1)
    expect(page.locator("table.workflows tbody")).to_contain_text("beta")
    expect(page.locator('.tabs button[data-state="finished"] .count')).to_have_text("2")
    page.locator('.tabs button[data-state="all"]').click()
    page.get_by_label("search").fill("gam")  # (the start of an id or flow name)
    expect(page.locator("table.workflows tbody tr")).to_have_count(1)
    expect(page.locator("table.workflows tbody")).to_contain_text(later)
    page.get_by_label("search").fill(finished[:-1])
    expect(page.locator("table.workflows tbody tr")).to_have_count(1)
    page.get_by_label("search").fill("")
    expect(page.locator("table.workflows tbody tr")).to_have_count(3)
    shot(page, "workflow-list")
    page.goto(f"{serve}/console/#/?page=4")  # past the end: the last page shows
    expect(page.locator("table.workflows tbody tr")).to_have_count(3)
    expect(page.locator(".pager")).to_contain_text("1–3 of 3")
    page.locator(f'tr[data-id="{failed}"] a').click()
    expect(page.locator("table.nodes")).to_contain_text("the disk is full")
    expect(page.locator(".values pre.error")).to_contain_text("the disk is full")


def test_a_running_workflow_ages_in_the_list(serve, page):
    id = submit(serve, "@flow waits\nwait:event (- event: never -)")
    page.goto(f"{serve}/console/")
    took = page.locator(f'tr[data-id="{id}"] td.ticking')
    first = took.text_content()
    expect(took).not_to_have_text(first)  # a second later, without a change of the workflow


def test_compile_errors_show_where_before_anything_runs(serve, page):
    page.goto(f"{serve}/console/#/new")
    page.locator("label[for=flow-text]").click()  # the label goes to the text, not the file picker
    expect(page.get_by_label("flow text")).to_be_focused()
    page.get_by_label("flow text").fill("fetch →\n  { clean → }")
    error = page.locator("ul.errors li").first
    expect(error).to_contain_text(re.compile(r"line \d+, column \d+"))
    expect(page.get_by_role("button", name="Run")).to_be_disabled()
    shot(page, "compile-error")
    page.get_by_label("flow text").fill("fetch → notify")
    expect(page.locator("ul.errors li")).to_have_count(0)
    page.get_by_label("input JSON").fill("{nope")
    expect(page.locator(".editor p.error")).to_contain_text("not JSON")
    expect(page.get_by_role("button", name="Run")).to_be_disabled()
    assert httpx.get(f"{serve}/workflows").json()["workflows"] == []


def test_a_flow_too_big_to_draw_still_runs(serve, page):
    """Past the API's SVG limit the new-workflow view says so in place of the picture; Run works."""
    chains = "  ".join(
        " → ".join(f"index:{i}_{j}" for j in range(10)) for i in range(MAX_SVG_NODES // 10 + 1)
    )
    page.goto(f"{serve}/console/#/new")
    page.get_by_label("flow text").fill(f"@flow huge\nfetch → {{ {chains} }} → notify")
    expect(page.locator(".graph-message")).to_contain_text(f"at most {MAX_SVG_NODES:,} nodes")
    expect(page.locator("ul.errors li")).to_have_count(0)
    page.get_by_role("button", name="Run").click()
    expect(page).to_have_url(re.compile(r"#/workflows/"))
    expect(page.locator(".graph-message")).to_contain_text("format=json or format=mermaid")
    assert [w["name"] for w in httpx.get(f"{serve}/workflows").json()["workflows"]] == ["huge"]


def test_run_again_after_a_lost_answer_is_the_same_workflow(serve, page):
    """The first POST reaches the server, but its answer is dropped on the way back to the page
    (a network failure); Run again sends the same Idempotency-Key: one workflow, shown."""
    keys = []

    def lose_the_first_answer(route):
        keys.append(route.request.headers.get("idempotency-key"))
        answer = route.fetch()  # the server does the work
        if len(keys) == 1:
            assert answer.status == 201
            route.abort()
        else:
            route.fulfill(response=answer)

    page.route("**/workflows", lose_the_first_answer)
    page.goto(f"{serve}/console/#/new")
    page.get_by_label("flow text").fill("@flow once\nfetch → notify")
    run = page.get_by_role("button", name="Run")
    run.click()
    expect(page.locator(".toast")).to_contain_text("Cannot reach")
    run.click()
    expect(page).to_have_url(re.compile(r"#/workflows/"))
    assert len(keys) == 2 and keys[0] == keys[1] and re.fullmatch(r"[0-9a-f]{32}", keys[0])
    workflows = httpx.get(f"{serve}/workflows").json()["workflows"]
    assert [w["name"] for w in workflows] == ["once"] and page.url.endswith(workflows[0]["id"])


def test_a_flow_file_can_be_uploaded(serve, page, tmp_path):
    flow = tmp_path / "hello.flow"
    flow.write_text(HELLO, encoding="utf-8")
    page.goto(f"{serve}/console/#/new")
    page.get_by_label("flow file").set_input_files(flow)
    expect(page.get_by_label("flow text")).to_have_value(HELLO)
    expect(page.get_by_role("button", name="Run")).to_be_enabled()


def test_a_workflow_deleted_while_open_says_so(serve, page):
    id = submit(serve, "index")
    page.goto(f"{serve}/console/#/workflows/{id}")
    expect(page.locator("h1 .badge")).to_have_text("finished")
    assert httpx.delete(f"{serve}/workflows/{id}").status_code == 204
    expect(page.locator(".banner")).to_contain_text("deleted")
    expect(page.locator(".actions button")).to_have_count(0)


def test_a_refused_token_asks_again_and_goes_on_where_it_was(guarded_serve, page):
    id = submit(guarded_serve, "index", headers={"Authorization": f"Bearer {ADMIN}"})
    page.goto(f"{guarded_serve}/console/")
    page.get_by_label("token").fill(ADMIN)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(f'tr[data-id="{id}"]')).to_be_visible()
    page.evaluate("sessionStorage.setItem('littleflow-token', 'revoked-token-0123456789')")
    page.goto(f"{guarded_serve}/console/#/workflows/{id}")
    page.reload()  # (the page reads its token when it loads)
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("token").fill(ADMIN)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(rf"#/workflows/{id}$"))
    expect(page.locator("h1 .badge")).to_have_text("finished")
    page.get_by_role("link", name="Workflows").click()
    expect(page.locator(f'tr[data-id="{id}"]')).to_be_visible()


def test_archive_and_delete_with_confirmation(serve, page):
    id = submit(serve, "index")
    page.goto(f"{serve}/console/#/workflows/{id}")
    expect(page.locator("h1 .badge")).to_have_text("finished")
    with page.expect_download() as download:
        page.get_by_role("button", name="Archive").click()
    assert download.value.suggested_filename == f"{id}.json"
    assert '"flow"' in Path(download.value.path()).read_text(encoding="utf-8")
    page.get_by_role("button", name="Delete").click()
    page.locator("dialog#confirm").get_by_role("button", name="Delete").click()
    expect(page).to_have_url(re.compile(r"#/$"))
    assert httpx.get(f"{serve}/workflows/{id}").status_code == 404


def test_a_graph_of_hundreds_of_nodes_pans_and_zooms(serve, page):
    chains = "  ".join(" → ".join(f"index:{i}_{j}" for j in range(10)) for i in range(30))
    id = submit(serve, f"@flow wide\nfetch → {{ {chains} }} → notify")
    page.goto(f"{serve}/console/#/workflows/{id}")
    expect(page.locator(".graph g.node")).to_have_count(
        len(httpx.get(f"{serve}/workflows/{id}").json()["nodes"])
    )
    viewport = page.locator(".graph g.viewport")
    opened = scale(viewport.get_attribute("transform"))
    assert opened == pytest.approx(0.4)  # too big to be readable whole: it opens at its start, readable
    box = page.locator(".graph").bounding_box()
    start = page.locator(".graph g.node", has_text="fetch").bounding_box()
    assert box["x"] <= start["x"] and start["x"] + start["width"] <= box["x"] + box["width"]
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -600)  # the graph has no focus yet: the page scrolls, the graph stays
    assert scale(viewport.get_attribute("transform")) == opened
    page.mouse.click(box["x"] + box["width"] - 5, box["y"] + 5)  # (empty space: focus, no node)
    page.mouse.wheel(0, -600)
    expect(viewport).not_to_have_attribute("transform", re.compile(rf"scale\({opened:.4f}\)"))
    zoomed = scale(viewport.get_attribute("transform"))
    assert zoomed > opened
    before = viewport.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + 100, box["y"] + 100, steps=5)
    page.mouse.up()
    assert scale(viewport.get_attribute("transform")) == zoomed
    assert viewport.bounding_box()["x"] < before["x"]  # dragged left
    page.keyboard.press("ArrowLeft")
    shot(page, "big-graph-zoomed", full_page=False)
    page.get_by_role("button", name="Fit").click()
    whole, frame = viewport.bounding_box(), page.locator(".graph").bounding_box()
    assert frame["x"] <= whole["x"] and whole["x"] + whole["width"] <= frame["x"] + frame["width"] + 1
    assert frame["y"] <= whole["y"] and whole["y"] + whole["height"] <= frame["y"] + frame["height"] + 1
    page.get_by_label("filter nodes").fill("index:7_")
    expect(page.locator("table.nodes tbody tr")).to_have_count(10)


def test_a_finished_workflow_has_a_timeline_with_a_bar_per_task_run(serve, page):
    id = submit(serve, "@flow mapped\nfetch → <[1, 2, 3]> → * index → notify")
    failed = submit(serve, "@flow broken\nfetch → crash")
    page.goto(f"{serve}/console/#/workflows/{id}")
    expect(page.locator("h1 .badge")).to_have_text("finished", timeout=30_000)
    page.get_by_role("tab", name="Timeline").click()
    expect(page.locator(".graph")).to_be_hidden()
    bars = page.locator(".timeline g.run")
    expect(bars).to_have_count(5)  # fetch, index[0], index[1], index[2], notify
    runs = httpx.get(f"{serve}/workflows/{id}/timeline").json()["runs"]
    assert len(runs) == 5
    expect(page.locator(".timeline g.run.status-done")).to_have_count(5)
    labels = bars.locator("text.label").all_text_contents()
    assert labels[0] == "fetch" and sorted(labels[1:4]) == ["index[0]", "index[1]", "index[2]"]
    assert labels[4] == "notify"
    title = bars.first.locator("title").text_content()
    assert title.startswith("fetch: done\nattempt 1\nfrom +") and "worker " in title  # the hover details
    fill = bars.first.locator("rect.timebar").evaluate("r => getComputedStyle(r).fill")
    assert fill == "rgb(200, 230, 201)"  # the graphs' colour of done (#c8e6c9)
    fetch = bars.first.locator("rect.timebar")
    assert fetch.bounding_box()["height"] == pytest.approx(
        12, abs=1
    )  # within its row (no page style reaches it)
    before = float(fetch.get_attribute("width"))
    page.locator(".timeline-panel").get_by_role("button", name="+").click()
    page.locator(".timeline-panel").get_by_role("button", name="+").click()
    expect(page.locator(".timeline")).to_have_attribute("data-zoom", "2.25")
    assert float(fetch.get_attribute("width")) == pytest.approx(
        before * 2.25, abs=0.2
    )  # the time axis, wider
    box = page.locator(".timeline").bounding_box()
    page.mouse.click(box["x"] + box["width"] - 20, box["y"] + box["height"] - 20)  # (focus)
    page.mouse.wheel(0, 300)  # zooms out
    expect(page.locator(".timeline")).not_to_have_attribute("data-zoom", "2.25")
    page.get_by_role("button", name="Fit").last.click()
    expect(page.locator(".timeline")).to_have_attribute("data-zoom", "1.00")
    bar = bars.nth(2)
    item = bar.get_attribute("data-item")
    bar.locator("rect.timebar").click()  # an item run's bar opens that run
    expect(page.locator(".details h2")).to_have_text(f"index item {item} done")
    expect(page.locator(f'table.nodes tr.item[data-item="{item}"]')).to_have_class(
        re.compile(r"\bselected\b")
    )
    bars.first.locator("rect.timebar").click()  # another bar, its node
    expect(page.locator(".details h2")).to_have_text("fetch done")
    shot(page, "workflow-timeline")

    page.goto(f"{serve}/console/#/workflows/{failed}")
    expect(page.locator("h1 .badge")).to_have_text("failed", timeout=30_000)
    page.get_by_role("tab", name="Timeline").click()
    expect(page.locator(".timeline g.run")).to_have_count(2)
    expect(page.locator(".timeline g.run.status-done text.label")).to_have_text("fetch")
    expect(page.locator(".timeline g.run.status-failed text.label")).to_have_text("crash")
    assert "the disk is full" in page.locator(".timeline g.run.status-failed title").text_content()


def test_the_node_panel_shows_its_log_live_while_the_task_runs(serve, page, tmp_path):
    go = tmp_path / "go"  # (the task's second line waits for it: nothing here hangs on time)
    id = submit(serve, "@flow talking\nfetch → chatty", {"go": str(go)})
    page.add_init_script("""{ const fetch = window.fetch; window.logFetches = [];  // (counted in the page: in order)
        window.fetch = (url, options) => { if (String(url).includes("/logs?")) logFetches.push(String(url));
                                           return fetch(url, options); }; }""")
    asked = lambda: page.evaluate("logFetches")  # noqa: E731
    page.goto(f"{serve}/console/#/workflows/{id}")
    row = page.locator("table.nodes tr", has_text="chatty")
    expect(row.locator(".badge")).to_have_text("running", timeout=30_000)
    row.click()
    log = page.locator(".details .log-lines")
    expect(log).to_contain_text("first line")  # sent by the worker while the task runs
    expect(page.locator(".details h2 .badge")).to_have_text("running")
    expect(log).not_to_contain_text("second line")
    assert asked()[0].endswith("/logs?node=2")
    shot(page, "node-log-running")
    page.locator(".below").screenshot(path=ARTIFACTS / "node-log.png")

    page.get_by_role("button", name="close").click()  # no more fetches for a closed panel
    expect(page.locator(".details")).to_be_hidden()
    count = len(asked())
    time.sleep(2.5)  # (it asked every second while open)
    assert len(asked()) == count
    page.locator(".graph g.node", has_text="chatty").click()  # open again, from the graph
    expect(log).to_contain_text("first line")
    go.touch()
    expect(log).to_contain_text("second line", timeout=30_000)
    expect(page.locator(".details h2 .badge")).to_have_text("done")
    assert log.locator("pre").inner_text() == "first line\nsecond line"
    expect(log.locator(".log-head")).to_have_text("attempt 1 · done")

    fetched = len(asked())  # done: no more asking every second (one may follow the one in flight)
    time.sleep(2.5)
    assert len(asked()) <= fetched + 1


def test_a_node_log_is_text_even_if_it_looks_like_html(serve, page):
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message) or dialog.dismiss())
    id = submit(serve, "@flow hostile\nhostile")
    page.goto(f"{serve}/console/#/workflows/{id}")
    expect(page.locator("h1 .badge")).to_have_text("finished", timeout=30_000)
    page.locator("table.nodes tr", has_text="hostile").click()
    log = page.locator(".details .log-lines")
    expect(log).to_contain_text("<img src=x onerror=alert(1)>")
    assert page.locator(".details img").count() == 0 and not dialogs
    assert log.locator("pre").inner_text().splitlines()[-2:] == ["line 60", "<img src=x onerror=alert(1)>"]
    page.wait_for_function("""() => { const box = document.querySelector('.details .log-lines');
        return box.scrollHeight > box.clientHeight && box.scrollTop + box.clientHeight >= box.scrollHeight - 4; }""")


def test_a_node_log_shows_each_item_of_a_star_under_its_header(serve, page):
    id = submit(serve, "@flow items\n<[1, 2]> → * say")
    page.goto(f"{serve}/console/#/workflows/{id}")
    expect(page.locator("h1 .badge")).to_have_text("finished", timeout=30_000)
    page.locator("table.nodes tr", has_text="say").click()
    runs = page.locator(".details .log-run")
    expect(runs.locator(".log-head")).to_have_text(["item 0 · attempt 1 · done", "item 1 · attempt 1 · done"])
    expect(runs.locator("pre")).to_have_text(["saying 1", "saying 2"])


DOCUMENTED = """@flow documented '''
    Fetches a page, <img src=x onerror=alert(1)> and all,
    then notifies.
    '''
fetch → notify"""


def test_the_flow_doc_string_shows_under_its_name_as_text(serve, page):
    """On the workflow page and in the new-workflow preview; a doc string that looks like HTML
    is shown as the text it is."""
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message) or dialog.dismiss())
    text = "Fetches a page, <img src=x onerror=alert(1)> and all,\nthen notifies."
    id = submit(serve, DOCUMENTED)
    assert httpx.get(f"{serve}/workflows/{id}").json()["doc"] == text
    page.goto(f"{serve}/console/#/workflows/{id}")
    expect(page.locator(".head h1")).to_contain_text("documented")
    doc = page.locator(".head p.doc")
    expect(doc).to_have_text(text)
    assert doc.inner_text() == text  # its two lines, as lines
    assert page.locator(".head p.doc").bounding_box()["y"] > page.locator(".head h1").bounding_box()["y"]
    shot(page, "workflow-doc")
    undocumented = submit(serve, "@flow plain\nindex")
    page.goto(f"{serve}/console/#/workflows/{undocumented}")
    expect(page.locator(".head h1")).to_contain_text("plain")
    expect(page.locator(".head p.doc")).to_be_hidden()

    page.goto(f"{serve}/console/#/new")
    page.get_by_label("flow text").fill(DOCUMENTED)
    expect(page.locator(".preview p.doc")).to_have_text(text)
    page.get_by_label("flow text").fill("index")
    expect(page.locator(".preview g.node", has_text="index")).to_be_visible()
    expect(page.locator(".preview p.doc")).to_be_hidden()
    assert page.locator("main img").count() == 0 and not dialogs


def test_the_list_shows_the_date_of_a_workflow_not_from_today(serve, page):
    id = submit(serve, "@flow dated\nindex")
    created = httpx.get(f"{serve}/workflows/{id}").json()["created"]
    started = page.locator(f'tr[data-id="{id}"] td').nth(3)
    page.goto(f"{serve}/console/")
    expect(started).to_have_text(re.compile(r"^\d{1,2}:\d{2}:\d{2}( [AP]M)?$"))  # today: the time alone
    # two days later (the page's clock; the server's and the workflow's times as they are)
    page.clock.set_fixed_time(datetime.fromtimestamp(created + 2 * 86400))
    page.reload()
    expect(started).to_have_text(datetime.fromtimestamp(created).strftime("%Y-%m-%d %H:%M"))
    assert (
        started.locator("time")
        .get_attribute("datetime")
        .startswith(datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M"))
    )
    shot(page, "workflow-list-another-day")


def test_a_star_node_has_a_row_per_item_and_a_click_opens_that_run(serve, page):
    id = submit(serve, "@flow items\n<[1, 2, 3]> → * say")
    page.goto(f"{serve}/console/#/workflows/{id}")
    expect(page.locator("h1 .badge")).to_have_text("finished", timeout=30_000)
    node = next(n for n in httpx.get(f"{serve}/workflows/{id}").json()["nodes"] if n["name"] == "say")
    items = page.locator("table.nodes tr.item")
    expect(items).to_have_count(3)
    expect(items.locator("td.item")).to_have_text(["item 0", "item 1", "item 2"])
    expect(items.locator(".badge")).to_have_text(["done"] * 3)
    rows = page.eval_on_selector_all(
        "table.nodes tbody tr",
        "rows => rows.map(r => r.dataset.item === undefined ? r.dataset.node : '.' + r.dataset.item)",
    )
    assert rows[-4:] == [str(node["id"]), ".0", ".1", ".2"]  # under their node's row
    assert all(
        re.fullmatch(r"\d+ ms|\d+\.\d s", items.nth(n).locator("td").nth(6).inner_text()) for n in range(3)
    )
    expect(page.locator("table.nodes tr.more")).to_have_count(0)
    items.nth(1).click()
    expect(items.nth(1)).to_have_class(re.compile(r"\bselected\b"))
    details = page.locator("aside.details")
    expect(details.locator("h2")).to_have_text("say item 1 done")
    expect(details).to_contain_text(node["items"]["runs"][1]["task"])
    expect(details.locator("h3")).to_have_text(["Input", "Output", "Log"])  # that run's own
    expect(details.locator("h3 + pre")).to_have_text(["2", "2"])
    expect(items.nth(1).locator("td.json")).to_have_text(["2", "2"])
    expect(details.locator(".log-run pre")).to_have_text(["saying 2"])  # that item's run alone
    shot(page, "workflow-item-rows")
    page.locator("table.nodes tbody tr", has_text="say").first.click()  # the node: every item's log
    expect(details.locator("h2")).to_have_text("say done")
    expect(details.locator(".log-run pre")).to_have_text(["saying 1", "saying 2", "saying 3"])

    many = ", ".join(str(n) for n in range(250))
    big = submit(serve, f"@flow many\n<[{many}]> → * index")
    page.goto(f"{serve}/console/#/workflows/{big}")
    expect(page.locator("h1 .badge")).to_have_text("finished", timeout=60_000)
    expect(page.locator("table.nodes tr.item")).to_have_count(100)  # the first 100, then a line
    expect(page.locator("table.nodes tr.item td.item").last).to_have_text("item 99")
    expect(page.locator("table.nodes tr.more")).to_have_text(re.compile(r"^… 150 more items"))
    page.locator("table.nodes tr.more").scroll_into_view_if_needed()
    page.locator(".nodes-box").screenshot(path=ARTIFACTS / "workflow-item-rows-more.png")
    page.get_by_label("filter nodes").fill("failed")  # none failed: no rows
    expect(page.locator("table.nodes tr.item")).to_have_count(0)
    page.get_by_label("filter nodes").fill("")
    expect(page.locator("table.nodes tr.item")).to_have_count(100)


def scale(transform: str) -> float:
    return float(re.search(r"scale\(([\d.]+)\)", transform)[1])


def test_sign_in_with_a_token_read_only_or_admin(guarded_serve, page):
    id = submit(guarded_serve, "fetch", headers={"Authorization": f"Bearer {ADMIN}"})
    page.goto(f"{guarded_serve}/console/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("token").fill("not-a-token-at-all-really")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".sign-in .error")).to_have_text("That token was refused.")
    page.get_by_label("token").fill(READER)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(f'tr[data-id="{id}"]')).to_be_visible()
    expect(page.locator("#scope")).to_have_text("read only")
    expect(page.get_by_role("link", name="New workflow")).to_be_hidden()
    page.locator(f'tr[data-id="{id}"] a').click()
    expect(page.locator("h1 .badge")).to_have_text("finished")
    expect(page.get_by_role("button", name="Delete")).to_be_hidden()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("token").fill(ADMIN)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#scope")).to_have_text("admin")
    expect(page.get_by_role("button", name="Delete")).to_be_visible()
    shot(page, "signed-in-admin")


def test_the_console_is_served_with_strict_headers(serve):
    page = httpx.get(f"{serve}/console/")
    assert page.status_code == 200 and "console.js" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert httpx.get(f"{serve}/", follow_redirects=False).headers["location"].endswith("console/")
    assert (
        httpx.get(f"{serve}/console/console.js")
        .headers["content-type"]
        .startswith(("text/javascript", "application/javascript"))
    )


@pytest.fixture
def own_serve(redis_url, tmp_path):
    """A `littleflow serve --api` with no tokens configured: (base URL, the line it printed with the
    console's address, the token it made in tmp_path)."""
    process, base = start_serve(redis_url, args=("--data", str(tmp_path)))
    while "the console on" not in (line := process.stderr.readline()):
        assert line, "serve never said where the console is"
    yield base, line, (tmp_path / "api.token").read_text().strip()
    stop(process)


def test_the_printed_address_signs_the_console_in_and_leaves_the_address_bar(own_serve, page):
    base, line, token = own_serve
    id = submit(base, "index", headers={"Authorization": f"Bearer {token}"})
    address = re.search(r"http://\S+/console/#token=[\w-]+", line).group(0)
    page.goto(address)
    expect(page.locator(f'tr[data-id="{id}"]')).to_be_visible()
    assert page.url == f"{base}/console/#/"
    assert page.evaluate("sessionStorage.getItem('littleflow-token')") == token
    assert page.evaluate("localStorage.getItem('littleflow-token')") is None
    page.get_by_role("link", name="New workflow").click()
    page.get_by_label("flow text").fill("index")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("h1 .badge")).to_have_text("finished")
    assert token not in page.url


#: A page of another site that tries to start a workflow on the API: a "simple" cross-origin
#: fetch (no preflight) and a form, as any page the user visits could.
ATTACK = """<!doctype html><title>attack</title>
<iframe name="sink"></iframe>
<form method="post" enctype="multipart/form-data" action="API/workflows" target="sink">
  <input name="flow" value="wait:delay (- duration: 0 -)"></form>
<script>
const done = what => { document.body.dataset.done = (document.body.dataset.done || "") + what + " "; };
fetch("API/workflows", { method: "POST", mode: "no-cors", headers: { "Content-Type": "text/plain" },
                         body: "wait:delay (- duration: 0 -)" }).then(() => done("fetch"), () => done("fetch"));
const sink = document.querySelector("iframe");
sink.addEventListener("load", () => {
  try { sink.contentWindow.location.href; } catch { done("form"); }  // (the API's answer is in the frame)
});
document.querySelector("form").submit();
</script>"""


@pytest.mark.parametrize("auth", ["token", "no-auth"])
def test_a_page_of_another_origin_cannot_start_a_workflow(redis_url, tmp_path, http_server, page, auth):
    process, base = start_serve(
        redis_url, args=("--data", str(tmp_path)) if auth == "token" else ("--api-no-auth",)
    )
    try:
        headers = (
            {"Authorization": f"Bearer {(tmp_path / 'api.token').read_text().strip()}"}
            if auth == "token"
            else {}
        )
        attack = http_server.serve("/attack.html", ATTACK.replace("API", base), "text/html")
        assert not attack.startswith(base)  # another origin: another port
        page.goto(attack)
        page.wait_for_function(
            "(document.body.dataset.done || '').split(' ').length === 3"
        )  # both sent, answered
        assert httpx.get(f"{base}/workflows", headers=headers).json()["total"] == 0
        shot(page, f"cross-origin-refused-{auth}")
        same = httpx.post(
            f"{base}/workflows",
            content="wait:delay (- duration: 0 -)",
            headers={**headers, "Content-Type": "text/plain", "Origin": base},
        )
        assert same.status_code == 201  # (the same request from the API's own origin is let in)
    finally:
        stop(process)
