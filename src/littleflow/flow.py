"""The compiled flow: a table of nodes and a sparse edge set, as plain JSON."""

from __future__ import annotations

import json
from array import array
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from itertools import accumulate, islice
from operator import eq
from typing import Any

KINDS = (
    "start",
    "end",
    "task",
    "literal",
    "resource",
    "subflow-start",
    "subflow-end",
    "choice",
    "choice-end",
    "repeat",
    "while",
    "loop-end",
)
#: The kinds that open a form of several nodes, ``pair`` naming the node that closes it.
OPENING = frozenset(("subflow-start", "choice", "repeat", "while"))
#: The kinds that close a conditional or a loop: only one of their predecessors ever activates
#: them, so they wait for one (LANGUAGE.md §9.7: nothing waits for the branches not taken).
JOINING_ONE = frozenset(("choice-end", "loop-end"))


@dataclass(slots=True)
class Node:
    """One node of a compiled flow.

    ``name`` is the task that runs (aliases resolved) and ``alias`` the name
    written when it differs. ``pair`` links a subflow's start and end nodes;
    ``mode`` says whether a resource is read (``source``) or written (``sink``).
    ``condition`` is the JSONPath condition of a conditional's branch (on the branch's first
    node; None for ``else``) or of a loop (on its ``repeat`` or ``while`` node).
    """

    id: int
    kind: str
    name: str | None = None
    alias: str | None = None
    parameters: Any = None
    guard: str | None = None
    merge: bool = False
    iterate: bool = False
    doc: str | None = None
    uri: str | None = None
    value: Any = None
    line: int = 0
    column: int = 0
    pair: int | None = None
    mode: str | None = None
    condition: str | None = None

    @property
    def label(self) -> str:
        """A short human name: the task name, START/END, or the kind."""
        if self.kind == "start":
            return "START"
        if self.kind == "end":
            return "END"
        if self.kind == "task":
            return self.alias or self.name or "?"
        if self.kind == "resource":
            return f"<{self.uri}>"
        if self.kind == "literal":
            return "<literal>"
        return self.name or _LABELS.get(self.kind, self.kind)


_LABELS = {"choice": "if", "choice-end": "end if", "loop-end": "end loop"}
_NODE_FIELDS = tuple(f.name for f in fields(Node))
# Written only when set, so that flows without conditionals or loops keep their JSON of before.
_OPTIONAL_FIELDS = ("condition",)
_ALWAYS_FIELDS = tuple(name for name in _NODE_FIELDS if name not in _OPTIONAL_FIELDS)


