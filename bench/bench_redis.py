"""littleflow on Redis against Celery, side by side on one Redis server.

* fan-out: ``*noop`` over 1,000 items — 1,000 no-op tasks whose outputs are
  joined into the flow's output (Celery: a chord of 1,000 and its callback)
* chains:  1,000 workflows ``noop → noop → noop`` submitted at once (Celery: 1,000 chains)
* hand-off: from a task's end to the start of its successor (worker clocks),
  inside those chains (under load), and in chains run one at a time (idle)

littleflow runs one engine process and one task worker process (concurrency 1,
its default read-ahead); Celery one worker process (solo pool), Redis as broker
and result backend. A run is timed from the first submit until every workflow
has ended (littleflow: the time its last step was committed; Celery: until its
results are in). Targets (2-core machine): ≥ 5,000 task completions/s, faster
than Celery on both, median hand-off ≤ 2 ms. Figures are printed, never checked.

``.venv/bin/python bench/bench_redis.py [--redis URL] [--size 1000] [--no-celery]``
(needs ``pip install -e '.[bench]'`` for the Celery half).
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

try:
    import littleflow  # noqa: F401
except ImportError:  # a checkout without an install: use ../src
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from littleflow.redis.client import Client
from littleflow.redis.connection import connect
from littleflow.redis.engine import EngineProcess
from littleflow.redis.server import RedisServer
from littleflow.redis.store import Store
from littleflow.redis.worker import PythonTasks, Worker
from littleflow.tasks import Registry

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _celery_side as celery_side


def noop(input):
    return input


def _engine(url: str, stop: multiprocessing.Event) -> None:
    _until(stop, EngineProcess(Store(connect(url)), connect(url, decode=False)).run)


def _worker(url: str, stop: multiprocessing.Event) -> None:
    registry = Registry()
    registry.add("noop", noop)
    _until(stop, Worker(Store(connect(url)), connect(url, decode=False), [PythonTasks(registry)]).run)


def _until(stop: multiprocessing.Event, run) -> None:
    local = threading.Event()
    threading.Thread(target=lambda: (stop.wait(), local.set()), daemon=True).start()
    run(local, 0.2)


def _ended(client: Client, ids: list[str], began: float) -> float:
    """Seconds from ``began`` until the last of ``ids`` was committed as ended (each
    workflow's ``updated`` time, so polling seldom, not to load the machine, costs nothing)."""
    last = client.keys.workflow(ids[-1])
    while client.redis.hget(last, "status") == "running":  # (one cheap look; the last is usually last)
        time.sleep(0.02)
    while True:
        summaries = client.store.summaries(ids)
        if all(s["state"] != "running" for s in summaries):
            bad = [s for s in summaries if s["state"] != "finished"]
            if bad:
                raise SystemExit(f"bench: workflow {bad[0]['id']} {bad[0]['state']}")
            return max(s["updated"] for s in summaries) - began
        time.sleep(0.05)


def _gaps(client: Client, ids: list[str]) -> list[float]:
    gaps = []
    for id in ids:
        rows = sorted(client.store.task_info(id).values(), key=lambda row: row["node"])
        gaps += [(b["started"] - a["ended"]) * 1000 for a, b in zip(rows, rows[1:])]
    return gaps


def run_littleflow(url: str, size: int = 1000, idle_chains: int = 50) -> dict:
    stop = multiprocessing.Event()
    processes = [multiprocessing.Process(target=target, args=(url, stop)) for target in (_engine, _worker)]
    for process in processes:
        process.start()
    try:
        client = Client(url)
        client.wait(client.submit("noop → noop → noop"), timeout=30)  # warm up: both processes answer
        client.wait(client.submit("*noop", list(range(20))), timeout=30)
        began = time.time()
        id = client.submit("*noop", list(range(size)))
        fanout = _ended(client, [id], began)
        began = time.time()
        ids = client.submit_many("noop → noop → noop", [{"i": i} for i in range(size)])
        chains = _ended(client, ids, began)
        loaded = _gaps(client, ids)
        idle = []
        for _ in range(idle_chains):
            idle.append(client.submit("noop → noop → noop"))
            client.wait(idle[-1], timeout=30, poll=0.002)
        idle_gaps = _gaps(client, idle)
        began = time.time()
        big = client.submit("*noop", list(range(20 * size)))
        big_fanout = _ended(client, [big], began)
        big_steps = int(client.redis.hget(client.keys.workflow(big), "version"))
    finally:
        stop.set()
        for process in processes:
            process.join(10)
    return {
        "fanout_seconds": fanout,
        "fanout_tasks_per_s": size / fanout,
        "chains_seconds": chains,
        "chains_tasks_per_s": 3 * size / chains,
        "latency_median_ms": statistics.median(loaded),
        "latency_p95_ms": _p95(loaded),
        "idle_latency_median_ms": statistics.median(idle_gaps),
        "idle_latency_p95_ms": _p95(idle_gaps),
        "big_fanout_size": 20 * size,
        "big_fanout_seconds": big_fanout,
        "big_fanout_steps": big_steps,
    }


def _p95(values: list[float]) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * 0.95))]


