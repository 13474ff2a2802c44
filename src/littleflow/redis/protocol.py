"""The Redis protocol: key names, and the start-task and end-task messages
(docs/protocol.md says the same for writers of workers in other languages)."""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass
from typing import Any

from ..errors import LittleflowError
from ..policy import Policy, resolve
from ..state import Key
from ..taskrun import TaskRun

#: Every key starts with this prefix, in braces (``--prefix`` changes it).
PREFIX = "lf"
#: The workflow states (``scripts/commit.lua`` numbers its index keys in this order).
STATES = ("running", "finished", "failed", "terminated")
#: The consumer group of each end-task stream (every engine joins it).
ENGINES = "engines"
#: The consumer group of each start-task stream (every worker serving its tasks joins it).
WORKERS = "workers"
#: The namespace that carries ``<resource>`` reads and writes (served by the built-in worker).
RESOURCE = "resource"
#: The namespaces whose executors serve every name in them: their tasks share one stream per
#: namespace. Every other task name has a stream of its own.
SHARED_NAMESPACES = frozenset({"wait", "http", "k8s", RESOURCE})
#: Seconds between a worker's words in the workers hash that it is alive (one unheard of
#: for three times as long is taken for gone).
REGISTER_EVERY = 10.0
#: What a key prefix may be made of (it becomes the Redis Cluster hash tag of every key).
VALID_PREFIX = re.compile(r"[\w.-]{1,64}")


class Malformed(LittleflowError, ValueError):
    """A message that does not follow the protocol."""


