"""Pictures of a compiled flow: Mermaid state diagrams, Graphviz DOT and SVG.

Mermaid state ids are ``Name.N`` for a task (``:`` written ``_COLON_``,
``-`` written ``_HYPHEN_``; a name Mermaid would read as one of its keywords
``default``, ``click`` or ``href`` gets a leading ``_``), ``fork.N``/``join.N``
for a subflow's start and end, ``literal.N`` and ``resource.N``; N is the node
id, so ids never clash. START and END are ``[*]``. Shown text is written with
Mermaid entity codes (``#quot;``, ``#58;`` …) for every character its grammar
or its Markdown labels could misread, so no name, value or doc can break the
diagram. Guards, ``*`` and ``>`` show in a task's label; on a fork, join or
END they label the arrows that lead in. Conditionals and loops are ``<<choice>>``
states (``if.N``, ``endif.N``, ``repeat.N``, ``while.N``, ``loop.N``): the arrow to each
branch says its condition (or ``else``), a loop's arrow back to its body says
``until `…``` or ``while `…```.

The SVG is drawn here from ``layout.layout``; its markup (classes, data
attributes) is described in ``svg``.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Mapping
from itertools import pairwise

from .drawing import (
    COLOURS,
    DECISION_WORDS,
    DECISIONS,
    LABELLED,
    NOT_XML,
    STATUSES,
    arrow_tag,
    box_lines,
    content,
    edge_tag,
    guard,
    marks,
    num,
    xml,
)
from .flow import Flow, Node

__all__ = [
    "STATUSES",
    "DECISIONS",
    "arrow_tag",
    "box_lines",
    "dot",
    "edge_tag",
    "mermaid",
    "mermaid_id",
    "svg",
]

_ENTITIES = {'"': "#quot;", "<": "#lt;", ">": "#gt;", "&": "#amp;"}
_ENTITIES.update({c: f"#{ord(c)};" for c in "#:;%\\`*_~"})  # grammar, then Markdown
_KIND_IDS = {
    "literal": "literal",
    "resource": "resource",
    "subflow-start": "fork",
    "subflow-end": "join",
    "choice": "if",
    "choice-end": "endif",
    "repeat": "repeat",
    "while": "while",
    "loop-end": "loop",
}


def mermaid(flow: Flow, *, vertical: bool = False, status: Mapping[int, str] | None = None) -> str:
    """The flow as a Mermaid ``stateDiagram-v2``; ``status`` colours nodes by run state."""
    lines = ["---", f"title: {json.dumps(flow.name, ensure_ascii=False)}", "---"] if flow.name else []
    lines.append("stateDiagram-v2")
    lines += [f"  %% {line}" for line in _doc_lines(flow.doc)]
    lines.append(f"  direction {'TB' if vertical else 'LR'}")
    ids = [mermaid_id(node) for node in flow.nodes]
    for node, sid in zip(flow.nodes, ids):
        if node.kind in ("subflow-start", "subflow-end"):
            lines.append(f"  state {sid} <<{_KIND_IDS[node.kind]}>>")
        elif node.kind in DECISIONS:
            lines.append(f"  state {sid} <<choice>>")
        elif node.kind not in ("start", "end"):
            lines.append(f'  state "{_mtext(marks(node) + content(node))}" as {sid}')
            if node.kind == "task" and node.guard:
                lines.append(f"  {sid} : {_mtext(guard(node).strip())}")
    for node, sid in zip(flow.nodes, ids):
        doc = _doc_lines(node.doc) if node.kind in LABELLED else []
        if len(doc) == 1:
            lines.append(f"  note right of {sid} : {_mtext(doc[0])}")
        elif doc:
            lines.append(f"  note right of {sid}")
            lines += [f"    {_mtext(line)}" for line in doc]
            lines.append("  end note")
    # Mermaid keeps a state's ``:::class`` only when written in an arrow, so
    # each coloured node gets it at its first arrow (or alone if it has none).
    status = {
        i: s for i, s in _checked(flow, status or {}).items() if flow.nodes[i].kind not in ("start", "end")
    }
    lines += [
        f"  classDef {s} fill:{COLOURS[s][0]},stroke:{COLOURS[s][1]},color:#000"
        for s in STATUSES
        if s in status.values()
    ]
    for source, target in flow.edges():
        arrow = f"  {ids[source]}{_mclass(source, status)} --> {ids[target]}{_mclass(target, status)}"
        tag = edge_tag(flow, source, target)
        arrow += f" : {_mtext(tag)}" if tag else ""
        lines.append(arrow)
    lines += [f"  {ids[i]}:::{state}" for i, state in sorted(status.items())]
    return "\n".join(lines) + "\n"


def _mclass(node_id: int, status: dict[int, str]) -> str:
    """``:::status`` the first time a coloured node is met (it is then forgotten)."""
    return f":::{status.pop(node_id)}" if node_id in status else ""


def mermaid_id(node: Node) -> str:
    """The Mermaid state id of a node (``[*]`` for START and END)."""
    if node.kind in ("start", "end"):
        return "[*]"
    if node.kind != "task":
        return f"{_KIND_IDS[node.kind]}.{node.id}"
    name = (node.alias or node.name or "task").replace(":", "_COLON_").replace("-", "_HYPHEN_")
    if re.match(r"(default|click|href)(?![A-Za-z0-9_])", name, re.IGNORECASE):
        name = "_" + name
    return f"{name}.{node.id}"


def dot(flow: Flow, *, vertical: bool = False, status: Mapping[int, str] | None = None) -> str:
    """The flow as a Graphviz ``digraph``; ``status`` colours nodes by run state."""
    lines = [f"digraph {_dquote(flow.name or 'flow')} {{", f"  rankdir={'TB' if vertical else 'LR'};"]
    if flow.doc:
        lines.append(f"  tooltip={_dquote(chr(10).join(_doc_lines(flow.doc)))};")
    lines.append('  node [fontname="Helvetica", fontsize=11];')
    status = _checked(flow, status or {})
    for node in flow.nodes:
        attrs = _dot_shape(node)
        if node.doc:
            attrs["tooltip"] = "\n".join(_doc_lines(node.doc))
        if node.id in status and node.kind not in ("start", "end"):
            fill, stroke = COLOURS[status[node.id]]
            style = ",".join(filter(None, (attrs.get("style"), "filled")))
            attrs.update(style=style, fillcolor=fill, color=stroke)
        lines.append(f"  n{node.id} [{', '.join(f'{k}={_dquote(v)}' for k, v in attrs.items())}];")
    for source, target in flow.edges():
        tag = edge_tag(flow, source, target) if flow.nodes[source].kind in DECISIONS else ""
        lines.append(
            f"  n{source} -> n{target} [label={_dquote(tag)}];" if tag else f"  n{source} -> n{target};"
        )
    return "\n".join(lines + ["}"]) + "\n"


def svg(flow: Flow, *, vertical: bool = False, status: Mapping[int, str] | None = None) -> str:
    """The flow as a standalone SVG document, laid out by ``layout.layout``.

    Each node is ``<g class="node kind-KIND status-STATUS" data-node="ID">``
    (no status class without ``status``; with it, nodes it leaves out are
    ``waiting``) holding a ``<title>``, its shape (class ``shape``) and its
    text. Each edge is ``<path class="edge" data-from="S" data-to="T">``, and
    the label on an arrow into a fork, join or END is ``<text class="edge-label"
    data-from="S" data-to="T">``. Colours come from the ``<style>`` element, by
    class alone, so a page that inlines the SVG recolours a node by changing its
    ``status-…`` class. All text from the flow is escaped, and a character XML 1.0
    cannot hold becomes U+FFFD.
    """
    # late: grandalf (through layout) is needed for SVG alone
    from .layout import FONT, LABEL_FONT, LINE, layout

    checked = _checked(flow, status) if status is not None else None
    drawn = layout(flow, vertical=vertical)
    w, h = num(drawn.width), num(drawn.height)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="littleflow" viewBox="0 0 {w} {h}" width="{w}" height="{h}">'
    ]
    if flow.name:
        out.append(f"<title>{xml(flow.name)}</title>")
    if flow.doc:
        out.append(f"<desc>{xml(chr(10).join(_doc_lines(flow.doc)))}</desc>")
    out.append(f"<style>{_svg_style(FONT, LABEL_FONT)}</style>")
    out.append(
        '<defs><marker id="littleflow-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0L10,5L0,10z"/></marker></defs>'
    )
    out.append('<g class="edges">')
    out += [
        f'<path class="edge" data-from="{s}" data-to="{t}" d="{_svg_path(points, vertical)}"/>'
        for s, t, points in drawn.edges
    ]
    out.append("</g>")
    out.append('<g class="edge-labels">')
    for (s, t), (x, y) in drawn.labels.items():
        out.append(
            f'<text class="edge-label" data-from="{s}" data-to="{t}" x="{num(x)}" y="{num(y)}">'
            f"{xml(edge_tag(flow, s, t))}</text>"
        )
    out.append("</g>")
    out.append('<g class="nodes">')
    for node in flow.nodes:
        classes = f"node kind-{node.kind}" + (
            f" status-{checked.get(node.id, 'waiting')}" if checked is not None else ""
        )
        out.append(
            f'<g class={xml(classes, attr=True)} data-node="{node.id}"><title>{xml(_svg_title(node))}</title>'
        )
        out += _svg_shape(node, drawn.nodes[node.id], LINE)
        out.append("</g>")
    out.append("</g></svg>")
    return "\n".join(out) + "\n"


def _svg_style(font: float, label_font: float) -> str:
    """The picture's CSS, scoped to ``.littleflow`` so that it may be inlined in a page."""
    rules = [
        ".littleflow .shape{fill:#fff;stroke:#555;stroke-width:1.2}",
        f".littleflow .node text{{font:{font}px sans-serif;fill:#222;text-anchor:middle;dominant-baseline:central}}",
        ".littleflow .node text.guard{fill:#555;font-style:italic}",
        ".littleflow .kind-subflow-start .shape,.littleflow .kind-subflow-end .shape{fill:#555}",
        ".littleflow .node.kind-choice-end .shape,.littleflow .node.kind-loop-end .shape{stroke-dasharray:2 2}",
    ]
    rules += [
        f".littleflow .status-{s} .shape{{fill:{fill};stroke:{stroke}}}"
        for s, (fill, stroke) in COLOURS.items()
    ]
    rules += [
        ".littleflow .node.kind-start .shape,.littleflow .node.kind-end .shape{fill:#222;stroke:#222}",
        ".littleflow .node.kind-end .ring{fill:none;stroke:#222;stroke-width:1.2}",
        ".littleflow .edge{fill:none;stroke:#777;stroke-width:1.2;marker-end:url(#littleflow-arrow)}",
        "#littleflow-arrow path{fill:#777}",
        (
            f".littleflow .edge-label{{font:{label_font}px sans-serif;fill:#444;text-anchor:middle;"
            "dominant-baseline:central;paint-order:stroke;stroke:#fff;stroke-width:3px}"
        ),
    ]
    return "".join(rules)


