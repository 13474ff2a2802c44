"""run_workflow and LocalRun: running flows in this process (local.py; LANGUAGE.md §8–§9)."""

from __future__ import annotations

import threading

import pytest

from littleflow import FlowFailed, compile_flow, run_workflow
from littleflow.engine import DEFAULT_LIMIT
from littleflow.local import LocalRun


def node_of(flow, name):
    (node,) = [n for n in flow.nodes if n.name == name]
    return node


# -- the example ---------------------------------------------------------------------
def test_hello_workflow_world(capsys):
    from littleflow import run_workflow

    def A(input):
        print("Hello ", end="")

    def B(input):
        print("workflow ", end="")

    def D(input):
        print("world, ", end="")

    def C(input):
        print("how are ", end="")

    def E(input):
        print("you?")

    run_workflow("A → { B → C  D } → E", locals())
    assert capsys.readouterr().out == "Hello workflow world, how are you?\n"


# -- input, output, order ----------------------------------------------------------------------
def test_output_is_ends_value_and_input_reaches_the_first_task():
    seen = []

    def first(input):
        seen.append(input)
        return {"n": input["n"] + 1}

    def double(input):
        return {"n": input["n"] * 2}

    assert run_workflow("first → double", locals(), input={"n": 4}) == {"n": 10}
    assert seen == [{"n": 4}]


def test_default_input_is_an_empty_object():
    seen = []
    run_workflow("A", {"A": seen.append})
    assert seen == [{}]


def test_output_aggregates_the_last_steps_in_source_order():
    tasks = {"A": lambda input: {"a": 1}, "B": lambda input: {"b": 2}, "C": lambda input: None}
    assert run_workflow("A\nB\nC", tasks) == [{"a": 1}, {"b": 2}]
    assert run_workflow("A → > :end;\nB → > :end", tasks) == {"a": 1, "b": 2}
    assert run_workflow("{ A  B } → > M", {**tasks, "M": lambda input: input}) == {"a": 1, "b": 2}


def test_sequential_order_is_first_in_first_out_and_repeatable():
    for _ in range(3):
        order = []
        tasks = {name: (lambda n: lambda input: order.append(n))(name) for name in "ABCDE"}
        run_workflow("A → { B → C  D } → E", tasks)
        assert order == ["A", "B", "D", "C", "E"]


def test_workflow_may_be_text_a_path_or_a_compiled_flow(tmp_path):
    tasks = {"A": lambda input: {"ran": "A"}}
    (tmp_path / "a.flow").write_text("A\n")
    assert run_workflow("A", tasks) == {"ran": "A"}
    assert run_workflow(tmp_path / "a.flow", tasks) == {"ran": "A"}
    assert run_workflow(compile_flow("A"), tasks) == {"ran": "A"}


def test_json_input_values_of_any_kind():
    assert run_workflow("A", {"A": lambda input: input}, input=[1, "two"]) == [1, "two"]
    assert run_workflow("A", {"A": lambda input: input}, input=7) == 7


# -- failure ---------------------------------------------------------------------------------------
def test_flow_failed_carries_task_node_input_error_and_the_cause():
    raised = ValueError("bad banana")
    flow = compile_flow("load → peel → eat")

    def load(input):
        return {"fruit": "banana"}

    def peel(input):
        raise raised

    def eat(input):
        raise AssertionError("must not run")

    with pytest.raises(FlowFailed) as caught:
        run_workflow(flow, locals())
    failure = caught.value
    assert failure.task == "peel"
    assert failure.node == node_of(flow, "peel").id
    assert failure.input == {"fruit": "banana"}
    assert "bad banana" in failure.error
    assert failure.__cause__ is raised
    assert "peel" in str(failure) and "bad banana" in str(failure)


def test_flow_failed_in_an_iteration_names_the_items_input():
    def check(item):
        if item["id"] == 2:
            raise RuntimeError("item two is broken")
        return item

    with pytest.raises(FlowFailed) as caught:
        run_workflow('<[{"id": 1}, {"id": 2}, {"id": 3}]> → * check', locals())
    assert caught.value.task == "check"
    assert caught.value.input == {"id": 2}
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_flow_failed_with_concurrency_carries_the_cause():
    raised = KeyError("k")

    def A(input):
        raise raised

    def B(input):
        return {}

    with pytest.raises(FlowFailed) as caught:
        run_workflow("A\nB", locals(), concurrency=2)
    assert caught.value.task == "A"
    assert caught.value.__cause__ is raised


