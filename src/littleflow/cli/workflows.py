"""The commands that use a system on Redis: ``submit``, ``status``, ``list``, ``logs``,
``terminate``, ``resume``, ``delete``, ``archive``, ``restore``, ``send``, ``events``,
``workers`` and ``dead``. The Redis modules are imported only when one runs."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import click

from .. import durations
from ..redis.protocol import STATES  # (light: no Redis client, no worker)
from ..state import failed_node
from ..values import short
from .common import (
    FLOW,
    INPUT,
    LIMIT,
    Target,
    compile_text,
    echo_failure,
    echo_json,
    fail,
    json_text,
    plural,
    read_flow,
    read_input,
    redis_command,
    table,
    when,
)


def served(info: dict[str, Any]) -> str:
    """What a worker serves (its entry in the workers hash), in words."""
    return (
        ", ".join([*(info.get("tasks") or ()), *(f"{space}:*" for space in info.get("namespaces") or ())])
        or "nothing"
    )


# -- running workflows -------------------------------------------------------------------
@redis_command("submit")
@FLOW
@INPUT
@LIMIT
@click.option(
    "--key",
    metavar="KEY",
    help="An idempotency key (1-200 printable ASCII characters): submitted "
    "again with it within 24 h, the same flow and input start nothing; the first workflow's id is printed.",
)
@click.option(
    "--wait", is_flag=True, help="Wait for the workflow to end, then print its output as `run` does."
)
@click.option("--quiet", "-q", is_flag=True, help="With --wait: do not print the id on standard error.")
@click.option(
    "--require-workers",
    is_flag=True,
    help="Submit nothing (and exit 2) if a task of the flow has no live worker to run it.",
)
def submit_command(
    target: Target,
    flow: str,
    input_text: str | None,
    limit: int,
    key: str | None,
    wait: bool,
    quiet: bool,
    require_workers: bool,
    as_json: bool,
) -> None:
    """Start a workflow of FLOW and print its id. With --wait, wait for it to end and
    print its output (exit 0), or say why it failed (exit 1). Tasks that no live worker
    serves are named on standard error (they wait until one comes).

    With --json: {"id": …}, or with --wait the status document of the ended workflow.
    """
    text, name = read_flow(flow)
    compiled = compile_text(text, name)
    value = read_input(input_text)
    base = str(Path(flow).resolve().parent) if flow != "-" else os.getcwd()
    client = target.client()
    unserved = client.unserved(compiled)
    if unserved and require_workers:
        fail(f"no live worker serves {_tasks(unserved)}; nothing submitted")
    id, new = client.submit_once(compiled, value, limit=limit, base=base, text=text, key=key)
    if unserved and new and not quiet:
        click.echo(
            f"littleflow: no live worker serves {_tasks(unserved)}; its runs wait until one does", err=True
        )
    if not new and not quiet:
        click.echo(
            f"littleflow: workflow {id} was submitted with key {key!r} before; nothing new started", err=True
        )
    if not wait:
        echo_json({"id": id}) if as_json else click.echo(id)
        return
    if not quiet:
        click.echo(f"littleflow: submitted {id}", err=True)
    try:
        try:
            document = client.wait(id, timeout=5)
        except TimeoutError:
            for hint in client.stalled(id):
                click.echo(f"littleflow: still waiting: {hint}", err=True)
            document = client.wait(id)
    except KeyboardInterrupt:
        click.echo(f"littleflow: interrupted; workflow {id} goes on (littleflow status {id})", err=True)
        sys.exit(130)
    report_end(document, as_json)


def _tasks(names: list[str]) -> str:
    return f"task{'s' if len(names) > 1 else ''} {', '.join(names)}"


def report_end(document: dict[str, Any], as_json: bool) -> NoReturn:
    """Report how a workflow ended, as ``littleflow run`` does, and exit 0 if it finished, else 1."""
    state, id = document["state"], document["id"]
    if as_json:
        echo_json(document)
    elif state == "finished":
        click.echo(json_text(document["output"]))
    elif state == "failed" and document.get("error"):
        echo_failure(document["error"])
        click.echo(f"  littleflow resume {id} runs it again from there", err=True)
    else:
        click.echo(f"littleflow: workflow {id} {state}", err=True)
    sys.exit(0 if state == "finished" else 1)


def took(seconds: float | None) -> str:
    """:func:`durations.text`, or nothing for a time not known (or a clock gone back)."""
    return "" if seconds is None or seconds < 0 else durations.text(seconds)


def readable(document: dict[str, Any]) -> str:
    """The status document as a page of text: the workflow, then one row per node."""
    now = time.time()
    lines = [
        f"workflow  {document['id']}",
        f"flow      {document['name'] or '(no name)'}",
        f"state     {document['state']}",
        f"created   {when(document['created'])}",
    ]
    if document["updated"]:
        lines.append(
            f"updated   {when(document['updated'])} ({took(document['updated'] - document['created'])} after)"
        )
    if document["state"] == "finished":
        lines.append(f"output    {short(document['output'], 200)}")
    if document.get("error"):
        failure = document["error"]
        lines.append(f"error     {failed_node(failure)}: {short(failure['error'], 200)}")
    rows = []
    for node in document["nodes"]:
        started, ended = node.get("started"), node.get("ended")
        duration = ended if ended else now if node["status"] == "running" else None
        rows.append(
            [
                node["id"],
                node["label"],
                node["status"],
                node.get("attempt") or "",
                when(started, day=False),
                took(duration - started) if started and duration else "",
                short(node.get("error") or node.get("note") or "", 80),
            ]
        )
    lines += [
        "",
        table(["node", "label", "status", "attempt", "started", "took", "error or note"], rows, (0, 3)),
    ]
    return "\n".join(lines)


@redis_command("status")
@click.argument("id")
def status_command(target: Target, id: str, as_json: bool) -> None:
    """Show workflow ID: its state and times, and every node's status."""
    document = target.client().status(id)
    echo_json(document) if as_json else click.echo(readable(document))


