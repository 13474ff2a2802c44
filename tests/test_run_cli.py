"""``littleflow run`` and ``littleflow doc --state``, run as real processes.

Starting the command costs about a second, so the runs that do not depend on each
other are started together (the ``batch`` fixture) and each test checks one of them.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from littleflow import compile_flow
from littleflow.local import LocalRun
from littleflow.statefile import StateFile

COMMAND = [sys.executable, "-m", "littleflow"]


def run(*args, cwd, stdin=None, timeout=60):
    return subprocess.run(
        [*COMMAND, *args], input=stdin, capture_output=True, text=True, cwd=cwd, timeout=timeout
    )


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def one_line(stderr: str) -> str:
    """The single line a usage error prints (and no traceback)."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def log_lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


# -- independent runs, started together ---------------------------------------------------------
TASKS = """
    import threading
    from littleflow import task

    both = threading.Barrier(2, timeout=5)

    def A(input):
        return {"fruit": input["fruit"], "count": input["count"]}

    def left(input):
        both.wait()  # only passes when my:peel-banana runs at the same time
        return {"left": input["count"]}

    @task("my:peel-banana")
    def peel(input):
        both.wait()
        return {"peeled": input["fruit"]}
"""

MORE_TASKS = """
    def join(input):
        return {"joined": input}
"""

FLAKY_TASKS = """
    from pathlib import Path
    from littleflow import task

    COUNTER = Path(__file__).parent / "flaky-count"

    def first(input):
        return {"n": 1}

    @task(retries=1, backoff=0.01)
    def flaky(input):
        count = int(COUNTER.read_text()) if COUNTER.exists() else 0
        COUNTER.write_text(str(count + 1))
        if count == 0:
            raise ConnectionError("first attempt fails")
        return {**input, "flaky": True}
"""

FAILING_TASKS = """
    def load(input):
        return {"order": input["order"], "items": 3}

    def charge(input):
        raise RuntimeError("card declined")

    def ship(input):
        return input
"""


