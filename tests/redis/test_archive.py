"""Archives checked before a restore writes anything (redis/archive.py), on a real Redis:
real archives of real runs, each damage that once crashed something, and a fuzzer that
damages them at random — every archive is refused with one line, or restored and then
every read and step of it works."""

from __future__ import annotations

import copy
import json
import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from littleflow import compile_flow, diagram
from littleflow.redis.archive import MAX_COUNTER, SCHEMA, validate
from littleflow.redis.store import InvalidArchive
from littleflow.tasks import Registry
from littleflow.values import MAX_DEPTH

#: Flows with conditionals and loops whose runs wait on ``hold`` (served only after a restore):
#: in a branch (the then branch skipped), in the else branch of an item of an iterated
#: conditional, and in the second round of a loop.
BRANCH = "@flow gamma\nA → if `$[?@.a.k == 1]` then Yes else { hold → No } → last"
ITEMS = "* if `$[?@.k == 1]` then Yes else { hold → No } → last"
LOOP = "@flow epsilon\nrepeat { step → ? `$[?@.n == 2]` hold } until `$[?@.n >= 3]` → last"


def forms(hold: bool = False, rounds: list[int] | None = None) -> Registry:
    """The tasks of the flows above; ``hold`` (it passes its input on) only if asked;
    ``rounds`` gets the ``n`` of each input of ``step``."""

    def step(input: dict[str, Any]) -> dict[str, Any]:
        if rounds is not None:
            rounds.append(input.get("n", 0))
        return {**input, "n": input.get("n", 0) + 1}

    registry = Registry()
    registry.add("A", lambda input: {"a": input})
    registry.add("Yes", lambda input: {**input, "yes": True})
    registry.add("No", lambda input: {**input, "no": True})
    registry.add("step", step)
    registry.add("last", lambda input: {"last": input})
    if hold:
        registry.add("hold", lambda input: input)
    return registry


@pytest.fixture
def archives(started, client, until) -> dict[str, dict[str, Any]]:
    """Archives of real runs (the services stopped after): finished (an iterated subflow,
    merges; a conditional and a loop without text), failed, terminated, and running (items
    of an iteration waiting on a task nobody serves; the conditionals and the loop above)."""
    gate = threading.Event()
    registry = forms()
    registry.add("B", lambda input: (_ for _ in ()).throw(RuntimeError("no more bananas")))
    registry.add("hang", lambda input: gate.wait(30) and {})
    services = started.services_on(tasks=registry)
    ids = {
        "finished": client.submit("@flow alpha\nA → * { A → A  A } → A", [1, 2]),
        "failed": client.submit("@flow beta\nA → B", {"k": 2}),
        "terminated": client.submit("hang → A", {"k": 3}),
        "running": client.submit("A → * { later:b  A } → A", [1, 2, 3]),
        "without text": client.submit(compile_flow("@flow delta\nA → * { A  A } → ? `$[?(@.a)]` A"), [1]),
        "forms without text": client.submit(
            compile_flow(
                "@flow zeta\nif `$[?@.k == 1]` then Yes else No → while `$[?@.n < 2]` do step → * repeat step until"
                " `$[?@.n > 3]`"
            ),
            {"k": 2, "n": 0},
        ),
        "in a branch": client.submit(BRANCH, {"k": 2}),
        "in an item's branch": client.submit(ITEMS, [{"k": 1}, {"k": 2}]),
        "mid-loop": client.submit(LOOP, {"n": 0}),
    }
    client.wait(ids["finished"], timeout=10)
    client.wait(ids["without text"], timeout=10)
    client.wait(ids["forms without text"], timeout=10)
    client.wait(ids["failed"], timeout=10)
    until(lambda: client.status(ids["terminated"])["nodes"][1]["status"] == "running", what="hang running")
    client.terminate(ids["terminated"])
    for state in ("running", "in a branch", "in an item's branch", "mid-loop"):
        until(
            lambda: sum(n["status"] == "queued" for n in client.status(ids[state])["nodes"]),
            what=f"{state} queued",
        )
    found = {state: client.archive(id) for state, id in ids.items()}
    gate.set()
    started.stop(services)
    for id in ids.values():
        if client.status(id)["state"] == "running":
            client.terminate(id)
        client.delete(id)
    return found


