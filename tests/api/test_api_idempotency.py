"""POST /workflows with an Idempotency-Key, and the bounds on compiling and drawing
(SVG node limit, time budgets), on a real uvicorn server and a real Redis."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
import redis
from redisproxy import AnswerLosingProxy
from test_api_app import serving

from littleflow.api import create_app
from littleflow.api.app import MAX_SVG_NODES
from littleflow.redis import Client

PROBLEM = "application/problem+json"
PLAIN = {"Content-Type": "text/plain"}


@pytest.fixture
def api(redis_url):
    """(base URL of an API without tokens, Client); no engine runs: workflows stay running."""
    with serving(create_app(redis_url)) as base:
        yield base, Client(redis_url)


def post(base: str, key: str | None, flow: str = "A → B", input: object = None) -> httpx.Response:
    headers = {} if key is None else {"Idempotency-Key": key}
    return httpx.post(f"{base}/workflows", json={"flow": flow, "input": input or {"n": 1}}, headers=headers)


def problem(answer: httpx.Response, status: int) -> dict:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM)
    return answer.json()


def submitted(base: str, text: str) -> str:
    answer = httpx.post(f"{base}/workflows", content=text, headers=PLAIN)
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def chains(nodes: int) -> str:
    """A flow of about ``nodes`` nodes: parallel chains of ten tasks between a fork and a join."""
    return (
        "first → { "
        + "  ".join(" → ".join(f"t{c}_{i}" for i in range(10)) for c in range(max(1, (nodes - 6) // 10)))
        + " } → last"
    )


# -- Idempotency-Key ------------------------------------------------------------------------


def test_the_same_key_answers_the_first_workflow(api):
    base, client = api
    first, again = post(base, "order-17"), post(base, "order-17")
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert (
        again.json()
        == first.json()
        == {
            "id": first.json()["id"],
            "state": "running",
            "url": f"/workflows/{first.json()['id']}",
            "unserved": ["A", "B"],
        }
    )
    assert [w["id"] for w in client.list()] == [first.json()["id"]]


def test_a_quoted_key_is_the_same_key(api):
    """The IETF draft's Idempotency-Key is a structured-field string: "…" in quotes."""
    base, _ = api
    assert post(base, '"abc"').json()["id"] == post(base, "abc").json()["id"]


def test_without_a_key_each_post_is_a_new_workflow(api):
    base, client = api
    assert post(base, None).json()["id"] != post(base, None).json()["id"]
    assert len(client.list()) == 2


def test_a_replay_says_the_state_the_workflow_is_in_now(api):
    base, client = api
    id = post(base, "k").json()["id"]
    client.terminate(id)
    again = post(base, "k")
    assert again.status_code == 200 and again.json()["state"] == "terminated"


def test_concurrent_posts_with_one_key_make_one_workflow(api):
    base, client = api
    barrier, answers = threading.Barrier(8), []

    def send() -> None:
        barrier.wait()
        answers.append(post(base, "race"))

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(a.status_code for a in answers) == [200] * 7 + [201]
    assert len({a.json()["id"] for a in answers}) == 1
    assert len(client.list()) == 1


@pytest.mark.parametrize("flow, input", [("A → B", {"n": 2}), ("A → C", {"n": 1})])
def test_the_same_key_with_another_request_is_a_problem(api, flow, input):
    base, client = api
    id = post(base, "k").json()["id"]
    found = problem(post(base, "k", flow, input), 422)
    assert found["title"] == "Invalid Idempotency-Key"
    assert f"idempotency key 'k' was given for workflow {id} with another flow or input" in found["detail"]
    assert len(client.list()) == 1


@pytest.mark.parametrize("key", ["", "x" * 201, "é"])
def test_a_bad_key_is_a_problem_and_nothing_is_stored(api, key):
    base, client = api
    answer = httpx.post(
        f"{base}/workflows",
        content=b"A",
        headers={"Content-Type": "text/plain", "Idempotency-Key": key.encode()},
    )
    assert "1 to 200 printable ASCII characters" in problem(answer, 422)["detail"]
    assert client.list() == []


def test_a_key_expires_then_starts_a_new_workflow(redis_url):
    with serving(create_app(redis_url, key_ttl=1)) as base, redis.Redis.from_url(redis_url) as raw:
        first = post(base, "brief").json()["id"]
        assert 0 < raw.ttl("{lf}:idempotency:brief") <= 1
        deadline = time.monotonic() + 10
        while raw.exists("{lf}:idempotency:brief"):
            assert time.monotonic() < deadline, "the key did not expire"
            time.sleep(0.05)
        again = post(base, "brief")
    assert again.status_code == 201 and again.json()["id"] != first


def test_deleting_the_workflow_frees_its_key(api):
    base, client = api
    id = post(base, "k").json()["id"]
    assert httpx.post(f"{base}/workflows/{id}/terminate").status_code == 200
    assert httpx.delete(f"{base}/workflows/{id}").status_code == 204
    again = post(base, "k", "A → C")
    assert again.status_code == 201 and again.json()["id"] != id


def test_a_text_plain_post_takes_a_key_too(api):
    base, _ = api
    answers = [
        httpx.post(
            f"{base}/workflows",
            content="A → B",
            headers={"Content-Type": "text/plain", "Idempotency-Key": "plain"},
        )
        for _ in range(2)
    ]
    assert [a.status_code for a in answers] == [201, 200] and answers[0].json() == answers[1].json()


