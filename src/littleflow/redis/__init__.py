"""littleflow on Redis: store, transport, engine and workers (docs/protocol.md)."""

from .client import Client
from .serve import Services
from .store import StoreError

__all__ = ["Client", "Services", "StoreError"]
