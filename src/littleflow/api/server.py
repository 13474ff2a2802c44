"""The API served by uvicorn on a thread, stopped with the rest of a ``littleflow serve``."""

from __future__ import annotations

import threading

import uvicorn

from .app import MAX_API_NODES, create_app
from .auth import TOKENS_VAR, Tokens, is_loopback, own_hosts


class ApiServer:
    """The HTTP API of the Redis at ``url`` on ``host:port``. It needs ``tokens`` unless
    ``no_auth`` (allowed on loopback only); the Host header must name it: its address, a
    loopback name or one of ``names``."""

    name = "api"

    def __init__(self, url: str, prefix: str, host: str, port: int, tokens: Tokens | None = None,
                 cors: list[str] | None = None, names: list[str] | None = None, no_auth: bool = False,
                 max_nodes: int = MAX_API_NODES) -> None:
        if no_auth and not is_loopback(host):
            raise ValueError(f"--api-no-auth is for loopback addresses only, not {host}: give tokens "
                             f"(--api-tokens FILE or ${TOKENS_VAR})")
        if not no_auth and not tokens:
            raise ValueError(f"the API needs tokens (--api-tokens FILE or ${TOKENS_VAR}), or --api-no-auth "
                             "on loopback")
        self.host, self.port = host, port
        self.app = create_app(url, prefix, tokens=None if no_auth else tokens, cors=cors,
                              hosts=own_hosts(host, names or []), max_nodes=max_nodes)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host=host, port=port,
                                                    log_level="warning", access_log=False,
                                                    timeout_graceful_shutdown=5))

    def run(self, stop: threading.Event) -> None:
        threading.Thread(target=self._stop_when, args=(stop,), daemon=True).start()
        self.server.run()

    def _stop_when(self, stop: threading.Event) -> None:
        stop.wait()
        self.app.state.closing = True  # open event streams end, so stopping need not wait them out
        self.server.should_exit = True
