"""A run saved in a file after every step, so a killed run continues where it was."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from .engine import DEFAULT_LIMIT, Engine
from .errors import LittleflowError
from .flow import Flow
from .state import State
from .values import brief

try:
    import fcntl
except ImportError:  # (not on Windows: no lock there)
    fcntl = None  # type: ignore[assignment]

VERSION = 1


class StateFileError(LittleflowError):
    """The state file cannot be used (unreadable, damaged, for another flow, or in use)."""


#: Compact the file (a fresh snapshot, no events) after this many events.
COMPACT_AFTER = 2_000


class StateFile:
    """A run kept in one file: a snapshot line ``{"version", "flow", "state"}``, then one
    line per task that ended or failed since.

    Each event is appended and flushed as it happens, so the file survives the process
    being killed at any moment, and a save costs the same however long the run is.
    Loading replays the events on the snapshot (the engine is deterministic). Snapshots
    are written to a temporary file, flushed to disk and renamed over the old one.
    """

    def __init__(self, path: str | Path, flow: Flow) -> None:
        self.path = Path(path)
        self.flow = flow
        self._flow_json = json.dumps(flow.to_json())
        self._state: State | None = None
        self._events = 0
        self._file: Any = None
        self._lock: int | None = None

    # -- one run at a time -----------------------------------------------------------
    @property
    def lock_path(self) -> Path:
        """The file beside the state file that a run holds locked (``FILE.lock``)."""
        return self.path.with_name(self.path.name + ".lock")

    def lock(self) -> None:
        """Lock the state file for this process (until :meth:`unlock` or the process
        ends, however it ends); raises :class:`StateFileError` if another run holds it."""
        if fcntl is None or self._lock is not None:
            return
        while True:
            try:
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as error:
                raise StateFileError(f"cannot lock state file {self.path}: {error.strerror}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
                os.close(fd)
                raise StateFileError(
                    f"{self.path} is in use by another littleflow run (pid {holder})"
                ) from None
            if _same_file(fd, self.lock_path):  # not removed by its last holder meanwhile
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock = fd

    def unlock(self) -> None:
        """Let another run use the state file."""
        if self._lock is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.lock_path)  # (while locked: a run that opened it sees it gone, and retries)
            os.close(self._lock)
            self._lock = None

    # -- reading -------------------------------------------------------------------
    def load(self, limit: int | None = DEFAULT_LIMIT) -> State | None:
        """The saved state (events replayed), or ``None`` when there is no file yet."""
        try:
            lines = self.path.read_bytes().decode("utf-8").splitlines()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise StateFileError(f"cannot read state file {self.path}: {error.strerror}") from None
        except UnicodeDecodeError:
            raise StateFileError(f"state file {self.path} is damaged: it is not UTF-8 text") from None
        snapshot = _decode(self.path, lines[0] if lines else "")
        if snapshot["flow"] != json.loads(self._flow_json):
            raise StateFileError(
                f"state file {self.path} belongs to a different flow "
                "(the flow text changed); remove it to start afresh"
            )
        return _replay(self.path, self.flow, snapshot["state"], lines[1:], limit)

    # -- writing (the journal LocalRun keeps) ---------------------------------------------
    def begin(self, state: State) -> None:
        """Start (or restart) the file from ``state``, which later events update."""
        self._state = state
        self.save(state)

    def ended(self, key: tuple, output: Any) -> None:
        self._append({"ended": key, "output": output})

    def failed(self, key: tuple, error: str) -> None:
        self._append({"failed": key, "error": error})

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def save(self, state: State) -> None:
        """Write a snapshot of ``state`` (atomically) and drop the events before it."""
        self.close()
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        try:
            with open(temporary, "w", encoding="utf-8") as file:
                file.write(
                    f'{{"version": {VERSION}, "flow": {self._flow_json}, '
                    f'"state": {json.dumps(state.to_json())}}}\n'
                )
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except (OSError, ValueError) as error:
            raise StateFileError(
                f"cannot write state file {self.path}: {getattr(error, 'strerror', None) or error}"
            ) from None
        self._events = 0

    def _append(self, event: dict[str, Any]) -> None:
        if self._events >= COMPACT_AFTER and self._state is not None:
            self.save(self._state)
            return
        try:
            if self._file is None:
                self._file = open(self.path, "a", encoding="utf-8")
            self._file.write(json.dumps(event) + "\n")
            self._file.flush()
        except (OSError, ValueError) as error:
            raise StateFileError(
                f"cannot write state file {self.path}: {getattr(error, 'strerror', None) or error}"
            ) from None
        self._events += 1


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        return False


def _decode(path: Path, line: str) -> dict[str, Any]:
    try:
        data = json.loads(line)
    except ValueError:
        data = None
    if not isinstance(data, dict) or not {"flow", "state"} <= data.keys():
        raise StateFileError(f"state file {path} is damaged: it is not a littleflow state")
    if data.get("version") != VERSION:
        raise StateFileError(f"state file {path} has version {brief(data.get('version'))}, not {VERSION}")
    return data


def _replay(path: Path, flow: Flow, saved: Any, events: list[str], limit: int | None) -> State:
    """The snapshot's state with the events after it applied again."""
    try:
        state = State.from_json(saved)
        state.check(len(flow))
        engine = Engine(flow, limit)
        for number, line in enumerate(events):
            try:
                event = json.loads(line)
            except ValueError:
                if number == len(events) - 1:
                    break  # the last line was cut short when the process died: it never happened
                raise
            if "ended" in event:
                engine.ended(state, tuple(event["ended"]), event["output"])
            else:
                engine.failed(state, tuple(event["failed"]), event["error"])
        return state
    except StateFileError:
        raise
    except Exception as error:  # noqa: BLE001 - any damage to the file is reported the same way
        raise StateFileError(f"state file {path} is damaged: {type(error).__name__}: {error}") from None


def read_any(path: str | Path) -> tuple[Flow, State]:
    """The flow and state in a state file, whatever flow it is for."""
    try:
        first = Path(path).read_bytes().decode("utf-8").splitlines()
    except OSError as error:
        raise StateFileError(f"cannot read state file {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise StateFileError(f"state file {path} is damaged: it is not UTF-8 text") from None
    snapshot = _decode(Path(path), first[0] if first else "")
    try:
        flow = Flow.from_json(snapshot["flow"])
    except Exception as error:  # noqa: BLE001
        raise StateFileError(f"state file {path} is damaged: {type(error).__name__}: {error}") from None
    return flow, _replay(Path(path), flow, snapshot["state"], first[1:], DEFAULT_LIMIT)
