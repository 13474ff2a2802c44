"""What a flow run by the built-in worker may touch (littleflow.confine): file resources
only in the directories it allows, HTTP (resources and http: tasks) only to public
addresses and those it allows, on the resolved address of every connection, redirects
included; http: tasks time out, are cancelled on terminate and hold no task thread.
A real Redis, a real HTTP server on loopback."""

from __future__ import annotations

import json
import os
import time

import pytest

from littleflow.confine import Confinement
from littleflow.redis.client import Client

LOOPBACK = Confinement(http_allow=("127.0.0.1",))


def params(**values) -> str:
    return "(- " + json.dumps(values) + " -)"


def failed(client: Client, text: str, input=None) -> str:
    """The error of the task that failed the flow ``text``."""
    document = client.wait(client.submit(text, input), timeout=20)
    assert document["state"] == "failed", document
    return document["error"]["error"]


@pytest.fixture
def tree(tmp_path):
    """root/ (allowed: data.json, link.json → ../outside/secret.json) and outside/ (secret.json)."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "data.json").write_text('{"inside": true}')
    (outside / "secret.json").write_text('{"secret": true}')
    os.symlink(outside / "secret.json", root / "link.json")
    os.symlink(outside, root / "elsewhere")
    return root, outside


# -- files ---------------------------------------------------------------------------------


def test_without_files_a_file_resource_fails_naming_the_option(started, client, tree):
    root, _ = tree
    started.services_on()
    error = failed(client, f"<{root}/data.json>")
    assert "file resources are off" in error and "--files DIR" in error


def test_files_inside_the_roots_are_read_and_written(started, client, tree):
    root, _ = tree
    started.services_on(confine=Confinement(files=(str(root),)))
    text = f"<data.json> → <out/copy.json>\n<file://{root}/data.json> → <{root}/out/again.json>"
    document = client.wait(client.submit(text), timeout=20)
    assert document["state"] == "finished", document
    assert document["output"] == [{"inside": True}, {"inside": True}]
    assert json.loads((root / "out" / "copy.json").read_text()) == {"inside": True}  # relative: in the root
    assert json.loads((root / "out" / "again.json").read_text()) == {"inside": True}


@pytest.mark.parametrize(
    "uri",
    [
        "{outside}/secret.json",
        "file://{outside}/secret.json",
        "../outside/secret.json",
        "link.json",
        "elsewhere/secret.json",
        "/etc/passwd",
    ],
)
def test_a_source_outside_the_roots_is_refused(uri, started, client, tree):
    root, outside = tree
    started.services_on(confine=Confinement(files=(str(root),)))
    error = failed(client, f"<{uri.format(outside=outside)}>")
    assert "outside the directories allowed with --files" in error


@pytest.mark.parametrize(
    "uri",
    [
        "{outside}/written.json",
        "../outside/written.json",
        "elsewhere/written.json",
        "file://{outside}/written.json",
    ],
)
def test_a_sink_outside_the_roots_is_refused_and_nothing_is_written(uri, started, client, tree):
    root, outside = tree
    started.services_on(confine=Confinement(files=(str(root),)))
    error = failed(client, f"<data.json> → <{uri.format(outside=outside)}>")
    assert "outside the directories allowed with --files" in error
    assert sorted(os.listdir(outside)) == ["secret.json"]


# -- the network -------------------------------------------------------------------------------


def test_a_loopback_http_source_and_http_get_are_refused_by_default(started, client, http_server):
    url = http_server.serve("/data.json", '{"a": 1}', "application/json")
    started.services_on()
    for text in (f"<{url}>", f"http:get {params(url=url)}"):
        error = failed(client, text)
        assert "127.0.0.1 is not a public address" in error and "--http-allow 127.0.0.1" in error
    assert http_server.received() == []  # refused before connecting


@pytest.mark.parametrize("allow", ["127.0.0.1", "127.0.0.0/8", "localhost"])
def test_an_allowed_host_or_network_is_reached(allow, started, client, http_server):
    http_server.serve("/data.json", '{"a": 1}', "application/json")
    host = "localhost" if allow == "localhost" else "127.0.0.1"
    url = f"http://{host}:{http_server.port}/data.json"
    started.services_on(confine=Confinement(http_allow=(allow,)))
    document = client.wait(client.submit(f"<{url}> → http:get {params(url=url)}"), timeout=20)
    assert (document["state"], document["output"]) == ("finished", {"a": 1}), document
    assert len(http_server.received("GET")) == 2


def test_a_name_resolving_to_loopback_is_refused_unless_allowed(started, client, http_server):
    url = f"http://localhost:{http_server.port}/data.json"
    started.services_on()
    error = failed(client, f"http:get {params(url=url)}")
    assert (
        "localhost resolves to an address that is not public" in error and "--http-allow localhost" in error
    )
    assert "127.0.0.1" not in error
    assert http_server.received() == []


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.2:{port}/data.json",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:{port}/data.json",
    ],
)
def test_a_redirect_from_an_allowed_host_to_a_refused_one_is_refused(target, started, client, http_server):
    http_server.serve("/data.json", '{"a": 1}', "application/json")
    url = http_server.redirect("/go", target.format(port=http_server.port))
    started.services_on(confine=LOOPBACK)
    for text in (f"<{url}>", f"http:get {params(url=url)}"):
        assert "is not a public address" in failed(client, text)
    assert [r.path for r in http_server.received()] == ["/go", "/go"]  # the redirect only


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00::1]/",
        "http://10.0.0.1/",
        "http://100.64.0.1/",
        "http://0.0.0.0:9/",
        "http://[::1]:9/",
        "http://[::ffff:10.0.0.1]/",
        "http://[2002:a00:1::]/",
        "http://224.0.0.1/",
    ],
)
def test_private_link_local_and_cloud_metadata_addresses_are_refused(url, started, client):
    started.services_on(confine=LOOPBACK)
    started_at = time.monotonic()
    error = failed(client, f"http:get {params(url=url)}")
    assert "is not a public address" in error
    print(f"{url}: refused in {time.monotonic() - started_at:.3f} s")


# -- timeouts and termination ------------------------------------------------------------------


def test_an_http_task_times_out_after_its_timeout(started, client, http_server):
    url = http_server.hang("/slow")
    started.services_on(confine=LOOPBACK)
    began = time.monotonic()
    error = failed(client, f"http:get {params(url=url, timeout=1)}")
    assert "timed out after 1 s" in error
    print(f"timed out in {time.monotonic() - began:.2f} s")


def test_hung_http_tasks_hold_no_thread_and_end_when_terminated(started, client, http_server, until):
    url = http_server.hang("/slow")
    services = started.services_on(confine=LOOPBACK)  # 16 built-in task threads
    worker = services.workers[0]
    hung = [client.submit(f"http:get {params(url=url)}") for _ in range(16)]
    until(lambda: len(http_server.received("GET")) == 16, 20, "16 hanging requests")
    began = time.monotonic()
    delay = client.wait(
        client.submit(f"wait:delay {params(duration=0.1)} → http:get {params(url=url, timeout=1)}"),
        timeout=20,
    )
    assert delay["state"] == "failed" and "timed out" in delay["error"]["error"]  # it ran beside the 16
    print(f"a delay and a timed-out call beside 16 hung calls: {time.monotonic() - began:.2f} s")
    done = worker.done
    for id in hung:
        assert client.terminate(id)["state"] == "terminated"
    until(lambda: worker.done == done + 16, 10, "the 16 cancelled tasks to end")
    assert all(client.status(id)["state"] == "terminated" for id in hung)


def test_an_answer_or_a_file_larger_than_16_mib_fails_its_task(started, client, http_server, tree):
    root, _ = tree
    big = b'"' + b"x" * (16 * 2**20) + b'"'
    url = http_server.serve("/big.json", big, "application/json")
    (root / "big.json").write_bytes(big)
    started.services_on(confine=Confinement(files=(str(root),), http_allow=("127.0.0.1",)))
    for text in (f"http:get {params(url=url)}", f"<{url}>", "<big.json>"):
        assert "more than 16 MiB" in failed(client, text)
