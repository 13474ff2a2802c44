"""littleflow's HTTP API (and, later, its web console)."""

from .app import create_app

__all__ = ["create_app"]
