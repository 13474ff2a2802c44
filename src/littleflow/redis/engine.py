"""The engine process: reads end-task messages and advances their workflows,
one atomic step per workflow per batch. Any number may run at once."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from ..engine import DEFAULT_PARALLELISM
from .connection import is_cluster
from .protocol import ENGINES, EndTask, Keys, Malformed, parse_task_id
from .retention import DEFAULT_RETENTION, Sweeper
from .store import Conflict, Run, Step, Store, StoreError, info_json
from .streams import Streams, surviving

log = logging.getLogger("littleflow.engine")

#: Runs an engine keeps in memory between their steps (valid while their version holds).
RUNS_KEPT = 10_000
#: Seconds the marker of a forwarded end lives (longer than any redelivery of the original).
FORWARD_MARKER_TTL = 24 * 3600


@dataclass
class Group:
    """Partitions an engine reads together (their end streams in one XREADGROUP), with the
    consumer state and retention sweeper of that reading."""

    parts: list[Keys]
    streams: Streams
    sweeper: Sweeper

    @property
    def ends(self) -> list[str]:
        return [part.ends for part in self.parts]


class EngineProcess:
    """Advances workflows as their tasks end.

    ``claim_idle``: seconds after which another engine takes over the messages
    of one that stopped answering; ``max_deliveries``: deliveries of a message
    that cannot be applied before it is set aside in the dead-letter stream;
    ``parallelism``: task runs of a workflow queued or running at once, for flows
    that do not say (``@flow (- parallelism: N -)``); ``retention``: seconds an ended
    workflow is kept (0: for ever), archived first to ``archive_dir`` if given (see
    :mod:`.retention`); ``schedules``: fire the schedules' ticks (in a thread of its own,
    off the path of the ends: see :mod:`.schedules`).
    """

    def __init__(
        self,
        store: Store,
        raw: redis.Redis,
        *,
        name: str | None = None,
        claim_idle: float = 30.0,
        max_deliveries: int = 5,
        batch: int = 512,
        parallelism: int = DEFAULT_PARALLELISM,
        retention: float = DEFAULT_RETENTION,
        archive_dir: Path | None = None,
        share: tuple[int, int] = (0, 1),
        schedules: bool = True,
    ) -> None:
        self.store = store
        self.raw = raw
        self.parallelism = parallelism
        self.keys = store.keys
        self.name = name or consumer_name("engine")
        self.claim_idle, self.max_deliveries = claim_idle, max_deliveries
        self.batch = batch
        self.retention, self.archive_dir = retention, archive_dir
        if not (0 <= share[0] < share[1]):
            raise ValueError(f"bad share {share[0]}/{share[1]}: the first is from 0 to the second less one")
        self.share = share
        self.schedules = (
            schedules and share[0] == 0
        )  # (the engines of partition 0, where schedules are, fire them)
        self._groups: list[Group] | None = None
        self._runs: OrderedDict[str, Run] = OrderedDict()  # recent runs, valid while their version holds
        self._lock = threading.Lock()  # (the groups are made once; their threads add up timings and counts)
        # Task run-time histograms, added up here and written now and then: metrics, not state
        # (a crash loses a second of them, and no step waits for them).
        self._timings: dict[str, float] = {}
        self._next_timings = 0.0
        self.applied = 0  # ends applied by this process

    def groups(self) -> list[Group]:
        """The partitions this engine serves (its share: those whose number modulo the second
        of ``share`` is the first), in the groups it reads together: all in one on one server,
        where one XREADGROUP reads any streams; each on its own on a Redis Cluster, where it
        reads the streams of one hash slot."""
        with self._lock:  # (made once: the run's threads and a caller may ask at once)
            if self._groups is None:
                self._groups = self._make_groups()
        return self._groups

    def _make_groups(self) -> list[Group]:
        served = [p for p in range(self.keys.partitions) if p % self.share[1] == self.share[0]]
        split = [served] if not is_cluster(self.store.redis) else [[p] for p in served]
        return [
            Group(
                [self.keys.part(p) for p in partitions],
                Streams(self.raw, self.keys, ENGINES, self.name, self.claim_idle, self.max_deliveries),
                Sweeper(self.store, self.retention, self.archive_dir, partitions=partitions),
            )
            for partitions in split
            if partitions
        ]

    def join(self) -> list[Group]:
        """Join the consumer group of the end streams this engine reads (made if need be)."""
        groups = self.groups()
        for group in groups:
            group.streams.join(*group.ends)
        return groups

    def run(self, stop: threading.Event, block: float = 1.0) -> None:
        """Advance workflows until ``stop`` is set: a thread for each group of partitions."""
        while not stop.is_set():  # (Redis may not answer yet: it says how many partitions there are)
            with surviving(f"engine {self.name}", stop):
                groups = self.join()
                break
        else:
            return
        log.info("engine %s: reading %s", self.name, ", ".join(end for group in groups for end in group.ends))
        threads = [
            threading.Thread(
                target=self._loop, args=(group, stop, block), daemon=True, name=f"littleflow-engine-{number}"
            )
            for number, group in enumerate(groups)
        ]
        if self.schedules:
            from .schedules import Schedules, fire_forever

            threads.append(
                threading.Thread(
                    target=fire_forever,
                    args=(Schedules(self.store), stop),
                    daemon=True,
                    name="littleflow-schedules",
                )
            )
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _loop(self, group: Group, stop: threading.Event, block: float) -> None:
        while not stop.is_set():
            with surviving(f"engine {self.name}", stop):
                self.step(block, group)

    def step(self, block: float = 1.0, group: Group | None = None) -> int:
        """Read and apply one batch of ends of ``group`` (of every group, without blocking when
        there are several, if None); now and then, also reclaim, trim and remove the
        workflows ended longer ago than the retention."""
        if group is None:
            groups = self.groups()
            return sum(self.step(block if len(groups) == 1 else 0, each) for each in groups)
        streams = group.streams
        messages = streams.read({end: ">" for end in group.ends}, self.batch, block)
        messages += streams.maintain(*group.ends)
        batch = []
        for stream, message_id, fields, deliveries in messages:
            if deliveries > streams.max_deliveries:
                self._give_up(
                    streams,
                    stream,
                    message_id,
                    fields,
                    f"delivered {deliveries - 1} times without being applied",
                )
            else:
                batch.append((stream, message_id, fields))
        if batch:
            self.apply(batch, streams)
        self._write_timings()
        group.sweeper.now_and_then()
        return len(messages)

    def _write_timings(self, every: float = 1.0) -> None:
        now = time.monotonic()
        if not self._timings or now < self._next_timings:
            return
        self._next_timings = now + every
        with self._lock:
            timings, self._timings = self._timings, {}
        pipe = self.store.redis.pipeline(transaction=False)
        for key, value in timings.items():
            pipe.hincrbyfloat(self.keys.timings, key, value)
        pipe.execute()

    def apply(self, messages: list[tuple[str, str, Any]], streams: Streams | None = None) -> None:
        """Apply end-task messages (stream, id, fields): grouped by workflow, in order; every
        workflow's step is one atomic commit, and the commits of a batch travel in one round
        trip. An end read from the stream of another partition than its workflow's (a latch's,
        which are all sent to partition 0's) is forwarded there."""
        streams = streams or self.groups()[0].streams
        by_workflow: dict[str, list[tuple[str, str, EndTask]]] = {}
        for stream, message_id, fields in messages:
            try:
                end = EndTask.parse(fields)
            except Malformed as error:
                streams.set_aside(stream, message_id, fields, f"malformed end-task message: {error}")
                continue
            home = self.keys.of(end.workflow).ends
            if home != stream:
                self._forward(streams, stream, message_id, fields, home)
                continue
            by_workflow.setdefault(end.workflow, []).append((stream, message_id, end))
        for _ in range(50):
            if not by_workflow:
                return
            by_workflow = self._advance(by_workflow, streams)
        for workflow in by_workflow:
            log.error(
                "engine %s: workflow %s kept changing while its ends were applied; they stay pending",
                self.name,
                workflow,
            )

    def _forward(self, streams: Streams, stream: str, message_id: str, fields: Any, home: str) -> None:
        """Send an end on to its workflow's partition: once, although it is acked here in
        another step (the marker, named for the message, outlives any redelivery)."""
        flat = [item for pair in fields.items() for item in pair]
        self.store.scripts.end_once(
            keys=[self.keys.of_key(home).forwarded(stream, message_id), home],
            args=[FORWARD_MARKER_TTL, *flat],
        )
        streams.ack(stream, message_id)

    def _give_up(self, streams: Streams, stream: str, message_id: str, fields: Any, reason: str) -> None:
        """Set an end aside that could not be applied, and fail its task, so that its
        workflow does not wait for it forever (``resume`` runs the task again)."""
        streams.set_aside(stream, message_id, fields, reason)
        try:
            end = EndTask.parse(fields)
            key = parse_task_id(end.task)
        except Malformed:
            return

        def fail(run: Run) -> list:
            if run.seqs.get(end.task) != end.seq or key not in run.state.running:
                return []
            del run.seqs[end.task]
            return run.engine.failed(run.state, key, f"its end could not be applied ({reason})")

        try:
            self.store.change(end.workflow, fail, "failed")
        except StoreError as error:
            log.error("engine %s: %s", self.name, error)
        self._runs.pop(end.workflow, None)

    def _advance(
        self, by_workflow: dict[str, list[tuple[str, str, EndTask]]], streams: Streams
    ) -> dict[str, list]:
        """One attempt at a step for each workflow; returns those to try again (conflicts)."""
        runs = {workflow: self._runs.pop(workflow, None) for workflow in by_workflow}
        cached = {workflow for workflow, run in runs.items() if run is not None}
        missing = [workflow for workflow, run in runs.items() if run is None]
        if missing:
            runs.update(self.store.load_many(missing))
        pipe = self.store.redis.pipeline(transaction=False)
        steps = []
        again: dict[str, list] = {}
        for workflow, ends in by_workflow.items():
            run = runs[workflow]
            if isinstance(run, StoreError):  # left pending: set aside once delivered too often
                log.error("engine %s: %s", self.name, run)
                continue
            if run is None:
                for stream, message_id, end in ends:
                    streams.set_aside(
                        stream, message_id, end.fields(), f"end of a task of unknown workflow {workflow}"
                    )
                continue
            try:
                step, starts, aside = self._ends(run, ends)
                if aside and workflow in cached:  # only the stored run may call an end a duplicate
                    again[workflow] = ends
                    continue
                if step.acks:
                    self.store.scripts.commit(client=pipe, **self.store.commit_call(run, step, starts))
            except Exception:
                log.exception(
                    "engine %s: cannot advance workflow %s; its ends stay pending", self.name, workflow
                )
                continue
            steps.append((run, step, aside))
        results = iter(pipe.execute(raise_on_error=False)) if len(pipe) else iter(())
        for run, step, aside in steps:
            if step.acks:
                try:
                    self.store.committed(run, next(results))
                except Conflict:  # another engine or a client changed it first: read it again
                    again[run.id] = by_workflow[run.id]
                    continue
                except StoreError:  # deleted meanwhile: its ends are now of an unknown workflow
                    again[run.id] = by_workflow[run.id]
                    continue
                except Exception as error:  # noqa: BLE001
                    log.error("engine %s: cannot commit workflow %s: %s", self.name, run.id, error)
                    continue
            self._remember(run)
            with self._lock:
                self.applied += len(step.acks)
                for key, value in step.timings.items():
                    self._timings[key] = self._timings.get(key, 0) + value
            for stream, message_id, fields, reason in aside:
                streams.set_aside(stream, message_id, fields, reason)
        return again

    def _ends(self, run: Run, ends: list[tuple[str, str, EndTask]]) -> tuple[Step, list, list]:
        state, nodes = run.state, run.flow.nodes
        step, aside = Step(), []
        step.parallelism = self.store.parallelism(run, self.parallelism)
        before = state.status
        applied: set[str] = set()
        for stream, message_id, end in ends:
            key = parse_task_id(end.task)
            if not 0 <= key[1] < len(nodes):
                aside.append(
                    (stream, message_id, end.fields(), f"end of unknown node {key[1]} of workflow {run.id}")
                )
                continue
            if run.seqs.get(end.task) != end.seq or key not in state.running or end.task in applied:
                aside.append(
                    (
                        stream,
                        message_id,
                        end.fields(),
                        f"duplicate or stale end of task {end.task} (run {end.seq}) of workflow {run.id}",
                    )
                )
                continue
            step.ends.append(
                [end.task, end.seq, end.status, end.output if end.status == "done" else end.error]
            )
            applied.add(end.task)
            node = nodes[key[1]]
            input = state.running[key]
            if end.status != "done":
                step.log.append(
                    {"kind": "failed", "task": end.task, "node": str(key[1]), "error": end.error or ""}
                )
            step.acks.append(message_id)
            if end.started is not None and end.ended is not None and end.ended >= end.started:
                step.timed(node.name or node.label, end.ended - end.started)
            info = {
                "node": key[1],
                "status": end.status,
                "seq": end.seq,
                "attempt": end.attempt,
                "started": end.started,
                "ended": end.ended,
                "error": end.error,
                "worker": end.worker,
                "attempts": end.attempts,
            }
            step.tasks[end.task] = (
                info_json(info, input=input, output=end.output, log=end.log)
                if end.status == "done"
                else info_json(info, input=input, log=end.log)
            )
        starts = run.advance(step.ends, step.parallelism)
        if state.status != before:
            step.log.append({"kind": state.status})
            step.events.append({"kind": "workflow", "workflow": run.id, "state": state.status})
        return step, starts, aside

    def _remember(self, run: Run) -> None:
        """Keep ``run`` for its next ends (the most recent RUNS_KEPT; none once nothing runs)."""
        if run.state.status != "running" and not run.state.running:
            return  # (ended: no more ends to apply)
        self._runs[run.id] = run
        if len(self._runs) > RUNS_KEPT:
            self._runs.popitem(last=False)


def consumer_name(role: str) -> str:
    """A unique consumer name for this process: role, host, pid and a random part."""
    return f"{role}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
