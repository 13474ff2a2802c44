"""The ``littleflow`` command (click): the group and what its commands share in
common.py; the commands in local.py (compile, check, doc, run), system.py (serve,
engine, worker), workflows.py (submit, status, list … dead) and schedules.py."""

from . import local, schedules, system, workflows  # noqa: F401 - importing them registers their commands on main
from .common import main

__all__ = ["main"]
