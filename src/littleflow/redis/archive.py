"""What an archive (``littleflow archive``, ``GET /workflows/{id}/archive``) must be to be
restored: its JSON Schema (:data:`SCHEMA`), then the checks a schema cannot express —
the flow is what its text compiles to, the state fits the flow, and every later step of
the run (status, graph, terminate, resume, the ends of its running tasks) works on it.
Nothing is written before all of this passes."""

from __future__ import annotations

import json
import re
from typing import Any, NamedTuple

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from .. import diagram
from ..compiler import Compiler
from ..engine import Engine
from ..errors import FlowError
from ..flow import KINDS, Flow
from ..parser import Parser
from ..state import State
from ..values import MAX_DEPTH, check_value
from .protocol import task_id
from .store import STATES, VALID_ID, InvalidArchive, _flow_options

FORMAT = "littleflow-archive/1"
#: How much deeper than a value the archive itself nests (archive → run → state → frames →
#: frame → pending → [predecessors, outputs] → outputs → the value): every value in it may
#: nest :data:`~littleflow.values.MAX_DEPTH` deep.
ENVELOPE = 10
#: The largest integer an archive's counters may hold (what a double holds exactly: Redis's
#: Lua scripts count with doubles).
MAX_COUNTER = 2**53
#: Times (seconds since 1970) up to the year 5138.
MAX_TIME = 1e11
#: An archive without text whose flow has at most this many nodes is drawn once to be sure
#: it can be (larger ones are drawn as Mermaid only).
DRAW_CHECK = 300

_COUNTER = {"type": "integer", "minimum": 0, "maximum": MAX_COUNTER}
_NODE_ID = {"type": "integer", "minimum": 0, "maximum": MAX_COUNTER}
_ITEM = {"type": "integer", "minimum": -1, "maximum": MAX_COUNTER}
_TIME = {"type": "number", "minimum": 0, "maximum": MAX_TIME}
_TEXT_OR_NULL = {"type": ["string", "null"]}
_PATH = {"type": "string", "pattern": r"^(/(0|[1-9][0-9]{0,15})\.(0|[1-9][0-9]{0,15}))*$"}
_KEY = {"type": "array", "prefixItems": [_PATH, _NODE_ID, _ITEM], "items": False, "minItems": 3}
_NUMBERED = {"propertyNames": {"pattern": r"^(0|[1-9][0-9]{0,15})$"}}


def _keyed(value: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", **_NUMBERED, "additionalProperties": value}


def _closed(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties) if required is None else required,
            "additionalProperties": False}


