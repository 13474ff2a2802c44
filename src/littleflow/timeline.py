"""A workflow's timeline: every task run (each item of a ``*`` its own, each attempt of a
retried run its own, numbered) with its times and status, as a document or as an SVG picture
on a time axis, coloured as the graphs are (``drawing.COLOURS``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .drawing import COLOURS, num, xml
from .flow import Flow

#: The picture's geometry, in pixels: the label column, the time axis at zoom 1, a row, a bar, the axis band.
GUTTER, PLOT, ROW, BAR, AXIS = 220, 900, 18, 12, 26
_TICKS = 8  # about this many marks on the time axis
_TITLE = 300  # characters of an error shown in a bar's hover text


def runs(flow: Flow, info: Mapping[str, Mapping[str, Any]], state: str) -> list[dict[str, Any]]:
    """The task runs in a workflow's task info (task id ``PATH|NODE|ITEM`` -> its latest run,
    with its earlier ``attempts`` if it was retried), one per attempt, by start time: task
    (its id), node, label, name, path, item (None outside a ``*``), attempt, status, start,
    end (seconds since the epoch; None when not yet), worker and error. In a terminated
    workflow a run that was running or queued is ``terminated``, as its node is."""
    found = []
    for key, entry in info.items():
        path, _, rest = key.rpartition("|")
        path = path.rpartition("|")[0]
        node = entry.get("node")
        if not isinstance(node, int) or not 0 <= node < len(flow.nodes):
            continue
        try:
            item = int(rest)
        except ValueError:
            item = -1
        status = entry.get("status")
        if status not in COLOURS:
            status = "queued"
        if status in ("running", "queued") and state == "terminated":
            status = "terminated"
        attempt = entry.get("attempt")
        error = entry.get("error")
        run = {
            "task": key,
            "node": node,
            "label": flow.nodes[node].label,
            "name": flow.nodes[node].name,
            "path": path,
            "item": item if item >= 0 else None,
            "attempt": attempt if isinstance(attempt, int) else None,
            "status": status,
            "start": _time(entry.get("started")),
            "end": _time(entry.get("ended")),
            "worker": entry.get("worker") if isinstance(entry.get("worker"), str) else None,
            "error": error if isinstance(error, str) else None,
        }
        tried = _attempts(entry.get("attempts"), state)
        if tried:  # the earlier attempts as they were; the last one as the run now is, from its start
            found += [{**run, **earlier} for earlier in tried[:-1]]
            run["attempt"], run["start"] = tried[-1]["attempt"], tried[-1]["start"]
        found.append(run)
    found.sort(key=lambda run: (run["start"] is None, run["start"] or 0.0, run["node"], run["item"] or 0))
    return found


def document(
    id: str, flow: Flow, info: Mapping[str, Mapping[str, Any]], state: str, created: float, updated: float
) -> dict[str, Any]:
    """What ``GET /workflows/{id}/timeline`` answers: the workflow's id, name, state, when it
    started and ended (None while it runs), and its :func:`runs`."""
    return {
        "id": id,
        "name": flow.name,
        "state": state,
        "start": created or None,
        "end": None if state == "running" else updated or None,
        "runs": runs(flow, info, state),
    }


def svg(timeline: Mapping[str, Any], now: float) -> str:
    """A timeline document as a standalone SVG: one row per run that started, its bar from
    start to end (to ``now`` while it runs) on a time axis from the workflow's start.

    The root carries ``data-origin`` (the axis' zero, in seconds since the epoch),
    ``data-span`` (seconds the axis shows), ``data-gutter`` and ``data-plot`` (pixels of the
    label column and of the axis); each run is ``<g class="run status-STATUS" data-task data-node
    data-item data-attempt data-start data-end>`` (seconds from the origin) holding a
    ``<title>``, a ``<text class="label">`` and a ``<rect class="timebar">``; each mark of the axis
    ``<g class="tick" data-t>``. A page may so redraw the bars at another scale. All text from
    the flow or the workers is escaped, as in the graph's SVG.
    """
    shown = [run for run in timeline["runs"] if run["start"] is not None]
    starts = [run["start"] for run in shown]
    origin = min([*starts, timeline["start"]] if timeline.get("start") else starts, default=now)
    last = max((run["end"] if run["end"] is not None else now for run in shown), default=origin)
    if timeline.get("end"):
        last = max(last, timeline["end"])
    span = max(last - origin, 0.001)
    width, height = GUTTER + PLOT + 12, AXIS + ROW * len(shown) + 6
    scale = PLOT / span
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="littleflow-timeline" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" data-origin="{origin!r}" data-span="{span!r}" '
        f'data-gutter="{GUTTER}" data-plot="{PLOT}">'
    ]
    out.append(
        f"<title>{xml('timeline of ' + (timeline.get('name') or timeline.get('id') or 'a workflow'))}</title>"
    )
    out.append(f"<style>{_style()}</style>")
    out.append('<g class="axis">')
    step = _step(span)
    for number in range(int(span / step + 1e-9) + 1):
        t = number * step
        x = num(GUTTER + t * scale)
        out.append(
            f'<g class="tick" data-t="{t!r}"><line x1="{x}" y1="{AXIS - 6}" x2="{x}" y2="{height}"/>'
            f'<text x="{x}" y="{AXIS - 10}">{xml(_seconds(t, step))}</text></g>'
        )
    out.append("</g>")
    out.append('<g class="runs">')
    for row, run in enumerate(shown):
        start = run["start"] - origin
        end = (run["end"] if run["end"] is not None else now) - origin
        y = AXIS + row * ROW
        name = _name(run)
        item = "" if run["item"] is None else f' data-item="{run["item"]}"'
        out.append(
            f"<g class={xml('run status-' + run['status'], attr=True)} data-task={xml(run['task'], attr=True)} "
            f'data-node="{run["node"]}"{item} '
            f'data-attempt="{run["attempt"] or 1}" data-start="{start!r}" data-end="{end!r}">'
            f"<title>{xml(_title(run, name, start, end))}</title>"
            f'<text class="label" x="{GUTTER - 8}" y="{num(y + ROW / 2)}">{xml(_cut(name, 32))}</text>'
            f'<rect class="timebar" x="{num(GUTTER + start * scale)}" y="{num(y + (ROW - BAR) / 2)}" '
            f'width="{num(max(1.0, (end - start) * scale))}" height="{BAR}" rx="2"/></g>'
        )
    out.append("</g></svg>")
    return "\n".join(out) + "\n"


def _attempts(value: Any, state: str) -> list[dict[str, Any]]:
    """A retried run's ``attempts`` (``[[number, started, ended, status, error], …]``, as
    workers write them: anything malformed is left out) as run fields."""
    if not isinstance(value, list):
        return []
    found = []
    for attempt in value:
        if not (isinstance(attempt, list) and len(attempt) == 5 and type(attempt[0]) is int):
            continue
        number, start, end, status, error = attempt
        if status not in COLOURS:
            status = "failed"
        if status == "running" and state == "terminated":
            status = "terminated"
        found.append(
            {
                "attempt": number,
                "start": _time(start),
                "end": _time(end),
                "status": status,
                "error": error if isinstance(error, str) else None,
            }
        )
    return found


def _time(value: Any) -> float | None:
    """A time from task info (written by workers: anything but a finite number is no time)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _name(run: Mapping[str, Any]) -> str:
    name = str(run["label"]) + ("" if run["item"] is None else f"[{run['item']}]")
    return name + (f" #{run['attempt']}" if (run["attempt"] or 1) > 1 else "")


