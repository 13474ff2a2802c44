"""``littleflow check``: errors, and warnings about parts of a flow that do nothing or
that may not mean what they seem; :func:`validate`, what every surface checks before a run."""

from __future__ import annotations

import re

from .compiler import Compiler
from .errors import Diagnostic, FlowError
from .flow import Flow
from .guard import normalize
from .lexer import (
    BAR,
    CONDITION,
    DECL,
    DOC,
    EQUALS,
    GUARD,
    LBRACE,
    LBRACKET,
    LITERAL,
    MERGE,
    NAME,
    PARAMS,
    RBRACE,
    RBRACKET,
    RESERVED,
    RESOURCE,
    STAR,
    Token,
    describe,
    tokens,
)
from .nodes import Module
from .parser import Parser
from .policy import OptionError, flow_options
from .source import Source


def check(text: str, file: str | None = None) -> tuple[Flow | None, list[Diagnostic]]:
    """Compile ``text`` and list what is wrong with it: the error that stops it (the
    ``@flow`` run-time options included, see :func:`validate`), or warnings about labels and
    declarations never used, nodes that can never run, conditions that are plain paths and
    steps that silently start a new statement after a group."""
    try:
        module = Parser().parse(text, file)
        compiler = Compiler()
        flow = compiler.compile(module)
        validate(module, flow)
    except FlowError as error:
        return None, [error]
    found = (
        compiler.warnings
        + unused_declarations(module, flow)
        + never_run(flow, module.source)
        + misleading(module.source)
    )
    found.sort(key=lambda d: (d.line, d.column))
    return flow, found


def compile_checked(text: str, file: str | None = None, *, max_nodes: int | None = None) -> Flow:
    """Parse, compile and :func:`validate` flow text: the flow ``run``, ``compile``,
    ``submit``, the API and the console take (``max_nodes``: see :class:`Compiler`).
    Raises :class:`FlowError` for any mistake, with its line and column."""
    module = Parser().parse(text, file)
    flow = Compiler(max_nodes).compile(module)
    validate(module, flow)
    return flow


def validate(module: Module, flow: Flow) -> None:
    """Check what the language leaves to the project: the ``@flow`` run-time options
    (``retries``, ``timeout``, ``backoff``, ``parallelism``, and ``tasks`` entries naming
    tasks or aliases of this flow), as the runners will take them. Raises
    :class:`FlowError` at the key that is wrong (at the parameters if it is not found)."""
    names = {node.name for node in flow.nodes if node.kind == "task"}
    names.update(node.alias for node in flow.nodes if node.alias)
    try:
        flow_options(flow.parameters, names)
    except OptionError as error:
        raise module.source.error(error.args[0], _option_offset(module, error.path)) from None


def _option_offset(module: Module, path: tuple[str, ...]) -> int:
    """Where the option at ``path`` is written in the ``@flow`` parameters: each key searched
    for after the one before it, as ``key:`` (quoted or not)."""
    declaration = module.flow
    if declaration is None:
        return 0
    if declaration.params is None:
        return declaration.offset
    text, at = module.source.text, declaration.params.offset
    for key in path:
        found = re.compile(rf"""(?<![\w-])(["']?){re.escape(key)}\1\s*:""").search(text, at)
        if found is None:
            break
        at = found.start()
    return at


# What may follow a conditional's branch or a loop's body (LANGUAGE.md §9.7, §9.8).
_CONTINUING = RESERVED - {"if", "repeat", "while"}
_STEP_STARTS = frozenset((NAME, LBRACE, LBRACKET, LITERAL, RESOURCE, GUARD, MERGE, STAR))


