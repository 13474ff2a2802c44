"""Python tasks: the ``@task`` registry, how a task is called, and what it may return."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple
from weakref import WeakKeyDictionary

from .errors import LittleflowError
from .policy import Policy
from .values import MAX_DEPTH, MAX_INT_BITS, brief


class TaskError(LittleflowError):
    """A task failed in a way of its own making (bad return value, bad call)."""


class Fail(LittleflowError):
    """Raised by a task to fail at once: no retry, whatever its policy says. Its message
    is the task's error."""


class CallError(TaskError):
    """A task was called with arguments its signature does not accept (parameters it does
    not take, or without ones it needs): a mistake in the flow or the function, never retried."""


class TaskSpec(NamedTuple):
    """A callable registered as a task, with the run-time options it was given
    (``retries``, ``timeout``, ``backoff``; see :mod:`littleflow.policy`) and the exception
    types its failures are retried for (``retry_on``; None: any but :class:`Fail`)."""

    name: str
    function: Callable[..., Any]
    options: dict[str, Any]
    call: Callable[[Any, Any], Any]  # (input, parameters) -> result (a coroutine for async tasks)
    is_async: bool
    retry_on: tuple[type[BaseException], ...] | None = None


class Registry:
    """Task names to callables. ``@registry.task`` fills it."""

    def __init__(self) -> None:
        self._specs: dict[str, TaskSpec] = {}
        self._functions: dict[str, Callable] = {}  # given without options: made specs when asked for

    def task(
        self,
        name: str | Callable | None = None,
        *,
        retries: int | None = None,
        timeout: float | None = None,
        backoff: float | None = None,
        retry_on: type[BaseException] | tuple[type[BaseException], ...] | None = None,
    ) -> Any:
        """Register a function as a task: ``@task``, ``@task("my:peel-banana")``,
        ``@task(retries=3, timeout=30)``, ``@task(retries=3, retry_on=(IOError,))`` (only
        failures of those types are retried)."""
        options = {
            k: v
            for k, v in (("retries", retries), ("timeout", timeout), ("backoff", backoff))
            if v is not None
        }
        Policy().updated(options, "@task options")  # check them now, where the mistake is
        kinds = retry_types(retry_on)

        def register(function: Callable) -> Callable:
            self.add(name if isinstance(name, str) else function.__name__, function, options, kinds)
            return function

        if callable(name):
            return register(name)
        return register

    def add(
        self,
        name: str,
        function: Callable,
        options: dict[str, Any] | None = None,
        retry_on: tuple[type[BaseException], ...] | None = None,
    ) -> TaskSpec:
        """Register ``function`` under ``name`` (replacing what was there)."""
        spec = make_spec(name, function, options or {}, retry_types(retry_on))
        self._specs[name] = spec
        return spec

    def get(self, name: str) -> TaskSpec | None:
        spec = self._specs.get(name)
        if spec is None and name in self._functions:
            spec = self._specs[name] = make_spec(name, self._functions[name], {})
        return spec

    def calling(self, name: str) -> tuple[Callable[[Any, Any], Any], bool, dict[str, Any]] | None:
        """How to call task ``name``: ``(call, is_async, options)``, or ``None`` if unknown.
        Cheaper than :meth:`get` for functions given without options."""
        spec = self._specs.get(name)
        if spec is not None:
            return spec.call, spec.is_async, spec.options
        function = self._functions.get(name)
        if function is None:
            return None
        call, is_async = caller(function)
        return call, is_async, {}

    def __contains__(self, name: object) -> bool:
        return name in self._specs or name in self._functions

    def names(self) -> list[str]:
        return sorted(self._specs.keys() | self._functions.keys())


#: The registry that ``littleflow.task`` fills.
registry = Registry()
task = registry.task


def collect(tasks: Mapping[str, Any] | Registry | Iterable[Mapping[str, Any] | Registry] | None) -> Registry:
    """One registry from a mapping of names to callables (``locals()`` works),
    registries, or a list of those; the global ``@task`` registry fills in the rest."""
    combined = Registry()
    combined._specs.update(registry._specs)
    sources = [] if tasks is None else [tasks] if isinstance(tasks, (Mapping, Registry)) else list(tasks)
    for source in sources:
        if isinstance(source, Registry):
            combined._specs.update(source._specs)
            combined._functions.update(source._functions)
            continue
        for name, value in source.items():
            if isinstance(value, TaskSpec):
                combined._specs[name] = value
            elif callable(value) and not isinstance(value, type) and not name.startswith("__"):
                known = registry._specs.get(name)
                if known is None or known.function is not value:
                    combined._specs.pop(name, None)
                    combined._functions[name] = value
    return combined


def retry_types(retry_on: Any) -> tuple[type[BaseException], ...] | None:
    """``retry_on`` as a tuple of exception types (None stays None); raises ``TypeError`` for anything else."""
    if retry_on is None:
        return None
    kinds = retry_on if isinstance(retry_on, tuple) else (retry_on,)
    for kind in kinds:
        if not (isinstance(kind, type) and issubclass(kind, Exception)):
            raise TypeError(
                f"retry_on must be an exception type or a tuple of them (retry_on=(IOError,)), "
                f"not {retry_on!r}"
            )
    return kinds


