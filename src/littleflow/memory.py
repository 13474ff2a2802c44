"""Keeping Python's garbage collector from walking big flows and runs again and again."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0  # blocks inside fewer_collections() now, in any thread
_saved: tuple[int, ...] = ()


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Run a block with the collector's young generation collected less often.

    Parsing, compiling and running build millions of long-lived objects that
    can never form cycles; with the default thresholds the collector would walk
    them over and over, which costs more than the work itself. Blocks may nest
    and run in several threads: the first to enter changes the settings and the
    last to leave restores them.
    """
    global _depth, _saved
    with _lock:
        if _depth == 0:
            _saved = gc.get_threshold()
            gc.freeze()  # what exists before (the flow, the tasks) is not walked again
            gc.set_threshold(50_000, 20, 20)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                gc.set_threshold(*_saved)
                gc.unfreeze()
