"""Schedules on Redis: what they are (a hash of JSON under partition 0's tag, and a sorted set
of the names of those not paused by next tick), every change of one a compare-and-set on its
version (scripts/schedule.lua), and the firing of the due ones that engines do.

Exactly one workflow per tick, however many engines fire: the tick's workflow has an id
that every engine computes alike (:meth:`Schedules.tick_id`, from the schedule's name, when
it was added, and the tick) and is created with the idempotency key ``schedule:NAME:TICK``;
a second creation of it, by an engine racing or by one taking over from an engine killed
between creating it and moving the schedule on, finds it (or its key) there and creates
nothing. The schedule's next tick moves on only after, compare-and-set: whoever loses a race
reads it again."""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import threading
import time
from typing import Any

from ..flow import Flow
from ..local import load_workflow
from ..schedules import CATCHUP, OVERLAP, ScheduleError, Timing, check_name, choice, plan, timing
from .store import Conflict, Store, StoreError, WorkflowExists

log = logging.getLogger("littleflow.schedules")

#: Seconds a tick's idempotency key lives: longer than engines take to retry a tick one of
#: them was killed firing (after that the tick's id, which the workflow keeps, still makes
#: a second creation a no-op). Short, as a thousand schedules every second keep that many
#: keys a second.
TICK_KEY_TTL = 600
#: The recent runs a schedule keeps (for ``schedule show`` and the console).
RECENT = 10
#: The most due schedules fired in one round (the rest in the next).
BATCH = 5000
#: Bounds of the seconds before a tick that an engine prepares its workflows (sent at the
#: tick): as long as preparing as many took last time, with room to spare.
LEAD = (0.05, 1.0)


class UnknownSchedule(StoreError, LookupError):
    """No schedule of that name."""


class ScheduleExists(StoreError):
    """A schedule of that name exists already (add it with ``replace`` to change it)."""


def tick_key(name: str, tick: int) -> str:
    """The idempotency key of a schedule's tick."""
    return f"schedule:{name}:{tick}"


def timing_of(record: dict[str, Any]) -> Timing:
    """When the ticks of the schedule ``record`` fall."""
    return Timing(
        cron=record.get("cron"), every=record.get("every"), timezone=record.get("timezone") or "UTC"
    )


