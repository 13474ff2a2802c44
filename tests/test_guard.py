"""Guards: RFC 9535 JSONPath filters deciding whether a step runs (LANGUAGE.md §9.3)."""

import pytest

from littleflow.guard import GuardError, compile_guard, normalize


@pytest.mark.parametrize("expression, value, runs", [
    ("$[?(@.status=0)]", {"status": 0}, True),  # the reference's own example
    ("$[?(@.status=0)]", {"status": 2}, False),
    ("$[?(@.status == 0)]", {"status": 0}, True),
    ("$[?(@.status == 0)]", {}, False),
    ("$[?(@.s != 1)]", {"s": 2}, True),
    ("$[?(@.s <= 1)]", {"s": 1}, True),
    ("$[?(@.s >= 1)]", {"s": 0}, False),
    ("$[?(@.a)]", {"a": 0}, True),  # existence test
    ("$[?(@.a)]", {"b": 1}, False),
    ("$[?(@.a.b == 'x' && @.n > 2)]", {"a": {"b": "x"}, "n": 3}, True),
    ("$[?(@.a.b == 'x' && @.n > 2)]", {"a": {"b": "x"}, "n": 1}, False),
    ("$.items[?(@.ok == true)]", {"items": [{"ok": False}, {"ok": True}]}, True),  # not at the root: members
    ("$.items[?(@.ok == true)]", {"items": [{"ok": False}]}, False),
    ("$.name", {"name": "x"}, True),  # any query selecting a value
    ("$.name", {}, False),
])
def test_guard_selects_at_least_one_value(expression, value, runs):
    assert compile_guard(expression).test(value) is runs


@pytest.mark.parametrize("expression, value, runs", [
    ("$[?(@.s = 'a=b')]", {"s": "a=b"}, True),
    ("$[?(@.s == 'a=b')]", {"s": "a"}, False),
    ('$[?(@.s = "x\\"=y")]', {"s": 'x"=y'}, True),
])
def test_single_equals_inside_strings_is_left_alone(expression, value, runs):
    assert compile_guard(expression).test(value) is runs


@pytest.mark.parametrize("expression, normal", [
    ("$[?(@.a=1)]", "$[?(@.a==1)]"),
    ("$[?(@.a == 1)]", "$[?(@.a == 1)]"),
    ("$[?(@.a != 1 && @.b <= 2 && @.c >= 3)]", "$[?(@.a != 1 && @.b <= 2 && @.c >= 3)]"),
    ("$[?(@.a = 'x=y')]", "$[?(@.a == 'x=y')]"),
])
def test_normalize(expression, normal):
    assert normalize(expression) == normal


@pytest.mark.parametrize("expression", ["$[?(@.a ==]", "status == 0", "", "$[?(@.a === 1)]", "$[?(@.a == 1)"])
def test_malformed_expressions(expression):
    with pytest.raises(GuardError) as caught:
        compile_guard(expression)
    assert "guard" in str(caught.value)
