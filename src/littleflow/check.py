"""``littleflow check``: errors, and warnings about parts of a flow that do nothing."""

from __future__ import annotations

from collections import deque

from .compiler import Compiler
from .errors import Diagnostic, FlowError
from .flow import Flow
from .nodes import Module
from .parser import Parser
from .source import Source


def check(text: str, file: str | None = None) -> tuple[Flow | None, list[Diagnostic]]:
    """Compile ``text`` and list what is wrong with it: the error that stops it, or
    warnings about labels and declarations never used and nodes that can never run."""
    try:
        module = Parser().parse(text, file)
        compiler = Compiler()
        flow = compiler.compile(module)
    except FlowError as error:
        return None, [error]
    found = compiler.warnings + unused_declarations(module, flow) + never_run(flow, module.source)
    found.sort(key=lambda d: (d.line, d.column))
    return flow, found


def unused_declarations(module: Module, flow: Flow) -> list[Diagnostic]:
    """A warning for every ``@task`` declaration no invocation uses."""
    used = set()
    for node in flow.nodes:
        if node.kind in ("task", "subflow-start"):
            used.update(name for name in (node.name, node.alias) if name)
    for name in list(used):
        decl = module.tasks.get(name)
        while decl is not None and decl.alias_of is not None and decl.alias_of not in used:
            used.add(decl.alias_of)
            decl = module.tasks.get(decl.alias_of)
    return [
        module.source.warning(f"task {name} is declared but never used", decl.offset)
        for name, decl in module.tasks.items()
        if name not in used
    ]


def never_run(flow: Flow, source: Source) -> list[Diagnostic]:
    """A warning for every node that no run can reach: it would wait forever for
    a predecessor that never ends (or it has none)."""
    thresholds = flow.thresholds()
    received = [0] * len(flow)
    runs = bytearray(len(flow))
    runs[0] = 1
    ready = deque([0])
    while ready:
        for target in flow.successors(ready.popleft()):
            received[target] += 1
            if not runs[target] and received[target] >= thresholds[target]:
                runs[target] = 1
                ready.append(target)
    warnings = []
    for node in flow.nodes:
        if runs[node.id] or node.kind in ("subflow-start", "subflow-end"):
            continue
        if node.kind == "end":
            where = source.warning("the flow can never reach its end", len(source.text))
            where.line = where.column = 0
        else:
            where = Diagnostic(f"{node.label} can never run", file=source.file, line=node.line,
                               column=node.column, source_line=source.line_text(node.line))
        warnings.append(where)
    return warnings