class Flow:
    """A compiled flow: nodes in source order (START is 0, END is last) and edges.

    ``name``, ``doc`` and ``parameters`` come from the ``@flow`` declaration.

    Edges are kept in compressed sparse rows both ways, so memory grows with
    the number of edges and a node's successors or predecessors are found in
    time proportional to their number. A flow is not changed after it is built.
    """

    __slots__ = ("name", "doc", "parameters", "nodes", "_succ_at", "_succ", "_pred_at", "_pred")

    def __init__(
        self,
        nodes: list[Node],
        edges: Iterable[tuple[int, int]],
        name: str | None = None,
        doc: str | None = None,
        parameters: Any = None,
    ) -> None:
        self.name = name
        self.doc = doc
        self.parameters = parameters
        self.nodes = nodes
        n = len(nodes)
        shift = max(n, 1).bit_length()
        edges = edges if isinstance(edges, list) else list(edges)
        if edges and (min(map(min, edges)) < 0 or max(map(max, edges)) >= n):
            source, target = next((s, t) for s, t in edges if not (0 <= s < n and 0 <= t < n))
            raise ValueError(f"edge {source}→{target} names a node that does not exist")
        mask = (1 << shift) - 1
        codes = [source << shift | target for source, target in edges]
        codes.sort()  # the compiler's edges come nearly sorted: cheaper than sorting a set
        if any(map(eq, codes, islice(codes, 1, None))):
            codes = sorted(set(codes))
        self._succ_at, self._succ = _rows(codes, shift, mask, n)
        codes = sorted((code & mask) << shift | code >> shift for code in codes)
        self._pred_at, self._pred = _rows(codes, shift, mask, n)

    @property
    def start(self) -> int:
        """The id of START (always 0)."""
        return 0

    @property
    def end(self) -> int:
        """The id of END (always the last node)."""
        return len(self.nodes) - 1

    def __len__(self) -> int:
        return len(self.nodes)

    def successors(self, node: int) -> Sequence[int]:
        """Ids of the nodes ``node`` has an edge to, in node order."""
        return self._succ[self._succ_at[node] : self._succ_at[node + 1]]

    def predecessors(self, node: int) -> Sequence[int]:
        """Ids of the nodes with an edge to ``node``, in node order."""
        return self._pred[self._pred_at[node] : self._pred_at[node + 1]]

    def edges(self) -> Iterator[tuple[int, int]]:
        """Every edge as ``(from, to)``, ordered by source then target."""
        succ, at = self._succ, self._succ_at
        for source in range(len(self.nodes)):
            for k in range(at[source], at[source + 1]):
                yield source, succ[k]

    @property
    def edge_count(self) -> int:
        return len(self._succ)

    def with_skipped(self, statuses: Mapping[int, str]) -> dict[int, str]:
        """``statuses`` (node id -> status) with the nodes of a branch not taken, or of a form
        its guard skipped, marked ``skipped`` too: a run records the first node only, and the
        nodes after it up to the next branch or the form's end share its fate."""
        found = dict(statuses)
        nodes = self.nodes
        for node_id, state in statuses.items():
            if state != "skipped":
                continue
            node = nodes[node_id]
            last = node.pair if node.kind in OPENING and node.pair is not None else node_id
            for choice in self.predecessors(node_id):
                if nodes[choice].kind == "choice":  # a branch: its nodes run up to the next branch's
                    later = [s for s in self.successors(choice) if s > node_id] + [
                        nodes[choice].pair or node_id + 1
                    ]
                    last = max(last, min(later) - 1)
            for inner in range(node_id + 1, min(last, len(nodes) - 1) + 1):
                found.setdefault(inner, "skipped")
        return found

    def thresholds(self) -> array[int]:
        """How many completions each node waits for (LANGUAGE.md §9.1): its
        incoming edges that do not close a cycle, and at least 1; the node that closes a
        conditional or a loop waits for one (only one of its predecessors ever runs).

        An edge closes a cycle when the depth-first walk from START, taking
        successors in node order, finds it leading back to a node on the path.
        """
        n = len(self.nodes)
        counts = array("q", (self._pred_at[i + 1] - self._pred_at[i] for i in range(n)))
        succ, at = self._succ, self._succ_at
        state = bytearray(n)  # 0 unseen, 1 on the path, 2 done
        state[0] = 1
        stack = [(0, at[0])]
        while stack:
            node, k = stack[-1]
            if k == at[node + 1]:
                stack.pop()
                state[node] = 2
                continue
            stack[-1] = (node, k + 1)
            target = succ[k]
            if state[target] == 1:
                counts[target] -= 1
            elif state[target] == 0:
                state[target] = 1
                stack.append((target, at[target]))
        nodes = self.nodes
        for i in range(n):
            if counts[i] < 1 or nodes[i].kind in JOINING_ONE:
                counts[i] = 1
        return counts

    def reachable(self) -> bytearray:
        """1 for each node some run can reach, 0 for a node that would wait forever for a
        predecessor that never ends (or has none): completions spread from START, each node
        starting once it has received its threshold."""
        thresholds = self.thresholds()
        received = [0] * len(self.nodes)
        reached = bytearray(len(self.nodes))
        reached[0] = 1
        ready = deque([0])
        while ready:
            for target in self.successors(ready.popleft()):
                received[target] += 1
                if not reached[target] and received[target] >= thresholds[target]:
                    reached[target] = 1
                    ready.append(target)
        return reached

    def to_json(self) -> dict[str, Any]:
        """The flow as plain JSON-ready data (see ``littleflow compile --format json``)."""
        return {
            "name": self.name,
            "doc": self.doc,
            "parameters": self.parameters,
            "nodes": [_node_json(node) for node in self.nodes],
            "edges": [[source, target] for source, target in self.edges()],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Flow:
        """Rebuild a flow from :meth:`to_json` output (unknown keys are ignored)."""
        nodes = [Node(**{k: v for k, v in item.items() if k in _NODE_FIELDS}) for item in data["nodes"]]
        for index, node in enumerate(nodes):
            if node.id != index:
                raise ValueError(f"node at position {index} has id {node.id}")
        edges = (tuple(edge) for edge in data["edges"])
        return cls(nodes, edges, data.get("name"), data.get("doc"), data.get("parameters"))

    def dumps(self, **options: Any) -> str:
        """The flow as a JSON string."""
        return json.dumps(self.to_json(), ensure_ascii=False, **options)

    @classmethod
    def loads(cls, text: str) -> Flow:
        """Rebuild a flow from :meth:`dumps` output."""
        return cls.from_json(json.loads(text))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Flow):
            return NotImplemented
        return (
            self.name == other.name
            and self.doc == other.doc
            and self.parameters == other.parameters
            and self.nodes == other.nodes
            and self._succ == other._succ
            and self._succ_at == other._succ_at
        )

    def __repr__(self) -> str:
        return f"<Flow {self.name or ''} nodes={len(self.nodes)} edges={self.edge_count}>"


def _node_json(node: Node) -> dict[str, Any]:
    data = {key: getattr(node, key) for key in _ALWAYS_FIELDS}
    for key in _OPTIONAL_FIELDS:
        value = getattr(node, key)
        if value is not None:
            data[key] = value
    return data


def _rows(codes: list[int], shift: int, mask: int, n: int) -> tuple[array[int], array[int]]:
    """Compressed sparse rows from sorted ``row << shift | column`` codes."""
    columns = array("q", (code & mask for code in codes))
    counts = [0] * (n + 1)
    for code in codes:
        counts[(code >> shift) + 1] += 1
    return array("q", accumulate(counts)), columns
