"""``littleflow schedule …``: add, list, show, pause, resume, delete and run schedules on a
system on Redis (the engines fire them; see docs/schedules.md)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..schedules import CATCHUP, OVERLAP
from ..values import brief
from .common import (
    FLOW,
    Target,
    compile_text,
    echo_json,
    main,
    read_flow,
    read_input,
    redis_command,
    table,
)

if TYPE_CHECKING:
    from ..redis.client import ScheduleClient


@main.group("schedule")
def schedule_group() -> None:
    """Start workflows on a schedule (cron or every a duration); engines fire them."""


def schedules_of(target: Target) -> ScheduleClient:
    return target.client().schedules


def ticked(tick: int | None) -> str:
    """A tick as local time, with its zone."""
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(tick)) if tick else ""


@redis_command("add", group=schedule_group)
@click.argument("name")
@FLOW
@click.option(
    "--cron", metavar="EXPR", help="Cron: 'MIN HOUR DAY MONTH WEEKDAY', or with SECOND first (6 fields)."
)
@click.option(
    "--every", metavar="DURATION", help="Every DURATION (30s, 5m, 1h…), counted from the Unix epoch."
)
@click.option(
    "--timezone", metavar="TZ", help="The time zone of --cron (an IANA name: Europe/Paris) [default: UTC]."
)
@click.option(
    "--input", "input_text", metavar="JSON|@FILE|-", help="The input of each workflow (default {})."
)
@click.option(
    "--catchup",
    type=click.Choice(CATCHUP),
    help="Ticks missed while no engine ran: skip them, "
    "run one workflow for them, or all of them [default: the flow's, else one].",
)
@click.option(
    "--overlap",
    type=click.Choice(OVERLAP),
    help="A tick while the previous run still runs: run "
    "anyway, skip the tick, or terminate the previous run [default: the flow's, else allow].",
)
@click.option("--replace", is_flag=True, help="Replace the schedule of this name if there is one.")
def add_command(
    target: Target,
    name: str,
    flow: str,
    cron: str | None,
    every: str | None,
    timezone: str | None,
    input_text: str | None,
    catchup: str | None,
    overlap: str | None,
    replace: bool,
    as_json: bool,
) -> None:
    """Add schedule NAME: a workflow of FLOW at every tick of --cron or --every (or of the
    flow's own `schedule` option: @flow NAME (- schedule: {cron: "0 2 * * *"} -))."""
    text, shown = read_flow(flow)
    compiled = compile_text(text, shown)
    base = str(Path(flow).resolve().parent) if flow != "-" else os.getcwd()
    record = schedules_of(target).add(
        name,
        compiled,
        read_input(input_text),
        text=text,
        cron=cron,
        every=every,
        timezone=timezone,
        catchup=catchup,
        overlap=overlap,
        base=base,
        replace=replace,
    )
    if as_json:
        echo_json(record)
    else:
        click.echo(f"schedule {name}: {record['when']}, next at {ticked(record['next'])}")


@redis_command("list", group=schedule_group)
def list_command(target: Target, as_json: bool) -> None:
    """List the schedules: when they fire, their next tick and last run."""
    found = schedules_of(target).list(ticks=1)
    if as_json:
        echo_json(found)
        return
    if not found:
        click.echo("littleflow: no schedules", err=True)
        return
    rows = []
    for record in found:
        last = record["recent"][0] if record["recent"] else None
        rows.append(
            [
                record["name"],
                record["flow"] or "",
                record["when"],
                "paused" if record["paused"] else ticked(record["next"]),
                f"{last['id']} {last['state'] or 'deleted'}" if last else "",
            ]
        )
    click.echo(table(["schedule", "flow", "when", "next", "last run"], rows))


@redis_command("show", group=schedule_group)
@click.argument("name")
def show_command(target: Target, name: str, as_json: bool) -> None:
    """Show schedule NAME: its settings, next ticks and recent runs."""
    record = schedules_of(target).show(name)
    if as_json:
        echo_json(record)
        return
    lines = [
        f"schedule  {name}",
        f"flow      {record['flow'] or '(no name)'}",
        f"when      {record['when']}",
        f"catchup   {record['catchup']}",
        f"overlap   {record['overlap']}",
        f"state     {'paused' if record['paused'] else 'active'}",
    ]
    if record.get("input") is not None:
        lines.append(f"input     {brief(record['input'], 200)}")
    if record.get("skipped"):
        lines.append(f"skipped   {ticked(record['skipped']['tick'])} ({record['skipped']['reason']})")
    lines += ["", "next ticks", *(f"  {ticked(tick)}" for tick in record["ticks"])]
    if record["recent"]:
        lines += [
            "",
            table(
                ["tick", "workflow", "state"],
                [
                    [
                        ticked(run["tick"]) + (" (run now)" if run.get("manual") else ""),
                        run["id"],
                        run["state"] or "deleted",
                    ]
                    for run in record["recent"]
                ],
            ),
        ]
    click.echo("\n".join(lines))


def _changed(target: Target, name: str, as_json: bool, verb: str) -> None:
    record = getattr(schedules_of(target), verb)(name)
    if as_json:
        echo_json(record)
    else:
        next_tick = "" if record["paused"] else f", next at {ticked(record['next'])}"
        click.echo(f"schedule {name}: {'paused' if record['paused'] else 'active'}{next_tick}")


@redis_command("pause", group=schedule_group)
@click.argument("name")
def pause_command(target: Target, name: str, as_json: bool) -> None:
    """Fire no ticks of schedule NAME until it is resumed."""
    _changed(target, name, as_json, "pause")


@redis_command("resume", group=schedule_group)
@click.argument("name")
def resume_command(target: Target, name: str, as_json: bool) -> None:
    """Fire schedule NAME again, from its next tick (those while it was paused are not run)."""
    _changed(target, name, as_json, "resume")


@redis_command("delete", group=schedule_group)
@click.argument("name")
def delete_command(target: Target, name: str, as_json: bool) -> None:
    """Remove schedule NAME (the workflows it started stay)."""
    schedules_of(target).delete(name)
    echo_json({"deleted": name}) if as_json else click.echo(f"schedule {name}: deleted")


@redis_command("run", group=schedule_group)
@click.argument("name")
def run_command(target: Target, name: str, as_json: bool) -> None:
    """Start one workflow of schedule NAME now, whatever its ticks; print its id."""
    id = schedules_of(target).run(name)
    echo_json({"id": id}) if as_json else click.echo(id)
