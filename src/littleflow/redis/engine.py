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
from pathlib import Path
from typing import Any

import redis

from ..engine import DEFAULT_PARALLELISM
from .protocol import ENGINES, EndTask, Malformed, parse_task_id
from .retention import DEFAULT_RETENTION, Sweeper
from .store import Conflict, Run, Step, Store, StoreError, info_json
from .streams import Streams, surviving

log = logging.getLogger("littleflow.engine")

#: Runs an engine keeps in memory between their steps (valid while their version holds).
RUNS_KEPT = 10_000


class EngineProcess:
    """Advances workflows as their tasks end.

    ``claim_idle``: seconds after which another engine takes over the messages
    of one that stopped answering; ``max_deliveries``: deliveries of a message
    that cannot be applied before it is set aside in the dead-letter stream;
    ``parallelism``: task runs of a workflow queued or running at once, for flows
    that do not say (``@flow (- parallelism: N -)``); ``retention``: seconds an ended
    workflow is kept (0: for ever), archived first to ``archive_dir`` if given (see
    :mod:`.retention`).
    """

    def __init__(self, store: Store, raw: redis.Redis, *, name: str | None = None, claim_idle: float = 30.0,
                 max_deliveries: int = 5, batch: int = 512, parallelism: int = DEFAULT_PARALLELISM,
                 retention: float = DEFAULT_RETENTION, archive_dir: Path | None = None) -> None:
        self.store = store
        self.parallelism = parallelism
        self.keys = store.keys
        self.name = name or consumer_name("engine")
        self.streams = Streams(raw, self.keys, ENGINES, self.name, claim_idle, max_deliveries)
        self.batch = batch
        self.sweeper = Sweeper(store, retention, archive_dir)
        self._runs: OrderedDict[str, Run] = OrderedDict()  # recent runs, valid while their version holds
        # Task run-time histograms, added up here and written now and then: metrics, not state
        # (a crash loses a second of them, and no step waits for them).
        self._timings: dict[str, float] = {}
        self._next_timings = 0.0
        self.applied = 0  # ends applied by this process

    def run(self, stop: threading.Event, block: float = 1.0) -> None:
        """Advance workflows until ``stop`` is set."""
        self.streams.join(self.keys.ends)
        log.info("engine %s: reading %s", self.name, self.keys.ends)
        while not stop.is_set():
            with surviving(f"engine {self.name}", stop):
                self.step(block)

    def step(self, block: float = 1.0) -> int:
        """Read and apply one batch of ends (and, now and then, reclaim, trim and remove the
        workflows ended longer ago than the retention)."""
        messages = self.streams.read({self.keys.ends: ">"}, self.batch, block)
        messages += self.streams.maintain(self.keys.ends)
        batch = []
        for stream, message_id, fields, deliveries in messages:
            if deliveries > self.streams.max_deliveries:
                self._give_up(message_id, fields, f"delivered {deliveries - 1} times without being applied")
            else:
                batch.append((message_id, fields))
        if batch:
            self.apply(batch)
        self._write_timings()
        self.sweeper.now_and_then()
        return len(messages)

    def _write_timings(self, every: float = 1.0) -> None:
        now = time.monotonic()
        if not self._timings or now < self._next_timings:
            return
        self._next_timings = now + every
        timings, self._timings = self._timings, {}
        pipe = self.store.redis.pipeline(transaction=False)
        for key, value in timings.items():
            pipe.hincrbyfloat(self.keys.timings, key, value)
        pipe.execute()

    def apply(self, messages: list[tuple[str, Any]]) -> None:
        """Apply end-task messages: grouped by workflow, in order; every workflow's step
        is one atomic commit, and the commits of a batch travel in one round trip."""
        by_workflow: dict[str, list[tuple[str, EndTask]]] = {}
        for message_id, fields in messages:
            try:
                end = EndTask.parse(fields)
            except Malformed as error:
                self.streams.set_aside(self.keys.ends, message_id, fields, f"malformed end-task message: {error}")
                continue
            by_workflow.setdefault(end.workflow, []).append((message_id, end))
        for _ in range(50):
            if not by_workflow:
                return
            by_workflow = self._advance(by_workflow)
        for workflow in by_workflow:
            log.error("engine %s: workflow %s kept changing while its ends were applied; they stay pending",
                      self.name, workflow)

    def _give_up(self, message_id: str, fields: Any, reason: str) -> None:
        """Set an end aside that could not be applied, and fail its task, so that its
        workflow does not wait for it forever (``resume`` runs the task again)."""
        self.streams.set_aside(self.keys.ends, message_id, fields, reason)
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

    def _advance(self, by_workflow: dict[str, list[tuple[str, EndTask]]]) -> dict[str, list]:
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
                for message_id, end in ends:
                    self.streams.set_aside(self.keys.ends, message_id, end.fields(),
                                           f"end of a task of unknown workflow {workflow}")
                continue
            try:
                step, starts, aside = self._ends(run, ends)
                if aside and workflow in cached:  # only the stored run may call an end a duplicate
                    again[workflow] = ends
                    continue
                if step.acks:
                    self.store.scripts.commit(client=pipe, **self.store.commit_call(run, step, starts))
            except Exception:  # noqa: BLE001 - one workflow's trouble must not stop the others
                log.exception("engine %s: cannot advance workflow %s; its ends stay pending", self.name, workflow)
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
            self.applied += len(step.acks)
            for key, value in step.timings.items():
                self._timings[key] = self._timings.get(key, 0) + value
            for message_id, fields, reason in aside:
                self.streams.set_aside(self.keys.ends, message_id, fields, reason)
        return again

    def _ends(self, run: Run, ends: list[tuple[str, EndTask]]) -> tuple[Step, list, list]:
        state, nodes = run.state, run.flow.nodes
        step, aside = Step(), []
        step.parallelism = self.store.parallelism(run, self.parallelism)
        before = state.status
        applied: set[str] = set()
        for message_id, end in ends:
            key = parse_task_id(end.task)
            if not 0 <= key[1] < len(nodes):
                aside.append((message_id, end.fields(), f"end of unknown node {key[1]} of workflow {run.id}"))
                continue
            if run.seqs.get(end.task) != end.seq or key not in state.running or end.task in applied:
                aside.append((message_id, end.fields(), f"duplicate or stale end of task {end.task} "
                                                        f"(run {end.seq}) of workflow {run.id}"))
                continue
            step.ends.append([end.task, end.seq, end.status, end.output if end.status == "done" else end.error])
            applied.add(end.task)
            node = nodes[key[1]]
            input = state.running[key]
            if end.status != "done":
                step.log.append({"kind": "failed", "task": end.task, "node": str(key[1]), "error": end.error or ""})
            step.acks.append(message_id)
            if end.started is not None and end.ended is not None and end.ended >= end.started:
                step.timed(node.name or node.label, end.ended - end.started)
            info = {"node": key[1], "status": end.status, "seq": end.seq,
                    "attempt": end.attempt, "started": end.started, "ended": end.ended, "error": end.error,
                    "worker": end.worker}
            step.tasks[end.task] = info_json(info, input=input, output=end.output) if end.status == "done" \
                else info_json(info, input=input)
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
