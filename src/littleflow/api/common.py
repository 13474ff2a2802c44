"""What the API's routers share: :class:`Api` (the client and the limits a router works
within), reading request bodies, time budgets, drawing, compiling, event streams."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aioredis
from fastapi import Request, Response
from fastapi.responses import StreamingResponse

from .. import diagram
from ..budget import OverBudget, limit
from ..check import compile_checked
from ..errors import FlowError
from ..flow import Flow
from ..redis.client import Client
from ..redis.connection import connect_async, is_cluster
from ..redis.store import KEY_TTL
from ..values import check_value, loads
from .auth import Tokens
from .problems import Problem

#: The largest request body accepted, in bytes.
MAX_BODY = 10 * 1024 * 1024
#: Nodes a flow compiled by the API may have, named subflows expanded (counted before they are).
MAX_API_NODES = 20_000
#: Seconds between keep-alive comments on an idle event stream, and of one wait for events
#: (under the Redis client's socket timeout).
HEARTBEAT, STREAM_BLOCK = 15.0, 3.0
SVG = "image/svg+xml"
#: The most nodes drawn as SVG (drawing grows faster than the flow: under about 1 s at the
#: limit, time budget included — bench/bench_console.py); seconds that compiling a flow, and
#: drawing one, may take.
MAX_SVG_NODES, COMPILE_SECONDS, DRAW_SECONDS = 800, 10.0, 10.0
#: The most task runs a timeline draws as SVG (about 300 bytes each; 1,000 draw in about
#: 30 ms — bench/bench_timeline.py); more: its JSON.
MAX_TIMELINE_RUNS = 10_000


@dataclass(frozen=True)
class Api:
    """What every router works with: the Redis client, the tokens (``None``: none needed)
    and the limits of ``create_app``."""

    client: Client
    tokens: Tokens | None = None
    max_nodes: int = MAX_API_NODES
    max_svg_nodes: int = MAX_SVG_NODES
    compile_seconds: float = COMPILE_SECONDS
    draw_seconds: float = DRAW_SECONDS
    key_ttl: int = KEY_TTL
    max_timeline_runs: int = MAX_TIMELINE_RUNS


class _CountedStream(StreamingResponse):
    """A streaming response that calls ``leave`` when it ends, however it ends."""

    def __init__(self, *args: Any, leave: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.leave = leave

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.leave()


def event_stream(
    request: Request, client: Client, first: str, events: Callable[[aioredis.Redis], AsyncIterator[str]]
) -> Response:
    """A Server-Sent Events response: ``first``, then what ``events`` yields as it reads Redis
    on a connection of its own (closed at the end). Async, so an open stream holds no thread
    of the server; a Redis error ends it with ``event: error``. Counted against the caps of
    :class:`Streams` (429 past them)."""
    leave = request.app.state.streams.enter(getattr(request.state, "holder", None))
    url, cluster = client.url, is_cluster(client.redis)

    async def stream() -> AsyncIterator[str]:
        yield first
        reader = connect_async(url, cluster)
        try:
            async for chunk in events(reader):
                yield chunk
        except redis.RedisError as error:
            yield f"event: error\ndata: {json.dumps({'error': ' '.join(str(error).split())})}\n\n"
        finally:
            await reader.aclose()

    return _CountedStream(
        stream(),
        media_type="text/event-stream",
        leave=leave,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def media_type(request: Request) -> str:
    """The request's Content-Type without its parameters, in lower case."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def json_body(body: bytes, request: Request, checked: bool = True) -> Any:
    """A JSON request body (``checked`` as a value: see :func:`strict_json`), or the problem with it."""
    if media_type(request) not in ("application/json", ""):
        raise Problem(415, "Unsupported media type", "the body must be application/json")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Problem(400, "Bad request", "the body is not UTF-8 text") from None
    return strict_json(text, "the body", checked)


def strict_json(text: str, what: str, checked: bool = True) -> Any:
    """JSON text as a value (that passes :func:`bounded`): 400 if it is not JSON
    (NaN and infinities are not)."""
    try:
        value = loads(text)
    except ValueError as error:
        raise Problem(400, "Bad request", f"{what} is not JSON: {' '.join(str(error).split())}") from None
    return bounded(value, what) if checked else value


def bounded(value: Any, what: str) -> Any:
    """``value``, or a 422 problem if it is too large or too deep (see :func:`check_value`)."""
    try:
        check_value(value, what)
    except ValueError as error:
        raise Problem(422, "Invalid request", str(error)) from None
    return value


def within(seconds: float, what: str, work: Callable[..., Any], *args: Any) -> Any:
    """``work(*args)`` in at most ``seconds`` (on this thread), else a 422 problem saying so."""
    try:
        with limit(seconds, what):
            return work(*args)
    except OverBudget as error:
        raise Problem(422, "Over time budget", str(error)) from None


def drawn(flow: Flow, status: dict[int, str] | None, max_nodes: int, seconds: float) -> str:
    """The flow as SVG, if it has at most ``max_nodes`` nodes and is drawn within ``seconds``."""
    if len(flow.nodes) > max_nodes:
        instead = "format=json" if status is None else "format=json or format=mermaid"  # (a workflow's graph)
        raise Problem(
            422,
            "Too large to draw",
            f"SVG is drawn for flows of at most {max_nodes:,} nodes, and "
            f"this one has {len(flow.nodes):,}; ask for {instead}",
        )
    return within(seconds, "drawing the flow", lambda: diagram.svg(flow, status=status))


def compile_text(text: str, max_nodes: int = MAX_API_NODES) -> Flow:
    """Flow text compiled and checked, or a 422 problem with the first mistake's line and column."""
    try:
        return compile_checked(text, "<request>", max_nodes=max_nodes)
    except FlowError as error:
        raise Problem(
            422,
            "Invalid flow",
            f"{error.line}:{error.column}: {error.message}",
            errors=[{"line": error.line, "column": error.column, "message": error.message}],
        ) from None
