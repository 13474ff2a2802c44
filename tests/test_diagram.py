"""Mermaid and DOT pictures of hand-built flows."""

from __future__ import annotations

import json
import re
import subprocess
import xml.etree.ElementTree as ET

import pytest
from support import need_command

from littleflow import compile_flow
from littleflow.diagram import STATUSES, dot, mermaid, mermaid_id, svg
from littleflow.drawing import COLOURS
from littleflow.flow import Flow, Node


def chain(*middle: Node, name: str | None = None, doc: str | None = None) -> Flow:
    """START → each node in turn → END, ids renumbered from 1."""
    nodes = [Node(0, "start")]
    for i, node in enumerate(middle, 1):
        node.id = i
        nodes.append(node)
    nodes.append(Node(len(nodes), "end"))
    return Flow(nodes, [(i, i + 1) for i in range(len(nodes) - 1)], name=name, doc=doc)


def subflow() -> Flow:
    """A → { B  C } → D, the braces being nodes 2 and 5."""
    nodes = [
        Node(0, "start"),
        Node(1, "task", "A", line=1, column=1),
        Node(2, "subflow-start", pair=5),
        Node(3, "task", "B"),
        Node(4, "task", "C"),
        Node(5, "subflow-end", pair=2),
        Node(6, "task", "D"),
        Node(7, "end"),
    ]
    return Flow(nodes, [(0, 1), (1, 2), (2, 3), (2, 4), (3, 5), (4, 5), (5, 6), (6, 7)])


def body(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()]


# ---- Mermaid ----------------------------------------------------------------


def test_task_state_ids_replace_colon_and_hyphen():
    flow = chain(Node(0, "task", "my:peel-banana"), Node(0, "task", "wait:delay"))
    text = mermaid(flow)
    assert text.startswith("stateDiagram-v2\n")
    lines = body(text)
    assert "[*] --> my_COLON_peel_HYPHEN_banana.1" in lines
    assert "my_COLON_peel_HYPHEN_banana.1 --> wait_COLON_delay.2" in lines
    assert "wait_COLON_delay.2 --> [*]" in lines
    # the real name is what the picture shows
    assert 'state "wait#58;delay" as wait_COLON_delay.2' in lines


def test_alias_names_the_state():
    flow = chain(Node(0, "task", "fetch", alias="get-page"))
    assert mermaid_id(flow.nodes[1]) == "get_HYPHEN_page.1"
    assert 'state "get-page" as get_HYPHEN_page.1' in body(mermaid(flow))


def test_unicode_digits_and_underscores_are_kept_in_ids():
    flow = chain(Node(0, "task", "café_2"), Node(0, "task", "日本"))
    assert [mermaid_id(n) for n in flow.nodes[1:3]] == ["café_2.1", "日本.2"]


@pytest.mark.parametrize("name", ["default", "Default", "CLICK", "click", "href", "defaulté"])
def test_names_mermaid_reads_as_keywords_get_an_underscore(name):
    node = Node(3, "task", name)
    assert mermaid_id(node) == "_" + name + ".3"


@pytest.mark.parametrize("name", ["defaults", "default_x", "clicker", "default-x", "DEFAULT:x"])
def test_names_that_only_start_like_keywords_are_left_alone(name):
    assert mermaid_id(Node(1, "task", name)) == name.replace("-", "_HYPHEN_").replace(":", "_COLON_") + ".1"


def test_start_and_end_are_the_pseudo_state():
    flow = Flow([Node(0, "start"), Node(1, "end")], [(0, 1)])
    assert mermaid_id(flow.nodes[0]) == mermaid_id(flow.nodes[1]) == "[*]"
    assert "[*] --> [*]" in body(mermaid(flow))


def test_subflow_start_and_end_are_fork_and_join():
    lines = body(mermaid(subflow()))
    assert "state fork.2 <<fork>>" in lines
    assert "state join.5 <<join>>" in lines
    assert "A.1 --> fork.2" in lines
    assert "fork.2 --> B.3" in lines and "fork.2 --> C.4" in lines
    assert "B.3 --> join.5" in lines and "join.5 --> D.6" in lines


def test_edges_follow_node_order_and_output_is_deterministic():
    flow = subflow()
    text = mermaid(flow)
    arrows = [line for line in body(text) if "-->" in line]
    assert arrows == [
        "[*] --> A.1",
        "A.1 --> fork.2",
        "fork.2 --> B.3",
        "fork.2 --> C.4",
        "B.3 --> join.5",
        "C.4 --> join.5",
        "join.5 --> D.6",
        "D.6 --> [*]",
    ]
    assert mermaid(Flow.loads(flow.dumps())) == text


