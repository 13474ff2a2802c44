"""What the Redis benchmarks share: a private redis-server, ``littleflow engine`` and
``littleflow worker`` processes started as a user starts them (the CLI), and the table
of figures, targets and whether each was met. Only public interfaces are used here
(``Client``, the CLI, ``RedisServer``), so the benchmarks outlive changes of the key layout."""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

try:
    import littleflow  # noqa: F401
except ImportError:  # a checkout without an install: use ../src
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from littleflow.redis.client import Client
from littleflow.redis.server import RedisServer

TASKS = Path(__file__).resolve().parent / "_tasks.py"


class System:
    """A Redis (private unless ``url`` is given), ``engines`` engine processes and ``workers``
    worker processes running ``bench/_tasks.py``; a context manager that stops what it started."""

    def __init__(
        self, url: str | None = None, engines: int = 1, workers: int = 1, concurrency: int = 1
    ) -> None:
        self.given_url, self.engines, self.workers, self.concurrency = url, engines, workers, concurrency
        self.processes: list[subprocess.Popen] = []
        self.server: RedisServer | None = None
        self._data: tempfile.TemporaryDirectory | None = None

    def __enter__(self) -> System:
        self._data = tempfile.TemporaryDirectory(prefix="lf-bench-")
        try:
            if self.given_url is None:
                self.server = RedisServer(Path(self._data.name) / "redis").start()
            self.client = Client(self.url)
            for _ in range(self.engines):
                self._start("engine")
            for _ in range(self.workers):
                self._start("worker", "--tasks", str(TASKS), "--concurrency", str(self.concurrency))
            if self.processes:  # warm up: every process has connected and answers
                self.client.wait(self.client.submit("noop → noop → noop"), timeout=60)
                self.client.wait(self.client.submit("*noop", list(range(20))), timeout=60)
        except BaseException:
            self.__exit__()
            raise
        return self

    @property
    def url(self) -> str:
        return self.given_url if self.server is None else self.server.url

    def _start(self, role: str, *options: str) -> None:
        assert self._data is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("LITTLEFLOW_")}
        env["LITTLEFLOW_HOME"] = str(Path(self._data.name) / "home")
        log = Path(self._data.name) / f"{len(self.processes):02d}-{role}.log"
        with open(log, "wb") as stderr:
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "littleflow", role, "--redis", self.url, *options],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                    env=env,
                )
            )

    def check(self) -> None:
        """Stop the benchmark (one line) if a process it started has died."""
        for process in self.processes:
            if process.poll() is not None:
                raise SystemExit(f"bench: {process.args[3]} process exited with status {process.returncode}")

    def __exit__(self, *exc: object) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()
        if self.server is not None:
            self.server.stop()
        if self._data is not None:
            self._data.cleanup()
            self._data = None


def finished(client: Client, id: str, timeout: float, poll: float = 0.05) -> dict[str, Any] | None:
    """Workflow ``id``'s status document once it has ended (None after ``timeout`` seconds);
    stops the benchmark if it did not finish."""
    try:
        document = client.wait(id, timeout=timeout, poll=poll)
    except TimeoutError:
        return None
    if document["state"] != "finished":
        raise SystemExit(f"bench: workflow {id} {document['state']}: {document.get('error')}")
    return document


def none_running(client: Client, timeout: float) -> bool:
    """Wait until no workflow runs (False after ``timeout`` seconds); stops the benchmark if one failed."""
    deadline = time.monotonic() + timeout
    while True:
        counts = client.page(count=0).counts
        if counts.get("running", 0) == 0:
            bad = {state: n for state, n in counts.items() if state not in ("finished", "running") and n}
            if bad:
                raise SystemExit(f"bench: workflows ended so: {bad}")
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def p95(values: list[float]) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * 0.95))] if values else float("nan")


def parser(description: str) -> argparse.ArgumentParser:
    """The options every benchmark takes: ``--redis URL`` and ``--quick``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--redis",
        metavar="URL",
        help="a Redis server to use, flushed of nothing (default: a private one, started and stopped here)",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of a few seconds")
    return parser


def table(title: str, rows: list[tuple[str, str, str, bool | None]]) -> str:
    """Rows of (figure, value, target, met) as a table; met None: no target, or not measured."""
    width = max(len(row[0]) for row in rows)
    value_width = max(len(row[1]) for row in rows)
    lines = [title, f"  {'figure':{width}}  {'value':>{value_width}}  {'target':14} met"]
    for figure, value, target, met in rows:
        verdict = "-" if met is None else "yes" if met else "NO"
        lines.append(f"  {figure:{width}}  {value:>{value_width}}  {target:14} {verdict}")
    return "\n".join(lines)


def load() -> str:
    """The machine's load averages, printed with the figures (they mean little on a busy machine)."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} cores)"