def works(client, id: str) -> None:
    """Every read and step of workflow ``id`` works (as the API's endpoints use them)."""
    document = client.status(id)
    json.dumps(document)
    flow, statuses = client.statuses(id)
    diagram.mermaid(flow, status=statuses)
    if len(flow) <= 100:
        diagram.svg(flow, status=statuses)
    client.definition(id)
    assert id in [w["id"] for w in client.list()]
    assert client.page(search=id[:4]).total >= 1
    again = client.archive(id)
    validate(again)  # what it archives now restores
    if document["state"] == "running":
        client.terminate(id)
    if client.status(id)["state"] in ("failed", "terminated"):
        client.resume(id)
        if client.status(id)["state"] == "running":
            client.terminate(id)
    assert client.restore(again, replace=True) == id


def refused(client, archive: Any, says: str) -> None:
    """``archive`` is refused with one line saying ``says``, and nothing is written."""
    before = sorted(client.redis.keys("*"))
    with pytest.raises(InvalidArchive) as caught:
        client.restore(archive, replace=True)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 500
    assert says in str(caught.value)
    assert sorted(client.redis.keys("*")) == before


def test_real_archives_restore_and_then_everything_works(archives, client):
    for archive in archives.values():
        assert client.restore(archive) == archive["id"]
        works(client, archive["id"])
    assert client.status(archives["running"]["id"])["state"] == "running"  # resumed by works()


def test_the_published_schema_is_a_json_schema_real_archives_meet(archives):
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(SCHEMA)
    for archive in archives.values():
        Draft202012Validator(SCHEMA).validate(archive)
    assert not Draft202012Validator(SCHEMA).is_valid({**archives["failed"], "version": -1})


def edited(archive: dict[str, Any], change: Any) -> dict[str, Any]:
    found = copy.deepcopy(archive)
    change(found)
    return found


def state(archive: dict[str, Any]) -> dict[str, Any]:
    return archive["run"]["state"]


# -- each damage that once crashed a request or broke the workflow after -------------------------
def test_a_running_instance_of_a_node_that_is_no_task_is_refused(archives, client):
    """It was restored by sending START to the workers as a task: an AttributeError (500)."""
    archive = edited(archives["running"], lambda a: state(a)["running"].append(["", 0, -1, {}]))
    refused(client, archive, "is not a task of its flow")


def test_task_info_with_a_seq_that_is_not_a_number_is_refused(archives, client):
    """It was restored, and every status request of it then failed comparing seqs (500)."""

    def change(a):
        first = next(iter(a["tasks"].values()))
        a["tasks"]["|1|7"] = {**first, "seq": "7"}

    refused(
        client,
        edited(archives["finished"], change),
        "at archive.tasks['|1|7'].seq: Input should be a valid integer",
    )


def test_bad_flow_options_without_text_are_refused(archives, client):
    """They raised in the middle of the restore (a traceback in the CLI, 500 in the API)."""

    def change(a):
        a["text"] = ""
        a["flow"]["parameters"] = {"retries": "many"}

    refused(client, edited(archives["failed"], change), "damaged archive")


@pytest.mark.parametrize(
    "log_id, says",
    [
        ("0-0", "not after the one before"),
        ("99999999999999999999-0", "should match pattern"),
        ("1-x", "should match pattern"),
    ],
)
def test_log_ids_redis_refuses_are_refused_before_anything_is_written(archives, client, log_id, says):
    """A log id Redis refused failed the transaction half way (500, a half-restored workflow)."""
    archive = edited(archives["finished"], lambda a: a["log"].insert(0, {"id": log_id, "kind": "x"}))
    refused(client, archive, says)


def test_a_log_entry_without_fields_is_refused(archives, client):
    archive = edited(archives["finished"], lambda a: a["log"].append({"id": "99999999999-0"}))
    refused(client, archive, "a log entry has an id and at least one field")


