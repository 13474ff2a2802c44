"""Where the nodes and edges of a flow go: layers, no overlaps, edges that meet their nodes."""

from __future__ import annotations

import time
from graphlib import CycleError, TopologicalSorter
from itertools import pairwise

from hypothesis import HealthCheck, given, settings
from test_properties import flows

from littleflow import compile_flow
from littleflow.diagram import arrow_tag
from littleflow.flow import Flow, Node
from littleflow.layout import LABEL_FONT, MARGIN, Layout, layout, node_size, text_width

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HELLO = "fetch → { clean → store  index } → :ready notify;\naudit → :ready;"


def overlap(a: tuple, b: tuple, slack: float = 0.0) -> bool:
    """Whether two (x, y, w, h) boxes share more than ``slack`` px of interior."""
    return (
        a[0] + slack < b[0] + b[2]
        and b[0] + slack < a[0] + a[2]
        and a[1] + slack < b[1] + b[3]
        and b[1] + slack < a[1] + a[3]
    )


def distance(point: tuple, box: tuple) -> float:
    """How far ``point`` is from ``box`` (0 inside it)."""
    x, y, w, h = box
    dx = max(x - point[0], 0, point[0] - x - w)
    dy = max(y - point[1], 0, point[1] - y - h)
    return (dx * dx + dy * dy) ** 0.5


def acyclic(flow: Flow) -> bool:
    try:
        TopologicalSorter({i: flow.predecessors(i) for i in range(len(flow))}).prepare()
    except CycleError:
        return False
    return True


def check(flow: Flow, drawn: Layout) -> None:
    """What holds for every layout: every node placed inside the picture, no two
    boxes overlap, edges run from their source's rim to their target's without
    crossing another node, labels cover no node."""
    boxes = drawn.nodes
    assert sorted(boxes) == list(range(len(flow)))
    for x, y, w, h in boxes.values():
        assert x >= MARGIN - 0.1 and y >= MARGIN - 0.1
        assert x + w <= drawn.width and y + h <= drawn.height
    items = list(boxes.items())
    for k, (i, a) in enumerate(items):
        for j, b in items[k + 1 :]:
            assert not overlap(a, b), (i, a, j, b)
    assert [(s, t) for s, t, _ in drawn.edges] == list(flow.edges())
    for s, t, points in drawn.edges:
        assert len(points) >= 2
        assert all(0 <= x <= drawn.width and 0 <= y <= drawn.height for x, y in points)
        assert distance(points[0], boxes[s]) <= 0.2 and distance(points[-1], boxes[t]) <= 0.2
        for a, b in pairwise(points):
            # a curve between two points stays inside the box they span
            span = (min(a[0], b[0]), min(a[1], b[1]), abs(a[0] - b[0]), abs(a[1] - b[1]))
            for i, box in boxes.items():
                if i not in (s, t):
                    assert not overlap(span, box, 0.2), (s, t, a, b, i, box)
    for (s, t), (x, y) in drawn.labels.items():
        tag = arrow_tag(flow.nodes[t])
        w, h = text_width(tag, LABEL_FONT), LABEL_FONT
        for i, box in boxes.items():
            assert not overlap((x - w / 2, y - h / 2, w, h), box), (s, t, tag, i)


def flow_of(n: int, edges: list[tuple[int, int]]) -> Flow:
    nodes = [Node(0, "start")] + [Node(i, "task", f"t{i}") for i in range(1, n - 1)] + [Node(n - 1, "end")]
    return Flow(nodes, edges)


def test_left_to_right_each_step_lies_right_of_the_one_before():
    flow = compile_flow(HELLO)
    drawn = layout(flow)
    check(flow, drawn)
    for s, t in flow.edges():
        (xs, _, ws, _), (xt, _, _, _) = drawn.nodes[s], drawn.nodes[t]
        assert xt > xs + ws
    # the two branches of the subflow sit one above the other
    clean, index = drawn.nodes[3], drawn.nodes[5]
    assert clean[0] == index[0] and not overlap(clean, index)


def test_vertical_lays_layers_top_to_bottom():
    flow = compile_flow(HELLO)
    drawn = layout(flow, vertical=True)
    check(flow, drawn)
    for s, t in flow.edges():
        (_, ys, _, hs), (_, yt, _, _) = drawn.nodes[s], drawn.nodes[t]
        assert yt > ys + hs
    flat = layout(flow)
    assert drawn.width < flat.width and drawn.height > flat.height


