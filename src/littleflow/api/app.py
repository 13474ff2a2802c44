"""The REST API: submit, watch and steer workflows on Redis over HTTP.

``GET /workflows/{id}`` answers the same document as ``littleflow status ID --json``.
Errors are RFC 9457 problem documents; nothing a request carries can run code on the
server (a flow names tasks; its YAML is plain data).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from http import HTTPStatus
from typing import Any

import redis
import redis.asyncio as aioredis
from fastapi import FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__, diagram, timeline
from ..budget import OverBudget, limit
from ..check import compile_checked
from ..errors import FlowError
from ..flow import Flow
from ..policy import OptionError
from ..redis.archive import SCHEMA as ARCHIVE_SCHEMA
from ..redis.archive import validate as validate_archive
from ..redis import events as eventlog
from ..redis.client import Client
from ..redis.schedules import Schedules
from ..redis.connection import connect_async, is_cluster
from ..redis.store import (
    KEY_TTL,
    STATES,
    VALID_ID,
    VALID_KEY,
    InvalidArchive,
    InvalidKey,
    KeyReused,
    StoreError,
    WorkflowNotFound,
)
from ..schedules import CATCHUP, OVERLAP, ScheduleError
from ..values import check_value, loads
from . import console
from .auth import Tokens, names_server, own_hosts
from .metrics import prometheus
from .problems import Problem, on_problem, response

#: The largest request body accepted, in bytes.
MAX_BODY = 10 * 1024 * 1024
#: Seconds a request body may take in all, and the longest pause within it: a body that
#: trickles is answered 408 and its connection closed.
BODY_TIMEOUT, BODY_PAUSE = 30.0, 10.0
#: Event streams (GET /events, GET /workflows/{id}/watch) open at once, in all and per token
#: (each holds a Redis connection); past either, 429 with Retry-After (seconds).
MAX_STREAMS, MAX_STREAMS_PER_TOKEN, STREAMS_RETRY = 64, 8, 10
#: Nodes a flow compiled by the API may have, named subflows expanded (counted before they are).
MAX_API_NODES = 20_000
#: Methods that change something: a foreign Origin may not send them.
CHANGES = ("POST", "PUT", "PATCH", "DELETE")
#: The probes of a process supervisor: they answer whatever the Host header (Kubernetes'
#: probes name the pod's address).
PROBES = ("/health", "/ready")
#: Seconds between keep-alive comments on an idle event stream, and of one wait for events
#: (under the Redis client's socket timeout).
HEARTBEAT, STREAM_BLOCK = 15.0, 3.0
#: Seconds between looks at a watched workflow's version, and between rebuilds of a running
#: one's document (a worker's word on a task — running, a note — changes no version).
WATCH_POLL, WATCH_REFRESH = 0.3, 2.0
#: POSTs that change nothing: a read token is enough.
READ_POSTS = ("/compile",)
#: Where the interactive docs' scripts are served.
DOCS_ASSETS = "/docs-assets"
#: What needs no token: the probes of a process supervisor, the API's own description, and
#: the console's page (what it shows comes from the API, with the token signed in with).
OPEN_PATHS = ("/health", "/ready", "/session", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/",
              console.CONSOLE)
OPEN_PREFIXES = (DOCS_ASSETS + "/", console.CONSOLE + "/")
SVG = "image/svg+xml"
#: The most nodes drawn as SVG (drawing grows faster than the flow: under about 1 s at the
#: limit, time budget included — bench/bench_console.py); seconds that compiling a flow, and
#: drawing one, may take.
MAX_SVG_NODES, COMPILE_SECONDS, DRAW_SECONDS = 800, 10.0, 10.0
#: The most task runs a timeline draws as SVG (about 300 bytes each; 1,000 draw in about
#: 30 ms — bench/bench_timeline.py); more: its JSON.
MAX_TIMELINE_RUNS = 10_000


def create_app(url: str | None = None, prefix: str = "lf", client: Client | None = None,
               tokens: Tokens | None = None, cors: list[str] | None = None,
               hosts: frozenset[str] | None = None, max_streams: int = MAX_STREAMS,
               max_streams_per_token: int = MAX_STREAMS_PER_TOKEN, body_timeout: float = BODY_TIMEOUT,
               body_pause: float = BODY_PAUSE, max_nodes: int = MAX_API_NODES,
               max_svg_nodes: int = MAX_SVG_NODES, compile_seconds: float = COMPILE_SECONDS,
               draw_seconds: float = DRAW_SECONDS, key_ttl: int = KEY_TTL,
               max_timeline_runs: int = MAX_TIMELINE_RUNS) -> FastAPI:
    """The API of the littleflow system on the Redis at ``url``. With ``tokens``, every
    request but the health probes needs a bearer token: ``read`` to look, ``admin`` to change.
    Browsers on other origins may call it only from the origins in ``cors``. The Host header
    must be one of ``hosts`` (default: the loopback names) or a loopback address."""
    client = client or Client(url, prefix)
    # FastAPIOffline: the /docs and /redoc pages with their scripts served from here, not a CDN
    app = FastAPIOffline(title="littleflow", version=__version__, static_url=DOCS_ASSETS,
                         description="Submit, watch and steer littleflow workflows.")
    app.add_exception_handler(Problem, on_problem)
    app.state.closing = False  # set by the server when it stops: event streams end
    app.state.streams = Streams(max_streams, max_streams_per_token)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()))
        return response(request, 422, "Invalid request", f"{where}: {first.get('msg', 'invalid')}")

    @app.exception_handler(StoreError)
    async def store_error(request: Request, error: StoreError) -> JSONResponse:
        if isinstance(error, InvalidArchive):
            return response(request, 422, "Invalid archive", str(error))
        if isinstance(error, (InvalidKey, KeyReused)):
            return response(request, 422, "Invalid Idempotency-Key", str(error))
        status = 404 if isinstance(error, LookupError) else 409  # (WorkflowNotFound, UnknownSchedule)
        return response(request, status, "Not found" if status == 404 else "Conflict", str(error))

    @app.exception_handler(redis.RedisError)
    async def redis_down(request: Request, error: redis.RedisError) -> JSONResponse:
        detail = " ".join(str(error).split())
        if isinstance(error, (redis.ConnectionError, redis.TimeoutError)):
            return response(request, 503, "Store unavailable", f"cannot reach Redis: {detail}")
        return response(request, 500, "Store error", f"Redis refused: {detail}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return response(request, error.status_code, HTTPStatus(error.status_code).phrase, str(error.detail),
                        headers=getattr(error, "headers", None))

    app.add_middleware(LimitBody, limit=MAX_BODY, timeout=body_timeout, pause=body_pause)  # (inside Gate: nothing is read before it lets a request in)
    app.add_middleware(Gate, tokens=tokens, hosts=hosts or own_hosts(None), cors=cors or [])
    if cors:  # (outermost: it answers preflights, which carry no token)
        app.add_middleware(CORSMiddleware, allow_origins=cors, allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
                           expose_headers=["Idempotent-Replayed"])

    @app.get("/health", tags=["system"])
    def health() -> dict[str, str]:
        """The API process answers."""
        return {"status": "ok"}

    @app.get("/ready", tags=["system"], responses={503: {"description": "Redis cannot be reached"}})
    def ready() -> dict[str, str]:
        """The API can reach its Redis."""
        client.redis.ping()
        return {"status": "ready"}

    @app.get("/session", tags=["system"])
    async def session(request: Request) -> dict[str, Any]:
        """What the request's token may do: ``auth`` (tokens are required) and ``scope``:
        ``admin``, ``read``, or null without a token (``admin`` when tokens are off)."""
        if not tokens:
            return {"auth": False, "scope": "admin"}
        return {"auth": True, "scope": tokens.bearer(request.headers.get("authorization"))}

    @app.head("/health", include_in_schema=False)
    @app.head("/ready", include_in_schema=False)
    def probe_head(request: Request) -> Response:
        """HEAD for the probes of uptime checkers (readiness still asks Redis)."""
        if request.url.path == "/ready":
            client.redis.ping()
        return Response()

    @app.get("/workflows", tags=["workflows"])
    def list_workflows(state: str | None = Query(None, description="running, finished, failed or terminated"),
                       name: str | None = Query(None, description="the flow's @flow name"),
                       q: str | None = Query(None, max_length=200,
                                             description="a prefix of the id or of the flow name "
                                                         "(case-sensitive)"),
                       offset: int = Query(0, ge=0, le=10**9),
                       limit: int = Query(100, ge=1, le=1000),
                       order: str = Query("oldest", pattern="^(oldest|newest)$",
                                          description="oldest (default) or newest first"),
                       schedule: str | None = Query(None, max_length=64,
                                                    description="those started by this schedule (with state "
                                                                "alone; counts are then empty)")) -> dict[str, Any]:
        """Workflows, a page at a time, by when they were submitted; ``q``: those whose id or
        flow name starts with it. ``total`` counts all that match, ``counts`` those of each state
        that match ``name`` and ``q`` (whatever ``state``). Read from indexes, never a scan."""
        if state is not None and state not in STATES:
            raise Problem(422, "Invalid request", f"state must be one of {', '.join(STATES)}, not {state!r}")
        if schedule is not None and (name is not None or q):
            raise Problem(422, "Invalid request", "schedule goes with state alone (no name or q)")
        page = client.page(state, name, offset, limit, q, newest=order == "newest", schedule=schedule)
        return {"workflows": page.workflows, "offset": offset, "limit": limit, "total": page.total,
                "counts": page.counts}

    @app.post("/workflows", status_code=201, tags=["workflows"],
              openapi_extra={"requestBody": {"content": {
                  "application/json": {"schema": {"type": "object", "required": ["flow"], "properties": {
                      "flow": {"type": "string", "description": "flow text"},
                      "input": {"description": "the flow's input (default {})"}}}},
                  "text/plain": {"schema": {"type": "string", "description": "flow text; the input is {}"}},
                  "multipart/form-data": {"schema": {"type": "object", "required": ["flow"], "properties": {
                      "flow": {"type": "string", "format": "binary", "description": "a flow file"},
                      "input": {"type": "string", "description": "the input as JSON text"}}}}},
                  "required": True},
                  "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False, "schema": {
                      "type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[!-~]([ -~]*[!-~])?$"},
                      "description": "the same key again within 24 h (same flow and input) starts nothing "
                                     "and answers the workflow it started: 200, Idempotent-Replayed: true"}]},
              responses={200: {"description": "started before with this Idempotency-Key: that workflow"},
                         422: {"description": "an invalid flow, or an Idempotency-Key bad or given before "
                                              "with another flow or input"}})
    async def submit(request: Request) -> Response:
        """Start a workflow: a JSON body ``{"flow": TEXT, "input": VALUE}``, the flow text as
        text/plain, or a form with a flow file (``flow``) and JSON ``input``. With an
        ``Idempotency-Key`` header given before (in the last 24 h) with the same flow and input,
        start nothing: answer 200 with the workflow it started (and ``Idempotent-Replayed: true``);
        the same key with another flow or input is refused (422). ``unserved`` names the
        flow's tasks that no live worker serves (their runs wait until one does)."""
        key = _idempotency_key(request)
        flow_text, input = await _submission(request)
        flow = await run_in_threadpool(_within, compile_seconds, "compiling the flow", _compile, flow_text, max_nodes)
        try:
            id, new = await run_in_threadpool(client.submit_once, flow, input, text=flow_text, key=key,
                                              key_ttl=key_ttl)
        except OptionError as error:  # the @flow run-time options
            raise Problem(422, "Invalid flow options", str(error)) from None
        unserved = await run_in_threadpool(client.unserved, flow)
        if new:
            return JSONResponse({"id": id, "state": "running", "url": f"/workflows/{id}", "unserved": unserved}, 201)
        state = await run_in_threadpool(client.redis.hget, client.keys.workflow(id), "status")
        return JSONResponse({"id": id, "state": state or "running", "url": f"/workflows/{id}", "unserved": unserved},
                            headers={"Idempotent-Replayed": "true"})

    @app.get("/workflows/{id}", tags=["workflows"])
    def status(id: str) -> dict[str, Any]:
        """A workflow's state, output, error, times and every node (as ``littleflow status ID --json``)."""
        return client.status(id)

    @app.get("/workflows/{id}/logs", tags=["workflows"])
    def logs(id: str, node: int | None = None) -> dict[str, Any]:
        """What the workflow's task runs wrote (stdout, stderr, logging), the last lines of each
        (as ``littleflow logs ID --json``); ``node``: that node's runs only."""
        return client.logs(id, node)

    @app.get("/workflows/{id}/definition", tags=["workflows"])
    def definition(id: str) -> dict[str, Any]:
        """What the workflow runs: ``name``, the flow ``text`` as submitted, and the compiled ``flow``."""
        return client.definition(id)

    @app.get("/workflows/{id}/watch", tags=["workflows"], response_class=StreamingResponse,
             responses={200: {"content": {"text/event-stream": {}}}, 404: {"description": "no such workflow"}})
    async def watch(id: str, request: Request) -> Response:
        """A live stream (Server-Sent Events) of the workflow's status document: ``event:
        status`` with the whole document (as ``GET /workflows/{id}``) at once and after each
        change; ``event: gone`` when the workflow is deleted."""
        version, text, running = await run_in_threadpool(_versioned, client, id)
        key = client.keys.workflow(id)

        async def changes(reader: aioredis.Redis) -> AsyncIterator[str]:
            seen, shown, live = version, text, running
            sent = looked = time.monotonic()
            while not app.state.closing and not await request.is_disconnected():
                await asyncio.sleep(WATCH_POLL)
                now = time.monotonic()
                if await reader.hget(key, "version") != seen or (live and now - looked >= WATCH_REFRESH):
                    looked = now
                    try:
                        seen, body, live = await run_in_threadpool(_versioned, client, id)
                    except StoreError as error:
                        gone = isinstance(error, WorkflowNotFound)
                        yield (f"event: gone\ndata: {json.dumps({'id': id})}\n\n" if gone else
                               f"event: error\ndata: {json.dumps({'error': str(error)})}\n\n")
                        return
                    if body != shown:
                        shown, sent = body, now
                        yield f"event: status\ndata: {body}\n\n"
                        continue
                if now - sent >= HEARTBEAT:
                    sent = now
                    yield ": still here\n\n"

        return _event_stream(request, client, f"event: status\ndata: {text}\n\n", changes)

    @app.get("/workflows/{id}/graph", tags=["workflows"],
             responses={200: {"content": {"text/plain": {}, "application/json": {}, "image/svg+xml": {}}}})
    def graph(id: str, format: str = Query("json", pattern="^(json|mermaid|svg)$")) -> Response:
        """The workflow's graph: Mermaid or SVG coloured by node status, or JSON (the
        compiled flow, each node with its status)."""
        flow, statuses = client.statuses(id)
        if format == "mermaid":
            return Response(diagram.mermaid(flow, status=statuses), media_type="text/plain; charset=utf-8")
        if format == "svg":
            return Response(_drawn(flow, statuses, max_svg_nodes, draw_seconds), media_type=SVG)
        body = flow.to_json()
        for node in body["nodes"]:
            node["status"] = statuses.get(node["id"], "waiting")
        return JSONResponse(body)

    @app.get("/workflows/{id}/timeline", tags=["workflows"],
             responses={200: {"content": {"application/json": {}, "image/svg+xml": {}}},
                        404: {"description": "no such workflow"}})
    def timeline_of(id: str, format: str = Query("json", pattern="^(json|svg)$")) -> Response:
        """Every task run of the workflow (each item of a ``*`` its own; a retried run as its
        last attempt) with its ``start``, ``end`` (null while it runs), ``status``, ``attempt`` and
        ``item``: JSON, or (``format=svg``) a bar for each on a time axis, coloured by status."""
        document = _timeline(client, id)
        if format == "svg":
            return Response(_timeline_drawn(document, max_timeline_runs, draw_seconds), media_type=SVG)
        return JSONResponse(document)

    @app.get("/metrics", tags=["system"], response_class=PlainTextResponse)
    def metrics() -> str:
        """Prometheus metrics: workflows by state, the depth of each queue, task run times."""
        return prometheus(client.counts(), client.queues(), client.timings())

    @app.post("/workflows/{id}/terminate", tags=["workflows"])
    def terminate(id: str) -> dict[str, Any]:
        """Start nothing new; running tasks are told to cancel."""
        return client.terminate(id)

    @app.post("/workflows/{id}/resume", tags=["workflows"])
    def resume(id: str) -> dict[str, Any]:
        """Continue a failed or terminated workflow."""
        return client.resume(id)

    @app.delete("/workflows/{id}", status_code=204, tags=["workflows"])
    def delete(id: str) -> Response:
        """Forget a workflow that is not running."""
        client.delete(id)
        return Response(status_code=204)

    schedules = Schedules(client.store)

    @app.get("/schedules", tags=["schedules"])
    def list_schedules() -> dict[str, Any]:
        """Every schedule: when it fires (``when``, ``ticks``: the next), whether it is
        ``paused``, its ``recent`` runs with their states."""
        return {"schedules": [schedules.show(record, 3) for record in schedules.all()]}

    @app.post("/schedules", status_code=201, tags=["schedules"],
              openapi_extra={"requestBody": {"content": {"application/json": {"schema": {
                  "type": "object", "required": ["name", "flow"], "properties": {
                      "name": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"},
                      "flow": {"type": "string", "description": "flow text"},
                      "input": {"description": "each workflow's input (default: the flow's schedule's, else {})"},
                      "cron": {"type": "string", "description": "5 fields, or 6 with the second first"},
                      "every": {"type": "string", "description": "a duration: 30s, 5m, 1h…"},
                      "timezone": {"type": "string", "description": "of cron: an IANA name (default UTC)"},
                      "catchup": {"enum": list(CATCHUP)}, "overlap": {"enum": list(OVERLAP)},
                      "replace": {"type": "boolean"}}}}}, "required": True}},
              responses={409: {"description": "a schedule of that name exists (and replace is not true)"},
                         422: {"description": "an invalid flow, cron, duration, time zone or option"}})
    async def add_schedule(request: Request) -> dict[str, Any]:
        """Add a schedule: a workflow of ``flow`` at each tick of ``cron`` or ``every`` (without
        either: the flow's ``schedule`` option); the engines fire it."""
        body = _json(await request.body(), request)
        if not isinstance(body, dict) or not isinstance(body.get("flow"), str) or "name" not in body:
            raise Problem(422, "Invalid request", 'the body must be {"name": NAME, "flow": TEXT, …}')
        unknown = sorted(set(body) - {"name", "flow", "input", "cron", "every", "timezone", "catchup", "overlap",
                                       "replace"})
        if unknown:
            raise Problem(422, "Invalid request", f"unknown field {unknown[0]!r}")
        flow = await run_in_threadpool(_within, compile_seconds, "compiling the flow", _compile, body["flow"],
                                       max_nodes)
        options = {key: body.get(key) for key in ("cron", "every", "timezone", "catchup", "overlap")}
        try:
            record = await run_in_threadpool(lambda: schedules.add(
                body["name"], flow, body["flow"], input=body.get("input"), replace=body.get("replace") is True,
                **options))
        except ScheduleError as error:
            raise Problem(422, "Invalid schedule", str(error)) from None
        return schedules.show(record)

    @app.get("/schedules/{name}", tags=["schedules"])
    def show_schedule(name: str) -> dict[str, Any]:
        """A schedule: its settings, next ticks and recent runs with their states."""
        return schedules.show(schedules.get(name))

    @app.post("/schedules/{name}/pause", tags=["schedules"])
    def pause_schedule(name: str) -> dict[str, Any]:
        """Fire no ticks of the schedule until it is resumed."""
        return schedules.show(schedules.pause(name))

    @app.post("/schedules/{name}/resume", tags=["schedules"])
    def resume_schedule(name: str) -> dict[str, Any]:
        """Fire the schedule again from its next tick (those while it was paused are not run)."""
        return schedules.show(schedules.resume(name))

    @app.post("/schedules/{name}/run", status_code=201, tags=["schedules"])
    def run_schedule(name: str) -> dict[str, Any]:
        """Start one workflow of the schedule now."""
        id = schedules.run(name)
        return {"id": id, "state": "running", "url": f"/workflows/{id}"}

    @app.delete("/schedules/{name}", status_code=204, tags=["schedules"])
    def delete_schedule(name: str) -> Response:
        """Remove the schedule (the workflows it started stay)."""
        schedules.delete(name)
        return Response(status_code=204)

    @app.get("/workflows/{id}/archive", tags=["archives"])
    def archive(id: str) -> Response:
        """Everything about a workflow as JSON, to download."""
        body = json.dumps(client.archive(id), ensure_ascii=False)
        return Response(body, media_type="application/json",
                        headers={"Content-Disposition": f'attachment; filename="{id}.json"'})

    @app.post("/archives", status_code=201, tags=["archives"],
              responses={422: {"description": "not an archive, or a damaged one (nothing is written)"}},
              openapi_extra={"requestBody": {"content": {"application/json": {"schema": ARCHIVE_SCHEMA}},
                                             "required": True}})
    async def restore(request: Request, replace: bool = Query(False)) -> dict[str, Any]:
        """Bring back an archived workflow (as ``GET /workflows/{id}/archive`` gave it),
        checked through before anything is written."""
        archive = _json(await request.body(), request, checked=False)  # (the archive is checked as one)
        found = await run_in_threadpool(_within, compile_seconds, "checking the archive", validate_archive,
                                        archive, max_nodes)
        id = await run_in_threadpool(client.restore, found, replace)
        return {"id": id, "url": f"/workflows/{id}"}

    @app.get("/events", tags=["events"], response_class=StreamingResponse,
             responses={200: {"content": {"text/event-stream": {}}}})
    def events(request: Request, since: str = Query("$", max_length=24_000,
                                                     description="an event id to go on after; $ (default): "
                                                                 "only new ones")) -> Response:
        """A live stream (Server-Sent Events) of the events sent and the workflows' state
        changes. A reconnecting browser goes on after the Last-Event-ID it sends."""
        since = request.headers.get("last-event-id") or since
        try:
            start = eventlog.latest(client.redis, client.keys) if since == "$" else eventlog.cursor(since, client.keys)
        except ValueError as error:
            raise Problem(422, "Invalid request", f"since must be $ or an event id: {error}") from None

        async def entries(reader: aioredis.Redis) -> AsyncIterator[str]:
            at, quiet = start, 0.0
            while not app.state.closing and not await request.is_disconnected():
                found = await eventlog.read_async(reader, client.keys, at, 500, STREAM_BLOCK)
                if not found:
                    quiet += STREAM_BLOCK
                    if quiet >= HEARTBEAT:
                        quiet = 0.0
                        yield ": still here\n\n"
                    continue
                quiet = 0.0
                for position, _, fields in found:
                    at = eventlog.cursor(position, client.keys)
                    event = eventlog.decoded(fields)
                    yield f"id: {position}\nevent: {event.get('kind', 'message')}\ndata: {json.dumps(event)}\n\n"

        return _event_stream(request, client, ": littleflow events\n\n", entries)

    @app.post("/events/{event}", tags=["events"],
              openapi_extra={"requestBody": {"content": {"application/json": {"schema": {}}}, "required": False}})
    async def send(event: str, request: Request) -> dict[str, Any]:
        """Send an event with the JSON body as its data: the wait:event tasks waiting for it
        (and matching its data) end."""
        body = await request.body()
        data = _json(body, request) if body else None
        try:
            return {"event": event, "ended": await run_in_threadpool(client.send, event, data)}
        except ValueError as error:
            raise Problem(422, "Invalid event", str(error)) from None

    @app.post("/compile", tags=["flows"],
              responses={200: {"content": {"application/json": {}, "image/svg+xml": {}}}},
              openapi_extra={"requestBody": {"content": {"text/plain": {"schema": {"type": "string"}}},
                                             "required": True}})
    async def compile_only(request: Request, format: str = Query("json", pattern="^(json|svg)$")) -> Response:
        """Compile flow text without running it: its graph (JSON, or an SVG picture), or its
        errors with line and column."""
        text = (await request.body()).decode("utf-8", "replace")
        flow = await run_in_threadpool(_within, compile_seconds, "compiling the flow", _compile, text, max_nodes)
        if format == "svg":
            return Response(await run_in_threadpool(_drawn, flow, None, max_svg_nodes, draw_seconds),
                            media_type=SVG)
        return JSONResponse(flow.to_json())

    console.mount(app)

    return app