def test_a_running_workflow_with_nothing_running_is_refused(archives, client):
    """It was restored, and then nothing could ever end it but terminate."""
    refused(
        client,
        edited(archives["running"], lambda a: state(a).__setitem__("running", [])),
        "its state is running with 0 tasks running",
    )


def test_an_item_of_no_iteration_is_refused(archives, client):
    """It was restored; the end of that task then crashed the engine's step."""

    def change(a):
        frames = state(a)["frames"]
        for frame in frames:
            frame["iterations"] = {}

    refused(client, edited(archives["running"], change), "damaged archive")


@pytest.mark.parametrize("where", ["output", "input"])
def test_nan_and_infinity_anywhere_are_refused(archives, client, where):
    refused(
        client,
        edited(archives["finished"], lambda a: state(a).__setitem__(where, {"x": float("nan")})),
        "not a JSON number",
    )
    refused(
        client,
        edited(archives["finished"], lambda a: a.__setitem__("created", float("inf"))),
        "not a JSON number",
    )


def test_deep_nesting_is_refused(archives, client):
    deep: Any = 1
    for _ in range(MAX_DEPTH + 20):
        deep = [deep]
    refused(
        client,
        edited(archives["finished"], lambda a: state(a).__setitem__("output", deep)),
        "nested too deeply",
    )


def test_huge_numbers_are_refused(archives, client):
    refused(
        client,
        edited(archives["finished"], lambda a: a.__setitem__("version", 2**70)),
        f"at archive.version: Input should be less than or equal to {MAX_COUNTER}",
    )
    refused(
        client,
        edited(archives["finished"], lambda a: a["run"].__setitem__("seq", MAX_COUNTER + 1)),
        "at archive.run.seq: Input should be less than or equal",
    )
    refused(
        client, edited(archives["finished"], lambda a: a.__setitem__("updated", 1e300)), "less than or equal"
    )


def test_a_flow_that_is_not_its_text_is_refused(archives, client):
    archive = edited(archives["finished"], lambda a: a["flow"]["nodes"][1].__setitem__("name", "rm"))
    refused(client, archive, "its flow is not what its text compiles to")
    refused(client, edited(archives["finished"], lambda a: a.__setitem__("text", "A →")), "does not compile")


def test_a_flow_without_text_must_have_the_shape_of_a_compiled_flow(archives, client):
    archive = archives["without text"]
    assert archive["text"] == ""
    subflow = next(node for node in archive["flow"]["nodes"] if node["kind"] == "subflow-start")
    refused(
        client,
        edited(archive, lambda a: a["flow"]["nodes"][subflow["id"]].__setitem__("pair", 1)),
        "is a subflow without its other end",
    )
    refused(
        client,
        edited(archive, lambda a: a["flow"]["nodes"][1].__setitem__("name", None)),
        "is a task without a name",
    )
    refused(
        client,
        edited(archive, lambda a: a["flow"]["nodes"][0].__setitem__("kind", "task")),
        "does not begin with START",
    )
    refused(
        client,
        edited(archive, lambda a: a["flow"]["nodes"][-2].__setitem__("guard", "$[?(@.a ==")),
        "damaged archive",
    )


def test_extra_keys_and_wrong_types_are_refused(archives, client):
    refused(
        client,
        edited(archives["finished"], lambda a: a.__setitem__("junk", 1)),
        "at archive.junk: Extra inputs are not permitted",
    )
    refused(
        client,
        edited(archives["finished"], lambda a: state(a)["frames"][0].__setitem__("skipped", "x")),
        "at archive.run.state.frames[0].skipped: Input should be a valid list",
    )
    refused(
        client,
        edited(archives["finished"], lambda a: a.__setitem__("status", "failed")),
        "is not its state's",
    )


