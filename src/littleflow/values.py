"""The one check every value crossing a boundary passes (inputs, event data, task outputs,
archives): plain JSON data, no NaN or infinities, no integers of more than
:data:`MAX_INT_BITS` bits, at most :data:`MAX_VALUES` parts nested at most :data:`MAX_DEPTH` deep;
and :func:`brief`, a value as messages show it (short JSON)."""

from __future__ import annotations

import json
import math
import re
from typing import Any

#: At most this many values in one value (a literal's YAML aliases can multiply a small text).
MAX_VALUES = 1_000_000
#: How deep arrays and objects may nest in one value (a bare scalar is depth 0).
MAX_DEPTH = 500
#: Integers longer than this many bits are refused: Python will not write them as JSON text.
MAX_INT_BITS = 14_000

_SURROGATE = re.compile(r"[\ud800-\udfff]")


def check_value(value: Any, where: str, depth: int | None = None, count: int | None = None) -> None:
    """Raise ``ValueError`` (one line naming ``where``) unless ``value`` is plain JSON data
    (text without lone surrogates, finite numbers, integers of at most :data:`MAX_INT_BITS`
    bits) of at most ``count`` parts (:data:`MAX_VALUES`) nested at most ``depth`` deep
    (:data:`MAX_DEPTH`). A recursive structure is too deep."""
    depth = MAX_DEPTH if depth is None else depth
    count = MAX_VALUES if count is None else count
    budget = count
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        budget -= 1
        if budget < 0:
            raise ValueError(f"{where} is too large: more than {count:,} values")
        if isinstance(item, str):
            _text(item, where)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValueError(f"{where} holds {item}, which is not a JSON number")
        elif isinstance(item, (list, tuple, dict)):
            if level >= depth:
                raise ValueError(f"{where} is nested too deeply: more than {depth} levels")
            if isinstance(item, dict):
                for key in item:
                    _key(key, where)
                stack.extend((each, level + 1) for each in item.values())
            else:
                stack.extend((each, level + 1) for each in item)
        elif isinstance(item, int) and not isinstance(item, bool):
            if item.bit_length() > MAX_INT_BITS:
                raise ValueError(
                    f"{where} holds an integer of {item.bit_length():,} bits, too long to write as JSON"
                )
        elif item is not None and not isinstance(item, bool):
            raise ValueError(f"{where} holds a {type(item).__name__}, which is not JSON data")


def brief(value: Any, width: int = 100) -> str:
    """``value`` as one line of JSON for a message (double quotes, ``true``, ``null``, text
    not escaped), cut short with "…" past ``width`` characters; only the part shown is
    written, so a large value costs little. What JSON cannot hold is shown as its repr."""
    parts: list[str] = []
    size = 0
    try:
        for chunk in _BRIEF.iterencode(value):
            parts.append(chunk)
            size += len(chunk)
            if size > width:
                break
        text = "".join(parts)
    except (TypeError, ValueError, RecursionError):  # keys JSON cannot hold, cycles, depth
        text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def short(value: Any, width: int = 100) -> str:
    """Text as it is on one line, any other value as :func:`brief` JSON, cut at ``width``."""
    if not isinstance(value, str):
        return brief(value, width)
    text = " ".join(value.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def loads(text: str) -> Any:
    """JSON text as a value, strictly: ``NaN``, ``Infinity`` and numbers too large for a
    float are not JSON numbers. Raises ``ValueError`` (one line) for what is not JSON."""
    try:
        return _STRICT.decode(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{error.msg} (at character {error.pos})") from None
    except RecursionError:
        raise ValueError("nested too deeply to read") from None


def _not_a_number(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is too large for a number")
    return value


_BRIEF = json.JSONEncoder(ensure_ascii=False, default=repr)
_STRICT = json.JSONDecoder(parse_constant=_not_a_number, parse_float=_finite)


def _key(key: Any, where: str) -> None:
    if isinstance(key, str):
        _text(key, where)
    elif isinstance(key, float) and not math.isfinite(key):
        raise ValueError(f"{where} has the key {key}, which is not a JSON number")
    elif key is not None and not isinstance(key, (bool, int, float)):
        raise ValueError(f"{where} has a {type(key).__name__} key, which JSON cannot hold")


def _text(text: str, where: str) -> None:
    if not text.isascii() and _SURROGATE.search(text):
        raise ValueError(f"{where} holds a lone surrogate (not Unicode text)")
