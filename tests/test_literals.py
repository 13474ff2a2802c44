"""YAML and JSON literals are plain data (LANGUAGE.md §1 "Data", §5, §6.1)."""

import json
import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import at, fails

from littleflow import FlowFailed, compile_flow, run_workflow
from littleflow.literals import (
    MAX_BYTES,
    MAX_VALUES,
    Budget,
    LiteralError,
    json_size,
    load_inline,
    load_json,
    load_yaml,
    plain,
)
from littleflow.resources import parse


@pytest.mark.parametrize(
    "text, value",
    [
        ("a: 1", {"a": 1}),
        ("[1, 2.5, x, null, true]", [1, 2.5, "x", None, True]),
        ("2024-01-02", "2024-01-02"),
        ("2001-12-14T21:59:43.10-05:00", "2001-12-14T21:59:43.10-05:00"),
        ("yes", "yes"),
        ("no", "no"),
        ("on", "on"),
        ("off", "off"),
        ("y", "y"),
        ("True", True),
        ("FALSE", False),
        ("~", None),
        ("", None),
        ("010", 10),
        ("0o17", 15),
        ("0x1F", 31),
        ("1:20", "1:20"),
        ("1_000", "1_000"),
        ("-1.5e3", -1500.0),
        (".5", 0.5),
        ("!!str 12", "12"),
    ],
)
def test_yaml_scalars_follow_the_core_schema(text, value):
    loaded = load_yaml(text)
    assert loaded == value and type(loaded) is type(value)


@pytest.mark.parametrize(
    "text",
    [
        "!!python/object/apply:os.system ['echo hi']",
        "!!python/object/new:os.system ['echo hi']",
        "!!python/name:os.system",
        "!!python/tuple [1, 2]",
        "x: !!python/object:collections.OrderedDict {}",
        "!custom 1",
    ],
)
def test_program_tags_are_errors(text):
    with pytest.raises(LiteralError) as caught:
        load_yaml(text)
    assert "tag" in caught.value.message


@pytest.mark.parametrize(
    "text",
    [
        "!!binary aGk=",
        "!!timestamp 2001-12-14",
        "!!set {a, b}",
        "!!omap [a: 1]",
        ".nan",
        "-.inf",
        "&a [*a]",
    ],
)
def test_values_json_cannot_hold_are_errors(text):
    with pytest.raises(LiteralError):
        load_yaml(text)


def test_alias_bombs_are_refused():
    text = "a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n" for p, n in zip("abcdef", "bcdefg")
    )
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


@pytest.mark.parametrize(
    "text", [r'{"v": "\ud800"}', r'["a\uDC00b"]', r'{"\udbff": 1}', r'[[["\ude00\ud83d"]]]']
)
def test_json_escapes_of_lone_surrogates_are_errors(text):
    with pytest.raises(LiteralError) as caught:
        load_json(text, 0)
    assert "lone surrogate \\ud" in caught.value.message and "not Unicode text" in caught.value.message


def test_json_escapes_of_surrogate_pairs_and_escaped_backslashes_are_text():
    assert load_json(r'["\ud83d\ude00", "\\ud800"]', 0)[0] == ["\U0001f600", "\\ud800"]


def test_raw_lone_surrogates_are_errors_at_their_offset():
    for load, text, offset in (
        (lambda t: load_json(t, 0), '["ab\ud800"]', 4),
        (load_yaml, "a: [b, c\udfff]", 8),
    ):
        with pytest.raises(LiteralError) as caught:
            load(text)
        assert caught.value.offset == offset
        assert "lone surrogate" in caught.value.message


def test_plain_refuses_lone_surrogates_in_values_and_keys():
    for bad in ("\ud800", ["x", {"k": "a\udc00"}], {"\ud800": 1}):
        with pytest.raises(LiteralError) as caught:
            plain(bad)
        assert "lone surrogate" in caught.value.message


@pytest.mark.parametrize(
    "text, where",
    [
        ('A -> <{"v": "\\ud800"}> -> B', (1, 6)),
        ('A\n  -> <["x", "\\uDFFF"]>', (2, 6)),
        ('A ({"p": "\\ud800"}) -> B', (1, 3)),
        ('A -> <- "\\ud800" ->', (1, 6)),
    ],
)
def test_lone_surrogates_in_literals_and_parameters_are_flow_errors_at_their_place(text, where):
    error = fails(text)
    assert at(error) == where
    assert "Unicode" in error.message and "\n" not in error.message  # (libyaml words its own YAML error)