class Gate:
    """ASGI middleware, before anything reads the body: the Host header must name this
    server (403; DNS rebinding), a change must not come from a foreign Origin (403; pages of
    other sites), and, with tokens, all but the open paths need one (401): ``read`` to look,
    ``admin`` to change."""

    def __init__(self, app: Any, tokens: Tokens | None, hosts: frozenset[str], cors: list[str]) -> None:
        self.app, self.tokens, self.hosts, self.cors = app, tokens, hosts, cors

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            refusal = self.refusal(Request(scope))
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def refusal(self, request: Request) -> Response | None:
        """The answer refusing ``request``, or ``None`` to let it in."""
        path, host = request.url.path, request.headers.get("host")
        if path not in PROBES and not names_server(host, self.hosts):
            return response(request, 403, "Forbidden", f"the Host header {host or ''!r} does not name this "
                            "server (its names are given with --api-host)")
        origin = request.headers.get("origin")
        if request.method in CHANGES and origin is not None and not self.allowed(origin, host):
            return response(request, 403, "Forbidden", f"a page of {origin} may not change anything here "
                            "(its origin is not this server's nor an --api-cors one)")
        if not self.tokens:
            return None
        guarded = path not in OPEN_PATHS and not path.startswith(OPEN_PREFIXES)
        if guarded or (path == "/session" and "authorization" in request.headers):
            authorization = request.headers.get("authorization")
            scope = self.tokens.bearer(authorization)
            if scope is None:
                return response(request, 401, "Unauthorized", "a valid bearer token is needed "
                                "(Authorization: Bearer TOKEN)", headers={"WWW-Authenticate": "Bearer"})
            if request.method not in ("GET", "HEAD") and path not in READ_POSTS and scope != "admin":
                return response(request, 403, "Forbidden", "this token may only read; changes need an admin token")
            request.scope.setdefault("state", {})["holder"] = self.tokens.holder(authorization)
        return None

    def allowed(self, origin: str, host: str | None) -> bool:
        """Whether a page of ``origin`` may change things: one of this server (whatever its
        scheme: a TLS proxy may be in front) or of ``--api-cors``."""
        scheme, separator, address = origin.partition("://")
        own = bool(separator) and scheme in ("http", "https") and address.lower() == (host or "").strip().lower()
        return own or origin in self.cors or "*" in self.cors