class Keys:
    """The names of littleflow's keys and streams under one prefix.

    Workflows are spread over ``partitions`` (fixed when a prefix is first used; see
    :meth:`.store.Store.partitions`): partition 0 has the hash tag ``{PREFIX}``, partition
    ``p`` ``{PREFIX/p}``, and every key of a workflow — its hash, its journal, the streams
    its tasks travel on, the indexes that list it — carries its partition's tag, so that
    every atomic step touches one hash slot of a Redis Cluster. What is shared by all
    workflows (workers, latches, timings, the control channel, the settings) has the
    tag of partition 0. ``keys.of(id)`` gives the keys of workflow ``id``'s partition,
    ``keys.parts`` all of them; the attributes of a :class:`Keys` are those of its own
    partition (of partition 0 for the one made with just a prefix)."""

    def __init__(
        self,
        prefix: str = PREFIX,
        partitions: int | None = None,
        *,
        partition: int = 0,
        base: Keys | None = None,
    ) -> None:
        if not VALID_PREFIX.fullmatch(prefix):
            raise ValueError(f"bad key prefix {prefix!r}: 1 to 64 letters, digits, '_', '.' or '-'")
        self.prefix = prefix
        self.partition = partition
        self.base = base or self
        self._partitions = partitions  # (None until Store.partitions settles it)
        self._parts: list[Keys] | None = None
        #: Asked for the number of partitions when it is first needed (set by the Store).
        self.resolve: Any = None
        p = "{" + (prefix if partition == 0 else f"{prefix}/{partition}") + "}:"
        self.root = p
        self.ends = p + "ends"  # stream: end-task messages
        self.dead = p + "dead"  # stream: messages set aside (malformed, unknown, duplicates)
        self.events = p + "events"  # stream: events sent and workflow state changes
        self.workflows = p + "workflows"  # sorted set: workflow ids by submit time
        self.names = (
            p + "names"
        )  # sorted set, score 0: the flow names that have workflows (name prefixes, by lex)
        # sorted set: the ids of the workflows that ended (finished, failed, terminated) by the
        # time they did; a resumed one leaves it (what retention reads for expired workflows)
        self.ended = p + "ended"
        self.delays = p + "delays"  # sorted set: wait:delay timers by due time
        # -- shared by all partitions (partition 0's tag) --
        g = "{" + prefix + "}:"
        self.config = g + "config"  # hash: settings fixed when the prefix is first used (partitions)
        self.control = g + "control"  # pub/sub channel: {"cancel": ID}
        self.workers = g + "workers"  # hash: worker name -> JSON of what it serves, last seen
        self.timings = (
            g + "timings"
        )  # hash: "task|le" -> runs that took at most le seconds; "task|sum", "task|count"
        self.k8s_namespaces = (
            g + "k8s:namespaces"
        )  # set: the Kubernetes namespaces whose Jobs k8s: workers follow
        self.schedules = g + "schedules"  # hash: schedule name -> its JSON (see redis/schedules.py)
        self.schedules_due = (
            g + "schedules:due"
        )  # sorted set: the names of the schedules not paused, by next tick

    # -- partitions ----------------------------------------------------------------------
    @property
    def partitions(self) -> int:
        """How many partitions the workflows are spread over."""
        base = self.base
        if base._partitions is None:
            base._partitions = int(base.resolve()) if base.resolve is not None else 1
        return base._partitions

    @property
    def parts(self) -> list[Keys]:
        """The keys of each partition, partition 0 first."""
        base = self.base
        if base._parts is None or len(base._parts) != self.partitions:
            base._parts = [base] + [
                Keys(self.prefix, partition=p, base=base) for p in range(1, self.partitions)
            ]
        return base._parts

    def part(self, partition: int) -> Keys:
        """The keys of ``partition``."""
        return self.parts[partition]

    def partition_of(self, text: str) -> int:
        """The partition of a workflow id (or idempotency key): CRC-32 of its UTF-8, modulo
        the number of partitions."""
        count = self.partitions
        return 0 if count == 1 else zlib.crc32(text.encode("utf-8", "surrogatepass")) % count

    def of(self, id: str) -> Keys:
        """The keys of the partition of workflow ``id``."""
        return self.parts[self.partition_of(id)]

    def of_key(self, key: str) -> Keys:
        """The keys of the partition a key name (say, a stream's) belongs to."""
        tag = key[1 : key.index("}")] if key.startswith("{") and "}" in key else ""
        _, slash, number = tag.rpartition("/")
        return (
            self.part(int(number))
            if slash and number.isdigit() and int(number) < self.partitions
            else self.base
        )

    def by_state(self, state: str) -> str:
        """Sorted set: the ids of the workflows in ``state``, by submit time."""
        return f"{self.root}state:{state}"

    def ids(self, state: str) -> str:
        """Sorted set, score 0: the ids of the workflows in ``state`` in lex order (id prefixes)."""
        return f"{self.root}state:{state}:ids"

    def by_name(self, name: str, state: str | None = None) -> str:
        """Sorted set: the ids of the workflows of flow ``name`` (in ``state``), by submit time.
        (The state comes first: a name may hold colons.)"""
        return f"{self.root}name:{name}" if state is None else f"{self.root}state:{state}:name:{name}"

    def by_schedule(self, schedule: str) -> str:
        """Sorted set: the ids of this partition's workflows started by ``schedule``, by submit time."""
        return f"{self.root}schedule:{schedule}"

    def stream(self, name: str) -> str:
        """The start-task stream that carries task ``name``: its namespace's stream for the
        shared namespaces (``{lf}:ns:wait``), else one of its own (``{lf}:task:NAME``)."""
        space = namespace(name)
        return f"{self.root}ns:{space}" if space in SHARED_NAMESPACES else f"{self.root}task:{name}"

    def namespace_stream(self, space: str) -> str:
        """The start-task stream of a shared namespace."""
        return f"{self.root}ns:{space}"

    def workflow(self, id: str) -> str:
        """Hash: a workflow's state, status, times, log and the ``digest`` of its shared definition."""
        return f"{self.of(id).root}wf:{id}"

    def journal(self, id: str) -> str:
        """List: the ends applied to a workflow since its state was last written whole."""
        return f"{self.of(id).root}wf:{id}:journal"

    def task_info(self, id: str) -> str:
        """Where a workflow's task info is: fields of its own hash, task id (``PATH|NODE|ITEM``,
        never a name of the workflow's other fields) -> JSON of the task's latest run (status,
        attempt, times, error). (One key, not two: a small workflow costs a key's overhead less.)"""
        return self.workflow(id)

    def flow(self, digest: str) -> str:
        """Hash: a shared definition — compiled flow (``flow``), its ``text``, ``base`` and
        ``limit`` — stored once for all the workflows that run it (``refs`` of them, each
        holding ``digest``, the first 128 bits of the SHA-256 of the four)."""
        return f"{self.root}flow:{digest}"

    def waits(self, id: str) -> str:
        """Set: the waits (delays, event waiters) the workflow's tasks hold (latch places: :meth:`latched`)."""
        return f"{self.of(id).root}wf:{id}:waits"

    def waiters(self, event: str) -> str:
        """Hash: start-task id -> JSON of a ``wait:event`` task of this partition waiting for ``event``."""
        return f"{self.root}waiters:{event}"

    def latch(self, name: str) -> str:
        """Hash: a named latch's count and limit (shared: partition 0's tag)."""
        return f"{self.base.root}latch:{name}"

    def latched(self, id: str) -> str:
        """Set: the latch places (queued or counted down) the tasks of workflow ``id`` hold
        (shared, beside the latches; the workflow's other waits are in :meth:`waits`)."""
        return f"{self.base.root}latched:{id}"

    def took(self, stream: str, message_id: str) -> str:
        """String: what a latch op did with start message ``message_id`` of ``stream`` (its
        task's note), so that it is done once although the message is acked in another step."""
        return f"{self.base.root}took:{stream}:{message_id}"

    def forwarded(self, stream: str, message_id: str) -> str:
        """String: set once end message ``message_id`` of ``stream`` (another partition's) is
        forwarded to this partition's end stream."""
        return f"{self.root}forwarded:{stream}:{message_id}"

    def latch_queue(self, name: str, kind: str) -> str:
        """List: start messages waiting on a named latch, oldest first (``kind``: ``queue``
        for ``wait:acquire``, ``countdown`` for ``wait:countdown``)."""
        return f"{self.latch(name)}:{kind}"

    def idempotency(self, key: str) -> str:
        """String: ``ID FINGERPRINT`` of the workflow first submitted with Idempotency-Key ``key``
        (expires; deleting the workflow frees it)."""
        return f"{self.base.part(self.partition_of(key)).root}idempotency:{key}"

    def k8s_ended(self, uid: str) -> str:
        """String: set once the end of the Kubernetes Job ``uid`` is sent (so it is sent once)."""
        return f"{self.root}k8s:ended:{uid}"


