"""How long littleflow takes to refuse flows built to expand: YAML alias bombs in a
literal, a chain of named subflows and a big declared default used many times (issue #11: both must be refused, positioned,
in well under a second, before anything is expanded).

Run it with any of:

    python3 dev.py bench                     # every bench/*.py, with .venv's python
    .venv/bin/python bench/bench_bombs.py

Each case compiles its flow text with :func:`littleflow.compile_flow` (the local limit:
5,000,000 nodes) and with the API's default limit of 20,000 nodes, repeats for a
second and prints its fastest refusal, the text size, what the flow would expand to,
and the growth of the process's peak RSS over the whole run. Figures are for information:
a slow refusal never makes the script exit non-zero (a flow that is not refused does).
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

try:
    import littleflow
except ImportError:  # run from a checkout without installing: use ../src
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    import littleflow

from littleflow import FlowError, compile_flow

API_MAX_NODES = 20_000
REPEAT_SECONDS = 1.0


def laughs(levels: int, width: int, leaf: str) -> str:
    """A YAML literal whose every level is an array of ``width`` aliases of the one below."""
    lines = [f"a0: &a0 {leaf}"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels + 1)]
    return "A\n  <-\n" + "\n".join(lines) + "\n-> B\n"


def chain(levels: int) -> str:
    """Named subflows that each invoke the one before twice."""
    return (
        "@task S1 { A A }\n"
        + "".join(f"@task S{i} {{ S{i - 1} S{i - 1} }}\n" for i in range(2, levels + 1))
        + f"S{levels}\n"
    )


CASES = {
    "billion laughs (9 levels × 9 aliases)": (laughs(9, 9, '"lol"'), "9**9 = 387,420,489 strings"),
    "0.5 MB byte bomb (a 500 kB string × 1,000)": (
        'A (-\na: &a "' + "x" * 500_000 + '"\nb: [' + ", ".join(["*a"] * 1000) + "]\n-)\n",
        "500 MB of JSON",
    ),
    "2 kB string × 10**4 (4 levels of 10 aliases)": (laughs(4, 10, '"' + "x" * 2000 + '"'), "20 MB of JSON"),
    "chain of 30 named subflows": (chain(30), "3,221,225,472 nodes"),
    "chain of 100 named subflows": (chain(99), "2**100 nodes"),
    "a 1 MB declared default used 200 times": (
        '@task T (- {x: &a "'
        + "x" * 1000
        + '", y: ['
        + ",".join(["*a"] * 1000)
        + "]} -)\n"
        + " ".join(["T"] * 200),
        "200 MB of parameters",
    ),
}


def fastest(text: str, max_nodes: int | None) -> tuple[float, str]:
    """The fastest time to refuse ``text`` over about a second, and the error."""
    best, error, until = float("inf"), "", time.perf_counter() + REPEAT_SECONDS
    while time.perf_counter() < until:
        began = time.perf_counter()
        try:
            compile_flow(text, max_nodes=max_nodes)
        except FlowError as refused:
            error = refused.message
        else:
            return time.perf_counter() - began, "ACCEPTED"
        best = min(best, time.perf_counter() - began)
    return best, error


def main() -> None:
    start_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"littleflow {littleflow.__version__}, Python {sys.version.split()[0]}")
    print(f"{'case':46} {'text':>9} {'expands to':>28} {'local':>9} {'API':>9}  error (API)")
    accepted = False
    for name, (text, expands) in CASES.items():
        local, _ = fastest(text, None)
        api, error = fastest(text, API_MAX_NODES)
        accepted = accepted or error == "ACCEPTED"
        print(
            f"{name:46} {len(text.encode()):>8,}B {expands:>28} {local * 1000:>7.2f}ms {api * 1000:>7.2f}ms"
            f"  {error[:90]}"
        )
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start_rss
    print(f"peak RSS grew by {grown / 1024:.1f} MB over the run (1 MB = 1024 kB)")
    if accepted:
        sys.exit("a bomb was accepted")


if __name__ == "__main__":
    main()
