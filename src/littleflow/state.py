"""The state of one run: activation counts, pending inputs, outputs, what runs —
everything needed to resume it anywhere, as plain JSON."""

from __future__ import annotations

from typing import Any

from .flow import Flow, Node

#: A task instance: (frame path, node id, item index or -1).
Key = tuple[str, int, int]


class Iteration:
    """The results of an iterated node (``*``) so far, in item order."""

    __slots__ = ("results", "remaining")

    def __init__(self, size: int) -> None:
        self.results: list[Any] = [None] * size
        self.remaining = size


class Frame:
    """The vectors of one copy of the graph: the flow itself (path ``""``), or
    one item's copy of an iterated subflow (``parent`` = (path, node, item))."""

    __slots__ = (
        "path",
        "start",
        "end",
        "parent",
        "activations",
        "pending",
        "outputs",
        "runs",
        "iterations",
        "skipped",
    )

    def __init__(self, path: str, start: int, end: int, parent: Key | None = None) -> None:
        self.path = path
        self.start = start
        self.end = end
        self.parent = parent
        self.activations: dict[int, int] = {}  # A, sparse: completions received since last start
        self.pending: dict[int, list[Any]] = {}  # [predecessors, their outputs]: what makes the next input
        self.outputs: dict[int, Any] = {}
        self.runs: dict[int, int] = {}
        self.iterations: dict[int, Any] = {}  # node -> its unfinished iteration
        self.skipped: set[int] = set()  # nodes whose guard was false at their last start

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "start": self.start,
            "end": self.end,
            "parent": list(self.parent) if self.parent else None,
            "activations": _keyed(self.activations),
            "pending": _keyed(self.pending),
            "outputs": _keyed(self.outputs),
            "runs": _keyed(self.runs),
            "iterations": {
                str(n): {"results": it.results, "remaining": it.remaining}
                for n, it in self.iterations.items()
            },
            "skipped": sorted(self.skipped),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Frame:
        frame = cls(
            data["path"], data["start"], data["end"], tuple(data["parent"]) if data["parent"] else None
        )
        frame.activations = _unkeyed(data["activations"])
        frame.pending = _unkeyed(data["pending"])
        frame.outputs = _unkeyed(data["outputs"])
        frame.runs = _unkeyed(data["runs"])
        for node, it in data["iterations"].items():
            iteration = Iteration(0)
            iteration.results, iteration.remaining = it["results"], it["remaining"]
            frame.iterations[int(node)] = iteration
        frame.skipped = set(data["skipped"])
        return frame