def laughs(levels: int = 9, width: int = 9, leaf: str = '"lol"') -> str:
    """The classic "billion laughs": each level an array of ``width`` aliases of the one below."""
    lines = [f"a0: &a0 {leaf}"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels + 1)]
    return "\n".join(lines)


def test_the_billion_laughs_are_refused_unexpanded_at_the_level_that_crosses_the_limit():
    text = laughs()
    began = time.perf_counter()
    with pytest.raises(LiteralError) as caught:
        load_yaml(text)
    print(f"billion laughs ({len(text)} bytes) refused in {time.perf_counter() - began:.4f} s")
    assert f"{MAX_VALUES:,} values" in caught.value.message
    assert caught.value.offset == text.index("&a7")  # 9**7 values: the first level past 1,000,000


def test_a_byte_bomb_is_refused_at_the_node_that_expands_past_the_byte_bound():
    """Few values but long strings: 0.5 MB of text naming a 500,000-byte string 1,000 times."""
    text = 'a: &a "' + "x" * 500_000 + '"\nb: [' + ", ".join(["*a"] * 1000) + "]"
    began = time.perf_counter()
    with pytest.raises(LiteralError) as caught:
        load_yaml(text)
    print(f"0.5 MB byte bomb refused in {time.perf_counter() - began:.4f} s")
    assert f"{MAX_BYTES:,} bytes as JSON once YAML aliases are expanded" in caught.value.message
    assert caught.value.offset == text.index("[")  # (the array: the string alone fits)


def test_a_yaml_resource_or_input_is_bounded_the_same_way():
    with pytest.raises(ValueError, match="bytes as JSON once YAML aliases"):
        parse(laughs(4, 10, '"' + "x" * 2000 + '"'), "yaml")
    assert parse(laughs(2, 10), "yaml")["a2"] == [["lol"] * 10] * 10


def test_merge_keys_count_what_they_merge():
    base = 'a0: &a0 {k: "' + "x" * 100 + '"}\n'
    text = base + "".join(
        f"a{i}: &a{i} {{!!merge <<: [*a{i - 1}, *a{i - 1}], k{i}: 1}}\n" for i in range(1, 21)
    )
    with pytest.raises(LiteralError, match="too large"):  # (before merging: 2**20 copies of k)
        load_yaml(text)


def test_the_budget_is_shared_by_the_literals_of_one_flow_text():
    literal = json.dumps(["x" * 1000] * 1000)  # 1,003,001 bytes: 16 fit in 16 MiB, not 17
    assert json_size(json.loads(literal)) == len(literal.replace(", ", ","))
    text = "\n".join(f"T{i}({literal})" for i in range(17))
    error = fails(text)
    assert at(error) == (17, 4)
    assert f"with the literals before it, more than {MAX_BYTES:,} bytes" in error.message
    compile_flow("\n".join(f"T{i}({literal})" for i in range(16)))


#: YAML scalars and what they are as JSON.
_SCALARS = [
    ("1", "1"),
    ("0x1F", "31"),
    ("1e3", "1000.0"),
    ("null", "null"),
    ("~", "null"),
    ("TRUE", "true"),
    ("-0.5", "-0.5"),
    ("yes", '"yes"'),
    ("2024-01-02", '"2024-01-02"'),
    ("'1'", '"1"'),
]


@st.composite
def alias_graphs(draw):
    """YAML with anchors a0…aN, each a string or an array or object of aliases of earlier
    anchors, and the size of its value as compact JSON, worked out from the model."""
    lines, sizes = [], []
    for i in range(draw(st.integers(1, 8))):
        if i == 0 or draw(st.booleans()) and i < 3:
            if draw(st.booleans()):
                text = draw(st.text('abcé"\\', max_size=30))
                lines.append(f"a{i}: &a{i} {json.dumps(text)}")
                sizes.append(len(json.dumps(text, ensure_ascii=False).encode()))
            else:
                scalar, as_json = draw(st.sampled_from(_SCALARS))
                lines.append(f"a{i}: &a{i} {scalar}")
                sizes.append(len(as_json))
            continue
        refs = draw(st.lists(st.integers(0, i - 1), max_size=6))
        if draw(st.booleans()):
            lines.append(f"a{i}: &a{i} [{', '.join(f'*a{r}' for r in refs)}]")
            sizes.append(2 + max(len(refs) - 1, 0) + sum(sizes[r] for r in refs))
        else:
            lines.append(f"a{i}: &a{i} {{{', '.join(f'k{n}: *a{r}' for n, r in enumerate(refs))}}}")
            sizes.append(
                2 + max(len(refs) - 1, 0) + sum(len(f'"k{n}":') + sizes[r] for n, r in enumerate(refs))
            )
    names = [len(f'"a{i}":') for i in range(len(sizes))]
    return "\n".join(lines), 2 + len(sizes) - 1 + sum(names) + sum(sizes)


