"""The engine: a pure state machine over the activation vectors (LANGUAGE.md §8–§9).

Given a :class:`~littleflow.flow.Flow` and a :class:`~littleflow.state.State`,
:meth:`Engine.start` and :meth:`Engine.ended` say which task instances start
next. The engine does no I/O, keeps no clock and starts no threads: drivers
call the tasks and report back. Each call costs time proportional to the
edges it touches.
"""

from __future__ import annotations

from copy import deepcopy
from itertools import islice
from operator import gt
from typing import Any, NamedTuple

from .errors import LittleflowError
from .flow import JOINING_ONE, OPENING, Flow
from .guard import GuardError, compile_guard
from .state import Frame, Iteration, Key, State
from .values import brief

#: Runs of one node allowed by default before the flow fails (a mistaken cycle must not hang).
DEFAULT_LIMIT = 10_000
#: Task runs of one workflow queued or running at once, unless its flow says otherwise
#: (``@flow (- parallelism: N -)``): drivers keep the others back, in the run, so that one
#: big workflow cannot fill the queues before everyone else.
DEFAULT_PARALLELISM = 500

_TASK, _PASS, _LITERAL, _END = 0, 1, 2, 3  # how a node acts when it becomes ready
_ACTS = {
    "task": _TASK,
    "resource": _TASK,
    "literal": _LITERAL,
    "start": _PASS,
    "end": _END,
    "subflow-start": _PASS,
    "subflow-end": _END,
    "choice": _PASS,
    "choice-end": _END,
    "repeat": _PASS,
    "while": _PASS,
    "loop-end": _PASS,
}
# Where a node's end leads, when not simply to all its successors (LANGUAGE.md §9.7, §9.8).
_CHOOSE, _WHILE, _EXIT = 1, 2, 3
_ROUTES = {"choice": _CHOOSE, "while": _WHILE, "loop-end": _EXIT}


class Start(NamedTuple):
    """A task instance to run: node ``node`` of frame ``path`` (item ``item`` of an
    iteration, else -1) with ``input``."""

    path: str
    node: int
    item: int
    input: Any

    @property
    def key(self) -> Key:
        return (self.path, self.node, self.item)


class TaskFailure(LittleflowError):
    """A step fails for a reason of the flow's own (a merge of non-objects, a run limit)."""


