"""Where workflows live on Redis: definitions, run state, task info, logs;
every change of a run is one atomic step (scripts/commit.lua)."""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from .. import tracing
from ..engine import DEFAULT_LIMIT, DEFAULT_PARALLELISM, Engine, Start
from ..errors import LittleflowError
from ..flow import Flow
from ..policy import OptionError, flow_entry, flow_options, flow_parallelism
from ..state import State
from .connection import is_cluster
from .protocol import ENGINES, RESOURCE, STATES, Keys, StartTask, compact, parse_task_id, task_id
from .scripts import Scripts

#: Bytes of a workflow's log kept (its latest entries; a few dozen bytes each), in its hash:
#: the log is rewritten whole as it grows, which this bounds (the entries of a step are
#: written together, and most workflows have two).
LOG_BYTES = 64 * 1024
#: Entries kept in the events stream (approximately: trimming is lazy).
EVENTS_LENGTH = 10_000
#: What a workflow id may be made of (never ":", which would reach other keys; never dots
#: alone, which a URL path cannot hold as a name).
VALID_ID = re.compile(r"(?!\.+\Z)[\w.-]{1,200}")
#: The upper bounds, in seconds, of the buckets of the task run-time histograms.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)
#: The partitions a prefix's workflows are spread over on a Redis Cluster unless the first
#: engine (``--partitions``) says otherwise (on one server: 1), and the most it may have.
CLUSTER_PARTITIONS = 8
MAX_PARTITIONS = 1024
#: What an idempotency key may be: 1–200 printable ASCII characters, no space at either end.
VALID_KEY = re.compile(r"[!-~](?:[ -~]{0,198}[!-~])?")
#: Seconds an idempotency key keeps naming the workflow it created (a day).
KEY_TTL = 24 * 3600
#: The journal of a workflow is folded into a fresh whole state once it holds more bytes
#: than that state (and at least this many): each step writes only its ends, and the
#: occasional rewrite costs, spread over the steps, a constant share of each.
JOURNAL_MIN = 16 * 1024
#: The largest input or output (bytes of JSON) kept in the task info and status documents;
#: a larger one is kept as ``{"truncated": SIZE}``.
MAX_INFO_VALUE = 64 * 1024


class StoreError(LittleflowError):
    """A request the store cannot carry out (unknown workflow, Redis unreachable…): one line."""


class InvalidArchive(StoreError):
    """What was given to restore is not a littleflow archive (or a damaged one)."""


class InvalidKey(StoreError):
    """An idempotency key that is not 1–200 printable ASCII characters."""


class WorkflowNotFound(StoreError, LookupError):
    """No workflow of that id (never submitted, or removed): the message is ``no workflow ID``."""


class WorkflowExists(StoreError):
    """A workflow of that id exists already: a creation or restore does not replace it."""


class KeyReused(StoreError):
    """An idempotency key given again with another flow or input than the first time."""


class Conflict(LittleflowError):
    """The workflow changed since it was read: read it again and redo the step."""


@dataclass
class Run:
    """One workflow as a driver sees it: its flow and engine, state and version."""

    id: str
    flow: Flow
    engine: Engine
    state: State
    version: int
    seqs: dict[str, int] = field(default_factory=dict)  # task id -> the run (seq) it waits for
    seq: int = 0
    base: str = ""
    limit: int | None = DEFAULT_LIMIT
    replayed: bool = False  # created earlier with the same idempotency key (only the id is right then)
    queue: deque[Start] = field(default_factory=deque)  # started by the engine, held back by parallelism
    snapshot: int = 0  # bytes of the whole state last written
    trace: str = ""  # the traceparent of its span, for its task runs' spans (littleflow.tracing)
    journaled: int = 0  # bytes of the journal written since
    writing: int = (
        0  # what the commit under way writes: journal bytes (> 0) or a whole state of -writing bytes
    )

    def blob(self) -> str:
        return compact(
            {
                "state": self.state.to_json(),
                "seqs": self.seqs,
                "seq": self.seq,
                "queue": [[*start] for start in self.queue],
            }
        )

    def advance(self, ends: list[list], parallelism: int | None) -> list[Start]:
        """Apply ``ends`` ([task id, seq, status, output or error] each, checked as current
        by the caller) and return the task runs to send now, ``parallelism`` at most in flight.
        The same ends applied to the same run give the same result: the journal relies on it."""
        starts: list[Start] = []
        for task, _, status, value in ends:
            del self.seqs[task]
            key = parse_task_id(task)
            if status == "done":
                starts += self.engine.ended(self.state, key, value)
            else:
                starts += self.engine.failed(self.state, key, value or "failed")
        return self.release(starts, parallelism)

    def release(self, starts: list[Start], parallelism: int | None) -> list[Start]:
        """Queue ``starts`` and take from the queue what may run now, each with its run number
        (a run that stopped keeps what was queued for when it resumes)."""
        self.queue.extend(starts)
        if self.state.status != "running":
            for start in self.queue:
                self.engine.hold(self.state, start)
            self.queue.clear()
            return []
        out = []
        while self.queue and (parallelism is None or len(self.seqs) < parallelism):
            start = self.queue.popleft()
            self.seq += 1
            self.seqs[task_id(start.key)] = self.seq
            out.append(start)
        return out