def batch_cases(root: Path) -> dict[str, dict]:
    """name -> {args, cwd, stdin} for every run that needs nothing from another."""
    write(root / "tasks.py", TASKS)
    write(root / "moretasks.py", MORE_TASKS)
    write(root / "flaky" / "tasks.py", FLAKY_TASKS)
    write(root / "failing" / "tasks.py", FAILING_TASKS)
    write(root / "broken.py", "def A(input)\n    return input\n")
    write(root / "raising.py", "raise RuntimeError('cannot import me')\n")
    write(root / "plain.flow", "A → B\n")
    write(root / "unknown.flow", "A → Z\n")
    write(root / "bad-text.flow", "A → { B\n")
    write(root / "bad-params.flow", "@flow f (- {retries: -1} -)\nA\n")
    write(root / "input.yaml", "fruit: banana\ncount: 3\n")
    write(root / "dry.flow", "A → { B  C }\n")
    write(root / "flows" / "data.json", '{"from": "next to the flow"}')
    write(root / "data.json", '{"from": "the working directory"}')
    write(root / "flows" / "tasks.flow", "A → { left  my:peel-banana } → > join\n<data.json>\n")
    write(root / "loop.flow", ":p A → B → :p\n")
    write(root / "flaky" / "flaky.flow", "first → flaky\n")
    write(root / "failing" / "shop.flow", "load → charge → ship\n")
    write(root / "damaged.json", "[]")
    write(root / "confined" / "root" / "data.json", '{"inside": true}')
    write(root / "confined" / "secret.json", '{"secret": true}')
    (root / "confined" / "root" / "link.json").symlink_to(root / "confined" / "secret.json")
    write(root / "confined" / "copy.flow", "<data.json> → <out/copy.json>\n")
    write(root / "confined" / "dotdot.flow", "<../secret.json>\n")
    write(root / "confined" / "symlink.flow", "<link.json>\n")
    write(root / "confined" / "uri.flow", f"<file://{root}/confined/secret.json>\n")
    write(root / "confined" / "sink.flow", "<data.json> → <../escaped.json>\n")
    write(root / "confined" / "http.flow", "<http://127.0.0.1:9/x.json>\n")
    other = compile_flow("X → Y")
    LocalRun(
        other,
        {"X": lambda i: None, "Y": lambda i: None},
        on_step=StateFile(root / "other-state.json", other).save,
    ).run()
    return {
        "dry-run": dict(args=["run", "dry.flow", "--input", "-"], stdin='{"x": 1}'),
        "tasks": dict(
            args=[
                "run",
                "flows/tasks.flow",
                "--tasks",
                "tasks.py",
                "--tasks",
                "moretasks",
                "--input",
                "@input.yaml",
                "--concurrency",
                "2",
                "--quiet",
            ]
        ),
        "limit": dict(args=["run", "loop.flow", "--limit", "3"]),
        "trace": dict(args=["run", "flaky/flaky.flow", "--tasks", "flaky/tasks.py", "--trace", "trace.json"]),
        "failure": dict(
            args=[
                "run",
                "failing/shop.flow",
                "--tasks",
                "failing/tasks.py",
                "--input",
                '{"order": "A-17"}',
                "--trace",
                "failure-trace.json",
            ]
        ),
        # confined
        "files-inside": dict(
            args=["run", "confined/copy.flow", "--tasks", "moretasks", "--files", "confined/root", "--quiet"]
        ),
        **{
            f"files-{name}": dict(
                args=["run", f"confined/{name}.flow", "--tasks", "moretasks", "--files", "confined/root"]
            )
            for name in ("dotdot", "symlink", "uri", "sink")
        },
        "http-confined": dict(args=["run", "confined/http.flow", "--tasks", "moretasks", "--http-confine"]),
        "http-open": dict(args=["run", "confined/http.flow", "--tasks", "moretasks"]),
        # exit 2, one clear line
        "bad-http-allow": dict(args=["run", "plain.flow", "--http-allow", "not a host"]),
        "bad-input-json": dict(args=["run", "plain.flow", "--input", "{x"]),
        "missing-input-file": dict(args=["run", "plain.flow", "--input", "@nope.json"]),
        "module-not-found": dict(args=["run", "plain.flow", "--tasks", "no_such_module_xyz"]),
        "tasks-file-missing": dict(args=["run", "plain.flow", "--tasks", "nosuch.py"]),
        "tasks-file-syntax-error": dict(args=["run", "plain.flow", "--tasks", "broken.py"]),
        "tasks-file-raises": dict(args=["run", "plain.flow", "--tasks", "raising.py"]),
        "unknown-task": dict(args=["run", "unknown.flow", "--tasks", "tasks.py"]),
        "bad-flow-parameters": dict(args=["run", "bad-params.flow", "--tasks", "tasks.py"]),
        "damaged-state": dict(args=["run", "plain.flow", "--state", "damaged.json"]),
        "state-in-a-new-directory": dict(
            args=["run", "plain.flow", "--state", "out/runs/state.json", "--quiet"]
        ),
        "state-of-another-flow": dict(args=["run", "plain.flow", "--state", "other-state.json"]),
        "doc-state-of-another-flow": dict(args=["doc", "plain.flow", "--state", "other-state.json"]),
        # exit 2, no traceback
        "flow-text-error": dict(args=["run", "bad-text.flow"]),
        "unknown-option": dict(args=["run", "plain.flow", "--bogus"]),
    }


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    cases = batch_cases(root)
    processes = {
        name: subprocess.Popen(
            [*COMMAND, *case["args"]],
            cwd=root,
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for name, case in cases.items()
    }
    results = {}
    for name, process in processes.items():
        try:
            stdout, stderr = process.communicate(cases[name].get("stdin", ""), timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        results[name] = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    results["root"] = root
    return results


def test_dry_run_echoes_inputs_and_logs_plain_lines(batch):
    result = batch["dry-run"]
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [{"x": 1}, {"x": 1}]
    for name in "ABC":
        assert f"start {name}" in result.stderr and f"done  {name}" in result.stderr
    assert "Traceback" not in result.stderr


def test_tasks_from_a_file_and_a_module_with_yaml_input_concurrency_and_a_resource(batch):
    result = batch["tasks"]
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        {"joined": {"left": 3, "peeled": "banana"}},
        {"from": "next to the flow"},
    ]
    assert result.stderr == ""  # --quiet


def test_limit_fails_a_cycle_with_exit_1_naming_the_limit(batch):
    result = batch["limit"]
    assert result.returncode == 1, result.stderr
    assert "limit" in result.stderr and "3" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_failure_exits_1_naming_the_task_its_input_and_the_error(batch):
    result = batch["failure"]
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    stderr = result.stderr
    assert "charge" in stderr
    assert "card declined" in stderr
    assert '"order": "A-17"' in stderr and '"items": 3' in stderr
    assert "FAIL" in stderr


def test_trace_records_every_task_run_with_attempts(batch):
    result = batch["trace"]
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"n": 1, "flaky": True}
    trace = json.loads((batch["root"] / "trace.json").read_text())
    assert isinstance(trace, list)
    for entry in trace:
        assert {"node", "name", "start", "end", "attempt", "status", "error"} <= set(entry)
        assert entry["start"] <= entry["end"]
    runs = [(e["name"], e["attempt"], e["status"]) for e in trace]
    assert runs == [("first", 1, "done"), ("flaky", 1, "failed"), ("flaky", 2, "done")]
    assert "first attempt fails" in trace[1]["error"]
    assert trace[2]["error"] is None


