"""How fast a loop goes round locally (issue #13): a ``repeat`` of a no-op task, its
condition tested by the engine itself at the end of every round.

    repeat tick until `$[?@.n >= ROUNDS]`

``tick`` adds one to ``n`` (the least a task can do and still end the loop). The run
uses the sequential runner with the run limit raised above the rounds; the flow is
compiled before the clock starts, and the fastest of three runs (each in this process)
counts, since a shared machine's noise only ever slows a run down.

    .venv/bin/python bench/bench_loop.py [--rounds 100000] [--quick]

The target (at least 100,000 rounds a second at 100,000 rounds) is printed with whether
it was met, for information only: a miss never makes the script fail.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

try:
    import littleflow  # noqa: F401
except ImportError:  # a checkout without an install: use ../src
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from littleflow import compile_flow
from littleflow.local import LocalRun

TARGET = 100_000  # rounds a second
REPEATS = 3


def tick(input: dict) -> dict:
    return {"n": input.get("n", 0) + 1}


def measure(rounds: int) -> float:
    """Seconds for one run of ``rounds`` rounds."""
    flow = compile_flow(f"repeat tick until `$[?@.n >= {rounds}]`")
    run = LocalRun(flow, {"tick": tick}, limit=rounds + 1)
    started = time.perf_counter()
    state = run.run()
    seconds = time.perf_counter() - started
    assert state.status == "finished" and state.output == {"n": rounds}, state.to_json()["failures"]
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="1,000 rounds: a smoke run")
    args = parser.parse_args()
    rounds = 1_000 if args.quick else args.rounds
    best = min(measure(rounds) for _ in range(REPEATS))
    rate = rounds / best
    print("bench_loop: a repeat of a no-op task, run locally (sequential)")
    print(f"  {'figure':<34} {'value':>14} {'target':>12} met")
    print(f"  {f'{rounds:,} rounds':<34} {best:>12.3f} s {'':>12}")
    print(f"  {'rounds/s':<34} {rate:>14,.0f} {f'≥ {TARGET:,}':>12} {'yes' if rate >= TARGET else 'NO'}")


if __name__ == "__main__":
    main()
