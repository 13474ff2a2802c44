"""``littleflow check``: the error that stops a flow, or warnings about parts that do nothing."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from littleflow import FlowError, compile_flow
from littleflow.check import check, compile_checked


def warnings(text):
    flow, found = check(text, "w.flow")
    assert flow is not None
    assert all(not isinstance(d, FlowError) and d.severity == "warning" for d in found)
    return [(d.line, d.column, d.message) for d in found]


@pytest.mark.parametrize(
    "text",
    [
        "A → B",
        "A :o → B;\n:o → C",
        "A → :m C;\nB → :m",
        "@task A (- a: 1 -)\n@task X = A\n@task S { B }\nX → S",
        "@task Y (- a: 1 -)\n@task X = Y\nX",  # Y is used through its alias
        "A → ? `$[?(@.a)]` B → * C",
    ],
)
def test_clean_flows_have_no_warnings(text):
    assert warnings(text) == []


def test_error_stops_the_check():
    flow, found = check("A → B\nC → :nowhere", "e.flow")
    assert flow is None
    (error,) = found
    assert isinstance(error, FlowError)
    assert (error.file, error.line, error.column) == ("e.flow", 2, 5)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("A :x → B", [(1, 3, "output label :x is never used")]),
        ("B;\n:x A → B", [(2, 1, "input label :x is never used")]),
        ("{ A :inner } → B", [(1, 5, "output label :inner is never used")]),
    ],
)
def test_unused_labels(text, expected):
    assert warnings(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("@task X (- a: 1 -)\nA", [(1, 1, "task X is declared but never used")]),
        ("A\n@task S { B }", [(2, 1, "task S is declared but never used")]),
        (
            "@task Y\n@task X = Y\nA",
            [(1, 1, "task Y is declared but never used"), (2, 1, "task X is declared but never used")],
        ),
    ],
)
def test_unused_declarations(text, expected):
    assert warnings(text) == expected


def test_nodes_that_can_never_run():
    found = warnings(":l → A → B → :l;\nC")  # A and B only feed each other
    assert found == [(1, 6, "A can never run"), (1, 10, "B can never run")]


def test_node_waiting_for_a_node_that_never_runs():
    # A only re-activates itself; D joins A and B, so D (and then END, which joins D and C) never runs
    found = warnings(":l → A :o → :l;\n:o → :m D;\nB → :m;\nC")
    assert found == [
        (0, 0, "the flow can never reach its end"),
        (1, 6, "A can never run"),
        (2, 9, "D can never run"),
    ]


def test_flow_that_never_reaches_its_end():
    assert [m for _, _, m in warnings("A → B → :start;")] == ["the flow can never reach its end"]


def test_warnings_are_sorted_and_formatted():
    flow, found = check("@task Z\nA :x → B;\n:y C", "w.flow")
    assert [(d.line, d.column) for d in found] == sorted((d.line, d.column) for d in found)
    assert str(found[0]) == "w.flow:1:1: warning: task Z is declared but never used"
    assert found[1].format().splitlines() == [
        "w.flow:2:3: warning: output label :x is never used",
        "    A :x → B;",
        "      ^",
    ]


# -- @flow run-time options: one validation for check, compile, run, submit and the API --------------


@pytest.mark.parametrize(
    "text, where, message",
    [
        (
            "@flow f (- retrys: 1 -)\nA",
            (1, 12),
            "unknown option 'retrys' in @flow parameters (known: retries, timeout, "
            "backoff, tasks, parallelism, schedule; did you mean 'retries'?)",
        ),
        (
            "@flow f (-\n  retries: 1\n  tasks:\n    A: {timeout: soon}\n-)\nA",
            (4, 9),
            'timeout in @flow parameters for task A must be a number ≥ 0, not "soon"',
        ),
        (
            "@flow f (- tasks: {A: {retry: 2}} -)\nA",
            (1, 24),
            "unknown option 'retry' in @flow parameters for task A "
            "(known: retries, timeout, backoff; did you mean 'retries'?)",
        ),
        (
            "@flow f (- tasks: {AA: {retries: 1}} -)\nA",
            (1, 20),
            "tasks.AA in @flow parameters names no task of this flow; did you mean 'A'?",
        ),
        (
            "@flow f (- tasks: {A: 3} -)\nA",
            (1, 20),
            "tasks.A in @flow parameters must be an object (tasks: {A: {retries: 1}})",
        ),
        (
            '@flow f ({"parallelism": 0})\nA',
            (1, 11),
            "parallelism in @flow parameters must be a whole number ≥ 1, not 0",
        ),
        (
            "@flow f (- [1] -)\nA",
            (1, 9),
            "@flow parameters must be an object (write @flow NAME (- retries: 1, timeout: 30 -))",
        ),
        (
            "A\n@flow f (- timeout: 10m, backoff: 1 -)",
            (2, 12),
            'timeout in @flow parameters must be a number ≥ 0, not "10m"',
        ),
    ],
)
def test_wrong_flow_options_are_errors_at_the_option(text, where, message):
    flow, found = check(text, "o.flow")
    (error,) = found
    assert flow is None and isinstance(error, FlowError)
    assert (error.line, error.column) == where and error.message == message
    with pytest.raises(FlowError) as caught:
        compile_checked(text, "o.flow")
    assert str(caught.value) == str(error)
    compile_flow(text)  # the language itself has no opinion on them


@pytest.mark.parametrize(
    "text",
    [
        "@flow f (- retries: 2, timeout: 1.5, backoff: 0, parallelism: 3, tasks: {A: {retries: 1}, X: {timeout: 2}} -)\n"
        "@task X = B\nA → X",
        "@flow plain\nA",
        "A",
    ],
)
def test_right_flow_options_pass(text):
    assert check(text)[0] is not None
    assert compile_checked(text).name in (None, "f", "plain")


# -- conditions that are plain paths (LANGUAGE.md §9.3) ----------------------------------------------


@pytest.mark.parametrize(
    "text, where, message",
    [
        (
            "A → ? `$.valid` B",
            (1, 5),
            "guard `$.valid` is a plain path: it is true whenever it selects something, "
            "even false or null (selection, not truth); to test its value write "
            "`$[?@.valid == true]`, to test that it is there `$[?@.valid]`",
        ),
        ("A → if `$.ok` then B else C", (1, 8), "condition `$.ok` is a plain path"),
        ("A → while `$['next page']` do B", (1, 11), "to test its value write `$[?@['next page'] == true]`"),
        ("repeat B until `$.items[*]`", (1, 16), "to test a value use a filter, as in `$[?@.valid == true]`"),
        ("A\n  → ? `$..x` B", (2, 5), "guard `$..x` is a plain path"),
    ],
)
def test_a_condition_without_a_filter_is_warned_about(text, where, message):
    (warning,) = [w for w in warnings(text) if "plain path" in w[2]]
    assert warning[:2] == where and message in warning[2]


@pytest.mark.parametrize(
    "text",
    [
        "A → ? `$[?@.valid == true]` B",
        "A → ? `$[?(@.status=0)]` B",
        "A → ? `$.items[?@.n > 1]` B",
        "A → if `$[?@.ok]` then B else C",
        "repeat B until `$[?@.done == true]`",
    ],
)
def test_a_condition_with_a_filter_is_not(text):
    assert [w for w in warnings(text) if "plain path" in w[2]] == []


# -- a step after a group with no arrow ---------------------------------------------------------------


@pytest.mark.parametrize(
    "text, where, group, step",
    [
        ("A → { B } C", (1, 11), "'}'", "task 'C'"),
        ("A → [ B  C ] D → E", (1, 14), "']'", "task 'D'"),
        ("A | B C", (1, 7), "'|' group", "task 'C'"),
        ("X → A | B (- x: 1 -) C", (1, 22), "'|' group", "task 'C'"),
        ("A → { B } * C", (1, 11), "'}'", "'*'"),
        ("A → if `$[?@.a]` then { B } else { C } D", (1, 40), "'}'", "task 'D'"),
        ("{ A | B C }", (1, 9), "'|' group", "task 'C'"),
        ("@flow f\n{ B } C", (2, 7), "'}'", "task 'C'"),
        ("@task X = A (- a: 1 -) '''doc''';\n{ X } C", (2, 7), "'}'", "task 'C'"),
    ],
)
def test_a_step_on_the_line_of_a_group_without_an_arrow_is_warned_about(text, where, group, step):
    (warning,) = [w for w in warnings(text) if "new statement" in w[2]]
    assert warning == (
        *where,
        f"{step} starts a new statement: nothing connects it to the {group} before it "
        "(write '→' before it to run it after, or ';' or a new line to start a statement)",
    )


@pytest.mark.parametrize(
    "text",
    [
        "A → { B }\nC",
        "A → { B } ; C",
        "A → { B } → C",
        "A | B\nC",
        "A | B → C",
        "A → { B → C  D } → E",
        "@task S { B } S",
        "A → if `$[?@.a]` then { B } else C",
        "repeat { B } until `$[?@.a]`",
        "A | { B } | C",
        "{ A } :x → B",
    ],
)
def test_steps_that_are_connected_or_on_their_own_line_are_not(text):
    assert [w for w in warnings(text) if "new statement" in w[2]] == []


def test_warnings_do_not_stop_a_check():
    flow, found = check("A → ? `$.ok` B → { C } D", "w.flow")
    assert flow is not None and [d.severity for d in found] == ["warning", "warning"]
    assert [(d.line, d.column) for d in found] == [(1, 5), (1, 24)]


_GROUPS = st.sampled_from(
    [
        "{ A }",
        "[ A  B ]",
        "A | B",
        "A | B (- x: 1 -)",
        "X → { A | B }",
        "A | <x.json>",
        "if `$[?@.a]` then { A } else { B }",
    ]
)
_NEXT = st.sampled_from(["C", "{ C }", "<- x: 1 ->", "* C", "> C", "? `$[?@.c]` C"])


@given(
    group=_GROUPS, between=st.sampled_from([" ", "  ", " → ", " ; ", "\n", " # note\n", " :o "]), step=_NEXT
)
def test_a_step_after_a_group_is_warned_about_exactly_when_only_spaces_separate_them(group, between, step):
    text = f"{group}{between}{step}"
    found = [w for w in warnings(text) if "new statement" in w[2]]
    if between.strip(" "):
        assert found == []
    else:
        (warning,) = found
        assert warning[:2] == (1, len(group) + len(between) + 1)
