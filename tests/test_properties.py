"""Property tests of the parser and compiler: random text never breaks them, and
random valid flows compile and round-trip through JSON unchanged."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from littleflow import Flow, FlowError, compile_flow

FRAGMENTS = [
    "A",
    "B",
    "my:task-1",
    "_x",
    "→",
    "->",
    "-",
    ">",
    "*",
    "|",
    ";",
    ":x",
    ":y",
    ":start",
    ":end",
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    "()",
    "(- a: 1 -)",
    "(-",
    "-)",
    '({"a": 1})',
    "([1, 2])",
    "({",
    "<>",
    "<- b: 2 ->",
    "<-",
    "->",
    '<{"c": 3}>',
    "<[1]>",
    "<data.json>",
    "<",
    "?",
    "? `$[?(@.a == 1)]`",
    "`",
    "@flow",
    "@task",
    "=",
    "'''doc'''",
    '"""',
    "#c\n",
    " ",
    "\n",
    "\t",
    "é",
    "0",
    "!!python/object:x",
    "if",
    "then",
    "elif",
    "else",
    "repeat",
    "until",
    "while",
    "do",
    "`$[?@.n > 1]`",
    "`$[?@.x ==`",
    "iffy",
]

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def compiles_or_flow_error(text: str) -> None:
    try:
        flow = compile_flow(text, "random.flow")
    except FlowError as error:
        assert error.file == "random.flow"
        assert error.line >= 1 and error.column >= 1
        assert "\n" not in str(error)
    else:
        assert flow.nodes[0].kind == "start" and flow.nodes[-1].kind == "end"


@SETTINGS
@given(st.text())
def test_any_text_gives_a_flow_or_a_flow_error(text):
    compiles_or_flow_error(text)


@SETTINGS
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=40).map(" ".join))
def test_any_mix_of_tokens_gives_a_flow_or_a_flow_error(text):
    compiles_or_flow_error(text)


@SETTINGS
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join))
def test_tokens_run_together_give_a_flow_or_a_flow_error(text):
    compiles_or_flow_error(text)


# -- random valid flows -------------------------------------------------------

NAMES = st.sampled_from(["A", "B", "C", "my:peel-banana", "wait:delay", "x_1"])
DECLARED = st.sampled_from(["load", "load()", "load (- size: 3 -)", 'load({"color": "blue"})'])
PARAMS = st.sampled_from(
    ["", "()", " (- size: 3 -)", '({"k": [1, 2]})', "([1, 2, 3])", "(-\n  a: 1\n  b: [x, y]\n-)"]
)
SOURCES = st.sampled_from(["<>", "<- {n: 1} ->", '<{"a": [true, null]}>', "<[1, 2]>", "<items.json>"])
PREFIXES = st.sampled_from(["", "> ", "* ", "? `$[?(@.ok == true)]` ", "? `$[?(@.n=1)]` * "])


@st.composite
def steps(draw, depth=0):
    kind = draw(
        st.sampled_from(
            ["task", "task", "task", "alternation"]
            + (["subflow", "if", "repeat", "while"] if depth < 3 else [])
        )
    )
    if kind == "task":
        return draw(st.one_of(NAMES.map(lambda name: name + draw(PARAMS)), DECLARED))
    if kind == "alternation":
        return "|".join(draw(st.lists(NAMES, min_size=2, max_size=4)))
    if kind in ("if", "repeat", "while"):  # LANGUAGE.md §9.7–§9.8: each branch or body one step

        def branch() -> str:
            step = draw(steps(depth + 1))
            nested = step.startswith(("if ", "repeat ", "while "))
            return (
                "{ " + step + " }"
                if nested or draw(st.booleans())
                else draw(st.sampled_from(["", "* ", "> "])) + step
            )

        if kind == "repeat":
            return f"repeat {branch()} until `$[?@.n > 1]`"
        if kind == "while":
            return f"while `$[?@.more == true]` do {branch()}"
        text = f"if `$[?@.a]` then {branch()}"
        for _ in range(draw(st.integers(0, 2))):
            text += f" elif `$[?@.b == 1]` then {branch()}"
        return text + (f" else {branch()}" if draw(st.booleans()) else "")
    body = draw(st.lists(chains(depth + 1), min_size=1, max_size=3))
    opening, closing = draw(st.sampled_from(["{}", "[]"]))
    return f"{opening} " + "\n".join(body) + f" {closing}"


@st.composite
def chains(draw, depth=0):
    first = draw(st.one_of(SOURCES, steps(depth)))
    rest = draw(st.lists(st.tuples(PREFIXES, steps(depth)), max_size=4))
    text = first + "".join(f" → {prefix}{step}" for prefix, step in rest)
    if draw(st.booleans()):
        text += draw(st.sampled_from([" → :end", " → > :end", " → :start"]))
    return text + ";"


@st.composite
def flows(draw):
    lines = []
    if draw(st.booleans()):
        lines.append("@flow example (- retries: 2 -) '''An example''';")
    if draw(st.booleans()):
        lines.append("@task load (- {size: 1, color: red} -) '''Loads things''';")
    if draw(st.booleans()):
        lines.append("@task B = my:peel-banana;")
    statements = draw(st.lists(chains(), min_size=1, max_size=5))
    labelled = draw(st.integers(0, len(statements) - 1))
    # Route one statement's first step's output and a meet through labels.
    first, _, rest = statements[labelled].partition(" → ")
    if rest and not any(c in first for c in "<{[|"):
        statements[labelled] = f"{first} :out → {rest}"
        statements.append(":out → C → :meet;")
        statements.append("A → :meet;")
        statements.append(":meet > B;")
    return "\n".join(lines + statements)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flows())
def test_valid_flows_compile_well_formed_and_round_trip_through_json(text):
    flow = compile_flow(text)
    assert flow.nodes[0].kind == "start" and flow.nodes[-1].kind == "end"
    assert [n.id for n in flow.nodes] == list(range(len(flow)))
    edges = set(flow.edges())
    assert edges == {(p, n) for n in range(len(flow)) for p in flow.predecessors(n)}
    for node in flow.nodes:
        if node.kind in (
            "subflow-start",
            "subflow-end",
            "choice",
            "choice-end",
            "repeat",
            "while",
            "loop-end",
        ):
            assert flow.nodes[node.pair].pair == node.id
    again = Flow.from_json(json.loads(json.dumps(flow.to_json())))
    assert again == flow
    assert again.to_json() == flow.to_json()
    assert compile_flow(text) == flow