def test_literal_is_labelled_with_compact_escaped_json():
    flow = chain(Node(0, "literal", value={"customer": "C123", "n": [1, 2]}), Node(0, "task", "lookup"))
    lines = body(mermaid(flow))
    assert 'state "{#quot;customer#quot;#58;#quot;C123#quot;,#quot;n#quot;#58;[1,2]}" as literal.1' in lines
    assert "[*] --> literal.1" in lines and "literal.1 --> lookup.2" in lines


def test_long_literal_is_truncated_with_an_ellipsis():
    flow = chain(Node(0, "literal", value={"text": "x" * 100}))
    label = re.search(r'state "(.*)" as literal\.1', mermaid(flow)).group(1)
    assert label.endswith("…") and "x" * 28 in label and "x" * 40 not in label


def test_resource_is_labelled_with_its_uri():
    flow = chain(Node(0, "resource", uri="data/points.jsonseq", mode="source"), Node(0, "task", "score"))
    assert 'state "#lt;data/points.jsonseq#gt;" as resource.1' in body(mermaid(flow))


def test_quotes_and_syntax_characters_in_labels_become_entity_codes():
    flow = chain(Node(0, "literal", value='say "hi" #1; 50% a:b *x* _y_ ~ \\ `z` <&>'))
    label = re.search(r'state "(.*)" as literal\.1', mermaid(flow)).group(1)
    bare = re.sub(r"#\w+;", "", label)
    for raw in '"#;%:*_~\\`<&>':
        assert raw not in bare, raw
    assert label.startswith("#quot;say #92;#quot;hi#92;#quot; #35;1#59; 50#37; a#58;b #42;x#42; #95;y#95;")


def test_text_that_mermaid_lexes_as_a_whole_line_is_defused():
    flow = chain(Node(0, "task", "t", guard="$.direction LR", doc="first\nend note here\nlast"))
    text = mermaid(flow)
    assert "direction LR" not in text.replace("  direction LR\n", "", 1)
    assert "direction#32;LR" in text
    assert "end#32;note here" in text


def test_guard_iterate_and_merge_show_on_the_task():
    flow = chain(Node(0, "task", "ship", guard="$[?(@.status == 0)]", iterate=True, merge=True))
    lines = body(mermaid(flow))
    assert 'state "#gt; #42; ship" as ship.1' in lines
    assert "ship.1 : ? $[?(@.status == 0)]" in lines


def test_modifiers_of_a_subflow_or_end_label_the_arrows_into_it():
    flow = subflow()
    flow.nodes[2].guard = "$.go"
    flow.nodes[2].name = "Sub"
    flow.nodes[7].merge = True
    lines = body(mermaid(flow))
    assert "A.1 --> fork.2 : ? $.go Sub" in lines
    assert "D.6 --> [*] : #gt;" in lines


def test_one_line_doc_is_a_short_note():
    flow = chain(Node(0, "task", "A", doc="Loads: the data; fast"))
    assert "note right of A.1 : Loads#58; the data#59; fast" in body(mermaid(flow))


def test_multi_line_doc_is_a_note_block():
    flow = chain(Node(0, "task", "wait:delay", doc="\n    Waits.\n    Then goes on.\n    "))
    text = mermaid(flow)
    assert "  note right of wait_COLON_delay.1\n    Waits.\n    Then goes on.\n  end note\n" in text


def test_direction():
    flow = chain(Node(0, "task", "A"))
    assert "  direction LR" in mermaid(flow).splitlines()
    assert "  direction TB" in mermaid(flow, vertical=True).splitlines()


def test_flow_name_is_the_title_and_doc_a_comment():
    flow = chain(Node(0, "task", "A"), name='nightly "run"', doc="Runs nightly.\nTwice.")
    lines = mermaid(flow).splitlines()
    assert lines[:4] == ["---", 'title: "nightly \\"run\\""', "---", "stateDiagram-v2"]
    assert "  %% Runs nightly." in lines and "  %% Twice." in lines
    assert not mermaid(chain(Node(0, "task", "A"))).startswith("---")


