"""Task logs (tasklogs.py): each run its own lines of stdout, stderr and logging, even many at
once (threads, async), bounded; locally they go into the trace (LocalRun(trace=True), --trace)."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from unittest.mock import patch

from hypothesis import given
from hypothesis import strategies as st

from littleflow import compile_flow
from littleflow.local import LocalRun
from littleflow.tasklogs import BYTES, LINE, LINES, RunLog, capturing
from littleflow.tasks import Registry


def traced(text: str, tasks, concurrency: int = 1, input=None) -> list[dict]:
    run = LocalRun(compile_flow(text), tasks, concurrency=concurrency, trace=True)
    run.run(input)
    return run.trace


def test_a_run_keeps_its_last_lines_within_the_bounds():
    log = RunLog()
    for number in range(LINES + 10):
        log.write(f"line {number}\n")
    assert len(log.lines) == LINES and log.dropped == 10 and log.lines[0] == "line 10"
    big = RunLog()
    for _ in range(100):
        big.add("x" * 1000)
    assert big.size <= BYTES and big.dropped == 100 - len(big.lines)
    long = RunLog()
    long.add("y" * (LINE * 2))
    assert len(long.lines[0].encode()) <= LINE and long.lines[0].endswith("…")


def test_lines_are_whole_lines_whatever_the_writes():
    log = RunLog()
    log.write("a")
    log.write("b\nc")
    log.write("\n\nd")
    log.flush()
    assert list(log.lines) == ["ab", "c", "", "d"]
    assert log.since(2) == ["", "d"] and log.to_json() == {"lines": ["ab", "c", "", "d"]}


def test_print_stderr_and_logging_are_captured_and_still_shown(capsys):
    def A(input):
        print("to stdout")
        print("to stderr", file=sys.stderr)
        logging.getLogger("my.task").warning("careful")
        logging.getLogger("my.task").debug("not at this level")

    trace = traced("A", {"A": A})
    assert trace[0]["log"] == ["to stdout", "to stderr", "WARNING my.task: careful"]
    shown = capsys.readouterr()
    assert "to stdout" in shown.out and "to stderr" in shown.err


def test_a_logging_stream_handler_does_not_make_lines_twice():
    handler = logging.StreamHandler(sys.stderr)
    logging.getLogger().addHandler(handler)
    try:
        trace = traced("A", {"A": lambda input: logging.getLogger("t").error("once")})
    finally:
        logging.getLogger().removeHandler(handler)
    assert trace[0]["log"] == ["ERROR t: once"]


def test_concurrent_runs_each_keep_their_own_lines():
    barrier = threading.Barrier(4, timeout=5)

    def make(name):
        def task(input):
            barrier.wait()  # all four running at once
            for number in range(50):
                print(f"{name} {number}")

        return task

    names = ["A", "B", "C", "D"]
    trace = traced("{ A B C D }", {name: make(name) for name in names}, concurrency=4)
    for entry in trace:
        assert entry["log"] == [f"{entry['name']} {number}" for number in range(50)]


def test_async_runs_on_one_loop_keep_their_own_lines():
    registry = Registry()

    @registry.task("talk")
    async def talk(input):
        for number in range(5):
            print(f"item {input} line {number}")
            await asyncio.sleep(0.001)  # (the others run between)

    trace = traced("* talk", registry, concurrency=3, input=[0, 1, 2])
    assert sorted(entry["item"] for entry in trace) == [0, 1, 2]
    for entry in trace:
        assert entry["log"] == [f"item {entry['item']} line {number}" for number in range(5)]


def test_each_attempt_has_its_lines_and_says_why_it_failed():
    registry = Registry()
    calls = []

    @registry.task("flaky", retries=1, backoff=0)
    def flaky(input):
        calls.append(1)
        print(f"try {len(calls)}")
        if len(calls) == 1:
            raise OSError("away")

    first, second = traced("flaky", registry)
    assert first["log"] == ["try 1", "── attempt 1 failed: OSError: away"]
    assert second["log"] == ["try 2"]


def test_outside_a_captured_run_nothing_is_kept(capsys):
    log = RunLog()
    with capturing(log):
        print("inside")
    print("outside")
    assert list(log.lines) == ["inside"]
    assert capsys.readouterr().out == "inside\noutside\n"


@given(
    st.lists(st.text(alphabet=st.sampled_from("ab\n"), max_size=40), max_size=60),
    st.integers(min_value=1, max_value=8),
)
def test_what_is_kept_is_the_tail_of_what_was_written_within_the_bounds(writes, lines):
    """Whatever the writes, the kept lines are the last whole lines written, at most ``lines``
    of them (a smaller bound, so that it is reached), and ``dropped`` + kept = all."""
    log = RunLog()
    with patch("littleflow.tasklogs.LINES", lines):
        for text in writes:
            log.write(text)
        log.flush()
    written = "".join(writes)
    whole = written.split("\n") if written else []
    if whole and whole[-1] == "":
        whole.pop()  # (text ending in a newline: no line after it)
    assert list(log.lines) == whole[len(whole) - len(log.lines) :]
    assert len(log.lines) <= lines and log.dropped + len(log.lines) == len(whole) == log.total