def misleading(source: Source) -> list[Diagnostic]:
    """Warnings about text that parses but may not mean what it seems: a guard or condition
    that is a plain path (LANGUAGE.md §9.3: true when it selects something, whatever the
    value), and a step written on the line of a ``}`` or ``|`` group with no arrow between
    them (it silently starts a new statement)."""
    found = []
    stream = list(tokens(source))
    for token in stream:
        if token.kind in (GUARD, CONDITION):
            warning = _plain_path(token)
            if warning:
                found.append(source.warning(warning, token.offset))
    for end, step in _group_then_step(stream):
        if source.text.rfind("\n", end.offset, step.offset) < 0:
            group = "'|' group" if end.kind not in (RBRACE, RBRACKET) else f"'{end.kind}'"
            found.append(
                source.warning(
                    f"{describe(step)} starts a new statement: nothing connects it to the {group} before it "
                    "(write '→' before it to run it after, or ';' or a new line to start a statement)",
                    step.offset,
                )
            )
    return found


def _plain_path(token: Token) -> str | None:
    """The warning for a guard or condition without a filter, or None."""
    import jsonpath_rfc9535 as jsonpath

    expression = token.value
    try:
        query = jsonpath.compile(normalize(expression))
    except (jsonpath.JSONPathError, ValueError, RecursionError):
        return None  # (the compiler has said so already)
    if any(
        isinstance(selector, jsonpath.selectors.FilterSelector)
        for segment in query.segments
        for selector in segment.selectors
    ):
        return None
    what = "guard" if token.kind == GUARD else "condition"
    if query.singular_query():
        member = "@" + normalize(expression)[1:].strip()
        advice = f"to test its value write `$[?{member} == true]`, to test that it is there `$[?{member}]`"
    else:
        advice = "to test a value use a filter, as in `$[?@.valid == true]`"
    return (
        f"{what} `{expression}` is a plain path: it is true whenever it selects something, even false "
        f"or null (selection, not truth); {advice}"
    )


def _group_then_step(stream: list[Token]) -> list[tuple[Token, Token]]:
    """Each ``(end, step)``: the last token of a ``{ }`` / ``[ ]`` group (not a named
    subflow's body) or of an ``A | B`` alternation, and the step token right after it."""
    pairs = []
    opened: list[bool] = []  # for each open bracket: is it a declaration's body?
    declaring = False  # after @task/@flow, up to what follows its name, '= OTHER', parameters and doc
    names = 0  # the names the declaration still has
    alternative = -1  # the depth at which the step after a '|' is being read, else -1
    for i, token in enumerate(stream[:-1]):
        kind = token.kind
        after = stream[i + 1]
        ends_group = False
        if kind == DECL:
            declaring, names = token.value == "task", 1  # (only @task has a body)
            continue
        if kind in (LBRACE, LBRACKET):
            opened.append(declaring)
            declaring = False
            continue
        if declaring:
            if kind == NAME and names:
                names -= 1
                continue
            if kind == EQUALS:
                names += 1
                continue
            declaring = kind in (PARAMS, DOC)
            if declaring:
                continue
        if kind == BAR:
            alternative = len(opened)
            continue
        if kind in (RBRACE, RBRACKET) and opened:
            ends_group = not opened.pop() or alternative == len(opened)
        elif (
            kind in (NAME, LITERAL, RESOURCE, PARAMS) and alternative == len(opened) and after.kind != PARAMS
        ):
            ends_group = True
        if ends_group and alternative == len(opened) and after.kind != BAR:
            alternative = -1
        if (
            ends_group
            and after.kind in _STEP_STARTS
            and not (after.kind == NAME and after.value in _CONTINUING)
        ):
            pairs.append((token, after))
    return pairs


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
    runs = flow.reachable()
    warnings = []
    for node in flow.nodes:
        if runs[node.id] or node.kind in ("subflow-start", "subflow-end"):
            continue
        if node.kind == "end":
            where = source.warning("the flow can never reach its end", len(source.text))
            where.line = where.column = 0
        else:
            where = Diagnostic(
                f"{node.label} can never run",
                file=source.file,
                line=node.line,
                column=node.column,
                source_line=source.line_text(node.line),
            )
        warnings.append(where)
    return warnings
