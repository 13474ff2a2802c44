"""The commands of docs/security.md ("Opening something up on purpose") start as written:
each runs as a real process against a real Redis until it is ready, then stops cleanly.
Only what names this machine's own places changes: directories, the tokens file, the port."""

from __future__ import annotations

import re
import shlex
import socket
from pathlib import Path

import pytest
from test_cli_redis import Shell, base_env, started, stop

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def commands() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"```sh\n(.*?)```", text, re.DOTALL)
    return [line for block in blocks for line in block.splitlines() if line.startswith("littleflow ")]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_doc_has_commands_to_run():
    assert len(commands()) >= 4


@pytest.mark.parametrize("command", commands())
def test_each_command_of_the_doc_starts_and_stops(command, tmp_path, redis_url):
    data = tmp_path / "srv-data"
    data.mkdir()
    tokens = tmp_path / "tokens"
    tokens.write_text("admin:" + "t" * 32 + "\n")
    command = (
        command.replace("/srv/data", str(data))
        .replace("/etc/littleflow/tokens", str(tokens))
        .replace(":8080", f":{free_port()}")
    )
    args = shlex.split(command)[1:]
    lf = Shell(tmp_path, base_env(tmp_path, redis_url))
    process = lf.start(*args)
    marker = "littleflow worker: " if args[0] == "worker" else "littleflow: the console on"
    before = ""
    try:
        before = started(process, marker)
    finally:
        code, stderr = stop(process, before=before)
    assert code == 0 and "Traceback" not in stderr and "error" not in stderr.lower(), stderr