def test_trace_is_written_when_the_flow_fails(batch):
    assert batch["failure"].returncode == 1
    trace = json.loads((batch["root"] / "failure-trace.json").read_text())
    runs = [(e["name"], e["status"]) for e in trace]
    assert runs == [("load", "done"), ("charge", "failed")]
    assert "card declined" in trace[1]["error"]


def test_run_files_confines_file_resources_to_its_directories(batch):
    result = batch["files-inside"]
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"inside": True}
    assert json.loads((batch["root"] / "confined" / "root" / "out" / "copy.json").read_text()) == {
        "inside": True
    }
    for name in ("dotdot", "symlink", "uri", "sink"):
        result = batch[f"files-{name}"]
        assert result.returncode == 1, (name, result.stderr)
        assert (
            "outside the directories allowed with --files" in result.stderr
            and "Traceback" not in result.stderr
        )
        assert '"secret": true' not in result.stdout + result.stderr
    assert not (batch["root"] / "confined" / "escaped.json").exists()


def test_run_reaches_any_address_unless_confined(batch):
    confined, open_ = batch["http-confined"], batch["http-open"]
    assert confined.returncode == 1 and open_.returncode == 1
    assert "127.0.0.1 is not a public address: run with --http-allow 127.0.0.1" in confined.stderr
    assert "not a public address" not in open_.stderr and "127.0.0.1:9" in open_.stderr  # it tried: refused


def test_a_state_file_in_a_directory_not_there_yet_makes_the_directory(batch):
    result = batch["state-in-a-new-directory"]
    assert result.returncode == 0, result.stderr
    assert (batch["root"] / "out" / "runs" / "state.json").is_file()


@pytest.mark.parametrize(
    "case,says",
    [
        ("bad-input-json", "--input"),
        ("missing-input-file", "nope.json"),
        ("module-not-found", "no_such_module_xyz"),
        ("tasks-file-missing", "littleflow: error: cannot load tasks from nosuch.py: no such file"),
        ("tasks-file-syntax-error", "broken.py"),
        ("tasks-file-raises", "raising.py"),
        ("unknown-task", "Z (1:5)"),
        ("damaged-state", "damaged.json"),
        ("state-of-another-flow", "different flow"),
        ("doc-state-of-another-flow", "different flow"),
        ("bad-http-allow", "--http-allow 'not a host'"),
    ],
)
def test_mistakes_exit_2_with_one_clear_line(batch, case, says):
    result = batch[case]
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert says in one_line(result.stderr)
    assert result.stdout == ""


@pytest.mark.parametrize(
    "case,says",
    [
        ("flow-text-error", "1:5"),
        (
            "bad-flow-parameters",
            "bad-params.flow:1:13: error: retries in @flow parameters must be a number ≥ 0, not -1",
        ),
        ("unknown-option", "--bogus"),
    ],
)
def test_flow_text_and_usage_errors_exit_2_without_a_traceback(batch, case, says):
    result = batch[case]
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert says in result.stderr
    assert result.stdout == ""


