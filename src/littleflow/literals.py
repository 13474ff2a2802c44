"""YAML and JSON literals, loaded as plain data (what JSON can hold) and nothing else."""

from __future__ import annotations

import json
import math
import re
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any

import yaml

from .errors import LittleflowError
from .values import MAX_VALUES  # at most this many values in one literal (YAML aliases multiply)

_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: At most this many bytes of compact JSON (UTF-8) in the literals and parameters of one flow
#: text together, and in one YAML document read as a resource or input; a YAML alias counts
#: the whole node it names each time it is used, so a small "alias bomb" is refused unexpanded.
MAX_BYTES = 16 * 1024 * 1024

_SURROGATE = re.compile(r"[\ud800-\udfff]")
#: Where a JSON text may decode to a lone surrogate: a raw one, or a ``\uD800``-``\uDFFF`` escape.
_JSON_SURROGATE = re.compile(r"[\ud800-\udfff]|\\u[dD][89a-fA-F]")


class LiteralError(LittleflowError, ValueError):
    """A malformed literal; ``offset`` is where in the literal text, when known."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


class Budget:
    """The bytes of compact JSON that the literals of one text may still expand to."""

    __slots__ = ("limit", "left")

    def __init__(self, limit: int = MAX_BYTES) -> None:
        self.limit = limit
        self.left = limit

    def spend(self, size: int, offset: int | None = None, yaml: bool = False) -> None:
        """Take ``size`` bytes; raise :class:`LiteralError` (at ``offset``) if fewer are left."""
        if size > self.left:
            raise self.error(size, offset, yaml)
        self.left -= size

    def error(self, size: int, offset: int | None, yaml: bool = True) -> LiteralError:
        if size <= self.limit:
            return LiteralError(
                f"too large: with the literals before it, more than {self.limit:,} bytes as JSON", offset
            )
        expanded = " once YAML aliases are expanded" if yaml else ""
        return LiteralError(f"too large: more than {self.limit:,} bytes as JSON{expanded}", offset)


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
    PlainLoader.add_implicit_resolver(
        _tag, re.compile(rf"^(?:{_pattern})$"), list(_first) + ([""] if "~" in _first else [])
    )
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


def load_yaml(text: str, budget: Budget | None = None) -> Any:
    """Load YAML text as plain data; an empty text gives ``None``.

    Its size as JSON, aliases expanded, is measured on the parsed nodes before any value is
    built, and taken from ``budget`` (:data:`MAX_BYTES` if none).
    """
    try:
        return _loaded(text, budget or Budget())
    except yaml.MarkedYAMLError as error:
        raise _malformed(error) from None


def load_inline(text: str, budget: Budget | None = None) -> Any:
    """The YAML of a ``(- … -)`` or ``<- … ->`` literal (LANGUAGE.md §5): the text as YAML or,
    when it is not valid YAML but ``{TEXT}`` is, that mapping (``a: 1, b: [x, y]``). When
    neither is, the :class:`LiteralError` says how to write the value rather than what the
    YAML parser met, at the place the parser got furthest."""
    budget = budget or Budget()
    try:
        return _loaded(text, budget)
    except yaml.MarkedYAMLError as error:
        if isinstance(error, yaml.constructor.ConstructorError):
            raise _malformed(error) from None
        first = error
    try:  # (a new line before the '}': a comment on the last line must not swallow it)
        return _loaded("{" + text + "\n}", budget)
    except yaml.MarkedYAMLError as error:
        if isinstance(error, yaml.constructor.ConstructorError):
            raise _malformed(error, -1) from None
        second = error
    # An inline mapping fails as YAML at its second ':' or after its first value: then what
    # went wrong in {TEXT} says more; otherwise the text's own error does.
    if (first.problem or "").startswith(("mapping values are not allowed", "did not find expected key")):
        raise _hinted(second, text, -1) from None
    raise _hinted(first, text, 0) from None


def _loaded(text: str, budget: Budget) -> Any:
    """``text`` as plain data; a YAML error with a place in the text is raised as it is."""
    raw = _SURROGATE.search(text)
    if raw:
        raise _lone_surrogate(raw.group(), raw.start())
    try:
        value = _load(text, budget)
    except yaml.MarkedYAMLError:
        raise
    except yaml.reader.ReaderError as error:  # (its own text spans two lines)
        code = error.character if isinstance(error.character, int) else ord(error.character or "\0")
        raise LiteralError(
            f"invalid YAML: the character U+{code:04X} is not allowed in YAML text "
            f'(write it as "\\u{code:04X}" in a double-quoted value)',
            error.position,
        ) from None
    except yaml.YAMLError as error:
        raise LiteralError(f"invalid YAML: {error}") from None
    except RecursionError:
        raise LiteralError("invalid YAML: nested too deeply") from None
    except LiteralError:
        raise
    except ValueError as error:  # e.g. an integer with more digits than Python converts
        raise LiteralError(f"invalid YAML: {error}") from None
    return plain(value)


def _malformed(error: yaml.MarkedYAMLError, shift: int = 0) -> LiteralError:
    """The parser's own account of a YAML error (``shift``: what to add to its offsets)."""
    mark = error.problem_mark or error.context_mark
    problem = error.problem or error.context or "malformed YAML"
    if isinstance(error, yaml.constructor.ConstructorError) and "'" in problem:
        tag = problem.split("'")[1].replace("tag:yaml.org,2002:", "!!")
        problem = f"the tag {tag} is not allowed (literals are plain data)"
    return LiteralError(f"invalid YAML: {problem}", max(mark.index + shift, 0) if mark else None)


