"""Conditionals (``if … then … elif … else``) and loops (``repeat … until``, ``while … do``),
LANGUAGE.md §9.7–§9.8: parsing, compiling, the engine, local runs, saving and resuming,
pictures; and random flows of them checked against a direct interpretation."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from typing import Any

import pytest
from drivers import Driver
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from littleflow import Flow, FlowError, FlowFailed, compile_flow, run_workflow
from littleflow.diagram import dot, mermaid, svg
from littleflow.local import LocalRun
from littleflow.state import State
from littleflow.statefile import StateFile


def fails(text: str) -> FlowError:
    with pytest.raises(FlowError) as caught:
        compile_flow(text)
    return caught.value


def counting(input: Any) -> dict:
    return {"n": input.get("n", 0) + 1}


# -- parsing and compiling ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, where, says",
    [
        ("A → if `$[?@.x == 1]` B", (1, 23), "expected 'then'"),
        ("A → repeat B → C", (1, 14), "expected 'until'"),
        ("while `c` B", (1, 11), "expected 'do'"),
        ("A → if then B", (1, 8), "condition in backquotes"),
        ("A → else → B", (1, 5), "'else': it is a reserved word"),
        ("A → if `$[?@.a]` then B else C elif `$[?@.b]` then D", (1, 32), "'elif' after 'else'"),
        ("A → do", (1, 5), "reserved word"),
        ("@task until (- a: 1 -)", (1, 7), "'until' is a reserved word"),
        ("@task X = while", (1, 11), "reserved word"),
        ("A → if `c` then B :x else C", (1, 19), "label"),
        ("A → if `c` then :x B", (1, 17), "label"),
        ("repeat B :x until `c`", (1, 10), "label"),
        ("A → if `c` then if `d` then B", (1, 17), "must be written in braces"),
        ("A → if `c` then ? `d` B", (1, 17), "guard"),
        ("if `c` then <- {a: 1} ->", (1, 13), "not a literal"),
        ("if `c` then B else", (1, 19), "after 'else'"),
        ("A → if `$[?@.x ==` then B", (1, 8), "invalid condition `$[?@.x ==`"),
        ("repeat B until `$[?@.x =!= 2]`", (1, 16), "invalid condition"),
        ("A → if `c", (1, 8), "unclosed condition"),
        ("if (- a: 1 -) `c` then B", (1, 4), "takes no parameters"),
    ],
)
def test_misuse_is_a_positioned_error(text, where, says):
    error = fails(text)
    assert (error.line, error.column) == where
    assert says in error.message
    assert "\n" not in str(error)


def test_words_that_contain_a_reserved_word_are_names():
    flow = compile_flow("iffy → do-it → x:if → thenceforth → repeat_ → until2")
    assert [n.name for n in flow.nodes if n.kind == "task"] == [
        "iffy",
        "do-it",
        "x:if",
        "thenceforth",
        "repeat_",
        "until2",
    ]


def test_a_conditional_compiles_to_a_choice_its_branches_and_its_end():
    flow = compile_flow("A → if `$[?@.s == 0]` then B elif `$[?@.s == 1]` then { C → D } else E → F")
    kinds = [(n.kind, n.label, n.condition) for n in flow.nodes]
    assert kinds == [
        ("start", "START", None),
        ("task", "A", None),
        ("choice", "if", None),
        ("task", "B", "$[?@.s == 0]"),
        ("subflow-start", "subflow-start", "$[?@.s == 1]"),
        ("task", "C", None),
        ("task", "D", None),
        ("subflow-end", "subflow-end", None),
        ("task", "E", None),
        ("choice-end", "end if", None),
        ("task", "F", None),
        ("end", "END", None),
    ]
    assert (flow.nodes[2].pair, flow.nodes[9].pair) == (9, 2)
    assert list(flow.successors(2)) == [3, 4, 8]  # no edge to the end: there is an else
    assert list(flow.predecessors(9)) == [3, 7, 8]
    assert flow.thresholds()[9] == 1  # the end waits for the one branch that runs


def test_without_else_the_choice_has_an_edge_to_its_end():
    flow = compile_flow("if `$[?@.a]` then B")
    assert list(flow.successors(1)) == [2, 3] and flow.nodes[3].kind == "choice-end"


@pytest.mark.parametrize(
    "text, kinds, edges",
    [
        (
            "repeat B until `$[?@.n > 1]`",
            ["start", "repeat", "task", "loop-end", "end"],
            [(0, 1), (1, 2), (2, 3), (3, 2), (3, 4)],
        ),
        (
            "while `$[?@.n < 1]` do B",
            ["start", "while", "task", "loop-end", "end"],
            [(0, 1), (1, 2), (1, 3), (2, 3), (3, 2), (3, 4)],
        ),
    ],
)
def test_a_loop_compiles_to_its_start_its_body_and_its_end(text, kinds, edges):
    flow = compile_flow(text)
    assert [n.kind for n in flow.nodes] == kinds
    assert list(flow.edges()) == edges
    assert flow.nodes[1].condition and flow.nodes[1].pair == 3 and flow.nodes[3].pair == 1
    assert list(flow.thresholds()) == [1] * 5


def test_json_carries_condition_only_where_set_and_round_trips():
    plain = compile_flow("A → B").to_json()
    assert all("condition" not in node for node in plain["nodes"])
    flow = compile_flow("A → * if `$[?@ > 1]` then B else C :o → repeat > D until `$[?@.d]` → :o2 E; :o → F")
    data = json.loads(flow.dumps())
    assert [node.get("condition") for node in data["nodes"] if "condition" in node] == [
        "$[?@ > 1]",
        "$[?@.d]",
    ]
    assert Flow.loads(flow.dumps()) == flow


def test_modifiers_and_labels_apply_to_the_whole_form():
    flow = compile_flow(
        "A :x → ? `$[?@.go == true]` * > if `$[?@.a]` then B :o;\n:x → :o2 repeat C until `$[?@.c]`\n"
        "D → :o2; :o → E"
    )
    choice = next(n for n in flow.nodes if n.kind == "choice")
    assert (choice.guard, choice.iterate, choice.merge) == ("$[?@.go == true]", True, True)
    end = flow.nodes[choice.pair]
    assert [flow.nodes[s].label for s in flow.successors(end.id)] == ["E", "END"]
    loop = next(n for n in flow.nodes if n.kind == "repeat")
    assert sorted(flow.nodes[p].label for p in flow.predecessors(loop.id)) == ["A", "D"]


def test_nesting_is_limited():
    text = "A → " + "if `$[?@.a]` then { " * 60 + "B" + " }" * 60
    assert "nested more than 100 deep" in fails(text).message


# -- running --------------------------------------------------------------------------------


def test_only_the_chosen_branch_runs_and_the_others_are_recorded_skipped():
    driver = Driver(
        "A → if `$[?@.s == 0]` then B elif `$[?@.s == 1]` then { C → D } else E → F", {"A": {"s": 1}}
    )
    driver.run()
    assert driver.order == ["A", "C", "D", "F"]
    statuses = driver.state.node_statuses()
    assert statuses[3] == "skipped" and statuses[8] == "skipped"  # B and E; C's subflow ran
    assert statuses[4] == "done"


def test_a_loop_counts_rounds_for_the_run_limit():
    driver = Driver("repeat B until `$[?@.never]`", {"B": {}}, limit=7)
    driver.run()
    assert driver.state.status == "failed"
    assert "ran more than 7 times" in driver.state.failure["error"]
    assert driver.order == ["B"] * 7
    with pytest.raises(FlowFailed, match="run limit"):
        run_workflow("while `$[?@.x]` do B", {"B": lambda input: input}, {"x": 1}, limit=20)


def test_the_run_limit_of_a_loop_whose_body_is_a_subflow_names_the_subflow_not_a_task():
    with pytest.raises(FlowFailed) as caught:
        run_workflow(
            "repeat { B → C } until `$[?@.never]`", {"B": lambda i: i, "C": lambda i: i}, {}, limit=5
        )
    assert str(caught.value).startswith("the subflow at 1:8 failed: ran more than 5 times")


def test_an_empty_iteration_of_a_form_gives_an_empty_list():
    assert run_workflow("<[]> → * repeat B until `$[?@.n > 1]`", {"B": counting}) == []


def test_a_guard_before_a_loop_skips_it_whole():
    assert run_workflow(
        "? `$[?@.go == true]` repeat B until `$[?@.n > 1]`", {"B": counting}, {"go": False}
    ) == {"go": False}


def test_loops_inside_iteration_each_run_their_own_rounds():
    output = run_workflow('<[{"n": 0}, {"n": 5}, {"n": 2}]> → * while `$[?@.n < 3]` do B', {"B": counting})
    assert output == [{"n": 3}, {"n": 5}, {"n": 3}]


def test_a_loop_output_label_fans_out_once():
    tasks = {"B": counting, "C": lambda input: {"c": input}, "D": lambda input: {"d": input}}
    assert run_workflow("repeat B until `$[?@.n >= 3]` :o → C; :o → D", tasks) == [
        {"c": {"n": 3}},
        {"d": {"n": 3}},
    ]


def test_a_form_at_a_meet_feeds_it_once():
    tasks = {"A": lambda: {"a": 1}, "E": lambda input: input, "X": counting}
    for concurrency in (1, 3):
        output = run_workflow("A → :m E; repeat X until `$[?@.n >= 3]` → :m", tasks, concurrency=concurrency)
        assert output == [{"a": 1}, {"n": 3}]


def test_a_condition_over_its_budget_fails_the_step_and_resume_tests_it_again(monkeypatch):
    from littleflow import guard

    flow = compile_flow("A → if `$[?count(@..*) > 0]` then B else C")
    driver = Driver(flow, {"A": {"deep": list(range(10))}})
    monkeypatch.setattr(guard, "BUDGET", -1.0)
    driver.run()
    assert driver.state.status == "failed" and driver.state.failure["name"] == "if"
    monkeypatch.setattr(guard, "BUDGET", 1.0)
    driver.restore(keep_queue=False)
    driver.run()
    assert driver.state.status == "finished" and driver.order == ["A", "B"]


def test_resume_in_the_middle_of_a_loop_round_continues_that_round(tmp_path):
    text = "A → repeat { B → C } until `$[?@.n >= 3]` → D"
    flow = compile_flow(text)
    calls = Counter()
    stop_at = {"at": 5}

    def make(name):
        def function(input):
            calls[name] += 1
            if sum(calls.values()) == stop_at["at"]:
                raise KeyboardInterrupt  # the process stops in round 2, as C runs
            return counting(input) if name in "BC" else input

        return function

    tasks = {name: make(name) for name in "ABCD"}
    path = tmp_path / "run.state"
    with pytest.raises(KeyboardInterrupt):
        LocalRun(flow, tasks, journal=StateFile(path, flow)).run()
    state = StateFile(path, flow).load()
    assert state.status == "running"
    stop_at["at"] = -1
    done = LocalRun(flow, tasks, state=state, journal=StateFile(path, flow)).run()
    assert done.status == "finished" and done.output == {"n": 4}
    assert calls == {"A": 1, "B": 2, "C": 3, "D": 1}  # round 2 went on with C (once interrupted), not B


def test_resume_inside_a_branch_continues_in_that_branch():
    driver = Driver("A → if `$[?@.s == 1]` then { B → C } else D → E", {"A": {"s": 1}, "B": {"s": 2}}).begin()
    driver.step()  # A
    driver.step()  # B: its output would choose else, were the choice made again
    driver.restore(keep_queue=False)
    driver.run()
    assert driver.order == ["A", "B", "C", "E"]


# -- pictures --------------------------------------------------------------------------------


def test_mermaid_draws_choices_with_their_conditions_on_the_arrows():
    flow = compile_flow("A → if `$[?@.s == 0]` then B else C → repeat D until `$[?@.n > 2]`")
    text = mermaid(flow, status={1: "done", 2: "done", 3: "done", 4: "skipped"})
    assert "state if.2 <<choice>>" in text and "state endif.5 <<choice>>" in text
    assert "if.2 --> B.3:::done : #96;$[?@.s == 0]#96;" in text
    assert "if.2 --> C.4:::skipped : else" in text
    assert "loop.8 --> D.7 : until #96;$[?@.n #gt; 2]#96;" in text


def test_dot_and_svg_draw_diamonds_and_colour_an_untaken_branch_whole():
    flow = compile_flow("A → if `$[?@.s == 0]` then { B → C } else D")
    text = dot(flow)
    assert 'n2 [shape="diamond", label="", xlabel="if"' in text
    assert 'n2 -> n3 [label="`$[?@.s == 0]`"];' in text and 'n2 -> n7 [label="else"];' in text
    picture = svg(flow, status={1: "done", 2: "done", 3: "skipped", 7: "done"})
    for node in (3, 4, 5, 6):  # the whole braces of the branch not taken
        assert f'class="node kind-{flow.nodes[node].kind} status-skipped" data-node="{node}"' in picture
    assert 'class="node kind-choice status-done" data-node="2"><title>if' in picture
    assert '<path class="shape" d="M' in picture.split('data-node="2"')[1].split("</g>")[0]


# -- random flows against a direct interpretation ------------------------------------------


CONDITIONS = [
    ("$[?@.x == {k}]", lambda v, k: v.get("x") == k),
    ("$[?@.n > {k}]", lambda v, k: v.get("n", 0) > k),
    ("$[?@.x != {k}]", lambda v, k: v.get("x") != k),
]


def behave(name: str, value: Any) -> dict:
    """What task ``name`` outputs: a count of the tasks before it, and something to choose by."""
    n = value.get("n", 0) + 1
    return {"n": n, "x": (n * 7 + int(name[1:])) % 3}


@st.composite
def programs(draw):
    """(flow text, tree) of one statement of tasks, conditionals and loops; every loop body
    begins with a task, so every round counts up and every loop ends."""
    counter = itertools.count()

    def task():
        name = f"T{next(counter)}"
        return name, ("task", name)

    def condition():
        form, test = draw(st.sampled_from(CONDITIONS))
        k = draw(st.integers(0, 4))
        return form.format(k=k), (lambda v, test=test, k=k: test(v, k))

    def body(depth, first_task=False):
        if first_task or draw(st.booleans()):
            head, tree = task()
            rest = [step(depth + 1) for _ in range(draw(st.integers(0, 2)))] if depth < 2 else []
            if not rest and not first_task:
                return head, tree
            return "{ " + " → ".join([head] + [t for t, _ in rest]) + " }", (
                "chain",
                [tree] + [t for _, t in rest],
            )
        text, tree = step(depth + 1)
        return "{ " + text + " }", tree

    def step(depth):
        kind = draw(st.sampled_from(["task", "task", "if", "repeat", "while"] if depth < 3 else ["task"]))
        if kind == "task":
            return task()
        if kind == "if":
            parts, branches = [], []
            for i in range(draw(st.integers(1, 3))):
                text, test = condition()
                branch, tree = body(depth)
                parts.append(f"{'if' if i == 0 else 'elif'} `{text}` then {branch}")
                branches.append((test, tree))
            otherwise = None
            if draw(st.booleans()):
                branch, otherwise = body(depth)
                parts.append(f"else {branch}")
            return " ".join(parts), ("if", branches, otherwise)
        limit = draw(st.integers(1, 4))
        branch, tree = body(depth, first_task=True)
        if kind == "repeat":
            return f"repeat {branch} until `$[?@.n >= {limit}]`", ("repeat", tree, limit)
        return f"while `$[?@.n < {limit}]` do {branch}", ("while", tree, limit)

    steps = [step(0) for _ in range(draw(st.integers(1, 4)))]
    return " → ".join(text for text, _ in steps), ("chain", [tree for _, tree in steps])


def interpret(tree, value, ran):
    """The meaning of LANGUAGE.md §9.7–§9.8, written out directly."""
    kind = tree[0]
    if kind == "task":
        ran.append((tree[1], value))
        return behave(tree[1], value)
    if kind == "chain":
        for part in tree[1]:
            value = interpret(part, value, ran)
        return value
    if kind == "if":
        for test, branch in tree[1]:
            if test(value):
                return interpret(branch, value, ran)
        return value if tree[2] is None else interpret(tree[2], value, ran)
    if kind == "repeat":
        while True:
            value = interpret(tree[1], value, ran)
            if value.get("n", 0) >= tree[2]:
                return value
    while "n" in value and value["n"] < tree[2]:  # (a member that is not there compares false)
        value = interpret(tree[1], value, ran)
    return value


FORMS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FORMS
@given(programs())
def test_random_forms_run_what_their_conditions_choose(program):
    text, tree = program
    flow = compile_flow(text)
    ran = []
    expected = interpret(tree, {}, ran)
    driver = Driver(flow, default=lambda start: behave(flow.nodes[start.node].name, start.input))
    state = driver.run({})
    assert state.status == "finished"  # every run ends
    assert [(driver.name(s.node), s.input) for s in driver.ran] == ran  # only chosen branches ran
    assert state.output == expected


@FORMS
@given(programs(), st.integers(0, 60), st.booleans())
def test_random_forms_saved_and_resumed_at_any_step_give_the_same_output(program, at, keep_queue):
    text, tree = program
    flow = compile_flow(text)
    ran = []
    expected = interpret(tree, {}, ran)
    driver = Driver(flow, default=lambda start: behave(flow.nodes[start.node].name, start.input))
    driver.begin({})
    steps = 0
    while driver.queue:
        if steps == at:
            driver.restore(keep_queue=keep_queue)
        driver.step()
        steps += 1
    assert driver.state.status == "finished"
    assert driver.state.output == expected
    assert [driver.name(s.node) for s in driver.ran] == [name for name, _ in ran]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_random_forms_run_alike_locally_sequential_and_on_threads(program):
    text, tree = program
    expected = interpret(tree, {}, [])
    flow = compile_flow(text)
    tasks = {
        node.name: (lambda name: lambda input: behave(name, input))(node.name)
        for node in flow.nodes
        if node.kind == "task"
    }
    assert run_workflow(flow, tasks, {}) == expected
    assert run_workflow(flow, tasks, {}, concurrency=3) == expected


def test_state_of_a_loop_round_trips_through_json():
    driver = Driver("repeat { B → C } until `$[?@.n >= 3]`", default=lambda s: counting(s.input))
    driver.begin({})
    for _ in range(3):
        driver.step()
    data = json.loads(json.dumps(driver.state.to_json()))
    assert State.from_json(data).to_json() == driver.state.to_json()


def test_a_loop_inside_an_iterated_subflow_runs_per_item():
    output = run_workflow(
        '<[{"n": 0}, {"n": 4}]> → * { repeat B until `$[?@.n >= 3]` → C }',
        {"B": counting, "C": lambda input: {"c": input["n"]}},
    )
    assert output == [{"c": 3}, {"c": 5}]


def test_the_seed_api_runs_forms():
    from littleflow import Context, Runner

    flow = compile_flow("A → if `$[?@.go == true]` then { repeat B until `$[?@.n >= 2]` } else C")
    context = Context(flow)
    context.start = lambda task: context.end(task, {"go": True} if task.node == 1 else counting(task.input))
    runner = Runner()
    runner.start(context)
    while not context.ending.empty():
        runner.next(context, context.ending.get())
    assert context.state.status == "finished" and context.output == {"n": 2}


def test_doc_state_colours_the_branch_not_taken(tmp_path):
    from littleflow.statefile import read_any

    flow = compile_flow("A → if `$[?@.s == 0]` then { B → C } else D → E")
    path = tmp_path / "run.state"
    LocalRun(
        flow,
        {"A": lambda: {"s": 1}, "B": counting, "C": counting, "D": counting, "E": counting},
        journal=StateFile(path, flow),
    ).run()
    saved, state = read_any(str(path))
    picture = svg(saved, status=state.node_statuses())
    kinds = {node.id: node.kind for node in flow.nodes}
    for node in (3, 4, 5, 6):
        assert f'class="node kind-{kinds[node]} status-skipped" data-node="{node}"' in picture
    for node in (1, 2, 7, 8, 9):
        assert f'class="node kind-{kinds[node]} status-done" data-node="{node}"' in picture
