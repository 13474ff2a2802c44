"""The API's preview (JSON and the console's SVG) and its submissions check a flow as `littleflow check`
does: a wrong @flow option is a flow error with its line and column, and nothing starts."""

from __future__ import annotations

import httpx
import pytest
from test_api_app import serving

from littleflow.api import create_app
from littleflow.redis import Client

WRONG = "@flow f (- retrys: 1 -)\nA"
ERROR = {
    "line": 1,
    "column": 12,
    "message": "unknown option 'retrys' in @flow parameters (known: retries, timeout, "
    "backoff, tasks, parallelism, schedule; did you mean 'retries'?)",
}


@pytest.fixture
def base(redis_url):
    with serving(create_app(redis_url)) as url:
        yield url


@pytest.mark.parametrize(
    "path, params", [("/compile", {}), ("/compile", {"format": "svg"}), ("/workflows", {})]
)
def test_a_wrong_flow_option_is_a_positioned_flow_error(base, redis_url, path, params):
    answer = httpx.post(f"{base}{path}", params=params, content=WRONG, headers={"content-type": "text/plain"})
    assert answer.status_code == 422 and answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["title"] == "Invalid flow" and problem["errors"] == [ERROR]
    assert problem["detail"] == f"1:12: {ERROR['message']}"
    assert Client(redis_url).list() == []


def test_right_flow_options_compile(base):
    answer = httpx.post(f"{base}/compile", content="@flow f (- retries: 2, tasks: {A: {timeout: 5}} -)\nA")
    assert answer.status_code == 200 and answer.json()["parameters"] == {
        "retries": 2,
        "tasks": {"A": {"timeout": 5}},
    }