class Step:
    """What one step of a run does besides changing its state: acks, starts, task info, log."""

    def __init__(self) -> None:
        self.acks: list[str] = []
        self.starts: list[StartTask] = []
        self.tasks: dict[str, dict[str, Any] | str] = {}  # task id -> its info, or that as JSON text
        self.log: list[dict[str, str]] = []
        self.flow: tuple[str, str, str, str, str] | None = (
            None  # a creation's: digest, flow JSON, text, base, limit
        )
        self.events: list[dict[str, str]] = []
        self.fields: dict[str, str] = {}
        self.ends: list[
            list
        ] = []  # the ends applied ([task id, seq, status, output or error]), for the journal
        self.parallelism: int | None = DEFAULT_PARALLELISM  # what the step released its starts under
        self.timings: dict[str, float] = {}  # increments of the task run-time histograms (see EngineProcess)

    def timed(self, name: str, seconds: float) -> None:
        """Count one run of task ``name`` that took ``seconds`` (from its start to its end)."""
        bucket = next((le for le in BUCKETS if seconds <= le), "+Inf")
        for key, value in ((f"{name}|{bucket}", 1), (f"{name}|sum", seconds), (f"{name}|count", 1)):
            self.timings[key] = self.timings.get(key, 0) + value


class Store:
    """Workflows on one Redis server under one key prefix."""

    def __init__(self, client: redis.Redis, keys: Keys | None = None) -> None:
        self.redis = client
        self.keys = keys or Keys()
        if self.keys.resolve is None:
            self.keys.resolve = self.partitions
        self.scripts = Scripts(client)
        self._flows: dict[str, tuple[Flow, Engine, dict, dict, str, int | None]] = {}
        self._digests: dict[str, str] = {}  # the digest of the flow each cached definition came from
        self._shared: dict[str, tuple[Flow, str, str]] = {}  # definitions by digest: flow, base, limit

    def partitions(self, wanted: int | None = None) -> int:
        """How many partitions the prefix's workflows are spread over: fixed by whoever uses
        the prefix first (``wanted``, else :data:`CLUSTER_PARTITIONS` on a Redis Cluster and 1
        on one server). Raises :class:`StoreError` if ``wanted`` is not what was fixed."""
        if wanted is not None and not (isinstance(wanted, int) and 1 <= wanted <= MAX_PARTITIONS):
            raise StoreError(f"partitions: a whole number from 1 to {MAX_PARTITIONS}, not {wanted!r}")
        config = self.keys.config
        fixed = self.redis.hget(config, "partitions")
        if fixed is None:
            self.redis.hsetnx(
                config, "partitions", wanted or (CLUSTER_PARTITIONS if is_cluster(self.redis) else 1)
            )
            fixed = self.redis.hget(config, "partitions")
        if wanted is not None and int(fixed) != wanted:
            raise StoreError(
                f"the workflows of prefix {self.keys.prefix!r} are spread over {fixed} partition(s), "
                f"fixed when it was first used: {wanted} would lose them (use a new --prefix)"
            )
        return int(fixed)

    # -- reading runs ---------------------------------------------------------------
    def load(self, id: str) -> Run:
        """The workflow ``id`` as it is now; raises :class:`StoreError` if there is none."""
        run = self.load_many([id])[id]
        if run is None:
            raise WorkflowNotFound(f"no workflow {id}")
        if isinstance(run, StoreError):
            raise run
        return run

    def load_many(self, ids: list[str]) -> dict[str, Run | StoreError | None]:
        """Several workflows in one round trip: ``None`` for those that do not exist (or
        cannot, their id having characters no id has), a :class:`StoreError` for those whose
        stored data cannot be read."""
        runs: dict[str, Run | StoreError | None] = {id: None for id in ids if not VALID_ID.fullmatch(id)}
        valid = [id for id in ids if id not in runs]
        pipe = self.redis.pipeline(transaction=False)
        for id in valid:
            self.scripts.load(keys=[self.keys.workflow(id), self.keys.journal(id)], client=pipe)
        found = pipe.execute() if valid else []
        self._fetch_definitions(
            {fields[3]: id for id, (fields, _) in zip(valid, found) if fields[1] is not None and fields[3]}
        )
        for id, ((run_blob, version, snapshot, digest, trace), journal) in zip(valid, found):
            if version is None:
                runs[id] = None
                continue
            if not digest:
                runs[id] = StoreError(f"workflow {id} is damaged and cannot be read: it names no flow")
                continue
            try:
                flow, engine, _, _, base, _ = self._definition(id, digest)
                data = json.loads(run_blob)
                run = Run(
                    id,
                    flow,
                    engine,
                    State.from_json(data["state"]),
                    int(snapshot or version),
                    data["seqs"],
                    data["seq"],
                    base,
                    engine.limit,
                    queue=deque(Start(*start) for start in data.get("queue", ())),
                    snapshot=len(run_blob),
                    trace=trace or "",
                )
                for entry in journal:
                    step = json.loads(entry)
                    run.advance(step["ends"], step["parallelism"])
                    run.version += 1
                    run.journaled += len(entry)
                if run.version != int(version):
                    raise ValueError(
                        f"its journal has {len(journal)} steps, version {version} needs "
                        f"{int(version) - int(snapshot or version)}"
                    )
                runs[id] = run
            except StoreError as error:  # (its shared flow is gone)
                runs[id] = error
            except (ValueError, KeyError, TypeError, IndexError, AttributeError) as error:
                runs[id] = StoreError(
                    f"workflow {id} is damaged and cannot be read: {type(error).__name__}: {error}"
                )
        return runs

    def _definition(self, id: str, digest: str | None = None) -> tuple:
        """(flow, engine, @flow defaults, per-task entries, base, limit) of workflow ``id``: the
        shared definition of ``digest``; without it, the cached one, else the one read."""
        known = self._flows.get(id)
        if known is not None and digest is not None and self._digests.get(id) != digest:
            known = None  # restored with another definition under the same id
        if known is None:
            if digest is None:
                digest = self.redis.hget(self.keys.workflow(id), "digest")
                if digest is None:
                    raise WorkflowNotFound(f"no workflow {id}")
            self._fetch_definitions({digest: id})
            if digest not in self._shared:
                raise StoreError(f"workflow {id} is damaged: its flow {digest} is gone")
            flow, base, limit = self._shared[digest]
            limit_value = int(limit) if limit else None
            defaults, per_task = _flow_options(flow)
            known = (flow, Engine(flow, limit_value), defaults, per_task, base or "", limit_value)
            if len(self._flows) > 2000:
                self._digests.pop(next(iter(self._flows)), None)
                self._flows.pop(next(iter(self._flows)))
            self._flows[id] = known
            self._digests[id] = digest
        return known

    def _fetch_definitions(self, digests: dict[str, str]) -> None:
        """Read the shared definitions of ``digests`` (each of a workflow that runs it, whose
        partition holds it) not known yet, in one round trip."""
        missing = [digest for digest in digests if digest not in self._shared]
        if not missing:
            return
        pipe = self.redis.pipeline(transaction=False)
        for digest in missing:
            pipe.hmget(self.keys.of(digests[digest]).flow(digest), "flow", "base", "limit")
        for digest, (flow, base, limit) in zip(missing, pipe.execute()):
            if flow is not None:
                self._share(digest, Flow.loads(flow), base or "", limit or "")

    def _share(self, digest: str, flow: Flow, base: str, limit: str) -> None:
        if len(self._shared) > 2000:
            self._shared.pop(next(iter(self._shared)))
        self._shared[digest] = (flow, base, limit)

    def definition(self, id: str) -> dict[str, Any] | None:
        """What workflow ``id`` runs: ``name``, ``text``, ``flow`` (the compiled flow's JSON
        text), ``base`` and ``limit`` (text, "" for none); None if there is no such workflow."""
        name, digest = self.redis.hmget(self.keys.workflow(id), "name", "digest")
        if digest is None:
            return None
        flow, text, base, limit = self.redis.hmget(
            self.keys.of(id).flow(digest), "flow", "text", "base", "limit"
        )
        if flow is None:
            return None
        return {
            "name": name or None,
            "text": text or "",
            "flow": flow,
            "base": base or "",
            "limit": limit or "",
        }

    def release_flows(self, ids: list[str], client: Any) -> None:
        """Queue on ``client`` (a pipeline) the release of the shared definitions (flows) of
        workflows ``ids``: each one's count of workflows drops by one, and it is deleted with
        its last workflow. Call it before deleting the workflows' keys (a release is done
        once: it takes the digest away)."""
        if not ids:
            return
        pipe = self.redis.pipeline(transaction=False)
        for id in ids:
            pipe.hget(self.keys.workflow(id), "digest")
        for id, digest in zip(ids, pipe.execute()):
            if digest:
                self.scripts.release_flow(
                    keys=[self.keys.workflow(id), self.keys.of(id).flow(digest)], args=[digest], client=client
                )

    def parallelism(self, run: Run, default: int = DEFAULT_PARALLELISM) -> int:
        """How many task runs ``run`` may have queued or running at once: its flow's
        ``parallelism``, else ``default``."""
        try:
            return flow_parallelism(run.flow.parameters) or default
        except OptionError:  # (checked on submit: only a flow stored by an older version gets here)
            return default

    # -- writing runs -------------------------------------------------------------------
    def commit(self, run: Run, step: Step, starts: list[Start], create: dict[str, str] | None = None) -> int:
        """Write one step of ``run`` atomically: its state, ``starts`` sent as start-task
        messages, and ``step``'s acks, task info and log. Raises :class:`Conflict` if the
        run changed since it was loaded (nothing is written then)."""
        return self.committed(
            run, self.scripts.commit(**self.commit_call(run, step, starts, create is not None))
        )

    def commit_call(
        self,
        run: Run,
        step: Step,
        starts: list[Start],
        create: bool = False,
        restored: tuple[float, float] | None = None,
        once: tuple[str, str, int] | None = None,
        at: float | None = None,
        define: bool = True,
    ) -> dict[str, Any]:
        """The keys and arguments of scripts/commit.lua for one step (see :meth:`commit`);
        run them, in a pipeline with others if need be, then hand the result to :meth:`committed`.
        A step of applied ends (``step.ends``) is appended to the workflow's journal; any other
        step, or one whose journal has outgrown the state, writes the whole state.
        ``once``: a creation's idempotency key (its Redis key), fingerprint and seconds to live.
        ``at``: the time the step is written at (else now). ``define``: a creation sends its
        flow's shared definition; without it the script expects that stored already (and
        writes nothing, answering -3, if it is not)."""
        now = time.time() if at is None else at
        part = self.keys.of(run.id)
        streams: dict[str, int] = {}
        starts_out = []
        for start in starts:
            message = self.start_message(run, start)
            stream = part.stream(message.name)
            index = streams.setdefault(stream, len(streams) + 1)
            starts_out.append([index, _flat(message.fields())])
            step.tasks[message.task] = {
                "node": start.node,
                "status": "queued",
                "seq": message.seq,
                "queued": now,
            }
        payload = {
            "id": run.id,
            "status": run.state.status,
            "time": repr(now),
            "group": ENGINES,
            "fields": _flat(step.fields),
            "acks": step.acks,
            "starts": starts_out,
            "tasks": _flat({k: v if isinstance(v, str) else info_json(v) for k, v in step.tasks.items()}),
            "log": [compact({**entry, "@": int(now * 1000)}) for entry in step.log],
            "logbytes": LOG_BYTES,
            "events": [_flat(entry) for entry in step.events],
            "eventlen": EVENTS_LENGTH,
            "index": self._index_keys(part, run.flow.name or ""),
        }
        if create and step.fields.get("schedule"):  # (started by a schedule: listed by it too)
            payload["index"] = {**payload["index"], "schedule": part.by_schedule(step.fields["schedule"])}
        if restored is not None:  # a restore: its own version, and the times it had
            payload["version"], payload["created"], payload["time"] = run.version, *map(repr, restored)
        if once is not None:
            payload["once"] = {"fingerprint": once[1], "ttl": once[2]}
        entry = ""
        final = (
            run.state.status != "running" and not run.state.running
        )  # (an ended run is written whole, once)
        if step.ends and not create and not final:
            entry = compact({"ends": step.ends, "parallelism": step.parallelism})
            if run.journaled + len(entry) > max(JOURNAL_MIN, run.snapshot):
                entry = ""
        blob = "" if entry else run.blob()
        run.writing = len(entry) if entry else -len(blob)
        keys = part
        names = [
            keys.workflow(run.id),
            keys.task_info(run.id),
            keys.ends,
            keys.events,
            keys.workflows,
            *(keys.by_state(state) for state in STATES),
            keys.journal(run.id),
            *streams,
        ]
        if step.flow is not None and create:  # a new workflow's flow, shared (the idempotency key stays last)
            names.append(keys.flow(step.flow[0]))
            payload["flow"] = {"key": len(names)}
            if define:
                payload["flow"]["fields"] = _flat(dict(zip(("flow", "text", "base", "limit"), step.flow[1:])))
        return {
            "keys": [*names, *([once[0]] if once else [])],
            "args": ["" if create else str(run.version), blob, entry, compact(payload)],
        }

    def _index_keys(self, keys: Keys, name: str) -> dict[str, Any]:
        """The listing indexes (of partition ``keys``) a step of a workflow of flow ``name``
        keeps (scripts/commit.lua)."""
        cache = self.__dict__.setdefault("_index_cache", {})
        index = cache.get((keys.partition, name))
        if index is None:
            index = {"ended": keys.ended, "ids": {state: keys.ids(state) for state in STATES}}
            if name:
                index.update(
                    flow=name,
                    name=keys.by_name(name),
                    names=keys.names,
                    named={state: keys.by_name(name, state) for state in STATES},
                )
            if len(cache) < 1000:
                cache[(keys.partition, name)] = index
        return index

    def committed(self, run: Run, result: Any) -> int:
        """Take in the result of a commit: the run's new version, or :class:`Conflict` /
        :class:`StoreError` when nothing was written."""
        if isinstance(result, Exception):
            raise result
        if result == 0:
            raise Conflict(run.id)
        if result == -1:
            raise WorkflowExists(f"workflow {run.id} exists already")
        if result == -2:
            raise WorkflowNotFound(f"no workflow {run.id}")
        run.version = result
        if run.writing > 0:
            run.journaled += run.writing
        elif run.writing < 0:
            run.snapshot, run.journaled = -run.writing, 0
        return result

    def start_message(self, run: Run, start: Start) -> StartTask:
        """The start-task message of ``start`` (released by :meth:`Run.release`, which numbered it)."""
        flow, _, defaults, per_task, base, _ = self._definition(run.id)
        node = flow.nodes[start.node]
        id = task_id(start.key)
        if node.kind == "resource":
            name = f"{RESOURCE}:{'read' if node.mode == 'source' else 'write'}"
            parameters = {"uri": node.uri, "parameters": node.parameters}
            options = None
        else:
            name, parameters = node.name, node.parameters
            options = per_task.get(node.alias) or per_task.get(node.name)
        policy = {key: value for key, value in (("defaults", defaults), ("task", options)) if value}
        return StartTask(
            run.id,
            id,
            run.seqs[id],
            start.node,
            name,
            parameters,
            start.input,
            1,
            policy or None,
            base,
            run.trace,
        )

    def create(
        self,
        flow: Flow,
        input: Any = None,
        *,
        text: str = "",
        base: str = "",
        limit: int | None = DEFAULT_LIMIT,
        id: str | None = None,
        key: str | None = None,
        key_ttl: int = KEY_TTL,
        fields: dict[str, str] | None = None,
    ) -> Run:
        """Store a new workflow of ``flow`` and queue its first tasks (see :meth:`create_many`)."""
        return self.create_many(
            flow,
            [input],
            text=text,
            base=base,
            limit=limit,
            ids=[id] if id else None,
            keys=[key],
            key_ttl=key_ttl,
            fields=[fields],
        )[0]

    def create_many(
        self,
        flow: Flow,
        inputs: list[Any],
        *,
        text: str = "",
        base: str = "",
        limit: int | None = DEFAULT_LIMIT,
        ids: list[str] | None = None,
        keys: list[str | None] | None = None,
        key_ttl: int = KEY_TTL,
        fields: list[dict[str, str] | None] | None = None,
        at: float | None = None,
        before_send: Callable[[], None] | None = None,
    ) -> list[Run]:
        """Store a new workflow of ``flow`` for each input (in one round trip) and queue their first tasks.
        ``fields``: more fields of each one's hash (``schedule`` and ``tick`` for a schedule's).
        ``at``: a time still ahead (a schedule's tick) that they are created at: stamped with
        it, they are sent once ``before_send`` (called when all is ready) returns — a schedule
        waits there for its tick, so that the round trip alone stands between it and the tasks.
        An input with an idempotency key (``keys``) already given in the last ``key_ttl`` seconds
        creates nothing: its run is ``replayed``, with the id of the workflow the key created
        (:class:`KeyReused` if that one had another flow or input)."""
        keys = keys or [None] * len(inputs)
        if ids and any(
            key is not None and self.keys.partition_of(key) != self.keys.partition_of(id)
            for id, key in zip(ids, keys)
        ):
            raise ValueError(
                "a workflow given its id and an idempotency key must be in the key's partition "
                "(Store.new_id(key) draws such an id)"
            )
        if any(key is not None for key in keys) and not (isinstance(key_ttl, int) and key_ttl >= 1):
            raise ValueError(
                f"an idempotency key lives a whole number of seconds, at least 1, not {key_ttl!r}"
            )
        for key in keys:
            if key is not None and not VALID_KEY.fullmatch(key):
                raise InvalidKey(
                    f"bad idempotency key {key!r}: 1 to 200 printable ASCII characters, "
                    "no space at either end"
                )
        defaults, per_task = _flow_options(
            flow
        )  # a mistake in the @flow options is the submitter's to hear of
        flow_text = flow.dumps()
        limit_text = "" if limit is None else str(limit)
        digest = flow_digest(flow_text, text, base, limit_text)
        engine = Engine(flow, limit)
        self._share(digest, flow, base, limit_text)
        extra = fields or [None] * len(inputs)
        fields = {"digest": digest, **({"name": flow.name} if flow.name else {})}
        pipe = self.redis.pipeline(transaction=False)
        runs, claims, made, steps = [], [], [], []
        defined: set[int] = set()  # the partitions whose first creation sends the definition
        at = at if at is not None and at > time.time() else None
        for input, id, key, more in zip(inputs, ids or [self.new_id(key) for key in keys], keys, extra):
            run = Run(
                id,
                flow,
                engine,
                State(flow.end),
                0,
                base=base,
                limit=limit,
                trace=tracing.workflow_span(id, flow.name),
            )
            self._flows[id] = (flow, engine, defaults, per_task, base, limit)
            self._digests[id] = digest
            starts = run.release(engine.start(run.state, input), self.parallelism(run))
            step = Step()
            step.flow = (digest, flow_text, text, base, limit_text)
            step.fields = {
                **fields,
                **(more or {}),
                "created": repr(time.time() if at is None else at),
                **({"trace": run.trace} if run.trace else {}),
            }
            step.log.append({"kind": "submitted"})
            step.events.append(
                {"kind": "workflow", "workflow": id, "state": run.state.status, "name": flow.name or ""}
            )
            once = None
            if key is not None:
                once = (
                    self.keys.idempotency(key),
                    _fingerprint(text or flow_text, input, base, limit),
                    key_ttl,
                )
                step.fields["idempotency"] = once[0]  # (deleting the workflow frees its key)
            part = self.keys.partition_of(id)
            self.scripts.commit(
                client=pipe,
                **self.commit_call(
                    run, step, starts, create=True, once=once, at=at, define=part not in defined
                ),
            )
            defined.add(part)
            steps.append((step, starts, once))
            runs.append(run)
            claims.append((key, once[1] if once else None))
            made.append((input, step.fields["created"]))
        if before_send is not None:
            before_send()
        try:
            results = pipe.execute(raise_on_error=False)
        except (redis.ConnectionError, redis.TimeoutError) as error:
            results = self._written(runs, claims, error)
        undefined = [number for number, result in enumerate(results) if result == -3]
        if undefined:  # (the creation that was to define the flow wrote nothing: now with it)
            pipe = self.redis.pipeline(transaction=False)
            for number in undefined:
                step, starts, once = steps[number]
                self.scripts.commit(
                    client=pipe, **self.commit_call(runs[number], step, starts, create=True, once=once, at=at)
                )
            for number, result in zip(undefined, pipe.execute(raise_on_error=False)):
                results[number] = result
        for number, (run, result, (key, fingerprint)) in enumerate(zip(runs, results, claims)):
            if isinstance(result, str):  # the key's claim, "ID FINGERPRINT"
                self._replayed(run, key, fingerprint, *result.split(" ", 1))
            elif result == -1 and not ids:  # a fresh id exists: our commit, sent again by the client, or
                input, created = made[number]  # (once in a blue moon) another workflow's id
                if self.redis.hget(self.keys.workflow(run.id), "created") != created:
                    runs[number] = self.create_many(
                        flow, [input], text=text, base=base, limit=limit, keys=[key], key_ttl=key_ttl
                    )[0]
            elif result is not None:
                self.committed(run, result)
        return runs

    def new_id(self, key: str | None = None) -> str:
        """A fresh workflow id (see :func:`new_id`); given an idempotency key, one in the key's
        partition (where the key is kept, so that creating the workflow is one atomic step)."""
        id = new_id()
        if key is not None:
            while self.keys.partition_of(id) != self.keys.partition_of(key):
                id = new_id()
        return id

    def _written(
        self, runs: list[Run], claims: list[tuple[str | None, str | None]], error: Exception
    ) -> list:
        """The answer to creating ``runs`` was lost (``error``): ask again what each commit did —
        None: written; a claim: its key was taken. Raises ``error`` if one wrote nothing (or
        Redis cannot tell): no failure is reported for a workflow that was stored."""
        pipe = self.redis.pipeline(transaction=False)
        for run, (key, _) in zip(runs, claims):
            pipe.exists(self.keys.workflow(run.id))
            if key is not None:
                pipe.get(self.keys.idempotency(key))
        try:
            found = iter(pipe.execute())
        except redis.RedisError:
            raise error from None
        results = []
        for key, _ in claims:
            exists, claim = next(found), next(found) if key is not None else None
            if not exists and not claim:
                raise error
            results.append(None if exists else claim)
        return results

    def _replayed(self, run: Run, key: str, fingerprint: str, id: str, claimed: str) -> None:
        """``run`` found ``key`` claimed by workflow ``id``: it is that workflow, unless it is itself
        (its commit retried by the client after a lost answer) or the key came with another request."""
        if id == run.id:
            return
        self._flows.pop(run.id, None)
        self._digests.pop(run.id, None)
        if claimed != fingerprint:
            raise KeyReused(
                f"idempotency key {key!r} was given for workflow {id} with another flow or input; "
                "a new workflow needs a new key"
            )
        run.id, run.replayed = id, True

    def restore(
        self,
        run: Run,
        fields: dict[str, str],
        times: tuple[float, float],
        tasks: dict[str, str],
        log: list[tuple[str, dict[str, str]]],
        starts: list[Start],
    ) -> None:
        """Write an archived workflow back under its id in one transaction, replacing what
        is there, its running tasks (``starts``) sent again."""
        keys, id = self.keys, run.id
        fields = dict(fields)
        shared = [fields.pop(name, "") for name in ("flow", "text", "base", "limit")]
        digest = flow_digest(*shared)
        fields["digest"] = digest
        fields = {name: value for name, value in fields.items() if value}  # (absent is empty)
        self._flows.pop(id, None)
        self._share(digest, run.flow, shared[2], shared[3])
        self._definition(id, digest)
        for start in starts:  # (sent again under new run numbers)
            run.seqs.pop(task_id(start.key), None)
        starts = run.release(starts, self.parallelism(run))
        step = Step()
        step.fields = fields
        step.flow = (digest, *shared)
        step.log.append({"kind": "restored"})
        step.events.append({"kind": "workflow", "workflow": id, "state": run.state.status})
        pipe = self.redis.pipeline(transaction=True)
        self.release_flows([id], pipe)  # (of what the id held before)
        old_name, old_schedule = self.redis.hmget(keys.workflow(id), "name", "schedule")
        self.scripts.forget(
            **self.forget_call(id, old_name or "", event=False, schedule=old_schedule), client=pipe
        )
        if tasks:
            pipe.hset(keys.task_info(id), mapping=tasks)
        if log:
            lines = "".join(
                compact({**entry, "@": int(entry_id.partition("-")[0])}) + "\n" for entry_id, entry in log
            )
            step.fields["log"] = lines[-LOG_BYTES:].partition("\n")[2] if len(lines) > LOG_BYTES else lines
        self.scripts.commit(client=pipe, **self.commit_call(run, step, starts, create=True, restored=times))
        *_, result = pipe.execute(raise_on_error=False)
        self.committed(run, result)

    def change(self, id: str, act: Any, kind: str) -> Run:
        """Apply ``act(run) -> starts`` to workflow ``id`` atomically (retrying on conflicts)."""
        for _ in range(100):
            run = self.load(id)
            before = run.state.status
            starts = run.release(act(run), self.parallelism(run))
            step = Step()
            step.log.append({"kind": kind})
            if run.state.status != before:
                step.events.append({"kind": "workflow", "workflow": id, "state": run.state.status})
            try:
                self.commit(run, step, starts)
                return run
            except Conflict:
                continue
        raise StoreError(f"workflow {id} keeps changing; try again")

    # -- forgetting ----------------------------------------------------------------------
    def forget(self, ids: list[str], ended_before: float | None = None) -> int:
        """Remove workflows ``ids``, whatever their state (the caller decides which may go) or,
        given ``ended_before``, those of them that ended before that time (and have not run
        since): every key of each, its entries in every index, its share of its flow and its
        idempotency key; the events stream gets each one's state ``deleted``. Returns how
        many of them there were. A workflow changed as it is removed is read again."""
        ids = [id for id in dict.fromkeys(ids) if VALID_ID.fullmatch(id)]
        if self.keys.partitions > 1:  # (one transaction watches keys of one hash slot)
            by_part: dict[int, list[str]] = {}
            for id in ids:
                by_part.setdefault(self.keys.partition_of(id), []).append(id)
            if len(by_part) > 1:
                return sum(self.forget(part, ended_before) for part in by_part.values())
        gone = 0
        for _ in range(20):  # (again for those changed or restored under another flow meanwhile)
            if not ids:
                break
            with self.redis.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(*(self.keys.workflow(id) for id in ids))
                    found = [
                        pipe.hmget(self.keys.workflow(id), "name", "idempotency", "schedule") for id in ids
                    ]
                    if ended_before is not None:
                        ended = [pipe.zscore(self.keys.of(id).ended, id) for id in ids]
                        kept = [score is not None and score <= ended_before for score in ended]
                        ids = [id for id, keep in zip(ids, kept) if keep]
                        found = [entry for entry, keep in zip(found, kept) if keep]
                    pipe.multi()
                    self.release_flows(ids, pipe)
                    for id, (name, key, schedule) in zip(ids, found):
                        self.scripts.forget(
                            **self.forget_call(id, name or "", key, schedule=schedule), client=pipe
                        )
                    results = pipe.execute()[-len(ids) :] if ids else []
                except redis.WatchError:
                    continue
            for id in ids:
                self._flows.pop(id, None)
            gone += sum(1 for result in results if result == 1)
            ids = [id for id, result in zip(ids, results) if result == -1]
        return gone

    def forget_call(
        self, id: str, name: str, key: str | None = None, event: bool = True, schedule: str | None = None
    ) -> dict[str, list]:
        """The keys and arguments of scripts/forget.lua for workflow ``id`` of flow ``name``
        (its idempotency ``key``, released; a ``deleted`` event unless not ``event``; the
        index of the ``schedule`` that started it)."""
        keys = self.keys.of(id)
        names = [
            keys.workflow(id),
            keys.journal(id),
            keys.waits(id),
            keys.events,
            keys.workflows,
            keys.ended,
            keys.names,
            *(keys.by_state(state) for state in STATES),
            *(keys.ids(state) for state in STATES),
        ]
        if name:
            names += [keys.by_name(name), *(keys.by_name(name, state) for state in STATES)]
        return {
            "keys": [*names, *([keys.by_schedule(schedule)] if schedule else []), *([key] if key else [])],
            "args": [
                id,
                name,
                "1" if event else "0",
                EVENTS_LENGTH,
                "1" if key else "0",
                "1" if schedule else "0",
            ],
        }

    # -- reading what is there --------------------------------------------------------
    def ids(self, start: int = 0, count: int = -1, state: str | None = None) -> list[str]:
        """Workflow ids (of those in ``state``), oldest first."""
        key = self.keys.workflows if state is None else self.keys.by_state(state)
        return self.redis.zrange(key, start, -1 if count < 0 else start + count - 1)

    def summaries(self, ids: list[str]) -> list[dict[str, Any]]:
        """id, name, state and times of each workflow (skipping those gone)."""
        pipe = self.redis.pipeline(transaction=False)
        for id in ids:
            pipe.hmget(self.keys.workflow(id), "status", "name", "created", "updated")
        found = []
        for id, (status, name, created, updated) in zip(ids, pipe.execute()):
            if status is not None:
                found.append(
                    {
                        "id": id,
                        "name": name or None,
                        "state": status,
                        "created": _time(created),
                        "updated": _time(updated),
                    }
                )
        return found

    def task_info(self, id: str) -> dict[str, dict[str, Any]]:
        """Task id -> the info of its latest run, for each task of workflow ``id`` that was queued."""
        return {k: json.loads(v) for k, v in self.redis.hgetall(self.keys.task_info(id)).items() if "|" in k}

    def log(self, id: str) -> list[dict[str, Any]]:
        """The workflow's log, oldest first: each entry's fields (text) and an ``id`` that
        increases, ``MS-N`` (its time in milliseconds, and a count within the same one)."""
        lines = self.redis.hget(self.keys.workflow(id), "log")
        log, last, count = [], 0, -1
        for line in (lines or "").splitlines():
            entry = json.loads(line)
            ms = int(entry.pop("@", 0))
            ms, count = (last, count + 1) if ms <= last else (ms, 0)
            last = ms
            log.append({"id": f"{ms}-{count}", **{name: str(value) for name, value in entry.items()}})
        return log


