"""The API's own health: the probes and what a request's token may do (tags: system)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from .common import Api


def router(api: Api) -> APIRouter:
    """The API's own health, as a router over ``api``."""
    router = APIRouter()
    client = api.client
    tokens = api.tokens

    @router.get("/health", tags=["system"])
    def health() -> dict[str, str]:
        """The API process answers."""
        return {"status": "ok"}

    @router.get("/ready", tags=["system"], responses={503: {"description": "Redis cannot be reached"}})
    def ready() -> dict[str, str]:
        """The API can reach its Redis."""
        client.redis.ping()
        return {"status": "ready"}

    @router.get("/session", tags=["system"])
    async def session(request: Request) -> dict[str, Any]:
        """What the request's token may do: ``auth`` (tokens are required) and ``scope``:
        ``admin``, ``read``, or null without a token (``admin`` when tokens are off)."""
        if not tokens:
            return {"auth": False, "scope": "admin"}
        return {"auth": True, "scope": tokens.bearer(request.headers.get("authorization"))}

    @router.head("/health", include_in_schema=False)
    @router.head("/ready", include_in_schema=False)
    def probe_head(request: Request) -> Response:
        """HEAD for the probes of uptime checkers (readiness still asks Redis)."""
        if request.url.path == "/ready":
            client.redis.ping()
        return Response()

    return router
