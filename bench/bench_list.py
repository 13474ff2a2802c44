"""A page of the workflow list with many workflows stored: 1,000,000 written straight
through ``Store.create_many`` (in pipelines of 10,000) on a private Redis, half of them
finished (a flow of one literal) and half running (one queued task, no worker), under ten
flow names. Then the median time of ``Client.page`` (50 workflows, newest first):

* with no filter, by state, by flow name, by state and flow name, by id prefix
  (``search``): target ≤ 10 ms each.

Figures are printed, never checked.
``.venv/bin/python bench/bench_list.py [--workflows 1000000] [--quick]``
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _system import System, load, parser, table

from littleflow import compile_flow

BATCH = 10_000
NAMES = 10
PAGE = 50


def flows() -> list[tuple[str, object]]:
    """(text, flow) of each flow written: a finished and a running one under each name."""
    texts = [f"@flow bench-{n}\n{body}" for n in range(NAMES) for body in ("<[1]>", "noop")]
    return [(text, compile_flow(text)) for text in texts]


def write(system: System, count: int) -> tuple[float, list[str]]:
    """Store ``count`` workflows; seconds taken and the ids of the last batch."""
    store, kinds = system.client.store, flows()
    batch = max(1, min(BATCH, count // len(kinds)))  # (every flow written, even in a small run)
    began, ids = time.perf_counter(), []
    for number, start in enumerate(range(0, count, batch)):
        text, flow = kinds[number % len(kinds)]
        ids = [
            run.id
            for run in store.create_many(
                flow, [{"n": n} for n in range(start, min(start + batch, count))], text=text
            )
        ]
    return time.perf_counter() - began, ids


def timed(query, budget: float = 10.0, most: int = 20) -> tuple[float, object]:
    """The median milliseconds of ``query()`` over up to ``most`` calls (at least one, and no
    more once ``budget`` seconds are spent), and its last answer."""
    times, spent = [], 0.0
    while len(times) < most and (not times or spent < budget):
        began = time.perf_counter()
        answer = query()
        times.append((time.perf_counter() - began) * 1000)
        spent += times[-1] / 1000
    return statistics.median(times), answer


def main() -> None:
    options = parser(__doc__.splitlines()[0])
    options.add_argument(
        "--workflows", type=int, default=1_000_000, help="workflows stored (default 1,000,000)"
    )
    args = options.parse_args()
    if args.quick:
        args.workflows = 5_000
    with System(args.redis, engines=0, workers=0) as system:
        client = system.client
        seconds, last = write(system, args.workflows)
        memory = int(client.redis.info("memory")["used_memory"])
        prefix = last[len(last) // 2][:18]  # the date and time of an id, and two of its hex digits
        queries = {
            "newest first": dict(),
            "by state (finished)": dict(state="finished"),
            "by flow name": dict(name="bench-3"),
            "by state and flow name": dict(state="running", name="bench-3"),
            f"by id prefix ({prefix!r})": dict(search=prefix),
        }
        rows: list[tuple[str, str, str, bool | None]] = [
            (f"{args.workflows:,} workflows written", f"{seconds:.1f} s", "", None),
            ("used_memory", f"{memory / 2**20:,.0f} MiB", "", None),
        ]
        for label, filters in queries.items():
            ms, page = timed(lambda: client.page(**filters, count=PAGE, newest=True))
            if not page.workflows:
                raise SystemExit(f"bench: the page {label} is empty")
            rows.append((f"page of {PAGE}, {label}", f"{ms:.2f} ms", "≤ 10 ms", ms <= 10))
            rows.append(("  matching", f"{page.total:,}", "", None))
    print(
        table(f"bench_list · Client.page with {args.workflows:,} workflows, private Redis · {load()}", rows)
    )


if __name__ == "__main__":
    main()
