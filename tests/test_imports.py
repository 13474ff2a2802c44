"""What importing a module loads: the light modules stay light, and no two modules
need each other to be imported."""

import subprocess
import sys

import pytest


def loaded_by(module: str) -> set[str]:
    """The modules a fresh interpreter has after ``import module``."""
    code = f"import sys, {module}; print(' '.join(sys.modules))"
    return set(
        subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True
        ).stdout.split()
    )


def test_the_redis_protocol_loads_neither_the_worker_nor_a_redis_client():
    found = loaded_by("littleflow.redis.protocol")
    heavy = {
        "littleflow.redis.worker",
        "littleflow.redis.client",
        "littleflow.redis.engine",
        "littleflow.redis.store",
        "redis",
        "httpx",
        "fastapi",
        "pydantic",
    }
    assert not found & heavy


def test_the_redis_package_still_gives_its_client_and_services():
    from littleflow.redis import Client, Services, StoreError, WorkflowNotFound
    from littleflow.redis.client import Client as TheClient

    assert Client is TheClient and issubclass(WorkflowNotFound, StoreError) and callable(Services)
    with pytest.raises(AttributeError):
        import littleflow.redis as package

        package.Nothing  # noqa: B018


@pytest.mark.parametrize("module", ["littleflow.layout", "littleflow.timeline", "littleflow.drawing"])
def test_the_pictures_share_drawing_not_each_other(module):
    found = loaded_by(module)
    assert "littleflow.drawing" in found and "littleflow.diagram" not in found
