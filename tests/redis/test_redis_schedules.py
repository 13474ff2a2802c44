"""Schedules on a real Redis (one server and a cluster): stored, changed, fired with a
clock the test gives; a tick makes one workflow however often it is fired, catchup and
overlap do what they say, a schedule's workflows carry it and are listed by it (archived
and restored too), and Client.schedules does what the CLI and the API do with them."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from rediscluster import on_server_and_cluster

from littleflow.errors import FlowError, LittleflowError
from littleflow.local import load_workflow
from littleflow.redis import ScheduleExists
from littleflow.redis.client import Client
from littleflow.redis.schedules import Schedules, UnknownSchedule, tick_key
from littleflow.redis.store import InvalidArchive
from littleflow.schedules import ScheduleError

pytestmark = on_server_and_cluster

T0 = 1_800_000_000  # a whole minute


def add(schedules: Schedules, name: str = "s", text: str = "@flow ticking\nA", **options) -> dict:
    options.setdefault("every", "10s")
    return schedules.add(name, load_workflow(text)[0], text, now=T0 - 1, **options)


@pytest.fixture
def schedules(client: Client) -> Schedules:
    return Schedules(client.store)


def test_a_schedule_is_stored_shown_paused_resumed_and_deleted(client, schedules):
    record = add(schedules, input={"n": 1})
    assert record["next"] == T0 and record["catchup"] == "one" and record["overlap"] == "allow"
    shown = schedules.show(schedules.get("s"), 3)
    assert shown["when"] == "every 10s" and shown["ticks"] == [T0, T0 + 10, T0 + 20] and "text" not in shown
    with pytest.raises(ScheduleExists, match="^schedule s exists; delete it first$"):
        add(schedules)
    assert schedules.pause("s")["paused"] is True
    assert schedules.fire(T0 + 5) == 0 and client.list() == []
    assert schedules.resume("s", now=T0 + 25)["next"] == T0 + 30  # (ticks while paused are not run)
    schedules.delete("s")
    assert schedules.all() == []
    with pytest.raises(UnknownSchedule, match="no schedule s"):
        schedules.pause("s")


def test_a_tick_fired_by_many_makes_one_workflow(client, redis_url):
    add(Schedules(client.store), input={"n": 1})
    clients = [Client(redis_url) for _ in range(6)]
    barrier = threading.Barrier(len(clients))

    def fire(other: Client) -> int:
        barrier.wait()
        return Schedules(other.store).fire(T0 + 0.5)

    with ThreadPoolExecutor(len(clients)) as pool:
        list(pool.map(fire, clients))
    found = client.list(schedule="s")
    assert len(found) == 1
    document = client.status(found[0]["id"])
    assert document["schedule"] == "s" and document["tick"] == T0 and document["input"] == {"n": 1}
    record = Schedules(client.store).get("s")
    assert record["next"] == T0 + 10 and record["recent"][0]["id"] == found[0]["id"]


def test_a_tick_half_fired_is_finished_with_the_same_workflow(client, schedules):
    """An engine killed after it created a tick's workflow, before it moved the schedule on:
    the next one to fire the tick finds that workflow, by its key or (the key expired) by
    its id, and creates none."""
    record = add(schedules)
    id = schedules._create(record, T0, key=tick_key("s", T0), id=schedules.tick_id(record, T0))
    assert schedules.fire(T0 + 1) == 1
    assert [w["id"] for w in client.list()] == [id] and schedules.get("s")["recent"][0]["id"] == id
    record = schedules.get("s")
    later = schedules._create(
        record, T0 + 10, key=tick_key("s", T0 + 10), id=schedules.tick_id(record, T0 + 10)
    )
    client.redis.delete(client.keys.idempotency(tick_key("s", T0 + 10)))
    schedules.fire(T0 + 11)
    assert sorted(w["id"] for w in client.list()) == sorted([id, later])
    assert schedules.get("s")["next"] == T0 + 20


def test_a_schedule_added_again_under_its_name_gets_new_ids(client, schedules):
    first = add(schedules)
    again = schedules.add("s", load_workflow("A")[0], "A", every="10s", now=T0 + 0.5, replace=True)
    assert schedules.tick_id(first, T0 + 10) != schedules.tick_id(again, T0 + 10)


@pytest.mark.parametrize(
    ("catchup", "ticks"), [("all", [T0, T0 + 10, T0 + 20, T0 + 30]), ("one", [T0 + 30]), ("skip", [T0 + 30])]
)
def test_catchup_after_a_downtime(client, schedules, catchup, ticks):
    add(schedules, catchup=catchup)
    for _ in range(6):
        schedules.fire(T0 + 35)
    assert sorted(client.status(w["id"])["tick"] for w in client.list()) == ticks
    assert schedules.get("s")["next"] == T0 + 40


def test_skip_runs_nothing_for_a_tick_too_late(client, schedules):
    add(schedules, every="1h", catchup="skip")
    schedules.fire(T0 + 65)  # (the first tick, 65 s late)
    record = schedules.get("s")
    assert client.list() == [] and record["skipped"] == {"tick": T0, "reason": "missed"}
    assert record["next"] == T0 + 3600


@pytest.mark.parametrize("overlap", ["allow", "skip", "terminate"])
def test_overlap_with_a_run_still_running(client, schedules, overlap):
    add(schedules, text="@flow slow\nwait:event (- event: never -)", overlap=overlap)
    schedules.fire(T0)
    first = client.list()[0]["id"]
    schedules.fire(T0 + 10)
    found = client.list()
    if overlap == "skip":
        assert [w["id"] for w in found] == [first] and schedules.get("s")["skipped"] == {
            "tick": T0 + 10,
            "reason": "overlap",
        }
    else:
        assert len(found) == 2
        assert client.status(first)["state"] == ("terminated" if overlap == "terminate" else "running")


def test_run_now_and_the_list_by_schedule(client, schedules):
    add(schedules, "a")
    add(schedules, "b")
    other = client.submit("A")
    ran = schedules.run("a", now=T0 + 3)
    schedules.fire(T0)
    assert client.status(ran)["tick"] == T0 + 3 and schedules.get("a")["recent"][-1]["manual"] is True
    assert ran in {w["id"] for w in client.list(schedule="a")}
    assert len(client.list(schedule="a")) == 2 and len(client.list(schedule="b")) == 1
    assert other not in {w["id"] for w in client.list(schedule="a") + client.list(schedule="b")}
    assert client.list(schedule="a", state="finished") == []
    assert len(client.list(schedule="a", state="running")) == 2
    page = client.page(schedule="a", count=1, newest=True)
    assert page.total == 2 and len(page.workflows) == 1
    assert "schedule" not in client.status(other)
    for workflow in client.list(schedule="a"):  # deleting a workflow takes it out of its schedule's index
        client.terminate(workflow["id"])
        client.delete(workflow["id"])
    assert client.list(schedule="a") == [] and client.page(schedule="a").total == 0


def test_the_flow_may_carry_its_schedule(client, schedules):
    text = '@flow nightly (- schedule: {cron: "0 2 * * *", timezone: Europe/Paris, input: {x: 1}} -)\nA'
    record = schedules.add("n", load_workflow(text)[0], text)
    assert (
        record["cron"] == "0 2 * * *" and record["timezone"] == "Europe/Paris" and record["input"] == {"x": 1}
    )
    with pytest.raises(ScheduleError, match="give --cron EXPR or --every DURATION"):
        schedules.add("m", load_workflow("A")[0], "A")


# -- archives keep the schedule and the tick ---------------------------------------------------
def scheduled(client: Client, schedules: Schedules) -> str:
    """A workflow of schedule s at tick T0 (running: no engine takes its task)."""
    add(schedules)
    return schedules.run("s", now=T0)


def test_a_scheduled_workflow_is_archived_and_restored_with_its_schedule_and_tick(client, schedules):
    from jsonschema import Draft202012Validator

    from littleflow.redis.archive import SCHEMA

    id = scheduled(client, schedules)
    archive = client.archive(id)
    assert (archive["schedule"], archive["tick"]) == ("s", T0)
    Draft202012Validator(SCHEMA).validate(archive)
    client.terminate(id)
    client.delete(id)
    assert client.list(schedule="s") == []
    assert client.restore(archive) == id
    document = client.status(id)
    assert (document["schedule"], document["tick"], document["state"]) == ("s", T0, "running")
    assert [w["id"] for w in client.list(schedule="s")] == [id]
    assert [w["id"] for w in client.list(schedule="s", state="running")] == [id]
    assert client.page(schedule="s").total == 1
    assert client.restore(archive, replace=True) == id  # (once in its schedule's index, not twice)
    assert client.page(schedule="s").total == 1 and client.archive(id)["tick"] == T0


def test_an_archive_without_schedule_and_tick_restores(client, schedules):
    """As archives written before they were kept: restored over the scheduled workflow, the
    workflow is no longer its schedule's."""
    id = scheduled(client, schedules)
    archive = client.archive(id)
    del archive["schedule"], archive["tick"]
    assert client.restore(archive, replace=True) == id
    assert "schedule" not in client.status(id) and client.list(schedule="s") == []
    assert client.page(schedule="s").total == 0 and client.archive(id)["schedule"] is None
    unscheduled = client.archive(client.submit("A"))
    assert (unscheduled["schedule"], unscheduled["tick"]) == (None, None)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"schedule": "a/b"}, "at archive.schedule: bad schedule name 'a/b'"),
        ({"schedule": "x" * 65}, "at archive.schedule: bad schedule name"),
        ({"schedule": ""}, "at archive.schedule: bad schedule name ''"),
        ({"schedule": 5}, "at archive.schedule: Input should be a valid string"),
        ({"tick": -1}, "at archive.tick: Input should be greater than or equal to 0"),
        ({"tick": "1800000000"}, "at archive.tick: Input should be a valid integer"),
        ({"tick": 1.5}, "at archive.tick: Input should be a valid integer"),
        ({"tick": 10**12}, "at archive.tick: Input should be less than or equal to"),
        ({"tick": None}, "its schedule and tick go together"),
        ({"schedule": None}, "its schedule and tick go together"),
    ],
)
def test_a_bad_schedule_or_tick_in_an_archive_is_refused_with_one_line(client, schedules, change, says):
    id = scheduled(client, schedules)
    archive = {**client.archive(id), **change}
    client.terminate(id)
    client.delete(id)
    with pytest.raises(InvalidArchive) as caught:
        client.restore(archive)
    assert "\n" not in str(caught.value) and says in str(caught.value), str(caught.value)
    assert client.list() == [] and client.list(schedule="s") == []


