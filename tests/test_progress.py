"""What ``littleflow run`` shows: plain log lines, or a live display on a terminal (progress.py)."""

from __future__ import annotations

import io
import re

import pytest

from littleflow import compile_flow
from littleflow.engine import Start
from littleflow.local import LocalRun
from littleflow.progress import LiveDisplay, LogLines, Progress, known_runs, progress_for
from littleflow.statefile import StateFile


class Terminal(io.StringIO):
    """A stream that says it is an interactive terminal."""

    def isatty(self) -> bool:
        return True


FLOW = compile_flow("fetch → { clean  index } → notify")


def start_of(flow, name, item=-1, input=None):
    (node,) = [n for n in flow.nodes if n.name == name]
    return Start("", node.id, item, {} if input is None else input)


# -- counts ------------------------------------------------------------------------------------
def test_progress_counts_done_failed_retried_and_running():
    progress = Progress(FLOW, io.StringIO())
    fetch, clean, index = (start_of(FLOW, n) for n in ("fetch", "clean", "index"))
    progress.event("start", fetch, {"attempt": 1})
    assert list(progress.running.values()) == ["fetch"]
    progress.event("end", fetch, {})
    progress.event("start", clean, {"attempt": 1})
    progress.event("start", index, {"attempt": 1})
    progress.event("retry", index, {"attempt": 1, "error": "boom"})
    progress.event("fail", clean, {"error": "broken"})
    assert (progress.done, progress.failed, progress.retried) == (1, 1, 1)
    assert list(progress.running.values()) == ["index"]


def test_plain_progress_prints_nothing():
    stream = io.StringIO()
    progress = Progress(FLOW, stream)
    with progress:
        progress.event("start", start_of(FLOW, "fetch"), {"attempt": 1})
        progress.event("end", start_of(FLOW, "fetch"), {})
    assert stream.getvalue() == ""


# -- log lines ------------------------------------------------------------------------------------
def test_log_lines_render_start_done_and_fail():
    stream = io.StringIO()
    lines = LogLines(FLOW, stream)
    fetch, clean = start_of(FLOW, "fetch"), start_of(FLOW, "clean")
    lines.event("start", fetch, {"attempt": 1})
    lines.event("end", fetch, {})
    lines.event("start", clean, {"attempt": 1})
    lines.event("fail", clean, {"error": "RuntimeError: disk full"})
    out = stream.getvalue().splitlines()
    assert len(out) == 4
    assert re.search(r"\bstart\b.*\bfetch\b.*1:1", out[0])
    assert re.search(r"\bdone\b.*\bfetch\b", out[1])
    assert re.search(r"\bstart\b.*\bclean\b", out[2])
    assert re.search(r"\bFAIL\b.*\bclean\b.*RuntimeError: disk full", out[3])


def test_log_lines_show_retries_and_attempts():
    stream = io.StringIO()
    lines = LogLines(FLOW, stream)
    fetch = start_of(FLOW, "fetch")
    lines.event("start", fetch, {"attempt": 1})
    lines.event("retry", fetch, {"attempt": 1, "error": "ConnectionError: refused"})
    lines.event("start", fetch, {"attempt": 2})
    lines.event("end", fetch, {})
    out = stream.getvalue().splitlines()
    assert re.search(r"\bretry\b.*\bfetch\b.*ConnectionError: refused", out[1])
    assert re.search(r"\bstart\b.*\bfetch\b.*attempt 2", out[2])
    assert re.search(r"\bdone\b.*\bfetch\b", out[3])


def test_log_lines_name_iteration_items():
    flow = compile_flow("<[1, 2]> → * score")
    stream = io.StringIO()
    LogLines(flow, stream).event("start", start_of(flow, "score", item=1, input=2), {"attempt": 1})
    assert "score[1]" in stream.getvalue()


def test_log_lines_from_a_real_run():
    stream = io.StringIO()
    flow = compile_flow("A → B")

    def B(input):
        raise ValueError("bad input")

    lines = LogLines(flow, stream)
    state = LocalRun(flow, {"A": lambda input: {"a": 1}, "B": B}, on_event=lines.event).run()
    assert state.status == "failed"
    out = stream.getvalue()
    assert re.search(r"start\s+A", out) and re.search(r"done\s+A", out)
    assert re.search(r"start\s+B", out) and re.search(r"FAIL\s+B.*bad input", out)
    assert not re.search(r"done\s+B", out)


# -- the live display ----------------------------------------------------------------------------------
def test_live_display_renders_counts_on_a_terminal():
    terminal = Terminal()
    fetch, clean, index = (start_of(FLOW, n) for n in ("fetch", "clean", "index"))
    with LiveDisplay(FLOW, terminal) as live:
        live.event("start", fetch, {"attempt": 1})
        live.event("end", fetch, {})
        live.event("start", clean, {"attempt": 1})
        live.event("start", index, {"attempt": 1})
        live.event("end", clean, {})
        text = live.render().plain
        assert text.startswith("2 done of 4 runs · 50% · 1 running · 0 failed · ")
        assert "index" in text
        live.event("fail", index, {"error": "x"})
    out = terminal.getvalue()
    assert "2 done" in out
    assert "1 failed" in out