@SETTINGS
@given(flows())
def test_any_flow_lays_out_cleanly_both_ways(text):
    flow = compile_flow(text)
    for vertical in (False, True):
        drawn = layout(flow, vertical=vertical)
        check(flow, drawn)
        if acyclic(flow):
            axis = 1 if vertical else 0
            for s, t in flow.edges():
                assert drawn.nodes[t][axis] > drawn.nodes[s][axis] + drawn.nodes[s][axis + 2]


def test_the_same_flow_always_gets_the_same_layout():
    text = "A → { B → C  D → E  F } → G;\n:start → H → :start;\nA → > :end"
    first = layout(compile_flow(text), vertical=True)
    assert layout(compile_flow(text), vertical=True) == first
    assert layout(Flow.loads(compile_flow(text).dumps()), vertical=True) == first


def test_cycles_are_drawn_with_every_edge():
    flow = compile_flow("A → B → C → :start")  # START → A → B → C → START; END stands alone
    drawn = layout(flow)
    check(flow, drawn)
    back = next(points for s, t, points in drawn.edges if (s, t) == (3, 0))
    assert len(back) > 2  # routed back past A and B through grandalf's dummy vertices


def test_two_way_edges_run_apart():
    flow = compile_flow("A → :start")  # START → A and A → START
    drawn = layout(flow)
    check(flow, drawn)
    there, back = (points for _, _, points in drawn.edges)
    assert there[0][1] != back[-1][1] and there[-1][1] != back[0][1]


def test_an_edge_to_the_same_node_loops_outside_it():
    flow = compile_flow(":x → A → :x")
    for vertical in (False, True):
        drawn = layout(flow, vertical=vertical)
        check(flow, drawn)
        ((s, t, points),) = drawn.edges
        assert (s, t) == (1, 1) and len(points) == 4
        assert all(distance(p, drawn.nodes[1]) < 0.2 for p in (points[0], points[-1]))
        assert all(distance(p, drawn.nodes[1]) > 10 for p in points[1:-1])


def test_disconnected_pieces_are_stacked_across_the_flow():
    flow = flow_of(6, [(0, 1), (1, 5), (2, 3), (3, 4)])  # START → t1 → END, and t2 → t3 → t4
    for vertical in (False, True):
        drawn = layout(flow, vertical=vertical)
        check(flow, drawn)
        first = [drawn.nodes[i] for i in (0, 1, 5)]
        second = [drawn.nodes[i] for i in (2, 3, 4)]
        across = 0 if vertical else 1  # side by side when vertical, one below the other otherwise
        assert max(b[across] + b[across + 2] for b in first) < min(b[across] for b in second)
        along = 1 - across
        assert min(b[along] for b in first) == min(b[along] for b in second) == MARGIN


def test_the_compiler_can_leave_end_alone():
    flow = compile_flow("A → B → :start")
    assert not flow.predecessors(flow.end)
    check(flow, layout(flow))
    check(flow, layout(flow, vertical=True))


def test_box_sizes_follow_kind_and_text():
    small, big = Node(1, "task", "A"), Node(2, "task", "a_much_longer_task_name")
    assert node_size(big)[0] > node_size(small)[0] and node_size(big)[1] == node_size(small)[1]
    capped = node_size(Node(3, "task", "x" * 200))
    assert capped == node_size(Node(4, "task", "x" * 39 + "…"))
    assert node_size(Node(5, "task", "A", guard="$.x"))[1] > node_size(small)[1]  # a second line
    assert node_size(Node(0, "start")) == (16, 16) and node_size(Node(9, "end"))[0] < node_size(small)[0]
    fork = node_size(Node(6, "subflow-start"))
    assert fork[0] < fork[1] and node_size(Node(6, "subflow-start"), vertical=True) == fork[::-1]
    assert node_size(Node(7, "task", "日本語"))[0] > node_size(Node(7, "task", "abc"))[0]


def test_labels_on_arrows_into_forks_get_room():
    flow = compile_flow("A → ? `$[?(@.status == 'a long status value')]` > { B  C } → > :end")
    for vertical in (False, True):
        drawn = layout(flow, vertical=vertical)
        check(flow, drawn)
        assert set(drawn.labels) == {(1, 2), (5, 6)}


def test_a_flow_of_300_nodes_lays_out_quickly():
    text = ";\n".join(f"s{g} → {{ b{g} → c{g}  d{g} → e{g} → f{g}  g{g} }} → m{g}" for g in range(30))
    flow = compile_flow(text)
    assert len(flow) > 300
    begun = time.perf_counter()
    drawn = layout(flow)
    took = time.perf_counter() - begun
    check(flow, drawn)
    print(f"{len(flow)} nodes laid out in {took * 1000:.0f} ms")  # a figure, never a failure (DESIGN.md)
    chain = flow_of(300, [(i, i + 1) for i in range(299)])
    check(chain, layout(chain, vertical=True))
