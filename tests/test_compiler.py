"""From flow text to nodes and edges (LANGUAGE.md §1, §3–§7, §9.3, §9.6)."""

import json
import os
import time

import pytest
from graphs import graph, parse_edges
from hypothesis import given, settings
from hypothesis import strategies as st
from support import at, by_name, fails, kinds, one

from littleflow import FlowError, compile_flow
from littleflow.compiler import MAX_FLOW_BYTES


def edges(flow):
    return set(flow.edges())


# -- labels (§3.1) -------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, expected",
    [
        ("A → :x;\nB → :x;\n:x C", "START→A  START→B  START→C  A→C  B→C  C→END"),
        ("A → :x C;\nB → :x", "START→A  START→B  A→C  B→C  C→END"),
        (":before → A → B → C\nD → :before", "START→D  D→A  A→B  B→C  C→END"),
        (":before A → B → C\nD → :before", "START→A  START→D  D→A  A→B  B→C  C→END"),
    ],
)
def test_label_table_examples(text, expected):
    assert graph(compile_flow(text)) == parse_edges(expected)


def test_output_label_feeds_every_statement_starting_with_it():
    flow = compile_flow("A :o → B;\n:o → C;\n:o → D → E")
    assert graph(flow) == parse_edges("START→A  A→B  A→C  A→D  D→E  B→END  C→END  E→END")


def test_routed_input_label_feeds_every_statement_starting_with_it():
    flow = compile_flow("A → :x;\n:x → B;\n:x → C")
    assert graph(flow) == parse_edges("START→A  A→B  A→C  B→END  C→END")


def test_several_statements_meet_at_one_input():
    flow = compile_flow("A → :m D;\nB → :m;\nC → :m")
    assert graph(flow) == parse_edges("START→A  START→B  START→C  A→D  B→D  C→D  D→END")


@pytest.mark.parametrize("text", [":o → C;\nA :o → B", "A :o → B;\n:o → C"])
def test_labels_may_be_used_before_they_are_defined(text):
    assert graph(compile_flow(text)) == parse_edges("START→A  A→B  A→C  B→END  C→END")


def test_at_most_one_edge_between_two_nodes():
    flow = compile_flow("A :x → :x B")
    assert sorted(flow.edges()) == [(0, 1), (1, 2), (2, 3)]


@pytest.mark.parametrize(
    "text, where, kind",
    [
        ("A :x;\nB :x", (2, 3), "output"),
        ("A :x → B;\nC → D :x", (2, 7), "output"),
        (":x A;\n:x B", (2, 1), "input"),
        ("C → :x;\nA → :x B;\nD → :x E", (3, 5), "input"),
        ("X → { A :x; B :x }", (1, 15), "output"),
    ],
)
def test_duplicate_labels_are_reported_at_the_second_place(text, where, kind):
    error = fails(text)
    assert at(error) == where
    assert f"{kind} label :x already exists" in error.message


@pytest.mark.parametrize(
    "text, where",
    [
        ("A;\n  :nowhere → B", (2, 3)),  # :x → with no output :x and no statement ending → :x
        ("A\nB → :nowhere", (2, 5)),  # → :x with no step having input :x
        ("A → { B → :nowhere } → C", (1, 11)),
        ("A → { :nowhere → B }", (1, 7)),
    ],
)
def test_unknown_label_names_it_and_points_at_it(text, where):
    error = fails(text)
    assert at(error) == where
    assert ":nowhere" in error.message


def test_labels_are_local_to_their_subflow():
    error = fails("{ A :x };\n:x → B")
    assert at(error) == (2, 1) and ":x" in error.message
    error = fails("{ B → :y };\n:y C")
    assert at(error) == (1, 7) and ":y" in error.message


def test_same_label_in_different_subflows_are_different_labels():
    flow = compile_flow("{ A :x; :x → B } → { C :x; :x → D }")
    assert graph(flow) == parse_edges("START→A  A→B  A→C  B→C  C→D  C→END  D→END")


# -- :start and :end (§3.4) -------------------------------------------------------------
def test_routing_into_start_makes_a_cycle_edge_to_start():
    flow = compile_flow("A → B → :start;\nC")
    a, b = one(flow, "A").id, one(flow, "B").id
    assert edges(flow) == {(0, a), (a, b), (b, 0), (0, 3), (3, flow.end)}


