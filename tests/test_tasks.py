"""Python tasks: ``@task`` registration, how a task is called, what it may return,
and unknown task names (tasks.py, through run_workflow)."""

from __future__ import annotations

import math

import pytest

import littleflow
from littleflow import FlowFailed, Registry, UnknownTasks, run_workflow, task
from littleflow.tasks import TaskError, collect, json_output

pytestmark = pytest.mark.usefixtures("fresh_registry")


# -- registration ------------------------------------------------------------------------
def test_task_is_exported_from_the_package():
    assert littleflow.task is task


def test_bare_decorator_registers_under_the_function_name_and_keeps_the_function():
    @task
    def shout(input):
        return {"said": input["word"].upper()}

    assert shout({"word": "hi"}) == {"said": "HI"}  # still a plain function
    assert run_workflow("shout", input={"word": "hey"}) == {"said": "HEY"}


def test_decorator_with_a_name_registers_under_that_name():
    @task("my:peel-banana")
    def peel(input):
        return {"peeled": True}

    assert run_workflow("my:peel-banana") == {"peeled": True}
    with pytest.raises(UnknownTasks):
        run_workflow("peel")


def test_decorator_with_options_registers_with_its_options():
    calls = []

    @task(retries=3, timeout=30)
    def fetch(input):
        calls.append(1)
        if len(calls) <= 3:  # fails three times: the fourth attempt (third retry) succeeds
            raise ConnectionError("try again")
        return {"fetched": len(calls)}

    # the flow only shortens the wait between attempts; retries and timeout are the task's own
    assert run_workflow("@flow f (- {tasks: {fetch: {backoff: 0.01}}} -)\nfetch") == {"fetched": 4}


def test_decorator_with_name_and_options():
    calls = []

    @task("net:get", retries=1, backoff=0.01)
    def get(input):
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("try again")
        return "got"

    assert run_workflow("net:get") == "got"
    assert len(calls) == 2


def test_registered_tasks_are_found_next_to_a_mapping():
    @task
    def first(input):
        return {"a": 1}

    def second(input):
        return {**input, "b": 2}

    assert run_workflow("first → second", {"second": second}) == {"a": 1, "b": 2}


def test_a_registry_may_be_passed_as_tasks():
    registry = Registry()

    @registry.task
    def one(input):
        return 1

    @registry.task("two:x")
    def two(input):
        return input + 1

    assert "one" in registry and "two:x" in registry
    assert registry.names() == ["one", "two:x"]
    assert run_workflow("one → two:x", registry) == 2
    with pytest.raises(UnknownTasks):  # a private registry is not the global one
        run_workflow("one")


def test_a_list_of_mappings_and_registries():
    registry = Registry()
    registry.add("B", lambda input: input + ["B"])
    assert run_workflow(
        "A → B → C", [{"A": lambda input: ["A"]}, registry, {"C": lambda input: input + ["C"]}]
    ) == ["A", "B", "C"]


def test_locals_works_as_tasks_and_ignores_what_is_not_a_task():
    class NotATask:  # a class is callable but is not a task
        pass

    def A(input):
        return {"ok": True}

    value = 3
    assert run_workflow("A", locals()) == {"ok": True}
    with pytest.raises(UnknownTasks):
        run_workflow("NotATask", locals())


def test_an_explicit_mapping_wins_over_the_global_registry():
    @task("pick")
    def registered(input):
        return "registered"

    assert run_workflow("pick", {"pick": lambda input: "explicit"}) == "explicit"


# -- how a task is called ---------------------------------------------------------------------
def recorder():
    calls = []

    def record(*args, **kwargs):
        calls.append((args, kwargs))

    return calls, record


def test_object_parameters_are_keyword_arguments():
    got = {}

    def resize(input, width, height=0):
        got.update(input=input, width=width, height=height)

    run_workflow("resize (- {width: 640, height: 480} -)", locals(), input={"img": 1})
    assert got == {"input": {"img": 1}, "width": 640, "height": 480}


def test_other_parameter_values_are_the_second_argument():
    calls, record = recorder()
    run_workflow("A ([1, 2]) → A (- 5 -) → A (- text -) → A (- true -)", {"A": record})
    assert [args[1] for args, _ in calls] == [[1, 2], 5, "text", True]
    assert all(kwargs == {} for _, kwargs in calls)


def test_no_parameters_means_input_only():
    calls, record = recorder()
    run_workflow("A → A()", {"A": record}, input={"x": 1})
    assert calls == [(({"x": 1},), {}), (({},), {})]


def test_empty_object_parameters_give_no_keywords():
    calls, record = recorder()
    run_workflow("A ({})", {"A": record})
    assert calls == [(({},), {})]


def test_a_function_that_takes_no_argument_is_called_with_none():
    calls = []

    def ping():
        calls.append("ping")
        return {"pong": True}

    assert run_workflow("ping", locals(), input={"ignored": 1}) == {"pong": True}
    assert calls == ["ping"]


def test_a_function_that_takes_no_argument_is_called_with_none_even_with_parameters():
    calls = []

    def ping():
        calls.append("ping")
        return "pong"

    assert run_workflow("ping (- {x: 1} -) → ping ([1]) → ping (- 3 -)", locals()) == "pong"
    assert calls == ["ping", "ping", "ping"]