def flow_digest(flow: str, text: str, base: str, limit: str) -> str:
    """What names a shared definition: the SHA-256 of its compiled flow's JSON, its text, base
    and limit (the first 128 bits, in hex: a workflow keeps it, and bytes count there)."""
    parts = "\0".join((flow, text, base, limit))
    return hashlib.sha256(parts.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def new_id() -> str:
    """A fresh workflow id: sortable by time, unique."""
    return (
        time.strftime("%Y%m%d-%H%M%S-", time.gmtime()) + uuid.uuid4().hex[:12]
    )  # (48 random bits: no two alike)


def _fingerprint(text: str, input: Any, base: str, limit: int | None) -> str:
    """What tells a repeated submission from another one under the same idempotency key."""
    request = json.dumps(
        [text, input, base, limit], sort_keys=True, ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.sha256(request.encode("utf-8", "surrogatepass")).hexdigest()


def _flow_options(flow: Flow) -> tuple[dict, dict]:
    """The @flow run-time options: (defaults, per-task entries); raises ValueError if wrong.
    An alias's entry is the flow's whole entry for it (:func:`littleflow.policy.flow_entry`)."""
    names = {node.name for node in flow.nodes if node.kind == "task"}
    aliases = {node.alias: node.name for node in flow.nodes if node.alias}
    defaults, entries = flow_options(flow.parameters, names | aliases.keys())
    for alias, name in aliases.items():
        entries[alias] = flow_entry(entries, name, alias)
    return defaults, entries


def capped(value: Any, limit: int = MAX_INFO_VALUE) -> Any:
    """``value``, or ``{"truncated": SIZE}`` if its JSON is more than ``limit`` bytes."""
    if value is None or isinstance(value, (bool, int, float)) and limit >= 32:
        return value
    size = _sized(value, limit)[1]
    return value if size <= limit else {"truncated": size}


def info_json(info: dict[str, Any], **values: Any) -> str:
    """The JSON text of a task info entry: ``info`` and ``values`` (input, output), each of
    these as :func:`capped` keeps it (the engine writes one for every end: small ones, by
    far the most, are encoded once)."""
    info = {name: value for name, value in (*info.items(), *values.items()) if value is not None}
    text = compact(info)
    if len(text) <= MAX_INFO_VALUE // 4:  # (at most 4 bytes a character: every value fits)
        return text
    parts = [compact(name) + ":" + compact(value) for name, value in info.items() if name not in values]
    for name in values:
        if name in info:
            text, size = _sized(info[name])
            parts.append(f'"{name}":{text if size <= MAX_INFO_VALUE else compact({"truncated": size})}')
    return "{" + ",".join(parts) + "}"


def _sized(value: Any, limit: int = MAX_INFO_VALUE) -> tuple[str, int]:
    """The compact JSON of ``value`` and its size in bytes (exact if that may exceed ``limit``)."""
    text = compact(value)
    if len(text) <= limit // 4 or text.isascii():
        return text, len(text)
    return text, len(text.encode("utf-8", "surrogatepass"))


def _flat(mapping: dict[str, Any]) -> list[str]:
    return [str(item) for pair in mapping.items() for item in pair]


def _time(text: str | None) -> float | None:
    return float(text) if text else None
