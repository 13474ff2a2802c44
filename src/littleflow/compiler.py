"""The syntax tree into a :class:`~littleflow.flow.Flow`: nodes, edges, labels, declarations."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import Diagnostic, FlowError
from .flow import Flow, Node
from .guard import GuardError, compile_guard
from .literals import MAX_BYTES, json_size
from .memory import fewer_collections
from .nodes import (
    Choice,
    Element,
    Literal,
    Loop,
    Module,
    Resource,
    Statement,
    Subflow,
    Task,
    TaskDecl,
)
from .parser import MAX_DEPTH, Parser

#: A flow may have at most this many nodes once named subflows are expanded, unless the
#: compiler is given another limit (predicted before anything is built: see ``_Compile.predict``).
MAX_NODES = 5_000_000
#: The parameters and values (literals) of a flow's nodes, as compact JSON, come to at most this
#: many bytes once named subflows and declared defaults are expanded: four times what the
#: literals of a flow text may hold (:data:`~littleflow.literals.MAX_BYTES`).
MAX_FLOW_BYTES = 4 * MAX_BYTES
_ONE = (1, 0)  # (a step of one node that carries nothing)
_PLAIN = frozenset((Task, Literal, Resource))  # steps of one node (a Task unless a named subflow)


class Compiler:
    """Compiles a parsed :class:`~littleflow.nodes.Module` into a :class:`Flow`.

    After :meth:`compile`, ``warnings`` lists labels that were defined but never used.
    A flow that would have more than ``max_nodes`` nodes (:data:`MAX_NODES` if none) once its
    named subflows are expanded is refused before it is built.
    """

    def __init__(self, max_nodes: int | None = None) -> None:
        self.warnings: list[Diagnostic] = []
        self.max_nodes = MAX_NODES if max_nodes is None else max_nodes

    def compile(self, module: Module) -> Flow:
        """The flow graph of ``module``; raises :class:`FlowError` for mistakes
        only visible as a whole (labels, declarations, guards)."""
        run = _Compile(module, self.max_nodes)
        with fewer_collections():
            flow = run.flow()
        self.warnings = run.warnings
        return flow


@dataclass(slots=True)
class _Declared:
    """What invoking a declared name means once aliases are followed."""

    name: str  # the task that runs
    params: Any  # its defaults
    doc: str | None
    body: Subflow | None


@dataclass(slots=True)
class _Scope:
    """The labels of one flow or subflow, resolved when it closes."""

    start: int
    empty: bool = True  # no statements: the start feeds the end directly
    to_end: list[int] = field(default_factory=list)
    end_merge: bool = False
    outputs: dict[str, tuple[int, int]] = field(default_factory=dict)  # label -> (node, offset)
    inputs: dict[str, tuple[int, int]] = field(default_factory=dict)
    heads: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # `:x → A`
    tails: dict[str, list[tuple[int, int, bool]]] = field(default_factory=dict)  # `A → :x`


class _Compile:
    def __init__(self, module: Module, max_nodes: int = MAX_NODES) -> None:
        self.module = module
        self.max_nodes = max_nodes
        self.sizes: dict[int, tuple[int, int]] = {}  # id(body of a named subflow) -> (nodes, bytes) a use
        self.measured: dict[int, int] = {}  # id(a parameter or literal value) -> its bytes as JSON
        self.weigh = True
        self.bodies: set[str] = set()
        self.counting: set[int] = set()
        self.source = module.source
        self.nodes: list[Node] = []
        self.edges: list[tuple[int, int]] = []
        self.declared: dict[str, _Declared] = {}
        self.expanding: list[str] = []
        self.warnings: list[Diagnostic] = []

    def error(self, message: str, offset: int) -> FlowError:
        return self.source.error(message, offset)

    def flow(self) -> Flow:
        module = self.module
        for name in module.tasks:
            self.resolve(name)
        self.predict()
        scope = _Scope(self.node("start", 0, line=0))
        self.statements(module.statements, scope, 0)
        self.close(scope, "end", None, len(self.source.text))
        decl = module.flow
        if decl is None:
            return Flow(self.nodes, self.edges)
        params = decl.params.value if decl.params is not None else None
        return Flow(self.nodes, self.edges, decl.name, decl.doc, params)

    # -- nodes and scopes ---------------------------------------------------
    def node(self, kind: str, offset: int, line: int | None = None, **fields: Any) -> int:
        index = len(self.nodes)
        if line is None:
            line, column = self.source.position(offset)
        else:
            column = 0
        self.nodes.append(Node(index, kind, line=line, column=column, **fields))
        return index

    def close(self, scope: _Scope, kind: str, name: str | None, offset: int) -> int:
        """Resolve the scope's labels and add its end node; returns the end's id."""
        self.labels(scope)
        end = self.node(kind, offset, line=0 if kind == "end" else None, name=name, merge=scope.end_merge)
        if scope.empty:
            scope.to_end.append(scope.start)
        self.edges.extend((node, end) for node in scope.to_end)
        return end

    def labels(self, scope: _Scope) -> None:
        """Connect every label's sources (``A :x``, ``A → :x``) to its sinks (``:x A``, ``:x → A``)."""
        problems = []
        for name, heads in scope.heads.items():
            if name not in scope.outputs and name not in scope.tails:
                problems.append(
                    (
                        heads[0][1],
                        f"unknown label :{name}: no step has output :{name} "
                        f"and no statement ends with → :{name}",
                    )
                )
        for name, tails in scope.tails.items():
            if name not in scope.inputs and name not in scope.heads:
                message = (
                    f"unknown label :{name}: no step has input :{name} and no statement starts with :{name} →"
                )
                if name in scope.outputs:
                    line, column = self.source.position(scope.outputs[name][1])
                    message += (
                        f" (the :{name} at {line}:{column} names the output of the step before it;"
                        f" to start a statement there, end the one before with ';')"
                    )
                problems.append((tails[0][1], message))
        if problems:
            offset, message = min(problems)
            raise self.error(message, offset)
        for name, (_, offset) in scope.outputs.items():
            if name not in scope.heads and name not in scope.inputs:
                self.warnings.append(self.source.warning(f"output label :{name} is never used", offset))
        for name, (_, offset) in scope.inputs.items():
            if name not in scope.tails and name not in scope.outputs:
                self.warnings.append(self.source.warning(f"input label :{name} is never used", offset))
        for name in scope.outputs.keys() | scope.tails.keys():
            sinks = [node for node, _ in scope.heads.get(name, ())]
            if name in scope.inputs:
                sinks.append(scope.inputs[name][0])
            sources = [node for node, _, _ in scope.tails.get(name, ())]
            if name in scope.outputs:
                sources.append(scope.outputs[name][0])
            self.edges.extend((source, sink) for source in sources for sink in sinks)
            if any(merge for _, _, merge in scope.tails.get(name, ())):
                for sink in sinks:
                    self.nodes[sink].merge = True

    # -- statements ---------------------------------------------------------
    def statements(self, statements: list[Statement], scope: _Scope, depth: int) -> None:
        edges = self.edges
        scope.empty = scope.empty and not statements
        for statement in statements:
            head = statement.head
            previous = -1
            for element in statement.elements:
                entry, exit_ = self.element(element, scope, depth, previous < 0 and head is None)
                if previous >= 0:
                    edges.append((previous, entry))
                elif head is None or head.name == "start":
                    edges.append((scope.start, entry))
                else:
                    scope.heads.setdefault(head.name, []).append((entry, head.offset))
                previous = exit_
            tail = statement.tail
            if tail is None:
                scope.to_end.append(previous)
            elif tail.label.name == "end":
                scope.to_end.append(previous)
                scope.end_merge = scope.end_merge or tail.merge
            elif tail.label.name == "start":
                edges.append((previous, scope.start))
            else:
                scope.tails.setdefault(tail.label.name, []).append((previous, tail.label.offset, tail.merge))

    def element(self, element: Element, scope: _Scope, depth: int, first: bool) -> tuple[int, int]:
        """Add the nodes of one step; returns the ids of its entry and exit nodes."""
        step = element.step
        if type(step) is Task:
            declared = self.declared.get(step.name)
            if declared is not None and declared.body is not None:
                if step.params is not None:
                    raise self.error(f"named subflow {step.name} takes no parameters", step.params.offset)
                if step.name in self.expanding:
                    raise self.error(f"named subflow {step.name} invokes itself", step.offset)
                self.expanding.append(step.name)
                entry, exit_ = self.subflow(declared.body, depth, step.offset, step.name)
                self.nodes[entry].doc = declared.doc
                self.expanding.pop()
            else:
                entry = exit_ = self.task(step, declared)
        elif type(step) is Subflow:
            entry, exit_ = self.subflow(step, depth, step.offset, None)
        elif type(step) is Literal:
            entry = exit_ = self.node("literal", step.offset, value=step.value)
        elif type(step) is Choice:
            entry, exit_ = self.choice(step, scope, depth)
        elif type(step) is Loop:
            entry, exit_ = self.loop(step, scope, depth)
        else:
            assert type(step) is Resource
            entry = exit_ = self.node(
                "resource",
                step.offset,
                uri=step.uri,
                mode="source" if first else "sink",
                parameters=step.params.value if step.params else None,
            )
        if element.guard is not None or element.merge or element.iterate:
            node = self.nodes[entry]
            node.merge, node.iterate = element.merge, element.iterate
            if element.guard is not None:
                try:
                    compile_guard(element.guard)
                except GuardError as error:
                    raise self.error(str(error), element.guard_offset) from None
                node.guard = element.guard
        label = element.input_label
        if label is not None:
            if label.name in scope.inputs:
                raise self.error(f"input label :{label.name} already exists", label.offset)
            scope.inputs[label.name] = (entry, label.offset)
        label = element.output_label
        if label is not None:
            if label.name in scope.outputs:
                raise self.error(f"output label :{label.name} already exists", label.offset)
            scope.outputs[label.name] = (exit_, label.offset)
            if self.starts_line(label.offset):
                self.warnings.append(
                    self.source.warning(
                        f"label :{label.name} at the start of a line names the output of the step before it;"
                        " to start a new statement with it, end the one before with ';'",
                        label.offset,
                    )
                )
        return entry, exit_

    def condition(self, expression: str, offset: int) -> str:
        """A conditional's or loop's condition, checked (LANGUAGE.md §9.7: the error is at its backquote)."""
        try:
            compile_guard(expression)
        except GuardError as error:
            raise self.error(str(error).replace("invalid guard", "invalid condition", 1), offset) from None
        return expression

    def choice(self, choice: Choice, scope: _Scope, depth: int) -> tuple[int, int]:
        """``if … then … elif … else …``: a ``choice`` node, each branch's nodes (the first
        carrying the branch's condition, none for ``else``) and a ``choice-end``; without
        ``else`` an edge from the choice to its end passes the input on."""
        if depth >= MAX_DEPTH:
            raise self.error(
                f"conditionals, loops and subflows nested more than {MAX_DEPTH} deep", choice.offset
            )
        start = self.node("choice", choice.offset)
        entries, exits = [], []
        for branch in choice.branches:
            condition = (
                None
                if branch.condition is None
                else self.condition(branch.condition, branch.condition_offset)
            )
            entry, exit_ = self.element(branch.step, scope, depth + 1, False)
            self.nodes[entry].condition = condition
            entries.append(entry)
            exits.append(exit_)
        end = self.node("choice-end", choice.end, pair=start)
        self.nodes[start].pair = end
        edges = self.edges
        edges.extend((start, entry) for entry in entries)
        if choice.branches[-1].condition is not None:
            edges.append((start, end))
        edges.extend((exit_, end) for exit_ in exits)
        return start, end

    def loop(self, loop: Loop, scope: _Scope, depth: int) -> tuple[int, int]:
        """``repeat … until`` or ``while … do``: a ``repeat`` or ``while`` node carrying the
        condition, the body's nodes, and a ``loop-end`` whose edge back to the body's first
        node closes the cycle; a ``while`` also has an edge to its end (no round at all)."""
        if depth >= MAX_DEPTH:
            raise self.error(
                f"conditionals, loops and subflows nested more than {MAX_DEPTH} deep", loop.offset
            )
        condition = self.condition(loop.condition, loop.condition_offset)
        start = self.node(loop.kind, loop.offset, condition=condition)
        entry, exit_ = self.element(loop.body, scope, depth + 1, False)
        end = self.node("loop-end", loop.end, pair=start)
        self.nodes[start].pair = end
        self.edges.extend(((start, entry), (exit_, end), (end, entry)))
        if loop.kind == "while":
            self.edges.append((start, end))
        return start, end

    def starts_line(self, offset: int) -> bool:
        text = self.source.text
        return not text[text.rfind("\n", 0, offset) + 1 : offset].strip()

    def task(self, step: Task, declared: _Declared | None) -> int:
        params = step.params.value if step.params is not None else None
        if declared is None:
            return self.node("task", step.offset, name=step.name, parameters=params)
        if params is None:
            params = declared.params
        else:
            params = self.merge(declared.params, params, step.name, step.params.offset)  # type: ignore[union-attr]
        alias = step.name if declared.name != step.name else None
        return self.node(
            "task", step.offset, name=declared.name, alias=alias, parameters=params, doc=declared.doc
        )

    def subflow(self, subflow: Subflow, depth: int, offset: int, name: str | None) -> tuple[int, int]:
        if depth >= MAX_DEPTH:
            raise self.error(f"subflows nested more than {MAX_DEPTH} deep", offset)
        start = self.node("subflow-start", offset, name=name)
        scope = _Scope(start)
        self.statements(subflow.statements, scope, depth + 1)
        end = self.close(scope, "subflow-end", name, subflow.end if name is None else offset)
        self.nodes[start].pair, self.nodes[end].pair = end, start
        return start, end

    # -- size ---------------------------------------------------------------
    def predict(self) -> None:
        """Refuse a flow over the node limit, or whose nodes would carry more than
        :data:`MAX_FLOW_BYTES` of parameters and values, before building any of it: each named
        subflow is measured once and multiplied at every use, so a short text that expands
        exponentially costs no more than its length to refuse."""
        # Without declared defaults or named subflows nothing is carried twice: the steps hold what
        # the literals of the text hold, at most MAX_BYTES. Only then is the weight worth measuring.
        self.weigh = any(
            decl.params is not None or decl.body is not None for decl in self.module.tasks.values()
        )
        self.bodies = {name for name, declared in self.declared.items() if declared.body is not None}
        nodes, weight = self.count(self.module.statements, 0)
        nodes += 2
        if nodes > self.max_nodes:
            message = f"the flow would have {nodes:,} nodes, more than the limit of {self.max_nodes:,}"
        elif weight > MAX_FLOW_BYTES:
            message = (
                f"the flow's steps would carry {weight:,} bytes of parameters and values as JSON"
                f" (each use of a named subflow or declared default counted), more than the limit of"
                f" {MAX_FLOW_BYTES:,}"
            )
        else:
            return
        offset = self.crossing(self.module.statements, [1, 0])
        raise self.error(message, len(self.source.text) if offset is None else offset)

    def count(self, statements: list[Statement], depth: int) -> tuple[int, int]:
        """The nodes of ``statements`` once built (the same count :meth:`statements` makes),
        and the bytes of the parameters and values they carry."""
        size, bodies, weigh = self.size, self.bodies, self.weigh
        nodes = weight = 0
        for statement in statements:
            for element in statement.elements:
                step = element.step
                if not weigh and type(step) in _PLAIN and (type(step) is not Task or step.name not in bodies):
                    nodes += 1  # (the common case, kept quick)
                    continue
                more, heavier = size(step, depth)
                nodes += more
                weight += heavier
        return nodes, weight

    def size(self, step: Any, depth: int) -> tuple[int, int]:
        kind = type(step)
        if kind is Task:
            declared = self.declared.get(step.name)
            if declared is not None and declared.body is not None:
                return self.named(step, declared.body, depth)
            if not self.weigh or step.params is None and (declared is None or declared.params is None):
                return _ONE
            given = None if step.params is None else step.params.value
            default = None if declared is None else declared.params
            if (
                given is None
                or default is None
                or not (isinstance(given, dict) and isinstance(default, dict))
            ):
                return 1, self.bytes(default if given is None else given)
            return 1, self.bytes(given) + self.bytes(default)  # (merged: at most both)
        if kind is Subflow:
            if depth >= MAX_DEPTH:
                raise self.error(f"subflows nested more than {MAX_DEPTH} deep", step.offset)
            nodes, weight = self.count(step.statements, depth + 1)
            return 2 + nodes, weight
        if kind is Choice or kind is Loop:
            if depth >= MAX_DEPTH:
                raise self.error(
                    f"conditionals, loops and subflows nested more than {MAX_DEPTH} deep", step.offset
                )
            nodes = weight = 0
            for element in [b.step for b in step.branches] if kind is Choice else [step.body]:
                more, heavier = self.size(element.step, depth + 1)
                nodes += more
                weight += heavier
            return 2 + nodes, weight
        if not self.weigh:
            return _ONE
        if kind is Literal:
            return 1, self.bytes(step.value)
        return (1, 0) if step.params is None else (1, self.bytes(step.params.value))

    def bytes(self, value: Any) -> int:
        """The size of a parameter or literal value as JSON, measured once however often it is used."""
        if value is None:
            return 0
        size = self.measured.get(id(value))
        if size is None:
            size = self.measured[id(value)] = json_size(value)
        return size

    def named(self, step: Task, body: Subflow, depth: int) -> tuple[int, int]:
        """The nodes (and bytes) of one use of a named subflow, counted at its first use."""
        key = id(body)
        size = self.sizes.get(key)
        if size is None:
            if key in self.counting:
                raise self.error(f"named subflow {step.name} invokes itself", step.offset)
            if depth >= MAX_DEPTH:
                raise self.error(f"subflows nested more than {MAX_DEPTH} deep", step.offset)
            self.counting.add(key)
            nodes, weight = self.count(body.statements, depth + 1)
            size = self.sizes[key] = (2 + nodes, weight)
            self.counting.discard(key)
        return size

    def crossing(self, statements: list[Statement], built: list[int]) -> int | None:
        """The offset of the first step (in building order, each named subflow whole) that takes
        the flow past a limit; ``built`` counts the nodes and bytes as they would be added."""
        for statement in statements:
            for element in statement.elements:
                step = element.step
                if type(step) is Subflow:
                    built[0] += 1
                    found = None if built[0] > self.max_nodes else self.crossing(step.statements, built)
                    if found is not None:
                        return found
                    built[0] += 1
                else:
                    nodes, weight = self.size(step, 0)
                    built[0] += nodes
                    built[1] += weight
                if built[0] > self.max_nodes or built[1] > MAX_FLOW_BYTES:
                    return step.offset
        return None

    # -- declarations -------------------------------------------------------
    def resolve(self, name: str, chain: tuple[str, ...] = ()) -> _Declared:
        """What invoking ``name`` means: aliases followed, defaults merged."""
        if name in self.declared:
            return self.declared[name]
        if len(chain) >= MAX_DEPTH:
            raise self.error(f"aliases chained more than {MAX_DEPTH} deep", self.module.tasks[name].offset)
        decl: TaskDecl = self.module.tasks[name]
        params = decl.params.value if decl.params is not None else None
        if decl.alias_of is None:
            declared = _Declared(name, params, decl.doc, decl.body)
        else:
            target = decl.alias_of
            if target in chain or target == name:
                loop = chain[chain.index(target) :] if target in chain else ()
                raise self.error(f"aliases form a cycle: {' → '.join(loop + (name, target))}", decl.offset)
            if target in self.module.tasks:
                base = self.resolve(target, chain + (name,))
            else:
                base = _Declared(target, None, None, None)
            if base.body is not None and params is not None:
                raise self.error(
                    f"alias {name} of named subflow {target} may not have parameters", decl.offset
                )
            merged = (
                base.params
                if params is None or decl.params is None
                else self.merge(base.params, params, name, decl.params.offset)
            )
            declared = _Declared(base.name, merged, decl.doc or base.doc, base.body)
        self.declared[name] = declared
        return declared

    def merge(self, default: Any, given: Any, name: str, offset: int) -> Any:
        """Parameters given over declared defaults (LANGUAGE.md §7)."""
        if default is None:
            return given
        if isinstance(default, dict) and isinstance(given, dict):
            return {**default, **given}
        kinds = {type(default), type(given)}
        if kinds == {dict, list}:
            raise self.error(
                f"parameters of {name} are {_kind(given)} but its declaration gives {_kind(default)}", offset
            )
        return given


def compile_flow(text: str, file: str | None = None, *, max_nodes: int | None = None) -> Flow:
    """Parse and compile flow text in one step (``file`` names it in errors); a flow that
    would have more than ``max_nodes`` nodes (see :class:`Compiler`) is refused."""
    return Compiler(max_nodes).compile(Parser().parse(text, file))


def _kind(value: Any) -> str:
    return "an object" if isinstance(value, dict) else "an array"
