"""Retries with exponential backoff and jitter, and timeouts (policy.py), set with
``@task(...)`` and with the ``@flow`` declaration's parameters."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from littleflow import FlowFailed, Registry, compile_flow, run_workflow, task
from littleflow.local import LocalRun
from littleflow.policy import (
    OptionError,
    Policy,
    flow_entry,
    flow_options,
    flow_parallelism,
    resolve,
    task_policy,
)
from littleflow.redis.protocol import StartTask
from littleflow.redis.store import _flow_options

pytestmark = pytest.mark.usefixtures("fresh_registry")


@pytest.fixture
def release():
    """An event that sleeping tasks wait on; set at the end so no thread lingers."""
    event = threading.Event()
    yield event
    event.set()


def flaky(failures: int, result=None):
    """A task that fails ``failures`` times, then returns ``result``; ``calls`` counts."""
    calls = []

    def function(input):
        calls.append(input)
        if len(calls) <= failures:
            raise ConnectionError(f"failure {len(calls)}")
        return result if result is not None else {"attempts": len(calls)}

    return function, calls


# -- Policy ----------------------------------------------------------------------------------
def test_policy_defaults_no_retries_no_timeout():
    policy = Policy()
    assert policy.retries == 0
    assert policy.timeout is None


@pytest.mark.parametrize("backoff", [0.5, 0.01, 2.0])
def test_delay_is_exponential_with_jitter_within_half_to_full_ceiling(backoff):
    policy = Policy(backoff=backoff, max_backoff=1000)
    for attempt in range(1, 7):
        ceiling = backoff * 2 ** (attempt - 1)
        samples = [policy.delay(attempt) for _ in range(200)]
        assert all(ceiling / 2 <= s <= ceiling for s in samples), (attempt, min(samples), max(samples))
        assert len(set(samples)) > 1  # jitter: not always the same wait


def test_delay_is_capped_by_max_backoff():
    policy = Policy(backoff=1.0, max_backoff=5.0)
    samples = [policy.delay(10) for _ in range(200)]
    assert all(2.5 <= s <= 5.0 for s in samples)


def test_from_options_ignores_none_and_converts():
    policy = Policy.from_options(retries=2, timeout=None, backoff=1)
    assert (policy.retries, policy.timeout, policy.backoff) == (2, None, 1.0)
    assert Policy.from_options(timeout=3).timeout == 3.0


@pytest.mark.parametrize(
    "options",
    [
        {"retries": -1},
        {"timeout": -0.5},
        {"backoff": -1},
        {"retries": 1.5},
        {"retries": "3"},
        {"timeout": "soon"},
        {"retries": True},
        {"retry": 3},
    ],
)
def test_bad_policy_options_are_a_clear_value_error(options):
    (key,) = options
    with pytest.raises(ValueError) as caught:
        Policy().updated(options)
    assert key in str(caught.value)


@pytest.mark.parametrize(
    "parameters",
    [
        {"retries": -2},
        {"timeout": "soon"},
        {"tasks": {"fetch": {"retry": 5}}},
        {"tasks": {"fetch": {"retries": -1}}},
        {"tasks": {"fetch": 5}},
        {"tasks": [1, 2]},
        [1, 2],
    ],
)
def test_policies_refuse_bad_flow_parameters(parameters):
    with pytest.raises(ValueError) as caught:
        flow_options(parameters)
    assert "\n" not in str(caught.value)


# -- the one rule: resolve ---------------------------------------------------------------------
SECONDS = st.one_of(st.none(), st.integers(0, 100), st.floats(0, 100))
OPTIONS = st.fixed_dictionaries(
    {}, optional={"retries": st.one_of(st.none(), st.integers(0, 5)), "timeout": SECONDS, "backoff": SECONDS}
)


def model(*layers: dict) -> dict:
    """What the documented precedence says, weakest layer first: each key from the strongest layer setting it."""
    found = {"retries": 0, "timeout": None, "backoff": 0.5}
    for layer in layers:
        found.update({k: v for k, v in (layer or {}).items() if v is not None})
    return found


@given(OPTIONS, OPTIONS, OPTIONS, OPTIONS)
def test_resolve_takes_each_key_from_the_strongest_layer(defaults, task_options, by_name, by_alias):
    policy = resolve(defaults, task_options, flow_entry({"T": by_name, "A": by_alias}, "T", "A"), "A")
    expected = model(defaults, task_options, by_name, by_alias)
    assert (policy.retries, policy.timeout, policy.backoff) == (
        expected["retries"],
        expected["timeout"],
        expected["backoff"],
    )


@given(OPTIONS, OPTIONS, OPTIONS, OPTIONS, st.booleans(), st.booleans())
def test_the_local_and_the_redis_paths_give_the_same_policy(
    defaults, task_options, by_name, by_alias, aliased, resource
):
    """local.py resolves from the flow; the Redis store sends (defaults, entry), the worker adds @task."""
    entries = {"T": by_name, **({"A": by_alias} if aliased else {})}
    text = (
        f"@flow f (- {json.dumps({**defaults, 'tasks': entries})} -)\n@task A = T\n"
        + ("A" if aliased else "T")
        + " → <x.json>"
    )
    flow = compile_flow(text)
    (node,) = [node for node in flow.nodes if node.kind == ("resource" if resource else "task")]
    local = (
        resolve(*flow_options(flow.parameters)[:1])
        if resource
        else task_policy(flow.parameters, node.name, node.alias, task_options)
    )
    sent_defaults, per_task = _flow_options(flow)
    entry = None if resource else per_task.get(node.alias) or per_task.get(node.name)
    policy = {key: value for key, value in (("defaults", sent_defaults), ("task", entry)) if value}
    message = StartTask.parse(StartTask("w", "t", 1, 1, "x", None, {}, 1, policy or None).fields())
    assert message.run_policy(None if resource else task_options) == local


def test_the_flow_entry_by_alias_wins_key_by_key_over_the_entry_by_real_name():
    entries = {"T": {"retries": 2, "timeout": 5}, "A": {"retries": 1}}
    assert flow_entry(entries, "T", "A") == {"retries": 1, "timeout": 5}
    assert flow_entry(entries, "T") == entries["T"]
    assert flow_entry(entries, "U", "A") == {"retries": 1}
    assert task_policy({"tasks": entries}, "T", "A", {"timeout": 9, "backoff": 0}) == Policy(1, 5.0, 0.0)


def test_the_issue_12_example_gets_the_timeout_of_the_python_task():
    policy = task_policy({"tasks": {"A": {"retries": 2}}}, "T", "A", {"timeout": 5})
    assert (policy.retries, policy.timeout) == (2, 5.0)


def test_a_resource_gets_the_flow_defaults_only():
    defaults, _ = flow_options({"retries": 1, "timeout": 3, "tasks": {"T": {"retries": 4}}})
    assert resolve(defaults) == Policy(retries=1, timeout=3.0)


# -- parallelism -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "parameters, expected",
    [
        (None, None),
        ({}, None),
        ({"retries": 1}, None),
        ({"parallelism": 1}, 1),
        ({"parallelism": 8.0}, 8),
        ({"parallelism": 10**6}, 10**6),
    ],
)
def test_flow_parallelism(parameters, expected):
    assert flow_parallelism(parameters) == expected
    flow_options(parameters)  # a top-level key of @flow


@pytest.mark.parametrize("value", [0, -1, 1.5, "2", True, {"n": 2}, [2], float("inf"), float("nan")])
def test_a_bad_parallelism_is_a_one_line_value_error(value):
    with pytest.raises(
        ValueError, match=r"^parallelism in @flow parameters must be a whole number ≥ 1, not "
    ):
        flow_parallelism({"parallelism": value})
    with pytest.raises(ValueError) as caught:
        flow_options({"parallelism": value})
    assert "\n" not in str(caught.value)


def test_parallelism_is_no_task_policy_key():
    with pytest.raises(ValueError, match="unknown option 'parallelism' in @flow parameters for task T"):
        flow_options({"tasks": {"T": {"parallelism": 2}}})
    with pytest.raises(ValueError, match="unknown option 'parallelism' in @task options"):
        resolve({}, {"parallelism": 2})


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_policy_numbers_must_be_finite(value):
    with pytest.raises(ValueError, match="must be a number ≥ 0"):
        Policy().updated({"timeout": value})


# -- retries when running ------------------------------------------------------------------------
def test_a_task_failing_twice_then_succeeding_with_two_retries_succeeds_and_the_trace_shows_it():
    function, calls = flaky(2)
    registry = Registry()
    registry.task("fetch", retries=2, backoff=0.01)(function)
    run = LocalRun(compile_flow("fetch"), registry, trace=True)
    state = run.run({"url": "x"})
    assert state.status == "finished"
    assert state.output == {"attempts": 3}
    assert calls == [{"url": "x"}] * 3
    attempts = [(t["name"], t["attempt"], t["status"]) for t in run.trace]
    assert attempts == [("fetch", 1, "failed"), ("fetch", 2, "failed"), ("fetch", 3, "done")]
    assert "failure 1" in run.trace[0]["error"] and "failure 2" in run.trace[1]["error"]
    assert run.trace[2]["error"] is None
    for entry in run.trace:
        assert entry["node"] == 1
        assert entry["start"] <= entry["end"]


def test_a_task_failing_more_often_than_its_retries_fails_with_its_last_error():
    function, calls = flaky(5)

    @task(retries=2, backoff=0.01)
    def fetch(input):
        return function(input)

    with pytest.raises(FlowFailed) as caught:
        run_workflow("fetch")
    assert len(calls) == 3
    assert "failure 3" in caught.value.error
    assert isinstance(caught.value.__cause__, ConnectionError)


def test_retries_from_the_task_decorator():
    function, calls = flaky(1)

    @task(retries=1, backoff=0.01)
    def fetch(input):
        return function(input)

    assert run_workflow("fetch") == {"attempts": 2}


def test_retries_from_the_flow_declaration_apply_to_every_task():
    first, first_calls = flaky(2, {"first": True})
    second, second_calls = flaky(1, {"second": True})
    flow = "@flow robust (- {retries: 2, backoff: 0.01} -)\nfirst → second"
    assert run_workflow(flow, {"first": first, "second": second}) == {"second": True}
    assert (len(first_calls), len(second_calls)) == (3, 2)


def test_the_flow_declaration_in_yaml_block_form():
    function, calls = flaky(2)
    flow = "@flow robust (-\nretries: 1\nbackoff: 0.01\ntasks:\n  fetch: {retries: 2}\n-)\nfetch"
    assert run_workflow(flow, {"fetch": function}) == {"attempts": 3}


def test_the_flow_entry_for_a_task_wins_over_the_task_decorator():
    function, calls = flaky(5)

    @task(retries=3, backoff=0.01)
    def fetch(input):
        return function(input)

    with pytest.raises(FlowFailed):
        run_workflow("@flow f (- {tasks: {fetch: {retries: 1}}} -)\nfetch")
    assert len(calls) == 2


def test_the_task_decorator_wins_over_the_flow_defaults():
    function, calls = flaky(5)

    @task(retries=1, backoff=0.01)
    def fetch(input):
        return function(input)

    with pytest.raises(FlowFailed):
        run_workflow("@flow f (- {retries: 3, backoff: 0.01} -)\nfetch")
    assert len(calls) == 2


def test_an_explicit_zero_in_the_task_decorator_wins_over_the_flow_defaults():
    function, calls = flaky(5)

    @task(retries=0)
    def fetch(input):
        return function(input)

    with pytest.raises(FlowFailed):
        run_workflow("@flow f (- {retries: 3, backoff: 0.01} -)\nfetch")
    assert len(calls) == 1


def test_the_flow_entry_for_one_task_leaves_the_others_on_the_defaults():
    fetch, fetch_calls = flaky(3, {"fetched": 1})
    store, store_calls = flaky(5)
    flow = "@flow f (- {retries: 1, backoff: 0.01, tasks: {fetch: {retries: 3}}} -)\nfetch → store"
    with pytest.raises(FlowFailed) as caught:
        run_workflow(flow, {"fetch": fetch, "store": store})
    assert caught.value.task == "store"
    assert (len(fetch_calls), len(store_calls)) == (4, 2)


def test_locals_keeps_the_options_of_decorated_functions():
    function, calls = flaky(2)

    @task(retries=2, backoff=0.01)
    def fetch(input):
        return function(input)

    assert run_workflow("fetch", locals()) == {"attempts": 3}


# -- bad options ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("options", [{"retries": -1}, {"timeout": -1}, {"backoff": -0.1}, {"retries": 0.5}])
def test_bad_task_decorator_options_are_a_value_error(options):
    with pytest.raises(ValueError):
        task(**options)(lambda input: None)


@pytest.mark.parametrize(
    "declaration",
    [
        "(- {retries: -1} -)",
        "(- {timeout: -5} -)",
        "(- {backoff: fast} -)",
        "(- {tasks: {A: {retries: -1}}} -)",
        "(- {tasks: {A: {retry: 2}}} -)",
        "(- {tasks: {A: 3}} -)",
    ],
)
def test_bad_flow_declaration_options_are_a_value_error_before_anything_runs(declaration):
    ran = []
    with pytest.raises(ValueError) as caught:
        run_workflow(f"@flow f {declaration}\nA", {"A": ran.append})
    assert ran == []
    assert str(caught.value)


def test_an_unknown_key_in_the_flow_declaration_is_a_value_error():
    ran = []
    with pytest.raises(ValueError) as caught:
        run_workflow("@flow f (- {retires: 2} -)\nA", {"A": ran.append})
    assert "retires" in str(caught.value)
    assert ran == []


# -- timeouts ----------------------------------------------------------------------------------------------
def test_a_sync_task_running_past_its_timeout_fails_with_timed_out(release):
    after_ran = []

    @task(timeout=0.1)
    def slow(input):
        release.wait(10)

    def after(input):
        after_ran.append(input)

    with pytest.raises(FlowFailed) as caught:
        run_workflow("slow → after", {"after": after})
    assert caught.value.task == "slow"
    assert "timed out" in caught.value.error
    assert after_ran == []


def test_an_async_task_running_past_its_timeout_is_cancelled():
    seen = {}

    @task(timeout=0.1)
    async def slow(input):
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen["cancelled"] = True
            raise
        seen["finished"] = True

    with pytest.raises(FlowFailed) as caught:
        run_workflow("slow")
    assert "timed out" in caught.value.error
    assert seen == {"cancelled": True}


def test_timeout_from_the_flow_declaration(release):
    def slow(input):
        release.wait(10)

    with pytest.raises(FlowFailed) as caught:
        run_workflow("@flow f (- {timeout: 0.1} -)\nslow", {"slow": slow})
    assert "timed out" in caught.value.error


def test_timeout_from_the_flow_entry_for_the_task(release):
    def slow(input):
        release.wait(10)

    def quick(input):
        return {"quick": True}

    with pytest.raises(FlowFailed) as caught:
        run_workflow("@flow f (- {tasks: {slow: {timeout: 0.1}}} -)\nquick → slow", locals())
    assert caught.value.task == "slow"
    assert "timed out" in caught.value.error


def test_a_task_within_its_timeout_succeeds():
    @task(timeout=5)
    def quick(input):
        return {"ok": True}

    @task(timeout=5)
    async def aquick(input):
        await asyncio.sleep(0)
        return {**input, "async": True}

    assert run_workflow("quick → aquick") == {"ok": True, "async": True}


def test_a_timed_out_attempt_is_retried(release):
    calls = []

    @task(timeout=0.1, retries=1, backoff=0.01)
    def sometimes_slow(input):
        calls.append(1)
        if len(calls) == 1:
            release.wait(10)
        return {"attempt": len(calls)}

    assert run_workflow("sometimes_slow") == {"attempt": 2}


def test_timeouts_and_retries_with_concurrency(release):
    function, calls = flaky(1, {"flaky": True})

    @task(timeout=0.1)
    def slow(input):
        release.wait(10)

    with pytest.raises(FlowFailed) as caught:
        run_workflow(
            "@flow f (- {tasks: {flaky: {retries: 1, backoff: 0.01}}} -)\nflaky\nslow",
            {"flaky": function},
            concurrency=2,
        )
    assert caught.value.task == "slow"
    assert "timed out" in caught.value.error
    assert len(calls) == 2


def test_flow_task_options_apply_to_an_alias_and_a_name_of_no_task_is_an_error():
    calls = []

    def flaky(input):
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("not yet")
        return {"ok": True}

    text = "@flow f (- {backoff: 0.01, tasks: {X: {retries: 2}}} -)\n@task X = A\nX"
    assert run_workflow(text, {"A": flaky}) == {"ok": True} and len(calls) == 3
    with pytest.raises(ValueError, match="Typo"):
        run_workflow("@flow f (- {tasks: {Typo: {retries: 2}}} -)\nA", {"A": flaky})


# -- where a wrong option is (for littleflow.check.validate to point at it) ------------------------
@pytest.mark.parametrize(
    "parameters, path",
    [
        ({"retrys": 1}, ("retrys",)),
        ({"timeout": "soon"}, ("timeout",)),
        ({"parallelism": 0}, ("parallelism",)),
        ({"tasks": [1]}, ("tasks",)),
        ({"tasks": {"T": 3}}, ("tasks", "T")),
        ({"tasks": {"X": {}}}, ("tasks", "X")),
        ({"tasks": {"T": {"retries": 1.5}}}, ("tasks", "T", "retries")),
        ({"tasks": {"T": {"parallelism": 2}}}, ("tasks", "T", "parallelism")),
        ([1], ()),
    ],
)
def test_a_wrong_option_says_where_it_is(parameters, path):
    with pytest.raises(OptionError) as caught:
        flow_options(parameters, {"T"})
    assert caught.value.path == path and isinstance(caught.value, ValueError)


def test_a_misspelt_option_or_task_gets_a_suggestion():
    with pytest.raises(
        OptionError,
        match=r"\(known: retries, timeout, backoff, tasks, parallelism, schedule; "
        r"did you mean 'retries'\?\)$",
    ):
        flow_options({"retrys": 1})
    with pytest.raises(OptionError, match=r"names no task of this flow; did you mean 'fetch'\?$"):
        flow_options({"tasks": {"fecth": {}}}, {"fetch", "store"})
    with pytest.raises(OptionError, match=r"\(known: retries, timeout, backoff\)$"):
        Policy().updated({"zzz": 1})
