"""Archives: a workflow's archive to download, and an archive brought back (tags: archives)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from ..redis.archive import SCHEMA as ARCHIVE_SCHEMA
from ..redis.archive import validate as validate_archive
from .common import Api, json_body, within


def router(api: Api) -> APIRouter:
    """Archives, as a router over ``api``."""
    router = APIRouter()
    client = api.client
    compile_seconds = api.compile_seconds
    max_nodes = api.max_nodes

    @router.get("/workflows/{id}/archive", tags=["archives"])
    def archive(id: str) -> Response:
        """Everything about a workflow as JSON, to download."""
        body = json.dumps(client.archive(id), ensure_ascii=False)
        return Response(
            body,
            media_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="{id}.json"'},
        )

    @router.post(
        "/archives",
        status_code=201,
        tags=["archives"],
        responses={422: {"description": "not an archive, or a damaged one (nothing is written)"}},
        openapi_extra={
            "requestBody": {"content": {"application/json": {"schema": ARCHIVE_SCHEMA}}, "required": True}
        },
    )
    async def restore(request: Request, replace: bool = Query(False)) -> dict[str, Any]:
        """Bring back an archived workflow (as ``GET /workflows/{id}/archive`` gave it),
        checked through before anything is written."""
        archive = json_body(await request.body(), request, checked=False)  # (the archive is checked as one)
        found = await run_in_threadpool(
            within, compile_seconds, "checking the archive", validate_archive, archive, max_nodes
        )
        id = await run_in_threadpool(client.restore, found, replace)
        return {"id": id, "url": f"/workflows/{id}"}

    return router
