"""What ``littleflow run`` shows while it works: a live display on a terminal,
plain log lines elsewhere."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, TextIO

from .engine import Start
from .flow import Flow


class Progress:
    """Counts of task runs done, running, failed and retried, fed by run events."""

    def __init__(self, flow: Flow, stream: TextIO | None = None) -> None:
        self.flow = flow
        self.stream = stream or sys.stderr
        self.began = time.monotonic()
        self.done = self.failed = self.retried = 0
        self.running: dict[tuple, str] = {}
        self._lock = threading.Lock()

    def name(self, start: Start) -> str:
        node = self.flow.nodes[start.node]
        label = node.alias or node.name or node.label
        return f"{label}[{start.item}]" if start.item >= 0 else label

    def event(self, kind: str, start: Start, info: dict[str, Any]) -> None:
        """Called by the run for each task event: start, end, fail or retry."""
        with self._lock:
            if kind == "start":
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
    """A live summary on an interactive terminal: counts, what runs, elapsed time."""

    def __init__(self, flow: Flow, stream: TextIO | None = None) -> None:
        from rich.console import (
            Console,  # rich is imported only when a terminal shows it
        )
        from rich.live import Live

        super().__init__(flow, stream)
        self.total = sum(1 for node in flow.nodes if node.kind in ("task", "resource"))
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
            done, failed, retried = self.done, self.failed, self.retried
        text = Text()
        text.append(f"{done} done", style="green")
        text.append(f" · {len(running)} running", style="cyan")
        text.append(f" · {failed} failed", style="red" if failed else "dim")
        if retried:
            text.append(f" · {retried} retried", style="yellow")
        text.append(f" · {self.total} tasks in the flow · {self.elapsed():.1f}s", style="dim")
        if running:
            shown = ", ".join(running[:6]) + (f", … {len(running) - 6} more" if len(running) > 6 else "")
            text.append(f"\nrunning: {shown}")
        return text

    def __enter__(self) -> LiveDisplay:
        self._live.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._live.stop()


def progress_for(flow: Flow, quiet: bool, stream: TextIO | None = None) -> Progress:
    """The display for a run: none when quiet, live on a terminal, else log lines."""
    stream = stream or sys.stderr
    if quiet:
        return Progress(flow, stream)
    if stream.isatty():
        return LiveDisplay(flow, stream)
    return LogLines(flow, stream)