def test_after_a_failure_nothing_new_starts_and_running_tasks_finish():
    """§9.5 with two tasks at once: F fails while S runs. S finishes; S's successor T
    and the waiting U never start."""
    flow = compile_flow("{ F  S → T  U }")
    both_running = threading.Barrier(2, timeout=5)
    failure_handled = threading.Event()
    ran = []

    def F(input):
        ran.append("F")
        both_running.wait()
        raise RuntimeError("F broke")

    def S(input):
        ran.append("S")
        both_running.wait()
        assert failure_handled.wait(5), "the failure of F was never handled"
        ran.append("S finished")
        return {"s": 1}

    def T(input):
        ran.append("T")

    def U(input):
        ran.append("U")

    def on_event(kind, start, info):
        if kind == "fail":
            failure_handled.set()

    run = LocalRun(flow, locals(), concurrency=2, on_event=on_event)
    state = run.run()
    assert state.status == "failed"
    assert state.failure["name"] == "F"
    assert "S finished" in ran
    statuses = state.node_statuses()
    assert statuses[node_of(flow, "S").id] == "done"
    assert "T" not in ran
    assert "U" not in ran, "U started after F had failed"


def test_after_a_failure_the_sequential_runner_starts_nothing_new():
    ran = []

    def F(input):
        ran.append("F")
        raise RuntimeError("F broke")

    def S(input):
        ran.append("S")

    def U(input):
        ran.append("U")

    with pytest.raises(FlowFailed):
        run_workflow("{ F  S  U }", locals())
    assert ran == ["F"]


# -- concurrency -------------------------------------------------------------------------------------
def test_concurrency_runs_ready_tasks_at_the_same_time():
    both = threading.Barrier(2, timeout=5)

    def fan(input):
        return {}

    def left(input):
        both.wait()  # raises BrokenBarrierError unless right is running too
        return {"left": True}

    def right(input):
        both.wait()
        return {"right": True}

    assert run_workflow("fan → { left  right }", locals(), concurrency=2) == [{"left": True}, {"right": True}]
    assert not both.broken


def test_concurrency_three_runs_three_at_once():
    three = threading.Barrier(3, timeout=5)

    def meet(input):
        three.wait()
        return input

    assert run_workflow("meet\nmeet\nmeet", {"meet": meet}, input={"x": 1}, concurrency=3) == [
        {"x": 1},
        {"x": 1},
        {"x": 1},
    ]


def test_default_concurrency_runs_one_task_at_a_time():
    lock = threading.Lock()
    active = [0]
    most = [0]

    def work(input):
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        threading.Event().wait(0.01)
        with lock:
            active[0] -= 1

    run_workflow("{ work  work  work } → work", {"work": work})
    assert most[0] == 1


def test_concurrent_output_is_in_source_order_whatever_finishes_first():
    fast_done = threading.Event()

    def slow(input):
        assert fast_done.wait(5)
        return {"slow": 1}

    def fast(input):
        fast_done.set()
        return {"fast": 2}

    assert run_workflow("slow\nfast", locals(), concurrency=2) == [{"slow": 1}, {"fast": 2}]


def test_concurrency_runs_iterations_in_parallel():
    both = threading.Barrier(2, timeout=5)

    def item(input):
        both.wait()
        return input * 10

    assert run_workflow("<[1, 2]> → * item", locals(), concurrency=2) == [10, 20]


def test_concurrency_below_one_is_refused():
    with pytest.raises(ValueError):
        run_workflow("A", {"A": lambda input: None}, concurrency=0)


# -- the run limit --------------------------------------------------------------------------------------
def test_limit_caps_the_runs_of_a_node_in_a_cycle():
    counts = {"X": 0, "Y": 0}

    def X(input):
        counts["X"] += 1

    def Y(input):
        counts["Y"] += 1

    with pytest.raises(FlowFailed) as caught:
        run_workflow(":p X → Y → :p", locals(), limit=3)
    assert counts == {"X": 3, "Y": 3}
    assert caught.value.task == "X"
    assert "3" in caught.value.error and "limit" in caught.value.error


