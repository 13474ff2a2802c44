"""The run state (LANGUAGE.md §9.1): the vectors and outputs that are the whole
state of a run, saved as plain JSON and restored anywhere with the same result."""

from __future__ import annotations

import itertools
import json

import pytest
from drivers import Driver, Raise, acyclic_flows, roundtrip, run
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from support import one

from littleflow import Engine, Flow, State, compile_flow
from littleflow.state import Frame, Iteration

SEED = "A → { B → C  D } → E"

FLOWS = [
    SEED,
    "A → :x B\nC → :x",
    "A → :x > B\nC → :x",
    "A → * { B → C  D } → E",
    "A → * { * B → C } → D",
    "A → ? `$[?(@.go == true)]` { B  C } → D\nE",
    "<[1, 2, 3]> → * A → { B|C } → > :end",
    ":poll wait → check → :poll",
]


def behaviour(start, name) -> object:
    """Deterministic outputs that depend on the task and its input."""
    if name == "A":
        return [{"go": True, "n": 1}, {"n": 2}]
    if name == "check":
        return {"round": start.input.get("round", 0) + 1} if isinstance(start.input, dict) else {"round": 1}
    return {name: len(json.dumps(start.input, sort_keys=True)) % 7}


def driver_for(text: str, **options) -> Driver:
    driver = Driver(text, **options)
    driver.default = lambda start: behaviour(start, driver.name(start.node))
    return driver


def outcome(driver: Driver) -> tuple:
    return (
        driver.state.status,
        driver.state.output,
        [(s.key, s.input) for s in driver.ran],
        driver.state.to_json(),
    )


# -- a new state ------------------------------------------------------------------------


def test_a_new_state_is_running_with_one_empty_frame():
    flow = compile_flow(SEED)
    state = State(flow.end)
    assert state.status == "running" and state.input is None and state.output is None
    assert list(state.frames) == [""] and state.frames[""] is state.root
    root = state.root
    assert (root.path, root.start, root.end, root.parent) == ("", 0, flow.end, None)
    assert root.activations == root.pending == root.outputs == root.runs == root.iterations == {}
    assert root.skipped == set()
    assert state.running == {} and state.held == [] and state.retry == [] and state.failures == []
    assert state.failure is None


def test_the_state_of_a_run_records_its_input_output_and_outputs():
    driver = run(SEED, {"C": {"c": 1}, "D": {"d": 1}}, input={"k": 1})
    state = driver.state
    assert state.status == "finished" and state.input == {"k": 1}
    assert state.output == [{"c": 1}, {"d": 1}]  # E echoes its input
    flow = driver.flow
    assert state.root.outputs[one(flow, "C").id] == {"c": 1}
    assert state.root.outputs[one(flow, "A").id] == {"k": 1}
    assert state.running == {}


# -- JSON ---------------------------------------------------------------------------------


def every_step(text: str, **options):
    """The driver after each step of a run of ``text`` (the same driver, advanced)."""
    driver = driver_for(text, **options).begin()
    yield driver
    while driver.queue:
        driver.step()
        yield driver


@pytest.mark.parametrize("text", FLOWS)
def test_the_state_is_plain_json_at_every_step(text):
    for driver in every_step(text, limit=3):
        data = driver.state.to_json()
        assert json.loads(json.dumps(data)) == data


@pytest.mark.parametrize("text", FLOWS)
def test_from_json_rebuilds_the_same_state_at_every_step(text):
    for driver in every_step(text, limit=3):
        again = roundtrip(driver.state)
        assert again.to_json() == driver.state.to_json()
        assert again.running == driver.state.running
        assert set(again.frames) == set(driver.state.frames)
        for path, frame in driver.state.frames.items():
            copy = again.frames[path]
            assert copy.activations == frame.activations and copy.pending == frame.pending
            assert copy.outputs == frame.outputs and copy.runs == frame.runs
            assert copy.skipped == frame.skipped and copy.parent == frame.parent
            assert {n: (i.results, i.remaining) for n, i in copy.iterations.items()} == {
                n: (i.results, i.remaining) for n, i in frame.iterations.items()
            }
        assert again.frames[""] is again.root


