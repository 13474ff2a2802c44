"""Durations written by people: ``90`` (seconds), ``250ms``, ``30s``, ``5m``, ``12h``, ``7d``,
``2w``, and sums of them (``1d12h``)."""

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
