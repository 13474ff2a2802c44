"""What firing schedules costs the task hot path: bench_redis's fan-out of no-op tasks and
workflows of 3 (3,000 each), run in alternating rounds by an engine that fires schedules
(``--schedules`` of them every second, of a flow whose task no worker serves, added for the
round) and by one that does not (``schedules=False``). Rounds alternate so that the
machine's drift hits both alike; the medians are compared. Target: within 5%. Figures are
printed, never checked.

``.venv/bin/python bench/bench_schedule_cost.py [--rounds 6] [--schedules 20] [--size 3000] [--quick]``
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _system import load, table
from bench_redis import _ended, _until, _worker

from littleflow import compile_flow
from littleflow.redis.client import Client
from littleflow.redis.connection import connect
from littleflow.redis.engine import EngineProcess
from littleflow.redis.schedules import Schedules
from littleflow.redis.server import RedisServer
from littleflow.redis.store import Store

PARKED = "@flow beat\nparked"  # (a task no worker serves: the workflows wait, as a slow flow's would)


def _engine(url: str, stop: multiprocessing.Event, schedules: bool) -> None:
    _until(stop, EngineProcess(Store(connect(url)), connect(url, decode=False), schedules=schedules).run)


def one_round(url: str, size: int, schedules: int) -> tuple[float, float]:
    """(fan-out tasks/s, chains tasks/s) with ``schedules`` firing every second (0: firing off)."""
    client = Client(url)
    beats = Schedules(client.store)
    flow = compile_flow(PARKED)
    for number in range(schedules):
        beats.add(f"beat-{number}", flow, PARKED, every="1s", catchup="skip")
    stop = multiprocessing.Event()
    processes = [
        multiprocessing.Process(target=_engine, args=(url, stop, schedules > 0)),
        multiprocessing.Process(target=_worker, args=(url, stop)),
    ]
    for process in processes:
        process.start()
    try:
        client.wait(client.submit("noop → noop → noop"), timeout=30)  # warm up: both processes answer
        client.wait(client.submit("*noop", list(range(200))), timeout=30)
        time.sleep(1.5)  # (the schedules have fired: the engine does both from here on)
        began = time.time()
        fanout = _ended(client, [client.submit("*noop", list(range(size)))], began)
        began = time.time()
        chains = _ended(
            client, client.submit_many("noop → noop → noop", [{"i": i} for i in range(size)]), began
        )
    finally:
        stop.set()
        for process in processes:
            process.join(10)
        for number in range(schedules):
            beats.delete(f"beat-{number}")
    return size / fanout, 3 * size / chains


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6, help="rounds of each kind (alternating)")
    parser.add_argument("--schedules", type=int, default=20, help="schedules firing every second")
    parser.add_argument("--size", type=int, default=3000)
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    args = parser.parse_args()
    rounds, size = (1, 100) if args.quick else (args.rounds, args.size)
    found: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as data:
        server = RedisServer(Path(data)).start()
        try:
            for number in range(2 * rounds):
                firing = number % 2 == 1
                found[firing].append(one_round(server.url, size, args.schedules if firing else 0))
        finally:
            server.stop()
    rows = []
    for index, what in ((0, f"fan-out {size:,}"), (1, f"{size:,} workflows of 3")):
        off = statistics.median(r[index] for r in found[False])
        on = statistics.median(r[index] for r in found[True])
        change = (on - off) / off * 100
        rows += [
            (f"{what}: firing off (median)", f"{off:,.0f} tasks/s", "", None),
            (f"{what}: {args.schedules} schedules firing (median)", f"{on:,.0f} tasks/s", "", None),
            (f"{what}: change", f"{change:+.1f}%", "within 5%", abs(change) <= 5),
        ]
    print(table(f"bench_schedule_cost ({rounds} rounds each, {load()})", rows))


if __name__ == "__main__":
    main()
