"""Durations written by people: ``90`` (seconds), ``250ms``, ``30s``, ``5m``, ``12h``, ``7d``,
``2w``, and sums of them (``1d12h``); and written back: :func:`text` for how long something
took, :func:`period` for an exact period."""

from __future__ import annotations

import re
from typing import Any

from .values import brief

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def seconds(value: Any) -> float:
    """The seconds of ``value``: a number ≥ 0, or text like ``250ms``, ``30s``, ``1d12h``.
    Raises ``ValueError`` (one line) for anything else."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < float("inf"):
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            return float(text)
        if text and not _PART.sub("", text):
            return float(sum(float(number) * _UNITS[unit] for number, unit in _PART.findall(text)))
    raise ValueError(f"bad duration {brief(value)}: seconds, or like 250ms, 90s, 30m, 12h, 7d, 1d12h")


def text(value: float) -> str:
    """How long something took, to the precision that matters at its size: ``3.14s``,
    ``12.3s``, ``5m03s``, ``2h05m``, ``3d04h`` (each readable by :func:`seconds`)."""
    value = max(value, 0.0)
    if value < 10:
        return f"{value:.2f}s"
    if value < 60:
        return f"{value:.1f}s"
    minutes, rest = divmod(int(value), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def period(value: int) -> str:
    """Whole seconds exactly, in the largest unit that divides them: ``2w``, ``1d``, ``90m``,
    ``45s`` (the inverse of :func:`seconds`)."""
    for unit, size in (("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60)):
        if value and value % size == 0:
            return f"{value // size}{unit}"
    return f"{value}s"
