"""Client.stalled says why a workflow is not getting on: a queued task no worker serves."""

import time

from littleflow.redis import Client, Services
from littleflow.tasks import Registry


def until(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_queued_task_of_a_namespace_nobody_serves_is_named_until_a_worker_comes(redis_url):
    client = Client(redis_url)
    with Services(redis_url):  # engine and built-in tasks only
        id = client.submit("wait:delay (- duration: 0 -) → my:thing")
        until(lambda: client.status(id)["nodes"][2]["status"] == "queued")
        assert client.stalled(id) == ["task my:thing at 1:32 is queued, and no worker serves it"]
        registry = Registry()
        registry.add("my:thing", lambda input: {"done": True})
        with Services(redis_url, tasks=registry, engine=False, builtins=False):
            assert client.wait(id, timeout=10)["output"] == {"done": True}
            assert client.stalled(id) == []


def test_plain_names_are_named_as_such(redis_url):
    client = Client(redis_url)
    id = client.submit("fetch")
    assert client.stalled(id) == ["task fetch at 1:1 is queued, and no worker serves it"]
