"""schemathesis, run against the API's own OpenAPI document, finds no server error."""

import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import uvicorn

from littleflow.api import create_app
from littleflow.redis import Services
from littleflow.redis.server import free_port


def test_generated_requests_never_meet_a_server_error(redis_url):
    schemathesis = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or "schemathesis"
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(redis_url), host="127.0.0.1", port=port, log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    with Services(redis_url, claim_idle=1.0):
        thread.start()
        while not server.started:
            time.sleep(0.02)
        try:
            run = subprocess.run(
                [
                    schemathesis,
                    "run",
                    f"http://127.0.0.1:{port}/openapi.json",
                    "--checks",
                    "not_a_server_error",
                    "--max-examples",
                    "25",
                    "--seed",
                    "1",
                    "--exclude-path",
                    "/events",  # (the live streams never end)
                    "--exclude-path",
                    "/workflows/{id}/watch",
                ],
                capture_output=True,
                text=True,
                timeout=300,
            )
        finally:
            server.should_exit = True
            thread.join(5)
    assert run.returncode == 0, run.stdout[-4000:]
