"""The syntax tree of flow text. Every node keeps the offset where it was written."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .source import Source


@dataclass(slots=True)
class Label:
    """``:name`` written at ``offset``."""

    name: str
    offset: int


@dataclass(slots=True)
class Params:
    """A parameter literal and where it was written."""

    value: Any
    offset: int


@dataclass(slots=True)
class Task:
    """An invocation of the task (or named subflow) ``name``."""

    name: str
    params: Params | None
    offset: int


@dataclass(slots=True)
class Literal:
    """A literal source: a step that outputs ``value``."""

    value: Any
    offset: int


@dataclass(slots=True)
class Resource:
    """``<uri>``: read at the start of a statement, written elsewhere."""

    uri: str
    params: Params | None
    offset: int


@dataclass(slots=True)
class Subflow:
    """``{ … }`` or ``[ … ]``; ``A|B|C`` is one too, with ``alternation`` set."""

    statements: list[Statement]
    offset: int
    end: int = 0  # offset of the closing bracket (of the last alternative for A|B)
    alternation: bool = False
    name: str | None = None  # set for the expansion of a named subflow


@dataclass(slots=True)
class Branch:
    """One branch of a conditional: ``then STEP`` after a condition, or ``else STEP``
    (``condition`` None). ``step`` is an :class:`Element` that may carry ``>`` and ``*``."""

    condition: str | None
    condition_offset: int
    step: Element


@dataclass(slots=True)
class Choice:
    """``if `c` then A elif `d` then B else C``: one step; ``end`` is the offset after the last branch."""

    branches: list[Branch]
    offset: int
    end: int = 0


@dataclass(slots=True)
class Loop:
    """``repeat BODY until `c``` (``kind`` "repeat") or ``while `c` do BODY`` (``kind`` "while")."""

    kind: str
    condition: str
    condition_offset: int
    body: Element
    offset: int
    end: int = 0


Step = Task | Literal | Resource | Subflow | Choice | Loop


@dataclass(slots=True)
class Element:
    """A step in a statement with what is written around it.

    ``input_label`` is ``:x`` written just before the step, ``output_label``
    just after it; ``guard``, ``merge`` and ``iterate`` are ``?`…```, ``>``, ``*``.
    """

    step: Step
    input_label: Label | None = None
    output_label: Label | None = None
    guard: str | None = None
    guard_offset: int = 0
    merge: bool = False
    iterate: bool = False


@dataclass(slots=True)
class Tail:
    """``→ :x`` (or ``→ > :x``) ending a statement."""

    label: Label
    merge: bool = False


@dataclass(slots=True)
class Statement:
    """A chain of steps; ``head`` is ``:x →`` starting it, ``tail`` ``→ :x`` ending it."""

    elements: list[Element]
    head: Label | None = None
    tail: Tail | None = None


@dataclass(slots=True)
class FlowDecl:
    """``@flow NAME PARAMS? DOC?``"""

    name: str
    params: Params | None
    doc: str | None
    offset: int


@dataclass(slots=True)
class TaskDecl:
    """``@task NAME (= OTHER)? PARAMS? DOC? SUBFLOW?``"""

    name: str
    alias_of: str | None
    params: Params | None
    doc: str | None
    body: Subflow | None
    offset: int


@dataclass(slots=True)
class Module:
    """A whole flow text: its statements, declarations and source."""

    statements: list[Statement]
    source: Source
    flow: FlowDecl | None = None
    tasks: dict[str, TaskDecl] = field(default_factory=dict)
