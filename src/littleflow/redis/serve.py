"""A whole littleflow system in one process: engine, built-in task worker and
Python task workers on threads, with a private Redis server when no URL is given."""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
import threading
from pathlib import Path
from typing import Any

from ..confine import LOCKED, Confinement
from ..engine import DEFAULT_PARALLELISM
from ..private import private_file
from ..tasks import Registry
from .builtins import BuiltinTasks
from .connection import connect
from .engine import EngineProcess
from .protocol import PREFIX, Keys
from .retention import DEFAULT_RETENTION
from .server import RedisServer, port_free
from .store import Store
from .worker import PythonTasks, Worker

log = logging.getLogger("littleflow.serve")

#: Where the private server's port is kept between starts (beside redis.url and redis.password).
PORT_FILE = "redis.port"


class Services:
    """Engine and workers on threads of this process, sharing one stop signal. ``confine``
    says which files and addresses the built-in tasks may touch (by default no files and
    public addresses only); ``parallelism``: the engine's, for flows that do not say;
    ``retention`` and ``archive_dir``: how long the engine keeps ended workflows (seconds, 0
    for ever) and where it archives them first (see :mod:`.retention`)."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = PREFIX,
        tasks: Registry | None = None,
        concurrency: int = 4,
        builtin_concurrency: int = 16,
        engine: bool = True,
        builtins: bool = True,
        claim_idle: float = 30.0,
        confine: Confinement = LOCKED,
        parallelism: int = DEFAULT_PARALLELISM,
        retention: float = DEFAULT_RETENTION,
        archive_dir: Path | None = None,
    ) -> None:
        self.url = url
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []
        keys = Keys(prefix)
        self.store = self._store(keys)  # (the first, which settles how many partitions there are)
        self.engines: list[EngineProcess] = []
        self.workers: list[Worker] = []
        if engine:
            self.engines.append(
                EngineProcess(
                    self._store(keys),
                    connect(url, decode=False),
                    claim_idle=claim_idle,
                    parallelism=parallelism,
                    retention=retention,
                    archive_dir=archive_dir,
                )
            )
        if builtins:
            self.workers.append(
                Worker(
                    self._store(keys),
                    connect(url, decode=False),
                    [BuiltinTasks(confine=confine)],
                    concurrency=builtin_concurrency,
                    claim_idle=claim_idle,
                )
            )
        if tasks is not None and tasks.names():
            self.workers.append(
                Worker(
                    self._store(keys),
                    connect(url, decode=False),
                    [PythonTasks(tasks)],
                    concurrency=concurrency,
                    claim_idle=claim_idle,
                )
            )

    def _store(self, keys: Keys) -> Store:
        return Store(connect(self.url), keys)

    def start(self) -> Services:
        for part in [*self.engines, *self.workers]:
            thread = threading.Thread(
                target=part.run, args=(self.stop_event,), name=f"littleflow-{part.name}", daemon=True
            )
            thread.start()
            self.threads.append(thread)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout)

    def __enter__(self) -> Services:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def private_server(data_dir: Path, port: int | None = None) -> RedisServer:
    """Start a Redis server for this user alone: 127.0.0.1, append-only files in
    ``data_dir``, with the password kept in ``data_dir/redis.password`` (made at the first
    start, readable by this user alone). Its port is ``port``, else the one of the last start
    (kept in ``data_dir/redis.port``, so that workers holding the old URL find it again),
    else a free one; a kept port that another program took is said in one warning and
    replaced by a free one."""
    data_dir.mkdir(parents=True, exist_ok=True)
    kept = data_dir / PORT_FILE
    if port is None and (port := saved_port(data_dir)) is not None and not port_free(port):
        log.warning(
            "port %d (kept in %s) is taken by another program: the private Redis server moves to a "
            "new one, and workers started with the old URL must be started again",
            port,
            kept,
        )
        port = None
    server = RedisServer(data_dir, port=port, appendonly=True, password=_password(data_dir)).start()
    if server.port != saved_port(data_dir):
        try:
            private_file(kept, f"{server.port}\n")
        except BaseException:
            server.stop()
            raise
    return server


def saved_port(data_dir: Path) -> int | None:
    """The port the private server of ``data_dir`` had at its last start, if kept."""
    with contextlib.suppress(OSError, UnicodeDecodeError, ValueError):
        port = int((data_dir / PORT_FILE).read_text(encoding="utf-8").strip())
        if 0 < port < 65536:
            return port
    return None


def _password(data_dir: Path) -> str:
    """The private server's password: the one kept in ``data_dir``, or a new one."""
    saved = data_dir / "redis.password"
    with contextlib.suppress(OSError, UnicodeDecodeError):
        password = saved.read_text(encoding="utf-8").strip()
        if re.fullmatch(r"[A-Za-z0-9_-]{32,}", password) and saved.stat().st_mode & 0o077 == 0:
            return password
    password = secrets.token_urlsafe(32)
    private_file(saved, password + "\n")
    return password
