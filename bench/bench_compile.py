"""Parse and compile throughput of littleflow for big generated flows.

Two shapes, each at 1k, 10k, 100k and 1M tasks:

* chain:   ``t0 → t1 → t2 → …``              (one statement)
* fan-out: ``A → { t0 t1 t2 … } → Z``         (one statement per task, in a subflow)

Run it with any of:

    python3 dev.py bench                     # every bench/*.py, with .venv's python
    .venv/bin/python bench/bench_compile.py
    .venv/bin/python bench/bench_compile.py --quick                  # 1k and 10k only
    .venv/bin/python bench/bench_compile.py --sizes 1000,100000 --markdown

``--markdown`` prints a Markdown table for the README. Any Python 3.11+ with
littleflow's dependencies will do; without an installed littleflow the script
imports it from ../src. The default run takes about a minute on an idle
2-core machine (the two 1M cases take most of it).

Each case runs in a fresh subprocess, so its peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) belongs to that case alone:
"peak RSS" is the whole child process, "Δ RSS" is that peak minus the RSS just
after importing littleflow (so it includes the flow text). 1 MB = 10**6 bytes;
text size is the UTF-8 size. Cases under 100k tasks repeat for a second and
report their fastest run; bigger ones run once. Times are wall-clock, so a
busy machine inflates them; the header shows the load average.

Targets (from the issue) are printed with whether each was met, for
information only: a miss never makes the script exit non-zero (a crash does).
Parse at least 1 MB of flow text per second (checked on the slowest case), and
parse + compile a 1M-task chain in under 20 s with a peak RSS under 2 GB.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

try:
    import littleflow
except ImportError:  # run from a checkout without installing: use ../src
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    import littleflow

SIZES = (1_000, 10_000, 100_000, 1_000_000)
QUICK_SIZES = (1_000, 10_000)
SHAPES = ("chain", "fan-out")
#: Nodes a flow has beyond its tasks: START and END, plus A, Z and the subflow's start and end.
EXTRA_NODES = {"chain": 2, "fan-out": 6}
#: Cases with fewer tasks than this run again and again for this long and keep the fastest run.
REPEAT_BELOW, REPEAT_SECONDS = 100_000, 1.0
TARGET_PARSE_MB_S = 1.0
TARGET_CHAIN_TASKS = 1_000_000
TARGET_CHAIN_SECONDS = 20.0
TARGET_CHAIN_RSS_MB = 2000.0
COLUMNS = (
    "shape",
    "tasks",
    "text MB",
    "parse s",
    "parse MB/s",
    "compile s",
    "total s",
    "nodes/s",
    "peak RSS MB",
    "Δ RSS MB",
)


def flow_text(shape: str, tasks: int) -> str:
    """The flow text of one case, built in chunks to keep the builder's own memory small."""

    def chunks(separator: str) -> Iterator[str]:
        for first in range(0, tasks, 10_000):
            yield separator.join(f"t{i}" for i in range(first, min(first + 10_000, tasks)))

    if shape == "chain":
        return " → ".join(chunks(" → "))
    return "A → { " + " ".join(chunks(" ")) + " } → Z\n"