def test_status_colours_states_with_classes():
    flow = subflow()
    text = mermaid(flow, status={0: "done", 1: "done", 2: "done", 3: "running", 4: "failed", 6: "waiting"})
    lines = body(text)
    classdefs = [line.split()[1] for line in lines if line.startswith("classDef ")]
    assert classdefs == ["done", "running", "failed", "waiting"]  # only those used, fixed order
    assert "[*] --> A.1:::done" in lines  # START itself is never classed
    assert "A.1 --> fork.2:::done" in lines
    assert "fork.2 --> B.3:::running" in lines
    assert "fork.2 --> C.4:::failed" in lines
    assert "join.5 --> D.6:::waiting" in lines
    assert text.count(":::") == 5  # each state once, at its first arrow
    assert "classDef" not in mermaid(flow)


def test_status_of_a_node_without_arrows_is_a_line_of_its_own():
    flow = Flow([Node(0, "start"), Node(1, "task", "lonely"), Node(2, "end")], [(0, 2)])
    assert "lonely.1:::skipped" in body(mermaid(flow, status={1: "skipped"}))


@pytest.mark.parametrize("status", [{1: "finished"}, {99: "done"}])
def test_bad_status_is_rejected(status):
    flow = chain(Node(0, "task", "A"))
    with pytest.raises(ValueError):
        mermaid(flow, status=status)
    with pytest.raises(ValueError):
        dot(flow, status=status)


def test_every_status_has_a_class():
    flow = chain(*(Node(0, "task", f"t{i}") for i in range(6)))
    states = ["done", "running", "failed", "skipped", "waiting", "terminated"]
    text = mermaid(flow, status={i + 1: s for i, s in enumerate(states)})
    for s in states:
        assert f"classDef {s} fill:#" in text and f":::{s}" in text


# ---- DOT --------------------------------------------------------------------


def test_dot_structure():
    text = dot(subflow())
    lines = body(text)
    assert lines[0] == 'digraph "flow" {' and lines[-1] == "}"
    assert "rankdir=LR;" in lines
    assert re.search(r'n0 \[shape="circle"', text) and re.search(r'n7 \[shape="doublecircle"', text)
    assert re.search(r'n1 \[shape="box", label="A"', text)
    assert re.search(r'n2 \[shape="diamond"', text) and re.search(r'n5 \[shape="diamond"', text)
    assert [line for line in lines if "->" in line] == [
        "n0 -> n1;",
        "n1 -> n2;",
        "n2 -> n3;",
        "n2 -> n4;",
        "n3 -> n5;",
        "n4 -> n5;",
        "n5 -> n6;",
        "n6 -> n7;",
    ]
    assert "rankdir=TB;" in body(dot(subflow(), vertical=True))


def test_dot_names_the_graph_after_the_flow_and_labels_literals_and_resources():
    flow = chain(
        Node(0, "literal", value=[1, 2]), Node(0, "resource", uri="out.json", mode="sink"), name="my flow"
    )
    text = dot(flow)
    assert text.startswith('digraph "my flow" {')
    assert 'n1 [shape="note", label="[1,2]"]' in text
    assert 'n2 [shape="cylinder", label="<out.json>"]' in text


def test_dot_escapes_quotes_backslashes_and_newlines():
    flow = chain(
        Node(0, "literal", value='a "b" \\n'), Node(0, "task", "t", guard="$.x", doc='one\n"two"'), name='q"n'
    )
    text = dot(flow)
    assert text.startswith('digraph "q\\"n" {')
    assert 'label="\\"a \\\\\\"b\\\\\\" \\\\\\\\n\\""' in text  # JSON "a \"b\" \\n", then DOT-escaped
    assert 'label="t\\n? $.x"' in text
    assert 'tooltip="one\\n\\"two\\""' in text
    assert "\n" not in "".join(line for line in text.splitlines())  # no raw newline inside a statement


def test_dot_status_fills_nodes():
    text = dot(subflow(), status={1: "done", 3: "failed", 0: "done"})
    assert re.search(r'n1 \[shape="box", label="A", style="rounded,filled", fillcolor="#[0-9a-f]{6}"', text)
    assert re.search(r'n3 \[[^]]*fillcolor="#ffcdd2"', text)
    assert 'n0 [shape="circle", label="", width="0.25", style="filled", fillcolor="black"]' in text


