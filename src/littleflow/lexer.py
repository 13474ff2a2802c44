"""Flow text into tokens: names, labels, arrows, punctuation, literals, docs."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from .literals import Budget, LiteralError, json_size, load_inline, load_json
from .source import Source

# Token kinds.
ARROW = "arrow"
NAME = "name"
LABEL = "label"
SEMI = ";"
LBRACE, RBRACE, LBRACKET, RBRACKET = "{", "}", "[", "]"
BAR = "|"
MERGE = ">"
STAR = "*"
EQUALS = "="
GUARD = "guard"  # value: the JSONPath expression
CONDITION = "condition"  # value: the JSONPath expression of `…` after if, elif, until or while
DECL = "decl"  # value: "flow" or "task"
DOC = "doc"  # value: the documentation text
PARAMS = "params"  # value: the loaded parameters (None for "()")
LITERAL = "literal"  # value: the loaded value
RESOURCE = "resource"  # value: the URI
EOF = "end of text"
#: Words that are never task names (LANGUAGE.md §2); lexed as names, told apart by the parser.
RESERVED = frozenset(("if", "then", "elif", "else", "repeat", "until", "while", "do"))

_NAME = r"[^\W\d][\w:]*(?:-(?!>)[\w:]*)*"  # a '-' directly followed by '>' is an arrow
# Whitespace and comments, then one token (or nothing: the end of the text, or a mistake).
_TOKEN = re.compile(
    rf"(?:\s+|#[^\n]*)*(?:"
    rf"(?P<arrow>→|->)"
    rf"|(?P<name>{_NAME})"
    rf"|(?P<label>:{_NAME})"
    rf"|(?P<punct>[;{{}}\[\]|>*=])"
    rf"|(?P<params>\((?:\s*(?=[{{\[])|-|\s*\)))"
    rf"|(?P<literal><(?:\s*>|-|(?=[{{\[])))"
    rf"|(?P<resource><[^\s<>]+>)"
    rf"|(?P<guard>\?\s*`)"
    rf"|(?P<condition>`)"
    rf"|(?P<decl>@{_NAME})"
    rf"|(?P<doc>'''|\"\"\")"
    rf")?"
)
_SPACE = re.compile(r"\s*")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_HINTS = {
    "(": "malformed parameters: write (- YAML -), ({ JSON }), ([ JSON ]) or ()",
    "<": "malformed literal or resource: write <- YAML ->, <{ JSON }>, <[ JSON ]>, <> or <URI>",
    "?": "malformed guard: write ? `JSONPath filter` before a step",
    "@": "a declaration is @flow NAME or @task NAME",
    ":": "a label is ':' directly followed by a name",
    "-": "unexpected '-' (an arrow is '->' or '→')",
}


class Token(NamedTuple):
    kind: str
    value: Any
    offset: int


def describe(token: Token) -> str:
    """How a token reads in an error message."""
    if token.kind == EOF:
        return "end of text"
    if token.kind == NAME:
        return f"'{token.value}'" if token.value in RESERVED else f"task {token.value!r}"
    if token.kind == LABEL:
        return f"label :{token.value}"
    if token.kind == PARAMS:
        return "parameters"
    if token.kind in (LITERAL, RESOURCE, GUARD, DOC, CONDITION):
        return {
            LITERAL: "a literal",
            RESOURCE: "a resource",
            GUARD: "a guard",
            DOC: "a doc string",
            CONDITION: "a condition",
        }[token.kind]
    if token.kind == DECL:
        return f"@{token.value}"
    if token.kind == ARROW:
        return "'→'"
    return f"'{token.kind}'"


def tokens(source: Source) -> Iterator[Token]:
    """The tokens of ``source``, ending with one ``EOF`` token.

    Raises :class:`~littleflow.errors.FlowError` at the first thing that is not a token.
    """
    text = source.text
    lone = _SURROGATE.search(text)
    if lone:
        raise source.error(
            f"the text holds a lone surrogate \\u{ord(lone.group()):04x} (not Unicode text)", lone.start()
        )
    budget = Budget()  # what all the literals and parameters of the text may expand to
    match: Callable[[str, int], re.Match[str]] = _TOKEN.match  # type: ignore[assignment]  # always matches
    new = tuple.__new__  # Token(...) without NamedTuple's Python-level __new__: this loop is hot
    size = len(text)
    at = 0
    while True:
        m = match(text, at)
        kind = m.lastgroup
        if kind is None:
            at = m.end()
            if at == size:
                break
            raise source.error(_HINTS.get(text[at], f"unexpected character {text[at]!r}"), at)
        at = m.start(kind)
        end = m.end()
        if kind == "name":
            yield new(Token, (NAME, m.group(kind), at))
        elif kind == "arrow":
            yield new(Token, (ARROW, None, at))
        elif kind == "punct":
            yield Token(m.group(kind), None, at)
        elif kind == "label":
            yield Token(LABEL, m.group(kind)[1:], at)
        elif kind == "params":
            value, end = _params(source, m.group(kind), at, end, budget)
            yield Token(PARAMS, value, at)
        elif kind == "literal":
            value, end = _literal(source, m.group(kind), at, end, budget)
            yield Token(LITERAL, value, at)
        elif kind == "resource":
            yield Token(RESOURCE, m.group(kind)[1:-1], at)
        elif kind == "guard":
            close = text.find("`", end)
            if close < 0:
                raise source.error("unclosed guard: expected '`' to end the expression", at)
            yield Token(GUARD, text[end:close].strip(), at)
            end = close + 1
        elif kind == "condition":
            close = text.find("`", end)
            if close < 0:
                raise source.error("unclosed condition: expected '`' to end the expression", at)
            yield Token(CONDITION, text[end:close].strip(), at)
            end = close + 1
        elif kind == "decl":
            word = m.group(kind)[1:]
            if word not in ("flow", "task"):
                raise source.error(f"unknown declaration @{word} (expected @flow or @task)", at)
            yield Token(DECL, word, at)
        else:  # doc
            quote = m.group(kind)
            close = text.find(quote, end)
            if close < 0:
                raise source.error(f"unclosed doc string: expected {quote} to end it", at)
            yield Token(DOC, inspect.cleandoc(text[end:close]), at)
            end = close + 3
        at = end
    yield Token(EOF, None, size)


def _params(source: Source, opening: str, at: int, end: int, budget: Budget) -> tuple[Any, int]:
    """Parameters after a name: ``()``, ``(- YAML -)``, ``({…})`` or ``([…])``."""
    if opening.endswith(")"):
        return None, end
    if opening == "(-":
        return _yaml(source, "parameters", at, end, "-)", budget)
    return _json(source, "parameters", at, end, ")", budget)


def _literal(source: Source, opening: str, at: int, end: int, budget: Budget) -> tuple[Any, int]:
    """A literal source: ``<>``, ``<- YAML ->``, ``<{…}>`` or ``<[…]>``."""
    if opening.endswith(">"):
        return {}, end
    if opening == "<-":
        value, end = _yaml(source, "literal", at, end, "->", budget)
        return ({} if value is None else value), end
    return _json(source, "literal", at, end, ">", budget)


def _yaml(source: Source, what: str, at: int, start: int, closing: str, budget: Budget) -> tuple[Any, int]:
    close = source.text.find(closing, start)
    if close < 0:
        raise source.error(f"unclosed {what}: expected '{closing}' to end the YAML", at)
    try:
        return load_inline(source.text[start:close], budget), close + len(closing)
    except LiteralError as error:
        raise source.error(_where(source, error, start, what), at) from None


def _json(source: Source, what: str, at: int, start: int, closing: str, budget: Budget) -> tuple[Any, int]:
    try:
        value, end = load_json(source.text, start)
        budget.spend(json_size(value), start)
    except LiteralError as error:
        raise source.error(_where(source, error, 0, what), at) from None
    end = _SPACE.match(source.text, end).end()  # type: ignore[union-attr]  # matches the empty string
    if not source.text.startswith(closing, end):
        raise source.error(f"unclosed {what}: expected '{closing}' after the JSON", at)
    return value, end + 1


def _where(source: Source, error: LiteralError, base: int, what: str) -> str:
    """The literal error's message, with its own place in the flow text when known."""
    if error.offset is None:
        return f"{error.message} in {what}"
    line, column = source.position(base + error.offset)
    return f"{error.message} in {what} (at {line}:{column})"
