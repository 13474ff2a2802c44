"""Syntax (LANGUAGE.md §3–§7, §9.3, §9.6): statements, subflow brackets, where
:start/:end may stand, declaration syntax, and syntax errors with their place."""

import pytest
from graphs import graph, parse_edges
from support import at, fails

from littleflow import Parser, compile_flow


# -- statements ----------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "A\n→ B\n→ C",
        "A →\nB →\nC",
        "A\n\n  →  B  # comment\n  → C;",
    ],
)
def test_a_statement_may_span_lines(text):
    assert graph(compile_flow(text)) == parse_edges("START→A  A→B  B→C  C→END")


def test_statements_are_separated_by_the_absence_of_an_arrow():
    assert graph(compile_flow("A → B\nC → D")) == parse_edges("START→A  A→B  B→END  START→C  C→D  D→END")


def test_empty_text_has_only_start_and_end():
    assert [n.kind for n in compile_flow("").nodes] == ["start", "end"]
    assert [n.kind for n in compile_flow("# nothing\n;\n").nodes] == ["start", "end"]


# -- :start and :end (§3.4) ----------------------------------------------------
@pytest.mark.parametrize(
    "text, where, name",
    [
        ("A → :start → B", None, "start"),  # middle of a statement
        ("A → :end → B", None, "end"),
        (":start A → B", (1, 1), "start"),  # label before a task
        ("B\n:end A", (2, 1), "end"),
        ("A :start → B", (1, 3), "start"),  # label after a task
        ("A :end → B", (1, 3), "end"),
        ("A → B :end", (1, 7), "end"),
        (":end → A", (1, 1), "end"),  # :end may only stand last
        ("X\n  :end → A", (2, 3), "end"),
    ],
)
def test_misplaced_start_and_end_are_errors(text, where, name):
    error = fails(text)
    if where is not None:
        assert at(error) == where
    assert f":{name}" in error.message


def test_start_and_end_in_their_places_are_accepted():
    flow = compile_flow(":start → A → :end\n:start → B → :start;")
    assert graph(flow) == parse_edges("START→A  A→END  START→B  B→START")


# -- subflows (§4) ---------------------------------------------------------------
@pytest.mark.parametrize(
    "text, where, words",
    [
        ("A → { B ]", (1, 9), ["]", "{"]),
        ("A → [ B\n}", (2, 1), ["}", "["]),
        ("A → { B → [ C } ]", (1, 15), ["}", "["]),
        ("A\n}", (2, 1), ["}"]),
        ("A → ]", (1, 5), ["]"]),
    ],
)
def test_mismatched_brackets(text, where, words):
    error = fails(text)
    assert at(error) == where
    for word in words:
        assert word in error.message


@pytest.mark.parametrize(
    "text, where",
    [
        ("A → {\n  B → C", (1, 5)),
        ("A → [ B → { C }", (1, 5)),
        ("X\nY → { { Z }", (2, 5)),
    ],
)
def test_unclosed_subflow_points_at_its_opening(text, where):
    error = fails(text)
    assert at(error) == where
    assert "unclosed" in error.message


@pytest.mark.parametrize(
    "text, where",
    [
        ("A → { B } (- a: 1 -)", (1, 11)),  # a subflow takes no parameters
        ("<- a: 1 -> () → A", (1, 12)),  # nor does a literal
        ("A (- a: 1 -) (- b: 2 -)", (1, 14)),  # one parameter value per invocation
        ("(- a: 1 -) → A", (1, 1)),
    ],
)
def test_parameters_only_after_a_name(text, where):
    assert at(fails(text)) == where


@pytest.mark.parametrize(
    "text, where",
    [
        ("A|", (1, 3)),
        ("A → |B", (1, 5)),
        ("A → B|→ C", (1, 7)),
    ],
)
def test_bar_needs_steps_on_both_sides(text, where):
    assert at(fails(text)) == where


@pytest.mark.parametrize(
    "text, where",
    [
        ("A →", (1, 4)),
        ("A →→ B", (1, 4)),
        ("→ A", (1, 1)),
        ("A → ;B", (1, 5)),
        ("A → ? `$[?(@.a)]` ? `$[?(@.b)]` B", (1, 19)),
        ("A → > > B", (1, 7)),
        ("A → * * B", (1, 7)),
        ("A → ? `$[?(@.a)]`", (1, 18)),
        ("A '''doc'''", (1, 3)),
        ("A → = B", (1, 5)),
    ],
)
def test_syntax_errors_point_at_the_offending_token(text, where):
    assert at(fails(text)) == where


def test_label_not_followed_by_a_step():
    error = fails("A;\n:x")
    assert at(error) == (2, 1) and ":x" in error.message


# -- declarations (§7) -------------------------------------------------------------
def test_flow_declaration_gives_name_doc_and_parameters():
    text = "@flow main (- retries: 2 -) '''The main flow.'''\nA"
    module = Parser().parse(text)
    assert module.flow.name == "main"
    assert module.flow.params.value == {"retries": 2}
    assert module.flow.doc == "The main flow."
    flow = compile_flow(text)
    assert (flow.name, flow.doc) == ("main", "The main flow.")


def test_flow_without_declaration_has_no_name():
    flow = compile_flow("A")
    assert flow.name is None and flow.doc is None


def test_second_flow_declaration_is_an_error_at_the_second():
    error = fails("@flow a\nA\n@flow b")
    assert at(error) == (3, 1) and "@flow" in error.message


def test_task_declaration_all_parts_in_order_with_semicolon():
    module = Parser().parse("@task X = A (- k: 1 -) '''Doc.''';\n@task S '''Sub.''' { B };\nX → S")
    x, s = module.tasks["X"], module.tasks["S"]
    assert (x.alias_of, x.params.value, x.doc, x.body) == ("A", {"k": 1}, "Doc.", None)
    assert (s.alias_of, s.params, s.doc) == (None, None, "Sub.")
    assert s.body is not None


@pytest.mark.parametrize(
    "text, where",
    [
        ("@task X '''doc''' (- a: 1 -)\nX", (1, 19)),  # documentation before parameters
        ("@task X (- a: 1 -) = A", (1, 20)),  # parameters before the alias
        ("@task X { A } '''doc'''", (1, 15)),  # subflow before documentation
    ],
)
def test_declaration_parts_have_a_fixed_order(text, where):
    assert at(fails(text)) == where


@pytest.mark.parametrize(
    "text, where, words",
    [
        ("@task A\n@task A\nB", (2, 7), "A"),
        ("@task X = A { B }", (1, 13), "alias"),
        ("@task S (- a: 1 -) { B }", (1, 9), "S"),
        ("A → { @task X (- a: 1 -) B }", (1, 7), "subflow"),
        ("@task", (1, 6), "name"),
        ("@task X =", (1, 10), "name"),
        ("@flow", (1, 6), "name"),
    ],
)
def test_declaration_errors(text, where, words):
    error = fails(text)
    assert at(error) == where
    assert words in error.message


@pytest.mark.parametrize("quote", ["'''", '"""'])
def test_doc_strings_span_lines_and_are_dedented(quote):
    text = f"@flow f {quote}\n    First line.\n      indented\n    Last.\n    {quote}\n@task A {quote}One.\n    Two.{quote}\nA"
    flow = compile_flow(text)
    assert flow.doc == "First line.\n  indented\nLast."
    assert flow.nodes[1].doc == "One.\nTwo."


def test_other_quote_inside_a_doc_string():
    assert compile_flow("@flow f '''say \"\"\"hi\"\"\"!'''").doc == 'say """hi"""!'
