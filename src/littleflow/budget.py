"""Time budgets: a block of Python work that may not run longer than it was allowed.

The block runs under a trace hook of this thread that looks at the clock on every
Python call (generators resumed included) and raises :class:`OverBudget` once the
deadline has passed. It bounds pure-Python work on hostile input (a guard's query, a
compile, a drawing) without a process or a thread per call; C code called from the
block (RE2, ``json``) runs to its end, so it must be linear in its input.
"""

from __future__ import annotations

import gc
import inspect
import sys
import threading
import time
from types import FrameType, SimpleNamespace
from typing import Any

#: Code flags of frames that can be resumed: generators, coroutines, async generators.
_RESUMABLE = (
    inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR | inspect.CO_ITERABLE_COROUTINE
)


class OverBudget(BaseException):
    """Work that ran past its time budget; the message says what and how long it was allowed.

    Not an ``Exception``: code the block calls that catches every ``Exception`` (the
    standard library's warnings, say) must not swallow it. Catch it where the budget is set."""


def _may_raise(frame: FrameType | None) -> bool:
    """Whether an exception raised as ``frame`` starts is likely to reach the block: not in a
    generator's frame (it may be resumed by its close() as it is dropped), nor under a
    finalizer (the garbage collector runs ``__del__`` methods and weak reference callbacks of other code
    wherever it strikes). A later call raises it instead."""
    if _collecting.now or (frame is not None and frame.f_code.co_flags & _RESUMABLE):
        return False
    while frame is not None:
        if frame.f_code.co_name == "__del__":
            return False
        frame = frame.f_back
    return True


class limit:
    """Run a ``with`` block for at most ``seconds``, else raise :class:`OverBudget` ("``what``
    took more than N s") from within it. Blocks nest: the inner one keeps the outer deadline."""

    __slots__ = ("deadline", "message", "outer", "enclosing", "fired")

    def __init__(self, seconds: float, what: str) -> None:
        self.deadline = time.monotonic() + seconds
        self.message = f"{what} took more than {seconds:g} s"
        self.outer: Any = None
        self.enclosing: limit | None = None
        self.fired = False

    def _check(self, frame: FrameType, event: str, arg: Any) -> Any:
        if not self.fired and time.monotonic() > self.deadline and _may_raise(frame):
            self.fired = True
            raise OverBudget(self.message)  # (CPython then drops the hook; __exit__ puts the outer one back)
        return (
            self.outer(frame, event, arg) if self.outer is not None else None
        )  # an enclosing budget, a debugger

    def __enter__(self) -> limit:
        if sys.unraisablehook is not _unraisable:
            _hooks.previous, sys.unraisablehook = sys.unraisablehook, _unraisable
        self.enclosing = getattr(_active, "budget", None)
        _active.budget = self
        self.outer = sys.gettrace()
        sys.settrace(self._check)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: Any) -> None:
        sys.settrace(self.outer)
        _active.budget = self.enclosing
        if not isinstance(error, OverBudget) and (self.fired or time.monotonic() > self.deadline):
            # the block swallowed the overrun, turned it into an error of its own, or was past
            # its deadline when it made no more calls
            raise OverBudget(self.message) from error


#: Whether the garbage collector is at work (in whichever thread holds the interpreter):
#: the finalizers and weak reference callbacks it runs are other code's, not the block's.
_collecting = SimpleNamespace(now=False)


def _collection(phase: str, info: Any) -> None:
    _collecting.now = phase == "start"


gc.callbacks.append(_collection)

#: The innermost budget of each thread.
_active = threading.local()
#: The hook for exceptions nobody can catch that ours replaced (and hands the others to).
_hooks = SimpleNamespace(previous=sys.unraisablehook)


def _unraisable(info: Any) -> None:
    """An overrun raised where it could only be printed (a finalizer, a generator closed as it
    was dropped: CPython calls this in the same thread, and has dropped the trace hook) is
    armed again, to be raised at the next call of the block."""
    budget = getattr(_active, "budget", None)
    if isinstance(info.exc_value, OverBudget) and budget is not None:
        while budget is not None:
            budget.fired = False
            budget = budget.enclosing
        sys.settrace(_active.budget._check)
        return
    _hooks.previous(info)