def rss_mb() -> float:
    """Peak RSS of this process so far, in MB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak * 1024 / 1e6


def measure(shape: str, tasks: int) -> dict[str, float]:
    """Parse and compile one case in this process (the child's job); return its figures.

    Small cases repeat for about REPEAT_SECONDS and keep the fastest run, as
    one run is too short to time; big ones run once.
    """
    baseline = rss_mb()
    text = flow_text(shape, tasks)
    parse_s = compile_s = float("inf")
    until = time.perf_counter() + (REPEAT_SECONDS if tasks < REPEAT_BELOW else 0)
    while True:
        gc.collect()
        start = time.perf_counter()
        module = littleflow.Parser().parse(text)
        parsed = time.perf_counter()
        flow = littleflow.Compiler().compile(module)
        done = time.perf_counter()
        parse_s, compile_s = min(parse_s, parsed - start), min(compile_s, done - parsed)
        nodes = len(flow.nodes)
        del module, flow
        if done >= until:
            break
    if nodes != tasks + EXTRA_NODES[shape]:
        raise AssertionError(f"{shape} of {tasks} tasks gave {nodes} nodes, not {tasks + EXTRA_NODES[shape]}")
    return {
        "text_mb": len(text.encode()) / 1e6,
        "parse_s": parse_s,
        "compile_s": compile_s,
        "nodes": nodes,
        "baseline_mb": baseline,
        "peak_mb": rss_mb(),
    }


def run_case(shape: str, tasks: int) -> dict[str, float] | str:
    """Measure one case in a fresh subprocess: its figures, or the error it ended with."""
    cmd = [sys.executable, __file__, "--child", shape, str(tasks)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        return f"exit {result.returncode}: {lines[-1] if lines else 'no output'}"
    return json.loads(result.stdout)


def row(shape: str, tasks: int, r: dict[str, float]) -> list[str]:
    """The table cells of one measured case."""
    total = r["parse_s"] + r["compile_s"]
    return [
        shape,
        f"{tasks:,}",
        f"{r['text_mb']:.3g}",
        f"{r['parse_s']:.3g}",
        f"{r['text_mb'] / r['parse_s']:.3g}",
        f"{r['compile_s']:.3g}",
        f"{total:.3g}",
        f"{r['nodes'] / total:,.0f}",
        f"{r['peak_mb']:.0f}",
        f"{r['peak_mb'] - r['baseline_mb']:.0f}",
    ]


def print_row(cells: list[str], markdown: bool) -> None:
    if markdown:
        print("| " + " | ".join(cells) + " |", flush=True)
    else:
        print(f"{cells[0]:<8}" + "".join(f"{c:>13}" for c in cells[1:]), flush=True)


def targets(results: dict[tuple[str, int], dict[str, float]]) -> list[str]:
    """One line per target: what was measured and whether it was met."""

    def verdict(ok: bool) -> str:
        return "MET" if ok else "NOT MET"

    lines = []
    if results:
        (shape, tasks), slowest = min(results.items(), key=lambda kv: kv[1]["text_mb"] / kv[1]["parse_s"])
        rate = slowest["text_mb"] / slowest["parse_s"]
        lines.append(
            f"parse >= {TARGET_PARSE_MB_S:g} MB/s (slowest case): {rate:.2f} MB/s "
            f"({shape}, {tasks:,} tasks) -> {verdict(rate >= TARGET_PARSE_MB_S)}"
        )
    chain = results.get(("chain", TARGET_CHAIN_TASKS))
    if chain is None:
        lines.append(
            f"1M chain < {TARGET_CHAIN_SECONDS:g} s, < {TARGET_CHAIN_RSS_MB:g} MB: "
            "not measured (needs --sizes 1000000)"
        )
    else:
        total = chain["parse_s"] + chain["compile_s"]
        lines.append(
            f"1M chain parse+compile < {TARGET_CHAIN_SECONDS:g} s: {total:.1f} s "
            f"(compile alone {chain['compile_s']:.1f} s) -> {verdict(total < TARGET_CHAIN_SECONDS)}"
        )
        lines.append(
            f"1M chain peak RSS < {TARGET_CHAIN_RSS_MB:g} MB: {chain['peak_mb']:.0f} MB "
            f"-> {verdict(chain['peak_mb'] < TARGET_CHAIN_RSS_MB)}"
        )
    return lines


def task_counts(text: str) -> list[int]:
    """``--sizes``: comma-separated positive task counts (``1000,1_000_000``)."""
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of task counts: {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"task counts must be positive: {text!r}")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", type=task_counts, help="comma-separated task counts (default 1000,10000,100000,1000000)"
    )
    parser.add_argument("--quick", action="store_true", help="only 1k and 10k tasks")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--child", nargs=2, metavar=("SHAPE", "TASKS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child[0], int(args.child[1]))))
        return 0
    sizes = args.sizes or (QUICK_SIZES if args.quick else SIZES)

    print(
        f"littleflow {littleflow.__version__} parse/compile benchmark, Python "
        f"{platform.python_version()} on {platform.machine()} {platform.system()}"
    )
    print(
        "Each case in a fresh process; wall-clock seconds; nodes/s = flow nodes / total s.\n"
        "peak RSS = whole process; Δ RSS = peak − RSS after imports (includes the text); "
        "1 MB = 10^6 bytes.\n"
        f"Cases under {REPEAT_BELOW:,} tasks: fastest run in {REPEAT_SECONDS:g} s. "
        f"Load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs.\n"
    )
    if args.markdown:
        print_row(list(COLUMNS), True)
        print("|" + "|".join("---" if c == "shape" else "--:" for c in COLUMNS) + "|")
    else:
        print_row(list(COLUMNS), False)
    results: dict[tuple[str, int], dict[str, float]] = {}
    errors = 0
    for tasks in sizes:
        for shape in SHAPES:
            outcome = run_case(shape, tasks)
            if isinstance(outcome, str):
                errors += 1
                print_row([shape, f"{tasks:,}", f"FAILED: {outcome}"], args.markdown)
                continue
            results[shape, tasks] = outcome
            print_row(row(shape, tasks, outcome), args.markdown)
    print("\nTargets (informational):")
    for line in targets(results):
        print(("- " if args.markdown else "  ") + line)
    return 1 if errors else 0  # a case that crashed fails the run; slow ones never do


if __name__ == "__main__":
    sys.exit(main())
