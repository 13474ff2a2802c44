"""Pictures of a compiled flow: Mermaid state diagrams and Graphviz DOT.

Mermaid state ids are ``Name.N`` for a task (``:`` written ``_COLON_``,
``-`` written ``_HYPHEN_``; a name Mermaid would read as one of its keywords
``default``, ``click`` or ``href`` gets a leading ``_``), ``fork.N``/``join.N``
for a subflow's start and end, ``literal.N`` and ``resource.N``; N is the node
id, so ids never clash. START and END are ``[*]``. Shown text is written with
Mermaid entity codes (``#quot;``, ``#58;`` …) for every character its grammar
or its Markdown labels could misread, so no name, value or doc can break the
diagram. Guards, ``*`` and ``>`` show in a task's label; on a fork, join or
END they label the arrows that lead in.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Mapping

from .flow import Flow, Node

STATUSES = ("done", "running", "queued", "failed", "skipped", "waiting", "terminated")
_COLOURS = {  # status: (fill, stroke)
    "done": ("#c8e6c9", "#2e7d32"),
    "running": ("#bbdefb", "#1565c0"),
    "queued": ("#e1f5fe", "#0288d1"),  # sent to a worker, not yet taken (on Redis)
    "failed": ("#ffcdd2", "#c62828"),
    "skipped": ("#eeeeee", "#9e9e9e"),
    "waiting": ("#fff9c4", "#f9a825"),
    "terminated": ("#ffe0b2", "#ef6c00"),
}
_ENTITIES = {'"': "#quot;", "<": "#lt;", ">": "#gt;", "&": "#amp;"}
_ENTITIES.update({c: f"#{ord(c)};" for c in "#:;%\\`*_~"})  # grammar, then Markdown
_KIND_IDS = {"literal": "literal", "resource": "resource", "subflow-start": "fork", "subflow-end": "join"}
_LIMIT = 40


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
        elif node.kind not in ("start", "end"):
            lines.append(f'  state "{_mtext(_marks(node) + _content(node))}" as {sid}')
            if node.kind == "task" and node.guard:
                lines.append(f"  {sid} : {_mtext(_guard(node).strip())}")
    for node, sid in zip(flow.nodes, ids):
        doc = _doc_lines(node.doc) if node.kind in ("task", "literal", "resource") else []
        if len(doc) == 1:
            lines.append(f"  note right of {sid} : {_mtext(doc[0])}")
        elif doc:
            lines.append(f"  note right of {sid}")
            lines += [f"    {_mtext(line)}" for line in doc]
            lines.append("  end note")
    # Mermaid keeps a state's ``:::class`` only when written in an arrow, so
    # each coloured node gets it at its first arrow (or alone if it has none).
    status = {i: s for i, s in _checked(flow, status or {}).items() if flow.nodes[i].kind not in ("start", "end")}
    lines += [f"  classDef {s} fill:{_COLOURS[s][0]},stroke:{_COLOURS[s][1]},color:#000"
              for s in STATUSES if s in status.values()]
    for source, target in flow.edges():
        arrow = f"  {ids[source]}{_mclass(source, status)} --> {ids[target]}{_mclass(target, status)}"
        node = flow.nodes[target]
        if node.kind not in ("task", "literal", "resource"):
            tag = (_marks(node) + _guard(node) + ((node.name or "") if node.kind == "subflow-start" else "")).strip()
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
            fill, stroke = _COLOURS[status[node.id]]
            style = ",".join(filter(None, (attrs.get("style"), "filled")))
            attrs.update(style=style, fillcolor=fill, color=stroke)
        lines.append(f"  n{node.id} [{', '.join(f'{k}={_dquote(v)}' for k, v in attrs.items())}];")
    lines += [f"  n{source} -> n{target};" for source, target in flow.edges()]
    return "\n".join(lines + ["}"]) + "\n"


def _dot_shape(node: Node) -> dict[str, str]:
    """Shape and label attributes of one DOT node."""
    if node.kind == "start":
        return {"shape": "circle", "label": "", "width": "0.25", "style": "filled", "fillcolor": "black"}
    if node.kind == "end":
        return {"shape": "doublecircle", "label": "", "width": "0.2", "style": "filled", "fillcolor": "black"}
    if node.kind in ("subflow-start", "subflow-end"):
        xlabel = (_marks(node) + _guard(node) + (node.name or "")).strip()
        return {"shape": "diamond", "label": "", "xlabel": xlabel, "width": "0.3", "height": "0.3"}
    label = (_marks(node) + _content(node) + "\n" + _guard(node)).strip()
    shape = {"task": "box", "literal": "note", "resource": "cylinder"}[node.kind]
    return {"shape": shape, "label": label} | ({"style": "rounded"} if shape == "box" else {})


def _content(node: Node) -> str:
    """What a labelled node shows: task name, compact literal value or ``<uri>``."""
    if node.kind == "literal":
        text = json.dumps(node.value, ensure_ascii=False, separators=(",", ":"), default=str)
        return text if len(text) <= _LIMIT else text[: _LIMIT - 1] + "…"
    if node.kind == "resource":
        return f"<{node.uri}>"
    return node.alias or node.name or "?"


def _marks(node: Node) -> str:
    """The merge and iterate operators written before a step."""
    return ("> " if node.merge else "") + ("* " if node.iterate else "")


def _guard(node: Node) -> str:
    """The guard as written before a step (with a trailing space), or nothing."""
    return f"? {node.guard} " if node.guard else ""


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
    """``status`` after checking node ids and status names."""
    for node_id, state in status.items():
        if state not in _COLOURS:
            raise ValueError(f"unknown status {state!r} for node {node_id} (expected one of {', '.join(STATUSES)})")
        if not 0 <= node_id < len(flow.nodes):
            raise ValueError(f"status given for node {node_id}, which the flow does not have")
    return dict(status)


def _dquote(text: str) -> str:
    """A DOT double-quoted string (backslash, quote and newline escaped)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "")
    return '"' + escaped.replace("\n", "\\n") + '"'
