"""RedisServer, find_server and the private server of `littleflow serve` (its password and
kept port), against real redis-server child processes."""

from __future__ import annotations

import logging
import socket
import stat

import pytest
import redis

from littleflow.redis.serve import PORT_FILE, private_server, saved_port
from littleflow.redis.server import ENV_VAR, RedisServer, ServerNotFound, find_server, free_port, port_free


def client(server: RedisServer) -> redis.Redis:
    return redis.Redis.from_url(server.url, socket_timeout=2, socket_connect_timeout=2)


def test_it_answers_ping_on_its_own_port_on_loopback(own_redis_server):
    server = own_redis_server
    assert server.port != 6379
    assert server.url == f"redis://127.0.0.1:{server.port}/0"
    with client(server) as c:
        assert c.ping()
        assert c.info("server")["process_id"] == server.process.pid
        assert c.config_get("bind")["bind"] == "127.0.0.1"
        assert c.config_get("appendonly")["appendonly"] == "yes"


def test_data_survives_a_restart(own_redis_server):
    server = own_redis_server
    with client(server) as c:
        c.set("key", "value")
    pid = server.process.pid
    server.restart()
    assert server.process.pid != pid
    with client(server) as c:
        assert c.get("key") == b"value"


def test_data_survives_a_kill_when_each_write_is_synced(own_redis_server):
    server = own_redis_server
    with client(server) as c:
        c.config_set("appendfsync", "always")
        c.rpush("list", "a", "b")
    server.kill()
    server.restart()
    with client(server) as c:
        assert c.lrange("list", 0, -1) == [b"a", b"b"]


def test_after_kill_the_port_refuses_connections(own_redis_server):
    server = own_redis_server
    server.kill()
    assert server.process.returncode is not None
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()


def test_stop_twice_is_fine(tmp_path):
    server = RedisServer(tmp_path).start()
    server.stop()
    server.stop()
    assert server.process.returncode is not None
    RedisServer(tmp_path / "never").stop()


def test_a_file_as_data_dir_is_a_one_line_error(tmp_path):
    data_dir = tmp_path / "file"
    data_dir.write_text("not a directory")
    with pytest.raises(RuntimeError) as caught:
        RedisServer(data_dir).start()
    message = str(caught.value)
    assert "\n" not in message and str(data_dir) in message


def test_a_server_that_exits_early_is_a_one_line_error_with_its_log(own_redis_server, tmp_path):
    with pytest.raises(RuntimeError) as caught:
        RedisServer(tmp_path / "second", port=own_redis_server.port).start()
    message = str(caught.value)
    assert "\n" not in message
    assert "exited with code" in message and "already in use" in message


def test_find_server_honours_the_environment_variable(monkeypatch, tmp_path):
    fake = tmp_path / "my-redis-server"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv(ENV_VAR, str(fake))
    assert find_server() == str(fake)
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "missing"))
    with pytest.raises(ServerNotFound, match=ENV_VAR):
        find_server()


def test_without_any_server_the_error_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("littleflow.redis.server._packaged_server", lambda: None)
    with pytest.raises(ServerNotFound) as caught:
        find_server()
    assert "apt-get install redis-server" in str(caught.value)
    assert "littleflow[server]" in str(caught.value)


def test_the_redis_url_fixture_starts_each_test_empty(redis_url):
    with redis.Redis.from_url(redis_url) as c:
        assert c.dbsize() == 0
        c.set("left-behind", "1")
    assert not redis_url.endswith(":6379/0")


test_the_next_test_sees_an_empty_database_too = test_the_redis_url_fixture_starts_each_test_empty


def test_the_session_server_is_shared(redis_server, redis_url):
    assert redis_url == redis_server.url


def test_port_free_ignores_closing_connections_but_not_a_listener():
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert not port_free(port)
        with socket.create_connection(("127.0.0.1", port), timeout=2) as near:
            accepted, _ = listener.accept()
            accepted.close()  # the listening side closes first: its end waits in TIME_WAIT
            near.recv(1)
    assert port_free(port)  # as for redis-server (SO_REUSEADDR): a restart may take it at once


def test_the_private_server_keeps_its_port_across_starts(tmp_path):
    first = private_server(tmp_path)
    try:
        kept = tmp_path / PORT_FILE
        assert kept.read_text() == f"{first.port}\n"
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600
        with client(first) as c:
            c.set("key", "value")
    finally:
        first.stop()
    second = private_server(tmp_path)
    try:
        assert second.port == first.port and second.url == first.url
        with client(second) as c:
            assert c.get("key") == b"value"
    finally:
        second.stop()


def test_a_given_port_wins_and_is_kept(tmp_path):
    (tmp_path / PORT_FILE).write_text(f"{free_port()}\n")
    port = free_port()
    with private_server(tmp_path, port) as server:
        assert server.port == port
    assert saved_port(tmp_path) == port


def test_a_kept_port_another_program_took_is_said_and_replaced(tmp_path, caplog):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        (tmp_path / PORT_FILE).write_text(f"{taken}\n")
        with caplog.at_level(logging.WARNING, "littleflow.serve"), private_server(tmp_path) as server:
            assert server.port != taken
            with client(server) as c:
                assert c.ping()
    assert saved_port(tmp_path) == server.port
    said = [record.getMessage() for record in caplog.records]
    assert len(said) == 1 and f"port {taken} (kept in {tmp_path / PORT_FILE}) is taken" in said[0], said


@pytest.mark.parametrize("text", ["", "x\n", "0\n", "70000\n"])
def test_a_kept_port_that_is_no_port_is_ignored(tmp_path, text):
    (tmp_path / PORT_FILE).write_text(text)
    with private_server(tmp_path) as server:
        assert 0 < server.port < 65536
    assert saved_port(tmp_path) == server.port
