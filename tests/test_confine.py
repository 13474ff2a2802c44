"""littleflow.confine: which addresses are public, --http-allow entries, file roots, and
run_workflow's ``files`` / ``http_allow`` keywords (against a real HTTP server on loopback)."""

from __future__ import annotations

import ipaddress
import os
import socket

import pytest
from httpserver import http_server  # noqa: F401 - the fixture

from littleflow import FlowFailed, resources, run_workflow
from littleflow.confine import LOCKED, Confinement, Refused, allowed_entry, public


@pytest.mark.parametrize(
    "address,is_public",
    [
        ("8.8.8.8", True),
        ("2606:4700::1111", True),
        ("127.0.0.1", False),
        ("::1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("fd12::1", False),
        ("100.64.0.1", False),
        ("224.0.0.1", False),
        ("ff02::1", False),
        ("0.0.0.0", False),
        ("::", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:169.254.169.254", False),
        ("::ffff:8.8.8.8", True),
        ("2002:7f00:1::", False),
        ("2002:a9fe:a9fe::", False),
        ("2002:808:808::", True),  # 6to4
        ("64:ff9b::a00:1", False),
        ("64:ff9b::808:808", True),  # NAT64
    ],
)
def test_public_addresses_in_every_form(address, is_public):
    assert public(ipaddress.ip_address(address)) is is_public


@pytest.mark.parametrize(
    "entry,parsed",
    [
        ("127.0.0.1", ipaddress.ip_network("127.0.0.1/32")),
        ("10.0.0.0/8", ipaddress.ip_network("10.0.0.0/8")),
        ("[::1]", ipaddress.ip_network("::1/128")),
        ("fd00::/8", ipaddress.ip_network("fd00::/8")),
        ("Metadata.Internal.", "metadata.internal"),
        ("localhost", "localhost"),
    ],
)
def test_http_allow_entries(entry, parsed):
    assert allowed_entry(entry) == parsed


@pytest.mark.parametrize("entry", ["not a host", "10.0.0.0/33", "http://x/", "", "1.2.3"])
def test_a_bad_http_allow_entry_is_refused_naming_it(entry):
    with pytest.raises(ValueError, match="--http-allow"):
        Confinement(http_allow=(entry,))


def test_an_allowed_network_lets_its_addresses_through_and_no_other():
    confine = Confinement(http_allow=("10.0.0.0/8", "db.internal"))
    confine.check_address("x", ipaddress.ip_address("10.9.9.9"))
    confine.check_address(
        "db.internal", ipaddress.ip_address("192.168.0.9")
    )  # a name allows all its addresses
    with pytest.raises(Exception, match="192.168.0.9 is not a public address"):
        confine.check_address("192.168.0.9", ipaddress.ip_address("192.168.0.9"))


def test_relative_paths_resolve_in_the_first_root_and_every_root_is_allowed(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    (second / "data.json").write_text("[2]")
    confine = Confinement(files=(str(first), str(second)))
    assert confine.path("out/x.json", "/elsewhere") == str(first / "out" / "x.json")
    assert resources.read(str(second / "data.json"), {}, None, confine) == [2]
    resources.write("x.json", {}, None, [1], confine)
    assert (first / "x.json").read_text().strip() == "[\n  1\n]"


def test_a_pipe_inside_the_roots_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe.json")
    with pytest.raises(resources.ResourceError, match="not a regular file"):
        resources.read("pipe.json", {}, None, Confinement(files=(str(tmp_path),)))


def test_http_timeouts_default_to_30_s_and_are_cut_to_300_s():
    assert resources.timeout({}) == 30.0
    assert resources.timeout({}, 5) == 5.0  # the flow's timeout
    assert resources.timeout({"timeout": 2}, 5) == 2.0  # the parameter first
    assert resources.timeout({"timeout": 3600}) == 300.0
    with pytest.raises(resources.ResourceError, match="timeout must be a number of seconds > 0"):
        resources.timeout({"timeout": "soon"})


def test_run_workflow_is_unconfined_unless_asked(tmp_path, http_server):
    url = http_server.serve("/data.json", '{"a": 1}', "application/json")
    (tmp_path / "root").mkdir()
    (tmp_path / "secret.json").write_text('{"secret": 1}')
    assert run_workflow(f"<{url}>") == {"a": 1}
    assert run_workflow(f"<{tmp_path}/secret.json>") == {"secret": 1}
    with pytest.raises(FlowFailed, match="127.0.0.1 is not a public address"):
        run_workflow(f"<{url}>", http_allow=[])
    assert run_workflow(f"<{url}>", http_allow=["127.0.0.1"]) == {"a": 1}
    with pytest.raises(FlowFailed, match="outside the directories allowed"):
        run_workflow("<../secret.json>", files=[str(tmp_path / "root")])


def test_a_name_is_refused_if_any_of_its_addresses_is_refused():
    """What getaddrinfo answers for a name rebinding between public and private addresses."""
    public_one = (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 80))
    private_one = (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.1", 80))
    mapped = (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::ffff:169.254.169.254", 80, 0, 0))
    assert LOCKED.checked("example.com", [public_one]) == ["93.184.216.34"]
    for found in ([public_one, private_one], [mapped, public_one]):
        with pytest.raises(Refused, match="example.com resolves to an address that is not public"):
            LOCKED.checked("example.com", found)
    assert Confinement(http_allow=("example.com",)).checked("example.com", [private_one]) == ["10.0.0.1"]