def test_explicit_start_and_end_are_the_implicit_ones():
    assert edges(compile_flow(":start → A → :end")) == edges(compile_flow("A"))


def test_start_and_end_inside_a_subflow_are_its_own():
    flow = compile_flow("X → { :start → A → :end;\nB → :start;\nC } → Y")
    (start,) = (n for n in flow.nodes if n.kind == "subflow-start")
    (end,) = (n for n in flow.nodes if n.kind == "subflow-end")
    a, b, c = (one(flow, n).id for n in "ABC")
    assert {(start.id, a), (a, end.id), (start.id, b), (b, start.id), (start.id, c), (c, end.id)} <= edges(
        flow
    )
    assert (b, 0) not in edges(flow) and (a, flow.end) not in edges(flow)
    assert graph(flow) >= parse_edges("X→A  X→C  A→Y  C→Y  Y→END")


# -- the | shorthand (§3.3) ---------------------------------------------------------------
def test_bar_at_start_with_parameters():
    flow = compile_flow('A (- a: 1 -)|B({"b": 2})|C() → D')
    assert graph(flow) == parse_edges("START→A  START→B  START→C  A→D  B→D  C→D  D→END")
    assert [n.parameters for n in flow.nodes if n.kind == "task"] == [{"a": 1}, {"b": 2}, None, None]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("X → A|B|C → D", "START→X  X→A  X→B  X→C  A→D  B→D  C→D  D→END"),
        ("X → A|B", "START→X  X→A  X→B  A→END  B→END"),
        ("X → A|{ B → C } → D", "START→X  X→A  X→B  B→C  A→D  C→D  D→END"),
    ],
)
def test_bar_in_middle_and_at_end(text, expected):
    assert graph(compile_flow(text)) == parse_edges(expected)


def test_bar_in_middle_is_exactly_an_anonymous_subflow():
    bar, braces = compile_flow("A → X|Y → B"), compile_flow("A → { X Y } → B")
    assert kinds(bar) == kinds(braces)
    assert [n.name for n in bar.nodes] == [n.name for n in braces.nodes]
    assert edges(bar) == edges(braces)


# -- subflows (§4) --------------------------------------------------------------------------
def test_nested_subflows_with_both_bracket_kinds():
    flow = compile_flow("A → { B → [ C\nD ] → E\nF } → G")
    assert graph(flow) == parse_edges("START→A  A→B  A→F  B→C  B→D  C→E  D→E  E→G  F→G  G→END")
    assert kinds(flow).count("subflow-start") == kinds(flow).count("subflow-end") == 2


def test_subflow_start_and_end_nodes_are_paired():
    flow = compile_flow("A → { B { C } } → D")
    starts = [n for n in flow.nodes if n.kind == "subflow-start"]
    assert len(starts) == 2
    for start in starts:
        end = flow.nodes[start.pair]
        assert end.kind == "subflow-end" and end.pair == start.id
    assert [(s.id, s.pair) for s in starts] == [(2, 7), (4, 6)]  # the outer one encloses the inner one


def test_subflow_start_feeds_leftmost_and_end_waits_for_rightmost():
    flow = compile_flow("A → { B → C\nD } → E")
    start, end = (n.id for n in flow.nodes if n.kind.startswith("subflow"))
    b, c, d = (one(flow, n).id for n in "BCD")
    assert set(flow.successors(start)) == {b, d}
    assert set(flow.predecessors(end)) == {c, d}


def test_empty_subflow_passes_through():
    assert graph(compile_flow("A → {} → B")) == parse_edges("START→A  A→B  B→END")


# -- parameters (§5) ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, value",
    [
        ("A()", None),
        ("A ()", None),
        ("A(- {width: 640, height: 480} -)", {"width": 640, "height": 480}),
        ("A (- [1, two] -)", [1, "two"]),
        ('A ({"bucket": "thumbs"})', {"bucket": "thumbs"}),
        ('A ([1, {"a": null}])', [1, {"a": None}]),
        ("A\n   \n  (- a: 1 -)", {"a": 1}),
        ("A (-\nx:\n  y: 1\n  z: [1, 2]\nw: text\n-)", {"x": {"y": 1, "z": [1, 2]}, "w": "text"}),
        ("A (-\n  - one\n  - two:\n      deep: true\n-)", ["one", {"two": {"deep": True}}]),
        ("A (- |\n  line 1\n  line 2\n-)", "line 1\nline 2\n"),
        ('A ({"s": "-) }) > →"})', {"s": "-) }) > →"}),
    ],
)
def test_parameter_forms(text, value):
    (node,) = by_name(compile_flow(text), "A")
    assert node.parameters == value


