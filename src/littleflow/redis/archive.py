"""What an archive (``littleflow archive``, ``GET /workflows/{id}/archive``) must be to be
restored: its schema (the models below, published as the JSON Schema :data:`SCHEMA`; checked
with pydantic, which is fast on large archives), then the checks a schema cannot express —
the flow is what its text compiles to, the state fits the flow, and every later step of
the run (status, graph, terminate, resume, the ends of its running tasks) works on it.
Nothing is written before all of this passes."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
)

from .. import diagram
from ..compiler import compile_flow
from ..engine import Engine
from ..errors import FlowError
from ..flow import KINDS, OPENING, Flow
from ..schedules import check_name
from ..state import State
from ..values import MAX_DEPTH, brief, check_value, short
from .protocol import task_id
from .store import VALID_ID, InvalidArchive, Store, WorkflowNotFound, _flow_options, info_json

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

Counter = Annotated[int, Strict(), Field(ge=0, le=MAX_COUNTER)]
Item = Annotated[int, Strict(), Field(ge=-1, le=MAX_COUNTER)]
Time = Annotated[float, Strict(), Field(ge=0, le=MAX_TIME)]
Text = Annotated[str, Strict()]
Flag = Annotated[bool, Strict()]
_NUMBER = r"(0|[1-9][0-9]{0,15})"
#: A frame's path: "" for the flow itself, "/NODE.ITEM" for each iterated subflow around it.
FramePath = Annotated[str, Strict(), Field(pattern=rf"^(/{_NUMBER}\.{_NUMBER})*$")]
Numbered = Annotated[str, Field(pattern=rf"^{_NUMBER}$")]
TaskId = Annotated[str, Field(pattern=rf"^(/{_NUMBER}\.{_NUMBER})*\|{_NUMBER}\|(-1|{_NUMBER})$")]
StreamId = Annotated[str, Strict(), Field(pattern=rf"^{_NUMBER}-{_NUMBER}$")]
#: The name of the schedule that started a workflow: as ``schedule add`` takes it.
ScheduleName = Annotated[
    str,
    Strict(),
    AfterValidator(check_name),
    WithJsonSchema({"type": "string", "pattern": r"^[\w.-]{1,64}$"}),
]
#: The tick a schedule started a workflow for: whole seconds since 1970.
Tick = Annotated[int, Strict(), Field(ge=0, le=MAX_TIME)]
InstanceKey = tuple[FramePath, Counter, Item]


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NodeModel(_Closed):
    id: Counter
    kind: Literal[KINDS]  # (a tuple in Literal[…] is its values)
    name: Text | None
    alias: Text | None
    parameters: Any
    guard: Text | None
    merge: Flag
    iterate: Flag
    doc: Text | None
    uri: Text | None
    value: Any
    line: Counter
    column: Counter
    pair: Counter | None
    mode: Literal["source", "sink"] | None
    condition: Text | None = None


class FlowModel(_Closed):
    """A compiled flow (``Flow.to_json``)."""

    name: Text | None
    doc: Text | None
    parameters: Any
    nodes: Annotated[list[NodeModel], Field(min_length=2)]
    edges: list[tuple[Counter, Counter]]


class IterationModel(_Closed):
    results: list[Any]
    remaining: Counter


class FrameModel(_Closed):
    path: FramePath
    start: Counter
    end: Counter
    parent: InstanceKey | None
    activations: dict[Numbered, Counter]
    pending: dict[Numbered, tuple[list[Counter], list[Any]]]
    outputs: dict[Numbered, Any]
    runs: dict[Numbered, Counter]
    iterations: dict[Numbered, IterationModel]
    skipped: list[Counter]


class FailureModel(_Closed):
    node: Counter
    name: Text | None
    line: Counter
    column: Counter
    key: InstanceKey
    input: Any
    error: Text


class StateModel(_Closed):
    """A run's state (``State.to_json``)."""

    status: Literal["running", "finished", "failed", "terminated"]
    input: Any
    output: Any
    frames: Annotated[list[FrameModel], Field(min_length=1)]
    running: list[tuple[FramePath, Counter, Item, Any]]
    held: list[tuple[FramePath, Counter, Item, Any]]
    retry: list[tuple[FramePath, Counter, Item, Any, Flag]]
    failures: list[FailureModel]


