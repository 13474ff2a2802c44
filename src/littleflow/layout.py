"""Where each node and edge of a compiled flow goes in a picture.

Layers come from grandalf's Sugiyama layout (cycles broken by reversing the
edges that close them, crossings reduced, long edges routed through dummy
vertices). Disconnected pieces are laid out one by one and stacked across the
flow's direction. Boxes are sized for the text ``drawing.box_lines`` puts in
them, and the gap between two layers is wide enough for the labels that
``drawing.edge_tag`` writes on the arrows crossing it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from math import ceil
from unicodedata import east_asian_width

from grandalf.graphs import Edge, Vertex, graph_core
from grandalf.layouts import SugiyamaLayout

from .drawing import DECISIONS, box_lines, edge_tag
from .flow import Flow, Node

Point = tuple[float, float]
Box = tuple[float, float, float, float]

FONT = 12  # px: text in boxes
LABEL_FONT = 11  # px: labels on arrows
LINE = 16  # px between the baselines of a box's lines
MARGIN = 12
_PAD = (10, 6)  # text to box edge, across and down
_LAYER_GAP = 44
_NEIGHBOUR_GAP = 24
_PART_GAP = 32
_LOOP = 14  # how far a node's edge to itself reaches out
_TWIN = 5  # how far an edge against the flow keeps from the others
_ROUNDS = 3  # crossing-reduction sweeps


@dataclass(frozen=True, slots=True)
class Layout:
    """A flow's picture, in px from the top-left corner.

    ``nodes`` maps node ids to boxes ``(x, y, w, h)``. Each edge is
    ``(source, target, points)``, its points running from the rim of the
    source's shape to the rim of the target's (START and END are the circles
    inscribed in their boxes). Two points that share an x or a y are joined by a
    straight line, others by a curve that leaves and arrives in the direction of
    the flow (a cubic Bézier with both control points halfway along it); no
    joint crosses a node. ``labels`` holds the centre of the label on each edge
    that ``drawing.edge_tag`` gives one.
    """

    width: float
    height: float
    nodes: dict[int, Box]
    edges: list[tuple[int, int, list[Point]]]
    labels: dict[tuple[int, int], Point] = field(default_factory=dict)


def layout(flow: Flow, *, vertical: bool = False) -> Layout:
    """Place the nodes of ``flow`` in layers left to right (top to bottom if
    ``vertical``) and route its edges between them. The same flow always gets
    the same layout."""
    sizes = [node_size(node, vertical) for node in flow.nodes]
    edges = list(flow.edges())
    back = _back_edges(flow)
    tags = {(s, t): tag for s, t in edges if (tag := edge_tag(flow, s, t))}
    nodes: dict[int, Box] = {}
    routes: dict[tuple[int, int], list[Point]] = {}
    labels: dict[tuple[int, int], Point] = {}
    across = MARGIN  # where the next piece starts, across the flow
    width = height = 0.0
    for part, part_edges in _parts(len(flow.nodes), edges):
        boxes, paths, marks = _place(part, part_edges, flow, sizes, back, tags, vertical)
        label_boxes = [_label_box(marks[e], tags[e]) for e in marks]
        points = [p for box in (*boxes.values(), *label_boxes) for p in _corners(box)]
        points += [p for path in paths.values() for p in path]
        x0 = min(x for x, _ in points)
        y0 = min(y for _, y in points)
        dx, dy = (across - x0, MARGIN - y0) if vertical else (MARGIN - x0, across - y0)
        nodes.update({i: (x + dx, y + dy, w, h) for i, (x, y, w, h) in boxes.items()})
        routes.update({e: [(x + dx, y + dy) for x, y in path] for e, path in paths.items()})
        labels.update({e: (x + dx, y + dy) for e, (x, y) in marks.items()})
        right = max(x for x, _ in points) + dx
        bottom = max(y for _, y in points) + dy
        width, height = max(width, right), max(height, bottom)
        across = (right if vertical else bottom) + _PART_GAP
    return Layout(
        _r(width + MARGIN),
        _r(height + MARGIN),
        {i: (_r(x), _r(y), _r(w), _r(h)) for i, (x, y, w, h) in sorted(nodes.items())},
        [(s, t, [(_r(x), _r(y)) for x, y in routes[s, t]]) for s, t in edges],
        {e: (_r(x), _r(y)) for e, (x, y) in sorted(labels.items())},
    )


def node_size(node: Node, vertical: bool = False) -> tuple[float, float]:
    """Width and height of a node's shape."""
    if node.kind == "start":
        return 16.0, 16.0
    if node.kind == "end":
        return 20.0, 20.0
    if node.kind in ("subflow-start", "subflow-end"):
        return (32.0, 6.0) if vertical else (6.0, 32.0)
    if node.kind in DECISIONS:
        return 24.0, 24.0
    lines = box_lines(node) or [""]
    w = max(text_width(line, FONT) for line in lines) + 2 * _PAD[0]
    h = len(lines) * LINE + 2 * _PAD[1] + (8 if node.kind == "resource" else 0)
    w += 8 if node.kind == "literal" else 0  # the folded corner
    return _even(max(w, 40)), _even(h)


