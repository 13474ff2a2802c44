"""The engine: the pure state machine of LANGUAGE.md §8–§9 (activations and
thresholds, order, input aggregation, merge, guards, cycles, iteration,
literals, failure, resume, terminate), driven through Engine.start/ended/failed."""

from __future__ import annotations

import itertools
import json
import re
from functools import cache

import pytest
from drivers import ECHO, NOTHING, Driver, Raise, acyclic_flows, run, tag
from graphs import collapsed_edges
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st
from support import one

from littleflow import Engine, Start, State, compile_flow
from littleflow.engine import DEFAULT_LIMIT

SEED = "A → { B → C  D } → E"
TASK_KINDS = ("task", "resource")


def names(driver: Driver, starts) -> list[str]:
    return [driver.name(start.node) for start in starts]


def queued(driver: Driver) -> list[str]:
    return names(driver, driver.queue)


def step_named(driver: Driver, name: str, item: int = -1) -> list[Start]:
    """Run the queued task ``name`` (item ``item``) whatever its place in the queue."""
    for index, start in enumerate(driver.queue):
        if driver.name(start.node) == name and start.item == item:
            return driver.step(index)
    raise AssertionError(f"{name} is not queued: {queued(driver)}")


# -- starting ----------------------------------------------------------------------


def test_start_hands_the_flow_input_to_the_first_tasks():
    flow = compile_flow("A → B\nC")
    state = State(flow.end)
    starts = Engine(flow).start(state, {"k": 1})
    a, c = one(flow, "A").id, one(flow, "C").id
    assert starts == [Start("", a, -1, {"k": 1}), Start("", c, -1, {"k": 1})]
    assert [s.key for s in starts] == [("", a, -1), ("", c, -1)]
    assert state.status == "running" and state.input == {"k": 1}
    assert state.running == {("", a, -1): {"k": 1}, ("", c, -1): {"k": 1}}


def test_the_default_flow_input_is_an_empty_object():
    flow = compile_flow("A")
    state = State(flow.end)
    (start,) = Engine(flow).start(state)
    assert start.input == {} and state.input == {}


def test_only_task_and_resource_nodes_come_out_as_starts():
    text = """
    <- {go: true} -> → ? `$[?(@.go == true)]` { A → :m B  C → :m } → * { D } → > E → <out.json>
    <[1, 2]> → * F → ? `$[?(@.no)]` G → { } → H
    """
    driver = run(text, {"A": {"a": 1}, "C": {"c": 1}})
    assert driver.state.status == "finished"
    assert driver.started
    assert {driver.flow.nodes[s.node].kind for s in driver.started} == {"task", "resource"}
    assert "G" not in driver.order


def test_a_flow_without_tasks_finishes_at_once_with_its_input_as_output():
    flow = compile_flow("{ }")
    state = State(flow.end)
    assert Engine(flow).start(state, {"x": [1]}) == []
    assert state.status == "finished" and state.output == {"x": [1]}


# -- activations and thresholds (§9.1) ----------------------------------------------


def test_a_join_waits_for_all_of_its_predecessors():
    driver = Driver("A → :m C\nB → :m").begin()
    assert queued(driver) == ["A", "B"]
    assert driver.step() == []  # A ended: C has 1 of 2 activations
    c = one(driver.flow, "C").id
    assert driver.state.root.activations[c] == 1
    assert names(driver, driver.step()) == ["C"]  # B ended: C starts
    assert driver.state.root.activations.get(c, 0) == 0  # A -= T when it starts


def test_a_subflow_end_waits_for_all_right_most_steps():
    driver = Driver(SEED).begin()
    driver.step()  # A
    assert names(driver, driver.step()) == ["C"]  # B
    assert queued(driver) == ["D", "C"]
    assert driver.step() == []  # D: the subflow's end has 1 of 2 activations
    assert names(driver, driver.step()) == ["E"]  # C: the subflow ends, E starts


def test_fan_out_starts_every_successor():
    driver = Driver("A :o → B;\n:o → C;\n:o → D", {"A": {"a": 1}}).begin()
    assert names(driver, driver.step()) == ["B", "C", "D"]
    assert [s.input for s in driver.queue] == [{"a": 1}] * 3


def test_alternation_fans_in_to_a_join():
    driver = run("A|B|C → D", {"A": {"a": 1}, "B": {"b": 1}, "C": {"c": 1}})
    assert driver.order == ["A", "B", "C", "D"]
    assert driver.inputs("D") == [[{"a": 1}, {"b": 1}, {"c": 1}]]


def test_a_node_joins_forward_predecessors_and_ignores_its_back_edge():
    # C's threshold is 2 (A and B); the back edge D → C does not count (§9.1).
    text = "A → :m C → D → :m;\nB → :m;"
    driver = Driver(text, limit=3).begin()
    driver.step()  # A
    assert "C" not in queued(driver)
    driver.step()  # B
    assert queued(driver) == ["C"]
    driver.run()
    assert driver.order[:4] == ["A", "B", "C", "D"]


# -- cycles (§9.4) ---------------------------------------------------------------------

POLL = ":poll wait:delay(- duration: 60 -) → check → :poll"


