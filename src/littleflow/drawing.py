"""What the pictures share: status colours, text escaped for SVG, numbers for
SVG, and the text a node's box and an arrow show.

Used by ``diagram`` (Mermaid, DOT, SVG), ``layout`` (which sizes boxes by
their text) and ``timeline``; it imports none of them, so none imports another
for these.
"""

from __future__ import annotations

import json
import re
from xml.sax.saxutils import escape, quoteattr

from .flow import Flow, Node

#: Every run state a picture colours, in the order the legends list them.
STATUSES = ("done", "running", "queued", "failed", "skipped", "waiting", "terminated", "unreached")
#: status: (fill, stroke)
COLOURS = {
    "done": ("#c8e6c9", "#2e7d32"),
    "running": ("#bbdefb", "#1565c0"),
    "queued": ("#e1f5fe", "#0288d1"),  # sent to a worker, not yet taken (on Redis)
    "failed": ("#ffcdd2", "#c62828"),
    "skipped": ("#eeeeee", "#9e9e9e"),
    "waiting": ("#fff9c4", "#f9a825"),
    "terminated": ("#ffe0b2", "#ef6c00"),
    "unreached": ("#ffffff", "#bdbdbd"),  # never ran, and the run has ended
}
#: Conditionals and loops: drawn as diamonds (Mermaid ``<<choice>>``), their conditions on their arrows.
DECISIONS = ("choice", "choice-end", "repeat", "while", "loop-end")
#: The word a decision node says (in DOT), by kind.
DECISION_WORDS = {"choice": "if", "choice-end": "", "repeat": "repeat", "while": "while", "loop-end": ""}
#: The kinds of node that show their own label in a box.
LABELLED = ("task", "literal", "resource")
LIMIT = 40  # characters of a line in a box
NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")  # what XML 1.0 cannot hold


def xml(text: str, *, attr: bool = False) -> str:
    """``text`` escaped for SVG (with ``attr``, as a quoted attribute value); a character
    XML 1.0 cannot hold (most C0 controls, U+FFFE, U+FFFF, surrogates) becomes U+FFFD."""
    text = NOT_XML.sub("\ufffd", text)
    return quoteattr(text) if attr else escape(text)


def num(value: float) -> str:
    """A number for SVG: one decimal at most."""
    text = f"{value:.1f}"
    return text.removesuffix(".0")


def arrow_tag(node: Node) -> str:
    """What the arrows into a fork, join or END say (its marks, guard and subflow
    name); nothing for a node that shows its own label."""
    if node.kind in LABELLED:
        return ""
    return (marks(node) + guard(node) + ((node.name or "") if node.kind == "subflow-start" else "")).strip()


def edge_tag(flow: Flow, source: int, target: int) -> str:
    """What the arrow ``source → target`` says: a branch's condition (or ``else``) from a
    conditional, a loop's condition on its way back to its body (``until `…``` or
    ``while `…```) and into a ``while``'s first round; else :func:`arrow_tag` of ``target``."""
    node, into = flow.nodes[source], flow.nodes[target]
    tag = arrow_tag(into)
    if node.kind == "choice":
        word = "else" if target == node.pair or into.condition is None else f"`{into.condition}`"
    elif node.kind == "while":
        word = "else" if target == node.pair else f"while `{node.condition}`"
    elif node.kind == "loop-end" and target < source:  # (the edge back to the body)
        start = flow.nodes[node.pair] if node.pair is not None else node
        word = f"{'until' if start.kind == 'repeat' else 'while'} `{start.condition}`"
    else:
        return tag
    return f"{word} {tag}".strip()


def box_lines(node: Node) -> list[str]:
    """The lines of text inside a node's box in an SVG picture (none for START,
    END, forks and joins), each cut to ``LIMIT`` characters."""
    if node.kind not in LABELLED:
        return []
    return [cap(marks(node) + content(node))] + ([cap(guard(node).strip())] if node.guard else [])


def content(node: Node) -> str:
    """What a labelled node shows: task name, compact literal value or ``<uri>``."""
    if node.kind == "literal":
        return cap(json.dumps(node.value, ensure_ascii=False, separators=(",", ":"), default=str))
    if node.kind == "resource":
        return f"<{node.uri}>"
    return node.alias or node.name or "?"


def cap(text: str) -> str:
    """``text`` cut to ``LIMIT`` characters, an ellipsis marking the cut."""
    return text if len(text) <= LIMIT else text[: LIMIT - 1] + "…"


def marks(node: Node) -> str:
    """The merge and iterate operators written before a step."""
    return ("> " if node.merge else "") + ("* " if node.iterate else "")


def guard(node: Node) -> str:
    """The guard as written before a step (with a trailing space), or nothing."""
    return f"? {node.guard} " if node.guard else ""
