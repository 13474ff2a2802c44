"""The hop on Redis: from the end of a task to the start of the next, in a chain
``noop → noop → … → noop`` run by one ``littleflow engine`` and one ``littleflow worker``
process (concurrency 1) on a private Redis, one workflow at a time.

* the median hop over chains of 100 tasks (the ``started`` and ``ended`` times of the status
  document's nodes, taken by the worker's clock): target ≤ 1.5 ms;
* the same in one chain of 10,000 tasks, and its wall time per task (submit to last commit),
  against the 100-task chains': target within 1.3× (a step should not cost more as a
  workflow grows).

Figures are printed, never checked.
``.venv/bin/python bench/bench_hop.py [--long 10000] [--short 100] [--timeout 600] [--quick]``
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _system import System, finished, load, median, p95, parser, table


def chain(size: int) -> str:
    return " → ".join(["noop"] * size)


def hops(document: dict) -> list[float]:
    """Milliseconds from each task's end to the start of the next, among those that ran."""
    tasks = sorted(
        (node for node in document["nodes"] if node["kind"] == "task"), key=lambda node: node["id"]
    )
    return [
        (b["started"] - a["ended"]) * 1000
        for a, b in zip(tasks, tasks[1:])
        if a["ended"] is not None and b["started"] is not None
    ]


def run(system: System, size: int, timeout: float) -> dict:
    """One chain of ``size`` tasks: its hops, and its wall time per task (None if it timed out)."""
    client = system.client
    began = time.time()
    id = client.submit(chain(size), {"chain": size})
    document = finished(client, id, timeout, poll=0.002)
    if document is None:  # the figures of what ran so far
        document = client.status(id)
        client.terminate(id)
    done = sum(1 for node in document["nodes"] if node["kind"] == "task" and node["ended"] is not None)
    ended = document["updated"] if document["state"] == "finished" else time.time()
    return {
        "hops": hops(document),
        "done": done,
        "size": size,
        "per_task_ms": (ended - began) * 1000 / max(done, 1),
        "complete": document["state"] == "finished",
    }


def main() -> None:
    options = parser(__doc__.splitlines()[0])
    options.add_argument("--short", type=int, default=100, help="tasks in each short chain (default 100)")
    options.add_argument("--repeat", type=int, default=5, help="short chains run (default 5)")
    options.add_argument("--long", type=int, default=10_000, help="tasks in the long chain (default 10,000)")
    options.add_argument(
        "--timeout", type=float, default=600, help="seconds the long chain may take (default 600)"
    )
    args = options.parse_args()
    if args.quick:
        args.short, args.repeat, args.long, args.timeout = 20, 2, 100, 60
    with System(args.redis) as system:
        shorts = [run(system, args.short, args.timeout) for _ in range(args.repeat)]
        system.check()
        long = run(system, args.long, args.timeout)
        system.check()
    short_hops = [hop for one in shorts for hop in one["hops"]]
    short_hop, long_hop = median(short_hops), median(long["hops"])
    short_task = median([one["per_task_ms"] for one in shorts])
    cut = "" if long["complete"] else f" (timed out: {long['done']:,} of {long['size']:,} tasks ran)"
    print(
        table(
            f"bench_hop · 1 engine + 1 worker process (concurrency 1), private Redis · {load()}",
            [
                (
                    f"median hop, {args.repeat} chains of {args.short:,}",
                    f"{short_hop:.2f} ms",
                    "≤ 1.5 ms",
                    short_hop <= 1.5,
                ),
                (f"p95 hop, chains of {args.short:,}", f"{p95(short_hops):.2f} ms", "", None),
                (
                    f"median hop, chain of {args.long:,}{cut}",
                    f"{long_hop:.2f} ms",
                    "≤ 1.5 ms",
                    long_hop <= 1.5,
                ),
                (f"p95 hop, chain of {args.long:,}", f"{p95(long['hops']):.2f} ms", "", None),
                (f"wall time per task, chain of {args.short:,}", f"{short_task:.2f} ms", "", None),
                (f"wall time per task, chain of {args.long:,}", f"{long['per_task_ms']:.2f} ms", "", None),
                (
                    f"median hop {args.long:,} / {args.short:,}",
                    f"{long_hop / short_hop:.2f}×",
                    "≤ 1.3×",
                    long_hop / short_hop <= 1.3,
                ),
                (
                    f"wall time per task {args.long:,} / {args.short:,}",
                    f"{long['per_task_ms'] / short_task:.2f}×",
                    "≤ 1.3×",
                    long["per_task_ms"] / short_task <= 1.3,
                ),
            ],
        )
    )


if __name__ == "__main__":
    main()