# -- state files: runs that follow each other -------------------------------------------------------------
RESUMABLE_TASKS = """
    import time
    from pathlib import Path

    HERE = Path(__file__).parent

    def _log(name):
        with open(HERE / "runs.log", "a") as log:
            log.write(name + "\\n")

    def A(input):
        _log("A")
        return {**input, "A": 1}

    def B(input):
        _log("B")
        return {**input, "B": 1}

    def C(input):
        _log("C")
        if not (HERE / "release").exists():
            (HERE / "c-started").write_text("")
            time.sleep(60)  # killed here
        return {**input, "C": 1}

    def D(input):
        _log("D")
        return {**input, "D": 1}
"""


def test_a_killed_run_continues_from_its_state_file_without_rerunning_finished_tasks(tmp_path):
    write(tmp_path / "tasks.py", RESUMABLE_TASKS)
    write(tmp_path / "job.flow", "A → B → C → D\n")
    args = [
        *COMMAND,
        "run",
        "job.flow",
        "--tasks",
        "tasks.py",
        "--state",
        "state.json",
        "--input",
        '{"go": 1}',
    ]
    process = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "c-started").exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "C never started"
            time.sleep(0.02)
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate()
    assert process.returncode == -signal.SIGKILL
    assert log_lines(tmp_path / "runs.log") == ["A", "B", "C"]
    lines = (tmp_path / "state.json").read_text().splitlines()  # a snapshot, then one line per step
    assert json.loads(lines[0])["state"]["status"] == "running"
    assert [json.loads(line)["ended"][1] for line in lines[1:]] == [1, 2]  # A and B ended

    (tmp_path / "release").write_text("")
    result = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"go": 1, "A": 1, "B": 1, "C": 1, "D": 1}
    assert log_lines(tmp_path / "runs.log") == ["A", "B", "C", "C", "D"]

    again = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == {"go": 1, "A": 1, "B": 1, "C": 1, "D": 1}
    assert log_lines(tmp_path / "runs.log") == ["A", "B", "C", "C", "D"]  # a finished run runs nothing


def test_a_second_run_of_a_state_file_in_use_is_refused_and_a_killed_run_lets_go(tmp_path):
    write(tmp_path / "tasks.py", RESUMABLE_TASKS)
    write(tmp_path / "job.flow", "A → B → C → D\n")
    args = ["run", "job.flow", "--tasks", "tasks.py", "--state", "state.json"]
    process = subprocess.Popen(
        [*COMMAND, *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "c-started").exists():
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.02)
        second = run(*args, cwd=tmp_path)
        assert second.returncode == 2
        assert one_line(second.stderr) == (
            f"littleflow: error: state.json is in use by another littleflow run (pid {process.pid})"
        )
        assert log_lines(tmp_path / "runs.log") == ["A", "B", "C"]  # the second ran nothing
    finally:
        process.send_signal(signal.SIGKILL)  # the lock dies with the process
        process.communicate()
    (tmp_path / "release").write_text("")
    third = run(*args, cwd=tmp_path)
    assert third.returncode == 0, third.stderr
    assert json.loads(third.stdout) == {"A": 1, "B": 1, "C": 1, "D": 1}
    assert not (tmp_path / "state.json.lock").exists()  # a run that ends removes its lock file


def test_ctrl_c_stops_with_one_line_and_the_run_continues_later(tmp_path):
    write(tmp_path / "tasks.py", RESUMABLE_TASKS)
    write(tmp_path / "job.flow", "A → B → C → D\n")
    args = [*COMMAND, "run", "job.flow", "--tasks", "tasks.py", "--state", "state.json"]
    process = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not (tmp_path / "c-started").exists():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130
    assert "Traceback" not in err
    assert (
        err.splitlines()[-1]
        == "littleflow: interrupted; run the same command again to continue from state.json"
    )
    (tmp_path / "release").write_text("")
    result = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert json.loads(result.stdout) == {"A": 1, "B": 1, "C": 1, "D": 1}
    assert log_lines(tmp_path / "runs.log") == ["A", "B", "C", "C", "D"]