class Schedules:
    """The schedules of one key prefix (the store's)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.keys = store.keys
        self._flows: dict[str, Flow] = {}  # compiled flows by text
        self.cost = 0.0005  # seconds it takes to prepare a tick's workflow (measured as they are)

    # -- reading ----------------------------------------------------------------------
    def get(self, name: str) -> dict[str, Any]:
        """Schedule ``name``'s record; :class:`UnknownSchedule` if there is none."""
        found = self.store.redis.hget(self.keys.schedules, name)
        if found is None:
            raise UnknownSchedule(f"no schedule {name}")
        return json.loads(found)

    def all(self) -> list[dict[str, Any]]:
        """Every schedule's record, by name."""
        found = self.store.redis.hgetall(self.keys.schedules)
        return [json.loads(found[name]) for name in sorted(found)]

    def show(self, record: dict[str, Any], count: int = 5) -> dict[str, Any]:
        """What a schedule looks like to people: its record with ``when`` (cron or every, in
        words), ``ticks`` (its next ``count``), the ``state`` of each recent run (None: gone),
        and no flow text."""
        found = timing_of(record)
        shown = {k: v for k, v in record.items() if k not in ("text", "base")}
        shown["when"] = found.describe()
        shown["ticks"] = [] if record["paused"] else [record["next"], *found.ticks(record["next"], count - 1)]
        pipe = self.store.redis.pipeline(transaction=False)
        for run in record["recent"]:
            pipe.hget(self.keys.workflow(run["id"]), "status")
        states = pipe.execute() if record["recent"] else []
        shown["recent"] = [{**run, "state": state} for run, state in zip(record["recent"], states)]
        return shown

    # -- changing ----------------------------------------------------------------------
    def add(
        self,
        name: str,
        flow: Flow,
        text: str,
        *,
        cron: str | None = None,
        every: Any = None,
        timezone: str | None = None,
        input: Any = None,
        catchup: str | None = None,
        overlap: str | None = None,
        base: str = "",
        replace: bool = False,
        now: float | None = None,
    ) -> dict[str, Any]:
        """Add schedule ``name``: workflows of ``flow`` (compiled from ``text``) with ``input``,
        at each tick of ``cron`` or ``every``; what is not given comes from the flow's
        ``schedule`` option. Refuses a name in use unless ``replace``."""
        check_name(name)
        option = (flow.parameters or {}).get("schedule") if isinstance(flow.parameters, dict) else None
        option = option or {}
        if cron is None and every is None:
            if not option:
                raise ScheduleError(
                    f"schedule {name}: give --cron EXPR or --every DURATION (the flow has no schedule option)"
                )
            cron, every = option.get("cron"), option.get("every")
            timezone = timezone or option.get("timezone")
        found = timing(cron, every, timezone)
        record = {
            "name": name,
            "flow": flow.name,
            "text": text,
            "base": base,
            "input": input if input is not None else option.get("input"),
            "cron": found.cron,
            "every": found.every,
            "timezone": found.timezone,
            "catchup": choice(catchup or option.get("catchup", "one"), CATCHUP, "--catchup"),
            "overlap": choice(overlap or option.get("overlap", "allow"), OVERLAP, "--overlap"),
            "paused": False,
            "created": now or time.time(),
            "version": 1,
            "recent": [],
        }
        record["next"] = found.next_after(record["created"])
        if not self._write(record, "*" if replace else ""):
            raise ScheduleExists(f"schedule {name} exists; delete it first")
        return record

    def pause(self, name: str) -> dict[str, Any]:
        """Fire no more ticks of ``name`` until it is resumed."""
        return self._change(name, lambda record: record.update(paused=True))

    def resume(self, name: str, now: float | None = None) -> dict[str, Any]:
        """Fire ``name`` again from its next tick after now (the ticks while paused are not run)."""

        def act(record: dict[str, Any]) -> None:
            if record["paused"]:
                record.update(paused=False, next=timing_of(record).next_after(now or time.time()))

        return self._change(name, act)

    def delete(self, name: str) -> None:
        """Remove schedule ``name`` (the workflows it started stay)."""
        self.get(name)
        self.store.scripts.schedule(
            keys=[self.keys.schedules, self.keys.schedules_due], args=[name, "*", "", ""]
        )

    def run(self, name: str, now: float | None = None) -> str:
        """Start one workflow of schedule ``name`` now (whatever its ticks); returns its id."""
        record = self.get(name)
        tick = int(now or time.time())
        id = self._create(record, tick, key=None, id=None)
        self._change(
            name, lambda fresh: _remember(fresh, {"tick": tick, "id": id, "at": time.time(), "manual": True})
        )
        return id

    def _change(self, name: str, act: Any) -> dict[str, Any]:
        for _ in range(100):
            record = self.get(name)
            version = record["version"]
            act(record)
            record["version"] = version + 1
            if self._write(record, str(version)):
                return record
        raise StoreError(f"schedule {name} keeps changing; try again")

    def _write(self, record: dict[str, Any], version: str, client: Any = None, bump: bool = False) -> bool:
        """Write ``record`` if it is at ``version`` (``bump``: moving it to the next); queued
        on ``client`` (a pipeline) if given."""
        if bump:
            record["version"] = int(version) + 1
        due = "" if record["paused"] else str(record["next"])
        done = self.store.scripts.schedule(
            keys=[self.keys.schedules, self.keys.schedules_due],
            args=[record["name"], version, json.dumps(record), due],
            client=client,
        )
        return bool(done)

    # -- firing --------------------------------------------------------------------------
    def due(self, now: float, count: int = BATCH) -> list[str]:
        """The names of the schedules whose next tick is at or before ``now``."""
        return self.store.redis.zrangebyscore(self.keys.schedules_due, "-inf", now, start=0, num=count)

    def upcoming(self) -> tuple[float, float] | None:
        """The next tick of any schedule and when to begin preparing it (see :data:`LEAD`);
        None when there is none."""
        found = self.store.redis.zrange(self.keys.schedules_due, 0, 0, withscores=True)
        if not found:
            return None
        tick = float(found[0][1])
        count = self.store.redis.zcount(self.keys.schedules_due, "-inf", tick)
        return tick, tick - min(LEAD[1], max(LEAD[0], 0.02 + 2 * self.cost * count))

    def fire(self, now: float | None = None, hold: bool = False) -> int:
        """Fire the ticks due (each schedule's oldest due tick it runs, as its catchup and
        overlap say); returns how many workflows were started or found started. The ticks on
        time, of schedules whose previous run does not stand in the way, go together (their
        workflows created a flow at a time, in one round trip each, the schedules moved on in
        one more); the others, and any that meets a race, one by one (:meth:`fire_one`).
        ``hold``: ``now`` is a tick still ahead (see :func:`fire_forever`): the ticks due by
        then are prepared at once, and no workflow is created before it."""
        now = time.time() if now is None else now
        names = self.due(now)
        if not names:
            return 0
        records = [json.loads(found) for found in self.store.redis.hmget(self.keys.schedules, names) if found]
        records = [record for record in records if not record["paused"] and record["next"] <= now]
        blocking = [record for record in records if record["overlap"] != "allow" and record["recent"]]
        pipe = self.store.redis.pipeline(transaction=False)
        for record in blocking:
            pipe.hget(self.keys.workflow(record["recent"][0]["id"]), "status")
        running = {
            record["name"]
            for record, status in zip(blocking, pipe.execute() if blocking else [])
            if status == "running"
        }
        together, alone = [], []
        for record in records:
            on_time = plan(timing_of(record), record["next"], now, record["catchup"])[0] == record["next"]
            if on_time and record["name"] not in running:
                together.append(record)
            else:
                alone.append(record["name"])
        failed = self._fire_together(together, now if hold else None)
        started = len(together) - len(failed)
        if hold and (alone or failed):
            time.sleep(max(0.0, now - time.time()))
        for name in alone + failed:
            try:
                started += self.fire_one(name, now)
            except (
                StoreError,
                ScheduleError,
                ValueError,
            ) as error:  # (one schedule's trouble stops no other)
                log.error("schedule %s: %s", name, error)
        return started

    def _fire_together(self, records: list[dict[str, Any]], at: float | None) -> list[str]:
        """Create the workflow of the due tick of each of ``records`` (read just now), at
        ``at`` (a time still ahead) if given, then move them on. Returns the names of those that met
        a race or a failure, for :meth:`fire_one` to finish."""
        by_flow: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for record in records:
            by_flow.setdefault((record["text"], record.get("base") or ""), []).append(record)
        again: list[str] = []
        made: list[tuple[dict[str, Any], str]] = []
        for (text, base), group in by_flow.items():
            began = time.time()

            def on_time(count: int = len(group), began: float = began) -> None:
                self.cost += 0.3 * ((time.time() - began) / count - self.cost)
                if at is not None:
                    time.sleep(max(0.0, at - time.time()))

            try:
                runs = self.store.create_many(
                    self._flow(text),
                    [record.get("input") for record in group],
                    text=text,
                    base=base,
                    ids=[self.tick_id(record, record["next"]) for record in group],
                    keys=[tick_key(record["name"], record["next"]) for record in group],
                    key_ttl=TICK_KEY_TTL,
                    fields=[{"schedule": record["name"], "tick": str(record["next"])} for record in group],
                    at=at,
                    before_send=on_time,
                )
            except (StoreError, ValueError) as error:  # (fired already, by a racing engine: one by one then)
                log.debug("schedules: firing %d together: %s", len(group), error)
                again += [record["name"] for record in group]
                continue
            made += [(record, run.id) for record, run in zip(group, runs)]
        pipe = self.store.redis.pipeline(transaction=False)
        at = time.time()
        for record, id in made:
            tick = record["next"]
            record["next"] = timing_of(record).next_after(tick)
            _remember(record, {"tick": tick, "id": id, "at": at})
            self._write(record, str(record["version"]), pipe, bump=True)
        again += [
            record["name"] for (record, _), done in zip(made, pipe.execute() if made else []) if not done
        ]
        return again

    def fire_one(self, name: str, now: float) -> int:
        """Take schedule ``name`` one tick on, if one is due (1 if a workflow was started)."""
        for _ in range(20):
            try:
                return self._fire_one(name, now)
            except Conflict:
                continue
        return 0

    def _fire_one(self, name: str, now: float) -> int:
        try:
            record = self.get(name)
        except UnknownSchedule:
            return 0
        if record["paused"] or record["next"] > now:
            return 0
        version, tick = record["version"], record["next"]
        fire, after = plan(timing_of(record), tick, now, record["catchup"])
        if fire is None:  # missed, and catchup says skip
            self._cas(record, version, next=after, skipped={"tick": tick, "reason": "missed"})
            return 0
        id = self.tick_id(record, fire)
        if not self.store.redis.exists(
            self.keys.workflow(id)
        ):  # (else created by an engine that then stopped)
            if record["overlap"] != "allow" and self._still_running(record):
                if record["overlap"] == "skip":
                    self._cas(record, version, next=after, skipped={"tick": fire, "reason": "overlap"})
                    return 0
                self._terminate(record["recent"][0]["id"])
            id = self._create(record, fire, key=tick_key(name, fire), id=id)
        self._cas(record, version, next=after, recent={"tick": fire, "id": id, "at": time.time()})
        return 1

    def tick_id(self, record: dict[str, Any], tick: int) -> str:
        """The id of the workflow of ``tick`` of the schedule ``record``: the same in every
        engine, another for a schedule added again under the same name; in the partition of the
        tick's idempotency key (where the two are created together)."""
        stamp = time.strftime("%Y%m%d-%H%M%S-", time.gmtime(tick))
        home = self.keys.partition_of(tick_key(record["name"], tick))
        for attempt in itertools.count():
            seed = f"{record['name']}\0{record['created']!r}\0{tick}\0{attempt}"
            id = stamp + hashlib.sha256(seed.encode()).hexdigest()[:12]
            if self.keys.partition_of(id) == home:
                return id
        raise AssertionError("unreachable")

    def _cas(self, record: dict[str, Any], version: int, recent: dict | None = None, **changes: Any) -> None:
        """Write ``record`` with ``changes`` if it is still at ``version``; else :class:`Conflict`."""
        record.update(changes)
        if recent is not None:
            _remember(record, recent)
        record["version"] = version + 1
        if not self._write(record, str(version)):
            raise Conflict(record["name"])

    def _create(self, record: dict[str, Any], tick: int, key: str | None, id: str | None) -> str:
        """Create the workflow of ``tick`` (under ``id`` and ``key``, if given); its id (that of
        the workflow the key or the id names, if there is one)."""
        flow = self._flow(record["text"])
        fields = {"schedule": record["name"], "tick": str(tick)}
        try:
            run = self.store.create(
                flow,
                record.get("input"),
                text=record["text"],
                base=record.get("base") or "",
                id=id,
                key=key,
                key_ttl=TICK_KEY_TTL,
                fields=fields,
            )
        except WorkflowExists:
            if id is not None:  # (created before the key expired)
                return id
            raise
        return run.id

    def _flow(self, text: str) -> Flow:
        """The flow of ``text``, compiled once."""
        flow = self._flows.get(text)
        if flow is None:
            flow = self._flows[text] = load_workflow(text)[0]
            if len(self._flows) > 1000:
                self._flows.pop(next(iter(self._flows)))
        return flow

    def _still_running(self, record: dict[str, Any]) -> bool:
        if not record["recent"]:
            return False
        id = record["recent"][0]["id"]
        return self.store.redis.hget(self.keys.workflow(id), "status") == "running"

    def _terminate(self, id: str) -> None:
        from .client import terminate  # (the one way to stop a workflow)

        try:
            terminate(self.store, id)
        except StoreError as error:  # (ended meanwhile)
            log.info("schedule: previous run %s: %s", id, error)


def _remember(record: dict[str, Any], run: dict[str, Any]) -> None:
    record["recent"] = [run, *record.get("recent", ())][:RECENT]


def fire_forever(schedules: Schedules, stop: threading.Event, longest: float = 0.5) -> None:
    """Fire schedules as their ticks come, until ``stop`` is set (an engine's thread): a
    tick's workflows are prepared ahead (:meth:`Schedules.upcoming`) and sent at the tick, so
    that a thousand ticks at once are late by the round trip only. Redis away is not said here:
    the engine's own loops say it, once."""
    from .connection import UNREACHABLE

    last = None
    while not stop.is_set():
        try:
            upcoming, now = schedules.upcoming(), time.time()
            if upcoming is not None and upcoming[1] <= now:
                tick = upcoming[0]
                if tick == last:  # (the last round left it due: again, but not in a spin)
                    stop.wait(0.05)
                last = tick
                schedules.fire(max(tick, time.time()), hold=True)
                continue
            stop.wait(longest if upcoming is None else min(longest, upcoming[1] - now))
        except UNREACHABLE as error:
            log.debug("schedules: Redis unreachable (%s)", error)
            stop.wait(0.5)
        except Exception:
            log.exception("schedules: this round failed")
            stop.wait(0.5)