def test_a_failed_state_keeps_its_failure_and_what_to_run_again():
    driver = run("A → { B  D → F } → G", {"B": Raise("boom")})
    state = roundtrip(driver.state)
    assert state.status == "failed"
    assert state.failures == driver.state.failures and state.failure["error"] == "boom"
    assert state.to_json()["retry"] == driver.state.to_json()["retry"]
    assert state.held == driver.state.held and state.held


def test_a_frame_round_trips_with_int_keys():
    frame = Frame("/2.1", 2, 6, ("", 2, 1))
    frame.activations = {6: 1}
    frame.pending = {6: [3]}
    frame.outputs = {3: {"x": [1]}, 2: [1, 2]}
    frame.runs = {3: 2}
    frame.iterations = {4: Iteration(3)}
    frame.iterations[4].results[1] = "second"
    frame.iterations[4].remaining = 2
    frame.skipped = {5}
    data = json.loads(json.dumps(frame.to_json()))
    again = Frame.from_json(data)
    assert (again.path, again.start, again.end, again.parent) == ("/2.1", 2, 6, ("", 2, 1))
    assert again.activations == {6: 1} and again.pending == {6: [3]}
    assert again.outputs == {3: {"x": [1]}, 2: [1, 2]} and again.runs == {3: 2}
    assert again.iterations[4].results == [None, "second", None] and again.iterations[4].remaining == 2
    assert again.skipped == {5}
    assert again.to_json() == frame.to_json()


def test_item_frames_are_named_by_their_parent_node_and_item():
    flow = compile_flow("A → * { * B }")
    state = State(flow.end)
    outer = state.add_frame(state.root, 2, 1, 5)
    inner = state.add_frame(outer, 3, 0, 4)
    assert (outer.path, outer.parent, outer.start, outer.end) == ("/2.1", ("", 2, 1), 2, 5)
    assert (inner.path, inner.parent) == ("/2.1/3.0", ("/2.1", 3, 0))
    assert set(state.frames) == {"", "/2.1", "/2.1/3.0"}
    assert State.from_json(json.loads(json.dumps(state.to_json()))).to_json() == state.to_json()
    state.drop_frame(inner)
    assert set(state.frames) == {"", "/2.1"}


def test_fail_records_the_failure_and_stops_the_run():
    flow = compile_flow("A → B")
    node = one(flow, "B")
    state = State(flow.end)
    state.fail(node, ("", node.id, -1), {"k": 1}, "broken")
    assert state.status == "failed"
    assert state.failure == {
        "node": node.id,
        "name": "B",
        "line": node.line,
        "column": node.column,
        "key": ["", node.id, -1],
        "input": {"k": 1},
        "error": "broken",
    }
    state.fail(one(flow, "A"), ("", 1, -1), {}, "second")
    assert state.failure["error"] == "broken" and len(state.failures) == 2
    terminated = State(flow.end)
    terminated.status = "terminated"
    terminated.fail(node, ("", node.id, -1), {}, "late")
    assert terminated.status == "terminated" and terminated.failure["error"] == "late"


def test_iteration_results_start_empty():
    iteration = Iteration(3)
    assert iteration.results == [None, None, None] and iteration.remaining == 3


# -- restoring: the same result anywhere -----------------------------------------------------


def continued(text: str, steps: int, *, keep_queue: bool, **options) -> Driver:
    """A run stopped after ``steps`` steps, its state saved as JSON and loaded into a new
    engine over a flow also rebuilt from JSON, and run to the end."""
    driver = driver_for(text, **options).begin()
    for _ in range(steps):
        driver.step()
    driver.saved_status = driver.state.status
    saved = json.dumps({"flow": driver.flow.to_json(), "state": driver.state.to_json()})
    data = json.loads(saved)
    driver.flow = Flow.from_json(data["flow"])
    driver.engine = Engine(driver.flow, driver.engine.limit)
    driver.state = State.from_json(data["state"])
    if not keep_queue:
        driver.resume()
    driver.run()
    return driver


