"""/schedules on a real uvicorn server and a real Redis: list, create, show, pause, resume,
run now, delete; problems for what is wrong; a read token may look, not change; and
GET /workflows?schedule=NAME, which finds a scheduled workflow restored from its archive."""

from __future__ import annotations

import httpx
import pytest
from test_api_app import serving

from littleflow.api import create_app
from littleflow.api.auth import Tokens

READ, ADMIN = "read-token-0123456789", "admin-token-0123456789"


@pytest.fixture
def base(redis_url):
    with serving(create_app(redis_url, tokens=Tokens.parse(f"read:{READ}, admin:{ADMIN}", "test"))) as found:
        yield found


def call(method: str, url: str, token: str = ADMIN, **options) -> httpx.Response:
    return httpx.request(method, url, headers={"Authorization": f"Bearer {token}"}, **options)


def test_the_schedule_endpoints(base):
    made = call(
        "POST",
        f"{base}/schedules",
        json={
            "name": "beat",
            "flow": "@flow ticking\nA",
            "every": "1h",
            "input": {"n": 1},
            "overlap": "skip",
        },
    )
    assert made.status_code == 201, made.text
    assert made.json()["when"] == "every 1h" and len(made.json()["ticks"]) == 5 and "text" not in made.json()
    nightly = '@flow nightly (- schedule: {cron: "0 2 * * *", timezone: Europe/Paris} -)\nA'
    assert (
        call("POST", f"{base}/schedules", json={"name": "night", "flow": nightly}).json()["timezone"]
        == "Europe/Paris"
    )
    assert [s["name"] for s in call("GET", f"{base}/schedules", READ).json()["schedules"]] == [
        "beat",
        "night",
    ]
    ran = call("POST", f"{base}/schedules/beat/run")
    assert ran.status_code == 201
    id = ran.json()["id"]
    document = call("GET", f"{base}/workflows/{id}", READ).json()
    assert document["schedule"] == "beat" and document["input"] == {"n": 1}
    listed = call("GET", f"{base}/workflows", READ, params={"schedule": "beat"}).json()
    assert [w["id"] for w in listed["workflows"]] == [id] and listed["total"] == 1
    assert call("GET", f"{base}/workflows", READ, params={"schedule": "night"}).json()["workflows"] == []
    shown = call("GET", f"{base}/schedules/beat", READ).json()
    assert shown["recent"][0]["id"] == id and shown["recent"][0]["state"] == "running"
    assert call("POST", f"{base}/schedules/beat/pause").json()["paused"] is True
    assert call("POST", f"{base}/schedules/beat/resume").json()["paused"] is False
    assert call("DELETE", f"{base}/schedules/beat").status_code == 204
    assert call("GET", f"{base}/schedules/beat", READ).status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"name": "s", "flow": "A", "cron": "0 2 * *"}, 422, "bad cron '0 2 * *'"),
        (
            {"name": "s", "flow": "A", "cron": "0 2 * * *", "timezone": "Mars/Olympus"},
            422,
            "unknown time zone",
        ),
        ({"name": "s", "flow": "A"}, 422, "schedule s: give --cron EXPR or --every DURATION"),
        ({"name": "s/x", "flow": "A", "every": "1s"}, 422, "bad schedule name 's/x'"),
        ({"name": "s", "flow": "A →", "every": "1s"}, 422, "1:"),
        ({"name": "s", "flow": "A", "every": "1s", "colour": "red"}, 422, "unknown field 'colour'"),
        ({"flow": "A"}, 422, "the body must be"),
    ],
)
def test_what_is_wrong_is_a_problem(base, body, status, detail):
    answer = call("POST", f"{base}/schedules", json=body)
    assert answer.status_code == status and detail in answer.json()["detail"], answer.text


def test_a_read_token_may_look_not_change(base):
    assert (
        call("POST", f"{base}/schedules", json={"name": "s", "flow": "A", "every": "1h"}).status_code == 201
    )
    assert (
        call("POST", f"{base}/schedules", json={"name": "s", "flow": "A", "every": "1h"}).status_code == 409
    )
    for method, path in (
        ("POST", "/schedules/s/pause"),
        ("POST", "/schedules/s/run"),
        ("DELETE", "/schedules/s"),
        ("POST", "/schedules"),
    ):
        assert call(method, base + path, READ, json={}).status_code == 403
    assert call("GET", f"{base}/schedules/s", READ).status_code == 200
    for method, path in (
        ("POST", "/schedules/none/pause"),
        ("POST", "/schedules/none/run"),
        ("DELETE", "/schedules/none"),
    ):
        assert call(method, base + path).status_code == 404


def test_a_scheduled_workflow_restored_is_listed_by_its_schedule_again(base):
    call("POST", f"{base}/schedules", json={"name": "beat", "flow": "@flow ticking\nA", "every": "1h"})
    id = call("POST", f"{base}/schedules/beat/run").json()["id"]
    archive = call("GET", f"{base}/workflows/{id}/archive", READ).json()
    assert archive["schedule"] == "beat" and isinstance(archive["tick"], int)
    assert call("POST", f"{base}/workflows/{id}/terminate").status_code == 200
    assert call("DELETE", f"{base}/workflows/{id}").status_code == 204
    assert call("GET", f"{base}/workflows", READ, params={"schedule": "beat"}).json()["total"] == 0
    bad = call("POST", f"{base}/archives", json={**archive, "schedule": "no/slash"})
    assert bad.status_code == 422 and "bad schedule name 'no/slash'" in bad.json()["detail"], bad.text
    assert call("POST", f"{base}/archives", json=archive).status_code == 201
    assert call("GET", f"{base}/workflows/{id}", READ).json()["tick"] == archive["tick"]
    listed = call("GET", f"{base}/workflows", READ, params={"schedule": "beat"}).json()
    assert [w["id"] for w in listed["workflows"]] == [id] and listed["total"] == 1
    schema = call("GET", f"{base}/openapi.json", READ).json()["paths"]["/archives"]["post"]["requestBody"]
    properties = schema["content"]["application/json"]["schema"]["properties"]
    assert (
        properties["schedule"]["anyOf"][0]["pattern"] and properties["tick"]["anyOf"][0]["type"] == "integer"
    )
