"""The tasks the benchmarks' workers run (``littleflow worker --tasks bench/_tasks.py``)."""

from typing import Any


def noop(input: Any) -> Any:
    """Its input, unchanged: all the time a benchmark sees is littleflow's own."""
    return input
