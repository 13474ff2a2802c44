"""The ``littleflow`` command (click): the group and what its commands share in
common.py; the commands in local.py (compile, check, doc, run), system.py (serve,
engine, worker), workflows.py (submit, status, list … dead) and schedules.py."""

from .common import main
from . import local, schedules, system, workflows  # noqa: E402,F401 - importing them registers their commands on main

__all__ = ["main"]