class RunModel(_Closed):
    state: StateModel
    seqs: dict[TaskId, Counter]
    seq: Counter


class TaskLogModel(_Closed):
    """What a task run wrote: its last lines (see littleflow.tasklogs), and how many were let go
    (or, when its JSON was too big to keep, only its size: ``truncated``)."""

    lines: list[Text] = []
    dropped: Counter = 0
    truncated: Counter | None = None


class TaskInfoModel(_Closed):
    """What is known of one run of a task."""

    node: Counter
    status: Literal["queued", "running", "done", "failed"]
    seq: Counter
    name: Text | None = None
    attempt: Counter | None = None
    queued: Time | None = None
    started: Time | None = None
    ended: Time | None = None
    error: Text | None = None
    worker: Text | None = None
    note: Text | None = None
    log: TaskLogModel | None = None
    input: Any = None
    output: Any = None


def _log_entry(entry: dict[str, str]) -> dict[str, str]:
    if "id" not in entry or len(entry) < 2:
        raise ValueError("a log entry has an id and at least one field")
    _STREAM_ID.validate_python(entry["id"])
    return entry


LogEntry = Annotated[
    dict[Annotated[str, Field(min_length=1)], Text],
    AfterValidator(_log_entry),
    WithJsonSchema(
        {
            "type": "object",
            "required": ["id"],
            "minProperties": 2,
            "properties": {"id": {"type": "string", "pattern": rf"^{_NUMBER}-{_NUMBER}$"}},
            "additionalProperties": {"type": "string"},
        }
    ),
]


class ArchiveModel(_Closed):
    """An archive (``littleflow archive``, ``GET /workflows/{id}/archive``). ``flow`` is a
    compiled flow (:class:`FlowModel`): what ``text`` compiles to, when there is text.
    ``schedule`` and ``tick``, both or neither: the schedule that started the workflow and
    the tick it started it for (absent from archives written before they were kept)."""

    format: Literal["littleflow-archive/1"]
    id: Text
    name: Text | None = None
    text: Text = ""
    flow: dict[str, Any]
    base: Text = ""
    limit: (
        Annotated[str, Strict(), Field(pattern=r"^([1-9][0-9]{0,15})?$")]
        | Annotated[int, Strict(), Field(ge=1, le=MAX_COUNTER)]
        | None
    ) = ""
    status: Literal["running", "finished", "failed", "terminated"]
    version: Counter
    created: Time
    updated: Time
    run: RunModel
    tasks: dict[TaskId, TaskInfoModel] = {}
    log: list[LogEntry] = []
    schedule: ScheduleName | None = None
    tick: Tick | None = None


