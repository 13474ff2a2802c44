"""The REST API served by a real uvicorn server, on a real Redis, with real engine and workers."""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from xml.etree import ElementTree

import httpx
import pytest
import uvicorn
from rediscluster import on_server_and_cluster

from littleflow.api import create_app
from littleflow.redis import Client, Services
from littleflow.redis.server import free_port
from littleflow.tasks import Registry


@contextlib.contextmanager
def serving(app):
    """``app`` on a real uvicorn server on a free port; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the API server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(5)


@pytest.fixture
def api(redis_url):
    """(base URL of the API, Client) with an engine, the built-in tasks and tasks A and boom running."""
    registry = Registry()
    registry.add("A", lambda input: {"a": input})
    registry.add("boom", lambda input: 1 / 0)
    with Services(redis_url, tasks=registry, claim_idle=1.0), serving(create_app(redis_url)) as base:
        yield base, Client(redis_url)


def finished(http, base, id):
    deadline = time.monotonic() + 10
    while (document := http.get(f"{base}/workflows/{id}").json())["state"] == "running":
        assert time.monotonic() < deadline, "still running"
        time.sleep(0.02)
    return document


def test_submit_json_then_the_status_is_the_cli_document(api):
    base, client = api
    with httpx.Client() as http:
        answer = http.post(f"{base}/workflows", json={"flow": "A → A", "input": {"k": 1}})
        assert answer.status_code == 201
        id = answer.json()["id"]
        document = finished(http, base, id)
    assert document["output"] == {"a": {"a": {"k": 1}}}
    assert document == client.status(id)


def test_nodes_show_their_input_output_and_error(api):
    base, client = api
    with httpx.Client() as http:
        id = http.post(f"{base}/workflows", json={"flow": "A → boom", "input": {"k": 1}}).json()["id"]
        document = finished(http, base, id)
    a, boom = document["nodes"][1:3]
    assert (a["status"], a["input"], a["output"]) == ("done", {"k": 1}, {"a": {"k": 1}})
    assert (boom["status"], boom["input"], boom["output"]) == ("failed", {"a": {"k": 1}}, None)
    assert boom["error"] == "ZeroDivisionError: division by zero"
    assert document == client.status(id)


def test_the_status_document_has_the_flow_doc_and_each_item_run_of_a_star(api):
    base, client = api
    id = client.submit("@flow mapped '''Splits <b>it</b>,\n  then maps.'''\n<[[1, 2], [3]]> → * { * A }")
    document = client.wait(id, 20)
    assert document == httpx.get(f"{base}/workflows/{id}").json()
    assert document["doc"] == "Splits <b>it</b>,\nthen maps."  # (its indentation removed)
    (a,) = [n for n in document["nodes"] if n["name"] == "A"]
    assert all(n["items"] is None for n in document["nodes"] if n is not a)
    assert a["items"]["count"] == 3
    runs = a["items"]["runs"]
    assert [(r["index"], r["status"], r["attempt"]) for r in runs] == [
        ([0, 0], "done", 1),
        ([0, 1], "done", 1),
        ([1, 0], "done", 1),
    ]  # item 1 of the * inside item 0 of the outer one …
    assert all(r["started"] <= r["ended"] and r["worker"] and r["error"] is None for r in runs)
    assert [(r["input"], r["output"]) for r in runs] == [(n, {"a": n}) for n in (1, 2, 3)]  # each its own
    assert len({r["task"] for r in runs}) == 3

    items = ", ".join(str(n) for n in range(150))
    held = client.submit(f"@flow held (- parallelism: 2 -)\n<[{items}]> → * wait:event (- event: never -)")
    deadline = time.monotonic() + 10
    while (node := client.status(held)["nodes"][2])["items"]["runs"][0]["status"] != "running":
        assert time.monotonic() < deadline, node
        time.sleep(0.05)
    assert node["items"]["count"] == 150  # two sent, the rest held back by the parallelism
    runs = node["items"]["runs"]
    assert [r["index"] for r in runs] == [[n] for n in range(100)]  # the first 100
    assert [r["status"] for r in runs[2:]] == ["queued"] * 98 and runs[99]["started"] is None
    assert [r["input"] for r in runs] == list(range(100)) and runs[0]["output"] is None
    client.terminate(held)
    assert {r["status"] for r in client.status(held)["nodes"][2]["items"]["runs"]} == {"terminated"}
    assert document["doc"] is not None and client.status(held)["doc"] is None

    # a workflow that fails never sends what it held back: those runs are unreached
    failing = client.submit("@flow failing (- parallelism: 1 -)\n<[1, 2, 3]> → * boom")
    assert client.wait(failing, 20)["state"] == "failed"
    runs = client.status(failing)["nodes"][2]["items"]["runs"]
    assert [(r["index"], r["status"]) for r in runs] == [
        ([0], "failed"),
        ([1], "unreached"),
        ([2], "unreached"),
    ]


def test_submit_plain_text(api):
    base, _ = api
    with httpx.Client() as http:
        id = http.post(f"{base}/workflows", content="A", headers={"content-type": "text/plain"}).json()["id"]
        assert finished(http, base, id)["output"] == {"a": {}}


def test_bad_flow_text_is_a_problem_with_line_and_column(api):
    base, _ = api
    answer = httpx.post(f"{base}/workflows", json={"flow": "A → { B"})
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["title"] == "Invalid flow" and problem["status"] == 422
    assert problem["errors"][0]["line"] == 1 and problem["errors"][0]["column"] == 5
    assert "Traceback" not in answer.text


@pytest.mark.parametrize("body, status", [("not json", 400), ('{"input": 1}', 422), ("[1, 2]", 422)])
def test_bad_bodies_are_problems(api, body, status):
    base, _ = api
    answer = httpx.post(f"{base}/workflows", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == status and answer.json()["status"] == status


def test_unknown_workflows_are_404(api):
    base, _ = api
    for method, path in (
        ("GET", "/workflows/nope"),
        ("POST", "/workflows/nope/terminate"),
        ("POST", "/workflows/nope/resume"),
        ("DELETE", "/workflows/nope"),
        ("GET", "/workflows/nope/archive"),
    ):
        answer = httpx.request(method, base + path)
        assert answer.status_code == 404, path
        assert answer.json()["detail"] == "no workflow nope"


def test_the_definition_is_the_flow_text_as_submitted_and_its_graph(api):
    base, _ = api
    text = "@flow greet\n# a comment stays\nA → A"
    with httpx.Client() as http:
        id = http.post(f"{base}/workflows", content=text, headers={"Content-Type": "text/plain"}).json()["id"]
        definition = http.get(f"{base}/workflows/{id}/definition").json()
        assert (definition["id"], definition["name"], definition["text"]) == (id, "greet", text)
        assert [n["name"] for n in definition["flow"]["nodes"]] == [None, "A", "A", None]
        assert http.get(f"{base}/workflows/nope/definition").status_code == 404


def test_a_failure_terminate_resume_and_an_event(api):
    base, client = api
    with httpx.Client() as http:
        failed = http.post(f"{base}/workflows", json={"flow": "boom"}).json()["id"]
        document = finished(http, base, failed)
        assert (
            document["state"] == "failed"
            and document["error"]["error"] == "ZeroDivisionError: division by zero"
        )
        waiting = http.post(f"{base}/workflows", json={"flow": 'wait:event ({"event": "go"}) → A'}).json()[
            "id"
        ]
        assert http.post(f"{base}/workflows/{waiting}/terminate").json()["state"] == "terminated"
        assert http.post(f"{base}/workflows/{waiting}/terminate").status_code == 409
        assert http.post(f"{base}/workflows/{waiting}/resume").json()["state"] == "running"
        deadline = time.monotonic() + 10
        while http.post(f"{base}/events/go", json={"by": "api"}).json()["ended"] == 0:
            assert time.monotonic() < deadline, f"the waiter never listened: {waits_of(client, waiting)}"
            time.sleep(0.05)
        assert finished(http, base, waiting)["output"] == {"a": {"by": "api"}}


def waits_of(client, id):
    """What Redis holds of workflow ``id``'s waiting: its state, task info, log and the
    start messages of ``wait:`` tasks not acknowledged yet (what a failure needs to say)."""
    status = client.status(id)
    pending = {
        stream: client.redis.xpending(stream, group["name"])
        for stream in client.queues()
        if "wait" in stream
        for group in client.redis.xinfo_groups(stream)
    }
    return {
        "state": status["state"],
        "nodes": status.get("nodes"),
        "log": status.get("log"),
        "pending": pending,
    }


def test_list_pages_and_filters(api):
    base, _ = api
    with httpx.Client() as http:
        ids = [http.post(f"{base}/workflows", json={"flow": "A", "input": n}).json()["id"] for n in range(3)]
        for id in ids:
            finished(http, base, id)
        page = http.get(f"{base}/workflows", params={"state": "finished", "offset": 1, "limit": 1}).json()
        assert [w["id"] for w in page["workflows"]] == ids[1:2]
        assert (page["offset"], page["limit"], page["total"]) == (1, 1, 3)
        assert http.get(f"{base}/workflows", params={"state": "failed"}).json()["total"] == 0
        assert http.get(f"{base}/workflows", params={"state": "sleeping"}).status_code == 422


def test_list_searches_prefixes_of_ids_and_flow_names_and_counts_the_matches(api):
    base, _ = api
    with httpx.Client() as http:
        ids = [
            http.post(f"{base}/workflows", json={"flow": flow}).json()["id"]
            for flow in ("A", "@flow nightly-report\nA", "@flow nightly\nA", "nobody:serves")
        ]

        def listed(**params):
            page = http.get(f"{base}/workflows", params=params).json()
            return [w["id"] for w in page["workflows"]], page["total"]

        assert listed(q="night") == (ids[1:3], 2)
        assert listed(q="NIGHTLY") == listed(q="report") == ([], 0)  # a prefix, case-sensitive
        assert listed(q="nightly", limit=1, offset=1) == (ids[2:3], 2)
        assert listed(q=ids[3]) == (ids[3:], 1) and listed(q=ids[3][-8:]) == ([], 0)
        assert listed(q="nightly", name="nightly") == (ids[2:3], 1)
        for id in ids[:3]:
            finished(http, base, id)
        assert listed(q="nightly", state="finished") == (ids[1:3], 2)
        assert listed(q="nightly", state="running") == ([], 0)
        assert listed(state="running") == (ids[3:], 1)
        assert listed(q="no such thing") == ([], 0)
        assert listed(limit=2) == (ids[:2], 4)
        assert http.get(f"{base}/workflows", params={"q": "x" * 201}).status_code == 422

        def counts(**params):
            return http.get(f"{base}/workflows", params=params).json()["counts"]

        nightly = {"running": 0, "finished": 2, "failed": 0, "terminated": 0}
        for state in ("running", "finished", "failed", "terminated"):
            assert counts(state=state) == {
                **nightly,
                "running": 1,
                "finished": 3,
            }  # without q: every workflow
            assert counts(q="nightly", state=state, limit=1) == nightly
            assert counts(q="nightly", name="nightly", state=state) == {**nightly, "finished": 1}
            assert counts(q="no such thing", state=state) == dict.fromkeys(nightly, 0)


def test_archive_delete_restore(api):
    base, _ = api
    with httpx.Client() as http:
        id = http.post(f"{base}/workflows", json={"flow": "A"}).json()["id"]
        before = finished(http, base, id)
        archive = http.get(f"{base}/workflows/{id}/archive")
        assert archive.headers["content-disposition"] == f'attachment; filename="{id}.json"'
        assert http.delete(f"{base}/workflows/{id}").status_code == 204
        assert http.get(f"{base}/workflows/{id}").status_code == 404
        assert http.post(f"{base}/archives", json=archive.json()).json()["id"] == id
        assert http.get(f"{base}/workflows/{id}").json() == before
        assert http.post(f"{base}/archives", json=archive.json()).status_code == 409
        for dots in (".", ".."):
            answer = http.post(f"{base}/archives", json={**archive.json(), "id": dots})
            assert answer.status_code == 422 and answer.json()["title"] == "Invalid archive"


def test_compile_preview_runs_nothing(api):
    base, client = api
    answer = httpx.post(f"{base}/compile", content="A → B", headers={"content-type": "text/plain"})
    assert answer.status_code == 200 and [n.get("name") for n in answer.json()["nodes"]][1:3] == ["A", "B"]
    assert client.list() == []
    assert httpx.post(f"{base}/compile", content="A →").status_code == 422


def test_health_readiness_and_openapi(api):
    base, _ = api
    assert httpx.get(f"{base}/health").json() == {"status": "ok"}
    assert httpx.get(f"{base}/ready").json() == {"status": "ready"}
    paths = httpx.get(f"{base}/openapi.json").json()["paths"]
    assert {
        "/workflows",
        "/workflows/{id}",
        "/workflows/{id}/watch",
        "/events/{event}",
        "/compile",
        "/archives",
        "/session",
    } <= paths.keys()


def test_a_body_too_large_is_refused(api):
    base, _ = api
    answer = httpx.post(
        f"{base}/workflows", content=b"x" * (10 * 1024 * 1024 + 1), headers={"content-type": "text/plain"}
    )
    assert answer.status_code == 413


def test_readiness_fails_when_redis_is_gone(own_redis_server):
    with serving(create_app(own_redis_server.url)) as base:
        own_redis_server.stop()
        answer = httpx.get(f"{base}/ready")
        assert answer.status_code == 503 and answer.json()["title"] == "Store unavailable"
        assert httpx.get(f"{base}/workflows/x").status_code == 503


def test_graph_as_json_and_mermaid_coloured_by_status(api):
    base, _ = api
    with httpx.Client() as http:
        id = http.post(f"{base}/workflows", json={"flow": "A → boom → A"}).json()["id"]
        document = finished(http, base, id)
        # the last A never ran, and the workflow has ended: unreached, not waiting
        shown = [
            ("START", "done"),
            ("A", "done"),
            ("boom", "failed"),
            ("A", "unreached"),
            ("END", "unreached"),
        ]
        assert [(n["label"], n["status"]) for n in document["nodes"]] == shown
        graph = http.get(f"{base}/workflows/{id}/graph").json()
        assert [n["status"] for n in graph["nodes"]] == [status for _, status in shown]
        assert graph["edges"]
        mermaid = http.get(f"{base}/workflows/{id}/graph", params={"format": "mermaid"})
        assert mermaid.headers["content-type"].startswith("text/plain")
        assert mermaid.text.startswith("stateDiagram-v2") and "classDef failed" in mermaid.text
        assert "classDef unreached" in mermaid.text
        svg = http.get(f"{base}/workflows/{id}/graph", params={"format": "svg"})
        assert svg.headers["content-type"].startswith("image/svg+xml")
        nodes = ElementTree.fromstring(svg.text).iter("{http://www.w3.org/2000/svg}g")
        classes = {g.get("data-node"): g.get("class") for g in nodes if g.get("data-node")}
        assert "status-done" in classes["1"] and "status-failed" in classes["2"]
        assert "status-unreached" in classes["3"]
        assert http.get(f"{base}/workflows/{id}/graph", params={"format": "png"}).status_code == 422


def test_compile_preview_as_an_svg_picture(api):
    base, _ = api
    with httpx.Client() as http:
        svg = http.post(
            f"{base}/compile",
            params={"format": "svg"},
            content="A → { B  C }",
            headers={"Content-Type": "text/plain"},
        )
        assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
        assert (
            len(
                [
                    g
                    for g in ElementTree.fromstring(svg.text).iter("{http://www.w3.org/2000/svg}g")
                    if g.get("data-node")
                ]
            )
            == 7
        )  # START, A, fork, B, C, join, END
        bad = http.post(
            f"{base}/compile", params={"format": "svg"}, content="A →", headers={"Content-Type": "text/plain"}
        )
        assert bad.status_code == 422 and bad.json()["errors"][0]["line"] == 1


def test_compile_preview_svg_of_characters_xml_cannot_hold_is_well_formed(api):
    base, _ = api
    svg = httpx.post(
        f"{base}/compile",
        params={"format": "svg"},
        content='A → <{"v": "\\uffff\\u0001"}> → B',
        headers={"Content-Type": "text/plain"},
    )
    assert svg.status_code == 200
    assert "\ufffd" in "".join(ElementTree.fromstring(svg.text).itertext())


def test_a_lone_surrogate_in_a_literal_is_a_positioned_flow_error(api):
    base, client = api
    text = 'A\n  → <{"v": "\\ud800"}> → B'
    with httpx.Client() as http:
        for format in ("json", "svg"):
            answer = http.post(
                f"{base}/compile",
                params={"format": format},
                content=text,
                headers={"Content-Type": "text/plain"},
            )
            assert answer.status_code == 422 and answer.json()["title"] == "Invalid flow"
            assert answer.json()["errors"][0]["line"] == 2 and answer.json()["errors"][0]["column"] == 5
            assert "lone surrogate \\ud800" in answer.json()["errors"][0]["message"]
        for flow in (text, 'A → B\n"""doc \ud800"""'):
            answer = http.post(
                f"{base}/workflows",
                content=json.dumps({"flow": flow}),
                headers={"Content-Type": "application/json"},
            )
            assert answer.status_code == 422 and answer.json()["title"] == "Invalid flow"
    assert client.list() == []


def test_the_list_newest_first(api):
    base, client = api
    ids = [client.submit("A") for _ in range(3)]
    with httpx.Client() as http:
        newest = http.get(f"{base}/workflows", params={"order": "newest", "limit": 2}).json()
        assert [w["id"] for w in newest["workflows"]] == ids[::-1][:2] and newest["total"] == 3
        assert sum(newest["counts"].values()) == 3
        searched = http.get(f"{base}/workflows", params={"order": "newest", "q": ids[0]}).json()
        assert [w["id"] for w in searched["workflows"]] == [ids[0]]
        assert http.get(f"{base}/workflows", params={"order": "sideways"}).status_code == 422


def test_metrics_count_workflows_by_state_and_queue_depths(api):
    base, _ = api
    with httpx.Client() as http:
        finished(http, base, http.post(f"{base}/workflows", json={"flow": "A"}).json()["id"])
        http.post(f"{base}/workflows", json={"flow": "nobody:serves"})
        deadline = time.monotonic() + 10  # (the engine writes run times a moment after the step)
        while 'littleflow_task_seconds_count{task="A"} 1' not in (text := http.get(f"{base}/metrics").text):
            assert time.monotonic() < deadline, text
            time.sleep(0.05)
    assert 'littleflow_workflows{state="finished"} 1' in text
    assert 'littleflow_workflows{state="running"} 1' in text
    assert 'littleflow_stream_messages{stream="{lf}:task:nobody:serves"} 1' in text
    assert "# TYPE littleflow_stream_pending gauge" in text
    assert 'littleflow_task_seconds_bucket{task="A",le="+Inf"} 1' in text
    assert 'littleflow_task_seconds_count{task="A"} 1' in text
    buckets = [
        float(line.rpartition(" ")[2])
        for line in text.splitlines()
        if line.startswith('littleflow_task_seconds_bucket{task="A"')
    ]
    assert buckets == sorted(buckets) and buckets[-1] == 1  # cumulative


@on_server_and_cluster
def test_the_event_stream_shows_state_changes_and_events_as_they_happen(api):
    base, _ = api
    seen = []
    with httpx.Client(timeout=10) as http, http.stream("GET", f"{base}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        assert next(lines) == ": littleflow events"
        id = http.post(f"{base}/workflows", json={"flow": "A"}).json()["id"]
        http.post(f"{base}/events/hello", json={"x": 1})
        for line in lines:
            if line.startswith("data: "):
                seen.append(json.loads(line[6:]))
            if {"kind": "event", "event": "hello", "data": {"x": 1}} in seen and any(
                e.get("workflow") == id and e.get("state") == "finished" for e in seen
            ):
                break
    assert any(e.get("workflow") == id and e.get("state") == "running" for e in seen)


def test_the_event_stream_shows_deletions(api):
    base, _ = api
    with httpx.Client(timeout=10) as http:
        id = http.post(f"{base}/workflows", json={"flow": "A"}).json()["id"]
        finished(http, base, id)
        with http.stream("GET", f"{base}/events") as stream:
            lines = stream.iter_lines()
            assert next(lines) == ": littleflow events"
            assert http.delete(f"{base}/workflows/{id}").status_code == 204
            kind = next(line for line in lines if line.startswith("event: "))
            data = json.loads(next(lines)[6:])
    assert kind == "event: workflow" and data == {"kind": "workflow", "workflow": id, "state": "deleted"}


READ, ADMIN = "r" * 24, "a" * 24


@pytest.fixture
def guarded(redis_url):
    from littleflow.api.auth import Tokens

    with serving(create_app(redis_url, tokens=Tokens.parse(f"read:{READ}, admin:{ADMIN}", "test"))) as base:
        yield base


def test_with_tokens_reading_needs_a_read_token_and_changing_an_admin_one(guarded):
    base = guarded

    def bearer(token):
        return {"authorization": f"Bearer {token}"}

    assert httpx.get(f"{base}/health").status_code == 200  # the probes stay open
    unauthorized = httpx.get(f"{base}/workflows")
    assert unauthorized.status_code == 401 and unauthorized.headers["www-authenticate"] == "Bearer"
    assert unauthorized.json()["title"] == "Unauthorized"
    assert httpx.get(f"{base}/workflows", headers=bearer("wrong-token-of-some-length")).status_code == 401
    assert httpx.get(f"{base}/workflows", headers=bearer(READ)).status_code == 200
    refused = httpx.post(f"{base}/workflows", json={"flow": "A"}, headers=bearer(READ))
    assert refused.status_code == 403 and "admin" in refused.json()["detail"]
    assert httpx.post(f"{base}/workflows", json={"flow": "A"}, headers=bearer(ADMIN)).status_code == 201


def test_the_interactive_docs_work_offline(guarded):
    base = guarded
    for page in ("/docs", "/redoc"):
        html = httpx.get(base + page)
        assert html.status_code == 200
        scripts = re.findall(r'(?:src|href)="([^"]+)"', html.text)
        assert scripts and all(url.startswith("/") for url in scripts), scripts  # nothing from another host
        for url in scripts:
            assert httpx.get(base + url).status_code == 200, url


def test_what_schemathesis_found(api):
    base, _ = api
    assert httpx.get(f"{base}/workflows", params={"offset": 75427028724831633408}).status_code == 422
    answer = httpx.post(f"{base}/events/x", content="null", headers={"content-type": "text/plain"})
    assert answer.status_code == 415
    id = httpx.post(f"{base}/workflows", json={"flow": "nobody:serves"}).json()["id"]
    graph = httpx.get(f"{base}/workflows/{id}/graph", params={"format": "mermaid"})
    assert graph.status_code == 200 and "queued" in graph.text


def test_submit_a_flow_file_as_a_form(api):
    base, _ = api
    with httpx.Client() as http:
        answer = http.post(
            f"{base}/workflows",
            files={"flow": ("my.flow", b"A \xe2\x86\x92 A\n", "text/plain")},
            data={"input": '{"k": 2}'},
        )
        assert answer.status_code == 201, answer.text
        assert finished(http, base, answer.json()["id"])["output"] == {"a": {"a": {"k": 2}}}
        assert (
            http.post(f"{base}/workflows", data={"input": "{}"}, files={"other": ("x", b"A")}).status_code
            == 422
        )
        assert (
            http.post(
                f"{base}/workflows", files={"flow": ("my.flow", b"A")}, data={"input": "{nope"}
            ).status_code
            == 400
        )


def test_cors_is_off_unless_origins_are_given(redis_url):
    preflight = {"origin": "https://console.example", "access-control-request-method": "POST"}
    with serving(create_app(redis_url)) as base:
        assert (
            "access-control-allow-origin" not in httpx.options(f"{base}/workflows", headers=preflight).headers
        )
    with serving(create_app(redis_url, cors=["https://console.example"])) as base:
        allowed = httpx.options(f"{base}/workflows", headers=preflight)
    assert allowed.headers["access-control-allow-origin"] == "https://console.example"


def test_a_chunked_body_too_large_is_refused_too(api):
    base, _ = api

    def chunks():
        for _ in range(11):
            yield b"x" * (1024 * 1024)

    answer = httpx.post(f"{base}/compile", content=chunks(), headers={"content-type": "text/plain"})
    assert answer.status_code == 413 and answer.json()["title"] == "Request too large"


def test_what_the_api_review_found(api, redis_url):
    base, _ = api
    with httpx.Client() as http:
        # a multipart body sent in chunks is limited too
        def chunks():
            yield b'--b\r\nContent-Disposition: form-data; name="flow"; filename="f"\r\n\r\n'
            for _ in range(11):
                yield b"x" * (1024 * 1024)
            yield b"\r\n--b--\r\n"

        big = http.post(
            f"{base}/workflows", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"}
        )
        assert big.status_code == 413
        # ids that would reach other keys are no workflow at all
        id = http.post(f"{base}/workflows", json={"flow": "A"}).json()["id"]
        finished(http, base, id)
        for path in (f"/workflows/{id}:log", f"/workflows/{id}:tasks/archive"):
            assert http.get(base + path).status_code == 404, path
        # an archive that is not one is unprocessable, not a conflict
        assert http.post(f"{base}/archives", json={"format": "nope"}).status_code == 422
        # every error is a problem document, routing errors too
        for answer in (http.get(f"{base}/nowhere"), http.put(f"{base}/workflows")):
            assert answer.headers["content-type"] == "application/problem+json"
        # an event id beyond 64 bits
        assert http.get(f"{base}/events", params={"since": "99999999999999999999-1"}).status_code == 422


def test_an_idle_event_stream_stays_open_and_goes_on_after_last_event_id(api):
    base, client = api
    first = client.send("one", {"n": 1}) or client.redis.xrevrange(client.keys.events, count=1)[0][0]
    client.send("two", {"n": 2})
    with (
        httpx.Client(timeout=20) as http,
        http.stream("GET", f"{base}/events", headers={"last-event-id": first}) as stream,
    ):
        lines = (line for line in stream.iter_lines() if line)
        assert next(lines) == ": littleflow events"
        assert next(lines).startswith("id: ")
        assert next(lines) == "event: event"
        assert json.loads(next(lines)[6:])["event"] == "two"  # after the one it had seen
        began = time.monotonic()
        while next(lines) != ": still here":  # quiet longer than Redis's socket timeout
            pass
        assert time.monotonic() - began >= 5


def test_with_tokens_cors_preflights_still_pass(redis_url):
    from littleflow.api.auth import Tokens

    app = create_app(redis_url, tokens=Tokens.parse(f"admin:{ADMIN}", "test"), cors=["https://ok.example"])
    with serving(app) as base:
        preflight = httpx.options(
            f"{base}/workflows",
            headers={
                "origin": "https://ok.example",
                "access-control-request-method": "POST",
                "access-control-request-headers": "authorization",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://ok.example"
        refused = httpx.get(f"{base}/workflows", headers={"origin": "https://ok.example"})
        assert (
            refused.status_code == 401
            and refused.headers["access-control-allow-origin"] == "https://ok.example"
        )


def test_a_hash_inside_a_token_is_part_of_it():
    from littleflow.api.auth import Tokens

    tokens = Tokens.parse("admin:0123456789abcdef#rest  # a comment\n# a line of comment", "test")
    assert tokens.scope("0123456789abcdef#rest") == "admin" and tokens.scope("0123456789abcdef") is None


def test_open_event_streams_hold_no_threads(api):
    base, _ = api
    before = threading.active_count()
    clients = [httpx.Client(timeout=10) for _ in range(45)]
    streams = [c.stream("GET", f"{base}/events") for c in clients]
    try:
        for stream in streams:
            assert next(stream.__enter__().iter_lines()) == ": littleflow events"
        assert threading.active_count() - before < 10  # not one thread per stream
        assert httpx.get(f"{base}/health", timeout=10).json() == {"status": "ok"}
    finally:
        for stream, client in zip(streams, clients):
            stream.__exit__(None, None, None)
            client.close()


def test_the_session_says_what_a_token_may_do(api, guarded):
    base, _ = api
    assert httpx.get(f"{base}/session").json() == {"auth": False, "scope": "admin"}
    assert httpx.get(f"{guarded}/session").json() == {"auth": True, "scope": None}
    for token, scope in ((READ, "read"), (ADMIN, "admin")):
        answer = httpx.get(f"{guarded}/session", headers={"authorization": f"Bearer {token}"})
        assert answer.json() == {"auth": True, "scope": scope}
    for header in ("Bearer wrong-token-of-some-length", "Basic dXNlcjpwYXNz", "Bearer"):
        refused = httpx.get(f"{guarded}/session", headers={"authorization": header})
        assert refused.status_code == 401 and refused.headers["content-type"] == "application/problem+json"
    assert httpx.get(f"{guarded}/health", headers={"authorization": "Bearer wrong"}).status_code == 200


def server_sent(lines):
    """(event, data) of each Server-Sent Event in ``lines``; comments are left out."""
    event, data = None, []
    for line in lines:
        if line:
            field, _, value = line.partition(": ")
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)
        elif event or data:
            yield event, json.loads("\n".join(data))
            event, data = None, []


@on_server_and_cluster
def test_watching_a_workflow_sends_its_document_at_once_and_after_every_change(api):
    base, client = api
    with httpx.Client(timeout=10) as http:
        id = http.post(
            f"{base}/workflows", json={"flow": 'wait:event ({"event": "go"}) → A', "input": {"k": 1}}
        ).json()["id"]
        with http.stream("GET", f"{base}/workflows/{id}/watch") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            events = server_sent(stream.iter_lines())
            kind, first = next(events)
            assert kind == "status" and first["id"] == id and first["state"] == "running"
            assert first["nodes"][1]["input"] == {"k": 1}
            document = first
            while document["nodes"][1]["note"] != "waiting for an event":  # the worker's word, no step
                kind, document = next(events)
                assert kind == "status"
            assert client.send("go", {"by": "watch"}) == 1
            seen = []
            for _kind, document in events:
                seen.append(document)
                if document["state"] != "running":
                    break
    assert [n["status"] for n in document["nodes"]] == ["done"] * 4
    assert document["nodes"][2]["input"] == {"by": "watch"} and document["output"] == {"a": {"by": "watch"}}
    assert document == client.status(id)
    assert len({json.dumps(d) for d in seen}) == len(seen)  # each one new


def test_a_watched_workflow_terminated_then_deleted(api):
    base, client = api
    with httpx.Client(timeout=10) as http:
        id = http.post(f"{base}/workflows", json={"flow": 'wait:event ({"event": "never"}) → A'}).json()["id"]
        with http.stream("GET", f"{base}/workflows/{id}/watch") as stream:
            events = server_sent(stream.iter_lines())
            assert next(events)[1]["state"] == "running"
            client.terminate(id)
            kind, document = next(events)
            assert (kind, document["state"]) == ("status", "terminated")
            client.delete(id)
            assert next(events) == ("gone", {"id": id})
            assert list(events) == []  # the stream ended


def test_watching_an_unknown_workflow_is_404(api):
    base, _ = api
    for id in ("nope", "x:log"):
        answer = httpx.get(f"{base}/workflows/{id}/watch")
        assert answer.status_code == 404 and answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["detail"] == f"no workflow {id}"


def test_a_watch_ends_when_the_server_closes(redis_url):
    app = create_app(redis_url)
    client = Client(redis_url)
    id = client.submit("nobody:serves")
    with (
        serving(app) as base,
        httpx.Client(timeout=10) as http,
        http.stream("GET", f"{base}/workflows/{id}/watch") as stream,
    ):
        lines = stream.iter_lines()
        assert next(lines) == "event: status"
        app.state.closing = True
        began = time.monotonic()
        assert [line for line in lines if line.startswith("event")] == []
        assert time.monotonic() - began < 5


# -- the timeline ----------------------------------------------------------------------------
SVG_NS = "{http://www.w3.org/2000/svg}"
HOSTILE = '<script>alert("x")</script> & ]]> \x01\uffff'


@pytest.fixture
def timeline_api(redis_url):
    """(base URL, Client) with tasks that split a list, fail twice before they succeed, and
    fail with a hostile error."""
    tries = {"n": 0}

    def flaky(input):
        tries["n"] += 1
        if tries["n"] < 3:
            raise OSError("not yet")
        return {"ok": True}

    def hostile(input):
        raise RuntimeError(HOSTILE)

    registry = Registry()
    registry.add("split", lambda input: [1, 2, 3])
    registry.add("double", lambda input: input * 2)
    registry.add("flaky", flaky)
    registry.add("hostile", hostile)
    with Services(redis_url, tasks=registry, claim_idle=1.0), serving(create_app(redis_url)) as base:
        yield base, Client(redis_url)


def test_the_timeline_lists_every_task_run_items_and_attempts_by_start(timeline_api):
    base, client = timeline_api
    id = client.submit("@flow mapped (- retries: 3, backoff: 0 -)\nsplit → * double → flaky")
    assert client.wait(id, 20)["state"] == "finished"
    answer = httpx.get(f"{base}/workflows/{id}/timeline")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    timeline = answer.json()
    document = client.status(id)
    assert (timeline["id"], timeline["state"], timeline["start"]) == (id, "finished", document["created"])
    assert timeline["end"] == document["updated"]
    runs = timeline["runs"]
    assert [(r["name"], r["item"], r["attempt"], r["status"]) for r in runs if r["name"] != "double"] == [
        ("split", None, 1, "done"),
        ("flaky", None, 1, "failed"),
        ("flaky", None, 2, "failed"),
        ("flaky", None, 3, "done"),
    ]
    assert [r["error"] for r in runs[-3:]] == ["OSError: not yet", "OSError: not yet", None]
    assert sorted(r["item"] for r in runs if r["name"] == "double") == [0, 1, 2]
    assert {r["task"] for r in runs if r["name"] == "double"} == {  # the ids of the item rows
        r["task"] for n in document["nodes"] if n["name"] == "double" for r in n["items"]["runs"]
    }
    assert [r["start"] for r in runs] == sorted(r["start"] for r in runs)
    assert all(document["created"] <= r["start"] <= r["end"] <= document["updated"] for r in runs)
    assert set(runs[0]) == {
        "task",
        "node",
        "label",
        "name",
        "path",
        "item",
        "attempt",
        "status",
        "start",
        "end",
        "worker",
        "error",
    }
    flaky = next(n for n in document["nodes"] if n["name"] == "flaky")
    first, second, last = runs[-3:]
    assert (first["start"], last["end"]) == (flaky["started"], flaky["ended"])  # the status document's times
    assert first["start"] <= first["end"] <= second["start"] <= second["end"] <= last["start"] <= last["end"]

    svg = httpx.get(f"{base}/workflows/{id}/timeline", params={"format": "svg"})
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    root = ElementTree.fromstring(svg.text)
    bars = [g for g in root.iter(f"{SVG_NS}g") if "run" in g.get("class", "").split()]
    assert len(bars) == 7
    assert sorted(g.get("class") for g in bars) == ["run status-done"] * 5 + ["run status-failed"] * 2
    assert sorted(g.get("data-item") for g in bars if g.get("data-item")) == ["0", "1", "2"]
    assert [g.findtext(f"{SVG_NS}text") for g in bars if g.get("data-attempt") == "3"] == ["flaky #3"]
    assert (
        ".littleflow-timeline .status-done .timebar{fill:#c8e6c9;stroke:#2e7d32}" in svg.text
    )  # the graphs' colours
    assert httpx.get(f"{base}/workflows/{id}/timeline", params={"format": "png"}).status_code == 422


def test_the_timeline_svg_escapes_what_tasks_and_workers_write(timeline_api):
    base, client = timeline_api
    id = client.submit("@flow evil\nsplit → hostile")
    assert client.wait(id, 20)["state"] == "failed"
    runs = httpx.get(f"{base}/workflows/{id}/timeline").json()["runs"]
    assert runs[-1]["status"] == "failed" and HOSTILE in runs[-1]["error"]
    svg = httpx.get(f"{base}/workflows/{id}/timeline", params={"format": "svg"}).text
    assert "<script" not in svg and "]]>" not in svg
    root = ElementTree.fromstring(svg)  # well-formed: what XML cannot hold became U+FFFD
    failed = [g for g in root.iter(f"{SVG_NS}g") if g.get("class") == "run status-failed"]
    assert len(failed) == 1
    title = failed[0].findtext(f"{SVG_NS}title")
    assert '<script>alert("x")</script> & ]]> \ufffd\ufffd' in title
    assert not [
        element for element in root.iter() if element.tag.split("}")[-1] in ("script", "foreignObject")
    ]


def test_the_timeline_of_an_unknown_workflow_is_404(timeline_api):
    base, _ = timeline_api
    for id in ("nope", "x:log", "20260101-000000-000000000000"):
        for format in ("json", "svg"):
            answer = httpx.get(f"{base}/workflows/{id}/timeline", params={"format": format})
            assert answer.status_code == 404 and answer.headers["content-type"] == "application/problem+json"
            assert answer.json()["detail"] == f"no workflow {id}"


def test_a_timeline_past_its_limit_is_refused_as_svg_but_given_as_json(redis_url):
    registry = Registry()
    registry.add("split", lambda input: list(range(5)))
    registry.add("double", lambda input: input * 2)
    with Services(redis_url, tasks=registry), serving(create_app(redis_url, max_timeline_runs=4)) as base:
        client = Client(redis_url)
        id = client.submit("split → * double")
        assert client.wait(id, 20)["state"] == "finished"
        assert len(httpx.get(f"{base}/workflows/{id}/timeline").json()["runs"]) == 6
        answer = httpx.get(f"{base}/workflows/{id}/timeline", params={"format": "svg"})
        assert answer.status_code == 422 and answer.json()["title"] == "Too large to draw"
        assert "at most 4 task runs" in answer.json()["detail"] and "format=json" in answer.json()["detail"]


def test_the_logs_of_a_workflows_task_runs(redis_url):
    registry = Registry()
    registry.add("talk", lambda input: print(f"talking to {input['who']}") or input)
    with (
        Services(redis_url, tasks=registry, claim_idle=1.0),
        serving(create_app(redis_url)) as base,
        httpx.Client() as http,
    ):
        id = http.post(f"{base}/workflows", json={"flow": "talk → talk", "input": {"who": "you"}}).json()[
            "id"
        ]
        finished(http, base, id)
        found = http.get(f"{base}/workflows/{id}/logs").json()
        assert found["id"] == id and found["state"] == "finished"
        assert [(run["node"], run["name"], run["lines"]) for run in found["runs"]] == [
            (1, "talk", ["talking to you"]),
            (2, "talk", ["talking to you"]),
        ]
        assert [
            run["node"] for run in http.get(f"{base}/workflows/{id}/logs", params={"node": 2}).json()["runs"]
        ] == [2]
        assert http.get(f"{base}/workflows/nope/logs").status_code == 404
