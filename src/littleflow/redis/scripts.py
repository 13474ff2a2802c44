"""The Lua scripts of scripts/*.lua, registered once per Redis client."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any


@cache
def source(name: str) -> str:
    """The text of ``scripts/NAME.lua``."""
    return (resources.files(__package__) / "scripts" / f"{name}.lua").read_text(encoding="utf-8")


class Scripts:
    """``scripts.NAME(keys, args)`` runs scripts/NAME.lua (by its SHA, loading it when Redis lacks it)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._loaded: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        script = self._loaded.get(name)
        if script is None:
            script = self._loaded[name] = self._client.register_script(source(name))
        return script