def test_parameters_do_not_change_the_graph():
    assert graph(compile_flow("A (- a: 1 -) → B ([2]) → C ()")) == parse_edges("START→A  A→B  B→C  C→END")


def _json_message(text):
    with pytest.raises(json.JSONDecodeError) as caught:
        json.loads(text)
    return caught.value.msg


@pytest.mark.parametrize(
    "text, where, literal, parse",
    [
        ('A → B ({"a": 1,})', (1, 7), '{"a": 1,}', _json_message),
        ("X\n  B ([1, 2,])", (2, 5), "[1, 2,]", _json_message),
        ('<{"a": }> → A', (1, 1), '{"a": }', _json_message),
    ],
)
def test_malformed_literal_reports_its_place_and_the_parser_message(text, where, literal, parse):
    error = fails(text)
    assert at(error) == where
    assert parse(literal) in error.message


@pytest.mark.parametrize(
    "text, where, hint",
    [
        ("A (- {a: [1, 2 -)", (1, 3), "the '[' is not closed: end it with ']' … (at 1:10)"),
        ("A →\n B (-\n a: 1\n  b: 2\n -)", (2, 4), "unexpected ':': write key: value … (at 4:4)"),
        ("<- [1, ->\n→ A", (1, 1), "a value is missing here … in literal (at 1:8)"),
    ],
)
def test_malformed_yaml_says_how_to_write_it_and_where(text, where, hint):
    """Where YAML fails, the error is at the literal's opening, says how to write the value
    (not PyYAML's own words) and where exactly the trouble is."""
    error = fails(text)
    assert at(error) == where
    assert error.message.startswith("invalid YAML: ")
    for part in hint.split(" … "):
        assert part in error.message


