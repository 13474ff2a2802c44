"""Durations as people write them (littleflow.durations)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from littleflow.durations import period, seconds, text


@pytest.mark.parametrize(
    "text, expected",
    [
        ("90s", 90),
        ("30m", 1800),
        ("12h", 43200),
        ("7d", 604800),
        ("1w", 604800),
        ("1d12h", 129600),
        ("0", 0),
        ("2.5", 2.5),
        (" 1H ", 3600),
        ("250ms", 0.25),
        (3, 3),
        (0.5, 0.5),
    ],
)
def test_durations(text, expected):
    assert seconds(text) == expected


@pytest.mark.parametrize("text", ["", "d", "7x", "1d 2h", "-5s", "7d3", -1, True, float("inf"), None, [1]])
def test_bad_durations_are_refused_in_one_line(text):
    with pytest.raises(ValueError, match="bad duration") as caught:
        seconds(text)
    assert "\n" not in str(caught.value)


# -- written back ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, written",
    [
        (0, "0.00s"),
        (3.14159, "3.14s"),
        (12.34, "12.3s"),
        (303, "5m03s"),
        (7500, "2h05m"),
        (86400 + 2 * 3600 + 59, "1d02h"),
        (-1, "0.00s"),  # a clock gone back: no time at all
    ],
)
def test_text_writes_how_long_something_took(value, written):
    assert text(value) == written


@given(st.floats(min_value=0, max_value=10**9, allow_nan=False))
def test_text_reads_back_to_within_its_last_digit(value):
    # the last unit written: 0.01s below 10s, 0.1s below a minute, then 1s, 1m, 1h
    step = 0.01 if value < 10 else 0.1 if value < 60 else 1 if value < 3600 else 60 if value < 86400 else 3600
    assert value - step <= seconds(text(value)) <= value + step


@pytest.mark.parametrize(
    "value, written",
    [
        (45, "45s"),
        (90, "90s"),
        (60, "1m"),
        (5400, "90m"),
        (7200, "2h"),
        (86400, "1d"),
        (1209600, "2w"),
        (0, "0s"),
    ],
)
def test_period_writes_whole_seconds_exactly_in_the_largest_unit(value, written):
    assert period(value) == written


@given(st.integers(min_value=0, max_value=10**12))
def test_period_reads_back_to_the_same_seconds(value):
    assert seconds(period(value)) == value