def test_a_poll_loop_runs_until_the_limit_fails_the_flow():
    driver = run(POLL, limit=4)
    assert driver.order == ["wait:delay", "check"] * 4
    assert driver.state.status == "failed"
    failure = driver.state.failure
    assert failure["name"] == "wait:delay"
    assert failure["node"] == one(driver.flow, "wait:delay").id
    assert "4" in failure["error"] and "limit" in failure["error"]
    assert not driver.queue and driver.state.running == {}


def test_the_poll_loop_passes_each_output_round():
    driver = run(POLL, {"check": lambda s: {"round": s.input.get("round", 0) + 1}}, limit=3)
    assert driver.inputs("wait:delay") == [{}, {"round": 1}, {"round": 2}]
    assert driver.inputs("check") == [{}, {"round": 1}, {"round": 2}]
    assert all(s.node == one(driver.flow, "wait:delay").id for s in driver.ran[::2])


def test_the_default_limit_stops_a_mistaken_cycle():
    driver = run(POLL)
    assert driver.engine.limit == DEFAULT_LIMIT
    assert driver.order.count("wait:delay") == DEFAULT_LIMIT
    assert driver.state.status == "failed"
    assert str(DEFAULT_LIMIT) in driver.state.failure["error"]


def test_a_cycle_re_activates_a_node_with_the_back_edge_output():
    counter = itertools.count(1)
    driver = run(
        ":x A → B → :x", {"B": lambda s: Raise("done") if s.input.get("n") == 3 else {"n": next(counter)}}
    )
    assert driver.order == ["A", "B"] * 4
    assert driver.inputs("A") == [{}, {"n": 1}, {"n": 2}, {"n": 3}]
    assert driver.state.status == "failed" and driver.state.failure["error"] == "done"


def test_routing_into_start_loops_back_to_the_beginning():
    driver = run("A → B → :start", {"B": lambda s: {"n": s.input.get("n", 0) + 1}}, limit=3)
    assert driver.order == ["A", "B"] * 3
    assert driver.inputs("A") == [{}, {"n": 1}, {"n": 2}]
    assert driver.state.status == "failed" and "limit" in driver.state.failure["error"]


def test_a_skipped_guard_in_a_loop_keeps_the_loop_going():
    driver = run(":poll ? `$[?(@.ready == true)]` wait → check → :poll", {"check": {"ready": False}}, limit=5)
    assert driver.order == ["check"] * 5  # the skipped wait still counts as a run
    assert driver.state.status == "failed" and "limit" in driver.state.failure["error"]


def test_a_loop_stops_when_terminated():
    driver = Driver(POLL).begin()
    for _ in range(5):
        driver.step()
    driver.engine.terminate(driver.state)
    driver.run()
    assert driver.order == ["wait:delay", "check", "wait:delay", "check", "wait:delay", "check"]
    assert driver.state.status == "terminated"
    assert len(driver.state.held) == 1 and driver.name(driver.state.held[0][0][1]) == "wait:delay"


# -- order (§9.2) ------------------------------------------------------------------------


def test_seed_order_is_first_in_first_out():
    driver = run(SEED)
    assert driver.order == ["A", "B", "D", "C", "E"]
    assert driver.state.status == "finished" and driver.state.output == {}


def test_starts_that_become_ready_together_are_in_node_order():
    # C is reached one step earlier than B in the walk, but B comes first in the source.
    driver = Driver("A → { { B } C }").begin()
    assert names(driver, driver.step()) == ["B", "C"]


def test_independent_statements_start_in_source_order():
    driver = Driver("X → Y\nW\nV → U").begin()
    assert queued(driver) == ["X", "W", "V"]
    driver.run()
    assert driver.order == ["X", "W", "V", "Y", "U"]


def test_same_flow_same_outputs_same_order():
    text = "A → { B → C  D|E } → F\nG → * H"
    tasks = {"G": [1, 2, 3]}
    assert (
        run(text, tasks).order == run(text, tasks).order == ["A", "G", "B", "D", "E", "H", "H", "H", "C", "F"]
    )


# -- input aggregation (§8) ---------------------------------------------------------------


@pytest.mark.parametrize("value", [{"a": 1}, [1, 2], 3, "text", True, None, [], {"n": {"m": [None]}}])
def test_one_predecessor_gives_its_output_as_is(value):
    driver = run("A → B", {"A": value})
    assert driver.inputs("B") == [{} if value is None else value]


def test_a_task_returning_nothing_outputs_an_empty_object():
    driver = run("A", {"A": NOTHING})
    assert driver.state.output == {}


def test_several_predecessors_give_a_list_in_source_order_whatever_the_end_order():
    driver = Driver("A → :x B\nC → :x", {"A": {"fruit": "banana"}, "C": {"animal": "monkey"}}).begin()
    step_named(driver, "C")
    step_named(driver, "A")
    driver.run()
    assert driver.inputs("B") == [[{"fruit": "banana"}, {"animal": "monkey"}]]