@pytest.mark.parametrize("key", [None, "lost"])
def test_a_submission_whose_redis_answer_is_lost_answers_201(redis_server, redis_url, key):
    """The write happened: the answer is the workflow, never a 503 that a retry would duplicate."""
    proxy = AnswerLosingProxy(redis_server.port)
    client = Client(redis_url.replace(f":{redis_server.port}/", f":{proxy.port}/"))
    try:
        with serving(create_app(client=client)) as base:
            answer = post(base, key)
    finally:
        proxy.close()
    assert proxy.cut.is_set() and answer.status_code == 201, answer.text
    assert [w["id"] for w in Client(redis_url).list()] == [answer.json()["id"]]


# -- drawing and compiling are bounded --------------------------------------------------------


def test_compile_draws_svg_up_to_the_limit_and_refuses_past_it(redis_url):
    with serving(create_app(redis_url, max_svg_nodes=20)) as base:
        small = httpx.post(f"{base}/compile?format=svg", content="A → B")
        big = httpx.post(f"{base}/compile?format=svg", content=" → ".join(f"t{i}" for i in range(30)))
        json_answer = httpx.post(f"{base}/compile", content=" → ".join(f"t{i}" for i in range(30)))
    assert small.status_code == 200 and small.text.startswith("<svg")
    found = problem(big, 422)
    assert found["title"] == "Too large to draw"
    assert "at most 20 nodes, and this one has 32" in found["detail"] and "format=json" in found["detail"]
    assert json_answer.status_code == 200 and len(json_answer.json()["nodes"]) == 32


def test_the_graph_of_a_workflow_is_drawn_up_to_the_limit(redis_url):
    with serving(create_app(redis_url, max_svg_nodes=20)) as base:
        small = submitted(base, "A → B")
        big = submitted(base, " → ".join(f"t{i}" for i in range(30)))
        drawn = httpx.get(f"{base}/workflows/{small}/graph?format=svg")
        refused = httpx.get(f"{base}/workflows/{big}/graph?format=svg")
        mermaid = httpx.get(f"{base}/workflows/{big}/graph?format=mermaid")
    assert drawn.status_code == 200 and drawn.headers["content-type"].startswith("image/svg+xml")
    assert "format=mermaid" in problem(refused, 422)["detail"]
    assert mermaid.status_code == 200


def test_the_default_svg_limit(api):
    """A flow just past MAX_SVG_NODES is refused before any drawing; one at it is drawn."""
    base, _ = api
    over = httpx.post(f"{base}/compile?format=svg", content=chains(MAX_SVG_NODES + 20))
    assert f"at most {MAX_SVG_NODES:,} nodes" in problem(over, 422)["detail"]
    text = chains(MAX_SVG_NODES)
    nodes = len(httpx.post(f"{base}/compile", content=text).json()["nodes"])
    assert nodes <= MAX_SVG_NODES
    start = time.perf_counter()
    drawn = httpx.post(f"{base}/compile?format=svg", content=text, timeout=60)
    print(f"SVG of {nodes} nodes over HTTP: {time.perf_counter() - start:.2f} s")
    assert drawn.status_code == 200 and drawn.text.count('class="node ') == nodes


def test_a_compile_over_its_time_budget_is_a_problem(redis_url):
    with serving(create_app(redis_url, compile_seconds=0)) as base:
        compiled = httpx.post(f"{base}/compile", content="A → B")
        submission = httpx.post(f"{base}/workflows", content="A → B", headers=PLAIN)
        listed = httpx.get(f"{base}/workflows").json()
    for answer in (compiled, submission):
        found = problem(answer, 422)
        assert (found["title"], found["detail"]) == (
            "Over time budget",
            "compiling the flow took more than 0 s",
        )
    assert listed["total"] == 0


def test_a_drawing_over_its_time_budget_is_a_problem(redis_url):
    with serving(create_app(redis_url, draw_seconds=0)) as base:
        id = submitted(base, "A → B")
        answers = [
            httpx.get(f"{base}/workflows/{id}/graph?format=svg"),
            httpx.post(f"{base}/compile?format=svg", content="A → B"),
        ]
        graph = httpx.get(f"{base}/workflows/{id}/graph?format=json")
    for answer in answers:
        assert problem(answer, 422)["detail"] == "drawing the flow took more than 0 s"
    assert graph.status_code == 200


def test_the_api_description_names_the_header_and_its_answers(api):
    base, _ = api
    post_workflows = httpx.get(f"{base}/openapi.json").json()["paths"]["/workflows"]["post"]
    (header,) = [p for p in post_workflows["parameters"] if p["name"] == "Idempotency-Key"]
    assert header["in"] == "header" and header["schema"]["maxLength"] == 200
    assert {"200", "201", "422"} <= post_workflows["responses"].keys()


def test_a_page_of_an_allowed_origin_may_send_a_key_and_read_the_replay_header(redis_url):
    origin = {"Origin": "https://ok.example"}
    with serving(create_app(redis_url, cors=["https://ok.example"])) as base:
        preflight = httpx.options(
            f"{base}/workflows",
            headers={
                **origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,idempotency-key",
            },
        )
        answers = [
            httpx.post(f"{base}/workflows", json={"flow": "A"}, headers={**origin, "Idempotency-Key": "page"})
            for _ in range(2)
        ]
    assert preflight.status_code == 200
    assert "idempotency-key" in preflight.headers["access-control-allow-headers"].lower()
    assert [a.status_code for a in answers] == [201, 200]
    assert answers[1].headers["access-control-expose-headers"] == "Idempotent-Replayed"
