"""One rule, two drivers: every way of setting a task's retries and timeout (the flow's
defaults, ``@task(...)`` in Python, ``@task`` declarations, aliases, the flow's entry by
alias or by real name) and resource reads gives the same behaviour in a local run and on a
real Redis system (engine and workers on threads): as many attempts, and the same timeout.

Each case is observed, never asked: the task counts its calls and is slow (so a timeout
shows), and the HTTP server counts the requests of a resource.
"""

from __future__ import annotations

import importlib.util
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from httpserver import http_server  # noqa: F401 - a fixture

from littleflow import FlowFailed, compile_flow, run_workflow
from littleflow.confine import Confinement
from littleflow.local import LocalRun
from littleflow.tasks import Registry


def _redis_fixtures() -> Any:
    """tests/redis/conftest.py (its ``started`` and ``client`` fixtures), loaded under a name of its own."""
    spec = importlib.util.spec_from_file_location(
        "redis_fixtures", Path(__file__).parent / "redis" / "conftest.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_fixtures = _redis_fixtures()
started, client = _fixtures.started, _fixtures.client

pytestmark = pytest.mark.usefixtures("fresh_registry")

#: Each attempt of T takes this long, then fails: a timeout shows as "timed out", none as "boom".
SLOW = 0.5
#: The timeout the cases set, well below SLOW.
TIMEOUT = 0.2


@dataclass(frozen=True)
class Case:
    """A flow invoking T (or an alias of it), T's ``@task(...)`` options in Python, and the
    policy that must result: ``retries`` and whether the TIMEOUT applies."""

    flow: str
    retries: int
    timed: bool
    options: dict[str, Any] = field(default_factory=dict)


CASES = {
    "nothing set": Case("T", 0, False),
    "flow defaults: retries": Case("@flow f (- {retries: 1, backoff: 0} -)\nT", 1, False),
    "flow defaults: timeout": Case("@flow f (- {timeout: 0.2} -)\nT", 0, True),
    "@task: retries": Case("T", 2, False, {"retries": 2, "backoff": 0}),
    "@task: timeout": Case("T", 0, True, {"timeout": TIMEOUT}),
    "@task beats the flow defaults": Case(
        "@flow f (- {retries: 2, backoff: 0} -)\nT", 0, False, {"retries": 0}
    ),
    "@task and flow defaults add up": Case(
        "@flow f (- {timeout: 0.2} -)\nT", 1, True, {"retries": 1, "backoff": 0}
    ),
    "flow entry beats @task": Case(
        "@flow f (- {tasks: {T: {retries: 1}}} -)\nT", 1, False, {"retries": 2, "backoff": 0}
    ),
    "flow entry keeps @task's other keys": Case(
        "@flow f (- {tasks: {T: {retries: 1, backoff: 0}}} -)\nT", 1, True, {"timeout": TIMEOUT}
    ),
    "flow entry beats the defaults": Case(
        "@flow f (- {retries: 2, backoff: 0, tasks: {T: {retries: 0}}} -)\nT", 0, False
    ),
    "@task declaration: parameters are no policy": Case(
        "@task T (- {retries: 3, timeout: 0.01} -)\nT", 0, False
    ),
    "@task declaration and @task": Case(
        "@task T (- {x: 1} -)\nT", 1, True, {"retries": 1, "backoff": 0, "timeout": TIMEOUT}
    ),
    "alias: @task of the real task": Case("@task A = T\nA", 0, True, {"timeout": TIMEOUT}),
    "alias: entry by alias and @task add up (issue #12)": Case(
        "@flow f (- {backoff: 0, tasks: {A: {retries: 2}}} -)\n@task A = T\nA", 2, True, {"timeout": TIMEOUT}
    ),
    "alias: entry by real name": Case(
        "@flow f (- {tasks: {T: {retries: 1, backoff: 0}}} -)\n@task A = T\nA", 1, False
    ),
    "alias: entry by alias beats entry by real name": Case(
        "@flow f (- {tasks: {A: {retries: 1}, T: {retries: 2, backoff: 0, timeout: 0.2}}} -)\n@task A = T\nA",
        1,
        True,
    ),
    "alias: entry by alias beats @task and defaults": Case(
        "@flow f (- {retries: 2, timeout: 0.2, backoff: 0, tasks: {A: {retries: 0}}} -)\n@task A = T\nA",
        0,
        True,
        {"retries": 1},
    ),
    "alias with parameters: flow defaults": Case(
        "@flow f (- {timeout: 0.2, retries: 1, backoff: 0} -)\n@task A = T (- {x: 1} -)\nA", 1, True
    ),
    "alias of an alias: entry by the name written": Case(
        "@flow f (- {tasks: {B: {retries: 1, backoff: 0}}} -)\n@task B = A\n@task A = T\nB", 1, False
    ),
    "alias: entry by real name and @task add up": Case(
        "@flow f (- {tasks: {T: {timeout: 0.2}}} -)\n@task A = T\nA", 1, True, {"retries": 1, "backoff": 0}
    ),
    "parallelism is no task's policy": Case(
        "@flow f (- {parallelism: 2, retries: 1, backoff: 0} -)\nT", 1, False
    ),
}


def slow_failure(calls: Counter):
    def T(input, **parameters):
        calls["T"] += 1
        time.sleep(SLOW)
        raise RuntimeError("boom")

    return T


def local_outcome(text: str, registry: Registry, **options: Any) -> tuple:
    try:
        return "finished", run_workflow(text, registry, **options)
    except FlowFailed as failure:
        return "failed", failure.task, failure.error


def redis_outcome(client, text: str, timeout: float = 20) -> tuple:
    document = client.wait(client.submit(text), timeout=timeout)
    if document["state"] == "failed":
        return "failed", document["error"]["name"], document["error"]["error"]
    return document["state"], document.get("output")


@pytest.mark.parametrize("name", CASES, ids=list(CASES))
def test_a_task_gets_the_same_policy_locally_and_on_redis(name, started, client):
    case = CASES[name]
    calls = Counter()
    registry = Registry()
    registry.task("T", **case.options)(slow_failure(calls))
    local = local_outcome(case.flow, registry)
    local_calls, calls["T"] = calls["T"], 0
    started.services_on(tasks=registry)
    remote = redis_outcome(client, case.flow)
    assert (local_calls, calls["T"]) == (1 + case.retries,) * 2
    assert local == remote
    assert local[0] == "failed"
    assert local[2] == (f"timed out after {TIMEOUT:g} s" if case.timed else "RuntimeError: boom")


# -- resources -----------------------------------------------------------------------------------

LOOPBACK = Confinement(http_allow=("127.0.0.1",))


@dataclass(frozen=True)
class ResourceCase:
    """A flow around ``<URL>`` (a route answering 500, or one that never answers), the
    requests it must make and whether the flow's TIMEOUT cuts them short."""

    flow: str
    requests: int
    timed: bool
    hang: bool = False
    options: dict[str, Any] = field(default_factory=dict)  # of task T, which succeeds


RESOURCE_CASES = {
    "nothing set": ResourceCase("<URL>", 1, False),
    "flow defaults: retries": ResourceCase("@flow f (- {retries: 2, backoff: 0} -)\n<URL>", 3, False),
    "flow defaults: timeout": ResourceCase(
        "@flow f (- {timeout: 0.2, retries: 1, backoff: 0} -)\n<URL>", 2, True, hang=True
    ),
    "the timeout parameter beats the flow's": ResourceCase(
        "@flow f (- {timeout: 100} -)\n<URL> (- {timeout: 0.2} -)", 1, True, hang=True
    ),
    "a task's @task options stay its own": ResourceCase(
        "T → <URL>", 1, False, options={"retries": 2, "backoff": 0}
    ),
    "a task's flow entry stays its own": ResourceCase(
        "@flow f (- {backoff: 0, tasks: {T: {retries: 2, timeout: 0.2}}} -)\nT → <URL>", 1, False
    ),
    "a sink: flow defaults": ResourceCase("@flow f (- {retries: 1, backoff: 0} -)\nT → <URL>", 2, False),
}


@pytest.mark.parametrize("name", RESOURCE_CASES, ids=list(RESOURCE_CASES))
def test_a_resource_gets_the_same_policy_locally_and_on_redis(name, started, client, http_server):
    case = RESOURCE_CASES[name]
    url = http_server.hang("/data.json") if case.hang else http_server.serve("/data.json", "{}", status=500)
    text = case.flow.replace("URL", url)
    registry = Registry()
    registry.task("T", **case.options)(lambda input: {"x": 1})
    began = time.monotonic()
    local = local_outcome(text, registry)
    local_seconds = time.monotonic() - began
    local_requests = len(http_server.received())
    started.services_on(tasks=registry, confine=LOOPBACK)
    began = time.monotonic()
    remote = redis_outcome(client, text)
    remote_seconds = time.monotonic() - began
    assert (local_requests, len(http_server.received()) - local_requests) == (case.requests,) * 2
    assert local[:2] == remote[:2] and local[0] == "failed"
    for outcome, seconds in ((local, local_seconds), (remote, remote_seconds)):
        assert ("timed out" in outcome[2]) == case.timed, outcome
        assert seconds < 10  # (no request waited for the 30 s default)


def test_a_file_resource_makes_as_many_attempts_locally_and_on_redis(started, client, tmp_path):
    text = "@flow f (- {retries: 2, backoff: 0, tasks: {T: {retries: 0}}} -)\n<missing.json> → T"
    registry = Registry()
    registry.task("T", retries=1)(lambda input: {"x": 1})
    run = LocalRun(compile_flow(text), registry, trace=True, base=str(tmp_path), files=[str(tmp_path)])
    assert run.run().status == "failed"
    local = [entry["attempt"] for entry in run.trace if entry["name"] != "T"]
    started.services_on(tasks=registry, confine=Confinement(files=(str(tmp_path),)))
    document = client.wait(client.submit(text), timeout=20)
    assert document["state"] == "failed"
    (resource,) = [node for node in document["nodes"] if node.get("kind") == "resource"]
    assert local == [1, 2, 3]
    assert resource["attempt"] == 3


# -- @flow parameters both refuse alike ----------------------------------------------------------


@pytest.mark.parametrize(
    "parameters, message",
    [
        ({"parallelism": 0}, "parallelism in @flow parameters must be a whole number ≥ 1, not 0"),
        ({"parallelism": 1.5}, "parallelism in @flow parameters must be a whole number ≥ 1, not 1.5"),
        ({"parallelism": "2"}, 'parallelism in @flow parameters must be a whole number ≥ 1, not "2"'),
        ({"tasks": {"T": {"parallelism": 2}}}, "unknown option 'parallelism' in @flow parameters for task T"),
        ({"tasks": {"X": {"retries": 1}}}, "tasks.X in @flow parameters names no task of this flow"),
        ({"retries": -1}, "retries in @flow parameters must be a number ≥ 0, not -1"),
        ({"retry": 1}, "unknown option 'retry' in @flow parameters"),
    ],
)
def test_bad_flow_parameters_are_the_same_one_line_error_locally_and_on_redis(
    parameters, message, started, client
):
    text = f"@flow f (- {json.dumps(parameters)} -)\n@task A = T\nA"
    registry = Registry()
    registry.task("T")(lambda input: {})
    with pytest.raises(ValueError) as local:
        run_workflow(text, registry)
    started.services_on(tasks=registry)
    with pytest.raises(ValueError) as remote:
        client.submit(text)
    assert str(local.value) == str(remote.value)
    assert str(local.value).startswith(message) and "\n" not in str(local.value)


def test_a_good_parallelism_is_taken_by_both(started, client):
    text = "@flow f (- {parallelism: 2} -)\nT"
    registry = Registry()
    registry.task("T")(lambda input: {"ran": True})
    started.services_on(tasks=registry)
    assert local_outcome(text, registry) == ("finished", {"ran": True}) == redis_outcome(client, text)
