"""Pytest fixtures for tests that need a real Redis: a private redis-server on a
free port (never the machine's own Redis on 6379). Registered in conftest.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from support import need_redis_server

from littleflow.redis.server import RedisServer


def _require_server() -> None:
    """Skip the test when no redis-server can be found (`dev.py test` makes sure there is one)."""
    need_redis_server()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One append-only redis-server shared by the whole test session."""
    _require_server()
    with RedisServer(tmp_path_factory.mktemp("redis"), appendonly=True) as server:
        yield server


@pytest.fixture
def redis_url(request: pytest.FixtureRequest, redis_server: RedisServer) -> Iterator[str]:
    """The URL of the session's server, its data wiped (FLUSHALL) before the test. For a test
    parametrized with ``"cluster"`` (``rediscluster.on_server_and_cluster``): the session's
    Redis Cluster, flushed, by a node that does not serve the ``{lf}`` slot."""
    if getattr(request, "param", "server") == "cluster":
        from rediscluster import away_from  # (here: rediscluster imports this module)

        yield away_from(request.getfixturevalue("cluster"), "{lf}")
        return
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    yield redis_server.url


@pytest.fixture
def own_redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A started redis-server of the test's own, free to kill and restart."""
    _require_server()
    with RedisServer(tmp_path / "redis") as server:
        yield server
