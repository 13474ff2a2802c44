"""State files (statefile.py): a run saved after every step, resumed after a crash or
a failure, refused when it belongs to another flow; node statuses for diagrams."""

from __future__ import annotations

import json
import os

import pytest

from littleflow import compile_flow
from littleflow.diagram import mermaid
from littleflow.local import LocalRun
from littleflow.statefile import StateFile, StateFileError, read_any


class Crash(BaseException):
    """Stands for the process dying mid-task: nothing in the runner catches it."""


def node_id(flow, name):
    (node,) = [n for n in flow.nodes if n.name == name]
    return node.id


def counting_tasks(names, crash_in=None, fail_in=None):
    calls = {name: 0 for name in names}

    def make(name):
        def function(input):
            calls[name] += 1
            if name == crash_in:
                raise Crash()
            if name == fail_in:
                raise RuntimeError(f"{name} failed")
            return {**input, name: True} if isinstance(input, dict) else input

        return function

    return {name: make(name) for name in names}, calls


# -- saving and loading -------------------------------------------------------------------------
def test_load_without_a_file_is_none(tmp_path):
    assert StateFile(tmp_path / "run.json", compile_flow("A")).load() is None


def test_save_then_load_gives_the_same_state(tmp_path):
    flow = compile_flow("A → B")
    saved = StateFile(tmp_path / "run.json", flow)
    tasks, _ = counting_tasks("AB")
    state = LocalRun(flow, tasks, on_step=saved.save).run({"x": 1})
    assert state.status == "finished"
    loaded = saved.load()
    assert loaded.to_json() == state.to_json()
    assert loaded.output == {"x": 1, "A": True, "B": True}


def test_the_file_is_plain_json_and_no_temporary_file_is_left(tmp_path):
    flow = compile_flow("A")
    saved = StateFile(tmp_path / "run.json", flow)
    tasks, _ = counting_tasks("A")
    LocalRun(flow, tasks, on_step=saved.save).run()
    data = json.loads((tmp_path / "run.json").read_text())
    assert {"version", "flow", "state"} <= set(data)
    assert data["state"]["status"] == "finished"
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_a_save_that_breaks_off_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    flow = compile_flow("A → B")
    path = tmp_path / "run.json"
    saved = StateFile(path, flow)
    tasks, _ = counting_tasks("AB")
    state = LocalRun(flow, tasks, on_step=saved.save).run()
    before = path.read_text()

    import littleflow.statefile as statefile_module

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(statefile_module.os, "fsync", broken_fsync)
    state.status = "running"  # anything different
    with pytest.raises(StateFileError, match="No space left on device"):
        saved.save(state)
    assert path.read_text() == before
    assert json.loads(before)["state"]["status"] == "finished"


def test_a_state_file_of_another_flow_is_refused(tmp_path):
    path = tmp_path / "run.json"
    tasks, _ = counting_tasks("AB")
    first = compile_flow("A → B")
    LocalRun(first, tasks, on_step=StateFile(path, first).save).run()
    with pytest.raises(StateFileError) as caught:
        StateFile(path, compile_flow("B → A")).load()
    assert "different flow" in str(caught.value)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    "content", ["{not json", '{"version": 1}', "[]", '{"version": 1, "flow": 3, "state": {}}']
)
def test_a_damaged_state_file_is_refused(tmp_path, content):
    path = tmp_path / "run.json"
    path.write_text(content)
    with pytest.raises(StateFileError):
        StateFile(path, compile_flow("A")).load()


def test_a_state_file_of_another_version_is_refused(tmp_path):
    flow = compile_flow("A")
    path = tmp_path / "run.json"
    tasks, _ = counting_tasks("A")
    LocalRun(flow, tasks, on_step=StateFile(path, flow).save).run()
    data = json.loads(path.read_text())
    data["version"] = 99
    path.write_text(json.dumps(data))
    with pytest.raises(StateFileError) as caught:
        StateFile(path, flow).load()
    assert "version" in str(caught.value)


def test_read_any_gives_the_flow_and_the_state(tmp_path):
    flow = compile_flow("A → B")
    path = tmp_path / "run.json"
    tasks, _ = counting_tasks("AB")
    LocalRun(flow, tasks, on_step=StateFile(path, flow).save).run()
    read_flow, state = read_any(path)
    assert read_flow == flow
    assert state.status == "finished"
    with pytest.raises(StateFileError):
        read_any(tmp_path / "missing.json")


