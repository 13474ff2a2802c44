"""The web console: one page and its script and styles, served from the package (no CDN).

The page needs no token to load; everything it shows comes from the API with the
token the user signs in with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.staticfiles import StaticFiles

#: Where the console is served.
CONSOLE = "/console"
ASSETS = Path(__file__).with_name("console")
#: Scripts only from this server; styles inline too (the graphs' SVG carries its own).
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # (revalidated: after an upgrade no page runs an old script)
}


class ConsoleFiles(StaticFiles):
    """The console's files, with headers that keep foreign scripts and frames out."""

    async def get_response(self, path: str, scope: Any) -> Any:
        response = await super().get_response(path, scope)
        response.headers.update(HEADERS)
        return response


def mount(app: FastAPI) -> None:
    """Serve the console at ``/console/``, and send ``/`` there."""

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("console/")

    app.mount(CONSOLE, ConsoleFiles(directory=ASSETS, html=True), name="console")
