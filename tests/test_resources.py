"""Resources (LANGUAGE.md §6.2): ``<uri>`` sources and sinks for files and http(s)
URLs, read and written through run_workflow. HTTP goes to a real server (httpserver.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from httpserver import http_server  # noqa: F401 - the fixture

from littleflow import FlowFailed, resources, run_workflow


def keep(input):
    return input


# -- files: where relative URIs are resolved -------------------------------------------
def test_source_in_a_flow_file_is_relative_to_the_flow_files_directory(tmp_path, monkeypatch):
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "data.json").write_text('{"from": "flows dir"}')
    (tmp_path / "data.json").write_text('{"from": "working dir"}')
    (flows / "main.flow").write_text("<data.json> → keep\n")
    monkeypatch.chdir(tmp_path)
    assert run_workflow(flows / "main.flow", {"keep": keep}) == {"from": "flows dir"}


def test_source_in_inline_text_is_relative_to_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "data.json").write_text('{"from": "working dir"}')
    monkeypatch.chdir(tmp_path)
    assert run_workflow("<data.json> → keep", {"keep": keep}) == {"from": "working dir"}


def test_base_option_decides_where_relative_uris_point(tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "data.json").write_text('{"from": "base"}')
    (tmp_path / "data.json").write_text('{"from": "working dir"}')
    monkeypatch.chdir(tmp_path)
    assert run_workflow("<data.json>", base=str(elsewhere)) == {"from": "base"}


def test_base_option_wins_over_the_flow_files_directory(tmp_path):
    (tmp_path / "main.flow").write_text("<data.json>")
    (tmp_path / "data.json").write_text('{"from": "flow dir"}')
    other = tmp_path / "other"
    other.mkdir()
    (other / "data.json").write_text('{"from": "base"}')
    assert run_workflow(tmp_path / "main.flow", base=str(other)) == {"from": "base"}


def test_base_option_may_be_an_http_url(http_server):
    http_server.serve("/api/data.json", '{"remote": true}', "application/json")
    assert run_workflow("<data.json>", base=http_server.url("/api/")) == {"remote": True}
    assert [(r.method, r.path) for r in http_server.requests] == [("GET", "/api/data.json")]


def test_file_uri_is_read(tmp_path):
    (tmp_path / "data.json").write_text('{"a": 1}')
    assert run_workflow(f"<{(tmp_path / 'data.json').as_uri()}>") == {"a": 1}


def test_absolute_path_is_read(tmp_path):
    (tmp_path / "data.json").write_text("[1, 2, 3]")
    assert run_workflow(f"<{tmp_path / 'data.json'}>") == [1, 2, 3]


# -- files: content types -------------------------------------------------------------
@pytest.mark.parametrize("name", ["data.yaml", "data.yml"])
def test_yaml_file_is_understood_by_its_extension(tmp_path, name):
    (tmp_path / name).write_text("fruit: banana\ncount: 3\nitems:\n  - a\n  - b\n")
    assert run_workflow(f"<{name}>", base=str(tmp_path)) == {
        "fruit": "banana",
        "count": 3,
        "items": ["a", "b"],
    }


@pytest.mark.parametrize("name", ["points.jsonseq", "points.jsonl"])
def test_json_text_sequence_file_is_a_list(tmp_path, name):
    (tmp_path / name).write_text('{"x": 1}\n{"x": 2}\n\n{"x": 3}\n')
    assert run_workflow(f"<{name}>", base=str(tmp_path)) == [{"x": 1}, {"x": 2}, {"x": 3}]


def test_json_text_sequence_with_record_separators_is_a_list(tmp_path):
    (tmp_path / "points.jsonseq").write_text('\x1e{"x": 1}\n\x1e[2]\n\x1e"three"\n')
    assert run_workflow("<points.jsonseq>", base=str(tmp_path)) == [{"x": 1}, [2], "three"]


def test_content_type_parameter_wins_over_the_extension(tmp_path):
    (tmp_path / "data.txt").write_text("a: 1\nb: [x, y]\n")
    flow = "<data.txt>(- content-type: application/yaml -)"
    assert run_workflow(flow, base=str(tmp_path)) == {"a": 1, "b": ["x", "y"]}
    (tmp_path / "seq.json").write_text('{"n": 1}\n{"n": 2}\n')
    flow = "<seq.json>(- content-type: application/json-seq -)"
    assert run_workflow(flow, base=str(tmp_path)) == [{"n": 1}, {"n": 2}]


def test_iteration_over_a_json_text_sequence(tmp_path):
    (tmp_path / "points.jsonseq").write_text(
        '{"id": "a", "v": 1}\n{"id": "b", "v": 2}\n{"id": "c", "v": 3}\n'
    )
    seen = []

    def score(point):
        seen.append(point)
        return {point["id"]: point["v"] * 10}

    def report(input):
        return {"report": input}

    result = run_workflow("<points.jsonseq> → * score → > report", locals(), base=str(tmp_path))
    assert seen == [{"id": "a", "v": 1}, {"id": "b", "v": 2}, {"id": "c", "v": 3}]
    assert result == {"report": {"a": 10, "b": 20, "c": 30}}


# -- files: sinks ----------------------------------------------------------------------
def test_file_sink_writes_json_and_passes_its_input_on(tmp_path):
    def after(input):
        return {"after": input}

    result = run_workflow('<{"a": 1, "b": [true, null]}> → <out.json> → after', locals(), base=str(tmp_path))
    assert result == {"after": {"a": 1, "b": [True, None]}}
    assert json.loads((tmp_path / "out.json").read_text()) == {"a": 1, "b": [True, None]}


def test_file_sink_at_the_end_outputs_its_input(tmp_path):
    assert run_workflow("<- {k: v} -> → <out.json>", base=str(tmp_path)) == {"k": "v"}
    assert json.loads((tmp_path / "out.json").read_text()) == {"k": "v"}


def test_file_sink_in_a_flow_file_writes_next_to_the_flow(tmp_path, monkeypatch):
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "main.flow").write_text("<- {k: v} -> → <out.json>\n")
    monkeypatch.chdir(tmp_path)
    run_workflow(flows / "main.flow")
    assert json.loads((flows / "out.json").read_text()) == {"k": "v"}
    assert not (tmp_path / "out.json").exists()


def test_file_sink_writes_yaml_by_extension(tmp_path):
    run_workflow("<- {name: x, list: [1, 2]} -> → <out.yaml>", base=str(tmp_path))
    text = (tmp_path / "out.yaml").read_text()
    assert yaml.safe_load(text) == {"name": "x", "list": [1, 2]}
    assert not text.lstrip().startswith("{")  # YAML, not JSON


def test_file_sink_writes_a_json_text_sequence_one_value_a_line(tmp_path):
    run_workflow('<[{"a": 1}, {"a": 2}, 3]> → <out.jsonl>', base=str(tmp_path))
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines if line.strip()] == [{"a": 1}, {"a": 2}, 3]


def test_file_sink_and_source_round_trip_a_sequence(tmp_path):
    run_workflow('<[{"a": 1}, {"a": 2}]> → <seq.jsonseq>', base=str(tmp_path))
    assert run_workflow("<seq.jsonseq>", base=str(tmp_path)) == [{"a": 1}, {"a": 2}]


def test_file_sink_content_type_parameter_wins_over_the_extension(tmp_path):
    run_workflow("<- {a: 1} -> → <out.txt>(- content-type: application/yaml -)", base=str(tmp_path))
    text = (tmp_path / "out.txt").read_text()
    assert yaml.safe_load(text) == {"a": 1}
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


# -- files: failures ------------------------------------------------------------------------
def test_missing_source_file_is_a_task_failure_naming_the_uri(tmp_path):
    def after(input):
        raise AssertionError("must not run")

    with pytest.raises(FlowFailed) as caught:
        run_workflow("<missing.json> → after", locals(), base=str(tmp_path))
    assert "missing.json" in caught.value.error
    assert "missing.json" in str(caught.value)


def test_malformed_source_file_is_a_task_failure_naming_the_uri(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(FlowFailed) as caught:
        run_workflow("<bad.json>", base=str(tmp_path))
    assert "bad.json" in caught.value.error


def test_unwritable_sink_is_a_task_failure_naming_the_uri(tmp_path):
    (tmp_path / "blocker").write_text("a file, not a directory")
    with pytest.raises(FlowFailed) as caught:
        run_workflow("<- {a: 1} -> → <blocker/out.json>", base=str(tmp_path))
    assert "blocker/out.json" in caught.value.error


# -- http(s) sources -------------------------------------------------------------------------
def test_http_source_is_read_with_get(http_server):
    url = http_server.serve("/data.json", '{"a": [1, 2]}', "application/json")
    assert run_workflow(f"<{url}> → keep", {"keep": keep}) == {"a": [1, 2]}
    assert [(r.method, r.path) for r in http_server.requests] == [("GET", "/data.json")]


def test_http_source_type_comes_from_the_response_header(http_server):
    yaml_url = http_server.serve("/thing", "a: 1\nb: two\n", "application/yaml; charset=utf-8")
    seq_url = http_server.serve("/stream", '{"n": 1}\n{"n": 2}\n', "application/json-seq")
    assert run_workflow(f"<{yaml_url}>") == {"a": 1, "b": "two"}
    assert run_workflow(f"<{seq_url}>") == [{"n": 1}, {"n": 2}]


def test_http_response_header_wins_over_the_extension(http_server):
    url = http_server.serve("/data.json", "a: 1\n", "application/yaml")
    assert run_workflow(f"<{url}>") == {"a": 1}


def test_http_source_without_a_content_type_uses_the_extension(http_server):
    seq = http_server.serve("/points.jsonl", '{"n": 1}\n{"n": 2}\n')
    yml = http_server.serve("/conf.yaml", "k: v\n")
    assert run_workflow(f"<{seq}>") == [{"n": 1}, {"n": 2}]
    assert run_workflow(f"<{yml}>") == {"k": "v"}


def test_content_type_parameter_wins_over_the_response_header(http_server):
    url = http_server.serve("/data", "a: 1\nb: [2]\n", "application/json")
    assert run_workflow(f"<{url}>(- content-type: application/yaml -)") == {"a": 1, "b": [2]}


def test_iteration_over_an_http_json_text_sequence(http_server):
    url = http_server.serve("/points", '{"id": "a"}\n{"id": "b"}\n', "application/json-seq")

    def score(point):
        return {point["id"]: True}

    def report(input):
        return input

    assert run_workflow(f"<{url}> → * score → > report", locals()) == {"a": True, "b": True}


def test_http_error_status_is_a_task_failure_naming_the_url(http_server):
    url = http_server.url("/nothing-here.json")
    with pytest.raises(FlowFailed) as caught:
        run_workflow(f"<{url}>")
    assert url in caught.value.error
    assert "404" in caught.value.error


def test_unreachable_http_source_is_a_task_failure_naming_the_url(http_server):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/data.json"
    with pytest.raises(FlowFailed) as caught:
        run_workflow(f"<{url}>")
    assert url in caught.value.error


# -- http(s) sinks ---------------------------------------------------------------------------
def test_http_sink_puts_json_by_default_and_passes_its_input_on(http_server):
    url = http_server.url("/store/out.json")

    def after(input):
        return {"after": input}

    result = run_workflow(f'<{{"a": 1}}> → <{url}> → after', locals())
    assert result == {"after": {"a": 1}}
    (request,) = http_server.requests
    assert (request.method, request.path) == ("PUT", "/store/out.json")
    assert json.loads(request.body) == {"a": 1}
    assert request.headers["content-type"].startswith("application/json")


def test_http_sink_method_parameter(http_server):
    url = http_server.url("/hook")
    assert run_workflow(f"<- {{a: 1}} -> → <{url}>(- method: POST -)") == {"a": 1}
    (request,) = http_server.requests
    assert (request.method, request.path) == ("POST", "/hook")
    assert json.loads(request.body) == {"a": 1}


def test_http_sink_writes_yaml_and_json_text_sequences_by_extension(http_server):
    run_workflow(f"<- {{a: 1}} -> → <{http_server.url('/out.yaml')}>")
    run_workflow(f'<[{{"n": 1}}, {{"n": 2}}]> → <{http_server.url("/out.jsonseq")}>')
    yaml_request, seq_request = http_server.requests
    assert yaml.safe_load(yaml_request.body) == {"a": 1}
    assert "yaml" in yaml_request.headers["content-type"]
    assert [json.loads(line) for line in seq_request.body.decode().splitlines() if line.strip()] == [
        {"n": 1},
        {"n": 2},
    ]
    assert seq_request.headers["content-type"].startswith("application/json-seq")


def test_http_sink_error_status_is_a_task_failure_naming_the_url(http_server):
    url = http_server.serve("/broken", "nope", "text/plain", status=500)

    def after(input):
        raise AssertionError("must not run")

    with pytest.raises(FlowFailed) as caught:
        run_workflow(f"<- {{a: 1}} -> → <{url}> → after", locals())
    assert url in caught.value.error
    assert "500" in caught.value.error


# -- the module's own functions -------------------------------------------------------------------
def test_resolve_against_base_directory_url_and_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Path(resources.resolve("a.json", None)) == tmp_path / "a.json"
    assert Path(resources.resolve("a.json", "/srv/data")) == Path("/srv/data/a.json")
    assert resources.resolve("a.json", "http://h/x/") == "http://h/x/a.json"
    assert resources.resolve("http://other/b.json", "/srv") == "http://other/b.json"


@pytest.mark.parametrize(
    "kind,value",
    [
        ("json", {"a": [1, "x", None]}),
        ("yaml", {"a": [1, "x", None], "b": {"c": True}}),
        ("json-seq", [{"a": 1}, [2], "three"]),
    ],
)
def test_serialize_then_parse_round_trips(kind, value):
    assert resources.parse(resources.serialize(value, kind), kind) == value


def test_parse_raises_value_error_for_bad_text():
    with pytest.raises(ValueError):
        resources.parse("{oops", "json")
    with pytest.raises(ValueError):
        resources.parse('{"a": 1}\n{oops\n', "json-seq")


def test_sink_files_get_ordinary_permissions_and_no_temporary_file_is_left(tmp_path):
    import os
    import stat

    run_workflow('<{"x": 1}> → <out.json>', base=str(tmp_path))
    mode = stat.S_IMODE(os.stat(tmp_path / "out.json").st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask
    (tmp_path / "d").mkdir()
    with pytest.raises(FlowFailed, match="cannot write <d>: Is a directory"):
        run_workflow('<{"x": 1}> → <d>', base=str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "out.json"]


def test_infinite_numbers_in_a_resource_are_refused(tmp_path):

    (tmp_path / "bad.json").write_text('{"x": NaN}')
    with pytest.raises(FlowFailed, match="NaN"):
        run_workflow("<bad.json> → A", {"A": lambda i: i}, base=str(tmp_path))


def test_an_rs_separated_record_may_span_lines(tmp_path):

    (tmp_path / "points.jsonseq").write_text('\x1e{\n "a": 1\n}\n\x1e{"a": 2}\n')
    assert run_workflow("<points.jsonseq> → A", {"A": lambda i: i}, base=str(tmp_path)) == [
        {"a": 1},
        {"a": 2},
    ]