# -- resuming --------------------------------------------------------------------------------------
def test_a_run_killed_mid_task_continues_without_rerunning_finished_tasks(tmp_path):
    flow = compile_flow("A → B → C → D")
    path = tmp_path / "run.json"
    tasks, calls = counting_tasks("ABCD", crash_in="C")
    with pytest.raises(Crash):
        LocalRun(flow, tasks, on_step=StateFile(path, flow).save).run({"start": 1})
    assert calls == {"A": 1, "B": 1, "C": 1, "D": 0}

    saved = StateFile(path, flow)
    state = saved.load()
    assert state.status == "running"
    tasks, calls = counting_tasks("ABCD")
    final = LocalRun(flow, tasks, state=state, on_step=saved.save).run()
    assert final.status == "finished"
    assert calls == {"A": 0, "B": 0, "C": 1, "D": 1}
    assert final.output == {"start": 1, "A": True, "B": True, "C": True, "D": True}
    assert saved.load().status == "finished"


def test_a_run_killed_during_an_iteration_reruns_only_the_unfinished_items(tmp_path):
    flow = compile_flow("<[1, 2, 3]> → * item")
    path = tmp_path / "run.json"
    seen = []

    def crashing(input):
        seen.append(input)
        if input == 2:
            raise Crash()
        return input * 10

    with pytest.raises(Crash):
        LocalRun(flow, {"item": crashing}, on_step=StateFile(path, flow).save).run()
    seen.clear()

    def item(input):
        seen.append(input)
        return input * 10

    state = StateFile(path, flow).load()
    final = LocalRun(flow, {"item": item}, state=state).run()
    assert final.output == [10, 20, 30]
    assert 1 not in seen
    assert sorted(seen) == [2, 3]


def test_a_failed_run_resumes_by_running_the_failed_task_again(tmp_path):
    flow = compile_flow("A → B → C")
    path = tmp_path / "run.json"
    tasks, calls = counting_tasks("ABC", fail_in="B")
    state = LocalRun(flow, tasks, on_step=StateFile(path, flow).save).run()
    assert state.status == "failed"
    assert calls == {"A": 1, "B": 1, "C": 0}

    saved = StateFile(path, flow)
    loaded = saved.load()
    assert loaded.status == "failed"
    assert loaded.failure["name"] == "B"
    tasks, calls = counting_tasks("ABC")
    final = LocalRun(flow, tasks, state=loaded, on_step=saved.save).run()
    assert final.status == "finished"
    assert calls == {"A": 0, "B": 1, "C": 1}
    assert final.output == {"A": True, "B": True, "C": True}


# -- node statuses ---------------------------------------------------------------------------------------
def test_node_statuses_of_a_failed_run():
    flow = compile_flow("A → B → C\nD")
    tasks, _ = counting_tasks("ABCD", fail_in="B")
    state = LocalRun(flow, tasks).run()
    statuses = state.node_statuses()
    assert statuses[node_id(flow, "A")] == "done"
    assert statuses[node_id(flow, "B")] == "failed"
    assert statuses.get(node_id(flow, "C"), "waiting") == "waiting"


def test_an_ended_run_shows_the_nodes_it_never_ran_unreached_not_waiting(tmp_path):
    flow = compile_flow("A → B → C\nD")
    tasks, _ = counting_tasks("ABCD", fail_in="B")
    state = LocalRun(flow, tasks).run()
    shown = state.statuses(flow)
    assert [shown[node_id(flow, name)] for name in "ABCD"] == ["done", "failed", "unreached", "done"]
    assert shown[flow.end] == "unreached" and set(shown) == set(range(len(flow)))
    picture = mermaid(flow, status=shown)  # (what doc --state draws)
    assert "classDef unreached" in picture and ":::unreached" in picture and ":::waiting" not in picture


def test_a_run_under_way_shows_the_nodes_not_reached_yet_waiting(tmp_path):
    flow = compile_flow("A → B → C")
    path = tmp_path / "run.json"
    tasks, _ = counting_tasks("ABC", crash_in="B")
    with pytest.raises(Crash):
        LocalRun(flow, tasks, on_step=StateFile(path, flow).save).run()
    _, state = read_any(path)
    shown = state.statuses(flow)
    assert [shown[node_id(flow, name)] for name in "ABC"] == ["done", "running", "waiting"]


def test_a_finished_run_shows_a_branch_not_taken_skipped():
    flow = compile_flow("if `$[?@.go == true]` then { A → B } else C")
    tasks, _ = counting_tasks("ABC")
    state = LocalRun(flow, tasks).run({"go": False})
    shown = state.statuses(flow)
    assert [shown[node_id(flow, name)] for name in "ABC"] == ["skipped", "skipped", "done"]


