"""The shared runtime conformance cases (tests/conformance/runtime.yaml), run sequentially."""

import json
import threading
from pathlib import Path

import pytest
import yaml

from littleflow import FlowFailed, compile_flow, run_workflow

CASES = yaml.safe_load((Path(__file__).parent / "conformance" / "runtime.yaml").read_text())


def recording_tasks(flow, behaviour):
    """Task functions that record what they got and do what the case says; a
    ``{"sequence": [v1, v2, …]}`` task returns v1 at the first run of any of its nodes,
    v2 at the second, and so on, then the last value again."""
    order, inputs, params = [], {}, {}
    runs: dict[str, int] = {}
    lock = threading.Lock()

    def make(name):
        def function(input, *args, **kwargs):
            order.append(name)
            inputs.setdefault(name, []).append(input)
            params.setdefault(name, kwargs if kwargs else (args[0] if args else None))
            what = behaviour.get(name, "none")
            if what == "echo":
                return input
            if what == "none":
                return None
            if isinstance(what, dict) and set(what) == {"fail"}:
                raise RuntimeError(what["fail"])
            if isinstance(what, dict) and set(what) == {"sequence"}:
                values = what["sequence"]
                with lock:  # (runs on a worker's threads too)
                    run = runs[name] = runs.get(name, -1) + 1
                return values[min(run, len(values) - 1)]
            return what

        return function

    names = {node.name for node in flow.nodes if node.kind == "task"}
    return {name: make(name) for name in names}, order, inputs, params


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["name"])
def test_runtime_case(case):
    flow = compile_flow(case["flow"])
    tasks, order, inputs, params = recording_tasks(flow, case.get("tasks", {}))
    if "fails" in case:
        with pytest.raises(FlowFailed) as caught:
            run_workflow(flow, tasks, case.get("input"))
        assert caught.value.task == case["fails"]
        output = None
    else:
        output = run_workflow(flow, tasks, case.get("input"))
    if "order" in case:
        assert order == case["order"]
    for name, expected in case.get("inputs", {}).items():
        assert inputs[name] == expected
    for name, expected in case.get("params", {}).items():
        assert params[name] == expected
    if "output" in case:
        assert output == case["output"]


def _unordered(values):
    return sorted(json.dumps(value, sort_keys=True) for value in values)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["name"])
def test_runtime_case_on_threads(case):
    """The case run with four tasks at a time: the same tasks with the same inputs and the same
    output, in an order only the sequential runner fixes."""
    flow = compile_flow(case["flow"])
    tasks, order, inputs, params = recording_tasks(flow, case.get("tasks", {}))
    if "fails" in case:
        with pytest.raises(FlowFailed) as caught:
            run_workflow(flow, tasks, case.get("input"), concurrency=4)
        assert caught.value.task == case["fails"]
        return
    output = run_workflow(flow, tasks, case.get("input"), concurrency=4)
    if "order" in case:
        assert sorted(order) == sorted(case["order"])
    for name, expected in case.get("inputs", {}).items():
        assert _unordered(inputs[name]) == _unordered(expected)
    for name, expected in case.get("params", {}).items():
        assert params[name] == expected
    if "output" in case:
        assert output == case["output"]