def test_graphviz_accepts_the_output():
    need_command("dot", "Graphviz, to check `doc --format dot`")
    flow = subflow()
    flow.nodes[2].guard, flow.nodes[2].name, flow.nodes[7].merge = '$[?(@.a == "x")]', "Sub", True
    extra = chain(
        Node(0, "literal", value={"k": 'v "q" \\ \n {x|y} <b>'}, doc='line 1\nline "2"'),
        Node(0, "resource", uri='file:a "b".json'),
        Node(0, "task", "my:peel-banana", alias="日本", iterate=True, merge=True, guard="$.x"),
        name='odd "name" \\',
        doc="Flow\ndoc",
    )
    for f in (flow, extra):
        for text in (dot(f), dot(f, vertical=True, status={1: "done", 2: "terminated"})):
            result = subprocess.run(["dot", "-Tsvg"], input=text, capture_output=True, text=True, timeout=60)
            assert result.returncode == 0, result.stderr
            assert "Warning" not in result.stderr and "Error" not in result.stderr, result.stderr


# ---- SVG --------------------------------------------------------------------

SVG = "{http://www.w3.org/2000/svg}"


def parsed(text: str) -> ET.Element:
    root = ET.fromstring(text)
    assert root.tag == f"{SVG}svg"
    return root


def svg_nodes(root: ET.Element) -> dict[int, ET.Element]:
    groups = [g for g in root.iter(f"{SVG}g") if "node" in g.get("class", "").split()]
    return {int(g.get("data-node")): g for g in groups}


def texts(element: ET.Element) -> list[str]:
    return [t.text or "" for t in element.iter(f"{SVG}text")]


def test_svg_is_a_standalone_document_sized_by_its_layout():
    text = svg(subflow())
    assert text.startswith('<svg xmlns="http://www.w3.org/2000/svg"')
    root = parsed(text)
    _, _, w, h = map(float, root.get("viewBox").split())
    assert (float(root.get("width")), float(root.get("height"))) == (w, h)
    assert root.find(f"{SVG}style") is not None and root.find(f"{SVG}defs/{SVG}marker") is not None
    wide, tall = parsed(svg(subflow(), vertical=True)).get("viewBox").split()[2:]
    assert float(wide) < w and float(tall) > h


def test_svg_has_one_group_per_node_and_one_path_per_edge():
    flow = subflow()
    root = parsed(svg(flow))
    nodes = svg_nodes(root)
    assert sorted(nodes) == list(range(len(flow)))
    for node in flow.nodes:
        group = nodes[node.id]
        assert group.get("class") == f"node kind-{node.kind}"
        assert group.find(f"{SVG}title") is not None
        assert [e for e in group if "shape" in e.get("class", "")]
    assert texts(nodes[1]) == ["A"] and texts(nodes[0]) == [] and texts(nodes[2]) == []
    edges = [e for e in root.iter(f"{SVG}path") if e.get("class") == "edge"]
    assert [(int(e.get("data-from")), int(e.get("data-to"))) for e in edges] == list(flow.edges())
    assert all(re.fullmatch(r"M[\d.,]+([LC][\d., ]+)+", e.get("d")) for e in edges)


def test_svg_shows_marks_guards_and_labels_on_arrows_like_mermaid():
    flow = chain(
        Node(0, "task", "ship", guard="$[?(@.status == 0)]", iterate=True, merge=True),
        Node(0, "literal", value={"k": [1, 2]}),
        Node(0, "resource", uri="out.json", mode="sink"),
    )
    nodes = svg_nodes(parsed(svg(flow)))
    assert texts(nodes[1]) == ["> * ship", "? $[?(@.status == 0)]"]
    assert texts(nodes[2]) == ['{"k":[1,2]}'] and texts(nodes[3]) == ["<out.json>"]
    flow = subflow()
    flow.nodes[2].guard, flow.nodes[2].name, flow.nodes[7].merge = "$.go", "Sub", True
    root = parsed(svg(flow))
    labels = {
        (int(t.get("data-from")), int(t.get("data-to"))): t.text
        for t in root.iter(f"{SVG}text")
        if t.get("class") == "edge-label"
    }
    assert labels == {(1, 2): "? $.go Sub", (6, 7): ">"}


def test_svg_cuts_long_text_but_keeps_it_whole_in_the_title():
    name = "a_task_with_a_name_far_longer_than_forty_characters"
    nodes = svg_nodes(parsed(svg(chain(Node(0, "task", name, alias=None, doc="Does it.")))))
    (shown,) = texts(nodes[1])
    assert len(shown) == 40 and shown.endswith("…")
    assert nodes[1].find(f"{SVG}title").text.splitlines() == [name, "task", "Does it."]


