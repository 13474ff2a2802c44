"""The seed API: a :class:`Context` holds a run, a :class:`Runner` advances it.

::

    context = Context(flow)
    runner = Runner()
    runner.start(context)
    while not context.ending.empty():
        runner.next(context, context.ending.get())

To run tasks elsewhere, subclass :class:`Context` and override :meth:`Context.start`
(send the task off) and call :meth:`Context.end` when it is done.
"""

from __future__ import annotations

import json
import queue
from typing import Any, NamedTuple

from .engine import DEFAULT_LIMIT, Engine, Start
from .flow import Flow
from .state import Key, State


class Ending(NamedTuple):
    """One task instance that ended: its output, or the error it failed with."""

    key: Key
    output: Any = None
    error: str | None = None


class Context:
    """A flow, the state of one run of it, and ``ending``: a queue of ended-node
    vectors (lists of :class:`Ending`) for :meth:`Runner.next`."""

    def __init__(self, flow: Flow, state: State | None = None, limit: int | None = DEFAULT_LIMIT) -> None:
        self.flow = flow
        self.engine = Engine(flow, limit)
        self.state = state if state is not None else State(flow.end)
        self.ending: queue.Queue[list[Ending]] = queue.Queue()

    def start(self, task: Start) -> None:
        """Begin a task instance. By default it ends at once, passing its input through."""
        self.end(task, task.input)

    def end(self, task: Start | Key, output: Any = None, error: str | None = None) -> None:
        """Report that a task instance ended (with ``error`` when it failed)."""
        key = task.key if isinstance(task, Start) else tuple(task)
        self.ending.put([Ending(key, output, error)])  # type: ignore[arg-type]

    @property
    def output(self) -> Any:
        """The flow's output (END's value) once it has finished."""
        return self.state.output

    def to_json(self) -> dict[str, Any]:
        """The flow and its run's state as plain JSON."""
        return {"flow": self.flow.to_json(), "state": self.state.to_json()}

    def dumps(self) -> str:
        return json.dumps(self.to_json(), ensure_ascii=False)

    @classmethod
    def from_json(cls, data: dict[str, Any], **options: Any) -> Context:
        """A context rebuilt from :meth:`to_json`; resume it with :meth:`Runner.resume`."""
        return cls(Flow.from_json(data["flow"]), State.from_json(data["state"]), **options)

    @classmethod
    def loads(cls, text: str, **options: Any) -> Context:
        return cls.from_json(json.loads(text), **options)


FlowContext = Context


class Runner:
    """Moves a run forward: starts it, and applies each ended-node vector."""

    def start(self, context: Context, input: Any = None) -> None:
        """Start the run with the flow's ``input`` (default ``{}``)."""
        self._begin(context, context.engine.start(context.state, input))

    def next(self, context: Context, ended: list[Ending]) -> None:
        """Apply the endings in ``ended`` and start what becomes ready."""
        engine, state = context.engine, context.state
        starts: list[Start] = []
        for ending in ended:
            if ending.error is None:
                starts += engine.ended(state, ending.key, ending.output)
            else:
                starts += engine.failed(state, ending.key, ending.error)
        self._begin(context, starts)

    def resume(self, context: Context) -> None:
        """Continue a saved, failed or terminated run: what was running or failed starts again."""
        self._begin(context, context.engine.resume(context.state))

    def _begin(self, context: Context, starts: list[Start]) -> None:
        for task in starts:
            context.start(task)
