"""Drivers for engine tests: a sequential first-in-first-out runner that records
what started and ended, and helpers to save and restore state through JSON."""

from __future__ import annotations

import itertools
import json
from collections import deque
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from littleflow import Engine, Flow, Start, State, compile_flow
from littleflow.engine import DEFAULT_LIMIT


class Raise:
    """A task behaviour: the task fails with ``message``."""

    def __init__(self, message: str) -> None:
        self.message = message


ECHO = object()  #: a task behaviour: return the input unchanged
NOTHING = object()  #: a task behaviour: return nothing (``None``)


def as_flow(flow: Flow | str) -> Flow:
    return compile_flow(flow) if isinstance(flow, str) else flow


def roundtrip(state: State) -> State:
    """``state`` saved as JSON text and rebuilt."""
    return State.from_json(json.loads(json.dumps(state.to_json())))


class Driver:
    """Runs a flow on the engine, one task at a time, first in first out (§9.2).

    ``tasks`` maps a task name to what it does: a value to return, :data:`ECHO`,
    :data:`NOTHING`, a :class:`Raise`, or a callable ``(start) -> value`` (which
    may return a :class:`Raise`). Names not listed use ``default``.
    """

    def __init__(
        self,
        flow: Flow | str,
        tasks: dict[str, Any] | None = None,
        *,
        default: Any = ECHO,
        limit: int | None = DEFAULT_LIMIT,
    ) -> None:
        self.flow = as_flow(flow)
        self.engine = Engine(self.flow, limit)
        self.state = State(self.flow.end)
        self.tasks = tasks or {}
        self.default = default
        self.queue: deque[Start] = deque()
        self.started: list[Start] = []  # every start the engine returned, in order
        self.ran: list[Start] = []  # what ran (ended or failed), in the order it ran
        self.events: list[tuple[str, tuple]] = []  # ("start" | "end" | "fail", key)
        self.begun = False

    # -- names ---------------------------------------------------------------------
    def name(self, node: int) -> str:
        return self.flow.nodes[node].label

    @property
    def order(self) -> list[str]:
        """Names of the tasks that ran, in order."""
        return [self.name(start.node) for start in self.ran]

    def inputs(self, name: str) -> list[Any]:
        """The inputs task ``name`` ran with, in order."""
        return [start.input for start in self.ran if self.name(start.node) == name]

    # -- driving -------------------------------------------------------------------
    def _add(self, starts: list[Start]) -> list[Start]:
        for start in starts:
            self.events.append(("start", start.key))
            self.started.append(start)
            self.queue.append(start)
        return starts

    def begin(self, input: Any = None) -> Driver:
        self.begun = True
        self._add(self.engine.start(self.state, input))
        return self

    def outcome(self, start: Start) -> Any:
        what = self.tasks.get(self.name(start.node), self.default)
        if callable(what) and not isinstance(what, Raise):
            what = what(start)
        if what is ECHO:
            return start.input
        if what is NOTHING:
            return None
        return what

    def step(self, index: int = 0) -> list[Start]:
        """Run the task at ``index`` of the queue (0: the oldest) and report its end."""
        start = self.queue[index]
        del self.queue[index]
        self.ran.append(start)
        output = self.outcome(start)
        if isinstance(output, Raise):
            self.events.append(("fail", start.key))
            return self._add(self.engine.failed(self.state, start.key, output.message))
        self.events.append(("end", start.key))
        return self._add(self.engine.ended(self.state, start.key, output))

    def run(self, input: Any = None, *, steps: int = 100_000) -> State:
        """Begin (unless begun) and run until nothing is left; returns the state."""
        if not self.begun:  # (a run may start no task at all: a loop of literals failing at once)
            self.begin(input)
        while self.queue and steps:
            self.step()
            steps -= 1
        return self.state

    def resume(self) -> list[Start]:
        """Forget what was queued and continue from the state alone (as after a restart)."""
        self.queue.clear()
        return self._add(self.engine.resume(self.state))

    def restore(self, *, keep_queue: bool = True) -> None:
        """Replace the state by its JSON round trip; without ``keep_queue`` resume from it alone."""
        self.state = roundtrip(self.state)
        if not keep_queue:
            self.resume()