@settings(max_examples=300, deadline=None)
@given(alias_graphs(), st.integers(-50, 50))
def test_alias_graphs_are_accepted_exactly_when_their_expansion_fits(graph, slack):
    text, size = graph
    limit = max(size + slack, 1)
    if size <= limit:
        value = load_yaml(text, Budget(limit))
        assert json_size(value) == size
    else:
        with pytest.raises(LiteralError, match="bytes as JSON"):
            load_yaml(text, Budget(limit))


def test_a_yaml_bomb_read_as_a_resource_at_run_time_fails_its_step_with_the_reason(tmp_path):
    (tmp_path / "bomb.yaml").write_text(laughs(9, 9))
    (tmp_path / "fine.yaml").write_text(laughs(2, 3))
    assert run_workflow("<fine.yaml>", base=str(tmp_path))["a2"] == [["lol"] * 3] * 3
    with pytest.raises(FlowFailed) as caught:
        run_workflow("<bomb.yaml>", base=str(tmp_path))
    assert (
        "cannot read <bomb.yaml> as yaml: literal too large (more than 1,000,000 values)"
        in caught.value.error
    )


def test_a_json_literal_over_the_bound_says_so_without_aliases():
    error = fails("A\n  → <" + json.dumps(["x" * 1_000_000] * 17) + ">")
    assert at(error) == (2, 5)
    assert error.message.startswith(f"too large: more than {MAX_BYTES:,} bytes as JSON in literal (at 2:6)")


def test_an_aliased_scalar_is_measured_once_however_often_it_is_used(monkeypatch):
    """A 500 kB string aliased 1,000 times is sized once, not 1,000 times (that took a second)."""
    from littleflow import literals

    measured = []
    real = literals._scalar_size
    monkeypatch.setattr(
        literals, "_scalar_size", lambda loader, node: measured.append(node) or real(loader, node)
    )
    text = 'a: &a "' + "x" * 500_000 + '"\nb: [' + ", ".join(["*a"] * 1000) + "]\n"
    with pytest.raises(LiteralError, match="16,777,216 bytes"):
        literals.load_yaml(text)
    assert len(measured) == 1


# -- inline mappings (LANGUAGE.md §5) -----------------------------------------------------------


@pytest.mark.parametrize(
    "text, value",
    [
        (
            ' image: example.org/resize:1.4, args: [--width, "800"], deadline: 10m ',
            {"image": "example.org/resize:1.4", "args": ["--width", "800"], "deadline": "10m"},
        ),
        (" name: extract, secs: 1.5 ", {"name": "extract", "secs": 1.5}),
        (" width: 640, height: 480 ", {"width": 640, "height": 480}),
        (" url: http://x.org/a?b=c, n: 2, ", {"url": "http://x.org/a?b=c", "n": 2}),
        (" k8s: {image: x}, deadline: 10m # the last one\n", {"k8s": {"image": "x"}, "deadline": "10m"}),
        ("\n  a: 1, b: [x, y],\n  c: z\n", {"a": 1, "b": ["x", "y"], "c": "z"}),
    ],
)
def test_an_inline_mapping_is_the_mapping_it_reads_as(text, value):
    assert load_inline(text) == value


@pytest.mark.parametrize(
    "text, value",
    [
        (" msg: hello, world ", {"msg": "hello, world"}),  # valid YAML as it is: no braces added
        (" [1, 2] ", [1, 2]),
        (" 3 ", 3),
        (" - a\n - b ", ["a", "b"]),
        ("", None),
        (" a: 1\n b: 2 ", {"a": 1, "b": 2}),
        ("\n  a: 1,\n  b: 2\n", {"a": "1,", "b": 2}),  # (a ',' at the end of a line is part of the value)
    ],
)
def test_text_that_is_yaml_is_read_as_yaml(text, value):
    assert load_inline(text) == value


def test_only_flow_literals_take_inline_mappings():
    with pytest.raises(LiteralError):
        load_yaml("a: 1, b: 2")  # a resource, an --input: YAML as it is
    with pytest.raises(ValueError, match="invalid YAML"):
        parse("a: 1, b: [x]", "yaml")