def test_source_order_of_predecessors_not_of_the_meeting_step():
    # D stands before A in the source, so D's output comes first.
    driver = Driver("D → :m;\nA → :m C", {"A": "a", "D": "d"}).begin()
    step_named(driver, "A")
    step_named(driver, "D")
    driver.run()
    assert driver.inputs("C") == [["d", "a"]]


@pytest.mark.parametrize(
    "outputs, expected",
    [
        ({"A": {}, "C": {"a": 1}}, {"a": 1}),
        ({"A": {"a": 1}, "C": NOTHING}, {"a": 1}),
        ({"A": {}, "C": {}}, {}),
        ({"A": NOTHING, "C": NOTHING}, {}),
        ({"A": {}, "C": []}, []),  # only empty objects are dropped
        ({"A": 0, "C": False}, [0, False]),
        ({"A": [], "C": ""}, [[], ""]),
    ],
)
def test_empty_objects_are_dropped_from_an_aggregate(outputs, expected):
    driver = run("A → :x B\nC → :x", outputs)
    assert driver.inputs("B") == [expected]


def test_three_way_meet_keeps_source_order_and_drops_empty_objects():
    text = "A → :m D;\nB → :m;\nC → :m"
    driver = Driver(text, {"A": {"a": 1}, "B": {}, "C": {"c": 3}}).begin()
    for name in ["C", "B", "A"]:
        step_named(driver, name)
    driver.run()
    assert driver.inputs("D") == [[{"a": 1}, {"c": 3}]]


def test_flow_end_aggregates_right_most_steps():
    driver = run("A\nB → :x C", {"A": {"a": 1}, "B": {"b": 2}, "C": {"c": 3}})
    # B feeds C through :x and is not right-most in its statement; A and C reach END.
    assert driver.state.output == [{"a": 1}, {"c": 3}]


def test_a_step_that_also_feeds_a_label_still_reaches_end():
    driver = run("A :o;\n:o → B", {"A": {"a": 1}, "B": {"b": 2}})
    assert driver.state.output == [{"a": 1}, {"b": 2}]


def test_a_subflow_end_aggregates_its_right_most_steps():
    driver = run(SEED + " → F", {"C": {"c": 1}, "D": {"d": 1}})
    assert driver.inputs("E") == [[{"c": 1}, {"d": 1}]]
    driver = run("A → { B → C } → E", {"C": {"c": 1}})
    assert driver.inputs("E") == [{"c": 1}]
    driver = run("{ B  C }", {"B": {}, "C": {}})
    assert driver.state.output == {}


def test_subflow_start_hands_its_input_to_every_left_most_step():
    driver = run(SEED, {"A": {"k": 1}})
    assert driver.inputs("B") == [{"k": 1}] and driver.inputs("D") == [{"k": 1}]
    assert driver.inputs("C") == [{"k": 1}]


# -- merge `>` (§8) -------------------------------------------------------------------------


def test_merge_combines_objects_later_ones_winning():
    driver = run("A → :x > B\nC → :x", {"A": {"fruit": "banana", "n": 1}, "C": {"animal": "monkey", "n": 2}})
    assert driver.inputs("B") == [{"fruit": "banana", "n": 2, "animal": "monkey"}]


def test_merge_of_one_object_leaves_it_alone():
    assert run("A → > B", {"A": {"a": 1}}).inputs("B") == [{"a": 1}]


def test_merge_before_end_makes_the_flow_output_one_object():
    driver = run("A → { B  C } → > :end", {"B": {"b": 1, "x": 1}, "C": {"c": 2, "x": 2}})
    assert driver.state.output == {"b": 1, "c": 2, "x": 2}


def test_merge_before_a_subflow_merges_its_input():
    driver = run("A → :x > { B  C }\nD → :x", {"A": {"a": 1}, "D": {"d": 1}})
    assert driver.inputs("B") == driver.inputs("C") == [{"a": 1, "d": 1}]


@pytest.mark.parametrize(
    "bad, shown",
    [(5, "5"), ([{"stored": 22}], '[{"stored": 22}]'), ("s", '"s"'), (True, "true")],
)
def test_merging_a_non_object_fails_the_flow_with_a_clear_message(bad, shown):
    driver = run("A → :x > B\nC → :x", {"A": {"a": 1}, "C": bad})
    assert driver.order == ["A", "C"]
    assert driver.state.status == "failed"
    failure = driver.state.failure
    assert failure["name"] == "B" and failure["node"] == one(driver.flow, "B").id
    assert failure["input"] == [{"a": 1}, bad]
    assert failure["error"] == f"cannot merge the input: item 1 is not an object ({shown})"


def test_a_merge_failure_shows_a_long_item_as_json_cut_short():
    bad = [{"stored": n, "note": "é"} for n in range(50)]
    failure = run("A → :x > B\nC → :x", {"A": {"a": 1}, "C": bad}).state.failure
    shown = failure["error"].removeprefix("cannot merge the input: item 1 is not an object (")
    assert shown.startswith('[{"stored": 0, "note": "é"}, {"stored": 1, ') and shown.endswith("…)")
    assert len(shown) == 101  # 100 characters and the closing parenthesis


# -- guards (§9.3) --------------------------------------------------------------------------

GUARDED = "A → ? `$[?(@.ok == true)]` B → C"