# -- fuzzing ---------------------------------------------------------------------------------------------
def leaves(value: Any, path: tuple = ()) -> list[tuple]:
    """Every path in a JSON value (of containers and scalars)."""
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += leaves(item, (*path, index))
    return found


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.text(max_size=8)
    | st.floats(allow_nan=True, allow_infinity=True),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def mutated(data: st.DataObject, archive: dict[str, Any]) -> dict[str, Any]:
    found = copy.deepcopy(archive)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        path = data.draw(st.sampled_from(leaves(found)[1:]), label="where")
        parent = found
        for part in path[:-1]:
            parent = parent[part]
        key, value = path[-1], parent[path[-1]]
        how = data.draw(
            st.sampled_from(["delete", "replace", "retype", "truncate", "number", "junk", "small", "swap"]),
            label="how",
        )
        if how == "small" and isinstance(value, int):  # often a node, item or count that still fits
            parent[key] = data.draw(st.integers(-1, 12), label="small")
        elif how == "swap" and isinstance(value, int):
            numbers = [each for each in leaves(found) if isinstance(_at(found, each), int)]
            if numbers:
                other = data.draw(st.sampled_from(numbers), label="swap with")
                _put(found, other, value)
                _put(found, path, _at(found, other) if other != path else value)
        elif how == "delete":
            del parent[key]
        elif how == "replace":
            parent[key] = data.draw(JSON, label="with")
        elif how == "retype":
            parent[key] = (
                str(value) if not isinstance(value, str) else (int(value) if value.isdigit() else [value])
            )
        elif how == "truncate" and isinstance(value, (list, str)):
            parent[key] = value[: data.draw(st.integers(0, max(0, len(value) - 1)), label="to")]
        elif how == "number" and isinstance(value, (int, float)) and not isinstance(value, bool):
            parent[key] = data.draw(
                st.sampled_from(
                    [-1, 0, 1, value + 1, value - 1, 2**53 + 1, 2**64, -(2**63), value + 0.5, float("nan")]
                ),
                label="number",
            )
        elif how == "junk" and isinstance(value, dict):
            value[data.draw(st.text(max_size=6), label="key")] = data.draw(JSON, label="junk")
        else:
            parent[key] = data.draw(JSON, label="instead")
    return found


def _at(value: Any, path: tuple) -> Any:
    for part in path:
        value = value[part]
    return value


def _put(value: Any, path: tuple, item: Any) -> None:
    _at(value, path[:-1])[path[-1]] = item


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_a_damaged_archive_is_refused_or_restored_and_then_everything_works(archives, client, data):
    which = data.draw(st.sampled_from(sorted(archives)), label="archive")
    archive = mutated(data, archives[which])
    try:
        id = client.restore(archive, replace=True)
    except InvalidArchive as error:
        assert "\n" not in str(error) and len(str(error)) < 500
        event("refused")
        return
    event("restored")
    works(client, id)


def test_an_archive_of_the_earlier_storage_restores_with_its_log_and_task_info(archives, client):
    """Archives written before the log and task info were compacted: task info with nulls,
    a log of stream ids (several in one millisecond)."""
    archive = copy.deepcopy(archives["failed"])
    for info in archive["tasks"].values():
        info.update({key: info.get(key) for key in ("error", "worker", "note", "output")})
    archive["log"] = [
        {"id": "1700000000000-0", "kind": "submitted"},
        {"id": "1700000000000-1", "kind": "x"},
        {"id": "1700000000007-4", "kind": "failed", "task": "|2|-1", "node": "2", "error": "no"},
    ]
    client.restore(archive)
    again = client.archive(archive["id"])
    assert [entry["id"] for entry in again["log"]][:3] == [
        "1700000000000-0",
        "1700000000000-1",
        "1700000000007-0",
    ]
    assert [{k: v for k, v in entry.items() if k != "id"} for entry in again["log"]] == [
        {k: v for k, v in entry.items() if k != "id"} for entry in archive["log"]
    ] + [{"kind": "restored"}]
    assert again["tasks"] == {
        task: {k: v for k, v in info.items() if v is not None} for task, info in archive["tasks"].items()
    }
    assert client.status(archive["id"])["error"]["error"] == archive["run"]["state"]["failures"][0]["error"]
    client.delete(archive["id"])


