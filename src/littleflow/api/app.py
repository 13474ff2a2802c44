"""The REST API: submit, watch and steer workflows on Redis over HTTP.

``create_app`` puts together the routers, one module a subject (``system``,
``workflows``, ``metrics``, ``schedules``, ``archives``, ``events``, ``flows``), the
error handlers and the checks every request goes through (:class:`Gate`,
:class:`LimitBody`, :class:`Streams`), which are here.

``GET /workflows/{id}`` answers the same document as ``littleflow status ID --json``.
Errors are RFC 9457 problem documents; nothing a request carries can run code on the
server (a flow names tasks; its YAML is plain data).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import redis
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..redis.client import Client
from ..redis.protocol import PREFIX
from ..redis.store import KEY_TTL, InvalidArchive, InvalidKey, KeyReused, StoreError
from . import archives, console, events, flows, metrics, schedules, system, workflows
from .auth import Tokens, names_server, own_hosts
from .common import (
    COMPILE_SECONDS,
    DRAW_SECONDS,
    MAX_API_NODES,
    MAX_BODY,
    MAX_SVG_NODES,
    MAX_TIMELINE_RUNS,
    Api,
)
from .problems import Problem, on_problem, response

#: Seconds a request body may take in all, and the longest pause within it: a body that
#: trickles is answered 408 and its connection closed.
BODY_TIMEOUT, BODY_PAUSE = 30.0, 10.0
#: Event streams (GET /events, GET /workflows/{id}/watch) open at once, in all and per token
#: (each holds a Redis connection); past either, 429 with Retry-After (seconds).
MAX_STREAMS, MAX_STREAMS_PER_TOKEN, STREAMS_RETRY = 64, 8, 10
#: Methods that change something: a foreign Origin may not send them.
CHANGES = ("POST", "PUT", "PATCH", "DELETE")
#: The probes of a process supervisor: they answer whatever the Host header (Kubernetes'
#: probes name the pod's address).
PROBES = ("/health", "/ready")
#: POSTs that change nothing: a read token is enough.
READ_POSTS = ("/compile",)
#: Where the interactive docs' scripts are served.
DOCS_ASSETS = "/docs-assets"
#: What needs no token: the probes of a process supervisor, the API's own description, and
#: the console's page (what it shows comes from the API, with the token signed in with).
OPEN_PATHS = (
    "/health",
    "/ready",
    "/session",
    "/openapi.json",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/",
    console.CONSOLE,
)
OPEN_PREFIXES = (DOCS_ASSETS + "/", console.CONSOLE + "/")


def create_app(
    url: str | None = None,
    prefix: str = PREFIX,
    client: Client | None = None,
    tokens: Tokens | None = None,
    cors: list[str] | None = None,
    hosts: frozenset[str] | None = None,
    max_streams: int = MAX_STREAMS,
    max_streams_per_token: int = MAX_STREAMS_PER_TOKEN,
    body_timeout: float = BODY_TIMEOUT,
    body_pause: float = BODY_PAUSE,
    max_nodes: int = MAX_API_NODES,
    max_svg_nodes: int = MAX_SVG_NODES,
    compile_seconds: float = COMPILE_SECONDS,
    draw_seconds: float = DRAW_SECONDS,
    key_ttl: int = KEY_TTL,
    max_timeline_runs: int = MAX_TIMELINE_RUNS,
) -> FastAPI:
    """The API of the littleflow system on the Redis at ``url``. With ``tokens``, every
    request but the health probes needs a bearer token: ``read`` to look, ``admin`` to change.
    Browsers on other origins may call it only from the origins in ``cors``. The Host header
    must be one of ``hosts`` (default: the loopback names) or a loopback address."""
    client = client or Client(url, prefix)
    # FastAPIOffline: the /docs and /redoc pages with their scripts served from here, not a CDN
    app = FastAPIOffline(
        title="littleflow",
        version=__version__,
        static_url=DOCS_ASSETS,
        description="Submit, watch and steer littleflow workflows.",
    )
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
        return response(
            request,
            error.status_code,
            HTTPStatus(error.status_code).phrase,
            str(error.detail),
            headers=getattr(error, "headers", None),
        )

    app.add_middleware(
        LimitBody, limit=MAX_BODY, timeout=body_timeout, pause=body_pause
    )  # (inside Gate: nothing is read before it lets a request in)
    app.add_middleware(Gate, tokens=tokens, hosts=hosts or own_hosts(None), cors=cors or [])
    if cors:  # (outermost: it answers preflights, which carry no token)
        app.add_middleware(
            CORSMiddleware,
            allow_origins=cors,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            expose_headers=["Idempotent-Replayed"],
        )

    api = Api(
        client,
        tokens,
        max_nodes=max_nodes,
        max_svg_nodes=max_svg_nodes,
        compile_seconds=compile_seconds,
        draw_seconds=draw_seconds,
        key_ttl=key_ttl,
        max_timeline_runs=max_timeline_runs,
    )
    for module in (system, workflows, metrics, schedules, archives, events, flows):
        app.include_router(module.router(api))

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
            return response(
                request,
                403,
                "Forbidden",
                f"the Host header {host or ''!r} does not name this "
                "server (its names are given with --api-host)",
            )
        origin = request.headers.get("origin")
        if request.method in CHANGES and origin is not None and not self.allowed(origin, host):
            return response(
                request,
                403,
                "Forbidden",
                f"a page of {origin} may not change anything here "
                "(its origin is not this server's nor an --api-cors one)",
            )
        if not self.tokens:
            return None
        guarded = path not in OPEN_PATHS and not path.startswith(OPEN_PREFIXES)
        if guarded or (path == "/session" and "authorization" in request.headers):
            authorization = request.headers.get("authorization")
            scope = self.tokens.bearer(authorization)
            if scope is None:
                return response(
                    request,
                    401,
                    "Unauthorized",
                    "a valid bearer token is needed (Authorization: Bearer TOKEN)",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            if request.method not in ("GET", "HEAD") and path not in READ_POSTS and scope != "admin":
                return response(
                    request, 403, "Forbidden", "this token may only read; changes need an admin token"
                )
            request.scope.setdefault("state", {})["holder"] = self.tokens.holder(authorization)
        return None

    def allowed(self, origin: str, host: str | None) -> bool:
        """Whether a page of ``origin`` may change things: one of this server (whatever its
        scheme: a TLS proxy may be in front) or of ``--api-cors``."""
        scheme, separator, address = origin.partition("://")
        own = (
            bool(separator)
            and scheme in ("http", "https")
            and address.lower() == (host or "").strip().lower()
        )
        return own or origin in self.cors or "*" in self.cors


class LimitBody:
    """ASGI middleware: a request body past ``limit`` bytes is refused (413), whether it
    says its length or comes in chunks, and one that trickles (all of it not within
    ``timeout`` seconds, or a pause past ``pause``) is answered 408 and its connection
    closed. The body is read here first, then handed on."""

    def __init__(
        self, app: Any, limit: int, timeout: float = BODY_TIMEOUT, pause: float = BODY_PAUSE
    ) -> None:
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
                await response(
                    Request(scope),
                    408,
                    "Request timeout",
                    f"the body came too slowly: it must all come within {self.timeout:g} s, with no "
                    f"pause over {self.pause:g} s",
                    headers={"Connection": "close"},
                )(scope, receive, send)
                return
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                await response(
                    Request(scope), 413, "Request too large", f"the body may be at most {self.limit:,} bytes"
                )(scope, receive, send)
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
            raise Problem(
                429,
                "Too many streams",
                f"{self.total} event streams are open on this server; try again later",
                headers={"Retry-After": str(STREAMS_RETRY)},
            )
        if holder is not None and self.open.get(holder, 0) >= self.per_token:
            raise Problem(
                429,
                "Too many streams",
                f"this token has {self.per_token} event streams open; close one or try again later",
                headers={"Retry-After": str(STREAMS_RETRY)},
            )
        self.open[holder] = self.open.get(holder, 0) + 1

        def leave() -> None:
            self.open[holder] -= 1
            if not self.open[holder]:
                del self.open[holder]

        return leave