def test_a_true_guard_runs_the_step():
    driver = run(GUARDED, {"A": {"ok": True}, "B": {"b": 1}})
    assert driver.order == ["A", "B", "C"]
    assert driver.inputs("C") == [{"b": 1}]
    assert driver.state.root.skipped == set()


def test_a_false_guard_skips_the_step_and_passes_its_input_through():
    driver = run(GUARDED, {"A": {"ok": False}, "B": {"b": 1}})
    assert driver.order == ["A", "C"]
    assert driver.inputs("C") == [{"ok": False}]
    assert driver.state.status == "finished" and driver.state.output == {"ok": False}
    assert driver.state.root.skipped == {one(driver.flow, "B").id}


def test_a_skipped_last_step_passes_its_input_to_end():
    driver = run("A → ? `$[?(@.ok == true)]` B", {"A": {"ok": 0}})
    assert driver.order == ["A"] and driver.state.output == {"ok": 0}


@pytest.mark.parametrize("value, runs", [({"status": 0}, True), ({"status": 2}, False), ({}, False)])
@pytest.mark.parametrize("expression", ["$[?(@.status == 0)]", "$[?(@.status=0)]"])
def test_a_root_filter_tests_the_input_itself(expression, value, runs):
    driver = run(f"A → ? `{expression}` B → C", {"A": value, "B": "ran"})
    assert ("B" in driver.order) is runs
    assert driver.inputs("C") == (["ran"] if runs else [value])


def test_a_guard_that_selects_a_member_runs_the_step():
    assert "B" in run("A → ? `$.name` B", {"A": {"name": "x"}}).order
    assert "B" not in run("A → ? `$.name` B", {"A": {"other": "x"}}).order


def test_a_guard_before_a_subflow_skips_all_of_it():
    text = "A → ? `$[?(@.status == 0)]` { B → C  D } → E"
    driver = run(text, {"A": {"status": 2}})
    assert driver.order == ["A", "E"]
    assert driver.inputs("E") == [{"status": 2}]
    assert driver.state.status == "finished"
    driver = run(text, {"A": {"status": 0}, "C": {"c": 1}, "D": {"d": 1}})
    assert driver.order == ["A", "B", "D", "C", "E"]
    assert driver.inputs("E") == [[{"c": 1}, {"d": 1}]]


def test_a_guard_tests_the_aggregated_input_of_a_join():
    text = "A → :m ? `$[0].a` B\nC → :m"
    assert "B" in run(text, {"A": {"a": 1}, "C": {"c": 1}}).order
    assert "B" not in run(text, {"A": {"x": 1}, "C": {"c": 1}}).order


def test_a_skipped_step_in_a_join_still_counts_for_its_followers():
    driver = run("A → ? `$.no` B → :m D\nC → :m", {"A": {"a": 1}, "C": {"c": 1}})
    assert driver.order == ["A", "C", "D"]
    assert driver.inputs("D") == [[{"a": 1}, {"c": 1}]]


# -- iteration `*` (§9.6) -----------------------------------------------------------------------


def test_iterating_a_task_runs_it_once_per_item():
    driver = Driver("A → * B → C", {"A": [1, 2, 3], "B": lambda s: s.input * 10}).begin()
    starts = driver.step()
    b = one(driver.flow, "B").id
    assert starts == [Start("", b, 0, 1), Start("", b, 1, 2), Start("", b, 2, 3)]
    driver.run()
    assert driver.inputs("C") == [[10, 20, 30]]
    assert driver.state.output == [10, 20, 30]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-5, 5), min_size=1, max_size=6), st.data())
def test_iteration_results_are_in_item_order_whatever_the_end_order(items, data):
    driver = Driver(f"<{json.dumps(items)}> → * B", {"B": lambda s: [s.item, s.input]}).begin()
    assert [s.item for s in driver.queue] == list(range(len(items)))
    while driver.queue:
        driver.step(data.draw(st.integers(0, len(driver.queue) - 1)))
    assert driver.state.output == [[i, x] for i, x in enumerate(items)]


def test_iterating_over_an_object_runs_one_item():
    driver = run("A → * B → C", {"A": {"a": 1}, "B": lambda s: [s.item, s.input]})
    assert driver.inputs("B") == [{"a": 1}]
    assert driver.inputs("C") == [[[0, {"a": 1}]]]


def test_iterating_over_an_empty_list_outputs_an_empty_list():
    driver = run("A → * B → C", {"A": []})
    assert driver.order == ["A", "C"]
    assert driver.inputs("C") == [[]]
    driver = run("A → * { B → C } → D", {"A": []})
    assert driver.order == ["A", "D"] and driver.inputs("D") == [[]]