def run(flow: Flow | str, tasks: dict[str, Any] | None = None, input: Any = None, **options: Any) -> Driver:
    """A driver that ran ``flow`` to the end."""
    driver = Driver(flow, tasks, **options)
    driver.run(input)
    return driver


def tag(name: str) -> Callable[[Start], Any]:
    """A task behaviour: output ``{name: input}``."""
    return lambda start: {name: start.input}


# -- random flows ------------------------------------------------------------------

PREFIXES = ["", "", "* ", "> ", "? `$.*` ", "? `$.*` * "]
CONDITIONS = ["$[?@.seed]", "$[?@.T1 > 20]", "$[?@.T2 < 20]", "$.*", "$[?length(@) > 1]", "$[?@ == 1]"]
LITERALS = ["<>", "<[1, 2]>", "<- {a: 1} ->", '<[{"b": 2}, {"c": 3}]>', "<[]>"]


@st.composite
def acyclic_flows(draw, max_statements=5, decorated=False):
    """Flow text from random statements of unique tasks, subflows and `|`, with
    labels for meets (input labels) and joins (output labels) that only point forward.

    ``decorated`` adds iteration, merges, guards, literal sources, conditionals and loops."""
    counter = itertools.count(1)

    def task() -> str:
        return f"T{next(counter)}"

    def step(depth: int) -> str:
        forms = ["if", "repeat", "while"] if decorated and depth < 2 else []
        kind = draw(st.sampled_from(["task"] * 4 + ["alt"] + (["sub"] if depth < 2 else []) + forms))
        if kind == "task":
            return task()
        if kind in forms:  # each loop ends within two rounds, whatever the tasks output

            def branch() -> str:
                return task() if draw(st.booleans()) else "{ " + chain(depth + 1)[:-1] + " }"

            if kind == "repeat":
                return f"repeat {branch()} until `$[?@.*]`"
            if kind == "while":
                return f"while `$[?@.seed]` do {branch()}"
            text = f"if `{draw(st.sampled_from(CONDITIONS))}` then {branch()}"
            if draw(st.booleans()):
                text += f" elif `{draw(st.sampled_from(CONDITIONS))}` then {branch()}"
            return text + (f" else {branch()}" if draw(st.booleans()) else "")
        if kind == "alt":
            return "|".join(task() for _ in range(draw(st.integers(2, 3))))
        body = [chain(depth + 1) for _ in range(draw(st.integers(1, 3)))]
        return "{ " + " ".join(body) + " }"

    def prefixed(depth: int) -> str:
        text = step(depth)
        if decorated and "|" not in text:
            text = draw(st.sampled_from(PREFIXES)) + text
        return text

    def chain(depth: int) -> str:
        steps = [step(depth)] + [prefixed(depth) for _ in range(draw(st.integers(0, 3)))]
        if decorated and draw(st.integers(0, 3)) == 0:
            steps.insert(0, draw(st.sampled_from(LITERALS)))
        return " → ".join(steps) + ";"

    statements: list[list[str]] = []  # [head, rest, tail]
    outputs: list[str] = []
    for k in range(draw(st.integers(1, max_statements))):
        form = draw(st.sampled_from(["plain", "plain", "output", "continue", "meet", "meet-only"]))
        rest = chain(0)[:-1]
        if form == "continue" and outputs:
            statements.append([f":{draw(st.sampled_from(outputs))} →", rest, ""])
        elif form == "output":
            label = f"o{k}"
            outputs.append(label)
            statements.append([f"{task()} :{label}", ("→ " + rest) if draw(st.booleans()) else "", ""])
        elif form in ("meet", "meet-only") and statements:
            feeders = [s for s in statements if not s[2]]
            chosen = (
                draw(st.lists(st.sampled_from(range(len(feeders))), min_size=1, unique=True))
                if feeders
                else []
            )
            if not chosen:
                statements.append(["", rest, ""])
                continue
            for index in chosen:
                feeders[index][2] = f"→ :m{k}"
            statements.append([f":m{k} →" if form == "meet-only" else f":m{k}", rest, ""])
        else:
            statements.append(["", rest, ""])
    return "\n".join(" ".join(part for part in s if part) + ";" for s in statements)