class LimitBody:
    """ASGI middleware: a request body past ``limit`` bytes is refused (413), whether it
    says its length or comes in chunks, and one that trickles (all of it not within
    ``timeout`` seconds, or a pause past ``pause``) is answered 408 and its connection
    closed. The body is read here first, then handed on."""

    def __init__(self, app: Any, limit: int, timeout: float = BODY_TIMEOUT, pause: float = BODY_PAUSE) -> None:
        self.app, self.limit, self.timeout, self.pause = app, limit, timeout, pause

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        chunks, size, more = [], 0, True
        deadline = time.monotonic() + self.timeout
        while more:
            try:
                message = await asyncio.wait_for(receive(), min(self.pause, deadline - time.monotonic()))
            except TimeoutError:
                await response(Request(scope), 408, "Request timeout",
                               f"the body came too slowly: it must all come within {self.timeout:g} s, with no "
                               f"pause over {self.pause:g} s", headers={"Connection": "close"})(scope, receive, send)
                return
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                await response(Request(scope), 413, "Request too large",
                               f"the body may be at most {self.limit:,} bytes")(scope, receive, send)
                return
            more = message.get("more_body", False)
        whole, given = b"".join(chunks), False

        async def replay() -> Any:
            nonlocal given
            if given:
                return await receive()
            given = True
            return {"type": "http.request", "body": whole, "more_body": False}

        await self.app(scope, replay, send)


