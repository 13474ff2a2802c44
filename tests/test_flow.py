"""The compiled Flow: its JSON shape, round trip, neighbours and thresholds (LANGUAGE.md §1, §9.1)."""

import json

import pytest
from support import one

from littleflow import Flow, Node, compile_flow

KINDS = {"start", "end", "task", "literal", "resource", "subflow-start", "subflow-end"}
EVERYTHING = """@flow everything '''All node kinds.'''
@task A (- retries: 1 -) '''Task A.'''
@task X = B (- k: 1 -)
<- seed: 1 -> → A (- b: 2 -) → ? `$[?(@.ok == true)]` X → > * { C D } → <out.json>(- method: PUT -)
<in.json> → wait:delay;
"""

NODE_TYPES = {
    "id": int,
    "kind": str,
    "name": (str, type(None)),
    "alias": (str, type(None)),
    "guard": (str, type(None)),
    "merge": bool,
    "iterate": bool,
    "doc": (str, type(None)),
    "uri": (str, type(None)),
    "line": int,
    "column": int,
}


def test_json_shape():
    flow = compile_flow(EVERYTHING)
    data = json.loads(json.dumps(flow.to_json()))  # plain JSON all the way down
    assert {"name", "doc", "nodes", "edges"} <= data.keys()
    assert (data["name"], data["doc"]) == ("everything", "All node kinds.")
    for i, node in enumerate(data["nodes"]):
        assert set(NODE_TYPES) | {"parameters", "value"} <= node.keys()
        for key, kind in NODE_TYPES.items():
            assert isinstance(node[key], kind), (key, node)
        assert node["id"] == i and node["kind"] in KINDS
    assert data["nodes"][0]["kind"] == "start" and data["nodes"][-1]["kind"] == "end"
    assert [n["kind"] for n in data["nodes"]].count("start") == 1
    assert all(
        isinstance(e, list) and len(e) == 2 and all(isinstance(i, int) for i in e) for e in data["edges"]
    )
    assert sorted(map(tuple, data["edges"])) == sorted(flow.edges())


def test_json_node_contents():
    every = compile_flow(EVERYTHING).to_json()["nodes"]
    nodes = {n["alias"] or n["name"] or n["kind"]: n for n in every}
    assert nodes["literal"]["value"] == {"seed": 1}
    a = nodes["A"]
    assert (a["kind"], a["parameters"], a["doc"], a["alias"]) == (
        "task",
        {"retries": 1, "b": 2},
        "Task A.",
        None,
    )
    assert (a["line"], a["column"]) == (4, 17)
    x = nodes["X"]
    assert (x["name"], x["alias"], x["parameters"], x["guard"]) == ("B", "X", {"k": 1}, "$[?(@.ok == true)]")
    start = nodes["subflow-start"]
    assert (start["merge"], start["iterate"]) == (True, True)
    resources = [n for n in every if n["kind"] == "resource"]
    assert [(r["uri"], r["mode"], r["parameters"]) for r in resources] == [
        ("out.json", "sink", {"method": "PUT"}),
        ("in.json", "source", None),
    ]
    assert nodes["wait:delay"]["name"] == "wait:delay"


def test_json_round_trip():
    flow = compile_flow(EVERYTHING + "日本 → :l;\n:l → café → :start;")
    again = Flow.from_json(flow.to_json())
    assert again == flow
    assert again.to_json() == flow.to_json()
    text = flow.dumps()
    assert "日本" in text  # written as text, not escapes
    assert Flow.loads(text) == flow
    assert list(Flow.loads(text).thresholds()) == list(flow.thresholds())


def test_from_json_ignores_unknown_keys():
    data = compile_flow("A → B").to_json()
    data["version"] = 3
    data["nodes"][1]["colour"] = "red"
    flow = Flow.from_json(data)
    assert [n.name for n in flow.nodes] == [None, "A", "B", None]
    assert list(flow.edges()) == [(0, 1), (1, 2), (2, 3)]


def test_from_json_rejects_misnumbered_nodes():
    data = compile_flow("A").to_json()
    data["nodes"][1]["id"] = 5
    with pytest.raises(ValueError):
        Flow.from_json(data)


def test_edges_must_name_existing_nodes():
    with pytest.raises(ValueError):
        Flow([Node(0, "start"), Node(1, "end")], [(0, 2)])


def test_edges_neighbours_and_ends():
    nodes = [
        Node(0, "start"),
        Node(1, "task", "A"),
        Node(2, "task", "B"),
        Node(3, "task", "C"),
        Node(4, "end"),
    ]
    flow = Flow(nodes, [(0, 2), (0, 1), (2, 3), (1, 3), (0, 1), (3, 4)])
    assert list(flow.edges()) == [(0, 1), (0, 2), (1, 3), (2, 3), (3, 4)]  # deduplicated and ordered
    assert list(flow.successors(0)) == [1, 2]
    assert list(flow.predecessors(3)) == [1, 2]
    assert list(flow.predecessors(0)) == [] and list(flow.successors(4)) == []
    assert (flow.start, flow.end, len(flow)) == (0, 4, 5)


def test_thresholds_count_forward_predecessors():
    flow = compile_flow("A → :m C;\nB → :m;\nD")  # C joins A and B; END joins C and D
    assert [n.label for n in flow.nodes] == ["START", "A", "C", "B", "D", "END"]
    assert list(flow.thresholds()) == [1, 1, 2, 1, 1, 2]


def test_thresholds_ignore_the_back_edge_of_a_poll_loop():
    flow = compile_flow(":poll wait:delay(- duration: 60 -) → check → :poll;")
    wait, check = one(flow, "wait:delay").id, one(flow, "check").id
    assert set(flow.predecessors(wait)) == {0, check}
    assert flow.thresholds()[wait] == 1 and flow.thresholds()[check] == 1


def test_thresholds_of_a_loop_entered_by_a_join():
    flow = compile_flow("A → :m C → D → :m;\nB → :m;")  # D → C closes the cycle; C joins A and B
    c = one(flow, "C").id
    assert len(flow.predecessors(c)) == 3
    assert flow.thresholds()[c] == 2


def test_thresholds_routing_back_to_start():
    flow = compile_flow("A → B → :start;")
    assert list(flow.predecessors(0)) == [one(flow, "B").id]
    assert list(flow.thresholds()) == [1, 1, 1, 1]


def test_thresholds_count_cross_edges():
    flow = compile_flow("A :o → B → :m C;\n:o → D → :m")  # D → C reaches C after it is done, not on the path
    assert flow.thresholds()[one(flow, "C").id] == 2


def test_thresholds_follow_node_order_in_the_walk():
    # X → Y and Y → X form a cycle; the walk reaches X first (node order), so Y → X is the back edge
    nodes = [Node(0, "start"), Node(1, "task", "X"), Node(2, "task", "Y"), Node(3, "end")]
    flow = Flow(nodes, [(0, 1), (0, 2), (1, 2), (2, 1), (2, 3)])
    assert list(flow.thresholds()) == [1, 1, 2, 1]


def test_thresholds_at_least_one():
    nodes = [Node(0, "start"), Node(1, "task", "lonely"), Node(2, "end")]
    assert list(Flow(nodes, [(0, 2)]).thresholds()) == [1, 1, 1]
