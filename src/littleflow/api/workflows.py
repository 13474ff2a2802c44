"""Workflows: list, submit, status, logs, definition, watch, graph, timeline, terminate,
resume, delete (tags: workflows)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from .. import diagram, timeline
from ..policy import OptionError
from ..redis.client import Client
from ..redis.protocol import STATES
from ..redis.store import VALID_ID, VALID_KEY, StoreError, WorkflowNotFound
from .common import (
    HEARTBEAT,
    MAX_BODY,
    SVG,
    Api,
    bounded,
    compile_text,
    drawn,
    event_stream,
    json_body,
    media_type,
    strict_json,
    within,
)
from .problems import Problem

#: Seconds between looks at a watched workflow's version, and between rebuilds of a running
#: one's document (a worker's word on a task — running, a note — changes no version).
WATCH_POLL, WATCH_REFRESH = 0.3, 2.0


def router(api: Api) -> APIRouter:
    """Workflows, as a router over ``api``."""
    router = APIRouter()
    client = api.client
    compile_seconds = api.compile_seconds
    max_nodes = api.max_nodes
    max_svg_nodes = api.max_svg_nodes
    draw_seconds = api.draw_seconds
    key_ttl = api.key_ttl
    max_timeline_runs = api.max_timeline_runs

    @router.get("/workflows", tags=["workflows"])
    def list_workflows(
        state: str | None = Query(None, description="running, finished, failed or terminated"),
        name: str | None = Query(None, description="the flow's @flow name"),
        q: str | None = Query(
            None, max_length=200, description="a prefix of the id or of the flow name (case-sensitive)"
        ),
        offset: int = Query(0, ge=0, le=10**9),
        limit: int = Query(100, ge=1, le=1000),
        order: str = Query(
            "oldest", pattern="^(oldest|newest)$", description="oldest (default) or newest first"
        ),
        schedule: str | None = Query(
            None,
            max_length=64,
            description="those started by this schedule (with state alone; counts are then empty)",
        ),
    ) -> dict[str, Any]:
        """Workflows, a page at a time, by when they were submitted; ``q``: those whose id or
        flow name starts with it. ``total`` counts all that match, ``counts`` those of each state
        that match ``name`` and ``q`` (whatever ``state``). Read from indexes, never a scan."""
        if state is not None and state not in STATES:
            raise Problem(422, "Invalid request", f"state must be one of {', '.join(STATES)}, not {state!r}")
        if schedule is not None and (name is not None or q):
            raise Problem(422, "Invalid request", "schedule goes with state alone (no name or q)")
        page = client.page(state, name, offset, limit, q, newest=order == "newest", schedule=schedule)
        return {
            "workflows": page.workflows,
            "offset": offset,
            "limit": limit,
            "total": page.total,
            "counts": page.counts,
        }

    @router.post(
        "/workflows",
        status_code=201,
        tags=["workflows"],
        openapi_extra={
            "requestBody": {
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["flow"],
                            "properties": {
                                "flow": {"type": "string", "description": "flow text"},
                                "input": {"description": "the flow's input (default {})"},
                            },
                        }
                    },
                    "text/plain": {"schema": {"type": "string", "description": "flow text; the input is {}"}},
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["flow"],
                            "properties": {
                                "flow": {"type": "string", "format": "binary", "description": "a flow file"},
                                "input": {"type": "string", "description": "the input as JSON text"},
                            },
                        }
                    },
                },
                "required": True,
            },
            "parameters": [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 200,
                        "pattern": "^[!-~]([ -~]*[!-~])?$",
                    },
                    "description": "the same key again within 24 h (same flow and input) starts nothing "
                    "and answers the workflow it started: 200, Idempotent-Replayed: true",
                }
            ],
        },
        responses={
            200: {"description": "started before with this Idempotency-Key: that workflow"},
            422: {
                "description": "an invalid flow, or an Idempotency-Key bad or given before "
                "with another flow or input"
            },
        },
    )
    async def submit(request: Request) -> Response:
        """Start a workflow: a JSON body ``{"flow": TEXT, "input": VALUE}``, the flow text as
        text/plain, or a form with a flow file (``flow``) and JSON ``input``. With an
        ``Idempotency-Key`` header given before (in the last 24 h) with the same flow and input,
        start nothing: answer 200 with the workflow it started (and ``Idempotent-Replayed: true``);
        the same key with another flow or input is refused (422). ``unserved`` names the
        flow's tasks that no live worker serves (their runs wait until one does)."""
        key = _idempotency_key(request)
        flow_text, input = await _submission(request)
        flow = await run_in_threadpool(
            within, compile_seconds, "compiling the flow", compile_text, flow_text, max_nodes
        )
        try:
            id, new = await run_in_threadpool(
                client.submit_once, flow, input, text=flow_text, key=key, key_ttl=key_ttl
            )
        except OptionError as error:  # the @flow run-time options
            raise Problem(422, "Invalid flow options", str(error)) from None
        unserved = await run_in_threadpool(client.unserved, flow)
        if new:
            return JSONResponse(
                {"id": id, "state": "running", "url": f"/workflows/{id}", "unserved": unserved}, 201
            )
        state = await run_in_threadpool(client.redis.hget, client.keys.workflow(id), "status")
        return JSONResponse(
            {"id": id, "state": state or "running", "url": f"/workflows/{id}", "unserved": unserved},
            headers={"Idempotent-Replayed": "true"},
        )

    @router.get("/workflows/{id}", tags=["workflows"])
    def status(id: str) -> dict[str, Any]:
        """A workflow's state, output, error, times and every node (as ``littleflow status ID --json``)."""
        return client.status(id)

    @router.get("/workflows/{id}/logs", tags=["workflows"])
    def logs(id: str, node: int | None = None) -> dict[str, Any]:
        """What the workflow's task runs wrote (stdout, stderr, logging), the last lines of each
        (as ``littleflow logs ID --json``); ``node``: that node's runs only."""
        return client.logs(id, node)

    @router.get("/workflows/{id}/definition", tags=["workflows"])
    def definition(id: str) -> dict[str, Any]:
        """What the workflow runs: ``name``, the flow ``text`` as submitted, and the compiled ``flow``."""
        return client.definition(id)

    @router.get(
        "/workflows/{id}/watch",
        tags=["workflows"],
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}, 404: {"description": "no such workflow"}},
    )
    async def watch(id: str, request: Request) -> Response:
        """A live stream (Server-Sent Events) of the workflow's status document: ``event:
        status`` with the whole document (as ``GET /workflows/{id}``) at once and after each
        change; ``event: gone`` when the workflow is deleted."""
        version, text, running = await run_in_threadpool(_versioned, client, id)
        key = client.keys.workflow(id)

        async def changes(reader: aioredis.Redis) -> AsyncIterator[str]:
            seen, shown, live = version, text, running
            sent = looked = time.monotonic()
            while not request.app.state.closing and not await request.is_disconnected():
                await asyncio.sleep(WATCH_POLL)
                now = time.monotonic()
                if await reader.hget(key, "version") != seen or (live and now - looked >= WATCH_REFRESH):
                    looked = now
                    try:
                        seen, body, live = await run_in_threadpool(_versioned, client, id)
                    except StoreError as error:
                        gone = isinstance(error, WorkflowNotFound)
                        yield (
                            f"event: gone\ndata: {json.dumps({'id': id})}\n\n"
                            if gone
                            else f"event: error\ndata: {json.dumps({'error': str(error)})}\n\n"
                        )
                        return
                    if body != shown:
                        shown, sent = body, now
                        yield f"event: status\ndata: {body}\n\n"
                        continue
                if now - sent >= HEARTBEAT:
                    sent = now
                    yield ": still here\n\n"

        return event_stream(request, client, f"event: status\ndata: {text}\n\n", changes)

    @router.get(
        "/workflows/{id}/graph",
        tags=["workflows"],
        responses={200: {"content": {"text/plain": {}, "application/json": {}, "image/svg+xml": {}}}},
    )
    def graph(id: str, format: str = Query("json", pattern="^(json|mermaid|svg)$")) -> Response:
        """The workflow's graph: Mermaid or SVG coloured by node status, or JSON (the
        compiled flow, each node with its status)."""
        flow, statuses = client.statuses(id)
        if format == "mermaid":
            return Response(diagram.mermaid(flow, status=statuses), media_type="text/plain; charset=utf-8")
        if format == "svg":
            return Response(drawn(flow, statuses, max_svg_nodes, draw_seconds), media_type=SVG)
        body = flow.to_json()
        for node in body["nodes"]:
            node["status"] = statuses[node["id"]]
        return JSONResponse(body)

    @router.get(
        "/workflows/{id}/timeline",
        tags=["workflows"],
        responses={
            200: {"content": {"application/json": {}, "image/svg+xml": {}}},
            404: {"description": "no such workflow"},
        },
    )
    def timeline_of(id: str, format: str = Query("json", pattern="^(json|svg)$")) -> Response:
        """Every task run of the workflow (each item of a ``*`` its own; a retried run as its
        last attempt) with its ``start``, ``end`` (null while it runs), ``status``, ``attempt`` and
        ``item``: JSON, or (``format=svg``) a bar for each on a time axis, coloured by status."""
        document = timeline_document(client, id)
        if format == "svg":
            return Response(timeline_svg(document, max_timeline_runs, draw_seconds), media_type=SVG)
        return JSONResponse(document)

    @router.post("/workflows/{id}/terminate", tags=["workflows"])
    def terminate(id: str) -> dict[str, Any]:
        """Start nothing new; running tasks are told to cancel."""
        return client.terminate(id)

    @router.post("/workflows/{id}/resume", tags=["workflows"])
    def resume(id: str) -> dict[str, Any]:
        """Continue a failed or terminated workflow."""
        return client.resume(id)

    @router.delete("/workflows/{id}", status_code=204, tags=["workflows"])
    def delete(id: str) -> Response:
        """Forget a workflow that is not running."""
        client.delete(id)
        return Response(status_code=204)

    return router


