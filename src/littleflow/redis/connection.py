"""Connecting to Redis: one URL for a single server or a Redis Cluster, told apart by
asking the server (``INFO cluster``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
import redis.asyncio as aioredis
from redis.cluster import RedisCluster
from redis.exceptions import ClusterDownError, RedisClusterException, TryAgainError

#: Errors that say Redis is away for a while, not that a command is wrong: a server down or
#: silent, or on a cluster a slot no node serves now (CLUSTERDOWN, MASTERDOWN, TRYAGAIN).
UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, ClusterDownError, TryAgainError)

#: The options of every client littleflow makes.
OPTIONS = {"health_check_interval": 30, "socket_keepalive": True, "socket_connect_timeout": 10}


def connect(url: str, decode: bool = True) -> redis.Redis | RedisCluster:
    """A client for ``url`` (``redis://user:pass@host:port/db``, ``rediss://`` for TLS): a
    :class:`RedisCluster` when the server there is a cluster node, else a :class:`redis.Redis`.
    A server that cannot be asked (down, wrong password, INFO not allowed) gets the plain
    client, whose first command then fails as it would have without the question."""
    from .store import StoreError  # here, not at the top: store.py imports this module

    try:
        single = redis.Redis.from_url(url, decode_responses=decode, **OPTIONS)
        if urlsplit(url).scheme not in ("redis", "rediss"):  # unix://: never a cluster
            return single
        probe = redis.Redis.from_url(_db_zero(url), **OPTIONS)
    except ValueError as error:
        raise StoreError(f"bad Redis URL {safe_url(url)!r}: {error}") from None
    try:
        with probe:
            enabled = probe.info("cluster").get("cluster_enabled")
    except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
        return single
    if not enabled:
        return single
    single.close()
    try:
        return RedisCluster.from_url(url, decode_responses=decode, **OPTIONS)
    except (ValueError, RedisClusterException) as error:  # e.g. a db other than 0
        raise StoreError(f"cannot use the Redis Cluster at {safe_url(url)}: {error}") from None


def connect_async(url: str, cluster: bool, decode: bool = True) -> aioredis.Redis | aioredis.RedisCluster:
    """An asyncio client for ``url``: a cluster client when ``cluster`` (as :func:`connect`
    found: a plain client on a cluster node is answered MOVED for every key it does not serve)."""
    kind = aioredis.RedisCluster if cluster else aioredis.Redis
    return kind.from_url(url, decode_responses=decode)


def _db_zero(url: str) -> str:
    """``url`` with db 0: a cluster node refuses SELECT of another db (Valkey 9 may not, but by
    default it has only db 0), which would hide that it is a cluster node."""
    parts = urlsplit(url)
    query = urlencode(
        [(name, value) for name, value in parse_qsl(parts.query, keep_blank_values=True) if name != "db"]
    )
    return urlunsplit(parts._replace(path="/0", query=query))


def is_cluster(client: Any) -> bool:
    """True when ``client`` (a plain or an asyncio client) talks to a Redis Cluster."""
    return isinstance(client, (RedisCluster, aioredis.RedisCluster))


def safe_url(url: str) -> str:
    """``url`` without its password."""
    head, at, tail = url.rpartition("@")
    if not at:
        return url
    scheme, _, credentials = head.partition("://")
    user = credentials.partition(":")[0]
    return f"{scheme}://{user + ':***' if user else '***'}@{tail}"