def _index(error: yaml.MarkedYAMLError, shift: int, size: int) -> int:
    mark = error.problem_mark or error.context_mark
    return min(max(mark.index + shift, 0), size) if mark else 0


_MAPPING_HINT = (
    "write key: value, other: value (or one entry a line, at one indentation) "
    "and quote a value that holds ': ' (key: \"a: b\")"
)


def _hinted(error: yaml.MarkedYAMLError, text: str, shift: int) -> LiteralError:
    """A YAML syntax error of an inline literal as how to write it, at the offset that helps."""
    problem = error.problem or error.context or ""
    at = _index(error, shift, len(text))
    opening = error.context_mark.index + shift if error.context_mark is not None else -1
    if not 0 <= opening < len(text):  # (the '{' added around the text, or nothing)
        opening = -1
    char = text[at] if at < len(text) else ""
    if "cannot start any token" in problem or "violates indentation" in problem:
        if char == "\t":
            hint = "indent with spaces, not tabs"
        else:
            hint = f'a value cannot start with {char!r}: put it in quotes (key: "{char}…")'
    elif "undefined alias" in problem:
        hint = "a value cannot start with '*' (a YAML alias): put it in quotes (key: \"*…\")"
    elif "unexpected end of stream" in problem and "quoted" in (error.context or "") and opening >= 0:
        at, hint = opening, f"the quoted value is not closed: end it with {text[opening]}"
    elif problem in ("did not find expected ',' or ']'", "did not find expected ',' or '}'") and opening >= 0:
        at, hint = (
            opening,
            (
                f"the '{text[opening]}' is not closed: end it with '{problem[-2]}', "
                "and separate its items with ','"
            ),
        )
    elif problem.startswith(("mapping values are not allowed", "did not find expected ',' or '}'")):
        hint = f"unexpected {repr(char) if char else 'end'}: {_MAPPING_HINT}"
    elif "expected node content" in problem:
        hint = "a value is missing here (two ',' in a row, or a ':' with no key before it)"
    elif "expected '-' indicator" in problem:
        hint = "list items (- x) and mapping entries (key: value) cannot be mixed at one indentation"
    elif "expected key" in problem or "expected <document start>" in problem:
        hint = f"unexpected text after a value: {_MAPPING_HINT}"
    else:
        hint = f"{problem}: {_MAPPING_HINT}" if problem else _MAPPING_HINT
    return LiteralError(f"invalid YAML: {hint}", at)


def _load(text: str, budget: Budget) -> Any:
    loader = PlainLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        budget.spend(_expanded(loader, node, budget), node.start_mark.index, yaml=True)
        return loader.construct_document(node)
    finally:
        loader.dispose()