@redis_command("list")
@click.option("--state", type=click.Choice(STATES), help="Only workflows in this state.")
@click.option("--name", help="Only workflows of the flow of this name (@flow NAME).")
@click.option(
    "--search",
    metavar="PREFIX",
    help="Only workflows whose id or flow name starts with PREFIX (case-sensitive).",
)
@click.option(
    "--schedule", metavar="NAME", help="Only workflows started by schedule NAME (with --state alone)."
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    metavar="N",
    help="Show the first N workflows that match.",
)
def list_command(
    target: Target,
    state: str | None,
    name: str | None,
    search: str | None,
    schedule: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List the workflows, oldest first. With --json: what GET /workflows answers
    ({"workflows": […], "offset", "limit", "total", "counts"})."""
    page = target.client().page(state, name, 0, limit, search, schedule=schedule)
    found = page.workflows
    if as_json:
        echo_json(
            {"workflows": found, "offset": 0, "limit": limit, "total": page.total, "counts": page.counts}
        )
        return
    if not found:
        click.echo(
            "littleflow: no workflows"
            + (" in that state" if state else "")
            + (" of that name" if name else "")
            + (f" matching {search!r}" if search else ""),
            err=True,
        )
        return
    click.echo(
        table(
            ["id", "state", "flow", "created", "took"],
            [
                [
                    s["id"],
                    s["state"],
                    s["name"] or "",
                    when(s["created"]),
                    took((s["updated"] or 0) - (s["created"] or 0)) if s["state"] != "running" else "",
                ]
                for s in found
            ],
        )
    )
    if page.total > len(found):
        click.echo(f"littleflow: the first {len(found)} of {page.total} workflows (--limit)", err=True)


@redis_command("logs")
@click.argument("id")
@click.option(
    "--node", "-n", type=int, metavar="N", help="Only the runs of node N (its id, as `status` shows it)."
)
@click.option(
    "--follow", "-f", is_flag=True, help="Keep printing new lines until the workflow is no longer running."
)
def logs_command(target: Target, id: str, node: int | None, follow: bool, as_json: bool) -> None:
    """Print what the task runs of workflow ID wrote (stdout, stderr, logging): the last lines
    of each run kept (see the README), under a header line per run."""
    client = target.client()
    found = client.logs(id, node)
    if as_json and not follow:
        echo_json(found)
        return
    shown: dict[str, tuple[int, int]] = {}  # task -> (seq, lines shown)
    while True:
        for run in found["runs"]:
            seen_seq, seen = shown.get(run["task"], (None, 0))
            lines, dropped = run["lines"], run["dropped"]
            if seen_seq != run["seq"]:
                seen = 0
            total = dropped + len(lines)
            if total <= seen:
                continue
            if as_json:
                echo_json({**run, "lines": lines[max(0, seen - dropped) :]})
            else:
                if seen == 0:
                    item = f" item {run['item']}" if run["item"] is not None else ""
                    click.echo(
                        f"── node {run['node']} {run['name'] or ''}{item} (attempt {run['attempt']}, "
                        f"{run['status']})"
                        + (f": {plural(dropped, 'earlier line')} not kept" if dropped else "")
                    )
                for line in lines[max(0, seen - dropped) :]:
                    click.echo(line)
            shown[run["task"]] = (run["seq"], total)
        if not follow or found["state"] != "running":
            return
        time.sleep(0.5)
        found = client.logs(id, node)


@redis_command("terminate")
@click.argument("id")
def terminate_command(target: Target, id: str, as_json: bool) -> None:
    """Stop workflow ID: nothing new starts, and its running tasks are told to cancel."""
    document = target.client().terminate(id)
    echo_json(document) if as_json else click.echo(f"{id} {document['state']}")


@redis_command("resume")
@click.argument("id")
def resume_command(target: Target, id: str, as_json: bool) -> None:
    """Continue a failed or terminated workflow: what failed or was cut short runs again."""
    document = target.client().resume(id)
    echo_json(document) if as_json else click.echo(f"{id} {document['state']}")


@redis_command("delete")
@click.argument("id")
def delete_command(target: Target, id: str, as_json: bool) -> None:
    """Forget workflow ID (terminate it first if it runs; `archive` keeps a copy)."""
    target.client().delete(id)
    echo_json({"id": id, "deleted": True}) if as_json else click.echo(f"{id} deleted")


@redis_command("archive", json_flag=False)
@click.argument("id")
@click.option("--output", "-o", "path", metavar="FILE", help="Write it here rather than on standard output.")
def archive_command(target: Target, id: str, path: str | None) -> None:
    """Print everything about workflow ID as JSON: flow, state, task runs and log
    (`littleflow restore` brings it back)."""
    text = json.dumps(target.client().archive(id), ensure_ascii=False, indent=1)
    if path is None:
        click.echo(text)
        return
    try:
        Path(path).write_text(text + "\n", encoding="utf-8")
    except OSError as error:
        fail(f"cannot write {path}: {error.strerror}")


@redis_command("restore")
@click.argument("path", metavar="FILE")
@click.option("--replace", is_flag=True, help="Overwrite a workflow of the same id.")
def restore_command(target: Target, path: str, replace: bool, as_json: bool) -> None:
    """Bring back an archived workflow (FILE, or - for standard input) under its id, and print
    the id. A running one goes on: its running tasks are sent again."""
    from ..values import loads

    text, name = read_flow(path)
    try:
        archive = loads(text)
    except ValueError as error:
        fail(f"cannot read an archive from {name}: not JSON: {' '.join(str(error).split())}")
    if not isinstance(archive, dict):
        fail(f"cannot read an archive from {name}: not a littleflow archive")
    client = target.client()
    id = client.restore(archive, replace=replace)
    echo_json(client.status(id)) if as_json else click.echo(id)


# -- events, workers, dead letters ------------------------------------------------------------
@redis_command("send")
@click.argument("event")
@click.option("--data", "data_text", metavar="JSON|@FILE|-", help="The event's data (default {}).")
def send_command(target: Target, event: str, data_text: str | None, as_json: bool) -> None:
    """Send EVENT: the wait:event tasks waiting for it (whose match fits the data) end,
    with the data as their output."""
    data = read_input(data_text, "--data")
    ended = target.client().send(event, data)
    if as_json:
        echo_json({"event": event, "ended": ended})
    else:
        click.echo(f"{plural(ended, 'task')} woken", err=True)


@redis_command("events")
@click.option("--follow", "-f", is_flag=True, help="Keep waiting for more (until Ctrl-C or SIGTERM).")
def events_command(target: Target, follow: bool, as_json: bool) -> None:
    """Print the events sent and the workflows' state changes, oldest first: one line each."""
    client = target.client()
    client.redis.ping()

    def quit_quietly(number: int, frame: Any) -> None:
        raise _Stop

    saved = {number: signal.signal(number, quit_quietly) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        for entry in client.events(follow=follow):
            if entry is None:  # a quiet second
                continue
            moment = entry["time"]
            if as_json:
                echo_json(entry)
                continue
            fields = " ".join(
                f"{key}={value if isinstance(value, str) else short(value, 2000)}"
                for key, value in entry.items()
                if key not in ("id", "kind", "time") and value != ""
            )
            click.echo(
                f"{when(moment)}.{int(moment * 1000) % 1000:03d}  {entry.get('kind', '?'):<8}  {fields}"
            )
    except _Stop:
        pass
    finally:
        for number, handler in saved.items():
            signal.signal(number, handler)


class _Stop(Exception):
    """Raised by the signal handler of ``events --follow``."""


@redis_command("workers")
def workers_command(target: Target, as_json: bool) -> None:
    """List the workers that said what they serve: tasks, namespaces, concurrency, when last seen.
    A worker says so every 10 s while it runs."""
    client = target.client()
    found = []
    for name, text in sorted(client.redis.hgetall(client.keys.workers).items()):
        try:
            info = json.loads(text)
        except ValueError:
            info = {}
        found.append({"name": name, **(info if isinstance(info, dict) else {})})
    if as_json:
        echo_json(found)
        return
    if not found:
        click.echo("littleflow: no workers", err=True)
        return
    now = time.time()
    click.echo(
        table(
            ["worker", "serves", "concurrency", "seen"],
            [
                [
                    w["name"],
                    served(w),
                    w.get("concurrency"),
                    f"{took(now - w['seen'])} ago" if isinstance(w.get("seen"), (int, float)) else "?",
                ]
                for w in found
            ],
            (2,),
        )
    )


@redis_command("dead")
@click.option(
    "--count", type=click.IntRange(min=1), default=100, show_default=True, help="How many, newest first."
)
def dead_command(target: Target, count: int, as_json: bool) -> None:
    """List the dead letters: messages set aside because they could not be handled, newest first."""
    found = target.client().dead(count)
    if as_json:
        echo_json(found)
        return
    if not found:
        click.echo("littleflow: no dead letters", err=True)
        return
    rows = []
    for entry in found:
        try:
            moment = when(float(entry.get("time", "")))
        except ValueError:
            moment = ""
        rows.append(
            [
                moment,
                entry.get("stream", ""),
                entry.get("field:workflow", ""),
                entry.get("field:task", ""),
                short(entry.get("reason", ""), 100),
            ]
        )
    click.echo(table(["time", "stream", "workflow", "task", "reason"], rows))
