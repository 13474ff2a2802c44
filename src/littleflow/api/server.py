"""The API served by uvicorn on a thread, stopped with the rest of a ``littleflow serve``."""

from __future__ import annotations

import ipaddress
import threading

import uvicorn

from .app import create_app
from .auth import TOKENS_VAR, Tokens


class ApiServer:
    """The HTTP API of the Redis at ``url`` on ``host:port``. Tokens are required on any
    address but loopback (and enforced on loopback too once there are any)."""

    name = "api"

    def __init__(self, url: str, prefix: str, host: str, port: int, tokens: Tokens | None = None,
                 cors: list[str] | None = None) -> None:
        if not _loopback(host) and not tokens:
            raise ValueError(f"the API needs tokens to listen on {host} (not loopback): set "
                             f"${TOKENS_VAR} or give a tokens file")
        self.host, self.port = host, port
        self.app = create_app(url, prefix, tokens=tokens, cors=cors)
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


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
