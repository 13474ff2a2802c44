"""The API served by uvicorn on a thread, stopped with the rest of a ``littleflow serve``."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from .app import MAX_API_NODES, create_app
from .auth import TOKENS_VAR, Tokens, host_name, is_loopback, own_hosts

#: Seconds a request's head (its line and headers, at most MAX_HEAD bytes) may take to come,
#: from the connection's start or the end of the answer before: past it, the connection is
#: closed. An idle kept-alive connection is closed after KEEP_ALIVE seconds.
HEADER_TIMEOUT, MAX_HEAD, KEEP_ALIVE = 10.0, 16 * 1024, 5


class ApiServer:
    """The HTTP API of the Redis at ``url`` on ``host:port``. It needs ``tokens`` unless
    ``no_auth`` (allowed on loopback only); the Host header must name it: its address, a
    loopback name or one of ``names``."""

    name = "api"

    def __init__(
        self,
        url: str,
        prefix: str,
        host: str,
        port: int,
        tokens: Tokens | None = None,
        cors: list[str] | None = None,
        names: list[str] | None = None,
        no_auth: bool = False,
        max_nodes: int = MAX_API_NODES,
        header_timeout: float = HEADER_TIMEOUT,
    ) -> None:
        if no_auth and not is_loopback(host):
            raise ValueError(
                f"--api-no-auth is for loopback addresses only, not {host}: give tokens "
                f"(--api-tokens FILE or ${TOKENS_VAR})"
            )
        for name in names or []:
            if not host_name(name):
                raise ValueError(
                    f"--api-host wants a host name or address, like flows.example.com, not {name!r}"
                )
        if not no_auth and not tokens:
            raise ValueError(
                f"the API needs tokens (--api-tokens FILE or ${TOKENS_VAR}), or --api-no-auth on loopback"
            )
        self.host, self.port = host, port
        self.app = create_app(
            url,
            prefix,
            tokens=None if no_auth else tokens,
            cors=cors,
            hosts=own_hosts(host, names or []),
            max_nodes=max_nodes,
        )
        protocol = type("Protocol", (HeadInTime,), {"timeout": header_timeout})
        self.server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                host=host,
                port=port,
                http=protocol,
                h11_max_incomplete_event_size=MAX_HEAD,
                timeout_keep_alive=KEEP_ALIVE,
                log_level="warning",
                access_log=False,
                timeout_graceful_shutdown=5,
            )
        )

    def run(self, stop: threading.Event) -> None:
        threading.Thread(target=self._stop_when, args=(stop,), daemon=True).start()
        self.server.run()

    def _stop_when(self, stop: threading.Event) -> None:
        stop.wait()
        self.app.state.closing = True  # open event streams end, so stopping need not wait them out
        self.server.should_exit = True


class HeadInTime(H11Protocol):
    """uvicorn's HTTP/1.1, closing a connection whose request head does not come within
    ``timeout`` seconds (a client sending its headers a byte at a time holds no socket long)."""

    timeout = HEADER_TIMEOUT
    _late: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._wait_for_head()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._wait_for_head()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._late is not None:
            self._late.cancel()
        super().connection_lost(exc)

    def _wait_for_head(self) -> None:
        if self._late is not None:
            self._late.cancel()
        self._late = self.loop.call_later(self.timeout, self._head_late)

    def _head_late(self) -> None:
        waiting = self.cycle is None or self.cycle.response_complete  # (no request under way)
        if waiting and not self.transport.is_closing():
            self.transport.close()
