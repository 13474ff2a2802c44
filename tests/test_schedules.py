"""The pure schedule logic: cron and every, time zones, DST, catchup."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from littleflow.schedules import LATE, MAX_CATCHUP, ScheduleError, flow_schedule, plan, timing

PARIS = ZoneInfo("Europe/Paris")


def at(*parts: int, zone: ZoneInfo = PARIS) -> int:
    return int(datetime(*parts, tzinfo=zone).timestamp())


def local(tick: int) -> str:
    return datetime.fromtimestamp(tick, PARIS).strftime("%Y-%m-%d %H:%M:%S%z")


def test_every_counts_from_the_epoch() -> None:
    every = timing(every="1m")
    assert every.next_after(119.5) == 120
    assert every.next_after(120) == 180
    assert every.last_at(179.9) == 120
    assert every.describe() == "every 1m"


def test_cron_with_seconds_first() -> None:
    cron = timing(cron="*/20 * * * * *")
    assert cron.ticks(at(2026, 5, 1, 12, 0, 0, zone=ZoneInfo("UTC")), 3) == [
        at(2026, 5, 1, 12, 0, s, zone=ZoneInfo("UTC")) for s in (20, 40)
    ] + [at(2026, 5, 1, 12, 1, 0, zone=ZoneInfo("UTC"))]


def test_spring_forward_fires_once_after_the_gap() -> None:
    daily = timing(cron="30 2 * * *", timezone="Europe/Paris")  # 2026-03-29: 02:00 -> 03:00
    ticks = [local(t) for t in daily.ticks(at(2026, 3, 27, 12), 3)]
    assert ticks == ["2026-03-28 02:30:00+0100", "2026-03-29 03:00:00+0200", "2026-03-30 02:30:00+0200"]


def test_fall_back_fires_a_fixed_hour_once_and_every_hour_twice() -> None:
    daily = timing(cron="30 2 * * *", timezone="Europe/Paris")  # 2026-10-25: 03:00 -> 02:00
    ticks = [local(t) for t in daily.ticks(at(2026, 10, 24, 12), 2)]
    assert ticks == ["2026-10-25 02:30:00+0200", "2026-10-26 02:30:00+0100"]
    assert daily.last_at(at(2026, 10, 25, 12)) == at(2026, 10, 25, 2, 30)
    hourly = timing(cron="0 * * * *", timezone="Europe/Paris")
    ticks = hourly.ticks(at(2026, 10, 25, 1, 30), 3)
    assert [b - a for a, b in zip(ticks, ticks[1:])] == [3600, 3600]  # 02:00+02, 02:00+01, 03:00+01


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=at(2026, 1, 1), max_value=at(2027, 1, 1)),
    st.sampled_from(["0 2 * * *", "30 2 * * *", "0 * * * *", "*/15 * * * *", "0 0 3 * * *"]),
    st.sampled_from(["Europe/Paris", "America/New_York", "Australia/Lord_Howe", "UTC"]),
)
def test_ticks_increase_and_next_and_last_agree(start: int, cron: str, zone: str) -> None:
    found = timing(cron=cron, timezone=zone)
    ticks = found.ticks(start, 4)
    assert start < ticks[0] and all(a < b for a, b in zip(ticks, ticks[1:]))
    for tick in ticks:
        assert found.last_at(tick) == tick and found.last_at(tick + 0.5) == tick
        assert (
            found.next_after(tick - 1) == tick or found.last_at(tick - 1) < found.next_after(tick - 1) <= tick
        )
    if "2" in cron.split()[1] and cron.count(" ") == 4:  # a fixed hour fires once a day, DST or not
        days = [datetime.fromtimestamp(t, ZoneInfo(zone)).date() for t in ticks]
        assert len(set(days)) == len(days)


def test_plan_on_time_and_after_downtime() -> None:
    every = timing(every="10s")
    assert plan(every, 100, 100.2, "skip") == (100, 110)
    assert plan(every, 100, 135, "all") == (100, 110)  # the missed ones one by one
    assert plan(every, 100, 135, "one") == (130, 140)  # one for all of them
    assert plan(every, 100, 135, "skip") == (130, 140)  # the latest is on time
    hourly = timing(every="1h")
    assert plan(hourly, 3600, 3600 + LATE + 5, "skip") == (None, 7200)  # too late: missed
    assert plan(hourly, 3600, 3600 + LATE + 5, "one") == (3600, 7200)
    far = 100 + 10 * (MAX_CATCHUP + 50)
    assert plan(every, 100, far, "all")[0] == far - 10 * MAX_CATCHUP
    daily = timing(cron="0 2 * * *", timezone="Europe/Paris")
    first = at(2026, 3, 1, 2)
    assert plan(daily, first, at(2026, 3, 4, 9), "all") == (first, at(2026, 3, 2, 2))
    assert plan(daily, first, at(2026, 3, 4, 9), "one") == (at(2026, 3, 4, 2), at(2026, 3, 5, 2))
    assert plan(daily, first, at(2026, 3, 4, 9), "skip") == (None, at(2026, 3, 5, 2))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "a schedule needs --cron EXPR or --every DURATION (one of them)"),
        ({"cron": "0 2 * *"}, "bad cron '0 2 * *': 5 fields"),
        ({"cron": "61 * * * *"}, "bad cron '61 * * * *'"),
        ({"cron": "0 0 30 2 *"}, "cron '0 0 30 2 *' never fires"),
        ({"cron": "0 2 * * *", "timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"every": "0.5s"}, 'bad --every "0.5s": whole seconds, at least 1s'),
        ({"every": "soon"}, 'bad duration "soon"'),
        ({"every": "1h", "timezone": "Europe/Paris"}, "--timezone goes with --cron"),
    ],
)
def test_one_line_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        timing(**kwargs)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_flow_option() -> None:
    assert flow_schedule({"cron": "0 2 * * *", "timezone": "Europe/Paris"})["cron"] == "0 2 * * *"
    with pytest.raises(ScheduleError, match="unknown key 'crn'"):
        flow_schedule({"crn": "0 2 * * *"})
    with pytest.raises(ScheduleError, match='bad overlap "wait"'):
        flow_schedule({"every": "1h", "overlap": "wait"})


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=30),
    st.sampled_from(["skip", "one", "all"]),
)
def test_firing_as_plan_says_runs_each_tick_once_in_order(gaps: list[int], catchup: str) -> None:
    """An engine that wakes up after any gaps and fires as :func:`plan` says: ticks fired only
    once they are due, each at most once, in order; with ``all``, every tick up to the last."""
    every = timing(every="5s")
    tick, now, fired = every.next_after(0), 0, []
    for gap in gaps:
        now += gap
        while tick <= now:
            fire, tick = plan(every, tick, now, catchup)
            if fire is not None:
                assert fire <= now
                fired.append(fire)
    assert fired == sorted(set(fired))
    if catchup == "all" and fired:
        assert fired == list(range(5, fired[-1] + 1, 5))
    assert tick > now