_STREAM_ID = TypeAdapter(StreamId)
_ARCHIVE = TypeAdapter(ArchiveModel)
_FLOW = TypeAdapter(FlowModel)


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema with its ``$defs`` put in place of the references to them (what an
    OpenAPI document can hold as it is)."""
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(defs[node["$ref"].rsplit("/", 1)[1]])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    return inline(schema)


#: The JSON Schema of an archive (draft 2020-12), as the checks below apply it.
SCHEMA: dict[str, Any] = _inlined(_ARCHIVE.json_schema())
SCHEMA["properties"]["flow"] = _inlined(_FLOW.json_schema())


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
    schedule: str | None = None  # the schedule that started it, and the tick it was for
    tick: int | None = None


def archive_of(store: Store, id: str) -> dict[str, Any]:
    """Everything about workflow ``id`` of ``store`` as JSON: definition, state, task info,
    log (what ``littleflow archive`` prints); raises :class:`WorkflowNotFound` if there is none."""
    fields = store.redis.hgetall(store.keys.workflow(id))
    found = store.definition(id)
    if not fields or found is None or not {"run", "status", "version"} <= fields.keys():
        raise WorkflowNotFound(f"no workflow {id}")
    run = store.load(id)  # (its state: the one last written whole, and the journal since)
    return {
        "format": FORMAT,
        "id": id,
        "name": fields.get("name") or None,
        "text": found["text"],
        "flow": json.loads(found["flow"]),
        "base": found["base"],
        "limit": found["limit"],
        "status": run.state.status,
        "version": run.version,
        "created": float(fields["created"]),
        "updated": float(fields["updated"]),
        "run": {"state": run.state.to_json(), "seqs": run.seqs, "seq": run.seq},
        "tasks": store.task_info(id),
        "log": store.log(id),
        "schedule": fields.get("schedule") or None,
        "tick": int(fields["tick"]) if fields.get("schedule") and fields.get("tick") else None,
    }


def validate(archive: Any, max_nodes: int | None = None) -> Restorable:
    """``archive`` checked through and through (its flow with at most ``max_nodes`` nodes,
    as :class:`~littleflow.compiler.Compiler` counts them); raises :class:`InvalidArchive`
    (one line) at the first fault."""
    try:
        check_value(archive, "the archive", depth=MAX_DEPTH + ENVELOPE)
    except ValueError as error:
        raise InvalidArchive(f"not a littleflow archive: {error}") from None
    if not isinstance(archive, dict) or archive.get("format") != FORMAT:
        found = archive.get("format") if isinstance(archive, dict) else None
        raise InvalidArchive(
            f"not a littleflow archive: its format is {brief(found, 80)}, not {brief(FORMAT)}"
        )
    _checked(_ARCHIVE, archive, "archive")
    try:
        return _sound(archive, max_nodes)
    except InvalidArchive:
        raise
    except Exception as error:  # noqa: BLE001 - whatever else is wrong with it, it is the archive's fault
        raise InvalidArchive(f"damaged archive: {type(error).__name__}: {short(str(error), 300)}") from None


def _checked(adapter: TypeAdapter, value: Any, name: str) -> None:
    """Raise :class:`InvalidArchive` naming the first place where ``value`` is not what
    ``adapter`` describes."""
    try:
        adapter.validate_python(value)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        where = "".join(
            f".{part}" if isinstance(part, str) and part.isidentifier() else f"[{part!r}]"
            for part in first["loc"]
        )
        message = first["msg"].removeprefix("Value error, ")
        raise InvalidArchive(f"not a littleflow archive: at {name}{where}: {short(message, 300)}") from None


def _sound(archive: dict[str, Any], max_nodes: int | None) -> Restorable:
    id = archive["id"]
    if not VALID_ID.fullmatch(id):
        raise InvalidArchive(f"not a littleflow archive: bad workflow id {brief(id, 80)}")
    flow = _flow(archive, max_nodes)
    limit = archive.get("limit")
    limit = int(limit) if limit not in (None, "") else None
    schedule, tick = archive.get("schedule"), archive.get("tick")
    if (schedule is None) != (tick is None):
        _damaged("its schedule and tick go together (a workflow a schedule started has both)")
    state = _state(archive["run"]["state"], flow, archive["status"])
    _exercise(archive["run"]["state"], flow, limit)
    tasks = {}
    for task, info in archive.get("tasks", {}).items():
        if info["node"] >= len(flow):
            _damaged(f"task {task} names node {info['node']}, which the flow does not have")
        tasks[task] = info_json(info)
    return Restorable(
        id,
        flow,
        state,
        archive["status"],
        archive["version"],
        archive["run"]["seq"],
        dict(archive["run"]["seqs"]),
        limit,
        (float(archive["created"]), float(archive["updated"])),
        archive.get("base", ""),
        archive.get("text", ""),
        archive.get("name") or "",
        tasks,
        _log(archive.get("log", [])),
        schedule,
        tick,
    )


def _flow(archive: dict[str, Any], max_nodes: int | None) -> Flow:
    """The archive's flow: what its text compiles to, or (without text) a well-formed graph."""
    text = archive.get("text", "")
    if text:
        try:
            flow = compile_flow(text, "<archive>", max_nodes=max_nodes)
        except FlowError as error:
            _damaged(f"its text does not compile: {error.line}:{error.column}: {short(error.message, 200)}")
        if flow.to_json() != archive["flow"]:
            _damaged("its flow is not what its text compiles to")
    else:
        _checked(_FLOW, archive["flow"], "archive.flow")
        if max_nodes is not None and len(archive["flow"]["nodes"]) > max_nodes:
            _damaged(
                f"its flow has {len(archive['flow']['nodes']):,} nodes, more than the {max_nodes:,} allowed"
            )
        flow = Flow.from_json(archive["flow"])
        _graph(flow)
    if (archive.get("name") or None) != (flow.name or None):
        _damaged(f"its name {brief(archive.get('name'), 80)} is not its flow's {brief(flow.name, 80)}")
    _flow_options(flow)  # the @flow run-time options (OptionError if wrong)
    return flow