def test_iterating_a_subflow_runs_a_copy_per_item():
    tasks = {"A": [1, 2], "B": lambda s: s.input * 10, "C": lambda s: s.input + 1, "D": lambda s: -s.input}
    driver = Driver("A → * { B → C  D } → E", tasks).begin()
    driver.step()
    (sub,) = [n.id for n in driver.flow.nodes if n.kind == "subflow-start" and n.iterate]
    paths = [f"/{sub}.0", f"/{sub}.1"]
    assert [(s.path, driver.name(s.node), s.item, s.input) for s in driver.queue] == [
        (paths[0], "B", -1, 1),
        (paths[1], "B", -1, 2),
        (paths[0], "D", -1, 1),
        (paths[1], "D", -1, 2),
    ]
    assert set(driver.state.frames) == {"", *paths}
    # Each item's copy runs on its own: end all of item 1's tasks first.
    while driver.queue:
        index = next((i for i, s in enumerate(driver.queue) if s.path == paths[1]), 0)
        driver.step(index)
    assert [s.path for s in driver.ran[:-1]] == [""] + [paths[1]] * 3 + [paths[0]] * 3
    assert driver.inputs("E") == [[[11, -1], [21, -2]]]
    assert list(driver.state.frames) == [""]  # item copies are gone once done


def test_each_item_copy_has_its_own_activations():
    # A join inside the iterated subflow must not mix items.
    tasks = {"A": ["x", "y"], "B": lambda s: s.input + "b", "C": lambda s: s.input + "c"}
    driver = Driver("A → * { B → :m J  C → :m } → E", tasks).begin()
    driver.step()
    # Interleave the items: y's B, x's C, x's B, y's C.
    for name, item in [("B", 1), ("C", 0), ("B", 0), ("C", 1)]:
        (index,) = [
            i
            for i, s in enumerate(driver.queue)
            if driver.name(s.node) == name and s.path.endswith(f".{item}")
        ]
        driver.step(index)
    driver.run()
    assert sorted(driver.inputs("J")) == [["xb", "xc"], ["yb", "yc"]]
    assert driver.inputs("E") == [[["xb", "xc"], ["yb", "yc"]]]


def test_nested_iteration():
    driver = Driver("A → * { * B } → C", {"A": [[1, 2], [3]], "B": lambda s: s.input * 10}).begin()
    driver.step()
    assert sorted((s.path.count("/"), s.item, s.input) for s in driver.queue) == [
        (1, 0, 1),
        (1, 0, 3),
        (1, 1, 2),
    ]
    driver.step(2)
    driver.run()
    assert driver.inputs("C") == [[[10, 20], [30]]]


def test_iterating_a_guarded_subflow_per_item_copy():
    driver = run("A → * { ? `$[?(@.n > 1)]` B } → C", {"A": [{"n": 1}, {"n": 2}], "B": "big"})
    assert driver.inputs("B") == [{"n": 2}]
    assert driver.inputs("C") == [[{"n": 1}, "big"]]


def test_an_iterated_node_in_a_loop_iterates_every_round():
    driver = run(":x A → * B → :x", {"A": [1, 2], "B": lambda s: s.input}, limit=2)
    assert driver.order == ["A", "B", "B", "A", "B", "B"]


# -- literal sources (§6.1) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "literal, value",
    [
        ("<>", {}),
        ("<- {a: 1} ->", {"a": 1}),
        ('<{"b": [1, 2]}>', {"b": [1, 2]}),
        ("<[1, 2]>", [1, 2]),
    ],
)
def test_a_literal_source_outputs_its_value(literal, value):
    driver = run(f"{literal} → A")
    assert driver.inputs("A") == [value]
    assert driver.state.output == value
    assert run(literal).state.output == value  # a literal alone: the flow's output


def test_a_literal_joins_like_a_task():
    driver = run("<- {a: 1} -> → :m > B\nC → :m", {"C": {"c": 2}})
    assert driver.order == ["C", "B"]
    assert driver.inputs("B") == [{"a": 1, "c": 2}]


def test_a_literal_list_feeds_an_iteration():
    driver = run('<[{"n": 1}, {"n": 2}]> → * A → B')
    assert driver.inputs("A") == [{"n": 1}, {"n": 2}]
    assert driver.inputs("B") == [[{"n": 1}, {"n": 2}]]


# -- failure and resume (§9.5) ---------------------------------------------------------------------

WIDE = "A → { B  D → F } → G"


def test_a_failure_starts_nothing_new_and_lets_running_tasks_end():
    driver = Driver(WIDE, {"B": Raise("no more bananas"), "D": {"d": 1}}).begin()
    driver.step()  # A
    assert queued(driver) == ["B", "D"]
    assert driver.step() == []  # B fails
    assert driver.state.status == "failed"
    assert list(driver.state.running) == [("", one(driver.flow, "D").id, -1)]
    assert driver.step() == []  # D still ends, F is held back
    assert driver.state.running == {}
    assert driver.state.status == "failed"
    assert driver.state.root.outputs[one(driver.flow, "D").id] == {"d": 1}
    assert [(driver.name(key[1]), input) for key, input in driver.state.held] == [("F", {"d": 1})]


def test_the_failure_record_names_the_task_its_node_input_and_error():
    driver = run("A → B → C", {"A": {"k": 1}, "B": Raise("no more bananas")})
    assert driver.order == ["A", "B"]
    node = one(driver.flow, "B")
    failure = driver.state.failure
    assert failure["node"] == node.id and failure["name"] == "B"
    assert failure["input"] == {"k": 1} and failure["error"] == "no more bananas"
    assert (failure["line"], failure["column"]) == (node.line, node.column)
    assert failure["key"] == ["", node.id, -1]
    assert driver.state.failures == [failure]


