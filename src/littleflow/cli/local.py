"""The commands that work here, without Redis: compile, check, doc, run and version."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .. import __version__
from .common import (
    FLOW,
    INPUT,
    LIMIT,
    echo_failure,
    fail,
    json_text,
    load,
    load_tasks,
    main,
    read_flow,
    read_input,
)

if TYPE_CHECKING:
    from ..flow import Flow
    from ..local import LocalRun

# (each command imports what it runs when it runs: `littleflow --help` loads none of it)


@main.command("compile")
@FLOW
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text: a readable summary; json: the compiled graph.",
)
def compile_command(flow: str, fmt: str) -> None:
    """Compile FLOW and print its graph."""
    compiled = load(flow)
    if fmt == "json":
        click.echo(compiled.dumps(indent=1))
    else:
        click.echo(summary(compiled))


def summary(flow: Flow) -> str:
    """A readable account of a compiled flow: header, tasks used, and every node's successors
    (with the conditions of branches and loops)."""
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
        if node.condition is not None:  # a branch's first node (if), a repeat's (until), a while's
            text += {"repeat": " until ", "while": " "}.get(node.kind, " if ") + f"`{node.condition}`"
        targets = ", ".join(str(t) for t in flow.successors(node.id))
        lines.append(f"  {node.id:>{width}}  {text:<24} {where:<8} → {targets or '-'}")
    return "\n".join(lines)


@main.command("check")
@click.argument("flows", metavar="FLOW...", nargs=-1, required=True)
@click.option("--strict", is_flag=True, help="Count warnings as errors.")
def check_command(flows: tuple[str, ...], strict: bool) -> None:
    """Check flows: report errors, and warn about labels and declarations never
    used and nodes that can never run. Exits 1 when there are errors."""
    from ..check import check

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
    click.echo(
        f"checked {len(flows)} flow{'s' * (len(flows) != 1)}: "
        f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}",
        err=True,
    )
    sys.exit(1 if errors or (strict and warnings) else 0)


@main.command("doc")
@FLOW
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mermaid", "dot", "svg"]),
    default="mermaid",
    show_default=True,
    help="mermaid: a stateDiagram-v2; dot: Graphviz; svg: a laid-out SVG picture.",
)
@click.option("--vertical", is_flag=True, help="Lay the diagram out top to bottom.")
@click.option(
    "--state", "state_path", metavar="FILE", help="Colour the nodes by their status in this run's state file."
)
def doc_command(flow: str, fmt: str, vertical: bool, state_path: str | None) -> None:
    """Draw FLOW as a diagram."""
    from .. import diagram
    from ..statefile import StateFileError, read_any

    compiled = load(flow)
    status = None
    if state_path is not None:
        try:
            saved_flow, state = read_any(state_path)
        except StateFileError as error:
            fail(str(error))
        if saved_flow != compiled:
            fail(f"state file {state_path} belongs to a different flow")
        status = state.statuses(compiled)
    render = {"mermaid": diagram.mermaid, "dot": diagram.dot, "svg": diagram.svg}[fmt]
    click.echo(render(compiled, vertical=vertical, status=status))


@main.command("run")
@FLOW
@click.option(
    "--tasks",
    "task_sources",
    metavar="MODULE_OR_FILE",
    multiple=True,
    help="Where the task functions are: a module name or a .py file (repeatable). "
    "Without it every task echoes its input: a dry run.",
)
@INPUT
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Tasks run at once; 1 runs them one by one in a fixed order.",
)
@LIMIT
@click.option(
    "--state",
    "state_path",
    metavar="FILE",
    help="Save the run here after every step; run again to continue after a crash or failure. "
    "Locked (FILE.lock) while the run lasts: a second run on it is refused.",
)
@click.option("--trace", "trace_path", metavar="FILE", help="Write a JSON record of every task run here.")
@click.option("--quiet", "-q", is_flag=True, help="Show no progress; print only the output.")
@click.option(
    "--files",
    "files",
    metavar="DIR",
    multiple=True,
    type=click.Path(exists=True, file_okay=False),
    help="Confine file resources to this directory (repeatable; relative paths resolve in the first) "
    "[default: anywhere].",
)
@click.option(
    "--http-allow",
    "http_allow",
    metavar="HOST|CIDR",
    multiple=True,
    help="Confine HTTP resources to public addresses and this host or network (repeatable) "
    "[default: any address].",
)
@click.option(
    "--http-confine",
    is_flag=True,
    help="Confine HTTP resources to public addresses (as --http-allow does, allowing nothing more).",
)
def run_command(
    flow: str,
    task_sources: tuple[str, ...],
    input_text: str | None,
    concurrency: int,
    limit: int,
    state_path: str | None,
    trace_path: str | None,
    quiet: bool,
    files: tuple[str, ...],
    http_allow: tuple[str, ...],
    http_confine: bool,
) -> None:
    """Run FLOW here and print its output as JSON.

    Exits 0 when the flow finishes, 1 when it fails, 2 for mistakes in the
    command or the flow text.
    """
    from ..local import LocalRun, UnknownTasks
    from ..progress import progress_for
    from ..statefile import StateFile, StateFileError

    compiled = load(flow)
    base = str(Path(flow).resolve().parent) if flow != "-" else None
    tasks = [load_tasks(source) for source in task_sources]
    value = read_input(input_text)
    if state_path:
        try:
            Path(state_path).parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            fail(f"cannot make the directory of {state_path}: {error.strerror or error}")
    saved = StateFile(state_path, compiled) if state_path else None
    try:
        if saved:
            saved.lock()  # held until this process ends: one run of a state file at a time
            click.get_current_context().call_on_close(saved.unlock)
        state = saved.load(limit) if saved else None
    except StateFileError as error:
        fail(str(error))
    if state is not None and state.status == "finished":
        if not quiet:
            click.echo(f"littleflow: {state_path} holds a finished run; its output:", err=True)
        click.echo(json_text(state.output))
        return
    progress = progress_for(compiled, quiet, state=state)
    try:
        run = LocalRun(
            compiled,
            tasks,
            concurrency=concurrency,
            limit=limit,
            base=base,
            echo=not task_sources,
            state=state,
            journal=saved,
            on_event=progress.event,
            trace=trace_path is not None,
            files=list(files) or None,
            http_allow=list(http_allow) if http_allow or http_confine else None,
        )
    except (UnknownTasks, ValueError) as error:
        fail(str(error))
    if trace_path:
        write_trace(trace_path, [])  # find out now, not after the run, if it cannot be written
    hint = f"; run the same command again to continue from {state_path}" if saved else ""
    try:
        with progress, stopping_on_ctrl_c(run):
            final = run.run(value)
    except StateFileError as error:
        fail(str(error))
    except KeyboardInterrupt:
        click.echo(f"littleflow: interrupted{hint}", err=True)
        if run.stopped:  # a second Ctrl-C: do not wait for the tasks still running (their ends are lost)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)
        sys.exit(130)
    if run.stopped:
        click.echo(f"littleflow: interrupted{hint}", err=True)
        sys.exit(130)
    if trace_path:
        write_trace(trace_path, run.trace)
    if final.status == "failed":
        echo_failure(final.failure)
        if saved:
            click.echo(f"  run the same command again to retry from {state_path}", err=True)
        sys.exit(1)
    click.echo(json_text(final.output))


@contextlib.contextmanager
def stopping_on_ctrl_c(run: LocalRun) -> Iterator[None]:
    """While a run on a thread pool lasts, a first Ctrl-C stops it gently (the tasks running
    finish and their ends are kept) and a second one at once; a run one task at a time is
    interrupted at once, as usual."""
    if run.concurrency == 1 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_stop(running: int) -> None:
        tasks = f"{running} running task{'s' * (running != 1)}"
        click.echo(
            f"littleflow: stopping: waiting for the {tasks} to finish (Ctrl-C again to stop at once)",
            err=True,
        )

    def handler(number: int, frame: Any) -> None:
        if run.stopped:
            raise KeyboardInterrupt
        run.stop()  # the run's loop notices it and calls on_stop: printing here could interrupt a print

    run.on_stop = on_stop
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def write_trace(path: str, trace: list[dict[str, Any]]) -> None:
    try:
        Path(path).write_text(json.dumps(trace, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    except OSError as error:
        fail(f"cannot write trace file {path}: {error.strerror}")


@main.command("version")
def version_command() -> None:
    """Print littleflow's version."""
    click.echo(f"littleflow {__version__}")
