"""littleflow.timeline: the runs of a workflow's task info, one per attempt and item."""

from __future__ import annotations

from littleflow import compile_flow
from littleflow.timeline import runs

FLOW = compile_flow("A → B")


def info(**entry):
    return {"|1|-1": {"node": 1, "status": "done", "started": 10.0, "ended": 20.0, "attempt": 1, **entry}}


def test_a_retried_run_is_a_bar_per_attempt_the_last_as_the_run_now_is():
    attempts = [
        [1, 10.0, 12.0, "failed", "OSError: no"],
        [2, 13.0, 15.0, "failed", "OSError: no"],
        [3, 16.0, None, "running", None],
    ]
    found = runs(FLOW, info(attempt=3, attempts=attempts), "finished")
    assert [(r["attempt"], r["status"], r["start"], r["end"], r["error"]) for r in found] == [
        (1, "failed", 10.0, 12.0, "OSError: no"),
        (2, "failed", 13.0, 15.0, "OSError: no"),
        (3, "done", 16.0, 20.0, None),
    ]
    assert {r["name"] for r in found} == {"A"}  # (node 0 is the start)


def test_an_attempt_still_running_in_a_terminated_workflow_is_terminated():
    attempts = [[1, 10.0, 12.0, "failed", "boom"], [2, 13.0, None, "running", None]]
    found = runs(FLOW, info(status="running", ended=None, attempt=2, attempts=attempts), "terminated")
    assert [(r["attempt"], r["status"]) for r in found] == [(1, "failed"), (2, "terminated")]


def test_what_a_worker_wrote_wrong_in_the_attempts_is_left_out():
    hostile = [
        "x",
        [1, 2],
        ["1", 10.0, 11.0, "failed", None],
        [True, 10.0, 11.0, "failed", None],
        [1, "soon", float("nan"), "<script>", ["not", "text"]],
        [2, 13.0, None, "running", None],
    ]
    found = runs(FLOW, info(attempt=2, attempts=hostile), "finished")
    assert [(r["attempt"], r["status"], r["start"], r["end"], r["error"]) for r in found] == [
        (2, "done", 13.0, 20.0, None),
        (1, "failed", None, None, None),
    ]
    assert runs(FLOW, info(attempts={"not": "a list"}), "finished")[0]["attempt"] == 1
