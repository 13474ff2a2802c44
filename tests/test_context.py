"""The seed API (Context, Runner): a context holds a run and a queue of ended-node
vectors; a runner starts it and applies each vector (LANGUAGE.md §9.1–§9.2, §9.5)."""

from __future__ import annotations

import json

import pytest
from drivers import acyclic_flows
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from littleflow import Compiler, Context, Ending, FlowContext, Parser, Runner, Start, compile_flow
from littleflow.engine import DEFAULT_LIMIT

SEED = "A → { B → C  D } → E"


def drain(context: Context, runner: Runner) -> None:
    while not context.ending.empty():
        runner.next(context, context.ending.get())


class Recording(Context):
    """Ends each task at once with the output of ``FUNCTIONS[name]`` (input passed
    through for other names), or its error; records what started."""

    FUNCTIONS: dict = {}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.log: list[Start] = []

    def name(self, task: Start) -> str:
        return self.flow.nodes[task.node].label

    def start(self, task: Start) -> None:
        self.log.append(task)
        function = self.FUNCTIONS.get(self.name(task))
        if function is None:
            super().start(task)
            return
        try:
            output = function(task.input)
        except Exception as error:  # noqa: BLE001 - a task failure
            self.end(task, error=f"{type(error).__name__}: {error}")
        else:
            self.end(task, output)

    @property
    def order(self) -> list[str]:
        return [self.name(task) for task in self.log]


class Fruit(Recording):
    FUNCTIONS = {
        "A": lambda _: [{"fruit": "banana"}, {"fruit": "kiwi"}],
        "B": lambda x: {"peeled": x.get("fruit", "?")} if isinstance(x, dict) else {"peeled": "?"},
        "C": lambda x: {"eaten": x},
        "D": lambda x: {"animal": "monkey"},
    }


