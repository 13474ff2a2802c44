"""The runtime conformance cases (tests/conformance/runtime.yaml) and random flows,
run through Redis: Services (engine and one Python worker at concurrency 1) and a
Client, giving what the local runner gives."""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import test_runtime_conformance as local_cases
from drivers import acyclic_flows
from hypothesis import HealthCheck, given, settings
from rediscluster import away_from
from support import need_redis_server

from littleflow import Flow, FlowFailed, compile_flow, run_workflow
from littleflow.redis.client import Client
from littleflow.redis.protocol import Keys
from littleflow.redis.serve import Services
from littleflow.redis.server import RedisServer
from littleflow.tasks import Registry


class RedisRunner:
    """``run_workflow`` on Redis: one Services for the module, its Python tasks swapped per run."""

    def __init__(self, url: str) -> None:
        self.registry = Registry()
        self.registry.add("placeholder", lambda input: input)  # the worker serves plain names from the start
        self.services = Services(url, tasks=self.registry, concurrency=1, claim_idle=5.0).start()
        self.client = Client(url)

    def run_workflow(self, flow: Flow | str, tasks: dict[str, Any], input: Any = None) -> Any:
        """Like :func:`littleflow.run_workflow`: the output, or :class:`FlowFailed`."""
        for name, function in tasks.items():
            self.registry.add(name, function)
        self.learned(set(tasks))
        document = self.client.wait(self.client.submit(flow, input), timeout=20)
        self.settle()
        if document["state"] == "failed":
            raise FlowFailed(document["error"])
        assert document["state"] == "finished", document
        return document["output"]

    def learned(self, names: set[str], timeout: float = 10.0) -> None:
        """Wait until the worker serves ``names``: one that learns a task name only after its
        first start message was queued reads it late, after messages queued later (on a
        cluster, where partitions are read apart, that changed the order of a case)."""
        deadline = time.monotonic() + timeout
        while not any(names <= set(worker.names) for worker in self.services.workers):
            assert time.monotonic() < deadline, f"the worker never served {sorted(names)}"
            time.sleep(0.01)

    def settle(self, timeout: float = 20.0) -> None:
        """Wait until every task queued has run: a failed workflow's tasks already queued still
        run (§9.5), and must not be counted as the next run's."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            groups = [
                group
                for stream in self.client.queues()
                if ":task:" in stream
                for group in self.client.redis.xinfo_groups(stream)
            ]
            if all(group["pending"] == 0 and not group.get("lag") for group in groups):
                return
            time.sleep(0.02)


@pytest.fixture(scope="module", params=["server", "cluster"])
def redis_runner(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, stop_quickly
) -> Iterator[RedisRunner]:
    """A redis-server of this module's own (nothing flushes it under the running Services);
    then the session's Redis Cluster (flushed once here), by a node that does not serve
    the ``{lf}`` slot."""
    need_redis_server()
    with contextlib.ExitStack() as stack:
        if request.param == "cluster":
            cluster = request.getfixturevalue("redis_cluster")
            cluster.flush()
            url = away_from(cluster, Keys().ends)
        else:
            url = stack.enter_context(RedisServer(Path(tmp_path_factory.mktemp("conformance-redis")))).url
        runner = RedisRunner(url)
        try:
            yield runner
        finally:
            stop_quickly(runner.services)


@pytest.mark.parametrize("case", local_cases.CASES, ids=lambda c: c["name"])
def test_runtime_case_on_redis(case, redis_runner, monkeypatch):
    """The local test of the case, word for word, with run_workflow going through Redis."""
    monkeypatch.setattr(local_cases, "run_workflow", redis_runner.run_workflow)
    local_cases.test_runtime_case(case)


def test_every_case_went_through_redis(redis_runner, monkeypatch):
    """The swap above is real: a case run this way leaves a workflow on the server."""
    before = len(redis_runner.client.list())
    monkeypatch.setattr(local_cases, "run_workflow", redis_runner.run_workflow)
    local_cases.test_runtime_case(local_cases.CASES[0])
    assert len(redis_runner.client.list()) == before + 1


def sized_outputs(flow: Flow, calls: Counter) -> dict[str, Any]:
    """Tasks whose output is ``{name: size of the input's JSON}`` (small, and telling)."""

    def make(name: str):
        def function(input):
            calls[name] += 1
            return {name: len(json.dumps(input, sort_keys=True))}

        return function

    return {node.name: make(node.name) for node in flow.nodes if node.kind == "task"}


def outcome(run, flow: Flow, tasks: dict) -> tuple:
    try:
        return "finished", run(flow, tasks, {"seed": 1})
    except FlowFailed as failure:
        return "failed", failure.task, failure.error


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(acyclic_flows(decorated=True))
def test_random_flows_give_the_same_result_on_redis_as_locally(redis_runner, text):
    flow = compile_flow(text)
    local_calls, redis_calls = Counter(), Counter()
    local = outcome(lambda f, t, i: run_workflow(f, t, i), flow, sized_outputs(flow, local_calls))
    on_redis = outcome(redis_runner.run_workflow, flow, sized_outputs(flow, redis_calls))
    assert on_redis == local
    if local[0] == "finished":  # after a failure, tasks already queued on Redis still run (§9.5: "lets
        assert redis_calls == local_calls  # running tasks finish"); a sequential local run holds them back
