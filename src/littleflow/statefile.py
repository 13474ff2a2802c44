"""A run saved in a file after every step, so a killed run continues where it was."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .flow import Flow
from .state import State

VERSION = 1


class StateFileError(Exception):
    """The state file cannot be used (unreadable, or for another flow)."""


class StateFile:
    """``{"version", "flow", "state"}`` in one JSON file, replaced atomically on each save."""

    def __init__(self, path: str | Path, flow: Flow) -> None:
        self.path = Path(path)
        self.flow = flow
        self._flow_json = json.dumps(flow.to_json(), ensure_ascii=False)

    def load(self) -> State | None:
        """The saved state, or ``None`` when there is no file yet."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as error:
            raise StateFileError(f"cannot read state file {self.path}: {error.strerror}") from None
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise StateFileError(f"state file {self.path} is damaged: it is not a littleflow state")
            if data.get("version") != VERSION:
                raise StateFileError(f"state file {self.path} has version {data.get('version')!r}, not {VERSION}")
            if data["flow"] != json.loads(self._flow_json):
                raise StateFileError(f"state file {self.path} belongs to a different flow "
                                     "(the flow text changed); remove it to start afresh")
            return State.from_json(data["state"])
        except (ValueError, KeyError, TypeError) as error:
            raise StateFileError(f"state file {self.path} is damaged: {error}") from None

    def save(self, state: State) -> None:
        """Write the state: to a temporary file, flushed to disk, then renamed over the old one."""
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        state_json = json.dumps(state.to_json(), ensure_ascii=False)
        with open(temporary, "w", encoding="utf-8") as file:
            file.write(f'{{"version": {VERSION}, "flow": {self._flow_json}, "state": {state_json}}}\n')
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.path)


def node_statuses(flow: Flow, state: State) -> dict[int, str]:
    """Each node's status in a run: done, running, failed, skipped or waiting (not yet run)."""
    statuses: dict[int, str] = {}
    for frame in state.frames.values():
        for node in frame.outputs:
            statuses[node] = "done"
        for node in frame.skipped:
            statuses[node] = "skipped"
        for node in frame.activations.keys() | frame.pending.keys():
            statuses.setdefault(node, "waiting")
    for (_, node, _), _ in state.held:
        statuses[node] = "waiting"
    for _, node, _ in state.running:
        statuses[node] = "running"
    for failure in state.failures:
        statuses[failure["node"]] = "failed"
    return statuses


def read_any(path: str | Path) -> tuple[Flow, State]:
    """The flow and state in a state file, whatever flow it is for."""
    try:
        data: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
        return Flow.from_json(data["flow"]), State.from_json(data["state"])
    except OSError as error:
        raise StateFileError(f"cannot read state file {path}: {error.strerror}") from None
    except (ValueError, KeyError, TypeError) as error:
        raise StateFileError(f"state file {path} is damaged: {error}") from None
