"""The Redis benchmarks of issue #12 run (``--quick``: small sizes, real processes and a
private redis-server each) and print their table of figures. Timing is never checked:
a figure that misses its target is printed as such, and the run still passes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"

#: each benchmark, and figures its table must hold
FIGURES = {
    "bench_hop.py": ["median hop, 2 chains of 20", "median hop, chain of 100", "wall time per task 100 / 20"],
    "bench_map.py": [
        "*noop over 200",
        "*noop over 2,000",
        "rate 2,000 / 200",
        "noop → noop beside the 2,000 map",
    ],
    "bench_storage.py": ["used_memory per workflow", "MEMORY USAGE of one workflow's keys", "shared keys"],
    "bench_schedules.py": ["100 schedules every 1s: median lateness", "p95 lateness", "ticks doubled / lost"],
    "bench_schedule_cost.py": [
        "fan-out 100: firing off (median)",
        "fan-out 100: 20 schedules firing (median)",
        "100 workflows of 3: change",
    ],
    "bench_list.py": [
        "page of 50, newest first",
        "page of 50, by state (finished)",
        "page of 50, by flow name",
        "page of 50, by id prefix",
    ],
}


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_quick_run_prints_its_figures(name: str) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / name), "--quick"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith(name.removesuffix(".py")), result.stdout
    assert re.match(r"\s+figure\s+value\s+target\s+met$", lines[1]), result.stdout
    for figure in FIGURES[name]:
        row = next((line for line in lines if line.strip().startswith(figure)), None)
        assert row is not None, f"no {figure!r} in:\n{result.stdout}"
        assert re.search(r"\d", row[len(figure) + 2 :]), f"{figure!r} has no number:\n{result.stdout}"
    assert any(line.endswith((" yes", " NO")) for line in lines[2:]), (
        f"no target met or missed:\n{result.stdout}"
    )