def test_resume_runs_again_what_failed_and_what_was_held_but_not_what_finished():
    attempts = itertools.count()
    tasks = {
        "B": lambda s: Raise("first time") if next(attempts) == 0 else {"b": 1},
        "D": {"d": 1},
        "F": tag("F"),
    }
    driver = Driver(WIDE, tasks).begin()
    driver.run()
    assert driver.state.status == "failed" and driver.order == ["A", "B", "D"]
    resumed = driver.resume()
    assert sorted(names(driver, resumed)) == ["B", "F"]
    assert driver.state.status == "running"
    driver.run()
    assert driver.order[:3] == ["A", "B", "D"] and sorted(driver.order[3:5]) == ["B", "F"]
    assert driver.order[5:] == ["G"]
    assert driver.state.status == "finished"
    assert driver.inputs("G") == [[{"b": 1}, {"F": {"d": 1}}]]
    assert driver.state.output == run(WIDE, {"B": {"b": 1}, "D": {"d": 1}, "F": tag("F")}).state.output


def fails_item_two_once():
    """A task (for the test driver) that multiplies by 10 but fails the first time it gets 2."""
    failed = []

    def b(start):
        if start.input == 2 and not failed:
            failed.append(start.key)
            return Raise("item two")
        return start.input * 10

    return b


def test_resume_after_a_failed_item_reruns_only_that_item():
    driver = run("A → * B → C", {"A": [1, 2, 3], "B": fails_item_two_once()})
    assert driver.state.status == "failed"
    assert driver.state.failure["key"] == ["", one(driver.flow, "B").id, 1]
    assert [(s.item, s.input) for s in driver.resume()] == [(1, 2)]
    driver.run()
    assert driver.state.status == "finished" and driver.state.output == [10, 20, 30]


def test_resume_of_a_failed_item_copy_of_a_subflow():
    driver = run("A → * { B → C }", {"A": [1, 2, 3], "B": fails_item_two_once()})
    assert driver.state.status == "failed"
    driver.resume()
    driver.run()
    assert driver.state.status == "finished" and driver.state.output == [10, 20, 30]
    assert driver.order.count("B") == 4 and driver.order.count("C") == 3


def test_an_end_for_the_failed_task_is_ignored():
    driver = Driver("A → B", {"A": Raise("x")}).begin()
    key = driver.queue[0].key
    driver.step()
    before = driver.state.to_json()
    assert driver.engine.ended(driver.state, key, {"late": True}) == []
    assert driver.engine.failed(driver.state, key, "again") == []
    assert driver.state.to_json() == before


def test_a_failure_while_failed_is_recorded_too():
    driver = run("A\nB", {"A": Raise("a"), "B": Raise("b")})
    assert driver.state.status == "failed"
    assert [f["error"] for f in driver.state.failures] == ["a", "b"]
    assert driver.state.failure["name"] == "A"


def test_resume_runs_the_merge_again_rather_than_handing_the_task_a_list():
    # §8: `>` turns a list input into one object; the failed step runs again on resume
    # (§9.5), so B must not receive the unmerged list.
    driver = run("A → :x > B\nC → :x", {"A": {"a": 1}, "C": 5})
    assert driver.state.status == "failed"
    driver.resume()
    driver.run()
    assert all(not isinstance(value, list) for value in driver.inputs("B")), driver.inputs("B")
    assert driver.state.status == "failed"


@pytest.mark.parametrize(
    "text, tasks, limit",
    [
        ("A → { B  C } → > :end", {"B": {"b": 1}, "C": 5}, DEFAULT_LIMIT),  # merge failure at END
        ("A → :x > { B }\nC → :x", {"A": {"a": 1}, "C": 5}, DEFAULT_LIMIT),  # merge failure at a subflow
        (":poll { wait } → check → :poll", {}, 2),  # the limit reached at a subflow's start
    ],
)
def test_resume_after_an_engine_failure_starts_only_tasks(text, tasks, limit):
    # Structural nodes are the engine's business: they never come out as starts (§9.1),
    # not even when resuming after a failure the engine itself decided.
    driver = run(text, tasks, limit=limit)
    assert driver.state.status == "failed"
    kinds = [driver.flow.nodes[s.node].kind for s in driver.resume()]
    assert all(kind in TASK_KINDS for kind in kinds), kinds


def test_resume_after_the_limit_still_applies_the_guard():
    text = ":poll ? `$[?(@.go == true)]` wait → check → :poll"
    driver = run(text, {"check": {"go": False}}, limit=2)
    assert driver.order == ["check", "check"] and driver.state.status == "failed"
    driver.engine = Engine(driver.flow, limit=4)  # resume with a higher limit
    driver.resume()
    driver.run()
    assert "wait" not in driver.order  # its guard is false for every input it gets
    assert driver.order == ["check"] * 4


