"""What a hostile guard costs (issue #11): a catastrophic regular expression and a query that
walks its input once per node, against an ordinary guard.

    python3 dev.py bench                     # every bench/*.py, with .venv's python
    .venv/bin/python bench/bench_guards.py

* ``search(@.x, "(a|aa)+$")`` on text of ``a``s ending in ``!``: littleflow's guards run it on
  RE2 (linear time); the JSONPath library's own ``search`` (a backtracking engine, what guards
  used before) is timed beside it on short texts only, as its time doubles with each
  character or so.
* ``$[?count(@..*[?count($..*) > 0]) > 0]`` on 3,000 nested items: quadratic work, stopped
  by the guard's time budget (``littleflow.guard.BUDGET``, 1 s).
* ``$[?(@.status == 0)]`` on a small object: the price of the budget on every evaluation.

Figures are printed, never checked.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

try:
    import littleflow  # noqa: F401
except ImportError:  # a checkout without an install: use ../src
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import jsonpath_rfc9535

from littleflow.guard import BUDGET, GuardError, compile_guard

EVIL = '$[?search(@.x, "(a|aa)+$")]'
HEAVY = "$[?count(@..*[?count($..*) > 0]) > 0]"
PLAIN = "$[?(@.status == 0)]"


def timed(function, repeat: int = 1) -> float:
    """The fastest of ``repeat`` calls, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    guard = compile_guard(EVIL)
    backtracking = jsonpath_rfc9535.compile(EVIL)
    print(f"{EVIL} on 'a' * n + '!'")
    print(f"{'n':>8} {'RE2 (littleflow) s':>20} {'backtracking s':>16}")
    for n in (20, 22, 24, 26, 40, 1_000, 100_000):
        value = {"x": "a" * n + "!"}
        ours = timed(lambda: guard.test([value][0]), 3)
        theirs = f"{timed(lambda: backtracking.find_one([value])):.4f}" if n <= 26 else "(minutes and more)"
        print(f"{n:>8,} {ours:>20.6f} {theirs:>16}")

    heavy = {"a": [[i, [i, {"b": i}]] for i in range(3000)]}
    started = time.perf_counter()
    try:
        compile_guard(HEAVY).test(heavy)
        outcome = "finished"
    except GuardError as error:
        outcome = f"stopped: {error}"
    print(f"\n{HEAVY} on 3,000 items: {time.perf_counter() - started:.3f} s, {outcome} (budget {BUDGET:g} s)")

    plain, subject, count = compile_guard(PLAIN), {"status": 0}, 20_000
    with_budget = timed(lambda: [plain.test(subject) for _ in range(count)], 3) / count
    query = plain._query  # the same query without the budget's trace hook
    without = timed(lambda: [query.find_one([subject]) for _ in range(count)], 3) / count
    print(
        f"\n{PLAIN} on a small object: {with_budget * 1e6:.1f} µs per evaluation "
        f"({without * 1e6:.1f} µs without the time budget)"
    )


if __name__ == "__main__":
    main()
