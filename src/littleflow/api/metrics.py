"""Prometheus text exposition of what the store knows (workflows by state, queue depths,
task run times) and the route that serves it, ``GET /metrics``."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from ..redis.store import BUCKETS
from .common import Api


def prometheus(
    counts: dict[str, int],
    queues: dict[str, dict[str, int]],
    timings: dict[str, dict[str, float]] | None = None,
) -> str:
    """The metrics as Prometheus text format 0.0.4."""
    lines = ["# HELP littleflow_workflows Workflows by state.", "# TYPE littleflow_workflows gauge"]
    lines += [f'littleflow_workflows{{state="{state}"}} {n}' for state, n in counts.items()]
    lines += [
        "# HELP littleflow_stream_messages Messages in each stream (one per task name or shared namespace, ends, dead letters).",
        "# TYPE littleflow_stream_messages gauge",
    ]
    lines += [f'littleflow_stream_messages{{stream="{_escape(s)}"}} {q["length"]}' for s, q in queues.items()]
    lines += [
        "# HELP littleflow_stream_pending Messages handed out and not yet acknowledged.",
        "# TYPE littleflow_stream_pending gauge",
    ]
    lines += [f'littleflow_stream_pending{{stream="{_escape(s)}"}} {q["pending"]}' for s, q in queues.items()]
    lines += [
        "# HELP littleflow_task_seconds How long task runs took, from start to end (by task name).",
        "# TYPE littleflow_task_seconds histogram",
    ]
    for name, counted in sorted((timings or {}).items()):
        label, total = _escape(name), 0.0
        for bound in [*map(str, BUCKETS), "+Inf"]:
            total += counted.get(bound, 0)
            lines.append(f'littleflow_task_seconds_bucket{{task="{label}",le="{bound}"}} {total:g}')
        lines.append(f'littleflow_task_seconds_sum{{task="{label}"}} {counted.get("sum", 0):g}')
        lines.append(f'littleflow_task_seconds_count{{task="{label}"}} {counted.get("count", 0):g}')
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def router(api: Api) -> APIRouter:
    """``GET /metrics``, as a router over ``api``."""
    router = APIRouter()
    client = api.client

    @router.get("/metrics", tags=["system"], response_class=PlainTextResponse)
    def metrics() -> str:
        """Prometheus metrics: workflows by state, the depth of each queue, task run times."""
        return prometheus(client.counts(), client.queues(), client.timings())

    return router
