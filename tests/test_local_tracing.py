"""OpenTelemetry traces of local runs (littleflow.tracing, littleflow.local): a run is a
trace whose workflow span is made when it starts, and each attempt of a task a child span,
as on Redis (tests/redis/test_tracing.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from opentelemetry.trace import StatusCode
from support import spans  # noqa: F401 - a fixture

from littleflow import FlowFailed, compile_flow, run_workflow, task
from littleflow.local import LocalRun
from littleflow.tasks import Registry


def squares() -> Registry:
    registry = Registry()
    registry.add("items", lambda input: [1, 2, 3])
    registry.add("square", lambda input: input * input)
    return registry


@pytest.mark.parametrize("concurrency", [1, 3])
def test_each_task_run_of_a_local_run_is_a_child_of_its_workflows_span(spans, concurrency):
    run = LocalRun(compile_flow("@flow squares\nitems → * square"), squares(), concurrency=concurrency)
    assert run.run().output == [1, 4, 9]
    found = spans.get_finished_spans()
    (root,) = [span for span in found if span.parent is None]
    assert root.name == "workflow squares" and root.attributes["littleflow.workflow"] == run.workflow_id
    children = sorted(
        (span for span in found if span.parent is not None), key=lambda s: s.attributes["littleflow.item"]
    )
    assert [span.name for span in children] == ["task items", "task square", "task square", "task square"]
    assert [span.attributes["littleflow.item"] for span in children] == [-1, 0, 1, 2]
    for span in children:
        assert span.parent.span_id == root.context.span_id and span.context.trace_id == root.context.trace_id
        assert span.attributes["littleflow.status"] == "done"
        assert span.attributes["littleflow.workflow"] == run.workflow_id


def test_each_attempt_is_a_span_and_a_failed_one_says_why(spans, fresh_registry):
    calls = []

    @task(retries=1, backoff=0)
    def flaky(input):
        calls.append(1)
        if len(calls) == 1:
            raise OSError("the disk hiccupped")
        return {"ok": True}

    @task
    def boom(input):
        raise RuntimeError("no more bananas")

    assert run_workflow("flaky") == {"ok": True}
    with pytest.raises(FlowFailed):
        run_workflow("boom")
    found = spans.get_finished_spans()
    attempts = [
        (s.name, s.attributes["littleflow.attempt"], s.attributes["littleflow.status"])
        for s in found
        if s.parent is not None
    ]
    assert attempts == [
        ("task flaky", 1, "failed"),
        ("task flaky", 2, "done"),
        ("task boom", 1, "failed"),
    ]
    (failed,) = [s for s in found if s.name == "task boom"]
    assert failed.status.status_code == StatusCode.ERROR and "no more bananas" in failed.status.description


def test_off_a_local_run_loads_no_opentelemetry():
    code = (
        "import sys\n"
        "from littleflow import run_workflow\n"
        "assert run_workflow('<{\"x\": 1}> → echo', {'echo': lambda input: input}) == {'x': 1}\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == "[]"


def test_littleflow_run_exports_its_spans_where_the_environment_says(tmp_path):
    (tmp_path / "tasks.py").write_text("def hello(input):\n    return {'said': 'hello'}\n")
    found = subprocess.run(
        [sys.executable, "-m", "littleflow", "run", "-", "--tasks", "tasks.py"],
        input="@flow greet\nhello",
        cwd=tmp_path,
        env={**os.environ, "OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "shop"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert found.returncode == 0, found.stderr
    names = [json.loads(part)["name"] for part in _objects(found.stdout) if "context" in part]
    assert "workflow greet" in names and "task hello" in names
    assert '"service.name": "shop"' in found.stdout


def _objects(text: str) -> list[str]:
    """The top-level JSON objects the console exporter printed (pretty, one after another)."""
    found, depth, begun = [], 0, 0
    for at, char in enumerate(text):
        if char == "{":
            depth, begun = depth + 1, at if depth == 0 else begun
        elif char == "}":
            depth -= 1
            if depth == 0:
                found.append(text[begun : at + 1])
    return found
