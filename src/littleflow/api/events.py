"""Events: the live stream of events and state changes, and sending an event (tags: events)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from ..redis import events as eventlog
from .common import HEARTBEAT, STREAM_BLOCK, Api, event_stream, json_body
from .problems import Problem


def router(api: Api) -> APIRouter:
    """Events, as a router over ``api``."""
    router = APIRouter()
    client = api.client

    @router.get(
        "/events",
        tags=["events"],
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    def events(
        request: Request,
        since: str = Query(
            "$", max_length=24_000, description="an event id to go on after; $ (default): only new ones"
        ),
    ) -> Response:
        """A live stream (Server-Sent Events) of the events sent and the workflows' state
        changes. A reconnecting browser goes on after the Last-Event-ID it sends."""
        since = request.headers.get("last-event-id") or since
        try:
            start = (
                eventlog.latest(client.redis, client.keys)
                if since == "$"
                else eventlog.cursor(since, client.keys)
            )
        except ValueError as error:
            raise Problem(422, "Invalid request", f"since must be $ or an event id: {error}") from None

        async def entries(reader: aioredis.Redis) -> AsyncIterator[str]:
            at, quiet = start, 0.0
            while not request.app.state.closing and not await request.is_disconnected():
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

        return event_stream(request, client, ": littleflow events\n\n", entries)

    @router.post(
        "/events/{event}",
        tags=["events"],
        openapi_extra={"requestBody": {"content": {"application/json": {"schema": {}}}, "required": False}},
    )
    async def send(event: str, request: Request) -> dict[str, Any]:
        """Send an event with the JSON body as its data: the wait:event tasks waiting for it
        (and matching its data) end."""
        body = await request.body()
        data = json_body(body, request) if body else None
        try:
            return {"event": event, "ended": await run_in_threadpool(client.send, event, data)}
        except ValueError as error:
            raise Problem(422, "Invalid event", str(error)) from None

    return router