def _svg_shape(node: Node, box: tuple[float, float, float, float], line: float) -> list[str]:
    """The shape of one node and the lines of text in it."""
    x, y, w, h = box
    cx, cy = x + w / 2, y + h / 2
    n = num
    if node.kind in ("start", "end"):
        if node.kind == "start":
            return [f'<circle class="shape" cx="{n(cx)}" cy="{n(cy)}" r="{n(w / 2)}"/>']
        return [
            f'<circle class="ring" cx="{n(cx)}" cy="{n(cy)}" r="{n(w / 2 - 0.6)}"/>',
            f'<circle class="shape" cx="{n(cx)}" cy="{n(cy)}" r="{n(w / 2 - 4)}"/>',
        ]
    if node.kind == "literal":  # a sheet with its top right corner folded
        shape = (
            f'<path class="shape" d="M{n(x)},{n(y)}H{n(x + w - 8)}L{n(x + w)},{n(y + 8)}V{n(y + h)}H{n(x)}Z'
            f'M{n(x + w - 8)},{n(y)}V{n(y + 8)}H{n(x + w)}"/>'
        )
    elif node.kind == "resource":  # a cylinder
        top, bottom = y + 4, y + h - 4
        shape = (
            f'<path class="shape" d="M{n(x)},{n(top)}A{n(w / 2)},4 0 0 1 {n(x + w)},{n(top)}V{n(bottom)}'
            f'A{n(w / 2)},4 0 0 1 {n(x)},{n(bottom)}ZM{n(x)},{n(top)}A{n(w / 2)},4 0 0 0 {n(x + w)},{n(top)}"/>'
        )
        cy += 4
    elif node.kind in DECISIONS:  # a diamond
        return [
            f'<path class="shape" d="M{n(cx)},{n(y)}L{n(x + w)},{n(cy)}L{n(cx)},{n(y + h)}L{n(x)},{n(cy)}Z"/>'
        ]
    else:
        corner = ' rx="4"' if node.kind == "task" else ""
        shape = f'<rect class="shape" x="{n(x)}" y="{n(y)}" width="{n(w)}" height="{n(h)}"{corner}/>'
    lines = box_lines(node)
    top = cy - (len(lines) - 1) / 2 * line
    texts = [f'<text x="{n(cx)}" y="{n(top + i * line)}">{xml(text)}</text>' for i, text in enumerate(lines)]
    if len(texts) > 1:  # the guard
        texts[1] = texts[1].replace("<text ", '<text class="guard" ', 1)
    return [shape, *texts]