def test_svg_status_classes_and_their_colours():
    flow = subflow()
    assert "status-" not in "".join(g.get("class") for g in svg_nodes(parsed(svg(flow))).values())
    text = svg(flow, status={1: "done", 3: "running", 4: "failed"})
    nodes = svg_nodes(parsed(text))
    assert nodes[1].get("class") == "node kind-task status-done"
    assert nodes[3].get("class").endswith(" status-running") and nodes[4].get("class").endswith(
        " status-failed"
    )
    assert nodes[6].get("class") == "node kind-task status-waiting"  # not given: waiting
    style = parsed(text).find(f"{SVG}style").text
    for status in STATUSES:  # every status, so that a page may switch a node to any of them
        fill, stroke = COLOURS[status]
        assert f".status-{status} .shape{{fill:{fill};stroke:{stroke}}}" in style
    with pytest.raises(ValueError):
        svg(flow, status={1: "finished"})


def test_svg_is_compact():
    text = svg(subflow(), status={1: "done"})
    assert " style=" not in text
    assert not re.search(r"\d\.\d\d", text.split("</style>")[1])  # one decimal at most


def test_svg_escapes_every_text_from_the_flow():
    hostile = "</text><script>alert(\"x\")</script><text a='1'>&amp;"
    flow = chain(
        Node(0, "literal", value=hostile),
        Node(0, "task", 'x"><script>', alias="a&b<c>", guard='$[?(@.a == "<b>")]', doc=hostile),
        Node(0, "resource", uri='a"b<c>.json'),
        name=hostile,
        doc=hostile,
    )
    flow.nodes[0].kind = 'start" onload="alert(1)'  # even a kind from hand-written JSON
    for text in (svg(flow), svg(flow, vertical=True, status={1: "done"})):
        assert "<script" not in text
        root = parsed(text)
        assert not list(root.iter(f"{SVG}script"))
        assert all(not name.startswith("on") for e in root.iter() for name in e.attrib)
        assert root.find(f"{SVG}title").text == hostile
        nodes = svg_nodes(root)
        assert nodes[0].get("class").startswith('node kind-start" onload="alert(1)')
        assert hostile[:20] in texts(nodes[1])[0]
        assert nodes[1].find(f"{SVG}title").text == json.dumps(hostile, ensure_ascii=False) + "\nliteral"
        assert texts(nodes[2]) == ["a&b<c>", '? $[?(@.a == "<b>")]']
        assert texts(nodes[3]) == ['<a"b<c>.json>']


NOT_XML = "\x01\x08\x0b\x1f\ufffe\uffff"  # characters XML 1.0 cannot hold


def test_svg_replaces_characters_xml_cannot_hold():
    flow = compile_flow('@flow F """doc \x01 \uffff"""\nA → <{"v": "\\uffff\\ufffe"}> → <urn:x\x02y> → B')
    root = parsed(svg(flow))
    nodes = svg_nodes(root)
    assert texts(nodes[2]) == ['{"v":"\ufffd\ufffd"}'] and texts(nodes[3]) == ["<urn:x\ufffdy>"]
    assert root.find(f"{SVG}desc").text == "doc \ufffd \ufffd"
    hand = chain(
        Node(0, "task", "t" + NOT_XML, alias="a" + NOT_XML, guard="$" + NOT_XML, doc=NOT_XML),
        Node(0, "literal", value=NOT_XML),
        name=NOT_XML,
        doc=NOT_XML,
    )
    hand.nodes[0].kind = "start" + NOT_XML
    for text in (svg(hand), svg(hand, vertical=True, status={1: "done"})):
        root = parsed(text)
        assert root.find(f"{SVG}title").text == "\ufffd" * len(NOT_XML)
        assert svg_nodes(root)[0].get("class").startswith("node kind-start\ufffd")
        assert texts(svg_nodes(root)[1])[0] == "a" + "\ufffd" * len(NOT_XML)


def test_graphviz_makes_well_formed_svg_of_characters_xml_cannot_hold():
    need_command("dot", "Graphviz, to check `doc --format dot`")
    flow = chain(
        Node(0, "literal", value="\uffff"),
        Node(0, "task", "t", guard="$" + NOT_XML, doc=NOT_XML),
        name="n" + NOT_XML,
        doc=NOT_XML,
    )
    result = subprocess.run(
        ["dot", "-Tsvg"], input=dot(flow), capture_output=True, check=False, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    ET.fromstring(result.stdout)
