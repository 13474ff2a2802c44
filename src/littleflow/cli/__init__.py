"""The ``littleflow`` command (click)."""

from .local import main

__all__ = ["main"]
