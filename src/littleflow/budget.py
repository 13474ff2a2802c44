"""Time budgets: a block of Python work that may not run longer than it was allowed.

The block runs under a trace hook of this thread that looks at the clock on every
Python call (generators resumed included) and raises :class:`OverBudget` once the
deadline has passed. It bounds pure-Python work on hostile input (a guard's query, a
compile, a drawing) without a process or a thread per call; C code called from the
block (RE2, ``json``) runs to its end, so it must be linear in its input.
"""

from __future__ import annotations

import sys
import time
from types import FrameType
from typing import Any


class OverBudget(TimeoutError):
    """Work that ran past its time budget; the message says what and how long it was allowed."""


class limit:  # noqa: N801 - used as a function: ``with limit(2, "drawing"): …``
    """Run a ``with`` block for at most ``seconds``, else raise :class:`OverBudget` ("``what``
    took more than N s") from within it. Blocks nest: the inner one keeps the outer deadline."""

    __slots__ = ("deadline", "message", "outer", "fired")

    def __init__(self, seconds: float, what: str) -> None:
        self.deadline = time.monotonic() + seconds
        self.message = f"{what} took more than {seconds:g} s"
        self.outer: Any = None
        self.fired = False

    def _check(self, frame: FrameType, event: str, arg: Any) -> Any:
        if not self.fired and time.monotonic() > self.deadline:
            self.fired = True
            raise OverBudget(self.message)  # (CPython then drops the hook; __exit__ puts the outer one back)
        return self.outer(frame, event, arg) if self.outer is not None else None  # an enclosing budget, a debugger

    def __enter__(self) -> limit:
        self.outer = sys.gettrace()
        sys.settrace(self._check)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: Any) -> None:
        sys.settrace(self.outer)
        if self.fired and not isinstance(error, OverBudget):
            # the block swallowed the overrun, or turned it into an error of its own
            raise OverBudget(self.message) from error