def _svg_title(node: Node) -> str:
    """A node's tooltip: what it is, in full, then its kind, guard and doc."""
    if node.kind == "literal":
        what = json.dumps(node.value, ensure_ascii=False, default=str)
    elif node.kind == "task" and node.alias:
        what = f"{node.alias} ({node.name})"
    elif node.kind in ("subflow-start", "subflow-end"):
        what = node.name or {"subflow-start": "fork", "subflow-end": "join"}[node.kind]
    else:
        what = node.label
    if node.condition:
        what += f" `{node.condition}`"[:300]
    kind = (
        node.kind
        + (f" ({node.mode})" if node.mode else "")
        + (f" at {node.line}:{node.column}" if node.line else "")
    )
    doc = " ".join(_doc_lines(node.doc))
    lines = [
        marks(node) + what[:1000],
        kind,
        guard(node).strip()[:300],
        doc[:300] + ("…" if len(doc) > 300 else ""),
    ]
    return "\n".join(line for line in lines if line)


def _svg_path(points: list[tuple[float, float]], vertical: bool) -> str:
    """SVG path data for an edge's points, joined as ``layout.Layout`` says."""
    n = num
    d = [f"M{n(points[0][0])},{n(points[0][1])}"]
    for (x0, y0), (x1, y1) in pairwise(points):
        if x0 == x1 or y0 == y1:
            d.append(f"L{n(x1)},{n(y1)}")
        elif vertical:
            d.append(f"C{n(x0)},{n((y0 + y1) / 2)} {n(x1)},{n((y0 + y1) / 2)} {n(x1)},{n(y1)}")
        else:
            d.append(f"C{n((x0 + x1) / 2)},{n(y0)} {n((x0 + x1) / 2)},{n(y1)} {n(x1)},{n(y1)}")
    return "".join(d)


