"""``littleflow check``: the error that stops a flow, or warnings about parts that do nothing."""

import pytest

from littleflow import FlowError
from littleflow.check import check


def warnings(text):
    flow, found = check(text, "w.flow")
    assert flow is not None
    assert all(not isinstance(d, FlowError) and d.severity == "warning" for d in found)
    return [(d.line, d.column, d.message) for d in found]


@pytest.mark.parametrize("text", [
    "A → B",
    "A :o → B;\n:o → C",
    "A → :m C;\nB → :m",
    "@task A (- a: 1 -)\n@task X = A\n@task S { B }\nX → S",
    "@task Y (- a: 1 -)\n@task X = Y\nX",  # Y is used through its alias
    "A → ? `$[?(@.a)]` B → * C",
])
def test_clean_flows_have_no_warnings(text):
    assert warnings(text) == []


def test_error_stops_the_check():
    flow, found = check("A → B\nC → :nowhere", "e.flow")
    assert flow is None
    (error,) = found
    assert isinstance(error, FlowError)
    assert (error.file, error.line, error.column) == ("e.flow", 2, 5)


@pytest.mark.parametrize("text, expected", [
    ("A :x → B", [(1, 3, "output label :x is never used")]),
    ("B;\n:x A → B", [(2, 1, "input label :x is never used")]),
    ("{ A :inner } → B", [(1, 5, "output label :inner is never used")]),
])
def test_unused_labels(text, expected):
    assert warnings(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("@task X (- a: 1 -)\nA", [(1, 1, "task X is declared but never used")]),
    ("A\n@task S { B }", [(2, 1, "task S is declared but never used")]),
    ("@task Y\n@task X = Y\nA", [(1, 1, "task Y is declared but never used"),
                                 (2, 1, "task X is declared but never used")]),
])
def test_unused_declarations(text, expected):
    assert warnings(text) == expected


def test_nodes_that_can_never_run():
    found = warnings(":l → A → B → :l;\nC")  # A and B only feed each other
    assert found == [(1, 6, "A can never run"), (1, 10, "B can never run")]


def test_node_waiting_for_a_node_that_never_runs():
    # A only re-activates itself; D joins A and B, so D (and then END, which joins D and C) never runs
    found = warnings(":l → A :o → :l;\n:o → :m D;\nB → :m;\nC")
    assert found == [(0, 0, "the flow can never reach its end"), (1, 6, "A can never run"), (2, 9, "D can never run")]


def test_flow_that_never_reaches_its_end():
    assert [m for _, _, m in warnings("A → B → :start;")] == ["the flow can never reach its end"]


def test_warnings_are_sorted_and_formatted():
    flow, found = check("@task Z\nA :x → B;\n:y C", "w.flow")
    assert [(d.line, d.column) for d in found] == sorted((d.line, d.column) for d in found)
    assert str(found[0]) == "w.flow:1:1: warning: task Z is declared but never used"
    assert found[1].format().splitlines() == ["w.flow:2:3: warning: output label :x is never used",
                                              "    A :x → B;", "      ^"]