class Streams:
    """The event streams open at once, in all and by token: past ``total`` or ``per_token``,
    opening one is refused (429)."""

    def __init__(self, total: int, per_token: int) -> None:
        self.total, self.per_token = total, per_token
        self.open: dict[str | None, int] = {}

    def enter(self, holder: str | None) -> Callable[[], None]:
        """Count one more stream of ``holder`` (a token's, or ``None`` without tokens); returns
        what ends it."""
        if sum(self.open.values()) >= self.total:
            raise Problem(429, "Too many streams", f"{self.total} event streams are open on this server; "
                          "try again later", headers={"Retry-After": str(STREAMS_RETRY)})
        if holder is not None and self.open.get(holder, 0) >= self.per_token:
            raise Problem(429, "Too many streams", f"this token has {self.per_token} event streams open; close "
                          "one or try again later", headers={"Retry-After": str(STREAMS_RETRY)})
        self.open[holder] = self.open.get(holder, 0) + 1

        def leave() -> None:
            self.open[holder] -= 1
            if not self.open[holder]:
                del self.open[holder]

        return leave


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


def _event_stream(request: Request, client: Client, first: str,
                  events: Callable[[aioredis.Redis], AsyncIterator[str]]) -> Response:
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

    return _CountedStream(stream(), media_type="text/event-stream", leave=leave,
                          headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _json(body: bytes, request: Request, checked: bool = True) -> Any:
    """A JSON request body (``checked`` as a value: see :func:`_strict`), or the problem with it."""
    if _media_type(request) not in ("application/json", ""):
        raise Problem(415, "Unsupported media type", "the body must be application/json")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Problem(400, "Bad request", "the body is not UTF-8 text") from None
    return _strict(text, "the body", checked)


def _strict(text: str, what: str, checked: bool = True) -> Any:
    """JSON text as a value (that passes :func:`_checked`): 400 if it is not JSON
    (NaN and infinities are not)."""
    try:
        value = loads(text)
    except ValueError as error:
        raise Problem(400, "Bad request", f"{what} is not JSON: {' '.join(str(error).split())}") from None
    return _checked(value, what) if checked else value


def _checked(value: Any, what: str) -> Any:
    """``value``, or a 422 problem if it is too large or too deep (see :func:`check_value`)."""
    try:
        check_value(value, what)
    except ValueError as error:
        raise Problem(422, "Invalid request", str(error)) from None
    return value


async def _submission(request: Request) -> tuple[str, Any]:
    if _media_type(request) == "multipart/form-data":
        return await _upload(request)
    body = await request.body()
    if _media_type(request) == "text/plain":
        try:
            return body.decode("utf-8"), None
        except UnicodeDecodeError:
            raise Problem(400, "Bad request", "the body is not UTF-8 text") from None
    data = _json(body, request, checked=False)
    if not isinstance(data, dict) or not isinstance(data.get("flow"), str):
        raise Problem(422, "Invalid request", 'the body must be {"flow": TEXT, "input": VALUE}')
    return data["flow"], _checked(data.get("input"), "the input")


async def _upload(request: Request) -> tuple[str, Any]:
    """A form with the flow (a file, or text) in ``flow`` and, optionally, JSON ``input``."""
    form = await request.form(max_files=2, max_fields=10, max_part_size=MAX_BODY)
    flow, input = form.get("flow"), form.get("input")
    if flow is None:
        raise Problem(422, "Invalid request", "the form has no flow field (a file or text)")
    raw = await flow.read() if hasattr(flow, "read") else flow.encode("utf-8")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Problem(400, "Bad request", "the flow is not UTF-8 text") from None
    if input is None:
        return text, None
    if hasattr(input, "read"):
        input = (await input.read()).decode("utf-8", "replace")
    return text, _strict(input, "the input")


def _idempotency_key(request: Request) -> str | None:
    """The request's Idempotency-Key, bare or as a structured-field string (in quotes)."""
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not VALID_KEY.fullmatch(key):
        raise Problem(422, "Invalid Idempotency-Key", "the Idempotency-Key header must be 1 to 200 printable "
                      "ASCII characters, no space at either end")
    return key


def _within(seconds: float, what: str, work: Callable[..., Any], *args: Any) -> Any:
    """``work(*args)`` in at most ``seconds`` (on this thread), else a 422 problem saying so."""
    try:
        with limit(seconds, what):
            return work(*args)
    except OverBudget as error:
        raise Problem(422, "Over time budget", str(error)) from None


def _drawn(flow: Flow, status: dict[int, str] | None, max_nodes: int, seconds: float) -> str:
    """The flow as SVG, if it has at most ``max_nodes`` nodes and is drawn within ``seconds``."""
    if len(flow.nodes) > max_nodes:
        instead = "format=json" if status is None else "format=json or format=mermaid"  # (a workflow's graph)
        raise Problem(422, "Too large to draw", f"SVG is drawn for flows of at most {max_nodes:,} nodes, and "
                      f"this one has {len(flow.nodes):,}; ask for {instead}")
    return _within(seconds, "drawing the flow", lambda: diagram.svg(flow, status=status))


def _timeline(client: Client, id: str) -> dict[str, Any]:
    """Workflow ``id``'s timeline document (see :func:`littleflow.timeline.document`)."""
    run = client.store.load(id)
    created, updated = client.redis.hmget(client.keys.workflow(id), "created", "updated")
    return timeline.document(id, run.flow, client.store.task_info(id), run.state.status, float(created or 0),
                             float(updated or 0))


def _timeline_drawn(document: dict[str, Any], max_runs: int, seconds: float) -> str:
    """A timeline as SVG, if it has at most ``max_runs`` runs and is drawn within ``seconds``."""
    if len(document["runs"]) > max_runs:
        raise Problem(422, "Too large to draw", f"a timeline is drawn for at most {max_runs:,} task runs, and this "
                      f"one has {len(document['runs']):,}; ask for format=json")
    return _within(seconds, "drawing the timeline", timeline.svg, document, time.time())


def _versioned(client: Client, id: str) -> tuple[str, str, bool]:
    """A workflow's version, its status document as JSON text, and whether it runs. The
    version is read first: a change while the document is built shows as one more change,
    never as none."""
    version = client.redis.hget(client.keys.workflow(id), "version") if VALID_ID.fullmatch(id) else None
    if version is None:
        raise WorkflowNotFound(f"no workflow {id}")
    document = client.status(id)
    return version, json.dumps(document), document["state"] == "running"


def _compile(text: str, max_nodes: int = MAX_API_NODES) -> Flow:
    try:
        return compile_checked(text, "<request>", max_nodes=max_nodes)
    except FlowError as error:
        raise Problem(422, "Invalid flow", f"{error.line}:{error.column}: {error.message}",
                      errors=[{"line": error.line, "column": error.column, "message": error.message}]) from None
