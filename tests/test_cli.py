"""The littleflow command, run as a real process."""

import json
import subprocess
import sys
from xml.etree import ElementTree

import pytest


def run(*args, stdin=None, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "littleflow", *args], input=stdin, capture_output=True, text=True, cwd=cwd
    )


@pytest.fixture
def flow_file(tmp_path):
    def write(text, name="test.flow"):
        path = tmp_path / name
        path.write_text(text)
        return str(path)

    return write


def test_version():
    result = run("version")
    assert result.returncode == 0
    assert result.stdout.startswith("littleflow ")


@pytest.mark.parametrize("args", [["--help"], ["version"]])
def test_help_and_version_load_neither_redis_nor_the_api_nor_the_worker(args):
    code = (
        "import sys\nfrom littleflow.cli import main\n"
        f"try:\n    main({args!r}, prog_name='littleflow')\nexcept SystemExit:\n    pass\n"
        "print('MODULES', *sys.modules, file=sys.stderr)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "Usage: littleflow" in result.stdout or result.stdout.startswith("littleflow ")
    loaded = set(result.stderr.split("MODULES", 1)[1].split())
    heavy = {
        "redis",
        "fastapi",
        "uvicorn",
        "littleflow.redis.worker",
        "littleflow.redis.client",
        "littleflow.redis.store",
        "littleflow.redis.engine",
        "littleflow.api",
        "littleflow.k8s",
    }
    assert not loaded & heavy, loaded & heavy


def test_compile_summary_lists_nodes_edges_and_tasks_with_parameters(flow_file):
    path = flow_file("@flow demo '''A demo'''\nA (- size: 3 -) → { B → C  D } → E\n")
    result = run("compile", path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "flow demo — A demo" in out
    assert "9 nodes (5 task invocations), 9 edges" in out
    assert '{"size": 3}' in out
    assert "2:1" in out  # where A was written


def test_compile_summary_shows_the_conditions_of_branches_and_loops(flow_file):
    path = flow_file(
        "A → if `$[?@.s == 0]` then B elif `$[?@.s == 1]` then { C } else D\n"
        "repeat E until `$[?@.n >= 3]`\nwhile `$[?@.more == true]` do F\n"
    )
    result = run("compile", path)
    assert result.returncode == 0, result.stderr
    lines = [line.split()[1:] for line in result.stdout.splitlines() if line.startswith("  ") and "→" in line]
    shown = {" ".join(words[: words.index("→") - 1]) for words in lines if "→" in words}
    assert {
        "B if `$[?@.s == 0]`",
        "subflow-start if `$[?@.s == 1]`",
        "D",
        "repeat until `$[?@.n >= 3]`",
        "while `$[?@.more == true]`",
    } <= shown, shown


def test_compile_json_has_the_documented_shape(flow_file):
    result = run("compile", flow_file("A → B"), "--format", "json")
    assert result.returncode == 0
    data = json.loads(result.stdout)
    assert set(data) >= {"name", "doc", "nodes", "edges"}
    keys = {
        "id",
        "kind",
        "name",
        "alias",
        "parameters",
        "guard",
        "merge",
        "iterate",
        "doc",
        "uri",
        "value",
        "line",
        "column",
    }
    assert all(keys <= set(node) for node in data["nodes"])
    assert [n["kind"] for n in data["nodes"]] == ["start", "task", "task", "end"]
    assert data["edges"] == [[0, 1], [1, 2], [2, 3]]


def test_flow_from_standard_input():
    result = run("compile", "-", "--format", "json", stdin="A → B")
    assert result.returncode == 0
    assert len(json.loads(result.stdout)["nodes"]) == 4


@pytest.mark.parametrize("command", ["compile", "doc"])
def test_flow_error_is_positioned_with_caret_and_exit_2(flow_file, command):
    path = flow_file("A → B\nC → { D\n")
    result = run(command, path)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"{path}:2:5: error: unclosed subflow")
    assert lines[1].strip() == "C → { D"
    assert lines[2] == "    " + " " * 4 + "^"
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_error_from_standard_input_names_stdin():
    result = run("compile", "-", stdin=":nowhere → A")
    assert result.returncode == 2
    assert result.stderr.startswith("<stdin>:1:1: error: unknown label :nowhere")


def test_missing_file_is_one_clear_line(tmp_path):
    result = run("compile", str(tmp_path / "missing.flow"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"littleflow: error: cannot read {tmp_path / 'missing.flow'}: no such file"
    ]


def test_binary_file_is_one_clear_line(tmp_path):
    path = tmp_path / "binary.flow"
    path.write_bytes(b"\xff\xfe\x00A")
    result = run("check", str(path))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "not UTF-8" in result.stderr


def test_check_clean_flow_exits_0(flow_file):
    result = run("check", flow_file("A → B"))
    assert result.returncode == 0
    assert "0 errors, 0 warnings" in result.stderr


def test_check_reports_errors_in_every_file_and_exits_1(flow_file):
    good = flow_file("A → B", "good.flow")
    bad = flow_file("A → :x", "bad.flow")
    worse = flow_file("A (- [1, -) → B", "worse.flow")
    result = run("check", good, bad, worse)
    assert result.returncode == 1
    assert f"{bad}:1:5: error: unknown label :x" in result.stderr
    assert f"{worse}:1:3: error: invalid YAML" in result.stderr
    assert "checked 3 flows: 2 errors, 0 warnings" in result.stderr


def test_check_warnings_exit_0_unless_strict(flow_file):
    path = flow_file("@task unused '''never used'''\nA :o → B;\n:x → C → D → :x\n")
    result = run("check", path)
    assert result.returncode == 0
    assert f"{path}:1:1: warning: task unused is declared but never used" in result.stderr
    assert f"{path}:2:3: warning: output label :o is never used" in result.stderr
    assert f"{path}:3:6: warning: C can never run" in result.stderr
    assert f"{path}:3:10: warning: D can never run" in result.stderr
    assert run("check", "--strict", path).returncode == 1


def test_doc_mermaid_and_dot(flow_file):
    path = flow_file("wait:delay → my:peel-banana")
    mermaid = run("doc", path)
    assert mermaid.returncode == 0
    assert "stateDiagram-v2" in mermaid.stdout
    assert "wait_COLON_delay.1" in mermaid.stdout
    assert "my_COLON_peel_HYPHEN_banana.2" in mermaid.stdout
    assert "direction LR" in mermaid.stdout
    assert "direction TB" in run("doc", path, "--vertical").stdout
    dot = run("doc", path, "--format", "dot")
    assert dot.returncode == 0
    assert dot.stdout.lstrip().startswith("digraph")


def test_doc_svg(flow_file):
    path = flow_file("wait:delay → { my:peel-banana  <x.json> }")
    result = run("doc", path, "--format", "svg")
    assert result.returncode == 0, result.stderr
    root = ElementTree.fromstring(result.stdout)
    nodes = root.findall(".//{http://www.w3.org/2000/svg}g[@data-node]")
    assert [(g.get("data-node"), g.get("class")) for g in nodes[:3]] == [
        ("0", "node kind-start"),
        ("1", "node kind-task"),
        ("2", "node kind-subflow-start"),
    ]
    assert "my:peel-banana" in result.stdout
    tall = run("doc", path, "--format", "svg", "--vertical")
    assert tall.returncode == 0
    assert ElementTree.fromstring(tall.stdout).get("viewBox") != root.get("viewBox")
    assert "svg" in run("doc", "--help").stdout


def test_usage_error_exits_2():
    result = run("compile")
    assert result.returncode == 2
    assert "Missing argument" in result.stderr


def test_check_warns_about_a_label_that_a_line_break_does_not_separate(flow_file):
    path = flow_file("A → B\n:x → C;\n:x → D\n")
    result = run("check", path)
    assert (
        f"{path}:2:1: warning: label :x at the start of a line names the output of the step before it"
        in result.stderr
    )


def test_check_warns_about_a_plain_path_and_a_step_after_a_group_and_exits_0(flow_file):
    path = flow_file("A → ? `$.valid` B\nA → { B } C\n")
    result = run("check", path)
    assert result.returncode == 0, result.stderr
    assert (
        f"{path}:1:5: warning: guard `$.valid` is a plain path: it is true whenever it selects something"
        in result.stderr
    )
    assert f"{path}:2:11: warning: task 'C' starts a new statement" in result.stderr
    assert "checked 1 flow: 0 errors, 2 warnings" in result.stderr


@pytest.mark.parametrize("command", ["check", "compile", "doc", "run"])
def test_a_wrong_flow_option_is_a_flow_error_for_every_command(flow_file, command):
    path = flow_file("@flow f (- retrys: 1 -)\nA\n")
    result = run(command, path)
    assert result.returncode == (1 if command == "check" else 2) and "Traceback" not in result.stderr
    assert f"{path}:1:12: error: unknown option 'retrys' in @flow parameters" in result.stderr
    assert result.stdout == ""
