"""OpenTelemetry traces (the ``otel`` extra): a workflow is a trace, each task run a span.

The workflow's span is made when it is submitted; its context travels, as a W3C
``traceparent``, in the workflow and in every start-task message, so that the span a worker
makes for a task run is a child of its workflow's wherever the worker runs. Without
OpenTelemetry installed, or with no tracer provider set up, nothing is made (one check).

A provider is set up the usual ways: by the application (``trace.set_tracer_provider``), by
``opentelemetry-instrument``, or — for littleflow's own processes — by :func:`configure` from
the SDK's environment variables (``OTEL_TRACES_EXPORTER``, ``OTEL_SERVICE_NAME``, …)."""

from __future__ import annotations

import atexit
import os
from typing import Any

try:
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # (the otel extra is not installed)
    trace = None  # type: ignore[assignment]

_provider: Any = None  # a provider of our own (tests, configure()); else the global one
_PROPAGATOR = TraceContextTextMapPropagator() if trace is not None else None


def use(provider: Any) -> None:
    """Make spans with ``provider`` (None: the global provider again)."""
    global _provider
    _provider = provider


def enabled() -> bool:
    """Whether spans are recorded: OpenTelemetry is there and a provider was set up."""
    if trace is None:
        return False
    return _provider is not None or not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def configure() -> None:
    """Set up the SDK from its environment variables, if ``OTEL_TRACES_EXPORTER`` names
    exporters (``console``, ``otlp``, …: the SDK's entry points) and no provider is set up."""
    names = [name.strip() for name in os.environ.get("OTEL_TRACES_EXPORTER", "").split(",") if name.strip()]
    if not names or names == ["none"] or enabled() or trace is None:
        return
    try:
        from importlib.metadata import entry_points

        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:  # the API alone: nothing to export with
        return
    provider = TracerProvider(resource=Resource.create())
    found = {point.name: point for point in entry_points(group="opentelemetry_traces_exporter")}
    for name in names:
        if name not in found:
            raise ValueError(
                f"OTEL_TRACES_EXPORTER: no exporter {name!r} installed "
                f"(installed: {', '.join(sorted(found)) or 'none'})"
            )
        provider.add_span_processor(BatchSpanProcessor(found[name].load()()))
    use(provider)
    atexit.register(provider.shutdown)


def _tracer() -> Any:
    return (_provider or trace.get_tracer_provider()).get_tracer("littleflow")


def workflow_span(id: str, name: str | None) -> str:
    """Make the span of workflow ``id`` as it is submitted; its ``traceparent`` ("" if off)."""
    if not enabled():
        return ""
    span = _tracer().start_span(
        f"workflow {name or id}", attributes={"littleflow.workflow": id, "littleflow.flow": name or ""}
    )
    span.end()
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, trace.set_span_in_context(span))
    return carrier.get("traceparent", "")


def task_span(traceparent: str, name: str, workflow: str, node: int, task: str, attempt: int) -> Any:
    """Start the span of one task run, a child of its workflow's (None if off or not traced)."""
    if not traceparent or not enabled():
        return None
    parent = _PROPAGATOR.extract({"traceparent": traceparent})
    item = task.rsplit("|", 1)[-1]
    return _tracer().start_span(
        f"task {name}",
        context=parent,
        attributes={
            "littleflow.workflow": workflow,
            "littleflow.node": node,
            "littleflow.task": name,
            "littleflow.attempt": attempt,
            "littleflow.item": int(item) if item.lstrip("-").isdigit() else -1,
        },
    )


def finish(span: Any, status: str, attempt: int, error: str | None = None) -> None:
    """End a task run's span with how it ended."""
    if span is None:
        return
    span.set_attribute("littleflow.status", status)
    span.set_attribute("littleflow.attempt", attempt)
    if status == "failed":
        span.set_status(trace.Status(trace.StatusCode.ERROR, error or "failed"))
    span.end()