# -- conditionals and loops (LANGUAGE.md §9.7, §9.8) ------------------------------------------------
@pytest.mark.parametrize(
    "which, output",
    [
        ("in a branch", {"last": {"a": {"k": 2}, "no": True}}),
        ("in an item's branch", {"last": [{"k": 1, "yes": True}, {"k": 2, "no": True}]}),
        ("mid-loop", {"last": {"n": 3}}),
    ],
)
def test_a_run_archived_inside_a_conditional_or_a_loop_is_restored_and_finishes_there(
    archives, client, started, which, output
):
    """The branch taken and the round reached are part of the state (§9.7, §9.8): the
    restored run goes on from the task it waited on, and the branch not taken stays skipped."""
    archive, rounds = archives[which], []
    assert archive["status"] == "running"
    assert client.restore(archive) == archive["id"]
    started.services_on(tasks=forms(hold=True, rounds=rounds))
    assert client.wait(archive["id"], timeout=10)["output"] == output
    flow, statuses = client.statuses(archive["id"])
    named = {node.label: statuses.get(node.id) for node in flow.nodes}
    assert named["last"] == "done"
    if which == "in a branch":
        assert (named["Yes"], named["hold"], named["No"]) == ("skipped", "done", "done")
    if which == "mid-loop":
        assert [list(task[3].items()) for task in state(archive)["running"]] == [[("n", 2)]]
        assert rounds == [2]  # only the third round ran after the restore
    diagram.svg(flow, status=statuses)
    works(client, archive["id"])


def test_a_conditional_and_a_loop_without_text_must_have_their_shape(archives, client):
    archive = archives["forms without text"]
    assert archive["text"] == "" and archive["status"] == "finished"
    assert client.restore(archive) == archive["id"]
    nodes = archive["flow"]["nodes"]
    at = {
        kind: next(node["id"] for node in nodes if node["kind"] == kind)
        for kind in ("choice", "choice-end", "while", "repeat", "loop-end")
    }
    branch = next(node["id"] for node in nodes if node.get("condition") and node["kind"] == "task")

    def put(node: int, key: str, value: Any) -> Any:
        return lambda a: a["flow"]["nodes"][node].__setitem__(key, value)

    refused(
        client,
        edited(archive, put(at["choice"], "pair", at["loop-end"])),
        "is a conditional without its other end",
    )
    refused(
        client, edited(archive, put(at["choice-end"], "pair", at["choice-end"])), "is a conditional without"
    )
    refused(
        client, edited(archive, put(at["while"], "pair", at["choice-end"])), "is a loop without its other end"
    )
    refused(client, edited(archive, put(at["while"], "kind", "choice")), "without its other end")
    refused(client, edited(archive, put(at["while"], "condition", None)), "is a loop without a condition")
    refused(client, edited(archive, put(at["while"], "kind", "whilst")), "at archive.flow.nodes")
    refused(
        client,
        edited(archive, put(at["choice"], "condition", "$[?@.k]")),
        "has a condition but is neither a loop nor a conditional's branch",
    )
    refused(client, edited(archive, put(len(nodes) - 2, "condition", "$[?@.k]")), "neither a loop nor")
    refused(client, edited(archive, put(branch, "condition", "$[?@.k ==")), "damaged archive")
    refused(client, edited(archive, put(branch, "condition", 7)), "condition: Input should be a valid string")

    def bodiless(a: dict[str, Any]) -> None:  # a loop whose edges are gone
        a["flow"]["edges"] = [edge for edge in a["flow"]["edges"] if at["while"] not in edge]

    refused(client, edited(archive, bodiless), "is a loop without a body")

    def no_way_back(a: dict[str, Any]) -> None:  # its end no longer leads back to the body
        a["flow"]["edges"] = [
            edge for edge in a["flow"]["edges"] if edge[0] != at["loop-end"] or edge[1] > edge[0]
        ]

    refused(client, edited(archive, no_way_back), "is a loop without a body")


def test_an_iteration_or_a_frame_at_a_node_that_opens_no_form_is_refused(archives, client):
    archive = archives["in an item's branch"]
    frames = state(archive)["frames"]
    assert len(frames) > 1
    choice = frames[1]["parent"][1]
    last = len(archive["flow"]["nodes"]) - 2  # the task after the conditional

    def move(a: dict[str, Any]) -> None:
        root = state(a)["frames"][0]
        root["iterations"][str(last)] = root["iterations"].pop(str(choice))

    refused(client, edited(archive, move), "damaged archive")
