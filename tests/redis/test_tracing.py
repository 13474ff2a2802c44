"""OpenTelemetry traces (littleflow.tracing): a workflow is a trace whose span is made on
submit, and each task run a span that is its child, wherever the worker runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from opentelemetry.trace import StatusCode
from support import spans  # noqa: F401 - a fixture

from littleflow import tracing
from littleflow.redis.client import Client
from littleflow.redis.protocol import StartTask
from littleflow.tasks import Registry

HERE = Path(__file__).resolve().parent.parent  # (tests/, where traced_process.py is)


def test_off_by_default_nothing_is_made_and_no_message_carries_a_trace():
    assert not tracing.enabled()
    assert tracing.workflow_span("w", "f") == ""
    assert tracing.task_span("", "A", "w", 1, "|1|-1", 1) is None
    assert "trace" not in StartTask("w", "|1|-1", 1, 1, "A", None, {}).fields()


def test_each_task_run_is_a_child_of_its_workflows_span(spans, started, client):
    registry = Registry()
    registry.add("items", lambda input: [1, 2, 3])
    registry.add("square", lambda input: input * input)
    registry.add("boom", lambda input: (_ for _ in ()).throw(RuntimeError("no more bananas")))
    started.services_on(tasks=registry)
    finished = client.submit("@flow squares\nitems → * square", {})
    failed = client.submit("boom", {})
    assert client.wait(finished, timeout=10)["output"] == [1, 4, 9]
    assert client.wait(failed, timeout=10)["state"] == "failed"
    found = spans.get_finished_spans()
    roots = {span.attributes["littleflow.workflow"]: span for span in found if span.parent is None}
    assert roots[finished].name == "workflow squares" and roots[failed].name == f"workflow {failed}"
    tasks = [span for span in found if span.parent is not None]
    for span in tasks:
        root = roots[span.attributes["littleflow.workflow"]]
        assert span.context.trace_id == root.context.trace_id and span.parent.span_id == root.context.span_id
    of = sorted(
        (s.attributes["littleflow.task"], s.attributes["littleflow.item"], s.attributes["littleflow.status"])
        for s in tasks
        if s.attributes["littleflow.workflow"] == finished
    )
    assert of == [("items", -1, "done"), ("square", 0, "done"), ("square", 1, "done"), ("square", 2, "done")]
    (boom,) = [s for s in tasks if s.attributes["littleflow.workflow"] == failed]
    assert boom.status.status_code == StatusCode.ERROR and "no more bananas" in boom.status.description
    assert {"littleflow.node", "littleflow.attempt"} <= set(boom.attributes)


def test_the_trace_travels_from_the_submitter_to_engine_and_worker_processes(spans, redis_url, tmp_path):
    """Engine and worker are processes of their own, each recording its spans (the SDK's
    in-memory exporter, written to a file as it exits): the worker's task spans are children
    of the workflow spans this process made when it submitted."""
    (tmp_path / "tasks.py").write_text(
        "def A(input):\n    return {'a': 1}\n\ndef B(input):\n    return input\n"
    )
    processes, files = [], {}
    for role, options in (("engine", []), ("worker", ["--tasks", str(tmp_path / "tasks.py")])):
        files[role] = tmp_path / f"{role}.spans"
        env = {**os.environ, "LITTLEFLOW_TEST_SPANS": str(files[role])}
        processes.append(
            subprocess.Popen(
                [sys.executable, str(HERE / "traced_process.py"), role, "--redis", redis_url, *options],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        )
    try:
        client = Client(redis_url)
        ids = client.submit_many("A → B", [{} for _ in range(5)])
        for id in ids:
            assert client.wait(id, timeout=30)["state"] == "finished"
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.communicate(timeout=30)
    roots = {span.attributes["littleflow.workflow"]: span for span in spans.get_finished_spans()}
    worker = [json.loads(line) for line in files["worker"].read_text().splitlines()]
    assert sorted((s["attributes"]["littleflow.workflow"], s["name"]) for s in worker) == sorted(
        (id, name) for id in ids for name in ("task A", "task B")
    )
    for span in worker:
        root = roots[span["attributes"]["littleflow.workflow"]]
        assert (span["trace"], span["parent"]) == (root.context.trace_id, root.context.span_id)
    assert files["engine"].read_text() == ""  # (an engine makes no spans of its own)


def test_an_exporter_named_in_the_environment_that_is_not_installed_is_one_line(redis_url):
    found = subprocess.run(
        [sys.executable, "-m", "littleflow", "submit", "-", "--redis", redis_url],
        input="A",
        env={**os.environ, "OTEL_TRACES_EXPORTER": "nonesuch"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert found.returncode == 2
    assert found.stderr.count("\n") == 1 and "no exporter 'nonesuch' installed" in found.stderr


def test_the_console_exporter_of_the_environment_prints_the_workflow_span(redis_url):
    found = subprocess.run(
        [sys.executable, "-m", "littleflow", "submit", "-", "--redis", redis_url],
        input="A",
        env={**os.environ, "OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "shop"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert found.returncode == 0, found.stderr
    assert '"name": "workflow ' in found.stdout and '"service.name": "shop"' in found.stdout