def table(name: str, f: dict, size: int) -> str:
    return "\n".join(
        [
            name,
            f"  {f'fan-out {size:,}':32} {f['fanout_seconds']:7.3f} s {f['fanout_tasks_per_s']:>9,.0f} tasks/s",
            f"  {f'{size:,} workflows of 3 tasks':32} {f['chains_seconds']:7.3f} s {f['chains_tasks_per_s']:>9,.0f} tasks/s",
            f"  {'hand-off under that load':32} median {f['latency_median_ms']:7.2f} ms  p95 {f['latency_p95_ms']:7.2f} ms",
            f"  {'hand-off, one at a time':32} median {f['idle_latency_median_ms']:7.2f} ms  "
            f"p95 {f['idle_latency_p95_ms']:7.2f} ms",
            *([_big(f)] if "big_fanout_size" in f else []),
        ]
    )


def _big(f: dict) -> str:
    label = f"fan-out {f['big_fanout_size']:,}"
    return (
        f"  {label:32} {f['big_fanout_seconds']:7.3f} s {f['big_fanout_size'] / f['big_fanout_seconds']:>9,.0f}"
        f" tasks/s  ({f['big_fanout_steps']} steps)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", metavar="URL", help="a Redis server to use (default: a private one)")
    parser.add_argument("--size", type=int, default=1000, help="tasks in the fan-out, and workflows of 3")
    parser.add_argument("--no-celery", action="store_true", help="skip the Celery half")
    args, _ = parser.parse_known_args()
    with tempfile.TemporaryDirectory() as data:
        server = None if args.redis else RedisServer(Path(data)).start()
        url = args.redis or server.url
        try:
            ours = run_littleflow(url, args.size)
            print(table("littleflow · 1 engine process + 1 worker process (concurrency 1)", ours, args.size))
            reason = "--no-celery" if args.no_celery else celery_side.available()
            if reason:
                print(f"celery: skipped ({reason})")
                return
            theirs = celery_side.run_celery(url, args.size, args.size)
            print(celery_side.format_table(theirs, args.size, args.size))
            print(
                "targets: ≥ 5,000 tasks/s: fan-out {} chains {}; faster than Celery: fan-out {} chains {}; "
                "median hand-off ≤ 2 ms: {}".format(
                    *(
                        "met" if ok else "missed"
                        for ok in (
                            ours["fanout_tasks_per_s"] >= 5000,
                            ours["chains_tasks_per_s"] >= 5000,
                            ours["fanout_tasks_per_s"] > theirs["fanout_tasks_per_s"],
                            ours["chains_tasks_per_s"] > theirs["chains_tasks_per_s"],
                            ours["idle_latency_median_ms"] <= 2,
                        )
                    )
                )
            )
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    main()
