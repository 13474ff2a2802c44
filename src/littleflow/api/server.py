"""The API served by uvicorn on a thread, stopped with the rest of a ``littleflow serve``."""

from __future__ import annotations

import ipaddress
import threading

import uvicorn

from .app import create_app


class ApiServer:
    """The HTTP API of the Redis at ``url`` on ``host:port``. Until authentication
    exists, only loopback addresses are allowed."""

    name = "api"

    def __init__(self, url: str, prefix: str, host: str, port: int) -> None:
        if not _loopback(host):
            raise ValueError(f"the API listens on loopback addresses only for now (127.0.0.1, ::1), not {host}")
        self.host, self.port = host, port
        self.server = uvicorn.Server(uvicorn.Config(create_app(url, prefix), host=host, port=port,
                                                    log_level="warning", access_log=False,
                                                    timeout_graceful_shutdown=5))

    def run(self, stop: threading.Event) -> None:
        threading.Thread(target=lambda: (stop.wait(), setattr(self.server, "should_exit", True)),
                         daemon=True).start()
        self.server.run()


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