PAIR_TASKS = """
    import time
    from pathlib import Path

    HERE = Path(__file__).parent

    def _log(name):
        with open(HERE / "runs.log", "a") as log:
            log.write(name + "\\n")

    def _held(name):
        _log(name)
        (HERE / f"{name}-started").write_text("")
        deadline = time.monotonic() + 60
        while not (HERE / "release").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        return {name: 1}

    def S(input):
        return _held("S")

    def W(input):
        return _held("W")

    def D(input):
        _log("D")
        return input
"""


def test_ctrl_c_with_concurrency_says_it_stops_and_keeps_the_tasks_that_end_meanwhile(tmp_path):
    write(tmp_path / "tasks.py", PAIR_TASKS)
    write(tmp_path / "job.flow", "{ S  W } → D\n")
    args = [*COMMAND, "run", "job.flow", "--tasks", "tasks.py", "--state", "state.json", "--concurrency", "2"]
    process = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True)
    try:
        reader.start()
        deadline = time.monotonic() + 30
        while not ((tmp_path / "S-started").exists() and (tmp_path / "W-started").exists()):
            assert process.poll() is None and time.monotonic() < deadline, lines
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 30
        while not any("stopping" in line for line in lines):  # said while S and W still run
            assert process.poll() is None and time.monotonic() < deadline, lines
            time.sleep(0.02)
        assert (
            "littleflow: stopping: waiting for the 2 running tasks to finish (Ctrl-C again to stop at once)\n"
            in lines
        )
        (tmp_path / "release").write_text("")  # S and W end after the Ctrl-C
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        reader.join(10)
    assert process.returncode == 130
    assert "Traceback" not in "".join(lines)
    assert lines[-1] == "littleflow: interrupted; run the same command again to continue from state.json\n"
    assert sorted(log_lines(tmp_path / "runs.log")) == ["S", "W"]
    flow = compile_flow("{ S  W } → D")
    ended = [json.loads(line)["ended"][1] for line in (tmp_path / "state.json").read_text().splitlines()[1:]]
    assert sorted(flow.nodes[node].name for node in ended) == ["S", "W"]  # both ends saved; D never started

    result = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [{"S": 1}, {"W": 1}]
    assert log_lines(tmp_path / "runs.log")[2:] == ["D"]  # S and W not run again


FAIL_ONCE_TASKS = """
    from pathlib import Path

    HERE = Path(__file__).parent

    def _log(name):
        with open(HERE / "runs.log", "a") as log:
            log.write(name + "\\n")

    def fetch(input):
        _log("fetch")
        return {"fetched": True}

    def parse(input):
        _log("parse")
        if not (HERE / "parse-failed-once").exists():
            (HERE / "parse-failed-once").write_text("")
            raise ValueError("unexpected token")
        return {**input, "parsed": True}

    def index(input):
        _log("index")
        return {"indexed": True}

    def store(input):
        _log("store")
        return input
"""


def test_a_failed_run_reruns_the_failed_task_and_finishes_and_doc_colours_the_nodes(tmp_path):
    write(tmp_path / "tasks.py", FAIL_ONCE_TASKS)
    write(tmp_path / "job.flow", "fetch → { parse → store  index }\n")
    args = ["run", "job.flow", "--tasks", "tasks.py", "--state", "state.json"]

    first = run(*args, cwd=tmp_path)
    assert first.returncode == 1, first.stderr
    assert "parse" in first.stderr and "unexpected token" in first.stderr
    assert '"fetched": true' in first.stderr  # the failing task's input
    assert "Traceback" not in first.stderr
    assert "fetch" in log_lines(tmp_path / "runs.log") and "store" not in log_lines(tmp_path / "runs.log")

    doc = run("doc", "job.flow", "--state", "state.json", cwd=tmp_path)
    assert doc.returncode == 0, doc.stderr
    assert ":::done" in doc.stdout
    assert ":::failed" in doc.stdout

    runs_before = log_lines(tmp_path / "runs.log")
    second = run(*args, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout) == [{"fetched": True, "parsed": True}, {"indexed": True}]
    new_runs = log_lines(tmp_path / "runs.log")[len(runs_before) :]
    assert "fetch" not in new_runs
    assert new_runs.count("parse") == 1 and new_runs.count("store") == 1
    assert new_runs.count("index") == ("index" not in runs_before)  # index ran once, in one of the two runs