def _title(run: Mapping[str, Any], name: str, start: float, end: float) -> str:
    lines = [
        f"{name}: {run['status']}",
        f"attempt {run['attempt'] or 1}",
        f"from +{_took(start)} to +{_took(end)}: {_took(end - start)}",
    ]
    if run.get("worker"):
        lines.append(f"worker {run['worker']}")
    if run.get("error"):
        lines.append(_cut(run["error"], _TITLE))
    return "\n".join(lines)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _took(seconds: float) -> str:
    """A length of time, readably (as the console writes them)."""
    if seconds < 1:
        return f"{seconds * 1000:.3g} ms"
    if seconds < 60:
        return f"{seconds:.3g} s"
    return f"{int(seconds // 60)} min {seconds % 60:.0f} s"


def _step(span: float) -> float:
    """A round step (1, 2 or 5 times a power of ten seconds) that marks ``span`` about
    :data:`_TICKS` times."""
    rough = span / _TICKS
    power = 10.0 ** math.floor(math.log10(rough))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= rough)


def _seconds(t: float, step: float) -> str:
    """``t`` seconds written as finely as ``step`` needs."""
    if step >= 60 and t >= 60:
        return f"{t / 60:.4g} min"
    if step >= 1:
        return f"{t:.0f} s"
    places = min(6, max(0, -math.floor(math.log10(step))))
    return f"{t:.{places}f} s"


def _style() -> str:
    """The picture's CSS, scoped to ``.littleflow-timeline`` so that it may be inlined in a page."""
    rules = [
        ".littleflow-timeline text{font:11px sans-serif;fill:#222}",
        ".littleflow-timeline .label{text-anchor:end;dominant-baseline:central}",
        ".littleflow-timeline .tick line{stroke:#e3e6eb;stroke-width:1}",
        ".littleflow-timeline .tick text{fill:#666;font-size:10px;text-anchor:middle}",
        ".littleflow-timeline .timebar{fill:#fff;stroke:#555;stroke-width:1}",
        ".littleflow-timeline .run:hover .timebar{stroke-width:2}",
    ]
    rules += [
        f".littleflow-timeline .status-{s} .timebar{{fill:{fill};stroke:{stroke}}}"
        for s, (fill, stroke) in COLOURS.items()
    ]
    return "".join(rules)