@pytest.mark.parametrize("text", FLOWS)
def test_a_run_saved_at_any_step_and_restored_ends_the_same(text):
    whole = driver_for(text, limit=3)
    whole.run()
    for steps in range(len(whole.ran) + 1):
        assert outcome(continued(text, steps, keep_queue=True, limit=3)) == outcome(whole), steps


@pytest.mark.parametrize("text", FLOWS)
def test_a_run_resumed_from_its_saved_state_alone_gives_the_same_output(text):
    # As after a restart: what was running is started again by Engine.resume. (Saved
    # after a failure, resuming runs the failed step again: only saves of a running
    # flow are compared with the uninterrupted run.)
    whole = driver_for(text, limit=3)
    whole.run()
    compared = 0
    for steps in range(len(whole.ran) + 1):
        again = continued(text, steps, keep_queue=False, limit=3)
        if again.saved_status == "running":
            compared += 1
            assert (again.state.status, again.state.output) == (whole.state.status, whole.state.output), steps
            assert again.state.failures == whole.state.failures
            assert sorted(s.key for s in again.ran) == sorted(s.key for s in whole.ran)
    assert compared >= 2


def test_a_resumed_sequential_run_keeps_the_first_in_first_out_order():
    # §9.2: everything started by one step runs before anything started by a later
    # step. Saved after A and B ended, D (started by A) is still ahead of C (started
    # by B); a run resumed from that state must keep D before C.
    whole = driver_for(SEED)
    whole.run()
    assert whole.order == ["A", "B", "D", "C", "E"]
    again = continued(SEED, 2, keep_queue=False)
    assert again.order == whole.order


def test_a_failed_run_saved_and_resumed_elsewhere_finishes():
    attempts = itertools.count()
    tasks = {"B": lambda s: Raise("flaky") if next(attempts) == 0 else {"b": 1}}
    driver = run("A → { B  D → F } → G", tasks)
    assert driver.state.status == "failed"
    driver.state = roundtrip(driver.state)
    driver.engine = Engine(Flow.loads(driver.flow.dumps()))
    driver.resume()
    driver.run()
    assert driver.state.status == "finished"
    assert driver.order.count("A") == 1 and driver.order.count("D") == 1 and driver.order.count("B") == 2
    assert driver.inputs("G") == [{"b": 1}]  # F echoed {}: dropped from the aggregate


def test_a_terminated_run_saved_and_resumed_finishes():
    driver = Driver("A → B → C").begin()
    driver.step()
    driver.engine.terminate(driver.state)
    driver.step()
    assert driver.state.status == "terminated" and not driver.queue
    driver.state = roundtrip(driver.state)
    driver.resume()
    driver.run()
    assert driver.order == ["A", "B", "C"] and driver.state.status == "finished"


# -- property (2): save and restore at a random step ---------------------------------------------

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def random_flow_run(text: str) -> Driver:
    driver = driver_for(text, limit=3)
    driver.run()
    return driver


@PROPERTY
@given(acyclic_flows(decorated=True), st.data())
def test_saving_and_restoring_at_a_random_step_changes_nothing(text, data):
    whole = random_flow_run(text)
    steps = data.draw(st.integers(0, len(whole.ran)), label="steps before saving")
    again = continued(text, steps, keep_queue=True, limit=3)
    assert outcome(again) == outcome(whole)


@PROPERTY
@given(acyclic_flows(decorated=True), st.data())
def test_resuming_from_a_state_saved_at_a_random_step_gives_the_same_output_and_order(text, data):
    whole = random_flow_run(text)
    steps = data.draw(st.integers(0, len(whole.ran)), label="steps before saving")
    again = continued(text, steps, keep_queue=False, limit=3)
    assume(again.saved_status == "running")  # resuming a failed run runs the failure again
    assert (again.state.status, again.state.output) == (whole.state.status, whole.state.output)
    assert [(s.key, s.input) for s in again.ran] == [(s.key, s.input) for s in whole.ran]
