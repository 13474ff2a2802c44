"""The Celery half of the littleflow-versus-Celery benchmark: the same shapes of
no-op work on one Celery worker process, with Redis as broker and result backend.

* fan-out: ``chord(noop.s(i) for i in range(N))(collect.s())``: seconds from
  submit until the callback's result is in; tasks/s = (N + 1) / seconds
* chains:  ``chain(noop.s(i), noop.s(), noop.s())`` applied M times, then every
  result awaited; tasks/s = 3M / seconds
* hand-off latency: inside those chains, from the end of step k to the start of
  step k + 1 (both stamped with ``time.time()`` by the worker); median and p95 in
  ms. All M chains are submitted at once and the queue is first in, first out,
  so a step's successor waits behind the first steps of the chains submitted
  after it: this measures the hand-off under that load, not an idle round trip.
  The idle hand-off is measured too, on a few more chains run one at a time.

API for the littleflow side (import this file; it needs no package)::

    available() -> str | None        # None if Celery and redis-py import, else why not
    run_celery(redis_url, fanout=1000, chains=1000, idle_chains=50) -> dict
    redis_server() -> context manager yielding a URL of a private, throw-away redis-server

Run on its own: ``python bench/_celery_side.py [--redis URL] [--fanout N] [--chains M]``;
without ``--redis`` it starts its own redis-server on a free port. Other flags that
``dev.py bench`` passes to every bench script (``--quick``, ...) are ignored.
Without Celery it prints ``celery: skipped (reason)`` and exits 0. Install with
``pip install 'littleflow[bench]'``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
#: Give up, with a one-line message, when the worker or Redis has not answered by then.
TIMEOUT = 120.0
#: Warm-up before the clock starts: one small chord and a few chains.
WARMUP_TASKS = 20


class BenchError(RuntimeError):
    """The Celery bench could not run; the message is one line, fit to print."""


def available() -> str | None:
    """None when Celery and its Redis transport can be imported, else a one-line reason."""
    missing = []
    # kombu.transport.redis needs redis-py (and `packaging`): celery[redis] brings both.
    for module in ("celery", "kombu.transport.redis"):
        try:
            __import__(module)
        except Exception as exc:  # noqa: BLE001 -- ImportError, or a broken install
            missing.append(f"{module}: {type(exc).__name__}: {exc}".splitlines()[0])
    if missing:
        return "cannot import " + "; ".join(missing) + " (pip install 'littleflow[bench]')"
    return None


def _app_module():
    """bench/_celery_app.py, loaded by path, so this file works without touching sys.path."""
    name = "_littleflow_bench__celery_app"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH_DIR / "_celery_app.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# --- Redis -------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ping(url: str, deadline: float) -> None:
    import redis

    last = None
    while time.monotonic() < deadline:
        try:
            client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
            try:
                client.ping()
                return
            finally:
                client.close()
        except redis.RedisError as exc:
            last = exc
            time.sleep(0.05)
    raise BenchError(f"Redis at {url} did not answer a PING ({last})")


def _redis_binary() -> str | None:
    """redis-server on PATH, or next to this Python (a venv with the `server` extra)."""
    return shutil.which("redis-server") or shutil.which("redis-server", path=str(Path(sys.executable).parent))


@contextlib.contextmanager
def redis_server(timeout: float = 30.0) -> Iterator[str]:
    """Start a private redis-server (no persistence) on a free port; yield its URL; stop it."""
    binary = _redis_binary()
    if not binary:
        raise BenchError("redis-server is not on PATH")
    port = _free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise BenchError(f"redis-server on port {port} exited at start (code {proc.returncode})")
            try:
                _ping(url, min(deadline, time.monotonic() + 0.5))
                break
            except BenchError:
                if time.monotonic() >= deadline:
                    raise
        yield url
    finally:
        _stop(proc, grace=5.0)


def _stop(proc: subprocess.Popen, grace: float) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds, to the process group this code started."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# --- the worker ----------------------------------------------------------------


class _Worker:
    """One ``celery worker`` subprocess; its output goes to a temporary log, shown if it fails."""

    def __init__(self, redis_url: str, queue: str):
        mod = _app_module()
        env = dict(os.environ)
        env[mod.ENV_URL] = redis_url
        env[mod.ENV_QUEUE] = queue
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(BENCH_DIR), env.get("PYTHONPATH")) if p)
        self.log = tempfile.TemporaryFile(mode="w+", prefix="celery-worker-")
        # --pool=solo --concurrency=1: one process that both takes messages from Redis and
        # runs the tasks. littleflow's runner is one process too, so this is the fair match;
        # prefork with concurrency 1 would still run each task in a second (child) process,
        # adding a pipe round trip per task (measured slower for no-op tasks), and using
        # the machine's other core. Gossip, mingle and heartbeat exchange messages with
        # other workers; there are none.
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "_celery_app:app",
                "worker",
                "--pool=solo",
                "--concurrency=1",
                "--loglevel=warning",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-Q",
                queue,
                "-n",
                f"{queue}@%h",
            ],
            cwd=BENCH_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise BenchError(f"the celery worker exited (code {self.proc.returncode}): {self.tail()}")

    def tail(self) -> str:
        self.log.seek(0)
        lines = [line.strip() for line in self.log.read().splitlines() if line.strip()]
        return lines[-1][:300] if lines else "no output"

    def stop(self) -> None:
        try:
            _stop(self.proc, grace=10.0)  # SIGTERM is Celery's warm shutdown
        finally:
            self.log.close()


def _wait(result, worker: _Worker, deadline: float, what: str):
    """``result.get()`` in short slices, so a dead worker or the deadline ends it with a clear message."""
    from celery.exceptions import TimeoutError as CeleryTimeout

    while True:
        worker.check()
        left = deadline - time.monotonic()
        if left <= 0:
            raise BenchError(f"{what}: no result within {TIMEOUT:.0f} s (worker log: {worker.tail()})")
        try:
            return result.get(timeout=min(left, 1.0), interval=0.005)
        except CeleryTimeout:
            continue


def _percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))  # ceil
    return ordered[int(rank) - 1]


# --- the measurements -------------------------------------------------------------


def run_celery(redis_url: str, fanout: int = 1000, chains: int = 1000, idle_chains: int = 50) -> dict:
    """Start one Celery worker on ``redis_url``, warm it up, time the fan-out and the chains, stop it.

    Returns ``fanout_seconds``, ``fanout_tasks_per_s`` ((fanout + 1) / seconds),
    ``chains_seconds``, ``chains_tasks_per_s`` (3 × chains / seconds), and
    ``latency_median_ms`` / ``latency_p95_ms`` (end of a chain step to start of the
    next, in the ``chains`` run: mostly time spent queued behind the other chains),
    and ``idle_latency_median_ms`` / ``idle_latency_p95_ms``: the same gap in
    ``idle_chains`` more chains run one at a time on an empty queue (None if 0).
    Raises :class:`BenchError` with a one-line message when something fails or
    a result takes longer than ``TIMEOUT`` seconds.
    """
    reason = available()
    if reason:
        raise BenchError(reason)
    if fanout < 1 or chains < 1 or idle_chains < 0:
        raise BenchError("fanout and chains must be at least 1, idle_chains at least 0")
    from celery import chain, chord

    _ping(redis_url, time.monotonic() + 10)
    mod = _app_module()
    queue = f"littleflow-bench-{uuid.uuid4().hex[:12]}"
    app = mod.make_app(redis_url, queue)
    noop, collect = app.tasks[mod.NOOP], app.tasks[mod.COLLECT]
    worker = _Worker(redis_url, queue)
    try:
        # Warm-up (also: wait for the worker to come up, within TIMEOUT).
        deadline = time.monotonic() + TIMEOUT
        _wait(noop.delay(-1), worker, deadline, "the worker never started")
        warm = chord(noop.s(i) for i in range(WARMUP_TASKS))(collect.s())
        _wait(warm, worker, deadline, "warm-up chord")
        for res in [chain(noop.s(i), noop.s(), noop.s())() for i in range(WARMUP_TASKS // 3)]:
            _wait(res, worker, deadline, "warm-up chains")

        # (a) fan-out joined by a callback.
        began = time.perf_counter()
        deadline = time.monotonic() + TIMEOUT
        result = chord(noop.s(i) for i in range(fanout))(collect.s())
        summary = _wait(result, worker, deadline, f"fan-out of {fanout}")
        fanout_seconds = time.perf_counter() - began
        if summary["count"] != fanout:
            raise BenchError(f"fan-out: the callback saw {summary['count']} results, not {fanout}")

        # (b) independent chains of three; (c) hand-off latency inside them.
        began = time.perf_counter()
        deadline = time.monotonic() + TIMEOUT
        results = [chain(noop.s(i), noop.s(), noop.s())() for i in range(chains)]
        finals = [_wait(res, worker, deadline, f"{chains} chains") for res in results]
        chains_seconds = time.perf_counter() - began

        # (c') the hand-off with nothing else queued: one chain at a time.
        deadline = time.monotonic() + TIMEOUT
        idle = [
            _wait(chain(noop.s(i), noop.s(), noop.s())(), worker, deadline, "idle chains")
            for i in range(idle_chains)
        ]
    finally:
        worker.stop()
        with contextlib.suppress(Exception):
            app.close()

    gaps, idle_gaps = _gaps(finals), _gaps(idle)
    return {
        "fanout_seconds": fanout_seconds,
        "fanout_tasks_per_s": (fanout + 1) / fanout_seconds,
        "chains_seconds": chains_seconds,
        "chains_tasks_per_s": 3 * chains / chains_seconds,
        "latency_median_ms": statistics.median(gaps),
        "latency_p95_ms": _percentile(gaps, 95),
        "idle_latency_median_ms": statistics.median(idle_gaps) if idle_gaps else None,
        "idle_latency_p95_ms": _percentile(idle_gaps, 95) if idle_gaps else None,
    }


def _gaps(finals: list[dict]) -> list[float]:
    """Milliseconds from the end of each chain step to the start of the next."""
    gaps = []
    for final in finals:
        steps = final["steps"]
        if len(steps) != 3:
            raise BenchError(f"a chain ran {len(steps)} steps, not 3")
        gaps += [(steps[k + 1][0] - steps[k][1]) * 1000 for k in range(len(steps) - 1)]
    return gaps


def format_table(figures: dict, fanout: int, chains: int) -> str:
    """The figures from :func:`run_celery` as a few aligned lines."""
    return "\n".join(
        [
            "celery · 1 worker (solo pool) · Redis broker and result backend",
            f"  {f'fan-out {fanout:,} + callback':30} {figures['fanout_seconds']:8.3f} s"
            f"  {figures['fanout_tasks_per_s']:>8,.0f} tasks/s",
            f"  {f'{chains:,} chains × 3':30} {figures['chains_seconds']:8.3f} s"
            f"  {figures['chains_tasks_per_s']:>8,.0f} tasks/s",
            f"  {'hand-off in those chains':30} median {figures['latency_median_ms']:8.2f} ms"
            f"  p95 {figures['latency_p95_ms']:8.2f} ms",
            *(
                [
                    f"  {'hand-off, one chain at a time':30} median {figures['idle_latency_median_ms']:8.2f} ms"
                    f"  p95 {figures['idle_latency_p95_ms']:8.2f} ms"
                ]
                if figures.get("idle_latency_median_ms") is not None
                else []
            ),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--redis", metavar="URL", help="a Redis to use (default: start a private redis-server)"
    )
    parser.add_argument("--fanout", type=int, default=1000, help="tasks in the chord (default 1000)")
    parser.add_argument("--chains", type=int, default=1000, help="chains of three (default 1000)")
    parser.add_argument(
        "--idle-chains",
        type=int,
        default=50,
        help="chains run one at a time for the idle hand-off (default 50)",
    )
    args, _ignored = parser.parse_known_args(argv)  # flags meant for the other bench scripts
    reason = available()
    if reason:
        print(f"celery: skipped ({reason})")
        return 0
    if not args.redis and not _redis_binary():
        print("celery: skipped (redis-server is not on PATH; give --redis URL)")
        return 0
    # A plain SIGTERM would skip the clean-up below and leave the worker and redis-server behind.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    began = time.monotonic()
    try:
        with contextlib.ExitStack() as stack:
            url = args.redis or stack.enter_context(redis_server())
            figures = run_celery(url, fanout=args.fanout, chains=args.chains, idle_chains=args.idle_chains)
    except BenchError as exc:
        print(f"celery: failed ({exc})", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 -- anything Celery or Redis raised: one line, not a traceback
        detail = f"{type(exc).__name__}: {exc}".splitlines()[0]
        print(f"celery: failed ({detail})", file=sys.stderr)
        return 1
    print(format_table(figures, args.fanout, args.chains))
    print(f"  (whole run, worker start and warm-up included: {time.monotonic() - began:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