def _dot_shape(node: Node) -> dict[str, str]:
    """Shape and label attributes of one DOT node."""
    if node.kind == "start":
        return {"shape": "circle", "label": "", "width": "0.25", "style": "filled", "fillcolor": "black"}
    if node.kind == "end":
        return {"shape": "doublecircle", "label": "", "width": "0.2", "style": "filled", "fillcolor": "black"}
    if node.kind in ("subflow-start", "subflow-end"):
        xlabel = (marks(node) + guard(node) + (node.name or "")).strip()
        return {"shape": "diamond", "label": "", "xlabel": xlabel, "width": "0.3", "height": "0.3"}
    if node.kind in DECISIONS:
        xlabel = (marks(node) + guard(node) + DECISION_WORDS[node.kind]).strip()
        return {"shape": "diamond", "label": "", "xlabel": xlabel, "width": "0.35", "height": "0.35"}
    label = (marks(node) + content(node) + "\n" + guard(node)).strip()
    shape = {"task": "box", "literal": "note", "resource": "cylinder"}[node.kind]
    return {"shape": shape, "label": label} | ({"style": "rounded"} if shape == "box" else {})


def _doc_lines(doc: str | None) -> list[str]:
    """A doc string as dedented lines, blank lines at either end dropped."""
    return textwrap.dedent(doc or "").strip("\n").rstrip().splitlines()


def _mtext(text: str) -> str:
    """Text made safe for a Mermaid label, description or note line."""
    text = "".join(_ENTITIES.get(c, c) for c in text.replace("\r", "").replace("\n", " "))
    # whole-line lexer rules that would otherwise fire inside text
    text = re.sub(r"(?i)(direction)\s+(?=(TB|BT|RL|LR))", r"\1#32;", text)
    return re.sub(r"(?i)(end) (note)", r"\1#32;\2", text)


def _checked(flow: Flow, status: Mapping[int, str]) -> dict[int, str]:
    """``status`` after checking node ids and status names; the nodes of a branch not taken
    or of a form skipped by its guard are skipped too (a run records the first node only)."""
    for node_id, state in status.items():
        if state not in COLOURS:
            raise ValueError(
                f"unknown status {state!r} for node {node_id} (expected one of {', '.join(STATUSES)})"
            )
        if not 0 <= node_id < len(flow.nodes):
            raise ValueError(f"status given for node {node_id}, which the flow does not have")
    return flow.with_skipped(status)


def _dquote(text: str) -> str:
    """A DOT double-quoted string (backslash, quote and newline escaped); a character XML
    cannot hold becomes U+FFFD, as in the SVG, for Graphviz copies it into its SVG output."""
    escaped = NOT_XML.sub("\ufffd", text).replace("\\", "\\\\").replace('"', '\\"').replace("\r", "")
    return '"' + escaped.replace("\n", "\\n") + '"'