def test_node_statuses_show_skipped_guards():
    flow = compile_flow("A → ? `$[?(@.go == true)]` B → C")
    tasks, _ = counting_tasks("ABC")
    state = LocalRun(flow, tasks).run({"go": False})
    statuses = state.node_statuses()
    assert statuses[node_id(flow, "B")] == "skipped"
    assert statuses[node_id(flow, "C")] == "done"


def test_node_statuses_of_an_interrupted_run_show_what_was_running(tmp_path):
    flow = compile_flow("A → B → C")
    path = tmp_path / "run.json"
    tasks, _ = counting_tasks("ABC", crash_in="B")
    with pytest.raises(Crash):
        LocalRun(flow, tasks, on_step=StateFile(path, flow).save).run()
    _, state = read_any(path)
    statuses = state.node_statuses()
    assert statuses[node_id(flow, "A")] == "done"
    assert statuses[node_id(flow, "B")] == "running"


def test_tasks_held_back_by_a_failure_run_when_the_run_resumes(tmp_path):
    flow = compile_flow("{ F  S  U } → after")
    path = tmp_path / "run.json"
    tasks, calls = counting_tasks(["F", "S", "U", "after"], fail_in="F")
    state = LocalRun(flow, tasks, on_step=StateFile(path, flow).save).run()
    assert state.status == "failed"
    first = dict(calls)

    saved = StateFile(path, flow)
    tasks, calls = counting_tasks(["F", "S", "U", "after"])
    final = LocalRun(flow, tasks, state=saved.load(), on_step=saved.save).run()
    assert final.status == "finished"
    assert final.output == [{"F": True}, {"S": True}, {"U": True}]
    total = {name: first[name] + calls[name] for name in calls}
    assert total == {"F": 2, "S": 1, "U": 1, "after": 1}  # F again; S and U once, in one run or the other


def test_the_journal_keeps_saving_cheap_and_a_cut_last_line_is_ignored(tmp_path):
    flow = compile_flow(" → ".join(f"T{i}" for i in range(50)))
    path = tmp_path / "run.json"
    tasks = {f"T{i}": (lambda i: lambda input: {"n": i})(i) for i in range(50)}
    LocalRun(flow, tasks, journal=StateFile(path, flow)).run()
    lines = path.read_text().splitlines()
    assert len(lines) == 51  # one snapshot, one line per task: no step rewrites the whole run
    # A process killed in the middle of writing its last event leaves a cut line: it never happened.
    path.write_text("\n".join(lines[:30]) + "\n" + lines[30][: len(lines[30]) // 2])
    state = StateFile(path, flow).load()
    assert state.status == "running" and [key[1] for key in state.running] == [30]
    resumed = LocalRun(flow, tasks, state=state, journal=StateFile(path, flow)).run()
    assert resumed.status == "finished" and resumed.output == {"n": 49}


def test_a_long_journal_is_compacted_into_a_snapshot(tmp_path, monkeypatch):
    import littleflow.statefile as statefile_module

    monkeypatch.setattr(statefile_module, "COMPACT_AFTER", 10)
    flow = compile_flow(" → ".join(f"T{i}" for i in range(25)))
    path = tmp_path / "run.json"
    LocalRun(flow, {f"T{i}": (lambda input: input) for i in range(25)}, journal=StateFile(path, flow)).run(
        {"k": 1}
    )
    assert len(path.read_text().splitlines()) <= 11
    assert StateFile(path, flow).load().output == {"k": 1}


@pytest.mark.parametrize("damage", ['{"version": 1, "flow": FLOW, "state": {"frames": []}}', "\udcff", "[]"])
def test_damaged_state_files_are_one_clear_error(tmp_path, damage):
    flow = compile_flow("A → B")
    path = tmp_path / "run.json"
    path.write_bytes(damage.replace("FLOW", json.dumps(flow.to_json())).encode("utf-8", "surrogateescape"))
    with pytest.raises(StateFileError, match="damaged"):
        StateFile(path, flow).load()


def test_a_state_file_is_locked_by_one_run_at_a_time(tmp_path):
    flow = compile_flow("A")
    first, second = StateFile(tmp_path / "s.json", flow), StateFile(tmp_path / "s.json", flow)
    first.lock()
    assert (tmp_path / "s.json.lock").read_text() == f"{os.getpid()}\n"
    with pytest.raises(StateFileError) as caught:
        second.lock()
    assert (
        str(caught.value) == f"{tmp_path / 's.json'} is in use by another littleflow run (pid {os.getpid()})"
    )
    first.unlock()
    assert not (tmp_path / "s.json.lock").exists()
    second.lock()  # free again
    second.unlock()
