"""Time budgets for Python work on hostile input (budget.py)."""

import sys
import time

import pytest

from littleflow.budget import OverBudget, limit


def spin(calls: int = 10**9) -> int:
    total = 0
    for number in range(calls):
        total += abs(
            number
        )  # a C call: the budget must still end the loop through the Python frames around it
        total += _step(number)
    return total


def _step(number: int) -> int:
    return number & 1


def forever() -> None:
    def items():
        while True:
            yield _step(1)

    for _ in items():
        pass


@pytest.mark.parametrize("work", [spin, forever])
def test_work_past_its_budget_is_stopped_from_within(work):
    started = time.monotonic()
    with pytest.raises(OverBudget, match="spinning took more than 0.1 s"):
        with limit(0.1, "spinning"):
            work()
    assert time.monotonic() - started < 5  # stopped, not run to its end (it never ends)
    assert sys.gettrace() is None  # the hook is gone


def test_work_within_its_budget_is_left_alone():
    with limit(5, "spinning"):
        assert spin(1000) == sum(range(1000)) + 500


def test_an_overrun_swallowed_inside_is_still_over_budget():
    def careless() -> None:
        try:
            spin()
        except BaseException:  # noqa: BLE001 - what careless code does
            pass

    with pytest.raises(OverBudget):
        with limit(0.1, "careless work"):
            careless()


def test_code_that_catches_every_exception_lets_an_overrun_through():
    reached = []

    def guarded() -> None:
        try:
            spin()
        except Exception:  # noqa: BLE001 - as the standard library's warnings do
            reached.append("swallowed")

    with pytest.raises(OverBudget):
        with limit(0.1, "guarded work"):
            guarded()
    assert reached == []


def test_an_overrun_turned_into_another_error_is_still_over_budget():
    def wrapping() -> None:
        try:
            spin()
        except OverBudget as error:
            raise ValueError("something else") from error

    with pytest.raises(OverBudget):
        with limit(0.1, "wrapping work"):
            wrapping()


def test_budgets_nest_and_the_nearest_deadline_wins():
    with pytest.raises(OverBudget, match="outer took"):
        with limit(0.1, "outer"):
            with limit(60, "inner"):
                spin()
    with pytest.raises(OverBudget, match="inner took"):
        with limit(60, "outer"):
            with limit(0.1, "inner"):
                spin()
        pytest.fail("the inner overrun ends the outer block too")


class Finalized:
    def __del__(self) -> None:
        _step(0)  # a finalizer runs wherever its object is dropped: an exception here would be lost


def closing():
    try:
        yield 1
    finally:
        _step(0)  # runs as the generator is dropped: an exception raised here is only printed


def drop_finalized() -> None:
    Finalized()  # dropped at once


def drop_generators() -> None:
    for _ in range(1000):  # the overrun is met in a finally run as a generator is dropped, and lost
        dropped = closing()
        next(dropped)
        del dropped


def overrun_reached_by(side_work, monkeypatch) -> tuple[list[str], list]:
    """Run ``side_work`` then a call of the work itself, over and over (at most 5 s), under a
    0.05 s budget; returns where the overrun was raised and what was only printed."""
    lost, seen = [], []
    monkeypatch.setattr(sys, "unraisablehook", lost.append)

    def churn() -> None:
        end = time.monotonic() + 5
        while time.monotonic() < end:
            try:
                side_work()
                _step(1)
            except OverBudget:
                seen.append("raised in the work itself")
                raise

    with pytest.raises(OverBudget):
        with limit(0.05, "churning"):
            churn()
    return seen, lost


def test_an_overrun_is_never_raised_in_a_finalizer_where_it_would_be_lost(monkeypatch):
    assert overrun_reached_by(drop_finalized, monkeypatch) == (["raised in the work itself"], [])


def test_an_overrun_lost_in_a_generator_closed_as_it_is_dropped_is_raised_again(monkeypatch):
    assert overrun_reached_by(drop_generators, monkeypatch) == (["raised in the work itself"], [])
    assert sys.gettrace() is None