@pytest.mark.parametrize(
    "tag",
    [
        "!!python/object/apply:os.system",
        "!!python/object/new:os.system",
        "!!python/name:os.system",
        "!!python/module:os",
    ],
)
def test_yaml_program_tags_are_rejected_and_never_executed(tag, tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    calls = []
    monkeypatch.setattr(os, "system", lambda *a: calls.append(a))
    error = fails(f'A (- {tag} ["touch {marker}"] -)')
    assert at(error) == (1, 3) and "tag" in error.message
    error = fails(f'<- x: {tag} ["touch {marker}"] -> → A')
    assert at(error) == (1, 1)
    assert not calls and not marker.exists()


def test_yaml_scalars_stay_plain_data():
    (node,) = compile_flow(
        "A (-\nday: 2024-01-02\nstamp: 2001-12-14T21:59:43Z\nanswer: yes\nswitch: on\nno: no\n"
        "count: 010\nclock: 1:20\nnothing: ~\nok: true\n-)"
    ).nodes[1:-1]
    assert node.parameters == {
        "day": "2024-01-02",
        "stamp": "2001-12-14T21:59:43Z",
        "answer": "yes",
        "switch": "on",
        "no": "no",
        "count": 10,
        "clock": "1:20",
        "nothing": None,
        "ok": True,
    }


# -- literal sources and resources (§6) ----------------------------------------------------------
@pytest.mark.parametrize(
    "text, value",
    [
        ("<>", {}),
        ("<- customer: C123 ->", {"customer": "C123"}),
        ("<-\n  a: 1\n  b: [x]\n->", {"a": 1, "b": ["x"]}),
        ('<{"a": [1, 2]}>', {"a": [1, 2]}),
        ('<[1, {"b": 2}]>', [1, {"b": 2}]),
    ],
)
def test_literal_sources(text, value):
    flow = compile_flow(f"{text} → lookup → notify")
    assert graph(flow) == parse_edges("START→<literal>  <literal>→lookup  lookup→notify  notify→END")
    literal = flow.nodes[1]
    assert (literal.kind, literal.value, literal.name) == ("literal", value, None)


def test_resources_read_at_start_and_write_at_end():
    flow = compile_flow("<in.json> → A → <out/result.json>\n<https://example.com/x?y=1> → B")
    source, sink, web = (n for n in flow.nodes if n.kind == "resource")
    assert (source.uri, source.mode) == ("in.json", "source")
    assert (sink.uri, sink.mode) == ("out/result.json", "sink")
    assert (web.uri, web.mode) == ("https://example.com/x?y=1", "source")
    assert (source.id, one(flow, "A").id) in edges(flow) and (sink.id, flow.end) in edges(flow)


def test_resources_with_parameters():
    flow = compile_flow("<in.yaml>(- content-type: application/yaml -) → A → <http://h/p>(- method: PUT -)")
    source, sink = (n for n in flow.nodes if n.kind == "resource")
    assert (source.mode, source.parameters) == ("source", {"content-type": "application/yaml"})
    assert (sink.mode, sink.parameters) == ("sink", {"method": "PUT"})


def test_resource_at_start_of_a_subflow_statement_is_a_source():
    flow = compile_flow("A → { <a.json> → B }")
    (resource,) = (n for n in flow.nodes if n.kind == "resource")
    assert resource.mode == "source"


# -- declarations (§7) ------------------------------------------------------------------------
def test_task_defaults_merge_key_by_key_invocation_wins():
    flow = compile_flow("@task A (- {x: 1, y: 2} -)\nA (-\n y: 9\n z: 3\n-) → A")
    first, second = by_name(flow, "A")
    assert first.parameters == {"x": 1, "y": 9, "z": 3}
    assert second.parameters == {"x": 1, "y": 2}


def test_empty_parameters_still_get_the_defaults():
    (node,) = by_name(compile_flow("@task A (- x: 1 -)\nA()"), "A")
    assert node.parameters == {"x": 1}


@pytest.mark.parametrize(
    "default, given, expected",
    [
        ("(- 5 -)", "(- 7 -)", 7),
        ("([1, 2])", "([3])", [3]),
        ('({"a": 1})', "(- text -)", "text"),
        ("(- text -)", '({"a": 1})', {"a": 1}),
    ],
)
def test_non_object_parameters_replace_the_default(default, given, expected):
    (node,) = by_name(compile_flow(f"@task A {default}\nA {given}"), "A")
    assert node.parameters == expected


@pytest.mark.parametrize(
    "default, given, words",
    [
        ("([1, 2])", '({"a": 1})', ["array", "object"]),
        ('({"a": 1})', "([1])", ["array", "object"]),
    ],
)
def test_object_versus_array_is_an_error_at_the_invocation(default, given, words):
    error = fails(f"@task A {default}\nX → A {given}")
    assert at(error) == (2, 7)
    for word in words + ["A"]:
        assert word in error.message


def test_alias_invokes_its_target_with_defaults():
    flow = compile_flow("@task X = A (- {k: 1, m: 2} -) '''Alias doc.'''\nX → X (- k: 5 -) → A")
    first, second, plain = flow.nodes[1:-1]
    assert (first.name, first.alias, first.parameters, first.doc) == (
        "A",
        "X",
        {"k": 1, "m": 2},
        "Alias doc.",
    )
    assert (second.name, second.alias, second.parameters) == ("A", "X", {"k": 5, "m": 2})
    assert (plain.name, plain.alias, plain.parameters) == ("A", None, None)


def test_alias_of_a_declared_task_starts_from_its_defaults():
    flow = compile_flow("@task A (- {a: 1, k: a} -) '''Task A.'''\n@task X = A (- k: x -)\nX")
    node = flow.nodes[1]
    assert (node.name, node.alias, node.parameters, node.doc) == ("A", "X", {"a": 1, "k": "x"}, "Task A.")


def test_alias_chains():
    flow = compile_flow(
        "@task X = Y (- {k: x, a: 1} -)\n@task Y = Z (- {k: y, b: 2} -)\n@task Z (- {k: z, c: 3} -)\nX → Y → Z"
    )
    x, y, z = flow.nodes[1:-1]
    assert [n.name for n in (x, y, z)] == ["Z", "Z", "Z"]
    assert [n.alias for n in (x, y, z)] == ["X", "Y", None]
    assert x.parameters == {"k": "x", "a": 1, "b": 2, "c": 3}
    assert y.parameters == {"k": "y", "b": 2, "c": 3}
    assert z.parameters == {"k": "z", "c": 3}


@pytest.mark.parametrize(
    "text, lines",
    [
        ("@task X = X\nA", {1}),
        ("@task X = Y\n@task Y = X\nX", {1, 2}),
        ("A\n@task X = Y\n@task Y = Z\n@task Z = X", {2, 3, 4}),
    ],
)
def test_alias_cycles_are_errors_at_a_declaration_in_the_cycle(text, lines):
    error = fails(text)
    assert error.line in lines and error.column == 1
    assert "X" in error.message


def test_named_subflow_expands_in_place_with_a_fresh_copy_per_invocation():
    flow = compile_flow("@task S { A :o → B;\n:o → C }\nX → S → S")
    assert kinds(flow) == ["start", "task"] + ["subflow-start", "task", "task", "task", "subflow-end"] * 2 + [
        "end"
    ]
    assert [n.id for n in by_name(flow, "A")] == [3, 8]
    assert graph(flow) == parse_edges(
        "START→X  X→A#1  A#1→B#1  A#1→C#1  B#1→A#2  C#1→A#2  A#2→B#2  A#2→C#2  B#2→END  C#2→END"
    )
    s1, s2 = (n for n in flow.nodes if n.kind == "subflow-start")
    assert s1.name == s2.name == "S" and s1.id != s2.id


def test_named_subflow_used_inside_another():
    flow = compile_flow("@task Outer { Inner → C }\n@task Inner { A | B }\nOuter → Outer")
    assert len(by_name(flow, "A")) == 2 and len(by_name(flow, "C")) == 2
    assert graph(flow) == parse_edges(
        "START→A#1  START→B#1  A#1→C#1  B#1→C#1  C#1→A#2  C#1→B#2  A#2→C#2  B#2→C#2  C#2→END"
    )


@pytest.mark.parametrize(
    "text, where",
    [
        ("@task S { A → S }\nS", (1, 15)),
        ("@task S { T }\n@task T { A → S }\nS", (2, 15)),
    ],
)
def test_named_subflow_recursion_is_an_error(text, where):
    error = fails(text)
    assert at(error) == where and "S" in error.message


def test_named_subflow_invocation_takes_no_parameters():
    error = fails("@task S { A }\nX → S (- a: 1 -)")
    assert at(error) == (2, 7) and "S" in error.message


def test_declarations_apply_to_the_whole_flow_wherever_they_stand():
    flow = compile_flow("A → X → S\n@task A (- a: 1 -)\nB\n@task X = B '''an alias'''\n@task S { C }")
    assert one(flow, "A").parameters == {"a": 1}
    assert (one(flow, "X").name, one(flow, "X").doc) == ("B", "an alias")
    assert graph(flow) == parse_edges("START→A  A→X  X→C  C→END  START→B  B→END")


def test_task_doc_goes_on_every_invocation():
    flow = compile_flow("@task get_basket '''Pick up a basket'''\nget_basket → pick → get_basket")
    assert [n.doc for n in flow.nodes[1:-1]] == ["Pick up a basket", None, "Pick up a basket"]


# -- merge, guards, iteration (§8, §9.3, §9.6) ---------------------------------------------------
def test_merge_before_a_step():
    flow = compile_flow("A → :x > B;\nC → :x")
    assert [n.merge for n in flow.nodes] == [False, False, True, False, False]


def test_merge_into_end():
    flow = compile_flow("A → > :end;\nB")
    assert flow.nodes[flow.end].merge is True
    assert graph(flow) == parse_edges("START→A  START→B  A→END  B→END")


def test_merge_before_a_subflow_and_into_its_end():
    flow = compile_flow("A → > { B C } → { D → > :end }")
    s1, e1, s2, e2 = (n for n in flow.nodes if n.kind.startswith("subflow"))
    assert (s1.merge, e1.merge, s2.merge, e2.merge) == (True, False, False, True)
    assert flow.nodes[flow.end].merge is False


def test_guard_is_stored_on_its_step():
    flow = compile_flow("check → ? `$[?(@.status == 0)]` ship → notify")
    assert [n.guard for n in flow.nodes] == [None, None, "$[?(@.status == 0)]", None, None]
    assert graph(flow) == parse_edges("START→check  check→ship  ship→notify  notify→END")


def test_single_equals_guard_is_accepted():
    assert one(compile_flow("?`$[?(@.status=0)]` A"), "A").guard == "$[?(@.status=0)]"


@pytest.mark.parametrize("text", ["A → ? `$[?(@.a)]` { B → C }", "@task S { B → C }\nA → ? `$[?(@.a)]` S"])
def test_guard_before_a_subflow_is_on_its_start(text):
    flow = compile_flow(text)
    (start,) = (n for n in flow.nodes if n.kind == "subflow-start")
    assert start.guard == "$[?(@.a)]"
    assert [n.guard for n in flow.nodes if n is not start] == [None] * (len(flow) - 1)


@pytest.mark.parametrize(
    "text, where",
    [
        ("A →\n  ? `$[?(@.a ==]` B", (2, 3)),
        ("A → ? `status == 0` B", (1, 5)),
        ("A → { B\n C → ?`$[?(@.a === 1)]` D }", (2, 6)),
    ],
)
def test_malformed_guard_is_an_error_at_the_guard(text, where):
    error = fails(text)
    assert at(error) == where and "guard" in error.message


@pytest.mark.parametrize("text", ["* A", "X → * A → Y"])
def test_iterate_a_task(text):
    assert one(compile_flow(text), "A").iterate is True
    assert [n.iterate for n in compile_flow(text).nodes].count(True) == 1


@pytest.mark.parametrize("text", ["X → * { A → B }", "@task S { A → B }\nX → * S"])
def test_iterate_a_subflow_marks_its_start(text):
    flow = compile_flow(text)
    assert [n.kind for n in flow.nodes if n.iterate] == ["subflow-start"]


def test_label_guard_merge_and_iterate_together():
    flow = compile_flow("A → :x ? `$[?(@.a)]` > * B :y;\nC → :x;\n:y → D")
    b = one(flow, "B")
    assert (b.guard, b.merge, b.iterate) == ("$[?(@.a)]", True, True)
    assert graph(flow) == parse_edges("START→A  START→C  A→B  C→B  B→D  B→END  D→END")


# -- node order and positions --------------------------------------------------------------------
def test_nodes_are_in_source_order_start_first_end_last():
    flow = compile_flow("A → { B → C\n  D } → E\n<- x: 1 -> → F\n<o.json> ")
    assert [(n.kind, n.name) for n in flow.nodes] == [
        ("start", None),
        ("task", "A"),
        ("subflow-start", None),
        ("task", "B"),
        ("task", "C"),
        ("task", "D"),
        ("subflow-end", None),
        ("task", "E"),
        ("literal", None),
        ("task", "F"),
        ("resource", None),
        ("end", None),
    ]
    assert [n.id for n in flow.nodes] == list(range(len(flow)))


def test_node_line_and_column():
    flow = compile_flow("# comment\nfetch → clean\n   → { store }\n  <- a: 1 -> → café → x")
    where = {n.name or n.kind: (n.line, n.column) for n in flow.nodes if n.kind != "subflow-end"}
    assert where["fetch"] == (2, 1)
    assert where["clean"] == (2, 9)
    assert where["subflow-start"] == (3, 6)
    assert where["store"] == (3, 8)
    assert where["literal"] == (4, 3)
    assert where["café"] == (4, 16)
    assert where["x"] == (4, 23)


def test_alias_cycle_message_shows_the_loop():
    error = fails("@task X = Y\n@task Y = Z\n@task Z = Y\nX\n")
    assert "aliases form a cycle: Y → Z → Y" in error.message


def test_flow_declaration_parameters_reach_the_flow():
    flow = compile_flow("@flow f (- retries: 2 -) '''Doc'''\nA\n")
    assert (flow.name, flow.doc, flow.parameters) == ("f", "Doc", {"retries": 2})
    assert flow.to_json()["parameters"] == {"retries": 2}


def test_named_subflow_doc_is_on_its_start_node():
    flow = compile_flow("@task X '''Two steps''' { A → B }\nX\n")
    start = next(n for n in flow.nodes if n.kind == "subflow-start")
    assert (start.name, start.doc) == ("X", "Two steps")


# -- the node limit ------------------------------------------------------------------
def chain(levels: int) -> str:
    """Named subflows that each invoke the one before twice: ``2**(levels + 1)`` tasks from a short text."""
    return (
        "@task S1 { A A }\n"
        + "".join(f"@task S{i} {{ S{i - 1} S{i - 1} }}\n" for i in range(2, levels + 1))
        + f"S{levels}\n"
    )


def test_a_chain_of_named_subflows_is_refused_before_it_is_built():
    text = chain(30)
    began = time.perf_counter()
    with pytest.raises(FlowError) as caught:
        compile_flow(text)
    print(f"{len(text)}-byte chain of 30 named subflows refused in {time.perf_counter() - began:.4f} s")
    assert caught.value.message == "the flow would have 3,221,225,472 nodes, more than the limit of 5,000,000"
    assert at(caught.value) == (31, 1)  # the use of S30


@pytest.mark.parametrize(
    "text, limit, where",
    [
        ("A B C D", 4, (1, 7)),  # START A B C: D is the fifth node
        ("A { B C } D", 4, (1, 7)),  # START A { B: C, inside the subflow
        ("@task S { B C }\nA S D", 4, (2, 3)),  # a named subflow counts whole (4 nodes) at its use
        ("A B", 3, (1, 4)),  # the END node: the end of the text
    ],
)
def test_the_error_is_at_the_step_that_crosses_the_limit(text, limit, where):
    with pytest.raises(FlowError) as caught:
        compile_flow(text, max_nodes=limit)
    assert at(caught.value) == where
    assert caught.value.message.endswith(f"nodes, more than the limit of {limit}")


def test_a_named_subflow_invoking_itself_is_still_named_and_deep_chains_are_nesting_errors():
    assert fails("@task S { A T }\n@task T = S\nS\n").message == "named subflow T invokes itself"
    deep = "".join(f"@task S{i} {{ S{i + 1} }}\n" for i in range(400)) + "@task S400 { A }\nS0\n"
    assert fails(deep).message == "subflows nested more than 100 deep"


_NAMES = st.sampled_from(["A", "B", "<>", "<- x: 1 ->", "<in.json>"])


def _steps(names: list[str]):
    leaf = st.one_of(_NAMES, st.sampled_from(names)) if names else _NAMES
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.lists(inner, min_size=1, max_size=3).map(lambda items: "{ " + " → ".join(items) + " }"),
            st.lists(inner, min_size=0, max_size=3).map(lambda items: "[ " + " ; ".join(items) + " ]"),
            st.lists(st.one_of(_NAMES, st.sampled_from(names or ["A"])), min_size=2, max_size=3).map(
                " | ".join
            ),
        ),
        max_leaves=6,
    )


