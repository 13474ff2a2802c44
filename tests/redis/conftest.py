"""Fixtures of the Redis integration tests: engines and workers on threads against a
real redis-server (``redis_url``, flushed for each test), a client, and polling.

Every test here runs littleflow's own ``Services`` (or ``EngineProcess`` / ``Worker``)
threads. They read their streams with a blocking XREADGROUP; to stop them without
waiting out the block, teardown sets the stop signal and then CLIENT UNBLOCKs them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from httpserver import http_server  # noqa: F401 - a fixture for the http: tests
from rediscluster import any_client, node_urls

from littleflow.redis.client import Client
from littleflow.redis.serve import Services

#: claim_idle for the tests: long enough for a busy test machine, short enough to wait out.
CLAIM_IDLE = 0.5


def stop_now(stop: threading.Event, threads: list[threading.Thread], url: str, timeout: float = 15.0) -> None:
    """Set ``stop`` and wake ``threads`` out of their blocking reads until they end."""
    stop.set()
    deadline = time.monotonic() + timeout
    admins: list[redis.Redis] = []
    try:  # on a cluster, each node knows only its own connections: unblock them on every node
        admins = [redis.Redis.from_url(node, socket_timeout=2) for node in node_urls(url)]
        while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
            for admin in admins:
                for client in admin.client_list():
                    if "b" in client.get("flags", ""):
                        admin.client_unblock(client["id"])
            for thread in threads:
                thread.join(0.02)
    except redis.ConnectionError:  # the test stopped its server: the threads see that themselves
        pass
    finally:
        for admin in admins:
            admin.close()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    alive = [t.name for t in threads if t.is_alive()]
    assert not alive, f"threads still running after stop: {alive}"


class Started:
    """What one test started: Services and single engines or workers, stopped at teardown."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.services: list[Services] = []
        self.parts: list[tuple[threading.Event, threading.Thread, str]] = []

    def services_on(self, url: str | None = None, **options: Any) -> Services:
        options.setdefault("claim_idle", CLAIM_IDLE)
        started = Services(url or self.url, **options).start()
        self.services.append(started)
        return started

    def part(self, part: Any, block: float = 0.05, url: str | None = None) -> threading.Thread:
        """Run an EngineProcess or Worker alone on a thread (reading with ``block``); returns the thread."""
        stop = threading.Event()
        thread = threading.Thread(
            target=part.run, args=(stop,), kwargs={"block": block}, name=f"test-{part.name}", daemon=True
        )
        thread.start()
        self.parts.append((stop, thread, url or self.url))
        return thread

    def stop(self, services: Services) -> None:
        """Stop ``services`` now (as ``Services.stop`` does, without waiting out the blocking reads)."""
        stop_now(services.stop_event, services.threads, services.url)
        services.stop()

    def close(self) -> None:
        for services in reversed(self.services):
            self.stop(services)
        for stop, thread, url in reversed(self.parts):
            stop_now(stop, [thread], url)


@pytest.fixture
def started(redis_url: str) -> Iterator[Started]:
    """``started.services_on(**options)`` runs ``Services`` (claim_idle 0.5 s unless given);
    ``started.part(engine_or_worker, block)`` runs one alone. All stop at teardown."""
    found = Started(redis_url)
    try:
        yield found
    finally:
        found.close()


@pytest.fixture
def client(redis_url: str) -> Iterator[Client]:
    found = Client(redis_url)
    yield found
    found.redis.close()


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    """A plain Redis client of the test's server or cluster (text replies; bytes that are not UTF-8 become U+FFFD)."""
    with any_client(redis_url, decode_responses=True, encoding_errors="replace") as found:
        yield found


def until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "the condition") -> Any:
    """Poll ``predicate`` until it returns something true (returned); fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        found = predicate()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout:g} s")
        time.sleep(delay)
        delay = min(0.05, delay * 2)


@pytest.fixture(scope="session")
def stop_quickly() -> Callable[..., None]:
    """``stop_quickly(services)``: Services.stop without waiting out the blocking reads
    (for fixtures broader than a test, which cannot use ``started``)."""

    def stop(services: Services) -> None:
        stop_now(services.stop_event, services.threads, services.url)
        services.stop()

    return stop


@pytest.fixture(name="until")
def until_fixture() -> Callable[..., Any]:
    """``until(predicate, timeout, what)``: poll until true."""
    return until
