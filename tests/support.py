"""Small helpers shared by the module tests (graph helpers live in graphs.py)."""

from __future__ import annotations

import pytest

from littleflow import Flow, FlowError, compile_flow


def fails(text: str, file: str | None = None) -> FlowError:
    """The FlowError that compiling ``text`` raises."""
    with pytest.raises(FlowError) as caught:
        compile_flow(text, file)
    return caught.value


def at(error: FlowError) -> tuple[int, int]:
    """Where an error points, as (line, column)."""
    return error.line, error.column


def by_name(flow: Flow, name: str) -> list:
    """The nodes of ``flow`` whose task name (or alias) is ``name``, in node order."""
    return [n for n in flow.nodes if name in (n.name, n.alias)]


def one(flow: Flow, name: str):
    """The single node of ``flow`` named ``name``."""
    (node,) = by_name(flow, name)
    return node


def kinds(flow: Flow) -> list[str]:
    return [n.kind for n in flow.nodes]
