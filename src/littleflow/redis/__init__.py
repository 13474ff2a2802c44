"""littleflow on Redis: store, transport, engine and workers (docs/protocol.md).

``Client``, ``Services`` and the errors are loaded when first asked for, so that
importing one light module of this package (``littleflow.redis.protocol``) does not
load the client, the engine and the workers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_names

if TYPE_CHECKING:
    from .client import Client
    from .schedules import ScheduleExists, UnknownSchedule
    from .serve import Services
    from .store import StoreError, WorkflowExists, WorkflowNotFound

__all__ = [
    "Client",
    "ScheduleExists",
    "Services",
    "StoreError",
    "UnknownSchedule",
    "WorkflowExists",
    "WorkflowNotFound",
]

_HOMES = {
    "Client": ".client",
    "ScheduleExists": ".schedules",
    "Services": ".serve",
    "StoreError": ".store",
    "UnknownSchedule": ".schedules",
    "WorkflowExists": ".store",
    "WorkflowNotFound": ".store",
}


__getattr__, __dir__ = lazy_names(__name__, _HOMES, globals())
