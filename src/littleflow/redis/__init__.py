"""littleflow on Redis: store, transport, engine and workers (docs/protocol.md).

``Client``, ``Services`` and ``StoreError`` are loaded when first asked for, so that
importing one light module of this package (``littleflow.redis.protocol``) does not
load the client, the engine and the workers.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import Client
    from .serve import Services
    from .store import StoreError, WorkflowNotFound

__all__ = ["Client", "Services", "StoreError", "WorkflowNotFound"]

_HOMES = {"Client": ".client", "Services": ".serve", "StoreError": ".store", "WorkflowNotFound": ".store"}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(_HOMES[name], __name__), name)
    globals()[name] = value
    return value