_NODE = _closed({
    "id": _NODE_ID, "kind": {"enum": list(KINDS)}, "name": _TEXT_OR_NULL, "alias": _TEXT_OR_NULL,
    "parameters": {}, "guard": _TEXT_OR_NULL, "merge": {"type": "boolean"}, "iterate": {"type": "boolean"},
    "doc": _TEXT_OR_NULL, "uri": _TEXT_OR_NULL, "value": {}, "line": _COUNTER, "column": _COUNTER,
    "pair": {"oneOf": [_NODE_ID, {"type": "null"}]}, "mode": {"enum": ["source", "sink", None]},
})
_FLOW = _closed({
    "name": _TEXT_OR_NULL, "doc": _TEXT_OR_NULL, "parameters": {},
    "nodes": {"type": "array", "items": _NODE, "minItems": 2},
    "edges": {"type": "array", "items": {"type": "array", "prefixItems": [_NODE_ID, _NODE_ID], "items": False,
                                         "minItems": 2}},
})
_FRAME = _closed({
    "path": _PATH, "start": _NODE_ID, "end": _NODE_ID,
    "parent": {"oneOf": [{"type": "null"}, _KEY]},
    "activations": _keyed(_COUNTER),
    "pending": _keyed({"type": "array", "prefixItems": [{"type": "array", "items": _NODE_ID}, {"type": "array"}],
                       "items": False, "minItems": 2}),
    "outputs": _keyed({}), "runs": _keyed(_COUNTER),
    "iterations": _keyed(_closed({"results": {"type": "array"}, "remaining": _COUNTER})),
    "skipped": {"type": "array", "items": _NODE_ID, "uniqueItems": True},
})
_INSTANCE = {"type": "array", "prefixItems": [_PATH, _NODE_ID, _ITEM, {}], "items": False, "minItems": 4}
_STATE = _closed({
    "status": {"enum": list(STATES)}, "input": {}, "output": {},
    "frames": {"type": "array", "items": _FRAME, "minItems": 1},
    "running": {"type": "array", "items": _INSTANCE},
    "held": {"type": "array", "items": _INSTANCE},
    "retry": {"type": "array", "items": {"type": "array", "prefixItems": [_PATH, _NODE_ID, _ITEM, {},
                                                                          {"type": "boolean"}],
                                         "items": False, "minItems": 5}},
    "failures": {"type": "array", "items": _closed({
        "node": _NODE_ID, "name": _TEXT_OR_NULL, "line": _COUNTER, "column": _COUNTER, "key": _KEY,
        "input": {}, "error": {"type": "string"}})},
})
_TASK_ID = r"^(/(0|[1-9][0-9]{0,15})\.(0|[1-9][0-9]{0,15}))*\|(0|[1-9][0-9]{0,15})\|(-1|0|[1-9][0-9]{0,15})$"
_TASK_INFO = _closed({
    "node": _NODE_ID, "name": _TEXT_OR_NULL, "status": {"enum": ["queued", "running", "done", "failed"]},
    "seq": _COUNTER, "attempt": {"oneOf": [_COUNTER, {"type": "null"}]},
    "queued": {"oneOf": [_TIME, {"type": "null"}]}, "started": {"oneOf": [_TIME, {"type": "null"}]},
    "ended": {"oneOf": [_TIME, {"type": "null"}]}, "error": _TEXT_OR_NULL, "worker": _TEXT_OR_NULL,
    "note": _TEXT_OR_NULL, "input": {}, "output": {},
}, required=["node", "status", "seq"])
_STREAM_ID = r"^(0|[1-9][0-9]{0,15})-(0|[1-9][0-9]{0,15})$"

#: The JSON Schema of an archive (draft 2020-12).
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "littleflow archive",
    **_closed({
        "format": {"const": FORMAT},
        "id": {"type": "string"},
        "name": _TEXT_OR_NULL, "text": {"type": "string"}, "flow": _FLOW, "base": {"type": "string"},
        "limit": {"oneOf": [{"type": "string", "pattern": r"^([1-9][0-9]{0,15})?$"},
                            {"type": "integer", "minimum": 1, "maximum": MAX_COUNTER}, {"type": "null"}]},
        "status": {"enum": list(STATES)}, "version": _COUNTER, "created": _TIME, "updated": _TIME,
        "run": _closed({"state": _STATE, "seqs": {"type": "object", "propertyNames": {"pattern": _TASK_ID},
                                                  "additionalProperties": _COUNTER},
                        "seq": _COUNTER}),
        "tasks": {"type": "object", "propertyNames": {"pattern": _TASK_ID}, "additionalProperties": _TASK_INFO},
        "log": {"type": "array", "items": {
            "type": "object", "properties": {"id": {"type": "string", "pattern": _STREAM_ID}}, "required": ["id"],
            "minProperties": 2, "propertyNames": {"minLength": 1}, "additionalProperties": {"type": "string"}}},
    }, required=["format", "id", "flow", "status", "version", "created", "updated", "run"]),
}
_VALIDATOR = Draft202012Validator(SCHEMA)


class Restorable(NamedTuple):
    """An archive found sound: what a restore writes."""

    id: str
    flow: Flow
    state: State
    status: str
    version: int
    seq: int
    seqs: dict[str, int]
    limit: int | None
    times: tuple[float, float]
    base: str
    text: str
    name: str
    tasks: dict[str, str]  # task id -> its info as JSON text
    log: list[tuple[str, dict[str, str]]]


