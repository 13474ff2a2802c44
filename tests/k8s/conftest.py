"""Fixtures of the ``k8s:`` tests: the Redis ones of tests/redis/conftest.py (loaded from
its file: ``started``, ``client``, ``raw``, ``until``), the test Kubernetes API server
of tests/k8sserver.py, and a worker serving ``k8s:`` tasks through the real client."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import need_module

need_module("kubernetes", "kubernetes")  # before the imports below need it

from k8sserver import KubernetesServer, k8s_server  # noqa: F401 - a fixture
from kubernetes import client as k8s_client

from littleflow.k8s.executor import KubernetesTasks
from littleflow.redis.connection import connect
from littleflow.redis.protocol import Keys
from littleflow.redis.store import Store
from littleflow.redis.worker import Worker

_spec = importlib.util.spec_from_file_location(
    "littleflow_redis_conftest", Path(__file__).parent.parent / "redis" / "conftest.py"
)
_redis = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_redis)
started, client, raw, until_fixture = _redis.started, _redis.client, _redis.raw, _redis.until_fixture
CLAIM_IDLE = _redis.CLAIM_IDLE


def api_client(url: str) -> k8s_client.ApiClient:
    """The official client, configured for ``url``."""
    configuration = k8s_client.Configuration()
    configuration.host = url
    return k8s_client.ApiClient(configuration)


@pytest.fixture
def k8s_worker(started, redis_url: str, k8s_server: KubernetesServer) -> Callable[..., Worker]:
    """``k8s_worker(**options)``: a Worker serving ``k8s:`` tasks with a KubernetesTasks
    against the test server (options go to KubernetesTasks), running until the test ends."""

    def start(**options) -> Worker:
        options.setdefault("resync", 5.0)
        options.setdefault("retry", 0.05)
        executor = KubernetesTasks(api_client(k8s_server.url), "default", **options)
        worker = Worker(
            Store(connect(redis_url), Keys()),
            connect(redis_url, decode=False),
            [executor],
            claim_idle=CLAIM_IDLE,
        )
        started.part(worker)
        return worker

    return start


@pytest.fixture
def engine(started) -> Iterator[None]:
    """An engine and the built-in tasks' worker (no ``k8s:`` tasks: ``k8s_worker`` serves those)."""
    started.services_on()
    yield