def test_lambdas_and_callable_objects_are_tasks():
    class Adder:
        def __init__(self, n):
            self.n = n

        def __call__(self, input):
            return input + self.n

    assert run_workflow("start → add", {"start": lambda input: 1, "add": Adder(41)}) == 42


def test_unhashable_callable_objects_are_tasks():
    from dataclasses import dataclass

    @dataclass
    class Scale:  # a dataclass with eq=True is unhashable
        factor: int

        def __call__(self, input):
            return input * self.factor

    assert run_workflow("double → triple", {"double": Scale(2), "triple": Scale(3)}, input=1) == 6


def test_async_tasks_are_awaited():
    import asyncio

    async def fetch(input, delay=0):
        await asyncio.sleep(delay)
        return {"fetched": input["id"]}

    async def enrich(input):
        return {**input, "rich": True}

    assert run_workflow("fetch (- {delay: 0.01} -) → enrich", locals(), input={"id": 7}) == {
        "fetched": 7,
        "rich": True,
    }


def test_an_async_task_that_raises_fails_the_flow():
    async def broken(input):
        raise KeyError("nope")

    with pytest.raises(FlowFailed) as caught:
        run_workflow("broken", locals())
    assert isinstance(caught.value.__cause__, KeyError)


# -- what a task may return --------------------------------------------------------------------
def test_a_task_returning_nothing_outputs_an_empty_object():
    got = []

    def nothing(input):
        pass

    def after(input):
        got.append(input)
        return input

    assert run_workflow("nothing", locals()) == {}
    run_workflow("nothing → after", locals(), input={"x": 1})
    assert got == [{}]


def test_json_like_values_pass_through():
    def make(input):
        return {"s": "x", "i": 1, "f": 1.5, "b": False, "n": None, "l": [1, {"t": [1, 2]}], "u": "ünï"}

    out = run_workflow("make", locals())
    assert out == {"s": "x", "i": 1, "f": 1.5, "b": False, "n": None, "l": [1, {"t": [1, 2]}], "u": "ünï"}
    assert run_workflow("text", {"text": lambda input: "plain"}) == "plain"
    assert run_workflow("number", {"number": lambda input: 2.5}) == 2.5


@pytest.mark.parametrize(
    "value,says",
    [
        ({1, 2}, "set"),
        (object(), "object"),
        (float("nan"), "nan"),
        (float("inf"), "inf"),
        ({"a": {1}}, "set"),
        ([1, object()], "object"),
        ({"deep": [{"x": float("nan")}]}, "nan"),
        ({1: "non-text key"}, "key"),
    ],
    ids=["set", "object", "nan", "inf", "nested-set", "object-in-list", "nested-nan", "int-key"],
)
def test_a_value_that_is_not_json_like_fails_the_task_clearly(value, says):
    after_ran = []

    def bad(input):
        return value

    def after(input):
        after_ran.append(input)

    with pytest.raises(FlowFailed) as caught:
        run_workflow("bad → after", locals())
    failure = caught.value
    assert failure.task == "bad"
    assert "bad" in failure.error and says in failure.error
    assert "JSON" in failure.error or "not text" in failure.error
    assert isinstance(failure.__cause__, TaskError)
    assert after_ran == []


def test_json_output_function():
    assert json_output(None, "t") == {}
    assert json_output((1, "a"), "t") == [1, "a"]
    assert json_output({"a": [1.0, None]}, "t") == {"a": [1.0, None]}
    with pytest.raises(TaskError, match="not JSON-like"):
        json_output({1, 2}, "t")
    with pytest.raises(TaskError, match="JSON number"):
        json_output(math.nan, "t")


# -- unknown tasks ------------------------------------------------------------------------------
def test_unknown_task_is_reported_before_anything_runs_with_its_line_and_column():
    ran = []

    def A(input):
        ran.append("A")

    with pytest.raises(UnknownTasks) as caught:
        run_workflow("A →\n  missing → A", locals())
    message = str(caught.value)
    assert "missing" in message
    assert "2:3" in message
    assert ran == []


def test_every_unknown_task_is_named():
    with pytest.raises(UnknownTasks) as caught:
        run_workflow("first → { second  third }", {"first": lambda input: None})
    message = str(caught.value)
    assert "second (1:11)" in message and "third (1:19)" in message
    assert isinstance(caught.value, LookupError)


def test_collect_combines_sources():
    registry = Registry()
    registry.add("r", lambda input: "r")
    combined = collect([{"m": lambda input: "m"}, registry])
    assert {"m", "r"} <= set(combined.names())
    assert collect(None).names() == []


@pytest.mark.parametrize("value", [10**5000, {"n": 10**5000}, [1, [10**5000]]], ids=["top", "nested", "deep"])
def test_integers_too_long_for_json_fail_the_task(value):
    with pytest.raises(TaskError, match="too long"):
        json_output(value, "big")


@pytest.mark.parametrize("value", [float("nan"), {"x": float("inf")}, [1.5, float("-inf")]])
def test_non_finite_numbers_fail_the_task(value):
    with pytest.raises(TaskError, match="not a JSON number"):
        json_output(value, "odd")
