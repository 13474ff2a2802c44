"""check_value: the one check of values that cross a boundary."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from littleflow.values import MAX_DEPTH, MAX_INT_BITS, MAX_VALUES, brief, check_value, loads, short


def nested(levels: int) -> list:
    value: list = []
    for _ in range(levels - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    "value, says",
    [
        (float("nan"), "the input holds nan, which is not a JSON number"),
        ({"a": [1, float("inf")]}, "the input holds inf, which is not a JSON number"),
        ({float("nan"): 1}, "the input has the key nan, which is not a JSON number"),
        ({(1, 2): 1}, "the input has a tuple key, which JSON cannot hold"),
        ([b"bytes"], "the input holds a bytes, which is not JSON data"),
        ({"x": "\ud800"}, "the input holds a lone surrogate (not Unicode text)"),
        ({"\udfff": 1}, "the input holds a lone surrogate (not Unicode text)"),
        (nested(MAX_DEPTH + 1), f"the input is nested too deeply: more than {MAX_DEPTH} levels"),
        ([0] * MAX_VALUES, f"the input is too large: more than {MAX_VALUES:,} values"),
        (
            {"n": 2**MAX_INT_BITS},
            f"the input holds an integer of {MAX_INT_BITS + 1:,} bits, too long to write as JSON",
        ),
    ],
)
def test_what_is_refused_and_the_one_line_that_says_so(value, says):
    with pytest.raises(ValueError) as caught:
        check_value(value, "the input")
    assert str(caught.value) == says


def test_the_limits_are_inclusive_and_a_cycle_is_too_deep():
    check_value(nested(MAX_DEPTH), "x")
    check_value([0] * (MAX_VALUES - 1), "x")
    check_value({"a": None, "b": True, "c": -1, "d": 1.5, "é": "ü", "n": 2**MAX_INT_BITS - 1}, "x")
    cyclic: dict = {}
    cyclic["self"] = cyclic
    with pytest.raises(ValueError, match="nested too deeply"):
        check_value(cyclic, "x")


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=30,
)


@given(JSON_VALUES)
def test_json_data_passes_and_survives_a_strict_encoding(value):
    check_value(value, "x")
    json.dumps(value, allow_nan=False).encode("utf-8")


@pytest.mark.parametrize(
    "text, says",
    [
        ("NaN", "NaN is not a JSON number"),
        ("[-Infinity]", "-Infinity is not a JSON number"),
        ('{"x": 1e999}', "1e999 is too large for a number"),
        ("[" * 100_000, "nested too deeply to read"),
        ("{nope", "Expecting property name enclosed in double quotes (at character 1)"),
    ],
)
def test_loads_is_strict_json(text, says):
    with pytest.raises(ValueError) as caught:
        loads(text)
    assert str(caught.value) == says


def test_loads_leaves_lone_surrogates_to_check_value():
    value = loads('{"x": "\\ud800", "n": 1.5}')
    assert value == {"x": "\ud800", "n": 1.5}
    with pytest.raises(ValueError, match="lone surrogate"):
        check_value(value, "x")


# -- brief: a value as messages show it -------------------------------------------------------


@pytest.mark.parametrize(
    "value, shown",
    [
        ([{"stored": 22}], '[{"stored": 22}]'),
        ({"ok": True, "none": None, "text": "é\n"}, '{"ok": true, "none": null, "text": "é\\n"}'),
        ("soon", '"soon"'),
        (1.5, "1.5"),
        ({(1, 2): 3}, "{(1, 2): 3}"),  # what JSON cannot hold: its repr
    ],
)
def test_brief_writes_json_on_one_line(value, shown):
    assert brief(value) == shown


def test_brief_cuts_a_long_value_with_an_ellipsis_and_writes_no_more_than_it_shows():
    huge = [{"stored": n} for n in range(MAX_VALUES // 4)]
    shown = brief(huge, 40)
    assert shown == '[{"stored": 0}, {"stored": 1}, {"stored…' and len(shown) == 40


@given(JSON_VALUES)
def test_brief_of_json_data_is_its_json_text_when_it_fits(value):
    text = json.dumps(value, ensure_ascii=False)
    shown = brief(value, 60)
    assert shown == text if len(text) <= 60 else shown == text[:59] + "…"


def test_short_keeps_text_as_it_is_on_one_line_and_writes_other_values_as_json():
    assert short("a  failed\n  badly") == "a failed badly"
    assert short({"a": [1, None]}) == '{"a": [1, null]}'
    assert short("x" * 200, 10) == "x" * 9 + "…" and len(short(list(range(100)), 20)) == 20
