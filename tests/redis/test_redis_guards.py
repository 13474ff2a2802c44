"""Hostile guards on a real Redis: a guard cannot stall the engine for the other workflows,
nor POST /workflows' first step (guard.py: RE2 and a time budget per evaluation)."""

from __future__ import annotations

import time

import pytest

from littleflow import guard
from littleflow.tasks import Registry

HEAVY = {"a": [[i, [i, {"b": i}]] for i in range(3000)]}  # each node's filter walks the whole input


@pytest.fixture
def tasks() -> Registry:
    registry = Registry()
    registry.add("A", lambda input: {"a": 1})
    registry.add("B", lambda input: {"b": input})
    registry.add("same", lambda input: input)
    return registry


def test_a_catastrophic_regex_fails_nothing_and_delays_nobody(started, client, tasks):
    started.services_on(tasks=tasks)
    began = time.monotonic()
    evil = client.submit('? `$[?search(@.x, "(a|aa)+$")]` A → B', {"x": "a" * 40 + "!"})
    plain = client.submit("A → B", {})
    assert client.wait(plain, timeout=30)["state"] == "finished"
    done = client.wait(evil, timeout=30)
    print(f"both done in {time.monotonic() - began:.2f} s")
    assert done["state"] == "finished" and done["output"] == {"b": {"x": "a" * 40 + "!"}}  # A skipped


def test_a_guard_over_its_budget_fails_its_step_and_the_others_go_on(started, client, tasks, monkeypatch):
    monkeypatch.setattr(guard, "BUDGET", 0.2)
    started.services_on(tasks=tasks)
    heavy = client.submit("same → ? `$[?count(@..*[?count($..*) > 0]) > 0]` B → A", HEAVY)
    plain = [client.submit("A → B", {"i": i}) for i in range(5)]
    assert all(client.wait(id, timeout=30)["state"] == "finished" for id in plain)
    failed = client.wait(heavy, timeout=30)
    assert failed["state"] == "failed"
    assert "took more than 0.2 s (the time one guard may take)" in failed["error"]["error"]


def test_a_guard_on_the_first_step_is_bounded_at_submit_too(started, client, tasks, monkeypatch):
    """The first steps are taken as the workflow is submitted (in the API's request too)."""
    monkeypatch.setattr(guard, "BUDGET", 0.2)
    started.services_on(tasks=tasks)
    began = time.monotonic()
    id = client.submit("? `$[?count(@..*[?count($..*) > 0]) > 0]` B", HEAVY)
    print(f"submitted in {time.monotonic() - began:.2f} s")
    failed = client.wait(id, timeout=30)
    assert failed["state"] == "failed" and "took more than 0.2 s" in failed["error"]["error"]