def namespace(name: str) -> str:
    """The namespace of a task name: what comes before its first colon (``""`` for none)."""
    head, colon, _ = name.partition(":")
    return head if colon else ""


def entry_order(entry_id: str) -> tuple[int, int]:
    """A stream entry id (``MS-N``) as what orders it: (milliseconds, sequence)."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def task_id(key: Key) -> str:
    """A task instance key as text: ``path|node|item``."""
    return f"{key[0]}|{key[1]}|{key[2]}"


def parse_task_id(text: str) -> Key:
    try:
        path, node, item = text.split("|")
        return path, int(node), int(item)
    except ValueError:
        raise Malformed(f"bad task id {text!r}") from None


@dataclass(slots=True)
class StartTask:
    """Run task ``name`` of workflow ``workflow`` (instance ``task``, ``seq`` for this run of it)."""

    workflow: str
    task: str
    seq: int
    node: int
    name: str
    parameters: Any
    input: Any
    attempt: int = 1
    policy: dict[str, Any] | None = None  # the flow's options for this task: {"defaults": {…}, "task": {…}}
    base: str = ""  # where relative resource URIs resolve
    trace: str = ""  # the W3C traceparent of the workflow's span (see littleflow.tracing)

    def fields(self) -> dict[str, str]:
        fields = {
            "kind": "start",
            "workflow": self.workflow,
            "task": self.task,
            "seq": str(self.seq),
            "node": str(self.node),
            "name": self.name,
            "parameters": compact(self.parameters),
            "input": compact(self.input),
            "attempt": str(self.attempt),
        }
        if self.policy:
            fields["policy"] = compact(self.policy)
        if self.base:
            fields["base"] = self.base
        if self.trace:
            fields["trace"] = self.trace
        return fields

    def run(self) -> TaskRun:
        """What :func:`littleflow.current` says in this task (key ``WORKFLOW|PATH|NODE|ITEM#SEQ``)."""
        try:
            item = parse_task_id(self.task)[2]
        except Malformed:  # (a bad writer's id: it is still this run's)
            item = -1
        return TaskRun(
            self.workflow,
            self.node,
            self.name,
            self.attempt,
            None if item < 0 else item,
            f"{self.workflow}|{self.task}#{self.seq}",
        )

    def run_policy(self, task_options: dict[str, Any] | None = None) -> Policy:
        """How to run it: the flow's entry for the task, then the task's own options
        (``@task(...)`` in the worker), then the flow's defaults, strongest first."""
        options = self.policy or {}
        return resolve(options.get("defaults"), task_options, options.get("task"), self.name)

    @classmethod
    def parse(cls, fields: dict) -> StartTask:
        f = _text(fields)
        if f.get("kind") != "start":
            raise Malformed(f"not a start-task message (kind {f.get('kind')!r})")
        return cls(
            _need(f, "workflow"),
            _need(f, "task"),
            _int(f, "seq"),
            _int(f, "node"),
            _need(f, "name"),
            _load(f, "parameters", None),
            _load(f, "input", {}),
            _int(f, "attempt", 1),
            _load(f, "policy", None),
            f.get("base", ""),
            f.get("trace", ""),
        )


@dataclass(slots=True)
class EndTask:
    """Task instance ``task`` (run ``seq``) of ``workflow`` ended: ``status`` is
    ``done`` (with ``output``) or ``failed`` (with ``error``)."""

    workflow: str
    task: str
    seq: int
    status: str
    output: Any = None
    error: str | None = None
    attempt: int = 1
    started: float | None = None
    ended: float | None = None
    worker: str = ""
    log: dict[str, Any] | None = (
        None  # what the run wrote: {"lines": […], "dropped": N} (see littleflow.tasklogs)
    )
    #: a retried run's attempts, [[number, started, ended, status, error or None], …] (the last
    #: MAX_ATTEMPTS; None when it ran once)
    attempts: list[list[Any]] | None = None

    def fields(self) -> dict[str, str]:
        fields = {
            "kind": "end",
            "workflow": self.workflow,
            "task": self.task,
            "seq": str(self.seq),
            "status": self.status,
            "attempt": str(self.attempt),
        }
        if self.status == "done":
            fields["output"] = compact(self.output)
        else:
            fields["error"] = self.error or "failed"
        if self.started is not None:
            fields["started"] = repr(self.started)
        if self.ended is not None:
            fields["ended"] = repr(self.ended)
        if self.worker:
            fields["worker"] = self.worker
        if self.log:
            fields["log"] = compact(self.log)
        if self.attempts:
            fields["attempts"] = compact(self.attempts)
        return fields

    @classmethod
    def parse(cls, fields: dict) -> EndTask:
        f = _text(fields)
        if f.get("kind") != "end":
            raise Malformed(f"not an end-task message (kind {f.get('kind')!r})")
        status = f.get("status")
        if status not in ("done", "failed"):
            raise Malformed(f"bad status {status!r} (done or failed)")
        parse_task_id(_need(f, "task"))
        output, error = _output(f) if status == "done" else (None, f.get("error") or "failed")
        try:
            log = _load(f, "log", None)
        except Malformed:  # (a log is no reason to lose an end)
            log = None
        try:
            attempts = _load(f, "attempts", None)
        except Malformed:  # (nor are the attempts: their times are shown, checked, by the timeline)
            attempts = None
        return cls(
            _need(f, "workflow"),
            f["task"],
            _int(f, "seq"),
            "failed" if error else status,
            output,
            error,
            _int(f, "attempt", 1),
            _float(f, "started"),
            _float(f, "ended"),
            f.get("worker", ""),
            log if isinstance(log, dict) else None,
            attempts[-MAX_ATTEMPTS:] if isinstance(attempts, list) else None,
        )


#: The attempts of a retried run kept in its end and task info (the latest; see EndTask.attempts).
MAX_ATTEMPTS = 20


#: Compact JSON text (UTF-8 kept, no spaces), from one encoder made once: the hot paths
#: encode a few values per task run.
compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _text(fields: dict) -> dict[str, str]:
    try:
        return {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in fields.items()
        }
    except UnicodeDecodeError:
        raise Malformed("fields are not UTF-8 text") from None


def _need(fields: dict[str, str], name: str) -> str:
    value = fields.get(name)
    if not value:
        raise Malformed(f"field {name!r} is missing")
    return value


def _int(fields: dict[str, str], name: str, default: int | None = None) -> int:
    if name not in fields and default is not None:
        return default
    try:
        return int(_need(fields, name))
    except ValueError:
        raise Malformed(f"field {name!r} is not a whole number: {fields[name]!r}") from None


def _float(fields: dict[str, str], name: str) -> float | None:
    if name not in fields:
        return None
    try:
        return float(fields[name])
    except ValueError:
        raise Malformed(f"field {name!r} is not a number: {fields[name]!r}") from None


class _NotANumber(ValueError):
    pass


def _not_a_number(name: str) -> Any:
    raise _NotANumber(f"{name} is not a JSON number")


#: JSON as json.loads reads it (as fast), but for NaN and infinities.
_STRICT = json.JSONDecoder(parse_constant=_not_a_number)


def _output(fields: dict[str, str]) -> tuple[Any, str | None]:
    """The output of a done task, or (None, the error that fails it) if it holds NaN or an
    infinity (which no JSON reader after the engine would take)."""
    try:
        return _load(fields, "output", {}, _STRICT), None
    except _NotANumber as error:
        return None, f"the task's output is not JSON: {error}"


def _load(fields: dict[str, str], name: str, default: Any, decoder: json.JSONDecoder | None = None) -> Any:
    if name not in fields:
        return default
    try:
        return json.loads(fields[name]) if decoder is None else decoder.decode(fields[name])
    except _NotANumber:
        raise
    except ValueError as error:
        raise Malformed(f"field {name!r} is not JSON: {error}") from None
    except RecursionError:
        raise Malformed(f"field {name!r} is JSON nested too deep") from None