def first_line(live: LiveDisplay) -> str:
    return live.render().plain.splitlines()[0]


def test_an_iteration_counts_its_runs_against_the_runs_started():
    # the report of issue 15: "8 done … 2 tasks in the flow" after 8 runs of 2 tasks
    flow = compile_flow("<[1, 2, 3, 4]> → * { clean → score } → report")
    terminal = Terminal()
    live = LiveDisplay(flow, terminal)
    assert live.total is None
    assert first_line(live).startswith(
        "0 done of 0 runs started · 0 running · 0 failed · 3 steps not reached yet"
    )
    with live:
        state = LocalRun(
            flow, {n: (lambda input: input) for n in ("clean", "score", "report")}, on_event=live.event
        ).run()
    assert state.status == "finished"
    line = first_line(live)
    assert line.startswith("9 done of 9 runs started · 0 running · 0 failed · ")
    assert "%" not in line and "not reached" not in line


def test_runs_started_so_far_and_steps_not_reached_while_an_iteration_runs():
    flow = compile_flow("<[1, 2]> → * { clean → score } → report")
    live = LiveDisplay(flow, Terminal())
    clean = [start_of(flow, "clean", item) for item in (0, 1)]
    for start in clean:
        live.event("start", start, {"attempt": 1})
    live.event("end", clean[0], {})
    assert first_line(live).startswith(
        "1 done of 2 runs started · 1 running · 0 failed · 2 steps not reached yet"
    )
    live.event("start", start_of(flow, "score", 0), {"attempt": 1})
    live.event("retry", start_of(flow, "score", 0), {"attempt": 1, "error": "x"})
    live.event("start", start_of(flow, "score", 0), {"attempt": 2})  # the same run again
    assert first_line(live).startswith(
        "1 done of 3 runs started · 2 running · 0 failed · 1 retried · 1 step not reached yet"
    )


@pytest.mark.parametrize(
    "text, runs",
    [
        ("fetch → { clean  index } → notify", 4),
        ("A → <out.json>", 2),
        ("A → B\nC → :x\n:x → D", 4),
        ("<[1, 2]> → * A", None),  # iteration
        ("A → ? `$[?@.ok]` B", None),  # a guard
        ("A → if `$[?@.ok]` then B else C", None),  # a branch
        ("repeat { A } until `$[?@.done]`", None),  # a loop
        (":poll A → check → :poll", None),  # a cycle
    ],
)
def test_the_runs_a_flow_makes_are_known_when_every_step_runs_once(text, runs):
    assert known_runs(compile_flow(text)) == runs


def test_a_resumed_run_counts_the_runs_done_before(tmp_path):
    flow = compile_flow("A → B → C")

    def B(input):
        raise ValueError("not yet")

    saved = StateFile(tmp_path / "run.state", flow)
    state = LocalRun(flow, {"A": lambda i: i, "B": B, "C": lambda i: i}, journal=saved).run()
    assert state.status == "failed"
    state = StateFile(tmp_path / "run.state", flow).load()
    live = LiveDisplay(flow, Terminal(), state)
    assert first_line(live).startswith("1 done of 3 runs · 33% · 0 running")
    live.event("start", start_of(flow, "B"), {"attempt": 1})
    live.event("end", start_of(flow, "B"), {})
    assert first_line(live).startswith("2 done of 3 runs · 66% · 0 running")


def test_live_display_counts_retries():
    live = LiveDisplay(FLOW, Terminal())
    fetch = start_of(FLOW, "fetch")
    live.event("start", fetch, {"attempt": 1})
    live.event("retry", fetch, {"attempt": 1, "error": "x"})
    assert "1 retried" in live.render().plain


def test_live_display_during_a_real_run():
    terminal = Terminal()
    flow = compile_flow("A → { B  C }")
    live = LiveDisplay(flow, terminal)
    with live:
        state = LocalRun(flow, {n: (lambda input: None) for n in "ABC"}, on_event=live.event).run()
    assert state.status == "finished"
    assert "3 done" in terminal.getvalue()
    assert "3 done" in live.render().plain


# -- which display ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "quiet,stream,kind",
    [
        (True, Terminal(), Progress),
        (True, io.StringIO(), Progress),
        (False, Terminal(), LiveDisplay),
        (False, io.StringIO(), LogLines),
    ],
)
def test_progress_for_chooses_by_quiet_and_terminal(quiet, stream, kind):
    assert type(progress_for(FLOW, quiet, stream)) is kind