def test_resume_after_the_limit_still_iterates():
    driver = run("<[1, 2]> → :poll * wait → check → :poll", {"check": [1, 2], "wait": ECHO}, limit=2)
    assert driver.state.status == "failed"
    driver.engine = Engine(driver.flow, limit=3)
    driver.resume()
    driver.run()
    waits = [s for s in driver.ran if driver.name(s.node) == "wait"]
    assert [(s.item, s.input) for s in waits] == [(0, 1), (1, 2)] * 3


def test_a_driver_may_hold_back_queued_starts_after_a_failure():
    attempts = itertools.count()
    driver = Driver(
        WIDE, {"B": lambda s: Raise("boom") if next(attempts) == 0 else {"b": 1}, "D": {"d": 1}}
    ).begin()
    driver.step()  # A: B and D start
    driver.step()  # B fails; D was started by the engine but the driver has not begun it
    d = driver.queue.popleft()
    driver.engine.hold(driver.state, d)
    assert driver.state.running == {} and driver.state.held == [(d.key, d.input)]
    driver.state = State.from_json(json.loads(json.dumps(driver.state.to_json())))
    assert sorted(names(driver, driver.resume())) == ["B", "D"]
    driver.run()
    assert driver.state.status == "finished"
    assert driver.order[:2] == ["A", "B"] and sorted(driver.order[2:4]) == ["B", "D"]
    assert driver.order[4:] == ["F", "G"]
    assert driver.inputs("G") == [[{"b": 1}, {"d": 1}]]


# -- terminate -------------------------------------------------------------------------------------


def test_terminate_starts_nothing_new_and_resume_continues():
    driver = Driver(WIDE, {"D": {"d": 1}, "B": {"b": 1}}).begin()
    driver.step()
    driver.engine.terminate(driver.state)
    assert driver.state.status == "terminated"
    assert driver.step() == [] and driver.step() == []  # B and D may still end
    assert driver.state.running == {}
    assert driver.state.status == "terminated"
    assert [driver.name(key[1]) for key, _ in driver.state.held] == ["F"]
    assert names(driver, driver.resume()) == ["F"]
    driver.run()
    assert driver.order == ["A", "B", "D", "F", "G"]
    assert driver.state.status == "finished"
    assert driver.state.output == run(WIDE, {"D": {"d": 1}, "B": {"b": 1}}).state.output


def test_terminate_does_not_change_a_finished_or_failed_flow():
    driver = run("A")
    driver.engine.terminate(driver.state)
    assert driver.state.status == "finished"
    driver = run("A", {"A": Raise("x")})
    driver.engine.terminate(driver.state)
    assert driver.state.status == "failed"


# -- duplicate and unknown ends ---------------------------------------------------------------------


def test_duplicate_and_unknown_ends_are_ignored():
    driver = Driver("A → B → C").begin()
    a = driver.queue[0]
    driver.step()
    snapshot = json.dumps(driver.state.to_json())
    engine, state = driver.engine, driver.state
    assert engine.ended(state, a.key, {"again": 1}) == []
    assert engine.ended(state, ("", 999, -1), {}) == []
    assert engine.ended(state, ("/9.9", a.node, -1), {}) == []
    assert engine.ended(state, ("", a.node, 3), {}) == []
    assert engine.failed(state, a.key, "late") == []
    assert json.dumps(state.to_json()) == snapshot
    driver.run()
    assert driver.order == ["A", "B", "C"] and state.status == "finished"


def test_a_duplicate_item_end_is_ignored():
    driver = Driver("A → * B", {"A": [1, 2]}).begin()
    driver.step()
    first = driver.queue[0]
    driver.step()
    assert driver.engine.ended(driver.state, first.key, "again") == []
    driver.run()
    assert driver.state.output == [1, 2]


# -- property (1): random acyclic flows ---------------------------------------------------------------


def random_run(flow, data) -> Driver:
    """A driver that ends a random running task at each step."""
    driver = Driver(flow, default=lambda s: {"n": s.node})
    driver.begin()
    while driver.queue:
        driver.step(data.draw(st.integers(0, len(driver.queue) - 1), label="which ends"))
    return driver


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(acyclic_flows(), st.data())
def test_every_node_of_an_acyclic_flow_runs_once_after_all_its_predecessors(text, data):
    flow = compile_flow(text)
    driver = random_run(flow, data)
    assert driver.state.status == "finished"
    assert driver.state.running == {} and list(driver.state.frames) == [""]
    tasks = [node.id for node in flow.nodes if node.kind == "task"]
    assert sorted(s.node for s in driver.started) == tasks  # each task exactly once
    when = {(kind, key[1]): i for i, (kind, key) in enumerate(driver.events)}
    edges = collapsed_edges(flow)
    for node in tasks:
        for pred in (p for p, n in edges if n == node and flow.nodes[p].kind == "task"):
            assert when[("end", pred)] < when[("start", node)], (text, pred, node)
    # and a task starts as soon as its last predecessor ends: never later than the next step
    for node in tasks:
        preds = [p for p, n in edges if n == node and flow.nodes[p].kind == "task"]
        if preds:
            last = max(when[("end", p)] for p in preds)
            assert all(kind == "start" for kind, _ in driver.events[last + 1 : when[("start", node)]])


