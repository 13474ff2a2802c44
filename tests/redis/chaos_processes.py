"""The tasks of test_redis_chaos.py, run by real `littleflow worker --tasks <this file>` processes.

Every task computes its output from its input alone, so the output of each workflow
(the flow is test_redis_chaos.FLOW) is known beforehand. A task that completes appends one line
``NAME KEY`` to the file named by $CHAOS_RUNS, so a test can count how often each task
instance ran to completion (the workflow input's ``n`` is unique within a test).
``first`` and each ``square`` sleep a while when the input says ``"nap": [low, high]``
(milliseconds). Only the public functions here are tasks; helpers start with ``_``.
"""

from __future__ import annotations

import os
import time


def first(input):
    _nap(input, 1)
    _ran("first", input["n"])
    return dict(input)


def double(input):
    _ran("double", input["n"])
    return {**input, "b": 2 * input["n"]}


def inc(input):
    _ran("inc", input["n"])
    return {**input, "c": input["n"] + 1}


def join(parts):
    base = parts[0]
    _ran("join", base["n"])
    return {
        "n": base["n"],
        "k": base["k"],
        "nap": base.get("nap"),
        "parts": len(parts),
        "sum": sum(part.get("b", 0) + part.get("c", 0) for part in parts),
    }


def spread(input):
    _ran("spread", input["n"])
    tag = f"{input['sum']}/{input['parts']}"
    return [{"i": i, "n": input["n"], "nap": input.get("nap"), "tag": tag} for i in range(input["k"])]


def square(item):
    i, n = item["i"], item["n"]
    _nap(item, 2 + i)
    _ran("square", f"{n}.{i}")
    return {"i": i, "sq": i * i + n, "tag": item["tag"]}


def total(items):
    n = items[0]["sq"] if items else None  # the square of item 0 is 0 + n
    _ran("total", n)
    return {
        "n": n,
        "count": len(items),
        "squares": [item["sq"] for item in items],
        "tags": sorted({item["tag"] for item in items}),
    }


def _nap(input, salt: int) -> None:
    """Sleep as ``input["nap"]`` says: ``[low, high]`` milliseconds, a fixed pick for each ``n`` and salt."""
    nap = input.get("nap")
    if nap:
        low, high = nap
        time.sleep((low + (input["n"] * 7 + salt * 13) % (high - low + 1)) / 1000)


def _ran(name: str, key) -> None:
    path = os.environ.get("CHAOS_RUNS")
    if not path:
        return
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, f"{name} {key}\n".encode())
    finally:
        os.close(descriptor)
