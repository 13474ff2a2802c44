"""What a request's values may be, against a real `littleflow serve --api` process: NaN and
infinities are not JSON (400), values over the depth or count limit are unprocessable (422),
and a damaged archive is refused (422) without storing anything — never a 500."""

from __future__ import annotations

import copy
import json

import httpx
import pytest
from test_api_app import serving
from test_api_server import start_serve, stop

from littleflow.api import create_app
from littleflow.literals import MAX_VALUES
from littleflow.redis import Client
from littleflow.values import MAX_DEPTH

PROBLEM = "application/problem+json"


@pytest.fixture
def served(redis_url, tmp_path):
    """(an httpx client with the admin token, the base URL) of a real serve process."""
    process, base, _ = start_serve(redis_url, "--data", str(tmp_path))
    token = (tmp_path / "api.token").read_text().strip()
    try:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
            yield http
    finally:
        stop(process)


def problem(answer: httpx.Response, status: int, says: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == PROBLEM
    assert says in answer.json()["detail"], answer.json()


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


def workflows(http: httpx.Client) -> int:
    return http.get("/workflows").json()["total"]


JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused_in_every_body(served, constant):
    http = served
    problem(
        http.post("/workflows", content=f'{{"flow": "A", "input": {{"x": {constant}}}}}', headers=JSON),
        400,
        f"{constant} is not a JSON number",
    )
    problem(
        http.post("/workflows", files={"flow": ("f.flow", b"A")}, data={"input": f"[{constant}]"}),
        400,
        "the input is not JSON",
    )
    problem(http.post("/events/go", content=constant, headers=JSON), 400, "not a JSON number")
    problem(
        http.post(
            "/archives", content=f'{{"format": "littleflow-archive/1", "x": {constant}}}', headers=JSON
        ),
        400,
        "not a JSON number",
    )
    problem(
        http.post("/workflows", content='{"flow": "A", "input": 1e999}', headers=JSON),
        400,
        "too large for a number",
    )
    assert workflows(http) == 0


def test_values_past_the_depth_and_count_limits_are_unprocessable(served):
    http = served
    deep = http.post("/workflows", content=f'{{"flow": "A", "input": {nested(MAX_DEPTH + 1)}}}', headers=JSON)
    problem(deep, 422, f"the input is nested too deeply: more than {MAX_DEPTH} levels")
    form = http.post("/workflows", files={"flow": ("f.flow", b"A")}, data={"input": nested(MAX_DEPTH + 1)})
    problem(form, 422, "nested too deeply")
    many = "[" + ",".join(["0"] * MAX_VALUES) + "]"  # the list and its values: one more than allowed
    problem(
        http.post("/workflows", content=f'{{"flow": "A", "input": {many}}}', headers=JSON),
        422,
        f"more than {MAX_VALUES:,} values",
    )
    problem(http.post("/events/go", content=nested(MAX_DEPTH + 1), headers=JSON), 422, "nested too deeply")
    problem(
        http.post("/workflows", content=f'{{"flow": "A", "input": {nested(100_000)}}}', headers=JSON),
        400,
        "nested too deeply",
    )  # deeper than the parser goes: not JSON it can read, and no 500
    problem(
        http.post("/workflows", content='{"flow": "A", "input": ["\\ud800"]}', headers=JSON),
        422,
        "the input holds a lone surrogate",
    )
    assert workflows(http) == 0
    fits = http.post("/workflows", content=f'{{"flow": "A", "input": {nested(MAX_DEPTH)}}}', headers=JSON)
    assert fits.status_code == 201, fits.text
    assert http.post("/events/go", content=nested(MAX_DEPTH), headers=JSON).status_code == 200


def test_a_damaged_archive_is_unprocessable_and_stores_nothing(served):
    http = served
    id = http.post(
        "/workflows", json={"flow": "wait:event (- event: go -) → wait:delay (- duration: 0 -)"}
    ).json()["id"]
    archive = http.get(f"/workflows/{id}/archive").json()
    good = copy.deepcopy(archive)
    archive["id"] = "restored-copy"
    damages = [
        lambda a: a["run"]["state"]["running"].append(["", 0, -1, {}]),  # START sent to the workers
        lambda a: a["tasks"].__setitem__("|1|-1", {"node": 1, "status": "running", "seq": "one"}),
        lambda a: a["log"].insert(0, {"id": "0-0", "kind": "x"}),
        lambda a: a["flow"]["nodes"][1].__setitem__("name", "wait:other"),
        lambda a: a.__setitem__("version", 2**64),
        lambda a: a["run"]["state"].__setitem__("frames", []),
        lambda a: a.__setitem__("extra", True),
    ]
    for damage in damages:
        damaged = copy.deepcopy(archive)
        damage(damaged)
        answer = http.post("/archives", json=damaged)
        problem(answer, 422, "archive")
        assert answer.json()["title"] == "Invalid archive"
        assert http.get("/workflows/restored-copy").status_code == 404
    assert workflows(http) == 1
    restored = http.post("/archives", json=archive)
    assert restored.status_code == 201, restored.text
    for path in ("", "/definition", "/graph", "/graph?format=mermaid", "/graph?format=svg", "/archive"):
        assert http.get(f"/workflows/restored-copy{path}").status_code == 200, path
    assert http.post("/events/go", content=json.dumps({"went": 1}), headers=JSON).json()["ended"] == 2
    assert http.post("/archives", json=good, params={"replace": "true"}).status_code == 201


def test_an_archive_is_held_to_the_apis_node_limit(redis_url, tmp_path):
    client = Client(redis_url)
    big = client.submit(" → ".join(["A"] * 12))  # (nothing runs it: it stays running)
    archive = client.archive(big)
    client.terminate(big)
    client.delete(big)
    without_text = {**archive, "id": "without-text", "text": ""}
    process, base, _ = start_serve(redis_url, "--data", str(tmp_path), "--api-max-nodes", "10")
    token = (tmp_path / "api.token").read_text().strip()
    try:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
            problem(http.post("/archives", json=archive), 422, "its text does not compile")
            problem(
                http.post("/archives", json=without_text),
                422,
                "its flow has 14 nodes, more than the 10 allowed",
            )
            assert workflows(http) == 0
    finally:
        stop(process)
    assert client.restore(archive) == big  # (the Client has no such limit)


def test_checking_an_archive_has_the_compile_time_budget(redis_url):
    client = Client(redis_url)
    id = client.submit("A → B")
    archive = client.archive(id)
    client.terminate(id)
    client.delete(id)
    with serving(create_app(redis_url, compile_seconds=1e-9)) as base, httpx.Client(base_url=base) as http:
        answer = http.post("/archives", json=archive)
        problem(answer, 422, "checking the archive took more than 1e-09 s")
        assert answer.json()["title"] == "Over time budget"
    assert client.list() == []
