"""Schedules: list, add, show, pause, resume, run now, delete (tags: schedules)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from ..schedules import CATCHUP, OVERLAP, ScheduleError
from .common import Api, compile_text, json_body, within
from .problems import Problem


def router(api: Api) -> APIRouter:
    """Schedules, as a router over ``api``."""
    router = APIRouter()
    client = api.client
    compile_seconds = api.compile_seconds
    max_nodes = api.max_nodes

    schedules = client.schedules

    @router.get("/schedules", tags=["schedules"])
    def list_schedules() -> dict[str, Any]:
        """Every schedule: when it fires (``when``, ``ticks``: the next), whether it is
        ``paused``, its ``recent`` runs with their states."""
        return {"schedules": schedules.list(ticks=3)}

    @router.post(
        "/schedules",
        status_code=201,
        tags=["schedules"],
        openapi_extra={
            "requestBody": {
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["name", "flow"],
                            "properties": {
                                "name": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"},
                                "flow": {"type": "string", "description": "flow text"},
                                "input": {
                                    "description": "each workflow's input (default: the flow's schedule's, else {})"
                                },
                                "cron": {
                                    "type": "string",
                                    "description": "5 fields, or 6 with the second first",
                                },
                                "every": {"type": "string", "description": "a duration: 30s, 5m, 1h…"},
                                "timezone": {
                                    "type": "string",
                                    "description": "of cron: an IANA name (default UTC)",
                                },
                                "catchup": {"enum": list(CATCHUP)},
                                "overlap": {"enum": list(OVERLAP)},
                                "replace": {"type": "boolean"},
                            },
                        }
                    }
                },
                "required": True,
            }
        },
        responses={
            409: {"description": "a schedule of that name exists (and replace is not true)"},
            422: {"description": "an invalid flow, cron, duration, time zone or option"},
        },
    )
    async def add_schedule(request: Request) -> dict[str, Any]:
        """Add a schedule: a workflow of ``flow`` at each tick of ``cron`` or ``every`` (without
        either: the flow's ``schedule`` option); the engines fire it."""
        body = json_body(await request.body(), request)
        if not isinstance(body, dict) or not isinstance(body.get("flow"), str) or "name" not in body:
            raise Problem(422, "Invalid request", 'the body must be {"name": NAME, "flow": TEXT, …}')
        unknown = sorted(
            set(body)
            - {"name", "flow", "input", "cron", "every", "timezone", "catchup", "overlap", "replace"}
        )
        if unknown:
            raise Problem(422, "Invalid request", f"unknown field {unknown[0]!r}")
        flow = await run_in_threadpool(
            within, compile_seconds, "compiling the flow", compile_text, body["flow"], max_nodes
        )
        options = {key: body.get(key) for key in ("cron", "every", "timezone", "catchup", "overlap")}
        try:
            return await run_in_threadpool(
                lambda: schedules.add(
                    body["name"],
                    flow,
                    body.get("input"),
                    text=body["flow"],
                    replace=body.get("replace") is True,
                    **options,
                )
            )
        except ScheduleError as error:
            raise Problem(422, "Invalid schedule", str(error)) from None

    @router.get("/schedules/{name}", tags=["schedules"])
    def show_schedule(name: str) -> dict[str, Any]:
        """A schedule: its settings, next ticks and recent runs with their states."""
        return schedules.show(name)

    @router.post("/schedules/{name}/pause", tags=["schedules"])
    def pause_schedule(name: str) -> dict[str, Any]:
        """Fire no ticks of the schedule until it is resumed."""
        return schedules.pause(name)

    @router.post("/schedules/{name}/resume", tags=["schedules"])
    def resume_schedule(name: str) -> dict[str, Any]:
        """Fire the schedule again from its next tick (those while it was paused are not run)."""
        return schedules.resume(name)

    @router.post("/schedules/{name}/run", status_code=201, tags=["schedules"])
    def run_schedule(name: str) -> dict[str, Any]:
        """Start one workflow of the schedule now."""
        id = schedules.run(name)
        return {"id": id, "state": "running", "url": f"/workflows/{id}"}

    @router.delete("/schedules/{name}", status_code=204, tags=["schedules"])
    def delete_schedule(name: str) -> Response:
        """Remove the schedule (the workflows it started stay)."""
        schedules.delete(name)
        return Response(status_code=204)

    return router