class Engine:
    """Advances the state of runs of one flow."""

    def __init__(self, flow: Flow, limit: int | None = DEFAULT_LIMIT) -> None:
        self.flow = flow
        self.limit = limit
        self.thresholds = flow.thresholds()
        self._succ, self._succ_at = flow._succ, flow._succ_at
        nodes = flow.nodes
        # Only a node entered by a cycle-closing edge can run again: count runs there.
        # (Every other node that runs has a tree edge of the walk into it; START has none.)
        # (The end of a conditional or loop waits for one of several predecessors: not a cycle.)
        self.loops = [
            (self.thresholds[i] < len(flow.predecessors(i)) and nodes[i].kind not in JOINING_ONE) or i == 0
            for i in range(len(nodes))
        ]
        self.acts = [_ACTS[node.kind] for node in nodes]
        self.special = [
            bool(node.guard or node.merge or node.iterate) or node.kind == "loop-end" for node in nodes
        ]
        self.guards = {node.id: compile_guard(node.guard) for node in nodes if node.guard}
        self.routes = [_ROUTES.get(node.kind, 0) for node in nodes]
        # A conditional's branch conditions (on each branch's first node) and a loop's (on its
        # first node, and tested at its end too); a loop's body begins at the first successor
        # of its first node, where its end's cycle-closing edge leads back.
        self.conditions = {node.id: compile_guard(node.condition) for node in nodes if node.condition}
        self.choosing = any(node.kind == "choice" and node.iterate for node in nodes)
        self.bodies: dict[int, int] = {}
        for node in nodes:
            if node.kind in ("repeat", "while"):
                assert node.pair is not None  # a loop's opening node names its end
                self.bodies[node.id] = self.bodies[node.pair] = flow.successors(node.id)[0]

    # -- the driver's calls ---------------------------------------------------
    def start(self, state: State, input: Any = None) -> list[Start]:
        """Begin the run: START outputs ``input`` (default ``{}``)."""
        state.input = {} if input is None else input
        return self._cascade(state, [(state.root, 0, state.input)])

    def ended(self, state: State, key: Key, output: Any) -> list[Start]:
        """Task instance ``key`` ended with ``output``; returns what starts next."""
        path, node, item = key
        if state.running.pop(key, _MISSING) is _MISSING:
            return []  # an end we do not wait for (a duplicate, or of a frame already done)
        frame = state.frames.get(path)
        if frame is None:
            return self._settle(state, [])
        if item >= 0:
            iteration = frame.iterations[node]
            iteration.results[item] = {} if output is None else output
            iteration.remaining -= 1
            if iteration.remaining:
                return self._settle(state, [])
            del frame.iterations[node]
            output = iteration.results
        return self._cascade(state, [], (frame, node, output))

    def failed(self, state: State, key: Key, error: str) -> list[Start]:
        """Task instance ``key`` failed: the flow starts nothing new and ends FAILED."""
        if key not in state.running:
            return []
        state.fail(self.flow.nodes[key[1]], key, state.running.pop(key), error)
        return self._settle(state, [])

    def resume(self, state: State) -> list[Start]:
        """Continue a failed, terminated or interrupted run: run again what failed,
        what was running and what was held back, but nothing that finished."""
        state.status = "running"
        starts, ready = [], []
        again = [(key, input, False) for key, input in [*state.running.items(), *state.held]] + state.retry
        state.held.clear()
        state.retry.clear()
        state.failures.clear()  # they are being retried: a new failure is reported afresh
        for (path, node, item), input, reenter in again:
            frame = state.frames.get(path)
            if frame is None:
                continue
            if reenter:  # the engine failed it (a merge, the run limit): it becomes ready again
                ready.append((frame, node, input))
            else:
                state.running[(path, node, item)] = input
                starts.append(Start(path, node, item, input))
        return self._cascade(state, ready, starts=starts)

    def hold(self, state: State, start: Start) -> None:
        """A start the driver did not begin because the run stopped: keep it for resume."""
        if state.running.pop(start.key, _MISSING) is not _MISSING:
            state.held.append((start.key, start.input))

    def terminate(self, state: State) -> None:
        """Start nothing new; running tasks may finish (or be cancelled by their driver)."""
        if state.status == "running":
            state.status = "terminated"
        self._settle(state, [])

    # -- the algorithm -----------------------------------------------------------
    def _cascade(
        self,
        state: State,
        ready: list[Any],
        ended: tuple[Any, ...] | None = None,
        starts: list[Start] | None = None,
    ) -> list[Start]:
        """Propagate ends through the graph until only task starts remain.

        ``ready`` holds (frame, node, input) for nodes that start; ``ended`` is a
        (frame, node, output) whose completion activates successors; ``starts``
        are tasks already known to start.
        """
        succ, succ_at, thresholds = self._succ, self._succ_at, self.thresholds
        acts, special, loops, limit, routes = self.acts, self.special, self.loops, self.limit, self.routes
        if starts is None:
            starts = []
        known = len(starts)  # given starts keep their order; new ones go in node order
        queue = ready
        ends = [ended] if ended else []
        next_ready = next_end = 0
        while True:
            while next_end < len(ends):
                frame, node, output = ends[next_end]
                next_end += 1
                frame.outputs[node] = output
                if node == frame.end and frame.parent is not None:
                    self._item_done(state, frame, output, ends)
                    continue
                if routes[node]:
                    self._route(state, frame, node, output, queue, ends)
                    continue
                activations = frame.activations
                for k in range(succ_at[node], succ_at[node + 1]):
                    target = succ[k]
                    threshold = thresholds[target]
                    if threshold == 1:  # the common case: one activation starts it, with this output
                        queue.append((frame, target, {} if output is None else output))
                        continue
                    pending = frame.pending
                    waiting = pending.get(target)
                    if waiting is None:
                        pending[target] = [[node], [output]]
                    else:
                        waiting[0].append(node)
                        waiting[1].append(output)
                    count = activations.get(target, 0) + 1
                    if count >= threshold:
                        activations[target] = count - threshold
                        queue.append((frame, target, self._input(frame, target)))
                    else:
                        activations[target] = count
            if next_ready == len(queue):
                break
            frame, node, input = queue[next_ready]
            next_ready += 1
            if limit is not None and loops[node]:
                runs = frame.runs[node] = frame.runs.get(node, 0) + 1
                if runs > limit:
                    frame.runs[node] = limit  # this run did not happen
                    state.fail(
                        self.flow.nodes[node],
                        (frame.path, node, -1),
                        input,
                        f"ran more than {limit} times (the run limit; raise it with the limit option)",
                        reenter=True,
                    )
                    continue
            if special[node] and not (frame.parent is not None and node == frame.start):
                try:
                    input = self._special(state, frame, node, input, starts, ends, queue)
                except TaskFailure as failure:
                    state.fail(
                        self.flow.nodes[node], (frame.path, node, -1), input, str(failure), reenter=True
                    )
                    continue
                if input is _HANDLED:
                    continue
            act = acts[node]
            if act == _TASK:
                state.running[(frame.path, node, -1)] = input
                starts.append(Start(frame.path, node, -1, input))
            elif act == _LITERAL:  # a copy: tasks may change their input, never the flow
                ends.append((frame, node, deepcopy(self.flow.nodes[node].value)))
            elif act == _END and frame.parent is None and node == frame.end:
                state.output = input
                frame.outputs[node] = input
            else:
                ends.append((frame, node, input))
        if len(starts) - known > 1 and any(
            map(_after, islice(starts, known, None), islice(starts, known + 1, None))
        ):
            starts[known:] = sorted(starts[known:], key=self._order(state) if self.choosing else _by_node)
            running = state.running
            for start in starts[known:]:  # running keeps the order of the starts handed out
                key = (start.path, start.node, start.item)
                running[key] = running.pop(key)
        return self._settle(state, starts)

    def _input(self, frame: Frame, node: int) -> Any:
        """The aggregate of the outputs that activated ``node`` (LANGUAGE.md §8)."""
        preds, outputs = frame.pending.pop(node)
        if len(preds) == 1:
            value = outputs[0]
            return {} if value is None else value
        if any(map(gt, preds, islice(preds, 1, None))):  # not yet in source order
            outputs = [output for _, output in sorted(zip(preds, outputs), key=_by_first)]
        values = [v for v in outputs if v != {} and v is not None]
        if not values:
            return {}
        return values[0] if len(values) == 1 else values

    def _special(
        self,
        state: State,
        frame: Frame,
        node: int,
        input: Any,
        starts: list[Start],
        ends: list[Any],
        queue: list[Any],
    ) -> Any:
        """Apply merge, guard and iteration, or a loop's test at the end of a round; returns
        the input to go on with, or ``_HANDLED`` when the node was dealt with here."""
        spec = self.flow.nodes[node]
        if spec.kind == "loop-end":  # a round ended: another, or out of the loop (LANGUAGE.md §9.8)
            assert spec.pair is not None
            again = self._test(spec.pair, input)
            if self.flow.nodes[spec.pair].kind == "repeat":
                again = not again
            if again:
                queue.append((frame, self.bodies[node], input))
            else:
                ends.append((frame, node, input))
            return _HANDLED
        if spec.merge and isinstance(input, list):
            merged: dict[str, Any] = {}
            for position, value in enumerate(input):
                if not isinstance(value, dict):
                    raise TaskFailure(
                        f"cannot merge the input: item {position} is not an object ({brief(value)})"
                    )
                merged.update(value)
            input = merged
        if spec.guard and not self._passes(node, input):
            frame.skipped.add(node)
            skip_to = spec.pair if spec.kind in OPENING else node
            frame.outputs[node] = input
            ends.append((frame, skip_to, input))
            return _HANDLED
        if spec.iterate:
            items = input if isinstance(input, list) else [input]
            done = spec.pair if spec.kind in OPENING else node
            if not items:
                ends.append((frame, done, []))
                return _HANDLED
            frame.iterations[node] = Iteration(len(items))
            if spec.kind in OPENING:
                assert spec.pair is not None
                for item, value in enumerate(items):
                    child = state.add_frame(frame, node, item, spec.pair)
                    ends.append((child, node, value))
            elif spec.kind == "literal":
                del frame.iterations[node]
                ends.append((frame, node, [deepcopy(spec.value) for _ in items]))
            else:
                for item, value in enumerate(items):
                    state.running[(frame.path, node, item)] = value
                    starts.append(Start(frame.path, node, item, value))
            return _HANDLED
        return input

    def _order(self, state: State) -> Any:
        """The order of starts ready at once (LANGUAGE.md §9.2): node order, except that the
        items' copies of an iterated conditional, each one step, start in item order where
        the conditional stands."""
        frames, nodes = state.frames, self.flow.nodes

        def key(start: Start) -> tuple[int, int, int]:
            frame = frames.get(start.path)
            if frame is not None and frame.parent is not None and nodes[frame.start].kind == "choice":
                return frame.start, frame.parent[2], start.node
            return start.node, -1, 0

        return key

    def _route(
        self, state: State, frame: Frame, node: int, output: Any, queue: list[Any], ends: list[Any]
    ) -> None:
        """The end of a choice (its branch starts), of a ``while`` (a first round, or none) or
        of a loop's end (its successors but the body start)."""
        succ, succ_at = self._succ, self._succ_at
        route = self.routes[node]
        value = {} if output is None else output
        try:
            if route == _CHOOSE:
                pair = self.flow.nodes[node].pair
                chosen = pair  # no condition true and no else: the input passes on (LANGUAGE.md §9.7)
                skipped = frame.skipped
                for k in range(succ_at[node], succ_at[node + 1]):
                    target = succ[k]
                    if target == pair:
                        break
                    if chosen == pair and (target not in self.conditions or self._test(target, value)):
                        chosen = target
                    else:
                        skipped.add(target)  # (a branch not taken, for the pictures of a run)
                skipped.discard(chosen)
                queue.append((frame, chosen, value))
            elif route == _WHILE:
                if self._test(node, value):
                    queue.append((frame, self.bodies[node], value))
                else:
                    ends.append((frame, self.flow.nodes[node].pair, value))
            else:  # a loop's end: out of the loop
                body, thresholds = self.bodies[node], self.thresholds
                for k in range(succ_at[node], succ_at[node + 1]):
                    target = succ[k]
                    if target == body:
                        continue
                    if thresholds[target] == 1:
                        queue.append((frame, target, value))
                        continue
                    waiting = frame.pending.get(target)
                    if waiting is None:
                        frame.pending[target] = [[node], [output]]
                    else:
                        waiting[0].append(node)
                        waiting[1].append(output)
                    count = frame.activations.get(target, 0) + 1
                    if count >= thresholds[target]:
                        frame.activations[target] = count - thresholds[target]
                        queue.append((frame, target, self._input(frame, target)))
                    else:
                        frame.activations[target] = count
        except TaskFailure as failure:
            state.fail(self.flow.nodes[node], (frame.path, node, -1), value, str(failure), reenter=True)

    def _test(self, node: int, input: Any) -> bool:
        """Whether the condition at ``node`` holds for ``input`` (a condition over its time budget fails the step)."""
        try:
            return self.conditions[node].test(input)
        except GuardError as error:
            raise TaskFailure(str(error)) from None

    def _passes(self, node: int, input: Any) -> bool:
        """Whether ``node``'s guard lets it run with ``input``; a guard over its time budget fails the step."""
        try:
            return self.guards[node].test(input)
        except GuardError as error:
            raise TaskFailure(str(error)) from None

    def _item_done(self, state: State, frame: Frame, output: Any, ends: list[Any]) -> None:
        """An item's copy of an iterated subflow reached its end."""
        assert frame.parent is not None  # only an item's frame ends here
        parent_path, node, item = frame.parent
        state.drop_frame(frame)
        parent = state.frames.get(parent_path)
        if parent is None:
            return
        iteration = parent.iterations[node]
        iteration.results[item] = output
        iteration.remaining -= 1
        if not iteration.remaining:
            del parent.iterations[node]
            ends.append((parent, self.flow.nodes[node].pair, iteration.results))

    def _settle(self, state: State, starts: list[Start]) -> list[Start]:
        """Hold starts back when the run is stopping; mark it done when nothing runs."""
        if state.status != "running":
            for start in starts:
                state.running.pop(start.key, None)
                state.held.append((start.key, start.input))
            return []
        if not state.running:
            state.status = "finished"
        return starts


_MISSING = object()
_HANDLED = object()


def _by_node(start: Start) -> int:
    return start.node


def _by_first(pair: tuple[int, Any]) -> int:
    return pair[0]


def _after(one: Start, other: Start) -> bool:
    return one.node > other.node