def make_spec(
    name: str,
    function: Callable,
    options: dict[str, Any],
    retry_on: tuple[type[BaseException], ...] | None = None,
) -> TaskSpec:
    """How to call ``function``: ``f(input, **parameters)`` when the parameters are
    an object, ``f(input, parameters)`` for another value, ``f(input)`` for none,
    and ``f()`` when it takes no argument at all."""
    call, is_async = caller(function)
    return TaskSpec(name, function, options, call, is_async, retry_on)


def caller(function: Callable) -> tuple[Callable[[Any, Any], Any], bool]:
    """``(call, is_async)`` for a function, worked out once per function."""
    try:
        return _callers[function]
    except (KeyError, TypeError):  # not seen yet, or a callable that cannot be a weak key
        found = _caller(function)
        try:
            _callers[function] = found
        except TypeError:
            pass
        return found


#: How each function is called, worked out once (many task names may share one function).
_callers: WeakKeyDictionary = WeakKeyDictionary()


def _caller(function: Callable) -> tuple[Callable[[Any, Any], Any], bool]:
    is_async = inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
        getattr(function, "__call__", None)  # noqa: B004 -- an object whose __call__ is async
    )
    try:
        signature: inspect.Signature | None = inspect.signature(function)
        parameters = list(signature.parameters.values())
    except (TypeError, ValueError):  # some builtins have no signature: give them the input
        signature, parameters = None, [None]
    takes_nothing = not any(
        p is None or p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
        for p in parameters
    )

    if takes_nothing:

        def call(input: Any, params: Any) -> Any:
            return function()
    else:

        def call(input: Any, params: Any) -> Any:
            try:
                if params is None:
                    return function(input)
                if type(params) is dict:
                    return function(input, **params)
                return function(input, params)
            except TypeError as error:  # (costs nothing unless raised) the call's, or from inside?
                refused = _refused(signature, input, params)
                if refused is None:
                    raise
                raise CallError(
                    f"{getattr(function, '__name__', 'the task')}{signature} cannot take "
                    f"{_what(params)}: {refused}"
                ) from error

    return call, is_async


def _refused(signature: inspect.Signature | None, input: Any, params: Any) -> str | None:
    """Why ``signature`` does not accept the call with ``input`` and ``params``, or None if it does."""
    if signature is None:
        return None
    try:
        if params is None:
            signature.bind(input)
        elif type(params) is dict:
            signature.bind(input, **params)
        else:
            signature.bind(input, params)
    except TypeError as error:
        return str(error)
    return None


def _what(params: Any) -> str:
    if params is None:
        return "the input alone (the flow gives it no parameters)"
    if type(params) is dict:
        return (
            f"the parameters {', '.join(params) or '(none)'}" if params else "an empty object of parameters"
        )
    return f"the input and the parameter {brief(params)}"


_SCALARS = (str, int, float, bool, type(None))
_SIMPLE = (str, bool, type(None))  # scalars that need no closer look


def json_output(value: Any, name: str) -> Any:
    """The task's output as plain JSON data: nothing becomes ``{}``; anything
    JSON cannot hold is a :class:`TaskError`."""
    if value is None:
        return {}
    kind = type(value)
    if kind is dict:
        if value:
            _check(value, name, "the output")
        return value
    if kind in _SCALARS or kind is list:
        if kind is list:
            _check(value, name, "the output")
        elif kind is float or kind is int:
            _check(value, name, "the output")
        return value
    if isinstance(value, tuple):
        return json_output(list(value), name)
    if isinstance(value, (dict, list, str, int, float)):  # subclasses: OrderedDict, IntEnum, …
        _check(value, name, "the output")
        return value
    raise TaskError(
        f"task {name} returned a {kind.__name__}, which is not JSON-like "
        "(return dicts, lists, strings, numbers, booleans or None)"
    )


def _check(value: Any, name: str, where: str, depth: int = 0) -> None:
    if depth >= MAX_DEPTH and isinstance(value, (dict, list, tuple)):  # (as values.check_value counts)
        raise TaskError(f"task {name} returned data nested more than {MAX_DEPTH} deep")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TaskError(f"task {name} returned an object key {key!r} in {where}, which is not text")
            if type(item) not in _SIMPLE and not (type(item) is int and item.bit_length() <= MAX_INT_BITS):
                _check(item, name, f"{where}[{key!r}]", depth + 1)
    elif isinstance(value, (list, tuple)):
        for position, item in enumerate(value):
            if type(item) not in _SIMPLE and not (type(item) is int and item.bit_length() <= MAX_INT_BITS):
                _check(item, name, f"{where}[{position}]", depth + 1)
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise TaskError(f"task {name} returned {value} in {where}, which is not a JSON number")
    elif isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise TaskError(
            f"task {name} returned an integer of {value.bit_length():,} bits in {where}, "
            "too long to write as JSON"
        )
    elif not isinstance(value, _SCALARS):
        raise TaskError(f"task {name} returned a {type(value).__name__} in {where}, which is not JSON-like")