# -- Client.schedules ----------------------------------------------------------------------------
def test_client_schedules_adds_lists_shows_pauses_resumes_runs_and_deletes(client, tmp_path):
    import littleflow.redis

    assert littleflow.redis.UnknownSchedule is UnknownSchedule
    flow = tmp_path / "beat.flow"
    flow.write_text("@flow beat\nbeat\n")
    made = client.schedules.add("beat", flow, {"n": 7}, every="1h", overlap="skip")
    assert (made["name"], made["flow"], made["when"], made["overlap"]) == ("beat", "beat", "every 1h", "skip")
    assert len(made["ticks"]) == 5 and made["ticks"][1] - made["ticks"][0] == 3600 and "text" not in made
    assert Schedules(client.store).get("beat")["base"] == str(tmp_path)  # (the flow file's directory)
    nightly = '@flow nightly (- schedule: {cron: "0 2 * * *", timezone: Europe/Paris, input: {x: 1}} -)\nA'
    night = client.schedules.add("night", nightly)
    assert (night["cron"], night["timezone"], night["input"]) == ("0 2 * * *", "Europe/Paris", {"x": 1})
    assert [s["name"] for s in client.schedules.list(ticks=2)] == ["beat", "night"]
    assert all(len(s["ticks"]) == 2 for s in client.schedules.list(ticks=2))
    assert client.schedules.pause("beat")["paused"] is True and client.schedules.show("beat")["ticks"] == []
    id = client.schedules.run("beat")
    document = client.status(id)
    assert (document["schedule"], document["input"]) == ("beat", {"n": 7})
    shown = client.schedules.show("beat", ticks=1)
    assert shown["recent"][0]["id"] == id and shown["recent"][0]["state"] == "running"
    assert client.schedules.resume("beat")["paused"] is False
    client.schedules.delete("beat")
    assert [s["name"] for s in client.schedules.list()] == ["night"] and client.status(id)[
        "schedule"
    ] == "beat"
    for act in (client.schedules.show, client.schedules.pause, client.schedules.run, client.schedules.delete):
        with pytest.raises(UnknownSchedule, match="^no schedule beat$") as caught:
            act("beat")
        assert isinstance(caught.value, LookupError)