def test_default_limit_is_engine_default_limit():
    counts = {"X": 0}

    def X(input):
        counts["X"] += 1

    with pytest.raises(FlowFailed) as caught:
        run_workflow(":p X → :p", locals())
    assert counts["X"] == DEFAULT_LIMIT
    assert str(DEFAULT_LIMIT) in caught.value.error
    assert "limit" in caught.value.error


def test_limit_does_not_affect_a_flow_without_cycles():
    assert run_workflow("A → A → A", {"A": lambda input: input + 1}, input=0, limit=1) == 3


# -- LocalRun ------------------------------------------------------------------------------------------------
def test_local_run_reports_events_for_each_task():
    events = []
    run = LocalRun(
        compile_flow("A → B"),
        {"A": lambda i: {"a": 1}, "B": lambda i: i},
        on_event=lambda kind, start, info: events.append((kind, start.node)),
    )
    state = run.run()
    assert state.status == "finished" and state.output == {"a": 1}
    assert events == [("start", 1), ("end", 1), ("start", 2), ("end", 2)]


def test_local_run_calls_on_step_after_each_step():
    steps = []
    run = LocalRun(
        compile_flow("A → B"),
        {"A": lambda i: None, "B": lambda i: None},
        on_step=lambda state: steps.append(state.status),
    )
    run.run()
    assert len(steps) >= 3  # the start, and after each of the two tasks
    assert steps[-1] == "finished"


def test_a_task_changing_its_input_changes_neither_the_flow_nor_the_next_run():
    def grow(input, **params):
        input["n"] = input.get("n", 0) + 1
        params.setdefault("seen", []).append(1)
        return input

    flow = compile_flow('<{"x": 1}> → B (- {seen: []} -)')
    assert run_workflow(flow, {"B": grow}) == {"x": 1, "n": 1}
    assert run_workflow(flow, {"B": grow}) == {"x": 1, "n": 1}
    assert flow.nodes[1].value == {"x": 1} and flow.nodes[2].parameters == {"seen": []}


def test_timeouts_count_from_when_each_attempt_starts_even_with_many_at_once():
    import time as clock

    def work(input):
        clock.sleep(0.3)
        return {"i": input}

    text = "@flow f (- {timeout: 2} -)\n<[0,1,2,3,4,5,6,7,8,9,10,11]> → * work"
    assert run_workflow(text, {"work": work}, concurrency=12) == [{"i": i} for i in range(12)]


def test_a_resumed_run_reports_its_own_failure():
    errors = iter(["first error", "second error"])

    def B(input):
        raise RuntimeError(next(errors))

    run = LocalRun(compile_flow("A → B"), {"A": lambda i: {}, "B": B})
    state = run.run()
    assert "first error" in state.failure["error"]
    state = LocalRun(compile_flow("A → B"), {"A": lambda i: {}, "B": B}, state=state).run()
    assert len(state.failures) == 1 and "second error" in state.failure["error"]


# -- the flow's parallelism ----------------------------------------------------------------------
@pytest.mark.parametrize("parallelism, concurrency, most", [(1, 4, 1), (2, 4, 2), (8, 2, 2)])
def test_the_flow_parallelism_caps_the_concurrency(parallelism, concurrency, most):
    lock = threading.Lock()
    active, seen = [0], [0]

    def work(input):
        with lock:
            active[0] += 1
            seen[0] = max(seen[0], active[0])
        threading.Event().wait(0.05)
        with lock:
            active[0] -= 1

    run_workflow(
        f"@flow f (- {{parallelism: {parallelism}}} -)\n{{ work work work work work }}",
        {"work": work},
        concurrency=concurrency,
    )
    assert seen[0] == most


def test_a_bad_parallelism_is_refused_before_anything_runs():
    ran = []
    with pytest.raises(
        ValueError, match="^parallelism in @flow parameters must be a whole number ≥ 1, not 0$"
    ):
        run_workflow("@flow f (- {parallelism: 0} -)\nA", {"A": ran.append}, concurrency=2)
    assert ran == []