def text_width(text: str, size: float) -> float:
    """A generous guess at the width of ``text`` in a sans-serif font of ``size`` px."""
    return sum(size if east_asian_width(c) in "WF" else 0.62 * size for c in text)


class _View:
    """What grandalf reads and writes of a vertex: its size and its centre."""

    __slots__ = ("h", "w", "xy")

    def __init__(self, w: float, h: float) -> None:
        self.w, self.h, self.xy = w, h, (0.0, 0.0)


def _place(
    part: list[int],
    edges: list[tuple[int, int]],
    flow: Flow,
    sizes: list[tuple[float, float]],
    back: set[tuple[int, int]],
    tags: dict[tuple[int, int], str],
    vertical: bool,
) -> tuple[dict[int, Box], dict[tuple[int, int], list[Point]], dict[tuple[int, int], Point]]:
    """Lay out one connected piece in its own coordinates.

    grandalf stacks layers top to bottom: its x runs along a layer and its y
    across layers, so for left to right the two are swapped on the way in and
    out. An edge runs straight through each layer it meets (out of its source,
    through its dummy vertices, into its target) and bends only in the gaps
    between layers, where there are no nodes.
    """
    loops = {s for s, t in edges if s == t}
    vertices = {}
    for i in part:
        w, h = sizes[i] if vertical else sizes[i][::-1]
        vertices[i] = Vertex(i)
        vertices[i].view = _View(w + 2 * _LOOP * (i in loops), h)  # room for the loop beside it
    links = [Edge(vertices[s], vertices[t]) for s, t in edges if s != t]
    sugiyama = SugiyamaLayout(graph_core(list(vertices.values()), links))
    sugiyama.xspace = _NEIGHBOUR_GAP
    sugiyama.dw = sugiyama.dh = 8  # dummy vertices: the room one long edge takes
    sugiyama.init_all(roots=[], inverted_edges=[e for e in links if (e.v[0].data, e.v[1].data) in back])
    for _ in range(_ROUNDS):
        for _ in sugiyama.ordering_step():
            pass
    sugiyama.setxy()
    _spread(sugiyama)
    spans = _stack_layers(sugiyama, _label_gaps(sugiyama, links, tags, vertical))
    grx = sugiyama.grx

    def out(p: Point) -> Point:
        return p if vertical else (p[1], p[0])

    def face(v: Vertex, towards: int, shift: float) -> Point:
        (x, y), (w, h) = v.view.xy, sizes[v.data] if vertical else sizes[v.data][::-1]
        if flow.nodes[v.data].kind in ("start", "end"):  # round
            return x + shift, y + towards * max(w * w / 4 - shift * shift, 0.0) ** 0.5
        return x + shift, y + towards * h / 2

    def side(v: Vertex, towards: int, shift: float = 0.0) -> Point:
        return v.view.xy[0] + shift, spans[grx[v].rank][towards > 0]

    pairs = set(edges)
    paths, labels = {}, {}
    for e in links:
        (s, t), (v0, v1) = (e.v[0].data, e.v[1].data), e.v
        towards = 1 if grx[v1].rank > grx[v0].rank else -1
        # an edge back against the flow keeps off the ports of the edges along it
        shift = _TWIN if (s, t) in back else -_TWIN if (t, s) in pairs else 0.0
        dummies = sugiyama.ctrls.get(e, {})
        points = [face(v0, towards, shift), side(v0, towards, shift)]
        for rank in range(grx[v0].rank + towards, grx[v1].rank, towards):
            points += [side(dummies[rank], -towards), side(dummies[rank], towards)]
        points += [side(v1, -towards, shift), face(v1, -towards, shift)]
        if (s, t) in tags:
            (x0, y0), (x1, y1) = points[-3], points[-2]
            labels[s, t] = out(((x0 + x1) / 2, (y0 + y1) / 2))
        paths[s, t] = [out(p) for i, p in enumerate(points) if i == 0 or p != points[i - 1]]
    boxes = {}
    for i, v in vertices.items():
        (x, y), (w, h) = out(v.view.xy), sizes[i]
        boxes[i] = (x - w / 2, y - h / 2, w, h)
    for i in loops:
        paths[i, i] = _loop(boxes[i], vertical)
        if (i, i) in tags:
            w, h = _label_size(tags[i, i])
            (x0, y0), (x1, y1) = paths[i, i][1:3]
            labels[i, i] = (x0 - w / 2, (y0 + y1) / 2) if vertical else ((x0 + x1) / 2, y0 - h / 2)
    return boxes, paths, labels


