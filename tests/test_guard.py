"""Guards: RFC 9535 JSONPath filters deciding whether a step runs (LANGUAGE.md §9.3)."""

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from littleflow.guard import GuardError, compile_guard, normalize


@pytest.mark.parametrize(
    "expression, value, runs",
    [
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
        (
            "$.items[?(@.ok == true)]",
            {"items": [{"ok": False}, {"ok": True}]},
            True,
        ),  # not at the root: members
        ("$.items[?(@.ok == true)]", {"items": [{"ok": False}]}, False),
        ("$.name", {"name": "x"}, True),  # any query selecting a value
        ("$.name", {}, False),
    ],
)
def test_guard_selects_at_least_one_value(expression, value, runs):
    assert compile_guard(expression).test(value) is runs


@pytest.mark.parametrize(
    "expression, value, runs",
    [
        ("$[?(@.s = 'a=b')]", {"s": "a=b"}, True),
        ("$[?(@.s == 'a=b')]", {"s": "a"}, False),
        ('$[?(@.s = "x\\"=y")]', {"s": 'x"=y'}, True),
    ],
)
def test_single_equals_inside_strings_is_left_alone(expression, value, runs):
    assert compile_guard(expression).test(value) is runs


@pytest.mark.parametrize(
    "expression, normal",
    [
        ("$[?(@.a=1)]", "$[?(@.a==1)]"),
        ("$[?(@.a == 1)]", "$[?(@.a == 1)]"),
        ("$[?(@.a != 1 && @.b <= 2 && @.c >= 3)]", "$[?(@.a != 1 && @.b <= 2 && @.c >= 3)]"),
        ("$[?(@.a = 'x=y')]", "$[?(@.a == 'x=y')]"),
    ],
)
def test_normalize(expression, normal):
    assert normalize(expression) == normal


@pytest.mark.parametrize("expression", ["$[?(@.a ==]", "status == 0", "", "$[?(@.a === 1)]", "$[?(@.a == 1)"])
def test_malformed_expressions(expression):
    with pytest.raises(GuardError) as caught:
        compile_guard(expression)
    assert "guard" in str(caught.value)


# -- hostile guards: match() and search() on RE2, a time budget per evaluation -------------------------
def test_catastrophic_pattern_runs_in_linear_time():
    """`(a|aa)+$` backtracks exponentially in a backtracking engine; RE2 answers at once."""
    guard = compile_guard('$[?search(@.x, "(a|aa)+$")]')
    started = time.monotonic()
    assert guard.test({"x": "a" * 40 + "b"}) is False
    assert guard.test({"x": "a" * 100_000 + "b"}) is False
    print(f"catastrophic pattern on 100,000 characters: {time.monotonic() - started:.4f} s")


@pytest.mark.parametrize(
    "expression, value, runs",
    [
        ('$[?match(@.x, "a.c")]', {"x": "abc"}, True),
        ('$[?match(@.x, "a.c")]', {"x": "a\nc"}, False),  # I-Regexp's dot: any character but CR and LF
        ('$[?match(@.x, "a.c")]', {"x": "a\rc"}, False),
        ('$[?match(@.x, "a[.]c")]', {"x": "abc"}, False),  # a dot in a class is a dot
        ('$[?match(@.x, "a\\\\.c")]', {"x": "a.c"}, True),
        ('$[?match(@.x, "ab")]', {"x": "xaby"}, False),  # match: the whole text
        ('$[?search(@.x, "ab")]', {"x": "xaby"}, True),  # search: a part of it
        ('$[?search(@.x, "\\\\p{Lu}")]', {"x": "aÉ"}, True),
        ("$[?match(@.x, @.p)]", {"x": "aaa", "p": "a{3}"}, True),  # a pattern from the input
        ("$[?match(@.x, @.p)]", {"x": "aaa", "p": "a{2,"}, False),  # not an I-Regexp: false, not an error
        ("$[?match(@.x, @.p)]", {"x": "a", "p": "(?i)A"}, False),  # no flags in I-Regexp
        ("$[?match(@.x, @.p)]", {"x": "a", "p": "((a{100}){100}){100}"}, False),  # too big for RE2's memory
        ('$[?match(@.x, "a")]', {"x": "\ud800"}, False),  # a lone surrogate is no text
        ('$[?match(@.x, "a")]', {"x": 1}, False),
    ],
)
def test_match_and_search_follow_rfc_9485(expression, value, runs):
    assert compile_guard(expression).test(value) is runs


@settings(max_examples=200, deadline=None)
@given(
    pattern=st.lists(
        st.sampled_from(["a", "b", ".", "a*", "(a|b)", "[ab]", "b?", "(ab)+", "[^a]", "a{1,2}"]),
        min_size=1,
        max_size=5,
    ).map("".join),
    text=st.text(alphabet="ab\nc", max_size=8),
)
def test_re2_agrees_with_a_backtracking_engine(pattern, text):
    """On small patterns, RE2 decides as the JSONPath library's own (backtracking) functions do."""
    import jsonpath_rfc9535

    value = {"x": text, "p": pattern}
    for function in ("match", "search"):
        expression = f"$[?{function}(@.x, @.p)]"
        expected = jsonpath_rfc9535.find_one(expression, [value]) is not None
        assert compile_guard(expression).test(value) is expected, (function, pattern, text)


def test_a_guard_over_its_budget_is_an_error_that_names_it():
    heavy = {"a": [[i, [i, {"b": i}]] for i in range(3000)]}  # each node's filter walks the whole input
    guard = compile_guard("$[?count(@..*[?count($..*) > 0]) > 0]")
    started = time.monotonic()
    with pytest.raises(GuardError) as caught:
        guard.test(heavy, budget=0.2)
    print(f"stopped after {time.monotonic() - started:.2f} s (budget 0.2 s)")
    assert "took more than 0.2 s" in str(caught.value) and "count(@..*" in str(caught.value)
    assert guard.test({"a": [1]}, budget=0.2) is True  # the same guard on a small input is fine


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.sampled_from([0.0, 1.0, 1.5, -2.5, 1e3])
    | st.sampled_from(["", "a", "b", "ab", "é"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["a", "b", "n"]), inner, max_size=3)
    ),
    max_leaves=8,
)
SIMPLE_FILTERS = st.builds(
    lambda path, op, literal, parens: f"$[?({path}{op}{literal})]" if parens else f"$[?{path}{op}{literal}]",
    st.sampled_from(["@", "@.a", "@.n", "@.a.b", "@.a.n"]),
    st.sampled_from(["==", "!=", "<", "<=", ">", ">=", " = ", " == "]),
    st.sampled_from(["1", "0", "-2", "1.5", "1.0", "1e3", '"a"', "'ab'", '""', "true", "false", "null"]),
    st.booleans(),
) | st.sampled_from(["$[?@.a]", "$[?@.a.b]", "$[?(@.n)]"])


@settings(max_examples=1000, deadline=None)
@given(SIMPLE_FILTERS, JSON_VALUES)
def test_simple_filters_decided_directly_agree_with_the_query_library(expression, value):
    """A member compared with a literal is decided without the library (it is most conditions,
    and a loop tests one every round): the same answer for every value."""
    import jsonpath_rfc9535

    from littleflow.guard import normalize

    guard = compile_guard(expression)
    assert guard._fast is not None, expression
    expected = jsonpath_rfc9535.find_one(normalize(expression), [value]) is not None
    assert guard.test(value) is expected, (expression, value)
