"""Retry control (calling.py, tasks.py): ``retry_on``, ``littleflow.Fail``, and calls a task's
signature refuses, which fail at once; run locally, sequential and threaded."""

from __future__ import annotations

import asyncio

import pytest

import littleflow
from littleflow import Fail, FlowFailed, run_workflow
from littleflow.calling import TaskTimeout
from littleflow.tasks import CallError, Registry, TaskError


def failing(calls: list, error: BaseException):
    def function(input):
        calls.append(1)
        raise error

    return function


@pytest.mark.parametrize("concurrency", [1, 3])
@pytest.mark.parametrize(
    "error, tries",
    [
        (OSError("disk away"), 4),
        (ConnectionResetError("reset"), 4),
        (ValueError("bad value"), 1),
        (KeyError("k"), 1),
    ],
)
def test_only_errors_of_the_retry_on_types_are_retried(error, tries, concurrency):
    calls: list = []
    registry = Registry()
    registry.task("fetch", retries=3, backoff=0, retry_on=(IOError,))(failing(calls, error))
    with pytest.raises(FlowFailed) as failed:
        run_workflow("fetch", registry, concurrency=concurrency)
    assert len(calls) == tries
    assert failed.value.__cause__ is error


def test_retry_on_takes_one_type_too():
    calls: list = []
    registry = Registry()
    registry.task("fetch", retries=2, backoff=0, retry_on=ValueError)(failing(calls, ValueError("no")))
    with pytest.raises(FlowFailed):
        run_workflow("fetch", registry)
    assert len(calls) == 3


def test_without_retry_on_every_error_is_retried():
    calls: list = []
    registry = Registry()
    registry.task("fetch", retries=2, backoff=0)(failing(calls, ValueError("no")))
    with pytest.raises(FlowFailed):
        run_workflow("fetch", registry)
    assert len(calls) == 3


def test_the_flows_retries_apply_with_the_functions_retry_on():
    calls: list = []
    registry = Registry()
    registry.task("fetch", retry_on=(IOError,))(failing(calls, KeyError("k")))
    with pytest.raises(FlowFailed):
        run_workflow("@flow f (- {retries: 3, backoff: 0} -)\nfetch", registry)
    assert len(calls) == 1


def test_a_timeout_is_a_timeout_error_for_retry_on():
    assert issubclass(TaskTimeout, TimeoutError)
    calls: list = []
    registry = Registry()

    @registry.task("slow", retries=1, backoff=0, timeout=0.05, retry_on=(TimeoutError,))
    async def slow(input):
        calls.append(1)
        await asyncio.sleep(5)

    with pytest.raises(FlowFailed, match="timed out after 0.05 s"):
        run_workflow("slow", registry)
    assert len(calls) == 2


@pytest.mark.parametrize("bad", ["IOError", (IOError, "x"), (int,), 3])
def test_retry_on_must_be_exception_types(bad):
    with pytest.raises(TypeError, match="retry_on must be an exception type or a tuple of them"):
        Registry().task("t", retry_on=bad)


@pytest.mark.parametrize("concurrency", [1, 2])
def test_fail_fails_at_once_whatever_the_retries(concurrency):
    calls: list = []
    registry = Registry()

    @registry.task("check", retries=5, backoff=0)
    def check(input):
        calls.append(1)
        raise Fail("the input has no id")

    with pytest.raises(FlowFailed) as failed:
        run_workflow("check", registry, concurrency=concurrency)
    assert len(calls) == 1
    assert failed.value.error == "the input has no id"  # its message alone is the error
    assert littleflow.Fail is Fail and "Fail" in littleflow.__all__


def test_fail_in_an_async_task_fails_at_once():
    calls: list = []
    registry = Registry()

    @registry.task("check", retries=5, backoff=0, retry_on=(Exception,))
    async def check(input):
        calls.append(1)
        raise Fail("no")

    with pytest.raises(FlowFailed):
        run_workflow("check", registry)
    assert len(calls) == 1


def test_a_subclass_of_fail_fails_at_once_too():
    class Refused(Fail):
        pass

    calls: list = []
    registry = Registry()
    registry.task("t", retries=3, backoff=0)(failing(calls, Refused("nope")))
    with pytest.raises(FlowFailed):
        run_workflow("t", registry)
    assert len(calls) == 1


# -- calls the signature refuses ---------------------------------------------------------------

CALLS = {  # flow text, what the error says
    "unknown keyword": (
        "peel (- knif: big -)",
        "peel(input, knife='small') cannot take the parameters knif: "
        "got an unexpected keyword argument 'knif'",
    ),
    "missing keyword": (
        "cut",
        "cut(input, *, size) cannot take the input alone (the flow gives it no "
        "parameters): missing a required argument: 'size'",
    ),
    "a value it has no place for": (
        "weigh ([1, 2])",
        "weigh(input) cannot take the input and the parameter [1, 2]: too many positional arguments",
    ),
}


@pytest.mark.parametrize("concurrency", [1, 2])
@pytest.mark.parametrize("case", CALLS, ids=list(CALLS))
def test_a_call_the_signature_refuses_fails_at_once_and_says_why(case, concurrency):
    calls: list = []
    registry = Registry()

    @registry.task("peel", retries=3, backoff=0)
    def peel(input, knife="small"):
        calls.append(1)

    @registry.task("cut", retries=3, backoff=0)
    async def cut(input, *, size):
        calls.append(1)

    @registry.task("weigh", retries=3, backoff=0)
    def weigh(input):
        calls.append(1)

    text, expected = CALLS[case]
    with pytest.raises(FlowFailed) as failed:
        run_workflow(text, registry, concurrency=concurrency)
    assert failed.value.error == expected
    assert isinstance(failed.value.__cause__, CallError) and isinstance(failed.value.__cause__, TaskError)
    assert calls == []


def test_a_type_error_from_inside_the_task_is_retried_as_any_error():
    calls: list = []
    registry = Registry()

    @registry.task("add", retries=2, backoff=0)
    def add(input, amount=1):
        calls.append(1)
        return input + amount  # (a dict and an int)

    with pytest.raises(FlowFailed, match="TypeError: unsupported operand"):
        run_workflow("add (- amount: 2 -)", registry, input={})
    assert len(calls) == 3


def test_a_refused_call_on_the_fast_path_is_reported_too():
    def two(input, other):
        pass

    with pytest.raises(
        FlowFailed, match=r"task two at 1:1 failed: two\(input, other\) cannot take the input alone"
    ):
        run_workflow("two", {"two": two})