@st.composite
def flows_with_named_subflows(draw):
    names: list[str] = []
    lines = []
    for i in range(draw(st.integers(0, 4))):
        body = draw(st.lists(_steps(names), min_size=1, max_size=3))
        lines.append(f"@task N{i} {{ {' → '.join(body)} }}")
        names.append(f"N{i}")
    lines.append(" → ".join(draw(st.lists(_steps(names), min_size=1, max_size=4))))
    return "\n".join(lines)


@settings(max_examples=200, deadline=None)
@given(flows_with_named_subflows())
def test_the_predicted_node_count_is_the_count_built(text):
    nodes = len(compile_flow(text).nodes)
    assert len(compile_flow(text, max_nodes=nodes).nodes) == nodes
    with pytest.raises(FlowError) as caught:
        compile_flow(text, max_nodes=nodes - 1)
    assert (
        caught.value.message == f"the flow would have {nodes:,} nodes, more than the limit of {nodes - 1:,}"
    )


def heavy(uses: int, declaration: str = '@task T (- {x: &a "%s", y: [%s]} -)\n') -> str:
    """A declared default of about 1 MB (a 1,000-byte string named 1,000 times) used ``uses`` times."""
    return declaration % ("x" * 1000, ",".join(["*a"] * 1000)) + " ".join(["T"] * uses)


def test_declared_defaults_and_named_subflows_count_their_parameters_at_every_use():
    began = time.perf_counter()
    error = fails(heavy(200))  # 4 kB of text; its steps would carry 200 MB of parameters
    print(f"4 kB of text carrying 200 MB of parameters refused in {time.perf_counter() - began:.4f} s")
    assert error.message.startswith("the flow's steps would carry 200,802,800 bytes of parameters and values")
    assert error.message.endswith(f"more than the limit of {MAX_FLOW_BYTES:,}")
    assert at(error) == (2, 133)  # the 67th T: 67 × 1,004,014 bytes is the first past 64 MiB
    compile_flow(heavy(66))
    subflow = heavy(0, '@task T { <- {x: &a "%s", y: [%s]} -> A }\n') + "{ " + " ".join(["T"] * 70) + " }"
    assert "bytes of parameters and values" in fails(subflow).message
    own = "\n".join(f'A{i} (- {{x: &a "{"x" * 1000}", y: [{",".join(["*a"] * 1000)}]}} -)' for i in range(16))
    assert len(compile_flow(own).nodes) == 18  # each step's own parameters count once, as written
