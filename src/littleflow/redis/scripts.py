"""The Lua scripts of scripts/*.lua, registered once per Redis client."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

from redis.cluster import ClusterPipeline


@cache
def source(name: str) -> str:
    """The text of ``scripts/NAME.lua``."""
    return (resources.files(__package__) / "scripts" / f"{name}.lua").read_text(encoding="utf-8")


class Scripts:
    """``scripts.NAME(keys, args, client=None)`` runs scripts/NAME.lua: by its SHA, loading it
    when Redis lacks it; in a Redis Cluster pipeline (where redis-py refuses scripts) as EVAL
    of its text, which needs no loading on whichever node owns the keys."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._loaded: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        script = self._loaded.get(name)
        if script is None:
            script = self._loaded[name] = _Script(name, self._client.register_script(source(name)))
        return script


class _Script:
    def __init__(self, name: str, registered: Any) -> None:
        self.name = name
        self.registered = registered

    def __call__(self, keys: list = (), args: list = (), client: Any = None) -> Any:
        if isinstance(client, ClusterPipeline):
            return client.execute_command("EVAL", source(self.name), len(keys), *keys, *args)
        return self.registered(keys=keys, args=args, client=client)
