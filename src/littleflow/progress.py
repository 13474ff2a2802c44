"""What ``littleflow run`` shows while it works: a live display on a terminal,
plain log lines elsewhere."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, TextIO

from .durations import text as took
from .engine import Start
from .flow import Flow
from .state import State

#: The kinds of node that run as a task (and so are counted as runs).
RUNS = ("task", "resource")


def known_runs(flow: Flow) -> int | None:
    """How many task runs the flow makes, when that is known before it runs: each task and
    resource node some run reaches, once, in a flow where nothing iterates, is guarded,
    branches, loops or closes a cycle. None otherwise."""
    nodes = flow.nodes
    if any(node.iterate or node.guard or node.kind in ("choice", "repeat", "while") for node in nodes):
        return None
    thresholds = flow.thresholds()
    if any(thresholds[node.id] < len(flow.predecessors(node.id)) for node in nodes):
        return None  # an edge closes a cycle (it does not count towards its target's threshold)
    reached = flow.reachable()
    return sum(1 for node in nodes if node.kind in RUNS and reached[node.id])


class Progress:
    """Counts of task runs started, done, running, failed and retried, fed by run events, and
    the task nodes reached; ``state``, when the run resumes one, gives the runs done before."""

    def __init__(self, flow: Flow, stream: TextIO | None = None, state: State | None = None) -> None:
        self.flow = flow
        self.stream = stream or sys.stderr
        self.began = time.monotonic()
        self.started = self.done = self.failed = self.retried = 0
        self.running: dict[tuple, str] = {}
        # task nodes that have run (resumed: done before) or started: the rest are not reached yet
        self.reached: set[int] = set()
        self.before = 0  # runs done before a resume
        if state is not None:
            statuses = state.node_statuses().items()
            self.reached.update(
                n for n, status in statuses if status == "done" and flow.nodes[n].kind in RUNS
            )
            self.before = len(self.reached)  # (exact when each node runs once: see known_runs)
        reachable = flow.reachable()
        self.steps = sum(1 for node in flow.nodes if node.kind in RUNS and reachable[node.id])
        self._lock = threading.Lock()

    def name(self, start: Start) -> str:
        node = self.flow.nodes[start.node]
        label = node.alias or node.name or node.label
        return f"{label}[{start.item}]" if start.item >= 0 else label

    def event(self, kind: str, start: Start, info: dict[str, Any]) -> None:
        """Called by the run for each task event: start, end, fail or retry."""
        with self._lock:
            if kind == "start":
                if start.key not in self.running:  # (a retry's new attempt is the same run)
                    self.started += 1
                    self.reached.add(start.node)
                self.running[start.key] = self.name(start)
            elif kind == "end":
                self.running.pop(start.key, None)
                self.done += 1
            elif kind == "fail":
                self.running.pop(start.key, None)
                self.failed += 1
            elif kind == "retry":
                self.retried += 1
        self.show(kind, start, info)

    def show(self, kind: str, start: Start, info: dict[str, Any]) -> None:
        """Tell the user about one event (nothing here; see the subclasses)."""

    def elapsed(self) -> float:
        return time.monotonic() - self.began

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


class LogLines(Progress):
    """One plain line per task event, for logs and pipes."""

    def show(self, kind: str, start: Start, info: dict[str, Any]) -> None:
        node = self.flow.nodes[start.node]
        where = f" ({node.line}:{node.column})" if node.line else ""
        text = {"start": "start", "end": "done ", "fail": "FAIL ", "retry": "retry"}[kind]
        line = f"[{self.elapsed():8.3f}s] {text} {self.name(start)}{where}"
        if kind == "start" and info.get("attempt", 1) > 1:
            line += f" attempt {info['attempt']}"
        if info.get("error"):
            line += f": {info['error']}"
        print(line, file=self.stream, flush=True)


class LiveDisplay(Progress):
    """A live summary on an interactive terminal: counts, what runs, elapsed time. Runs are
    counted against runs: against all the flow makes when :func:`known_runs` knows them (with
    a percentage), else against those started so far, saying how many task steps no run has
    reached yet (they may run once, many times or never)."""

    def __init__(self, flow: Flow, stream: TextIO | None = None, state: State | None = None) -> None:
        from rich.console import (
            Console,  # rich is imported only when a terminal shows it
        )
        from rich.live import Live

        super().__init__(flow, stream, state)
        self.total = known_runs(flow)
        self.ended = False
        self._live = Live(
            console=Console(file=self.stream),
            refresh_per_second=8,
            transient=False,
            get_renderable=self.render,
        )

    def render(self) -> Any:
        from rich.text import Text

        with self._lock:
            running = list(self.running.values())
            started, done, failed, retried = self.started, self.done, self.failed, self.retried
            not_reached = self.steps - len(self.reached)
        text = Text()
        if self.total is not None:  # every node runs once: done of all the runs the flow makes
            done += self.before
            text.append(f"{done} done of {self.total} runs", style="green")
            text.append(f" · {done * 100 // max(self.total, 1)}%", style="bold")
        else:  # runs are known as they start: done of those started so far
            text.append(f"{done} done of {started} runs started", style="green")
        text.append(f" · {len(running)} running", style="cyan")
        text.append(f" · {failed} failed", style="red" if failed else "dim")
        if retried:
            text.append(f" · {retried} retried", style="yellow")
        if self.total is None and not_reached and not self.ended:
            steps = "step" if not_reached == 1 else "steps"
            text.append(f" · {not_reached} {steps} not reached yet", style="dim")
        text.append(f" · {took(self.elapsed())}", style="dim")
        if running:
            shown = ", ".join(running[:6]) + (f", … {len(running) - 6} more" if len(running) > 6 else "")
            text.append(f"\nrunning: {shown}")
        return text

    def __enter__(self) -> LiveDisplay:
        self._live.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.ended = True  # (the last picture: steps never reached stay so, no "yet")
        self._live.stop()


def progress_for(
    flow: Flow, quiet: bool, stream: TextIO | None = None, state: State | None = None
) -> Progress:
    """The display for a run (of ``state``, when it resumes one): none when quiet, live on a
    terminal, else log lines."""
    stream = stream or sys.stderr
    if quiet:
        return Progress(flow, stream)
    if stream.isatty():
        return LiveDisplay(flow, stream, state)
    return LogLines(flow, stream)
