"""YAML and JSON literals are plain data (LANGUAGE.md §1 "Data", §5, §6.1)."""

import json

import pytest
from support import at, fails

from littleflow.literals import MAX_VALUES, LiteralError, load_json, load_yaml, plain


@pytest.mark.parametrize("text, value", [
    ("a: 1", {"a": 1}),
    ("[1, 2.5, x, null, true]", [1, 2.5, "x", None, True]),
    ("2024-01-02", "2024-01-02"),
    ("2001-12-14T21:59:43.10-05:00", "2001-12-14T21:59:43.10-05:00"),
    ("yes", "yes"), ("no", "no"), ("on", "on"), ("off", "off"), ("y", "y"),
    ("True", True), ("FALSE", False), ("~", None), ("", None),
    ("010", 10), ("0o17", 15), ("0x1F", 31), ("1:20", "1:20"), ("1_000", "1_000"),
    ("-1.5e3", -1500.0), (".5", 0.5),
    ("!!str 12", "12"),
])
def test_yaml_scalars_follow_the_core_schema(text, value):
    loaded = load_yaml(text)
    assert loaded == value and type(loaded) is type(value)


@pytest.mark.parametrize("text", [
    "!!python/object/apply:os.system ['echo hi']",
    "!!python/object/new:os.system ['echo hi']",
    "!!python/name:os.system",
    "!!python/tuple [1, 2]",
    "x: !!python/object:collections.OrderedDict {}",
    "!custom 1",
])
def test_program_tags_are_errors(text):
    with pytest.raises(LiteralError) as caught:
        load_yaml(text)
    assert "tag" in caught.value.message


@pytest.mark.parametrize("text", [
    "!!binary aGk=", "!!timestamp 2001-12-14", "!!set {a, b}", "!!omap [a: 1]", ".nan", "-.inf", "&a [*a]",
])
def test_values_json_cannot_hold_are_errors(text):
    with pytest.raises(LiteralError):
        load_yaml(text)


def test_alias_bombs_are_refused():
    text = "a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n" for p, n in zip("abcdef", "bcdefg"))
    with pytest.raises(LiteralError) as caught:
        load_yaml(text)
    assert f"{MAX_VALUES:,}" in caught.value.message


def test_yaml_aliases_within_limits_are_copied_as_data():
    assert load_yaml("a: &x {k: 1}\nb: *x") == {"a": {"k": 1}, "b": {"k": 1}}


def test_keys_become_text():
    assert load_yaml("{1: a, null: b, 2.5: c}") == {"1": "a", "null": "b", "2.5": "c"}


def test_distinct_keys_stay_distinct_when_turned_into_text():
    assert load_yaml("{1: a, true: b}") == {"1": "a", "true": "b"}


def test_malformed_yaml_has_an_offset():
    with pytest.raises(LiteralError) as caught:
        load_yaml("a: [1, 2")
    assert caught.value.message.startswith("invalid YAML") and caught.value.offset is not None


def test_json_value_at_an_offset():
    text = 'A ({"s": "a ) b", "n": [1, 2]}) → B'
    value, end = load_json(text, 3)
    assert value == {"s": "a ) b", "n": [1, 2]}
    assert text[end:] == ") → B"


@pytest.mark.parametrize("text", ["[NaN]", '{"a": Infinity}', "[-Infinity]"])
def test_json_constants_that_are_not_numbers_are_errors(text):
    with pytest.raises(LiteralError):
        load_json(text, 0)


def test_malformed_json_reports_the_decoder_message_and_offset():
    with pytest.raises(LiteralError) as caught:
        load_json("[1, 2,]", 0)
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads("[1, 2,]")
    assert expected.value.msg in caught.value.message
    assert caught.value.offset == expected.value.pos


def test_plain_copies_json_data_and_refuses_anything_else():
    value = {"a": [1, {"b": None}], "c": "d"}
    copy = plain(value)
    assert copy == value and copy is not value and copy["a"] is not value["a"]
    for bad in ({1, 2}, b"x", object(), float("nan"), {("a",): 1}):
        with pytest.raises(LiteralError):
            plain(bad)


@pytest.mark.parametrize("text", [r'{"v": "\ud800"}', r'["a\uDC00b"]', r'{"\udbff": 1}', r'[[["\ude00\ud83d"]]]'])
def test_json_escapes_of_lone_surrogates_are_errors(text):
    with pytest.raises(LiteralError) as caught:
        load_json(text, 0)
    assert "lone surrogate \\ud" in caught.value.message and "not Unicode text" in caught.value.message


def test_json_escapes_of_surrogate_pairs_and_escaped_backslashes_are_text():
    assert load_json(r'["\ud83d\ude00", "\\ud800"]', 0)[0] == ["\U0001f600", "\\ud800"]


def test_raw_lone_surrogates_are_errors_at_their_offset():
    for load, text, offset in ((lambda t: load_json(t, 0), '["ab\ud800"]', 4), (load_yaml, "a: [b, c\udfff]", 8)):
        with pytest.raises(LiteralError) as caught:
            load(text)
        assert caught.value.offset == offset
        assert "lone surrogate" in caught.value.message


def test_plain_refuses_lone_surrogates_in_values_and_keys():
    for bad in ("\ud800", ["x", {"k": "a\udc00"}], {"\ud800": 1}):
        with pytest.raises(LiteralError) as caught:
            plain(bad)
        assert "lone surrogate" in caught.value.message


@pytest.mark.parametrize("text, where", [
    ('A -> <{"v": "\\ud800"}> -> B', (1, 6)),
    ('A\n  -> <["x", "\\uDFFF"]>', (2, 6)),
    ('A ({"p": "\\ud800"}) -> B', (1, 3)),
    ('A -> <- "\\ud800" ->', (1, 6)),
])
def test_lone_surrogates_in_literals_and_parameters_are_flow_errors_at_their_place(text, where):
    error = fails(text)
    assert at(error) == where
    assert "Unicode" in error.message and "\n" not in error.message  # (libyaml words its own YAML error)
