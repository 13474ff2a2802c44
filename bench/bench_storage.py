"""What a finished workflow costs Redis: 10,000 workflows ``noop → noop → noop`` submitted
at once and run to the end by one ``littleflow engine`` and one ``littleflow worker``
process on a private Redis.

* Redis memory per workflow: INFO memory ``used_memory`` after they ended, less before they
  were submitted, over their number: target ≤ 2 KiB;
* MEMORY USAGE of each key of one of them (the keys holding its id, found by SCAN), and of
  the keys they share (indexes, streams), for where the bytes go.

Figures are printed, never checked.
``.venv/bin/python bench/bench_storage.py [--workflows 10000] [--timeout 600] [--quick]``
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _system import System, load, none_running, parser, table

FLOW = "noop → noop → noop"
ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{12}")  # a workflow id, in a key of its own


def used_memory(system: System) -> int:
    return int(system.client.redis.info("memory")["used_memory"])


def sizes(system: System, pattern: str, shared: bool = False) -> dict[str, int]:
    """MEMORY USAGE (all samples) of each key matching ``pattern`` (``shared``: only those
    that hold no workflow id)."""
    redis = system.client.redis
    keys = sorted(key for key in redis.scan_iter(pattern, count=1000) if not (shared and ID.search(key)))
    return {key: int(redis.memory_usage(key, samples=0) or 0) for key in keys}


def main() -> None:
    options = parser(__doc__.splitlines()[0])
    options.add_argument("--workflows", type=int, default=10_000, help="workflows run (default 10,000)")
    options.add_argument("--timeout", type=float, default=600, help="seconds they may take (default 600)")
    args = options.parse_args()
    if args.quick:
        args.workflows, args.timeout = 300, 60
    with System(args.redis) as system:
        client = system.client
        if not none_running(client, 60):
            raise SystemExit("bench: the warm-up workflows did not end")
        before = used_memory(system)
        began = time.time()
        ids = []
        for start in range(0, args.workflows, 1000):  # (one round trip for each thousand)
            ids += client.submit_many(
                FLOW, [{"n": n} for n in range(start, min(start + 1000, args.workflows))]
            )
        if not none_running(client, args.timeout):
            raise SystemExit(f"bench: {args.workflows:,} workflows still running after {args.timeout:g} s")
        seconds = time.time() - began
        system.check()
        time.sleep(1.5)  # (what a process trims or expires a moment after the end)
        after = used_memory(system)
        one = ids[len(ids) // 2]
        own = sizes(system, f"*{one}*")
        shared = sizes(system, "*", shared=True)
    per_workflow = (after - before) / args.workflows
    rows = [
        (f"{args.workflows:,} workflows of 3 tasks", f"{seconds:.1f} s", "", None),
        ("used_memory per workflow", f"{per_workflow:,.0f} B", "≤ 2,048 B", per_workflow <= 2048),
        ("MEMORY USAGE of one workflow's keys", f"{sum(own.values()):,} B", "", None),
        *((f"  {key.replace(one, '<id>')}", f"{size:,} B", "", None) for key, size in own.items()),
        (
            f"shared keys, over {args.workflows:,}",
            f"{sum(shared.values()) / args.workflows:,.0f} B",
            "",
            None,
        ),
        *(
            (f"  {key}", f"{size:,} B", "", None)
            for key, size in sorted(shared.items(), key=lambda kv: -kv[1])[:8]
        ),
    ]
    print(table(f"bench_storage · 1 engine + 1 worker process, private Redis · {load()}", rows))


if __name__ == "__main__":
    main()
