"""Connecting as the issue asks: ACL users with passwords (redis://user:pass@…) and TLS (rediss://)."""

import shutil
import subprocess
import time

import pytest
import redis

from littleflow.redis.client import Client, safe_url
from littleflow.redis.serve import Services
from littleflow.redis.server import find_server, free_port
from littleflow.redis.store import StoreError
from littleflow.tasks import Registry


def tasks():
    registry = Registry()
    registry.add("double", lambda input: {"n": input["n"] * 2})
    return registry


def run_one(url):
    with Services(url, tasks=tasks()):
        client = Client(url)
        return client.wait(client.submit("double → double", {"n": 3}), timeout=20)


def test_an_acl_user_limited_to_the_lf_keys_runs_workflows(own_redis_server):
    admin = redis.Redis.from_url(own_redis_server.url)
    admin.execute_command(
        "ACL",
        "SETUSER",
        "flows",
        "on",
        ">s3cret pass",
        "resetkeys",
        "~{lf}:*",
        "resetchannels",
        "&{lf}:*",
        "+@all",
        "-@admin",
        "-@dangerous",
        "+info",
    )
    url = f"redis://flows:s3cret%20pass@127.0.0.1:{own_redis_server.port}/0"
    done = run_one(url)
    assert (done["state"], done["output"]) == ("finished", {"n": 12})
    assert admin.keys("{lf}:*") and not [key for key in admin.keys("*") if not key.startswith(b"{lf}:")]


def test_a_wrong_password_is_one_line_without_the_password(own_redis_server):
    client = Client(f"redis://flows:wrong-secret@127.0.0.1:{own_redis_server.port}/0")
    with pytest.raises(StoreError) as caught:
        client.ping()
    message = str(caught.value)
    assert "\n" not in message and "wrong-secret" not in message and "cannot reach Redis" in message


def test_safe_url_hides_only_the_password():
    assert safe_url("redis://alice:pw@host:1/0") == "redis://alice:***@host:1/0"
    assert safe_url("rediss://:pw@host:1/0") == "rediss://***@host:1/0"
    assert safe_url("redis://host:1/0") == "redis://host:1/0"


@pytest.fixture
def tls_server(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: no certificate for a TLS test")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    port = free_port()
    log = tmp_path / "redis.log"
    process = subprocess.Popen(
        [
            find_server(),
            "--port",
            "0",
            "--tls-port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--tls-cert-file",
            str(cert),
            "--tls-key-file",
            str(key),
            "--tls-auth-clients",
            "no",
            "--dir",
            str(tmp_path),
            "--save",
            "",
            "--logfile",
            str(log),
        ]
    )
    url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={cert}"
    try:
        for _ in range(100):
            if process.poll() is not None:
                pytest.skip(f"this redis-server has no TLS: {log.read_text().strip().splitlines()[-1]}")
            try:
                redis.Redis.from_url(url).ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield url
    finally:
        process.kill()
        process.wait()


def test_workflows_run_over_tls(tls_server):
    done = run_one(tls_server)
    assert (done["state"], done["output"]) == ("finished", {"n": 12})
