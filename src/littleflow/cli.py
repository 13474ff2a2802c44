"""The ``littleflow`` command: compile, check and draw flows."""

from __future__ import annotations

import json
import sys
from collections import Counter
from typing import NoReturn

import click

from . import __version__, diagram
from .check import check
from .compiler import Compiler
from .errors import FlowError
from .flow import Flow
from .parser import Parser

FLOW = click.argument("flow", metavar="FLOW")


def read_flow(path: str) -> tuple[str, str]:
    """The text of ``path`` (``-`` for standard input) and the name to show for it."""
    if path == "-":
        return sys.stdin.read(), "<stdin>"
    try:
        with open(path, encoding="utf-8") as file:
            return file.read(), path
    except FileNotFoundError:
        fail(f"cannot read {path}: no such file")
    except IsADirectoryError:
        fail(f"cannot read {path}: it is a directory")
    except UnicodeDecodeError as error:
        fail(f"cannot read {path}: not UTF-8 text (byte {error.start})")
    except OSError as error:
        fail(f"cannot read {path}: {error.strerror}")


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one error line and exit."""
    click.echo(f"littleflow: error: {message}", err=True)
    sys.exit(code)


def load(path: str) -> Flow:
    """Read and compile a flow, or report the error in it and exit 2."""
    text, name = read_flow(path)
    try:
        return Compiler().compile(Parser().parse(text, name))
    except FlowError as error:
        click.echo(error.format(), err=True)
        sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """littleflow: a little workflow language and engine.

    FLOW is a file of flow text, or - to read it from standard input.
    """


@main.command("compile")
@FLOW
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: a readable summary; json: the compiled graph.")
def compile_command(flow: str, fmt: str) -> None:
    """Compile FLOW and print its graph."""
    compiled = load(flow)
    if fmt == "json":
        click.echo(compiled.dumps(indent=1))
    else:
        click.echo(summary(compiled))


def summary(flow: Flow) -> str:
    """A readable account of a compiled flow: header, tasks used, and every node's successors."""
    tasks = [node for node in flow.nodes if node.kind == "task"]
    lines = []
    if flow.name:
        lines.append(f"flow {flow.name}" + (f" — {flow.doc.splitlines()[0]}" if flow.doc else ""))
    lines.append(f"{len(flow)} nodes ({len(tasks)} task invocations), {flow.edge_count} edges")
    if tasks:
        lines.append("")
        lines.append("tasks:")
        counts = Counter(node.name for node in tasks)
        params: dict[str, set[str]] = {}
        for node in tasks:
            if node.parameters is not None:
                params.setdefault(node.name, set()).add(json.dumps(node.parameters, sort_keys=True))
        width = max(len(name) for name in counts)
        for name, count in counts.items():
            shown = sorted(params.get(name, ()))
            extra = "  " + " | ".join(shown[:3]) + (" | …" if len(shown) > 3 else "") if shown else ""
            lines.append(f"  {name:<{width}}  ×{count}{extra}")
    lines.append("")
    lines.append("nodes:")
    width = len(str(len(flow) - 1))
    for node in flow.nodes:
        where = f"{node.line}:{node.column}" if node.line else ""
        marks = ("? " if node.guard else "") + ("> " if node.merge else "") + ("* " if node.iterate else "")
        text = f"{marks}{node.label}"
        if node.alias:
            text += f" (= {node.name})"
        targets = ", ".join(str(t) for t in flow.successors(node.id))
        lines.append(f"  {node.id:>{width}}  {text:<24} {where:<8} → {targets or '-'}")
    return "\n".join(lines)


@main.command("check")
@click.argument("flows", metavar="FLOW...", nargs=-1, required=True)
@click.option("--strict", is_flag=True, help="Count warnings as errors.")
def check_command(flows: tuple[str, ...], strict: bool) -> None:
    """Check flows: report errors, and warn about labels and declarations never
    used and nodes that can never run. Exits 1 when there are errors."""
    errors = warnings = 0
    for path in flows:
        text, name = read_flow(path)
        _, found = check(text, name)
        for diagnostic in found:
            click.echo(diagnostic.format(), err=True)
            if diagnostic.severity == "error":
                errors += 1
            else:
                warnings += 1
    click.echo(f"checked {len(flows)} flow{'s' * (len(flows) != 1)}: "
               f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}", err=True)
    sys.exit(1 if errors or (strict and warnings) else 0)


@main.command("doc")
@FLOW
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True,
              help="mermaid: a stateDiagram-v2; dot: Graphviz.")
@click.option("--vertical", is_flag=True, help="Lay the diagram out top to bottom.")
def doc_command(flow: str, fmt: str, vertical: bool) -> None:
    """Draw FLOW as a diagram."""
    compiled = load(flow)
    render = diagram.mermaid if fmt == "mermaid" else diagram.dot
    click.echo(render(compiled, vertical=vertical))


@main.command("version")
def version_command() -> None:
    """Print littleflow's version."""
    click.echo(f"littleflow {__version__}")
