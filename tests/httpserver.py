"""A real HTTP server on 127.0.0.1 for the resource tests: it serves canned
responses and records every request it receives (method, path, headers, body).

Use the ``http_server`` fixture: ``server.serve("/data.json", '{"a": 1}', "application/json")``
then ``server.url("/data.json")``; ``server.requests`` lists what arrived.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str | None
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False


@dataclass
class Server:
    host: str
    port: int
    routes: dict[str, Response] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    released: threading.Event = field(default_factory=threading.Event)  # ends the hanging requests

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def serve(self, path: str, body: str | bytes, content_type: str | None = None, status: int = 200) -> str:
        """Answer requests for ``path`` with ``body``; returns the URL."""
        data = body.encode() if isinstance(body, str) else body
        self.routes[path] = Response(status, data, content_type)
        return self.url(path)

    def redirect(self, path: str, location: str) -> str:
        """Answer requests for ``path`` with a 302 to ``location``; returns the URL."""
        self.routes[path] = Response(302, b"", None, {"Location": location})
        return self.url(path)

    def hang(self, path: str) -> str:
        """Never answer requests for ``path`` (until the test ends); returns the URL."""
        self.routes[path] = Response(200, b"{}", "application/json", hang=True)
        return self.url(path)

    def received(self, method: str | None = None) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if method is None or r.method == method]


def _handler(server: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            with server.lock:
                server.requests.append(
                    Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
            route = server.routes.get(self.path)
            if route is not None and route.hang:
                server.released.wait(120)
                return
            if self.command == "GET":
                if route is None:
                    self._send(404, b"not found", "text/plain")
                else:
                    self._send(route.status, route.body, route.content_type, route.headers)
            else:  # writes succeed unless a route says otherwise
                if route is not None and route.status >= 400:
                    self._send(route.status, route.body, route.content_type)
                else:
                    self._send(200 if self.command != "PUT" else 201, b"", None)

        def _send(
            self, status: int, body: bytes, content_type: str | None, headers: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            if content_type:
                self.send_header("Content-Type", content_type)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = _handle

        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

    return Handler


@pytest.fixture
def http_server(monkeypatch):
    """A running server on 127.0.0.1 (an ephemeral port), stopped after the test."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    state = Server("127.0.0.1", 0)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.released.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
