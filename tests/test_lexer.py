"""Lexical structure (LANGUAGE.md §2): arrows, names, labels, comments, ';', literal tokens."""

import pytest
from graphs import graph, parse_edges
from support import at, fails

from littleflow import compile_flow
from littleflow.lexer import ARROW, DOC, EOF, GUARD, LABEL, LITERAL, NAME, PARAMS, RESOURCE, SEMI, tokens
from littleflow.source import Source

CHAIN = parse_edges("START→A  A→B  B→C  C→END")


def kinds_values(text):
    return [(t.kind, t.value) for t in tokens(Source(text))]


@pytest.mark.parametrize(
    "text",
    [
        "A → B → C",
        "A -> B -> C",
        "A->B->C",
        "A→B→C",
        "A ->B-> C",
        "A → B -> C",
    ],
)
def test_both_arrows_with_or_without_spaces(text):
    assert graph(compile_flow(text)) == CHAIN


def test_dash_before_gt_is_never_part_of_a_name():
    assert kinds_values("A->B") == [(NAME, "A"), (ARROW, None), (NAME, "B"), (EOF, None)]
    assert kinds_values("a-b-->c") == [(NAME, "a-b-"), (ARROW, None), (NAME, "c"), (EOF, None)]


@pytest.mark.parametrize(
    "name", ["load", "my:peel-banana", "wait:delay", "_private", "x1_y-2:z", "café", "日本語", "Ωmega"]
)
def test_task_names(name):
    assert kinds_values(name) == [(NAME, name), (EOF, None)]
    flow = compile_flow(f"{name} → {name}")
    assert [n.name for n in flow.nodes[1:-1]] == [name, name]


@pytest.mark.parametrize("text", ["1abc", "-abc", "a.b", "$x"])
def test_names_start_with_a_letter_or_underscore_and_hold_no_other_punctuation(text):
    error = fails(text)
    assert error.line == 1 and error.column == (2 if text == "a.b" else 1)


def test_label_is_colon_directly_followed_by_a_name():
    assert kinds_values("A :x-y:z") == [(NAME, "A"), (LABEL, "x-y:z"), (EOF, None)]
    assert kinds_values("A:x") == [(NAME, "A:x"), (EOF, None)]  # a colon inside a name is part of it
    error = fails("A : x")
    assert at(error) == (1, 3) and "label" in error.message


def test_labels_next_to_arrows_without_spaces():
    assert graph(compile_flow("A :x->B;:x->C")) == parse_edges("START→A  A→B  A→C  B→END  C→END")


def test_whitespace_and_newlines_separate_tokens_only():
    assert graph(compile_flow("A\n→\n   B\n\t→ C")) == CHAIN
    assert graph(compile_flow("A →\n\n  B →\r\n C")) == CHAIN


@pytest.mark.parametrize(
    "text",
    [
        "# a flow\nA → B → C  # the end",
        "A → # comment → X\nB → C",
        "A #→ X\n→ B → C",
        "A → B → C\n# D → E",
    ],
)
def test_comments_run_to_end_of_line(text):
    assert graph(compile_flow(text)) == CHAIN


@pytest.mark.parametrize("text", ["A; B", "A;\nB;", "A B", "A\nB", ";;A;;B;;"])
def test_semicolon_optionally_ends_a_statement(text):
    assert graph(compile_flow(text)) == parse_edges("START→A  START→B  A→END  B→END")


def test_semicolon_tokens():
    assert [t.kind for t in tokens(Source("A;B"))] == [NAME, SEMI, NAME, EOF]


@pytest.mark.parametrize(
    "text, kind, value",
    [
        ("()", PARAMS, None),
        ("(- a: 1 -)", PARAMS, {"a": 1}),
        ('({"a": [1]})', PARAMS, {"a": [1]}),
        ("([1, 2])", PARAMS, [1, 2]),
        ("<>", LITERAL, {}),
        ("<- a: 1 ->", LITERAL, {"a": 1}),
        ('<{"a": 1}>', LITERAL, {"a": 1}),
        ("<[1]>", LITERAL, [1]),
        ("<data/in.json>", RESOURCE, "data/in.json"),
        ("<https://example.com/a?b=1>", RESOURCE, "https://example.com/a?b=1"),
        ("? `$[?(@.a == 1)]`", GUARD, "$[?(@.a == 1)]"),
        ("'''doc'''", DOC, "doc"),
        ('"""doc"""', DOC, "doc"),
    ],
)
def test_delimited_tokens(text, kind, value):
    assert kinds_values(text) == [(kind, value), (EOF, None)]


def test_token_offsets():
    assert [t.offset for t in tokens(Source("A → :x B"))] == [0, 2, 4, 7, 8]


@pytest.mark.parametrize(
    "text, where, words",
    [
        ("A → B\nC - D", (2, 3), "'-'"),
        ("A → %", (1, 5), "'%'"),
        ("A (- a: 1", (1, 3), "unclosed"),
        ("<- a: 1", (1, 1), "unclosed"),
        ('<{"a": 1} → B', (1, 1), "unclosed"),
        ("A ( 1 )", (1, 3), "parameters"),
        ("<a b>", (1, 1), "literal"),
        ("A →\n ? `$[?(@.a)]", (2, 2), "guard"),
        ("@flow f '''doc", (1, 9), "doc"),
        ("@job X", (1, 1), "@job"),
    ],
)
def test_bad_tokens_are_flow_errors_at_their_place(text, where, words):
    error = fails(text)
    assert at(error) == where
    assert words in error.message


@pytest.mark.parametrize(
    "text, where",
    [
        ('@flow F """doc \ud800"""\nA', (1, 16)),
        ("A →\n ? `$.x == '\udc00'` B", (2, 13)),
        ('A → <{"v": "\ud800"}>', (1, 13)),
    ],
)
def test_lone_surrogates_anywhere_in_the_text_are_errors_at_their_place(text, where):
    error = fails(text)
    assert at(error) == where
    assert "lone surrogate" in error.message
