"""Keeping Python's garbage collector from walking big flows and runs again and again."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Run a block with the collector's young generation collected less often.

    Parsing, compiling and running build millions of long-lived objects that
    can never form cycles; with the default thresholds the collector would walk
    them over and over, which costs more than the work itself.
    """
    thresholds = gc.get_threshold()
    gc.freeze()  # what exists before the block (the flow, the tasks) is not walked again
    gc.set_threshold(50_000, 20, 20)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
