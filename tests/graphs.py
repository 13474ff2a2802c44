"""Helpers for tests that compare compiled graphs with the conformance notation."""

from __future__ import annotations

from collections import Counter

from littleflow import Flow

STRUCTURAL = ("subflow-start", "subflow-end")


def collapsed_edges(flow: Flow) -> set[tuple[int, int]]:
    """The flow's edges with subflow start/end nodes removed, each predecessor
    of a removed node connected to each of its successors."""
    succ = {i: set(flow.successors(i)) for i in range(len(flow))}
    pred = {i: set(flow.predecessors(i)) for i in range(len(flow))}
    for node in flow.nodes:
        if node.kind in STRUCTURAL:
            i = node.id
            for p in pred[i]:
                succ[p].discard(i)
            for s in succ[i]:
                pred[s].discard(i)
            for p in pred[i] - {i}:
                for s in succ[i] - {i}:
                    succ[p].add(s)
                    pred[s].add(p)
            del succ[i], pred[i]
    return {(a, b) for a, targets in succ.items() for b in targets}


def node_names(flow: Flow) -> dict[int, str]:
    """Conformance names: START, END, task names (``D#1``, ``D#2`` when repeated), ``<literal>``."""
    kept = [n for n in flow.nodes if n.kind not in STRUCTURAL]

    def base(node) -> str:
        if node.kind == "literal":
            return "<literal>"
        return node.label

    counts = Counter(base(n) for n in kept)
    seen: Counter = Counter()
    names = {}
    for node in kept:
        name = base(node)
        if counts[name] > 1 and node.kind == "task":
            seen[name] += 1
            name = f"{name}#{seen[name]}"
        names[node.id] = name
    return names


def graph(flow: Flow) -> set[str]:
    """The flow as a set of ``X→Y`` strings in conformance notation."""
    names = node_names(flow)
    return {f"{names[a]}→{names[b]}" for a, b in collapsed_edges(flow)}


def parse_edges(text: str) -> set[str]:
    """``"START→A  A→END"`` as a set of edge strings."""
    return {edge for edge in text.split() if edge}
