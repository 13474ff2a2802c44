"""YAML and JSON literals, loaded as plain data (what JSON can hold) and nothing else."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import yaml

_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: At most this many values in one literal (YAML aliases can multiply a small text).
MAX_VALUES = 1_000_000

_SURROGATE = re.compile(r"[\ud800-\udfff]")
#: Where a JSON text may decode to a lone surrogate: a raw one, or a ``\uD800``-``\uDFFF`` escape.
_JSON_SURROGATE = re.compile(r"[\ud800-\udfff]|\\u[dD][89a-fA-F]")


class LiteralError(ValueError):
    """A malformed literal; ``offset`` is where in the literal text, when known."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


class PlainLoader(_Base):  # type: ignore[misc, valid-type]
    """A safe loader with YAML 1.2 core-schema scalars: no dates, no ``yes``/``no``
    booleans, no sexagesimal or leading-zero octal numbers."""

    yaml_implicit_resolvers: dict = {}


def _int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = loader.construct_scalar(node)
    if text.startswith(("0o", "0x")):
        return int(text[2:], 8 if text[1] == "o" else 16)
    return int(text, 10)


_CORE = [
    ("tag:yaml.org,2002:null", r"~|null|Null|NULL|", "~nN"),
    ("tag:yaml.org,2002:bool", r"true|True|TRUE|false|False|FALSE", "tTfF"),
    ("tag:yaml.org,2002:int", r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+", "-+0123456789"),
    (
        "tag:yaml.org,2002:float",
        r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN",
        "-+0123456789.",
    ),
]
for _tag, _pattern, _first in _CORE:
    PlainLoader.add_implicit_resolver(_tag, re.compile(rf"^(?:{_pattern})$"), list(_first) + ([""] if "~" in _first else []))
PlainLoader.add_constructor("tag:yaml.org,2002:int", _int)


def _map(loader: yaml.SafeLoader, node: yaml.MappingNode) -> Any:
    """A mapping whose keys become text as they are read, so ``1`` and ``true`` stay apart."""
    mapping: dict[str, Any] = {}
    yield mapping
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, (list, dict)):
            raise LiteralError("an object key must be text, not a collection")
        mapping[_key(key)] = loader.construct_object(value_node, deep=True)


PlainLoader.add_constructor("tag:yaml.org,2002:map", _map)


def load_yaml(text: str) -> Any:
    """Load YAML text as plain data; an empty text gives ``None``."""
    raw = _SURROGATE.search(text)
    if raw:
        raise _lone_surrogate(raw.group(), raw.start())
    try:
        value = yaml.load(text, Loader=PlainLoader)  # noqa: S506 - PlainLoader is a safe loader
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        problem = error.problem or error.context or "malformed YAML"
        if isinstance(error, yaml.constructor.ConstructorError) and "'" in problem:
            tag = problem.split("'")[1].replace("tag:yaml.org,2002:", "!!")
            problem = f"the tag {tag} is not allowed (literals are plain data)"
        raise LiteralError(f"invalid YAML: {problem}", mark.index if mark else None) from None
    except yaml.YAMLError as error:
        raise LiteralError(f"invalid YAML: {error}") from None
    except RecursionError:
        raise LiteralError("invalid YAML: nested too deeply") from None
    except ValueError as error:  # e.g. an integer with more digits than Python converts
        raise LiteralError(f"invalid YAML: {error}") from None
    return plain(value)


def _reject_constant(name: str) -> Any:
    raise LiteralError(f"invalid JSON: {name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise LiteralError(f"invalid JSON: {text} is too large for a number")
    return value


_JSON = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite)


def load_json(text: str, start: int) -> tuple[Any, int]:
    """Decode the JSON value at ``text[start:]``; returns it and the offset after it."""
    try:
        value, end = _JSON.raw_decode(text, start)
    except json.JSONDecodeError as error:
        raise LiteralError(f"invalid JSON: {error.msg}", error.pos) from None
    except RecursionError:
        raise LiteralError("invalid JSON: nested too deeply", start) from None
    except LiteralError:
        raise
    except ValueError as error:  # e.g. an integer with more digits than Python converts
        raise LiteralError(f"invalid JSON: {error}", start) from None
    if _JSON_SURROGATE.search(text, start, end):
        raw = _SURROGATE.search(text, start, end)
        if raw:
            raise _lone_surrogate(raw.group(), raw.start())
        _check_text(value)
    return value, end


def _lone_surrogate(char: str, offset: int | None = None) -> LiteralError:
    return LiteralError(f"a string holds a lone surrogate \\u{ord(char):04x} (not Unicode text)", offset)


def _text(text: str) -> str:
    """``text`` itself, unless it holds a lone surrogate (which no UTF-8 text can carry)."""
    found = _SURROGATE.search(text)
    if found:
        raise _lone_surrogate(found.group())
    return text


def _check_text(value: Any) -> None:
    """Raise :class:`LiteralError` if a string (or key) anywhere in ``value`` holds a lone surrogate."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            _text(item)
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())


def load_json_text(text: str) -> Any:
    """A whole text as one JSON value: strict (no NaN or infinities), as :func:`load_json`."""
    value, end = load_json(text, len(text) - len(text.lstrip()))
    if text[end:].strip():
        raise LiteralError("invalid JSON: extra data after the value", end)
    return value


def plain(value: Any) -> Any:
    """A copy of ``value`` that holds only JSON data; object keys become strings.

    Raises :class:`LiteralError` for anything else (bytes, sets, dates, NaN,
    recursive structures) and for values with more than :data:`MAX_VALUES` parts.
    """
    budget = [MAX_VALUES]
    return _plain(value, budget, set())


def _plain(value: Any, budget: list[int], path: set[int]) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise LiteralError(f"literal too large (more than {MAX_VALUES:,} values)")
    if isinstance(value, str):
        return _text(value)
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise LiteralError(f"{value} is not a JSON number")
        return value
    if isinstance(value, (list, dict)):
        if id(value) in path:
            raise LiteralError("a literal may not contain itself")
        path.add(id(value))
        try:
            if isinstance(value, list):
                return [_plain(item, budget, path) for item in value]
            return {_key(key): _plain(item, budget, path) for key, item in value.items()}
        finally:
            path.discard(id(value))
    raise LiteralError(f"a {type(value).__name__} value is not plain data (only JSON-like values are allowed)")


def _key(key: Any) -> str:
    if isinstance(key, str):
        return _text(key)
    if key is None or isinstance(key, (bool, int, float)):
        return json.dumps(key)
    raise LiteralError(f"an object key must be text, not {type(key).__name__}")
