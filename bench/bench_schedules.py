"""Schedules firing: N schedules ``--every 1s`` (of one flow, each its own input) on a
private Redis, fired by one ``littleflow engine`` process for a few seconds; how late each
tick's first task was queued after its tick: the time Redis gave its start-task message
(the stream entry's id, in ms) less the tick (an engine prepares a tick's workflows ahead
and stamps them with the tick, so their ``created`` would say nothing):

* 1,000 schedules every second: p95 and worst lateness, target ≤ 100 ms;
* ticks fired: each tick of each schedule exactly once (no tick lost, none doubled).

The workflows' one task has no worker: they stay queued, as a slow flow's would (overlap
allow). Figures are printed, never checked.
``.venv/bin/python bench/bench_schedules.py [--schedules 1000] [--seconds 10] [--quick]``
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _system import System, load, median, p95, parser, table

from littleflow import compile_flow
from littleflow.redis.schedules import Schedules

TEXT = "@flow beat\nparked"  # (a task no worker serves)


def main() -> None:
    arguments = parser(__doc__.splitlines()[0])
    arguments.add_argument("--schedules", type=int, default=1000)
    arguments.add_argument("--seconds", type=float, default=10.0)
    options = arguments.parse_args()
    count, seconds = (100, 3.0) if options.quick else (options.schedules, options.seconds)
    with System(options.redis, engines=1, workers=1) as system:  # (the worker: for the warm-up)
        client = system.client
        schedules = Schedules(client.store)
        flow = compile_flow(TEXT)
        for number in range(count):
            schedules.add(f"beat-{number}", flow, TEXT, every="1s", input={"n": number}, catchup="all")
        began = time.time()
        time.sleep(seconds)
        for number in range(count):
            schedules.pause(f"beat-{number}")
        ended = time.time()
        time.sleep(1.0)  # (a round under way ends)
        system.check()
        queued = {  # workflow id -> when Redis took its first task's start message (ms)
            fields["workflow"]: int(entry.split("-")[0])
            for entry, fields in client.redis.xrange(client.keys.stream("parked"))
        }
        late, ticks = [], {}
        for number in range(count):
            ids = [w["id"] for w in client.list(schedule=f"beat-{number}")]
            pipe = client.redis.pipeline(transaction=False)
            for id in ids:
                pipe.hget(client.keys.workflow(id), "tick")
            for id, tick in zip(ids, pipe.execute()):
                ticks.setdefault(number, []).append(int(tick))
                if began + 1 < int(tick) < ended - 1:  # (not the first: the engine was warming up)
                    late.append(queued[id] - int(tick) * 1000)
        doubled = sum(len(found) - len(set(found)) for found in ticks.values())
        lost = sum(max(found) - min(found) + 1 - len(set(found)) for found in ticks.values() if found)
    rows = [
        (f"{count:,} schedules every 1s: median lateness", f"{median(late):.1f} ms", "", None),
        ("p95 lateness", f"{p95(late):.1f} ms", "≤ 100 ms", p95(late) <= 100),
        ("worst lateness", f"{max(late, default=float('nan')):.1f} ms", "", None),
        ("ticks fired (timed)", f"{len(late):,}", "", None),
        ("ticks doubled / lost", f"{doubled} / {lost}", "0 / 0", doubled == lost == 0),
    ]
    print(table(f"bench_schedules ({load()})", rows))


if __name__ == "__main__":
    main()