@pytest.mark.parametrize(
    ("workflow", "options", "error", "says"),
    [
        ("A", {"cron": "0 2 * *"}, ScheduleError, "bad cron '0 2 * *'"),
        ("A", {"every": "1s", "timezone": "Europe/Paris"}, ScheduleError, "--timezone goes with --cron"),
        ("A", {"cron": "0 2 * * *", "timezone": "Mars/Olympus"}, ScheduleError, "unknown time zone"),
        ("A", {}, ScheduleError, "give --cron EXPR or --every DURATION"),
        ("A", {"every": "1s", "catchup": "some"}, ScheduleError, "bad --catchup"),
        ("A", {"every": "1s", "name": "a b"}, ScheduleError, "bad schedule name 'a b'"),
        ("A", {"every": "1s", "input": float("nan")}, ValueError, "the input"),
        ("A →", {"every": "1s"}, FlowError, "1:"),
        (load_workflow("A")[0], {"every": "1s"}, ScheduleError, "a compiled Flow needs its text"),
    ],
)
def test_client_schedules_refuses_what_is_wrong_with_one_line(client, workflow, options, error, says):
    options = dict(options)
    name = options.pop("name", "s")
    with pytest.raises(error) as caught:
        client.schedules.add(name, workflow, **options)
    assert isinstance(caught.value, LittleflowError) or error is ValueError
    assert says in str(caught.value) and "\n" not in str(caught.value)
    assert client.schedules.list() == []
    client.schedules.add("s", "A", every="1h")
    with pytest.raises(ScheduleExists, match="^schedule s exists; delete it first$"):
        client.schedules.add("s", "A", every="1h")
    assert client.schedules.add("s", "B", every="2h", replace=True)["when"] == "every 2h"


def test_a_tick_prepared_ahead_is_created_at_its_tick_not_before(client, schedules):
    """An engine prepares a tick's workflows ahead and sends them at the tick: nothing of
    them is in Redis before it, the first task is queued after it, and they say the tick."""
    tick = int(time.time()) + 2
    schedules.add("soon", load_workflow("A")[0], "A", every="1s", now=tick - 0.5)
    assert schedules.upcoming()[0] == tick
    when = schedules.upcoming()[1]
    assert tick - 1.0 <= when < tick  # (ahead by what preparing took last time, within bounds)
    done = threading.Event()
    fired = threading.Thread(target=lambda: (schedules.fire(tick, hold=True), done.set()))
    fired.start()
    time.sleep(0.5)
    assert not done.is_set() and client.list(schedule="soon") == []  # held until its tick
    fired.join(5)
    (workflow,) = client.list(schedule="soon")
    assert workflow["created"] == tick
    ((entry, fields),) = client.redis.xrange(client.keys.of(workflow["id"]).stream("A"))
    assert fields["workflow"] == workflow["id"] and int(entry.split("-")[0]) >= tick * 1000
    assert schedules.get("soon")["next"] == tick + 1
