"""Schedules, the pure part: when a schedule's ticks fall (``cron`` with seconds, or
``every`` a duration), in which time zone, and what to do with ticks missed while no
engine ran (``catchup``) or while the previous run still runs (``overlap``). No clock,
no I/O: the Redis side (:mod:`littleflow.redis.schedules`) feeds it times.

Ticks are whole seconds since the Unix epoch. Cron expressions are read by croniter
(maintained under the Pallets Eco organisation by Airflow's maintainers; it takes a
seconds field and computes in a ``zoneinfo`` time zone). Five fields are
``minute hour day month weekday``; six put ``second`` first.
Daylight saving time: a time the clocks skip fires once, at the first time after the gap;
a time they repeat fires once if the hour field is fixed (``0 2 * * *``), on both passes
if it is not (``0 * * * *`` fires every real hour)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

from .durations import period, seconds
from .errors import LittleflowError
from .values import brief

#: What ``catchup`` may be: skip the ticks missed while no engine ran, run ``one`` workflow
#: for all of them, or ``all`` of them (at most :data:`MAX_CATCHUP`, the latest).
CATCHUP = ("skip", "one", "all")
#: What ``overlap`` may be, when a tick comes and the previous run still runs: run anyway,
#: ``skip`` the tick, or ``terminate`` the previous run first.
OVERLAP = ("allow", "skip", "terminate")
#: The most missed ticks ``catchup: all`` runs (the latest of them).
MAX_CATCHUP = 1000
#: Seconds after its time a tick still counts as on time (not missed).
LATE = 60
#: What a schedule's name may be made of.
VALID_NAME = re.compile(r"[\w.-]{1,64}")
#: The keys of a flow's ``schedule`` option (``@flow nightly (- schedule: {cron: "0 2 * * *"} -)``).
SCHEDULE_KEYS = ("cron", "every", "timezone", "catchup", "overlap", "input")


class ScheduleError(LittleflowError, ValueError):
    """A wrong schedule (cron, duration, time zone, name, option): one line."""


@dataclass(frozen=True, slots=True)
class Timing:
    """When a schedule's ticks fall: ``cron`` (in ``timezone``) or ``every`` whole seconds
    (counted from the Unix epoch: ``every 1h`` fires on the hour, UTC)."""

    cron: str | None = None
    every: int | None = None
    timezone: str = "UTC"

    def next_after(self, time: float) -> int:
        """The first tick strictly after ``time``."""
        if self.every is not None:
            return (math.floor(time / self.every) + 1) * self.every
        tick = self._step(math.floor(time), forward=True)
        while self._repeated(tick):
            tick = self._step(tick, forward=True)
        return tick

    def last_at(self, time: float) -> int:
        """The latest tick at or before ``time``."""
        if self.every is not None:
            return math.floor(time / self.every) * self.every
        tick = self._step(math.floor(time) + 1, forward=False)
        while self._repeated(tick):
            tick = self._step(tick, forward=False)
        return tick

    def ticks(self, after: float, count: int) -> list[int]:
        """The next ``count`` ticks strictly after ``after``."""
        found: list[int] = []
        while len(found) < count:
            after = self.next_after(after)
            found.append(after)
        return found

    def _step(self, time: int, forward: bool) -> int:
        zone = ZoneInfo(self.timezone)
        cron = croniter(self.cron, datetime.fromtimestamp(time, zone), second_at_beginning=True)
        try:
            return int(cron.get_next(float) if forward else cron.get_prev(float))
        except CroniterError:
            raise ScheduleError(f"cron {self.cron!r} never fires") from None

    def _repeated(self, tick: int) -> bool:
        """Whether ``tick`` is the second pass of a wall-clock time the clocks repeat, for a
        fixed hour (which fires on the first pass only)."""
        fields = self.cron.split()
        hour = fields[2] if len(fields) == 6 else fields[1]
        if "*" in hour:
            return False
        local = datetime.fromtimestamp(tick, ZoneInfo(self.timezone))
        return local.replace(fold=0).timestamp() != tick

    def describe(self) -> str:
        """``cron EXPR (TZ)`` or ``every N s``, for lists."""
        if self.every is not None:
            return f"every {period(self.every)}"
        return f"cron {self.cron}" + ("" if self.timezone == "UTC" else f" ({self.timezone})")


def timing(cron: str | None = None, every: Any = None, timezone: str | None = None) -> Timing:
    """A checked :class:`Timing`: exactly one of ``cron`` and ``every`` (a duration, whole
    seconds, at least 1); ``timezone`` an IANA name (default UTC; ``every`` takes none).
    Raises :class:`ScheduleError`."""
    if (cron is None) == (every is None):
        raise ScheduleError("a schedule needs --cron EXPR or --every DURATION (one of them)")
    zone = timezone or "UTC"
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ScheduleError(f"unknown time zone {zone!r} (an IANA name like Europe/Paris or UTC)") from None
    if every is not None:
        if timezone not in (None, "", "UTC"):
            raise ScheduleError("--timezone goes with --cron (--every counts seconds, whatever the zone)")
        try:
            step = seconds(every)
        except ValueError as error:
            raise ScheduleError(str(error)) from None
        if step < 1 or step != int(step):
            raise ScheduleError(f"bad --every {brief(every)}: whole seconds, at least 1s")
        return Timing(every=int(step))
    if not isinstance(cron, str) or len(cron.split()) not in (5, 6):
        raise ScheduleError(
            f"bad cron {cron!r}: 5 fields (minute hour day month weekday), or 6 with the second first"
        )
    text = " ".join(cron.split())
    if not croniter.is_valid(text, second_at_beginning=True):
        raise ScheduleError(
            f"bad cron {cron!r}: 5 fields (minute hour day month weekday), or 6 with the second first"
        )
    found = Timing(cron=text, timezone=zone)
    found.next_after(0)  # (one that never fires says so now)
    return found


def choice(value: Any, allowed: tuple[str, ...], what: str) -> str:
    """``value`` if it is one of ``allowed``, else a :class:`ScheduleError`."""
    if value not in allowed:
        raise ScheduleError(f"bad {what} {brief(value)} (one of {', '.join(allowed)})")
    return value


def check_name(name: Any) -> str:
    """``name`` if it may name a schedule, else a :class:`ScheduleError`."""
    if not isinstance(name, str) or not VALID_NAME.fullmatch(name):
        raise ScheduleError(f"bad schedule name {name!r}: 1 to 64 letters, digits, '_', '.' or '-'")
    return name


def flow_schedule(value: Any) -> dict[str, Any]:
    """A flow's ``schedule`` option, checked: ``{cron | every, timezone, catchup, overlap,
    input}`` (the last four optional). Raises :class:`ScheduleError`."""
    if not isinstance(value, dict):
        raise ScheduleError('schedule in @flow parameters must be an object (schedule: {cron: "0 2 * * *"})')
    for key in value:
        if key not in SCHEDULE_KEYS:
            raise ScheduleError(f"unknown key {key!r} in schedule (known: {', '.join(SCHEDULE_KEYS)})")
    timing(value.get("cron"), value.get("every"), value.get("timezone"))
    choice(value.get("catchup", "one"), CATCHUP, "catchup")
    choice(value.get("overlap", "allow"), OVERLAP, "overlap")
    return dict(value)


def plan(timing: Timing, tick: int, now: float, catchup: str) -> tuple[int | None, int]:
    """What to do at ``now`` for a schedule whose next tick is ``tick`` (at or before
    ``now``): ``(fire, after)``: the tick to start a workflow for now (None: none), and
    where the schedule's next tick moves once it is (the tick after ``fire``, which may be
    due already: ``all`` goes through the missed ticks one by one)."""
    last = timing.last_at(now)
    missed = last > tick or now - tick > LATE  # (more than one tick due, or the one too late)
    if not missed:
        return tick, timing.next_after(tick)
    if catchup == "all":
        fire = tick
        if timing.every is not None and (last - tick) // timing.every > MAX_CATCHUP:
            fire = last - MAX_CATCHUP * timing.every
        elif timing.every is None:
            oldest = last
            for _ in range(MAX_CATCHUP):
                earlier = timing.last_at(oldest - 1)
                if earlier < tick:
                    break
                oldest = earlier
            fire = max(tick, oldest)
        return fire, timing.next_after(fire)
    if catchup == "one" or now - last <= LATE:  # (skip: the latest, if on time, is not missed)
        return last, timing.next_after(last)
    return None, timing.next_after(now)