def _graph(flow: Flow) -> None:
    """A flow given without its text: the shape a compiled flow has, and it can be drawn."""
    nodes = flow.nodes
    if (
        nodes[0].kind != "start"
        or nodes[-1].kind != "end"
        or any(node.kind in ("start", "end") for node in nodes[1:-1])
    ):
        _damaged("its flow does not begin with START and end with END")
    for node in nodes:
        if node.kind == "task" and not node.name:
            _damaged(f"its node {node.id} is a task without a name")
        if node.kind == "resource" and (not node.uri or node.mode not in ("source", "sink")):
            _damaged(f"its node {node.id} is a resource without a URI and mode")
        form = _FORMS.get(node.kind)
        if form is not None:
            other = nodes[node.pair] if node.pair is not None and node.pair < len(nodes) else None
            if (
                other is None
                or other.pair != node.id
                or _FORMS.get(other.kind) != form
                or (other.kind in OPENING) == (node.kind in OPENING)
            ):
                _damaged(f"its node {node.id} is a {form} without its other end")
        if node.kind in ("repeat", "while"):
            body = flow.successors(node.id)[:1]  # (where the engine begins each round)
            if not body or not node.id < body[0] < node.pair or body[0] not in flow.successors(node.pair):
                _damaged(f"its node {node.id} is a loop without a body")
            if node.condition is None:
                _damaged(f"its node {node.id} is a loop without a condition")
        elif node.condition is not None and not any(
            nodes[before].kind == "choice" and nodes[before].pair != node.id
            for before in flow.predecessors(node.id)
        ):
            _damaged(f"its node {node.id} has a condition but is neither a loop nor a conditional's branch")
    diagram.mermaid(flow)
    if len(nodes) <= DRAW_CHECK:
        diagram.svg(flow)


#: The forms of several nodes: the kinds of their two ends, ``pair`` naming each other.
_FORMS = {
    "subflow-start": "subflow",
    "subflow-end": "subflow",
    "choice": "conditional",
    "choice-end": "conditional",
    "repeat": "loop",
    "while": "loop",
    "loop-end": "loop",
}


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
        if kind not in ("task", "resource", *OPENING) or not 0 < iteration.remaining <= len(
            iteration.results
        ):
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
    if (
        frame.path != f"{parent_path}/{node}.{item}"
        or parent is None
        or spec is None
        or spec.kind not in OPENING
        or (frame.start, frame.end) != (node, spec.pair)
        or node not in parent.iterations
        or not 0 <= item < len(parent.iterations[node].results)
    ):
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
