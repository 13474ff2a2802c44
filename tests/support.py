"""Small helpers shared by the module tests (graph helpers live in graphs.py)."""

from __future__ import annotations

import os
import selectors
import shutil
from typing import NoReturn

import pytest

from littleflow import Flow, FlowError, compile_flow


def readable(source, timeout: float = 0.0) -> bool:
    """Whether ``source`` (a socket or a file descriptor) has something to read, or is closed,
    within ``timeout`` seconds (poll-based: select() refuses descriptors past 1023, which a
    long test process reaches)."""
    with selectors.DefaultSelector() as selector:
        selector.register(source, selectors.EVENT_READ)
        return bool(selector.select(timeout))


def in_ci() -> bool:
    """True under CI (``CI=true``, as CI services set it)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def missing(what: str) -> NoReturn:
    """Something ``dev.py test`` installs is missing: under CI the test fails, naming it (a
    broken install step must not pass as skipped tests); elsewhere it skips with the reason."""
    if in_ci():
        pytest.fail(f"{what} (CI=true: `python3 dev.py test` should have installed it)", pytrace=False)
    pytest.skip(what, allow_module_level=True)


def need_command(name: str, what: str) -> str:
    """The path of command ``name``, or :func:`missing` with ``what`` it is for."""
    found = shutil.which(name)
    if found is None:
        missing(f"{name} is not on PATH: {what}")
    return found


def need_redis_server() -> None:
    """A redis-server (or valkey-server) the tests can start, or :func:`missing`."""
    from littleflow.redis.server import ServerNotFound, find_server

    try:
        find_server()
    except ServerNotFound as error:
        missing(f"no redis-server to start: {error}")


def need_module(name: str, extra: str) -> None:
    """Import ``name`` (of the ``extra`` extra that dev.py installs), or :func:`missing`."""
    try:
        __import__(name)
    except ImportError:
        missing(f"{name} is not installed (the {extra} extra)")


def fails(text: str, file: str | None = None) -> FlowError:
    """The FlowError that compiling ``text`` raises."""
    with pytest.raises(FlowError) as caught:
        compile_flow(text, file)
    return caught.value


def at(error: FlowError) -> tuple[int, int]:
    """Where an error points, as (line, column)."""
    return error.line, error.column


def by_name(flow: Flow, name: str) -> list:
    """The nodes of ``flow`` whose task name (or alias) is ``name``, in node order."""
    return [n for n in flow.nodes if name in (n.name, n.alias)]


def one(flow: Flow, name: str):
    """The single node of ``flow`` named ``name``."""
    (node,) = by_name(flow, name)
    return node


def kinds(flow: Flow) -> list[str]:
    return [n.kind for n in flow.nodes]


@pytest.fixture
def spans():
    """Spans of this process, recorded in memory by the OpenTelemetry SDK (the otel extra),
    and tracing off again afterwards."""
    need_module("opentelemetry.sdk", "otel")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from littleflow import tracing

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use(provider)
    yield exporter
    tracing.use(None)