def task_graph(text: str):
    flow = compile_flow(text)
    edges = {(a, b) for a, b in collapsed_edges(flow) if flow.nodes[a].kind == flow.nodes[b].kind == "task"}
    return flow, edges


@pytest.mark.parametrize("shape", ["meet", "fan-out", "subflow", "alternation", "meet not from START"])
def test_the_acyclic_flow_generator_makes_every_shape(shape):
    # The property above is only as good as its flows: the generator must reach each shape.
    def has(text: str) -> bool:
        flow, edges = task_graph(text)
        tasks = [n.id for n in flow.nodes if n.kind == "task"]
        if shape == "meet":
            return any(sum(1 for a, b in edges if b == t) >= 2 for t in tasks)
        if shape == "fan-out":
            return any(sum(1 for a, b in edges if a == t) >= 2 for t in tasks)
        if shape == "subflow":
            return any(n.kind == "subflow-start" for n in flow.nodes)
        if shape == "alternation":
            return "|" in text
        return re.search(r":m\d+ →", text) is not None

    find(acyclic_flows(), has, settings=settings(max_examples=300, database=None, phases=[Phase.generate]))


# -- property (3): the cost of a step does not depend on the flow's size --------------------------------


class Touching(dict):
    """A dict that records which keys were read or written, and whether it was scanned."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.touched: set = set()
        self.scanned = False

    def __getitem__(self, key):
        self.touched.add(key)
        return super().__getitem__(key)

    def __setitem__(self, key, value) -> None:
        self.touched.add(key)
        super().__setitem__(key, value)

    def __delitem__(self, key) -> None:
        self.touched.add(key)
        super().__delitem__(key)

    def __contains__(self, key) -> bool:
        self.touched.add(key)
        return super().__contains__(key)

    def get(self, key, default=None):
        self.touched.add(key)
        return super().get(key, default)

    def pop(self, key, *default):
        self.touched.add(key)
        return super().pop(key, *default)

    def setdefault(self, key, default=None):
        self.touched.add(key)
        return super().setdefault(key, default)

    def _scan(self):
        self.scanned = True

    def __iter__(self):
        self._scan()
        return super().__iter__()

    def keys(self):
        self._scan()
        return super().keys()

    def values(self):
        self._scan()
        return super().values()

    def items(self):
        self._scan()
        return super().items()

    def copy(self):
        self._scan()
        return dict(self)


FRAME_VECTORS = ("activations", "pending", "outputs", "runs", "iterations")


@cache
def shaped(shape: str, size: int):
    tasks = [f"T{i}" for i in range(1, size + 1)]
    if shape == "chain":
        return compile_flow(" → ".join(tasks))
    if shape == "fan-in":
        return compile_flow("|".join(tasks) + " → Z")
    return compile_flow("\n".join(tasks))  # independent statements


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["chain", "fan-in", "parallel"]), st.sampled_from([4, 40, 400]), st.data())
def test_ending_a_task_touches_only_its_successors(shape, size, data):
    flow = shaped(shape, size)
    driver = Driver(flow).begin()
    for _ in range(data.draw(st.integers(0, size - 1), label="steps before")):
        driver.step()
    state, frame = driver.state, driver.state.root
    before = {name: dict(getattr(frame, name)) for name in FRAME_VECTORS}
    vectors = {name: Touching(getattr(frame, name)) for name in FRAME_VECTORS}
    for name, vector in vectors.items():
        setattr(frame, name, vector)
    state.running = running = Touching(state.running)
    start = driver.queue[0]
    new = driver.step()
    touched = {name: set(vector.touched) for name, vector in vectors.items()}
    assert not running.scanned and running.touched <= {start.key} | {s.key for s in new}
    # What the end may reach: the node's successors and, through structural nodes
    # (a subflow's end, END), their successors: never more than a handful of nodes.
    near = {start.node}
    for s in flow.successors(start.node):
        near |= {s} | (set(flow.successors(s)) if flow.nodes[s].kind != "task" else set())
    assert len(near) <= 4
    # A join that starts reads the outputs of its own predecessors (its input is their
    # aggregate), and nothing else.
    inputs = {p for n in near for p in flow.predecessors(n)}
    for name, vector in vectors.items():
        assert not vector.scanned, name
        assert touched[name] <= (near | inputs if name == "outputs" else near), (name, touched[name], near)
        changed = {k for k in set(vector) | set(before[name]) if dict.get(vector, k) != before[name].get(k)}
        assert changed <= near, name
    assert all(len(keys) <= 3 for name, keys in touched.items() if name != "outputs"), touched
    if shape == "chain":
        assert len(touched["outputs"]) <= 3, touched


def test_each_activation_brings_the_output_it_was_made_with():
    # A runs three times (the gate loops back to it); C waits for A and D, twice.
    text = ":a A :o → gate → :a;\n:o → :m C;\nD → :m"
    counter = iter(range(1, 10))
    driver = run(
        text, {"A": lambda s: {"a": next(counter)}, "gate": lambda s: s.input, "D": {"d": 1}}, limit=3
    )
    assert driver.inputs("C")[:2] == [[{"a": 1}, {"d": 1}], [{"a": 2}, {"a": 3}]]