def validate(archive: Any) -> Restorable:
    """``archive`` checked through and through; raises :class:`InvalidArchive` (one line)
    at the first fault."""
    try:
        check_value(archive, "the archive", depth=MAX_DEPTH + ENVELOPE)
    except ValueError as error:
        raise InvalidArchive(f"not a littleflow archive: {error}") from None
    if not isinstance(archive, dict) or archive.get("format") != FORMAT:
        found = archive.get("format") if isinstance(archive, dict) else None
        raise InvalidArchive(f"not a littleflow archive: its format is {_short(found)}, not {FORMAT!r}")
    error = best_match(_VALIDATOR.iter_errors(archive))
    if error is not None:
        where = "".join(f"[{part!r}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path)
        raise InvalidArchive(f"not a littleflow archive: at archive{where}: {_short(error.message, 300)}")
    try:
        return _sound(archive)
    except InvalidArchive:
        raise
    except Exception as error:  # noqa: BLE001 - whatever else is wrong with it, it is the archive's fault
        raise InvalidArchive(f"damaged archive: {type(error).__name__}: {_short(str(error), 300)}") from None


def _sound(archive: dict[str, Any]) -> Restorable:
    id = archive["id"]
    if not VALID_ID.fullmatch(id):
        raise InvalidArchive(f"not a littleflow archive: bad workflow id {_short(id)}")
    flow = _flow(archive)
    limit = archive.get("limit")
    limit = int(limit) if limit not in (None, "") else None
    state = _state(archive["run"]["state"], flow, archive["status"])
    _exercise(archive["run"]["state"], flow, limit)
    tasks = {}
    for task, info in archive.get("tasks", {}).items():
        if info["node"] >= len(flow):
            _damaged(f"task {task} names node {info['node']}, which the flow does not have")
        tasks[task] = json.dumps(info, ensure_ascii=False)
    return Restorable(id, flow, state, archive["status"], archive["version"], archive["run"]["seq"],
                      dict(archive["run"]["seqs"]), limit, (float(archive["created"]), float(archive["updated"])),
                      archive.get("base", ""), archive.get("text", ""), archive.get("name") or "",
                      tasks, _log(archive.get("log", [])))


def _flow(archive: dict[str, Any]) -> Flow:
    """The archive's flow: what its text compiles to, or (without text) a well-formed graph."""
    flow = Flow.from_json(archive["flow"])
    text = archive.get("text", "")
    if text:
        try:
            compiled = Compiler().compile(Parser().parse(text, "<archive>"))
        except FlowError as error:
            _damaged(f"its text does not compile: {error.line}:{error.column}: {_short(error.message, 200)}")
        if compiled != flow:
            _damaged("its flow is not what its text compiles to")
    else:
        _graph(flow)
    if (archive.get("name") or None) != (flow.name or None):
        _damaged(f"its name {_short(archive.get('name'))} is not its flow's {_short(flow.name)}")
    _flow_options(flow)  # the @flow run-time options (ValueError if wrong)
    return flow


def _graph(flow: Flow) -> None:
    """A flow given without its text: the shape a compiled flow has, and it can be drawn."""
    nodes = flow.nodes
    if nodes[0].kind != "start" or nodes[-1].kind != "end" or any(
            node.kind in ("start", "end") for node in nodes[1:-1]):
        _damaged("its flow does not begin with START and end with END")
    for node in nodes:
        if node.kind == "task" and not node.name:
            _damaged(f"its node {node.id} is a task without a name")
        if node.kind == "resource" and (not node.uri or node.mode not in ("source", "sink")):
            _damaged(f"its node {node.id} is a resource without a URI and mode")
        if node.kind in ("subflow-start", "subflow-end"):
            other = nodes[node.pair] if node.pair is not None and node.pair < len(nodes) else None
            if other is None or other.pair != node.id or {node.kind, other.kind} != {"subflow-start", "subflow-end"}:
                _damaged(f"its node {node.id} is a subflow without its other end")
    diagram.mermaid(flow)
    if len(nodes) <= DRAW_CHECK:
        diagram.svg(flow)


def _state(data: dict[str, Any], flow: Flow, status: str) -> State:
    """The archive's state, if it fits ``flow``."""
    state = State.from_json(data)
    if len(state.frames) != len(data["frames"]):
        _damaged("its state has two frames with the same path")
    state.check(len(flow))
    if status != state.status:
        _damaged(f"its status {status!r} is not its state's {state.status!r}")
    if status in ("running", "finished") and (status == "running") != bool(state.running):
        # (the engine finishes a run as soon as nothing runs, and nothing runs in a finished one)
        _damaged(f"its state is {status} with {len(state.running)} tasks running")
    nodes = flow.nodes
    root = state.root
    if (root.start, root.end, root.parent) != (0, flow.end, None):
        _damaged("its state's first frame is not the whole flow")
    for frame in state.frames.values():
        _frame(state, frame, flow)
    for (path, node, item), _ in [*state.running.items(), *state.held]:
        _instance(state, path, node, item, flow)
    for (path, node, item), _, reenter in state.retry:
        if reenter:
            if path not in state.frames or item != -1:
                _damaged(f"its state retries {task_id((path, node, item))}, which it does not have")
        else:
            _instance(state, path, node, item, flow)
    for failure in state.failures:
        if failure["node"] >= len(nodes):
            _damaged(f"its state names node {failure['node']}, which the flow does not have")
    return state


def _frame(state: State, frame: Any, flow: Flow) -> None:
    nodes = flow.nodes
    for node, (preds, outputs) in frame.pending.items():
        if len(preds) != len(outputs) or any(pred >= len(nodes) for pred in preds):
            _damaged(f"its state's frame {frame.path!r} has a bad pending input of node {node}")
    for node, iteration in frame.iterations.items():
        kind = nodes[node].kind if node < len(nodes) else None
        if kind not in ("task", "resource", "subflow-start") or not 0 < iteration.remaining <= len(iteration.results):
            _damaged(f"its state's frame {frame.path!r} has a bad iteration at node {node}")
    if any(node >= len(nodes) for node in frame.skipped) or any(node >= len(nodes) for node in frame.runs):
        _damaged(f"its state's frame {frame.path!r} names nodes the flow does not have")
    if frame.parent is None:
        if frame.path != "":
            _damaged(f"its state's frame {frame.path!r} has no parent")
        return
    parent_path, node, item = frame.parent
    parent = state.frames.get(parent_path)
    spec = nodes[node] if node < len(nodes) else None
    if (frame.path != f"{parent_path}/{node}.{item}" or parent is None or spec is None
            or spec.kind != "subflow-start" or (frame.start, frame.end) != (node, spec.pair)
            or node not in parent.iterations or not 0 <= item < len(parent.iterations[node].results)):
        _damaged(f"its state's frame {frame.path!r} does not fit its parent")


def _instance(state: State, path: str, node: int, item: int, flow: Flow) -> None:
    """A task instance the state runs (or will): of a task or resource, in a frame it has."""
    frame = state.frames.get(path)
    name = task_id((path, node, item))
    if frame is None or flow.nodes[node].kind not in ("task", "resource"):
        _damaged(f"its state runs {name}, which is not a task of its flow")
    if item >= 0 and not (node in frame.iterations and item < len(frame.iterations[node].results)):
        _damaged(f"its state runs {name}, an item of no iteration")


def _exercise(data: dict[str, Any], flow: Flow, limit: int | None) -> None:
    """Take the steps the run may take next, on copies: its status, terminate, resume, and
    each of its running tasks ending. Any of them failing is the archive's fault."""
    engine = Engine(flow, limit)
    copy = State.from_json(json.loads(json.dumps(data)))
    copy.node_statuses()
    engine.terminate(copy)
    copy = State.from_json(json.loads(json.dumps(data)))
    engine.resume(copy)
    copy = State.from_json(json.loads(json.dumps(data)))
    for key in list(copy.running):
        engine.ended(copy, key, {})


def _log(entries: list[dict[str, str]]) -> list[tuple[str, dict[str, str]]]:
    """The log's entries, if their ids increase (as a Redis stream's must)."""
    log, last = [], (0, 0)
    for entry in entries:
        found = re.fullmatch(r"(\d+)-(\d+)", entry["id"])
        now = (int(found[1]), int(found[2]))  # type: ignore[index]
        if now <= last:
            _damaged(f"its log entry id {entry['id']!r} is not after the one before")
        last = now
        log.append((entry["id"], {k: v for k, v in entry.items() if k != "id"}))
    return log


def _damaged(reason: str) -> None:
    raise InvalidArchive(f"damaged archive: {reason}")


def _short(value: Any, size: int = 80) -> str:
    text = value if isinstance(value, str) and size > 80 else repr(value)
    text = " ".join(text.split())
    return text if len(text) <= size else text[: size - 1] + "…"