_MERGE = "tag:yaml.org,2002:merge"


def _expanded(loader: PlainLoader, root: yaml.Node, budget: Budget) -> int:
    """The bytes of ``root`` as compact JSON with every alias expanded (duplicate and merged
    keys counted as written). Each node is measured once, so this takes time in the size of the
    text, not of the expansion; raises :class:`LiteralError` at the first node over a limit."""
    if type(root) is yaml.ScalarNode:
        return _scalar_size(loader, root)
    sizes: dict[int, tuple[int, int]] = {}  # id(collection node) -> (values, bytes)
    scalars: dict[int, int] = {}  # id(scalar node) -> bytes (an alias names the same node again)
    open_: set[int] = set()
    stack: list[yaml.Node] = [root]
    while stack:
        node = stack[-1]
        key = id(node)
        if key in sizes:
            stack.pop()
            continue
        mapping = type(node) is yaml.MappingNode
        parts = [value for _, value in node.value] if mapping else node.value
        if key not in open_:  # opening: measure its collections first
            open_.add(key)
            for part in parts:
                if type(part) is not yaml.ScalarNode and id(part) not in sizes:
                    if id(part) in open_:
                        raise LiteralError("a literal may not contain itself", part.start_mark.index)
                    stack.append(part)
            continue
        stack.pop()
        open_.discard(key)
        values, size = 1, 1 + max(len(parts), 1)  # brackets and commas
        for part in parts:
            if type(part) is yaml.ScalarNode:
                values += 1
                known = scalars.get(id(part))
                if known is None:
                    known = scalars[id(part)] = _scalar_size(loader, part)
                size += known
            else:
                more, longer = sizes[id(part)]
                values += more
                size += longer
        if mapping:
            for name, _ in node.value:
                size += _key_size(loader, name)
        if values > MAX_VALUES:
            raise LiteralError(f"literal too large (more than {MAX_VALUES:,} values)", node.start_mark.index)
        if size > budget.left:
            raise budget.error(size, node.start_mark.index)
        sizes[key] = (values, size)
    return sizes[id(root)][1]


_STR = "tag:yaml.org,2002:str"


def _scalar_size(loader: PlainLoader, node: yaml.ScalarNode) -> int:
    return json_size(node.value if node.tag == _STR else loader.construct_object(node))


def _key_size(loader: PlainLoader, node: yaml.Node) -> int:
    """The bytes of a mapping key as a JSON object key, with its colon."""
    if node.tag == _MERGE:
        return 3  # (counted as a key of its own: an upper bound for what it merges)
    if type(node) is not yaml.ScalarNode:
        raise LiteralError("an object key must be text, not a collection", node.start_mark.index)
    return json_size(node.value if node.tag == _STR else _key(loader.construct_object(node))) + 1


# Compact JSON without ensure_ascii; default=repr: a value JSON cannot hold is measured all the
# same (plain() refuses it after). The C encoder is made once: json.dumps makes one a call, which
# costs more than encoding a small value.
_COMPACT = dict(ensure_ascii=False, separators=(",", ":"), default=repr)
_encode = (
    c_make_encoder(None, repr, encode_basestring, None, ":", ",", False, False, True)
    if c_make_encoder is not None
    else None
)


def json_size(value: Any) -> int:
    """The bytes of ``value`` as compact JSON in UTF-8 (what :data:`MAX_BYTES` counts)."""
    if type(value) is str:
        text = encode_basestring(value)
    elif _encode is not None and type(value) in (dict, list):
        text = "".join(_encode(value, 0))
    else:
        text = json.dumps(value, **_COMPACT)
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


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
    raise LiteralError(
        f"a {type(value).__name__} value is not plain data (only JSON-like values are allowed)"
    )


def _key(key: Any) -> str:
    if isinstance(key, str):
        return _text(key)
    if key is None or isinstance(key, (bool, int, float)):
        return json.dumps(key)
    raise LiteralError(f"an object key must be text, not {type(key).__name__}")