class Deferred(Context):
    """Collects the tasks it is asked to start; the test ends them when it likes."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.tasks: list[Start] = []

    def start(self, task: Start) -> None:
        self.tasks.append(task)


# -- the seed API -------------------------------------------------------------------------


def test_the_seed_example_runs_to_the_end():
    model = Parser().parse("A → { B → C  D } → E")
    flow = Compiler().compile(model)
    context = Context(flow)
    runner = Runner()
    runner.start(context)
    while not context.ending.empty():
        runner.next(context, context.ending.get())
    assert context.state.status == "finished"
    assert context.output == {} and context.state.output == {}
    assert context.state.running == {}


def test_the_seed_example_runs_in_first_in_first_out_order():
    context = Recording(compile_flow(SEED))
    runner = Runner()
    runner.start(context)
    drain(context, runner)
    assert context.order == ["A", "B", "D", "C", "E"]


def test_flow_context_is_the_context():
    assert FlowContext is Context


def test_by_default_a_task_passes_its_input_through():
    context = Recording(compile_flow(SEED))
    runner = Runner()
    runner.start(context, {"k": 1})
    drain(context, runner)
    assert [task.input for task in context.log] == [{"k": 1}] * 4 + [[{"k": 1}, {"k": 1}]]
    assert context.output == [{"k": 1}, {"k": 1}]


def test_the_ending_queue_holds_vectors_of_endings():
    context = Context(compile_flow("A → B"))
    Runner().start(context)
    vector = context.ending.get()
    assert isinstance(vector, list) and len(vector) == 1
    (ending,) = vector
    assert isinstance(ending, Ending)
    assert ending.key == ("", 1, -1) and ending.output == {} and ending.error is None
    assert context.ending.empty()


def test_a_context_runs_a_flow_with_outputs():
    context = Fruit(compile_flow("A → * B → > C\nD"))
    runner = Runner()
    runner.start(context)
    drain(context, runner)
    assert context.state.status == "finished"
    assert context.order == ["A", "D", "B", "B", "C"]
    # `> C` merges B's two results, the later one winning.
    assert [task.input for task in context.log][4] == {"peeled": "kiwi"}
    assert context.output == [{"eaten": {"peeled": "kiwi"}}, {"animal": "monkey"}]


def test_an_ended_vector_of_several_tasks_is_applied_at_once():
    context = Deferred(compile_flow(SEED))
    runner = Runner()
    runner.start(context)
    (a,) = context.tasks
    runner.next(context, [Ending(a.key, {"a": 1})])
    b, d = context.tasks[1:]
    assert [context.flow.nodes[t.node].name for t in (b, d)] == ["B", "D"]
    # B and D end together: one vector E (§9.1).
    runner.next(context, [Ending(b.key, {"b": 1}), Ending(d.key, {"d": 1})])
    (c,) = context.tasks[3:]
    assert c.input == {"b": 1}
    runner.next(context, [Ending(c.key, {"c": 1})])
    (e,) = context.tasks[4:]
    assert e.input == [{"c": 1}, {"d": 1}]
    runner.next(context, [Ending(e.key, "done")])
    assert context.state.status == "finished" and context.output == "done"


def test_a_context_subclass_ends_its_tasks_later_and_out_of_order():
    context = Deferred(compile_flow("A → :m C;\nB → :m;\nD → * E"))
    runner = Runner()
    runner.start(context, {"n": 1})
    outputs = {"A": {"a": 1}, "B": {"b": 2}, "D": [1, 2, 3]}
    done = []
    while context.tasks:
        task = context.tasks.pop()  # the newest first
        name = context.flow.nodes[task.node].name
        done.append((name, task.item))
        context.end(task, outputs.get(name, task.input))
        runner.next(context, context.ending.get())
    assert done == [("D", -1), ("E", 2), ("E", 1), ("E", 0), ("B", -1), ("A", -1), ("C", -1)]
    assert context.state.status == "finished"
    assert context.output == [[{"a": 1}, {"b": 2}], [1, 2, 3]]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(acyclic_flows(decorated=True), st.data())
def test_any_end_order_gives_the_same_output(text, data):
    flow = compile_flow(text)

    def output(context, task):
        return {context.flow.nodes[task.node].label: len(json.dumps(task.input, sort_keys=True))}

    first = Context(flow, limit=3)
    first.start = lambda task: first.end(task, output(first, task))
    runner = Runner()
    runner.start(first)
    drain(first, runner)
    context = Deferred(flow, limit=3)
    runner.start(context)
    while context.tasks:
        task = context.tasks.pop(data.draw(st.integers(0, len(context.tasks) - 1)))
        context.end(task, output(context, task))
        runner.next(context, context.ending.get())
    assert (context.state.status, context.output) == (first.state.status, first.output)


def test_end_accepts_a_start_or_its_key():
    context = Deferred(compile_flow("A\nB\nC"))
    runner = Runner()
    runner.start(context)
    a, b, c = context.tasks
    context.end(a, 1)
    context.end(b.key, 2)
    context.end(list(c.key), 3)  # a key as it comes back from JSON
    drain(context, runner)
    assert context.state.status == "finished" and context.output == [1, 2, 3]


# -- failure ------------------------------------------------------------------------------------


class Broken(Recording):
    FUNCTIONS = {"B": lambda x: 1 / 0}


def test_an_ending_with_an_error_fails_the_flow():
    context = Broken(compile_flow(SEED))
    runner = Runner()
    runner.start(context, {"k": 1})
    drain(context, runner)
    assert context.state.status == "failed"
    assert context.order == ["A", "B", "D"]  # D was running; C and E never start
    failure = context.state.failure
    assert failure["name"] == "B" and failure["input"] == {"k": 1}
    assert failure["node"] == context.flow.nodes[[t.node for t in context.log][1]].id
    assert failure["error"] == "ZeroDivisionError: division by zero"


def test_a_failed_context_resumes_and_finishes():
    context = Broken(compile_flow(SEED))
    runner = Runner()
    runner.start(context)
    drain(context, runner)
    assert context.state.status == "failed"
    context.FUNCTIONS = {"B": lambda x: {"fixed": True}}
    runner.resume(context)
    drain(context, runner)
    assert context.state.status == "finished"
    assert context.order == ["A", "B", "D", "B", "C", "E"]
    assert context.output == {"fixed": True}  # D passed {} through: dropped at END


def test_a_context_applies_the_run_limit():
    context = Recording(compile_flow(":poll wait:delay(- duration: 60 -) → check → :poll"), limit=7)
    runner = Runner()
    runner.start(context)
    drain(context, runner)
    assert context.state.status == "failed"
    assert context.order == ["wait:delay", "check"] * 7
    assert "7" in context.state.failure["error"] and "limit" in context.state.failure["error"]
    assert Context(compile_flow("A")).engine.limit == DEFAULT_LIMIT


# -- saving and restoring --------------------------------------------------------------------------

SAVED = [
    SEED,
    "A → * B → > C\nD",
    "A → * { B → C } → D",
    "D → :m > C;\nB → :m;",
    "A → ? `$[?(@.fruit == 'banana')]` B → C",
]


def steps_of(context_type, text: str, input=None):
    """The context after each step of the seed loop."""
    context = context_type(compile_flow(text))
    runner = Runner()
    runner.start(context, input)
    yield context
    while not context.ending.empty():
        runner.next(context, context.ending.get())
        yield context


def finish(context: Context) -> Context:
    runner = Runner()
    drain(context, runner)
    return context


@pytest.mark.parametrize("context_type", [Context, Fruit])
@pytest.mark.parametrize("text", SAVED)
def test_a_context_saved_at_any_step_continues_to_the_same_result(context_type, text):
    whole = finish(next(steps_of(context_type, text, {"in": 1})))
    assert whole.state.status == "finished"
    count = 0
    for context in steps_of(context_type, text, {"in": 1}):
        saved = json.loads(json.dumps(context.to_json()))
        again = context_type.from_json(saved)
        assert again.to_json() == saved
        Runner().resume(again)
        finish(again)
        assert (again.state.status, again.output) == (whole.state.status, whole.output), count
        count += 1
    assert count >= 3


def test_dumps_and_loads():
    context = Fruit(compile_flow(SAVED[2]))
    runner = Runner()
    runner.start(context)
    runner.next(context, context.ending.get())
    text = context.dumps()
    assert json.loads(text) == context.to_json()
    again = Fruit.loads(text)
    assert type(again) is Fruit and again.flow == context.flow
    assert again.state.to_json() == context.state.to_json()
    runner.resume(again)
    finish(again)
    assert again.state.status == "finished"
    assert again.output == finish(context).output


def test_from_json_passes_options_on():
    context = Context(compile_flow("A"))
    again = Context.from_json(json.loads(context.dumps()), limit=3)
    assert again.engine.limit == 3


def test_a_context_over_an_existing_state():
    first = Context(compile_flow(SEED))
    runner = Runner()
    runner.start(first)
    runner.next(first, first.ending.get())
    second = Context(first.flow, first.state)
    assert second.state is first.state
    runner.resume(second)
    finish(second)
    assert second.state.status == "finished"
