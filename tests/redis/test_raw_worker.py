"""The worker of docs/workers.md (examples/raw_worker.py, redis-py only) works with a real engine."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from littleflow.redis.client import Client
from littleflow.redis.protocol import Keys
from littleflow.redis.serve import Services

RAW_WORKER = Path(__file__).resolve().parents[2] / "examples" / "raw_worker.py"


@pytest.fixture
def raw_worker(redis_url):
    process = subprocess.Popen(
        [sys.executable, str(RAW_WORKER), redis_url], stderr=subprocess.PIPE, text=True
    )
    assert "serving text:upper, text:count" in process.stderr.readline()
    yield process
    process.kill()
    process.wait()


def test_a_worker_written_from_the_protocol_alone_runs_tasks(redis_url, raw_worker):
    with Services(redis_url, builtins=False):
        client = Client(redis_url)
        id = client.submit("text:upper → text:count", {"text": "hello"})
        done = client.wait(id, timeout=20)
    assert done["state"] == "finished"
    assert done["output"] == {"count": 5}
    assert all(node["worker"].startswith("raw-") for node in done["nodes"] if node["kind"] == "task")


def test_its_failures_fail_the_workflow_with_its_message(redis_url, raw_worker):
    with Services(redis_url, builtins=False):
        client = Client(redis_url)
        done = client.wait(client.submit("text:count → text:upper"), timeout=20)
    assert done["state"] == "failed"
    assert done["error"]["name"] == "text:upper"
    assert done["error"]["error"] == "ValueError: the input has no text"


def test_an_end_whose_output_holds_nan_fails_its_task_and_every_read_works(redis_url):
    """A worker of another language may write NaN: the engine fails the task rather than keep
    what no JSON reader (the API's answers) would take."""
    with Services(redis_url, builtins=False), redis.Redis.from_url(redis_url, decode_responses=True) as r:
        keys = Keys()
        r.xgroup_create(keys.stream("text:upper"), "workers", id="0", mkstream=True)
        client = Client(redis_url)
        id = client.submit("text:upper")
        found = None
        while not found:
            found = r.xreadgroup("workers", "raw-test", {keys.stream("text:upper"): ">"}, count=1, block=5000)
        message_id, start = found[0][1][0]
        r.xadd(
            keys.ends,
            {
                "kind": "end",
                "workflow": start["workflow"],
                "task": start["task"],
                "seq": start["seq"],
                "status": "done",
                "output": '{"x": NaN}',
            },
        )
        r.xack(keys.stream("text:upper"), "workers", message_id)
        done = client.wait(id, timeout=20)
    assert done["state"] == "failed"
    assert done["error"]["error"] == "the task's output is not JSON: NaN is not a JSON number"
    json.dumps(client.status(id), allow_nan=False)
