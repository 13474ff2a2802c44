"""How fast littleflow's sequential runner gets through no-op tasks, and how much
it adds to real work.

* chain:   ``t0 → t1 → …``                 no-op tasks, one after the other
* fan-out: ``A → { t0 t1 … } → Z``         no-op tasks, all ready at once
* 40 × 10 ms: a chain of 40 tasks that each sleep 10 ms (orchestration overhead)

Run it with ``python3 dev.py bench`` (every bench/*.py) or
``.venv/bin/python bench/bench_run.py [--quick] [--sizes 1000,100000] [--markdown]``.

Each case runs in a fresh subprocess and times the run alone (the flow is
compiled before the clock starts); cases up to 100k tasks run three times and
the fastest counts, since a shared machine's noise only ever slows a run down. Targets from the issue are
printed with whether each was met, for information only: a miss never makes
the script fail. Times are wall-clock: a busy machine inflates them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

try:
    import littleflow  # noqa: F401
except ImportError:  # a checkout without an install: use ../src
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

SIZES = (1_000, 10_000, 100_000, 1_000_000)
QUICK_SIZES = (1_000, 10_000)
SHAPES = ("chain", "fan-out")
#: Cases up to 100k tasks run this many times (each in a fresh process); the fastest counts.
REPEATS = 3


def flow_text(shape: str, size: int) -> str:
    names = [f"t{i}" for i in range(size)]
    if shape == "chain":
        return " → ".join(names)
    return "A → { " + " ".join(names) + " } → Z"


def measure(shape: str, size: int) -> dict:
    """One case, in this process: returns its figures."""
    from littleflow import compile_flow
    from littleflow.local import LocalRun

    if shape == "sleep":
        flow = compile_flow(" → ".join(f"s{i}" for i in range(size)))
        tasks = {f"s{i}": lambda: time.sleep(0.01) for i in range(size)}
    else:
        flow = compile_flow(flow_text(shape, size))

        def noop(input):
            return None

        tasks = {name: noop for name in {node.name for node in flow.nodes if node.kind == "task"}}
    run = LocalRun(flow, tasks)
    began = time.perf_counter()
    state = run.run({})
    seconds = time.perf_counter() - began
    assert state.status == "finished", state.failure
    completed = sum(1 for node in flow.nodes if node.kind == "task")
    return {"shape": shape, "size": size, "tasks": completed, "seconds": seconds, "rate": completed / seconds}


def in_child(shape: str, size: int) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--child", shape, str(size)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"bench_run: the {shape} {size} case failed:\n{result.stderr}")
    return json.loads(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1k and 10k tasks only")
    parser.add_argument("--sizes", help="comma-separated task counts")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], int(args.child[1]))))
        return
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else QUICK_SIZES if args.quick else SIZES
    print(
        f"# sequential runner, no-op tasks · python {sys.version.split()[0]} · "
        f"load {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores",
        flush=True,
    )
    rows = []
    for shape in SHAPES:
        for size in sizes:
            runs = [in_child(shape, size) for _ in range(REPEATS if size <= 100_000 else 1)]
            row = min(runs, key=lambda r: r["seconds"])
            rows.append(row)
            if not args.markdown:
                print(
                    f"{shape:8} {row['tasks']:>9,} tasks  {row['seconds']:8.3f} s  {row['rate']:>10,.0f} tasks/s",
                    flush=True,
                )
    sleep = min((in_child("sleep", 40) for _ in range(REPEATS)), key=lambda r: r["seconds"])
    overhead_ms = (sleep["seconds"] - 40 * 0.010) / 40 * 1000
    if args.markdown:
        print("| shape | tasks | seconds | tasks/s |\n| --- | ---: | ---: | ---: |")
        for row in rows:
            print(f"| {row['shape']} | {row['tasks']:,} | {row['seconds']:.3f} | {row['rate']:,.0f} |")
        print(f"| 40 × 10 ms chain | 40 | {sleep['seconds']:.3f} | overhead {overhead_ms:.3f} ms/task |")
    else:
        print(f"40 × 10 ms chain: {sleep['seconds']:.3f} s, {overhead_ms:.3f} ms of overhead per task")
    by = {(r["shape"], r["size"]): r for r in rows}
    print("\ntargets (informational):")
    for shape in SHAPES:
        hundred, million = by.get((shape, 100_000)), by.get((shape, 1_000_000))
        if hundred:
            print(
                f"  {shape}: ≥ 100,000 tasks/s at 100k: {hundred['rate']:,.0f} "
                f"{'met' if hundred['rate'] >= 100_000 else 'MISSED'}"
            )
        if hundred and million:
            ratio = million["seconds"] / hundred["seconds"]
            print(
                f"  {shape}: 1M within 12× the 100k time: {ratio:.1f}× {'met' if ratio <= 12 else 'MISSED'}"
            )
    print(
        f"  40 × 10 ms chain within 0.45 s: {sleep['seconds']:.3f} s {'met' if sleep['seconds'] <= 0.45 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