def _spread(sugiyama: SugiyamaLayout) -> None:
    """Push apart neighbours in a layer that grandalf's averaged placement left too close."""
    for layer in sugiyama.layers:
        end = None
        for v in layer:
            x, y = v.view.xy
            if end is not None and x - v.view.w / 2 < end:
                x = end + v.view.w / 2
                v.view.xy = (x, y)
            end = x + v.view.w / 2 + sugiyama.xspace


def _label_gaps(
    sugiyama: SugiyamaLayout, links: list[Edge], tags: dict[tuple[int, int], str], vertical: bool
) -> list[float]:
    """The gap after each layer: the usual one, or room for the labels on the
    edges that cross it to end in a fork, join or END."""
    gaps = [float(_LAYER_GAP)] * len(sugiyama.layers)
    for e in links:
        tag = tags.get((e.v[0].data, e.v[1].data))
        if tag:
            rank = sugiyama.grx[e.v[1]].rank
            before = rank - 1 if sugiyama.grx[e.v[0]].rank < rank else rank
            w, h = _label_size(tag)
            gaps[before] = max(gaps[before], (h if vertical else w) + 16)
    return gaps


def _stack_layers(sugiyama: SugiyamaLayout, gaps: list[float]) -> list[tuple[float, float]]:
    """Place the layers one after the other; returns where each starts and ends."""
    spans, at = [], 0.0
    for layer, gap in zip(sugiyama.layers, gaps):
        half = max(v.view.h for v in layer) / 2
        for v in layer:
            v.view.xy = (v.view.xy[0], at + half)
        spans.append((at, at + 2 * half))
        at += 2 * half + gap
    return spans


def _loop(box: Box, vertical: bool) -> list[Point]:
    """An edge from a node to itself: out, around and back in on the side across the flow."""
    x, y, w, h = box
    if vertical:
        return [(x, y + 0.3 * h), (x - _LOOP, y + 0.3 * h), (x - _LOOP, y + 0.7 * h), (x, y + 0.7 * h)]
    return [(x + 0.7 * w, y), (x + 0.7 * w, y - _LOOP), (x + 0.3 * w, y - _LOOP), (x + 0.3 * w, y)]


def _back_edges(flow: Flow) -> set[tuple[int, int]]:
    """The edges that close a cycle in a depth-first walk from START, then from
    each node not yet seen, successors taken in node order (as ``Flow.thresholds``)."""
    n = len(flow.nodes)
    state = bytearray(n)  # 0 unseen, 1 on the path, 2 done
    back = set()
    for root in range(n):
        if state[root]:
            continue
        state[root] = 1
        stack = [(root, iter(flow.successors(root)))]
        while stack:
            node, successors = stack[-1]
            target = next(successors, None)
            if target is None:
                stack.pop()
                state[node] = 2
            elif state[target] == 1:
                back.add((node, target))
            elif state[target] == 0:
                state[target] = 1
                stack.append((target, iter(flow.successors(target))))
    return back


def _parts(n: int, edges: list[tuple[int, int]]) -> Iterable[tuple[list[int], list[tuple[int, int]]]]:
    """The connected pieces of the graph, as (nodes, edges), ordered by their first node."""
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for s, t in edges:
        a, b = find(s), find(t)
        if a != b:
            parent[max(a, b)] = min(a, b)
    nodes: dict[int, list[int]] = {}
    for i in range(n):
        nodes.setdefault(find(i), []).append(i)
    links: dict[int, list[tuple[int, int]]] = {}
    for s, t in edges:
        links.setdefault(find(s), []).append((s, t))
    for root, members in nodes.items():
        yield members, links.get(root, [])


def _label_size(tag: str) -> tuple[float, float]:
    return text_width(tag, LABEL_FONT) + 4, LABEL_FONT + 4


def _label_box(centre: Point, tag: str) -> Box:
    w, h = _label_size(tag)
    return centre[0] - w / 2, centre[1] - h / 2, w, h


def _corners(box: Box) -> tuple[Point, Point]:
    x, y, w, h = box
    return (x, y), (x + w, y + h)


def _even(value: float) -> float:
    """``value`` rounded up to an even whole number, so that centres fall on whole px."""
    return float(2 * ceil(value / 2))


def _r(value: float) -> float:
    return round(value, 1)
