"""The Python client of a littleflow system on Redis: submit, watch and steer workflows."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import redis

from ..engine import DEFAULT_LIMIT, Engine, Start
from ..flow import Flow
from ..local import load_workflow
from ..private import littleflow_home
from ..values import check_value
from . import events as eventlog
from . import listing, waits
from .archive import Restorable, archive_of, validate
from .connection import connect, safe_url
from .protocol import (
    PREFIX,
    REGISTER_EVERY,
    RESOURCE,
    SHARED_NAMESPACES,
    STATES,
    Keys,
    Malformed,
    entry_order,
    namespace,
    parse_task_id,
    task_id,
)
from .store import (
    KEY_TTL,
    VALID_ID,
    Run,
    Store,
    StoreError,
    WorkflowExists,
    WorkflowNotFound,
    capped,
)

if TYPE_CHECKING:
    from .schedules import Schedules

#: Where to find Redis when neither an argument nor LITTLEFLOW_REDIS_URL says.
DEFAULT_URL = "redis://127.0.0.1:6379/0"


def redis_url(url: str | None = None) -> str:
    """``url``, else ``$LITTLEFLOW_REDIS_URL``, else the URL that a ``littleflow serve``
    with a private server keeps in ``$LITTLEFLOW_HOME/redis.url`` (``~/.littleflow``
    by default), else the local default."""
    if url or os.environ.get("LITTLEFLOW_REDIS_URL"):
        return url or os.environ["LITTLEFLOW_REDIS_URL"]
    saved = littleflow_home() / "redis.url"
    try:
        return saved.read_text(encoding="utf-8").strip() or DEFAULT_URL
    except (OSError, UnicodeDecodeError):
        return DEFAULT_URL


class Page(NamedTuple):
    """A page of workflow summaries; ``total``: how many workflows match all the filters;
    ``counts``: how many of each state match the filters other than the state."""

    workflows: list[dict[str, Any]]
    total: int
    counts: dict[str, int]


class Client:
    """Workflows on the Redis at ``url`` (``redis://user:pass@host:port/db``, ``rediss://`` for TLS)."""

    def __init__(self, url: str | None = None, prefix: str = PREFIX) -> None:
        self.url = redis_url(url)
        self.redis = connect(self.url)
        self.store = Store(self.redis, Keys(prefix))
        self.keys = self.store.keys

    # -- running -------------------------------------------------------------------
    def submit(
        self,
        workflow: str | Path | Flow,
        input: Any = None,
        *,
        limit: int | None = DEFAULT_LIMIT,
        base: str | None = None,
        text: str | None = None,
        key: str | None = None,
    ) -> str:
        """Start a workflow of flow text, a flow file or a compiled Flow; returns its id. With an
        idempotency ``key`` given before (in the last 24 h, same flow and input), start nothing
        and return the id of the workflow it started (see :meth:`submit_once`)."""
        return self.submit_once(workflow, input, limit=limit, base=base, text=text, key=key)[0]

    def submit_once(
        self,
        workflow: str | Path | Flow,
        input: Any = None,
        *,
        limit: int | None = DEFAULT_LIMIT,
        base: str | None = None,
        text: str | None = None,
        key: str | None = None,
        key_ttl: int = KEY_TTL,
    ) -> tuple[str, bool]:
        """:meth:`submit`, and whether it started a new workflow (False: the ``key``, given
        in the last ``key_ttl`` seconds, names the workflow it started). A key given with
        another flow or input raises :class:`KeyReused`."""
        check_value(input, "the input")
        flow, found_base = load_workflow(workflow)
        if text is None:
            text = text_of(workflow)
        run = self.store.create(
            flow, input, text=text, base=base or found_base or "", limit=limit, key=key, key_ttl=key_ttl
        )
        return run.id, not run.replayed

    def submit_many(
        self,
        workflow: str | Path | Flow,
        inputs: list[Any],
        *,
        limit: int | None = DEFAULT_LIMIT,
        base: str | None = None,
        keys: list[str | None] | None = None,
    ) -> list[str]:
        """Start one workflow of the same flow for each input, in one round trip; returns their ids.
        ``keys``: an idempotency key for each input (or None), as :meth:`submit` takes one."""
        inputs = list(inputs)
        for number, input in enumerate(inputs):
            check_value(input, f"input {number}")
        if keys is not None and len(keys) != len(inputs):
            raise ValueError(f"{len(keys)} idempotency keys for {len(inputs)} inputs")
        flow, found_base = load_workflow(workflow)
        text = workflow if isinstance(workflow, str) else ""
        runs = self.store.create_many(
            flow, inputs, text=text, base=base or found_base or "", limit=limit, keys=keys
        )
        return [run.id for run in runs]

    def wait(self, id: str, timeout: float | None = None, poll: float = 0.05) -> dict[str, Any]:
        """Wait until workflow ``id`` is no longer running; returns its status document.
        Raises ``TimeoutError`` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        key = self.keys.workflow(_checked(id))
        delay = 0.005
        while True:
            status = self.redis.hget(key, "status")
            if status is None:
                raise WorkflowNotFound(f"no workflow {id}")
            if status != "running":
                return self.status(id)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"workflow {id} is still running after {timeout:g} s")
            time.sleep(delay)
            delay = min(poll, delay * 2)

    def status(self, id: str) -> dict[str, Any]:
        """The status document of workflow ``id``: id, name, doc, state, input, output, error,
        times, and every node with its status, attempt, times, error, input and output (and,
        run once per item of a ``*``, its item runs)."""
        run = self.store.load(id)
        info = self.store.task_info(id)
        created, updated, schedule, tick = self.redis.hmget(
            self.keys.workflow(id), "created", "updated", "schedule", "tick"
        )
        return document(
            run, info, float(created or 0), float(updated or 0), schedule, int(tick) if tick else None
        )

    def logs(self, id: str, node: int | None = None) -> dict[str, Any]:
        """What the task runs of workflow ``id`` wrote (the latest run of each task instance, of
        node ``node`` only if given): ``{"id", "state", "runs": [{"task", "node", "name", "item",
        "seq", "attempt", "status", "lines", "dropped"}, …]}``, in node order, then item order.
        A running task's lines are those its worker sent last (every second)."""
        run = self.store.load(id)
        runs = []
        for task, entry in self.store.task_info(id).items():
            log = entry.get("log")
            if not isinstance(log, dict) or (node is not None and entry.get("node") != node):
                continue
            path, _, item = task.rpartition("|")
            number = entry.get("node")
            found = (
                run.flow.nodes[number] if isinstance(number, int) and 0 <= number < len(run.flow) else None
            )
            runs.append(
                {
                    "task": task,
                    "node": number,
                    "name": found and (found.name or found.label),
                    "item": int(item) if item.lstrip("-").isdigit() and int(item) >= 0 else None,
                    "seq": entry.get("seq"),
                    "attempt": entry.get("attempt"),
                    "status": entry.get("status"),
                    "lines": log.get("lines") or [],
                    "dropped": log.get("dropped") or 0,
                }
            )
        runs.sort(
            key=lambda r: (
                r["node"] if isinstance(r["node"], int) else -1,
                r["task"].rpartition("|")[0],
                -1 if r["item"] is None else r["item"],
            )
        )
        return {"id": id, "state": run.state.status, "runs": runs}

    def statuses(self, id: str) -> tuple[Flow, dict[int, str]]:
        """Workflow ``id``'s flow and each node's status, as its status document gives them."""
        run = self.store.load(id)
        return run.flow, {
            node["id"]: node["status"] for node in node_documents(run, self.store.task_info(id))
        }

    def list(
        self,
        state: str | None = None,
        name: str | None = None,
        offset: int = 0,
        count: int | None = None,
        search: str | None = None,
        schedule: str | None = None,
    ) -> list[dict[str, Any]]:
        """Workflows, oldest first: id, name, state, created, updated; filtered by state, flow
        name, ``search`` (a prefix of the id or of the flow name, case-sensitive) or the
        ``schedule`` that started them."""
        return self.page(state, name, offset, count, search, schedule=schedule).workflows

    def page(
        self,
        state: str | None = None,
        name: str | None = None,
        offset: int = 0,
        count: int | None = None,
        search: str | None = None,
        newest: bool = False,
        schedule: str | None = None,
    ) -> Page:
        """A page of :meth:`list` (``newest`` first, or oldest), how many workflows match all
        the filters, and how many of each state match the others (``name`` and ``search``).
        Read from indexes, never a scan of every workflow (see :mod:`.listing`); ``schedule``
        reads its own index (with no other filter but the state)."""
        if state is not None and state not in STATES:
            raise StoreError(f"unknown state {state!r} (one of {', '.join(STATES)})")
        if schedule is not None:
            if name is not None or search:
                raise StoreError(
                    "a schedule's workflows are listed by state alone (no name or search with it)"
                )
            ids, total, counts = listing.scheduled(
                self.redis, self.keys, schedule, state, offset, count, newest
            )
            return Page(self.store.summaries(ids), total, counts)
        ids, total, counts = listing.find(
            self.redis, self.keys, self.store.scripts, state, name, offset, count, search, newest
        )
        # (a workflow may have changed state since it was found)
        workflows = [s for s in self.store.summaries(ids) if state is None or s["state"] == state]
        return Page(workflows, total, counts)

    # -- steering ---------------------------------------------------------------------
    def terminate(self, id: str) -> dict[str, Any]:
        """Stop workflow ``id``: nothing new starts, running tasks are told to cancel."""
        terminate(self.store, id)
        return self.status(id)

    def resume(self, id: str) -> dict[str, Any]:
        """Continue a failed or terminated workflow: what failed or was interrupted runs
        again, what finished does not."""

        def act(run: Run) -> list[Start]:
            if run.state.status not in ("failed", "terminated"):
                raise StoreError(
                    f"workflow {id} is {run.state.status}; only failed or terminated ones resume"
                )
            return run.engine.resume(run.state)

        waits.cancel(self.store, id)  # what still waits from before is sent again
        self.store.change(id, act, "resumed")
        return self.status(id)

    def delete(self, id: str) -> None:
        """Forget workflow ``id`` (terminate it first if it runs); the events stream gets its
        state ``deleted``."""
        status = self.redis.hget(self.keys.workflow(_checked(id)), "status")
        if status is None:
            raise WorkflowNotFound(f"no workflow {id}")
        if status == "running":
            raise StoreError(f"workflow {id} is running; terminate it first")
        waits.cancel(self.store, id)
        if not self.store.forget([id]):  # (its idempotency key, released, may start a new workflow)
            raise WorkflowNotFound(f"no workflow {id}")

    def definition(self, id: str) -> dict[str, Any]:
        """What workflow ``id`` runs: its flow's name, the flow text as submitted, and the
        compiled graph."""
        found = self.store.definition(_checked(id))
        if found is None:
            raise WorkflowNotFound(f"no workflow {id}")
        return {"id": id, "name": found["name"], "text": found["text"], "flow": json.loads(found["flow"])}

    # -- schedules ----------------------------------------------------------------------
    @cached_property
    def schedules(self) -> ScheduleClient:
        """The schedules (see docs/schedules.md): ``list``, ``add``, ``show``, ``pause``,
        ``resume``, ``delete``, ``run``."""
        return ScheduleClient(self.store)

    # -- archives -----------------------------------------------------------------------
    def archive(self, id: str) -> dict[str, Any]:
        """Everything about workflow ``id`` as JSON: definition, state, task info, log."""
        return archive_of(self.store, _checked(id))

    def restore(self, archive: dict[str, Any] | Restorable, replace: bool = False) -> str:
        """Bring back an archived workflow under its id, in one transaction; a running one
        has its running tasks sent again. Its version and run numbers move past any the
        workflow had, so nothing of an earlier life of the id is mistaken for it.
        Refuses an id in use unless ``replace``, and a damaged archive (:class:`InvalidArchive`)
        before anything is written; ``archive`` may be one :func:`~.archive.validate` checked."""
        found = archive if isinstance(archive, Restorable) else validate(archive)
        id = found.id
        if self.redis.exists(self.keys.workflow(id)):
            if not replace:
                raise WorkflowExists(f"workflow {id} exists; delete it first or restore with replace")
            waits.cancel(self.store, id)
        fresh = int(time.time() * 1000)
        flow, limit = found.flow, found.limit
        run = Run(
            id,
            flow,
            Engine(flow, limit),
            found.state,
            max(found.version, fresh),
            found.seqs,
            max(found.seq, fresh),
            found.base,
            limit,
        )
        fields = {
            "flow": flow.dumps(),
            "text": found.text,
            "base": found.base,
            "name": found.name,
            "limit": "" if limit is None else str(limit),
            "created": repr(found.times[0]),
            "schedule": found.schedule or "",  # (listed by its schedule again, as when it was started)
            "tick": "" if found.tick is None else str(found.tick),
        }
        self.store.restore(
            run,
            fields,
            found.times,
            found.tasks,
            found.log,
            _resend(run) if found.status == "running" else [],
        )
        return id

    # -- events ------------------------------------------------------------------------
    def send(self, event: str, data: Any = None) -> int:
        """Send ``event`` with ``data``: ``wait:event`` tasks waiting for it (and matching) end.
        Returns how many tasks it ended."""
        check_value(data, "the event data")
        return waits.send(self.store, event, {} if data is None else data)

    def events(
        self, follow: bool = False, since: str = "0", block: float = 1.0
    ) -> Iterator[dict[str, Any] | None]:
        """Events sent and workflow state changes after ``since`` (an event's ``id``: see
        :mod:`.events`), oldest first, each with its ``time``; with ``follow``, wait for more,
        giving ``None`` after each ``block`` seconds without any."""
        try:
            at = eventlog.cursor(since, self.keys)
        except ValueError as error:
            raise StoreError(str(error)) from None
        while True:
            entries = eventlog.read(self.redis, self.keys, at, 500, block if follow else 0.0)
            for position, moment, fields in entries:
                at = eventlog.cursor(position, self.keys)
                yield {"id": position, "time": moment, **eventlog.decoded(fields)}
            if not entries:
                if not follow:
                    return
                yield None

    def dead(self, count: int = 100) -> list[dict[str, Any]]:
        """The newest messages set aside (dead letters), newest first."""
        pipe = self.redis.pipeline(transaction=False)
        for part in self.keys.parts:
            pipe.xrevrange(part.dead, count=count)
        letters = []
        for entry_id, fields in sorted(
            (entry for found in pipe.execute() for entry in found),
            key=lambda entry: entry_order(entry[0]),
            reverse=True,
        )[:count]:
            fields["message"] = fields.pop("id", None)  # the id the message had in its stream
            letters.append({"id": entry_id, **fields})
        return letters

    def served(self, silent_for: float = 3 * REGISTER_EVERY) -> Callable[[str], bool]:
        """A test of a task name: does a live worker (heard from in the last ``silent_for`` seconds) serve it,
        by that name or by its shared namespace?"""
        names: set[str] = set()
        spaces: set[str] = set()
        now = time.time()
        for text in self.redis.hvals(self.keys.workers):
            try:
                worker = json.loads(text)
                if now - float(worker["seen"]) <= silent_for:
                    names.update(worker.get("tasks") or ())
                    spaces.update(worker.get("namespaces") or ())
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
        return lambda name: (
            name in names or namespace(name) in spaces and namespace(name) in SHARED_NAMESPACES
        )

    def unserved(self, workflow: str | Path | Flow, silent_for: float = 3 * REGISTER_EVERY) -> list[str]:
        """The task names of ``workflow`` (flow text, file or Flow) that no live worker serves."""
        flow = workflow if isinstance(workflow, Flow) else load_workflow(workflow)[0]
        served = self.served(silent_for)
        wanted = {node.name for node in flow.nodes if node.kind == "task" and node.name}
        if any(node.kind == "resource" for node in flow.nodes):
            wanted.add(f"{RESOURCE}:read")
        return sorted(name for name in wanted if not served(name))

    def stalled(self, id: str, silent_for: float = 60.0) -> list[str]:
        """Why workflow ``id`` may not be getting on: queued tasks that no worker (heard
        from in the last ``silent_for`` seconds) serves. One line each."""
        served = self.served(silent_for)
        hints = []
        for node in self.status(id)["nodes"]:
            name = node["name"]
            if node["status"] == "queued" and name and not served(name):
                hints.append(
                    f"task {name} at {node['line']}:{node['column']} is queued, and no worker serves it"
                )
        return hints

    def counts(self) -> dict[str, int]:
        """How many workflows are in each state."""
        pipe = self.redis.pipeline(transaction=False)
        for part in self.keys.parts:
            for state in STATES:
                pipe.zcard(part.by_state(state))
        found = pipe.execute()
        return {state: sum(found[at :: len(STATES)]) for at, state in enumerate(STATES)}

    def queues(self) -> dict[str, dict[str, int]]:
        """Each stream (task namespaces, ends, dead letters): messages in it, and those handed
        out but not yet acknowledged."""
        streams = [
            stream
            for part in self.keys.parts
            for stream in (
                part.ends,
                part.dead,
                *sorted(
                    {
                        *self.redis.scan_iter(part.stream("*"), _type="stream"),
                        *self.redis.scan_iter(part.namespace_stream("*"), _type="stream"),
                    }
                ),
            )
        ]
        found = {}
        for stream in streams:
            length = self.redis.xlen(stream)
            pending = 0
            try:
                pending = sum(group["pending"] for group in self.redis.xinfo_groups(stream))
            except redis.ResponseError:  # no such stream yet
                pass
            found[stream] = {"length": length, "pending": pending}
        return found

    def timings(self) -> dict[str, dict[str, float]]:
        """Per task name: ``count``, ``sum`` (seconds) and, per bucket bound, the runs that
        took at most that long (not cumulative)."""
        found: dict[str, dict[str, float]] = {}
        for field, value in self.redis.hgetall(self.keys.timings).items():
            name, _, key = field.rpartition("|")
            found.setdefault(name, {})[key] = float(value)
        return found

    def ping(self) -> None:
        """Raise :class:`StoreError` unless Redis answers."""
        try:
            self.redis.ping()
        except redis.RedisError as error:
            raise StoreError(f"cannot reach Redis at {safe_url(self.url)}: {error}") from None


class ScheduleClient:
    """The schedules of a system (``client.schedules``): each one a workflow of a flow at every
    tick of a cron expression or a period, which the engines fire. A schedule is given as
    ``show`` gives it: its settings, ``when`` (in words), ``ticks`` (the next ones), ``paused``,
    ``next`` and ``recent`` runs with their ``state``. Raises :class:`UnknownSchedule` (a
    ``LookupError``) for a name no schedule has, :class:`~littleflow.schedules.ScheduleError`
    (a ``ValueError``) for a wrong one, a wrong cron, duration, time zone or option."""

    def __init__(self, store: Store) -> None:
        from .schedules import Schedules  # (croniter and the firing, only when asked for)

        self._schedules: Schedules = Schedules(store)

    def list(self, ticks: int = 5) -> list[dict[str, Any]]:
        """Every schedule, by name, with its next ``ticks`` ticks."""
        found = self._schedules
        return [found.show(record, ticks) for record in found.all()]

    def add(
        self,
        name: str,
        workflow: str | Path | Flow,
        input: Any = None,
        *,
        cron: str | None = None,
        every: str | int | float | None = None,
        timezone: str | None = None,
        catchup: str | None = None,
        overlap: str | None = None,
        base: str | None = None,
        text: str | None = None,
        replace: bool = False,
    ) -> dict[str, Any]:
        """Add schedule ``name``: a workflow of ``workflow`` (flow text, a flow file, or a
        compiled Flow with its ``text``) with ``input`` at every tick of ``cron`` (in
        ``timezone``) or ``every`` a duration (``"30s"``, ``"1h"``, or seconds); ``catchup``
        (skip, one, all) and ``overlap`` (allow, skip, terminate) as ``schedule add`` takes them.
        Without ``cron`` and ``every``, the flow's own ``schedule`` option says (and gives what
        else is not given). Refuses a name in use (:class:`StoreError`) unless ``replace``."""
        from ..schedules import ScheduleError

        check_value(input, "the input")
        flow, found_base = load_workflow(workflow)
        text = text_of(workflow) if text is None else text
        if not text:
            raise ScheduleError(
                f"schedule {name}: a compiled Flow needs its text (text=…): the engines compile it"
            )
        record = self._schedules.add(
            name,
            flow,
            text,
            cron=cron,
            every=every,
            timezone=timezone,
            input=input,
            catchup=catchup,
            overlap=overlap,
            base=base or found_base or "",
            replace=replace,
        )
        return self._schedules.show(record)

    def show(self, name: str, ticks: int = 5) -> dict[str, Any]:
        """Schedule ``name``: its settings, next ``ticks`` ticks and recent runs."""
        return self._schedules.show(self._schedules.get(name), ticks)

    def pause(self, name: str) -> dict[str, Any]:
        """Fire no ticks of schedule ``name`` until it is resumed."""
        return self._schedules.show(self._schedules.pause(name))

    def resume(self, name: str) -> dict[str, Any]:
        """Fire schedule ``name`` again from its next tick (those while it was paused are not run)."""
        return self._schedules.show(self._schedules.resume(name))

    def delete(self, name: str) -> None:
        """Remove schedule ``name`` (the workflows it started stay)."""
        self._schedules.delete(name)

    def run(self, name: str) -> str:
        """Start one workflow of schedule ``name`` now, paused or not; returns its id."""
        return self._schedules.run(name)


def text_of(workflow: str | Path | Flow) -> str:
    """The flow text of ``workflow``: itself, a file's text, or "" for a compiled Flow."""
    if isinstance(workflow, str):
        return workflow
    return workflow.read_text("utf-8-sig") if isinstance(workflow, Path) else ""


def terminate(store: Store, id: str) -> None:
    """Stop workflow ``id``: nothing new starts, running tasks are told to cancel."""

    def act(run: Run) -> list[Start]:
        if run.state.status != "running":
            raise StoreError(f"workflow {id} is {run.state.status}, not running")
        run.engine.terminate(run.state)
        return []

    store.change(id, act, "terminated")
    store.redis.publish(store.keys.control, json.dumps({"cancel": id}))
    waits.cancel(store, id)


def document(
    run: Run,
    info: dict[str, dict[str, Any]],
    created: float,
    updated: float,
    schedule: str | None = None,
    tick: int | None = None,
) -> dict[str, Any]:
    """The status document of a run (what ``littleflow status --json`` prints); ``schedule``
    and ``tick`` (its time, seconds since the epoch) for a workflow a schedule started."""
    state = run.state
    found = {
        "id": run.id,
        "name": run.flow.name,
        "doc": run.flow.doc,
        "state": state.status,
        "input": state.input,
        "output": state.output,
        "error": state.failure,
        "created": created,
        "updated": updated,
    }
    if schedule:
        found.update(schedule=schedule, tick=tick)
    return {**found, "nodes": node_documents(run, info)}


def node_documents(run: Run, info: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Every node of a run's status document: status, attempt, times, worker, error, input,
    output, and its item runs if it runs once per item of a ``*``."""
    state, flow = run.state, run.flow
    statuses = state.statuses(flow)
    latest: dict[int, dict[str, Any]] = {}
    for entry in info.values():
        node = entry.get("node")
        if isinstance(node, int) and (
            node not in latest or (entry.get("seq") or 0) > (latest[node].get("seq") or 0)
        ):
            latest[node] = entry
    held = {start.node for start in run.queue} - {int(key.split("|")[1]) for key in run.seqs}  # (parallelism)
    items = _item_runs(run, info)
    running: dict[int, Any] = {}
    for (_, node_id, _), input in state.running.items():
        running.setdefault(node_id, input)
    nodes = []
    for node in flow.nodes:
        status = statuses[node.id]
        entry = latest.get(node.id, {})
        if status == "running" and (entry.get("status") == "queued" or node.id in held):
            status = "queued"
        now = status in ("running", "queued")
        input, output = (capped(running[node.id]), None) if now else (entry.get("input"), entry.get("output"))
        if now and state.status == "terminated":  # interrupted: it ends as it may, and is run again on resume
            status = "terminated"
        nodes.append(
            {
                "id": node.id,
                "label": node.label,
                "kind": node.kind,
                "name": node.name,
                "line": node.line,
                "column": node.column,
                "status": status,
                "attempt": entry.get("attempt"),
                "started": entry.get("started"),
                "ended": entry.get("ended"),
                "error": entry.get("error"),
                "worker": entry.get("worker"),
                "note": entry.get("note"),
                "input": input,
                "output": output,
                "items": items.get(node.id),
            }
        )
    return nodes


#: The item runs a node of a status document lists (the first, by item index).
ITEMS_SHOWN = 100


def _item_runs(run: Run, info: dict[str, dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Node id -> ``{"count", "runs"}`` for each node that runs once per item of a ``*`` (or
    in each copy of an iterated subflow): how many of its item runs were sent or are held back,
    and the first :data:`ITEMS_SHOWN` of them by item index, each with its task id, ``index``
    (the item's index in each enclosing ``*``, outermost first), status, attempt, times, worker,
    error, input and output. Once the workflow has failed or finished, a run it held back
    and never sent is ``unreached``."""
    found: dict[int, list[tuple[list[int], dict[str, Any]]]] = {}
    state = run.state
    terminated, ended = state.status == "terminated", state.status in ("failed", "finished")

    def add(task: str, node: int, entry: dict[str, Any], held: bool = False) -> None:
        try:
            key = parse_task_id(task)
            path, _, item = key
            index = [
                int(part.rpartition(".")[2]) for part in path.split("/")[1:]
            ]  # (``/4.2``: item 2 of the * at node 4)
        except (Malformed, ValueError):
            return
        if item >= 0:
            index.append(item)
        if not index:
            return
        status = (
            entry.get("status")
            if entry.get("status") in ("queued", "running", "done", "failed")
            else "queued"
        )
        now = status in ("queued", "running")
        if terminated and now:
            status = "terminated"  # (as its node is)
        elif ended and held:
            status = "unreached"
        input = state.running[key] if key in state.running else entry.get("input")  # (capped if shown)
        found.setdefault(node, []).append(
            (
                index,
                {
                    "task": task,
                    "index": index,
                    "status": status,
                    "attempt": entry.get("attempt"),
                    "started": entry.get("started"),
                    "ended": entry.get("ended"),
                    "worker": entry.get("worker"),
                    "error": entry.get("error"),
                    "input": input,
                    "output": entry.get("output"),
                },
            )
        )

    for task, entry in info.items():
        node = entry.get("node")
        if isinstance(node, int):
            add(task, node, entry)
    held = [(start.key, start.input) for start in run.queue]  # by the parallelism: not sent yet
    for key, input in [*held, *state.held]:  # (state.held: by a stop, kept for a resume)
        task = task_id(key)
        if task not in info:
            add(task, key[1], {"status": "queued", "input": input}, held=True)
    shown = {}
    for node, runs in found.items():
        runs.sort(key=lambda pair: pair[0])
        shown[node] = {
            "count": len(runs),
            "runs": [{**entry, "input": capped(entry["input"])} for _, entry in runs[:ITEMS_SHOWN]],
        }
    return shown


def _resend(run: Run) -> list[Start]:
    """Send again every task a restored run was running (their old messages are gone)."""
    return [Start(path, node, item, input) for (path, node, item), input in run.state.running.items()]


def _checked(id: str) -> str:
    """``id``, if it can be a workflow id at all (else there is no such workflow)."""
    if not VALID_ID.fullmatch(id):
        raise WorkflowNotFound(f"no workflow {id}")
    return id
