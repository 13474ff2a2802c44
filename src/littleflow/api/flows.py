"""Flows: compiling flow text without running it (tags: flows)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from .common import SVG, Api, compile_text, drawn, within


def router(api: Api) -> APIRouter:
    """Flows, as a router over ``api``."""
    router = APIRouter()
    compile_seconds = api.compile_seconds
    max_nodes = api.max_nodes
    max_svg_nodes = api.max_svg_nodes
    draw_seconds = api.draw_seconds

    @router.post(
        "/compile",
        tags=["flows"],
        responses={200: {"content": {"application/json": {}, "image/svg+xml": {}}}},
        openapi_extra={
            "requestBody": {"content": {"text/plain": {"schema": {"type": "string"}}}, "required": True}
        },
    )
    async def compile_only(request: Request, format: str = Query("json", pattern="^(json|svg)$")) -> Response:
        """Compile flow text without running it: its graph (JSON, or an SVG picture), or its
        errors with line and column."""
        text = (await request.body()).decode("utf-8", "replace")
        flow = await run_in_threadpool(
            within, compile_seconds, "compiling the flow", compile_text, text, max_nodes
        )
        if format == "svg":
            return Response(
                await run_in_threadpool(drawn, flow, None, max_svg_nodes, draw_seconds), media_type=SVG
            )
        return JSONResponse(flow.to_json())

    return router
