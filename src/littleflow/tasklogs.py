"""Task logs: what a task writes to stdout and stderr, and through ``logging``, kept for its
run, each run its own lines even when many run at once (a context variable says whose run
the code is in; ``sys.stdout``/``sys.stderr`` become proxies that also write there, and a
``logging`` handler on the root logger adds records).

Bounded: a run keeps its last :data:`LINES` lines and at most :data:`BYTES` bytes of them,
each line cut at :data:`LINE` bytes; ``dropped`` counts the lines let go. What is written
still goes where it went before (the terminal, the worker's output)."""

from __future__ import annotations

import logging
import sys
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TextIO

#: The last lines a run keeps, at most this many…
LINES = 1000
#: …and at most this many bytes (UTF-8) of them.
BYTES = 32 * 1024
#: A longer line is cut to this many bytes (and ends in "…").
LINE = 4096


class RunLog:
    """The lines of one task run (all its attempts), bounded; safe to write from several threads."""

    __slots__ = ("lines", "size", "dropped", "total", "_partial", "_lock")

    def __init__(self) -> None:
        self.lines: deque[str] = deque()
        self.size = 0  # bytes of ``lines``
        self.dropped = 0  # lines let go to stay within the bounds
        self.total = 0  # lines ever added
        self._partial: dict[str, str] = {}  # per stream: text written since its last newline
        self._lock = threading.Lock()

    def write(self, text: str, stream: str = "stdout") -> None:
        """Text written to ``stream``: complete lines are kept; the rest waits for its newline."""
        with self._lock:
            pending = self._partial.pop(stream, "") + text
            *complete, rest = pending.split("\n")
            for line in complete:
                self._add(line)
            if rest:
                if len(rest) > LINE:  # (a line never ended: kept in pieces, not without bound)
                    self._add(rest)
                else:
                    self._partial[stream] = rest

    def add(self, line: str) -> None:
        """One whole line (a logging record, a marker); several lines if it has newlines."""
        with self._lock:
            for part in line.split("\n"):
                self._add(part)

    def _add(self, line: str) -> None:
        size = len(line.encode("utf-8", "replace"))
        if size > LINE:
            line = line.encode("utf-8", "replace")[: LINE - 3].decode("utf-8", "ignore") + "…"
            size = len(line.encode("utf-8"))
        self.lines.append(line)
        self.size += size + 1
        self.total += 1
        while len(self.lines) > LINES or self.size > BYTES:
            self.size -= len(self.lines.popleft().encode("utf-8", "replace")) + 1
            self.dropped += 1

    def flush(self) -> None:
        """Keep what waits for a newline as a line of its own (the run ended)."""
        with self._lock:
            for stream in list(self._partial):
                self._add(self._partial.pop(stream))

    def since(self, total: int) -> list[str]:
        """The lines kept of those added after the first ``total`` (see :attr:`total`)."""
        with self._lock:
            count = min(self.total - total, len(self.lines))
            return list(self.lines)[len(self.lines) - count :] if count > 0 else []

    def to_json(self) -> dict[str, Any]:
        """``{"lines": […], "dropped": N}`` (``dropped`` only when some were)."""
        with self._lock:
            found: dict[str, Any] = {"lines": list(self.lines)}
            if self.dropped:
                found["dropped"] = self.dropped
            return found


#: The log of the run the code runs in, if it is being captured.
_log: ContextVar[RunLog | None] = ContextVar("littleflow_task_log", default=None)
_install_lock = threading.Lock()


class _Stream:
    """``sys.stdout`` or ``sys.stderr``: writes go to the stream it replaced, and to the log
    of the task run writing, if any."""

    def __init__(self, target: TextIO, name: str) -> None:
        self._target = target
        self._name = name

    def write(self, text: str) -> int:
        log = _log.get()
        if log is not None and text and not _from_logging():
            log.write(text, self._name)
        return self._target.write(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


def _from_logging() -> bool:
    """Whether a ``logging`` StreamHandler writes (its record is captured by :class:`_Handler`)."""
    try:
        return (
            sys._getframe(2).f_code is logging.StreamHandler.emit.__code__
        )  # (2: past write, to its caller)
    except ValueError:  # (a stack not that deep)
        return False


class _Handler(logging.Handler):
    """Adds the records of a task run's own code to its log (not littleflow's)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        log = _log.get()
        if log is None or record.name.startswith("littleflow"):
            return
        try:
            log.add(self.format(record))
        except Exception:  # noqa: BLE001 - as logging does
            self.handleError(record)


_handler = _Handler()


def install() -> None:
    """Make ``sys.stdout``, ``sys.stderr`` and the root logger capture for task runs (again if
    something replaced them since); costs nothing to code that runs outside a captured run."""
    if (
        isinstance(sys.stdout, _Stream)
        and isinstance(sys.stderr, _Stream)
        and _handler in logging.getLogger().handlers
    ):
        return
    with _install_lock:
        if not isinstance(sys.stdout, _Stream):
            sys.stdout = _Stream(sys.stdout, "stdout")
        if not isinstance(sys.stderr, _Stream):
            sys.stderr = _Stream(sys.stderr, "stderr")
        root = logging.getLogger()
        if _handler not in root.handlers:
            root.addHandler(_handler)


@contextmanager
def capturing(log: RunLog | None) -> Iterator[None]:
    """Within it, what this context writes goes to ``log`` (nothing changes for None)."""
    if log is None:
        yield
        return
    install()
    token = _log.set(log)
    try:
        yield
    finally:
        _log.reset(token)