class State:
    """A run's state: ``status`` is running, finished, failed or terminated."""

    __slots__ = ("status", "input", "output", "frames", "root", "running", "held", "retry", "failures")

    def __init__(self, end: int) -> None:
        self.status = "running"
        self.input: Any = None
        self.output: Any = None
        self.root = Frame("", 0, end)
        self.frames: dict[str, Frame] = {"": self.root}
        self.running: dict[Key, Any] = {}  # started task instances -> their input
        self.held: list[tuple[Key, Any]] = []  # starts held back while the run was stopping
        self.retry: list[tuple[Key, Any, bool]] = []  # failed instances to run again on resume
        self.failures: list[dict[str, Any]] = []  # every failure, in order

    def fail(self, node: Node, key: Key, input: Any, error: str, reenter: bool = False) -> None:
        """Record a failure of ``key``; the run stops starting tasks. On resume the
        task runs again with ``input`` or, with ``reenter``, the node becomes ready
        again with ``input`` (for failures of the engine's own: a merge, the run limit)."""
        self.failures.append(
            {
                "node": node.id,
                "name": node.name or node.label,
                "line": node.line,
                "column": node.column,
                "key": list(key),
                "input": input,
                "error": error,
            }
        )
        self.retry.append((key, input, reenter))
        if self.status == "running":
            self.status = "failed"

    def add_frame(self, parent: Frame, node: int, item: int, end: int) -> Frame:
        """A fresh copy of the subflow at ``node`` for one item."""
        frame = Frame(f"{parent.path}/{node}.{item}", node, end, (parent.path, node, item))
        self.frames[frame.path] = frame
        return frame

    def drop_frame(self, frame: Frame) -> None:
        del self.frames[frame.path]

    def check(self, size: int) -> None:
        """Raise ``ValueError`` if this state names nodes a flow of ``size`` nodes does not have."""
        nodes = [
            n
            for frame in self.frames.values()
            for n in (frame.start, frame.end, *frame.outputs, *frame.pending, *frame.activations)
        ]
        nodes += (
            [key[1] for key in self.running]
            + [key[1] for key, _ in self.held]
            + [key[1] for key, _, _ in self.retry]
        )
        if "" not in self.frames or any(not 0 <= n < size for n in nodes):
            raise ValueError("it names nodes the flow does not have")

    def node_statuses(self) -> dict[int, str]:
        """Each node's status: done, running, failed, skipped or waiting (reached, not yet run);
        nodes not reached are absent."""
        statuses: dict[int, str] = {}
        for frame in self.frames.values():
            for node in frame.outputs:
                statuses[node] = "done"
            for node in frame.skipped:
                statuses[node] = "skipped"
            for node in frame.activations.keys() | frame.pending.keys():
                statuses.setdefault(node, "waiting")
        for (_, node, _), _ in self.held:
            statuses[node] = "waiting"
        for _, node, _ in self.running:
            statuses[node] = "running"
        for failure in self.failures:
            statuses[failure["node"]] = "failed"
        return statuses

    def statuses(self, flow: Flow) -> dict[int, str]:
        """Every node's status as people are shown it (``doc --state``, a workflow's status
        document): :meth:`node_statuses`, the nodes of a branch not taken or of a form skipped
        ``skipped`` too (:meth:`Flow.with_skipped`), and the rest ``waiting`` while the run goes
        on, ``unreached`` once it has ended (finished, failed or terminated): it never ran."""
        found = flow.with_skipped(self.node_statuses())
        rest = "waiting" if self.status == "running" else "unreached"
        for node in flow.nodes:
            if found.get(node.id, "waiting") == "waiting":
                found[node.id] = rest
        return found

    @property
    def failure(self) -> dict[str, Any] | None:
        """The first failure, if any."""
        return self.failures[0] if self.failures else None

    def to_json(self) -> dict[str, Any]:
        """Everything needed to continue the run, as plain JSON."""
        return {
            "status": self.status,
            "input": self.input,
            "output": self.output,
            "frames": [frame.to_json() for frame in self.frames.values()],
            "running": [[*key, input] for key, input in self.running.items()],
            "held": [[*key, input] for key, input in self.held],
            "retry": [[*key, input, reenter] for key, input, reenter in self.retry],
            "failures": self.failures,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> State:
        """Rebuild a state saved by :meth:`to_json`."""
        frames = [Frame.from_json(item) for item in data["frames"]]
        state = cls(frames[0].end)
        state.status, state.input, state.output = data["status"], data["input"], data["output"]
        state.frames = {frame.path: frame for frame in frames}
        state.root = state.frames[""]
        state.running = {(p, n, i): input for p, n, i, input in data["running"]}
        state.held = [((p, n, i), input) for p, n, i, input in data["held"]]
        state.retry = [((p, n, i), input, reenter) for p, n, i, input, reenter in data["retry"]]
        state.failures = data["failures"]
        return state


def _keyed(mapping: dict[int, Any]) -> dict[str, Any]:
    return {str(key): value for key, value in mapping.items()}


def _unkeyed(mapping: dict[str, Any]) -> dict[int, Any]:
    return {int(key): value for key, value in mapping.items()}


#: What the failure of a node that is not a task (the run limit, a condition over its time
#: budget) calls the node, by its label.
_FORM_NAMES = {
    "subflow-start": "the subflow",
    "if": "the conditional",
    "repeat": "the loop",
    "while": "the loop",
    "end loop": "the loop",
}


def failed_node(failure: dict[str, Any]) -> str:
    """Which node a failure is of, and where: ``task A at 1:5``, ``the loop at 2:3``."""
    name = str(failure.get("name") or "?")
    where = f" at {failure['line']}:{failure['column']}" if failure.get("line") else ""
    return f"{_FORM_NAMES.get(name, 'task ' + name)}{where}"
