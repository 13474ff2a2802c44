"""Durations as people write them (littleflow.durations)."""

import pytest

from littleflow.durations import seconds


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
