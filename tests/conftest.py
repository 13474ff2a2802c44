import sys
from pathlib import Path

# Make tests/ helpers importable (graphs.py) whatever the working directory.
sys.path.insert(0, str(Path(__file__).parent))


import pytest
from rediscluster import cluster, redis_cluster  # noqa: F401
from redisserver import own_redis_server, redis_server, redis_url  # noqa: F401

from littleflow import tasks as tasks_module


@pytest.fixture
def fresh_registry():
    """``@task`` fills one registry for the process: give a test an empty one."""
    registry = tasks_module.registry
    saved = dict(registry._specs), dict(registry._functions)
    registry._specs.clear()
    registry._functions.clear()
    yield registry
    registry._specs.clear()
    registry._functions.clear()
    registry._specs.update(saved[0])
    registry._functions.update(saved[1])