async def _submission(request: Request) -> tuple[str, Any]:
    if media_type(request) == "multipart/form-data":
        return await _upload(request)
    body = await request.body()
    if media_type(request) == "text/plain":
        try:
            return body.decode("utf-8"), None
        except UnicodeDecodeError:
            raise Problem(400, "Bad request", "the body is not UTF-8 text") from None
    data = json_body(body, request, checked=False)
    if not isinstance(data, dict) or not isinstance(data.get("flow"), str):
        raise Problem(422, "Invalid request", 'the body must be {"flow": TEXT, "input": VALUE}')
    return data["flow"], bounded(data.get("input"), "the input")


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
    return text, strict_json(input, "the input")


def _idempotency_key(request: Request) -> str | None:
    """The request's Idempotency-Key, bare or as a structured-field string (in quotes)."""
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not VALID_KEY.fullmatch(key):
        raise Problem(
            422,
            "Invalid Idempotency-Key",
            "the Idempotency-Key header must be 1 to 200 printable ASCII characters, no space at either end",
        )
    return key


def timeline_document(client: Client, id: str) -> dict[str, Any]:
    """Workflow ``id``'s timeline document (see :func:`littleflow.timeline.document`)."""
    run = client.store.load(id)
    created, updated = client.redis.hmget(client.keys.workflow(id), "created", "updated")
    return timeline.document(
        id, run.flow, client.store.task_info(id), run.state.status, float(created or 0), float(updated or 0)
    )


def timeline_svg(document: dict[str, Any], max_runs: int, seconds: float) -> str:
    """A timeline as SVG, if it has at most ``max_runs`` runs and is drawn within ``seconds``."""
    if len(document["runs"]) > max_runs:
        raise Problem(
            422,
            "Too large to draw",
            f"a timeline is drawn for at most {max_runs:,} task runs, and this "
            f"one has {len(document['runs']):,}; ask for format=json",
        )
    return within(seconds, "drawing the timeline", timeline.svg, document, time.time())


def _versioned(client: Client, id: str) -> tuple[str, str, bool]:
    """A workflow's version, its status document as JSON text, and whether it runs. The
    version is read first: a change while the document is built shows as one more change,
    never as none."""
    version = client.redis.hget(client.keys.workflow(id), "version") if VALID_ID.fullmatch(id) else None
    if version is None:
        raise WorkflowNotFound(f"no workflow {id}")
    document = client.status(id)
    return version, json.dumps(document), document["state"] == "running"