@pytest.mark.parametrize(
    "text, offset, message",
    [
        (
            "a: b: c",
            4,
            "unexpected ':': write key: value, other: value (or one entry a line, at one indentation) "
            "and quote a value that holds ': ' (key: \"a: b\")",
        ),
        (" a: 1 b: 2", 7, "unexpected ':': write key: value"),
        (" a: [1, 2]] ", 10, "unexpected ']': write key: value"),
        (" a: 1, b: [1, 2 ", 10, "the '[' is not closed: end it with ']', and separate its items with ','"),
        (" a: {b: 1 ", 4, "the '{' is not closed: end it with '}'"),
        (" a: 'x ", 4, "the quoted value is not closed: end it with '"),
        (" x: @foo ", 4, "a value cannot start with '@': put it in quotes (key: \"@…\")"),
        (" x: `a` ", 4, "a value cannot start with '`'"),
        (" x: *foo ", 4, "a value cannot start with '*' (a YAML alias): put it in quotes"),
        (" a: 1,, b: 2", 6, "a value is missing here"),
        (
            " - a\n b: 1",
            6,
            "list items (- x) and mapping entries (key: value) cannot be mixed at one indentation",
        ),
        ("x:\n\t- 1\n", 3, "indent with spaces, not tabs"),
        (
            " a: 1, b: !!python/tuple [1] ",
            10,
            "the tag !!python/tuple is not allowed (literals are plain data)",
        ),
        (
            " a: x\x80y ",
            5,
            "the character U+0080 is not allowed in YAML text "
            '(write it as "\\u0080" in a double-quoted value)',
        ),
    ],
)
def test_malformed_inline_yaml_says_how_to_write_it(text, offset, message):
    with pytest.raises(LiteralError) as caught:
        load_inline(text)
    assert caught.value.message.startswith("invalid YAML: " + message)
    assert caught.value.offset == offset and "\n" not in caught.value.message


def test_the_readme_examples_compile_to_what_they_say():
    flow = compile_flow(
        'k8s:resize (- image: example.org/resize:1.4, args: [--width, "800"], deadline: 10m -)\n'
        "<- name: extract, secs: 1.5 -> → B"
    )
    assert flow.nodes[1].parameters == {
        "image": "example.org/resize:1.4",
        "args": ["--width", "800"],
        "deadline": "10m",
    }
    assert flow.nodes[2].value == {"name": "extract", "secs": 1.5}


def test_an_inline_mapping_error_in_flow_text_is_one_line_at_the_parameters():
    error = fails("A → B (- a: 1,\n  b: [x, y -)")
    assert at(error) == (1, 7)
    assert error.message == (
        "invalid YAML: the '[' is not closed: end it with ']', and separate its items "
        "with ',' in parameters (at 2:6)"
    )


_INLINE_KEY = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
_INLINE_PLAIN = st.from_regex(r"-{0,2}[a-zA-Z][a-zA-Z0-9_./-]{0,10}", fullmatch=True)
_INLINE_TEXT = st.text(
    st.characters(max_codepoint=0xD7FF, blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=12
)
_INLINE_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _INLINE_PLAIN
    | _INLINE_TEXT
)
_INLINE_VALUES = st.recursive(
    _INLINE_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_INLINE_KEY, inner, max_size=4),
    max_leaves=12,
)


def _inline(value, top=False):
    """``value`` written as a person might inline it: plain words where YAML reads them back."""
    if isinstance(value, dict):
        entries = ", ".join(f"{key}: {_inline(item)}" for key, item in value.items())
        return entries if top else "{" + entries + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_inline(item) for item in value) + "]"
    if (
        isinstance(value, str)
        and re.fullmatch(r"-{0,2}[a-zA-Z][\w./-]*", value)
        and load_yaml(value) == value
    ):
        return value  # (not one that YAML reads as something else: null, true)
    if isinstance(value, float):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_INLINE_KEY, _INLINE_VALUES, min_size=1, max_size=5))
def test_generated_inline_mappings_read_back_as_themselves(value):
    text = _inline(value, top=True)
    assert load_inline(f" {text} ") == value
    if "-)" not in text:
        assert compile_flow(f"A (- {text} -) → B").nodes[1].parameters == value


@settings(max_examples=500, deadline=None)
@given(st.text(st.sampled_from(list("ab: ,-[]{}'\"#@*&!|>%?\n\t1.")), max_size=30))
def test_any_inline_text_is_a_value_or_one_line_error(text):
    try:
        load_inline(text)
    except LiteralError as error:
        assert error.message and "\n" not in error.message
        assert error.offset is None or 0 <= error.offset <= len(text)
