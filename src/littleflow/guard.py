"""Guards: RFC 9535 JSONPath filters that decide whether a step runs (LANGUAGE.md §9.3).

A guard is evaluated on input nobody vetted, so its cost is bounded: ``match()`` and
``search()`` run on RE2, which cannot backtrack (time linear in the text), and each
evaluation has a time budget (:data:`BUDGET`) past which the step fails.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from .budget import OverBudget, limit
from .errors import LittleflowError

#: Seconds one evaluation of a guard may take; past it, the guarded step fails.
BUDGET = 1.0
#: Memory RE2 may use for one pattern (patterns may come from the input: ``match(@.a, @.b)``).
PATTERN_MEMORY = 8 << 20

# A string literal, or a lone '=' (not part of ==, !=, <=, >=).
_EQUALS = re.compile(r"""("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(?<![=!<>])=(?!=)""")
_ROOT_FILTER = re.compile(r"\$\s*\[\s*\?")


class GuardError(LittleflowError, ValueError):
    """A malformed guard expression."""


class Guard:
    """A compiled guard; :meth:`test` says whether the step runs for an input."""

    __slots__ = ("expression", "_query", "_root", "_fast")

    def __init__(self, expression: str) -> None:
        import jsonpath_rfc9535 as jsonpath  # only flows with guards pay for importing it

        self.expression = expression
        text = normalize(expression)
        try:
            self._query = _environment().compile(text)
        except jsonpath.JSONPathError as error:
            raise GuardError(f"invalid guard `{expression}`: {error}") from None
        except RecursionError:
            raise GuardError(f"invalid guard `{expression}`: nested too deeply") from None
        except (ValueError, OverflowError) as error:  # numbers the library cannot hold
            raise GuardError(f"invalid guard `{expression}`: {error}") from None
        self._root = _ROOT_FILTER.match(text) is not None
        self._fast = _simple(text)

    def test(self, value: Any, budget: float | None = None) -> bool:
        """True when the expression selects at least one value of ``value``; raises
        :class:`GuardError` when that takes more than ``budget`` seconds (default :data:`BUDGET`).

        A filter at the root (``$[?…]``) tests ``value`` itself rather than its members.
        """
        if self._fast is not None:  # a comparison of one member with a literal: a few steps, no budget needed
            return self._fast(value)
        subject = [value] if self._root else value
        try:
            with limit(BUDGET if budget is None else budget, f"the guard `{self.expression}`"):
                return self._query.find_one(subject) is not None
        except OverBudget as error:
            raise GuardError(f"{error} (the time one guard may take)") from None
        except RecursionError:
            raise GuardError(f"the guard `{self.expression}`: its input is nested too deeply") from None


def normalize(expression: str) -> str:
    """The expression with a single ``=`` (accepted for compatibility) read as ``==``."""
    return _EQUALS.sub(lambda m: m.group(1) or "==", expression.strip())


@lru_cache(maxsize=1024)
def compile_guard(expression: str) -> Guard:
    """The :class:`Guard` for ``expression``; raises :class:`GuardError` if malformed."""
    return Guard(expression)


# `$[?@.a.b OP literal]` or `$[?@.a.b]`, optionally in parentheses: the filters most guards and
# conditions are, evaluated directly (RFC 9535 §2.3.5.2.2) rather than by the query library.
_SIMPLE = re.compile(
    r"""\$\s*\[\s*\?\s*(?P<open>\(\s*)?@(?P<path>(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*"""
    r"""(?:(?P<op>==|!=|<=|>=|<|>)\s*(?P<literal>-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"""
    r"""|"[^"\\]*"|'[^'\\]*'|true|false|null)\s*)?(?(open)\)\s*)\]"""
)
_NOTHING = object()
_NUMBER = (int, float)


def _simple(text: str) -> Any:
    """A function deciding the root filter ``text`` directly when it is one member (or ``@``)
    compared with a literal, or a member's existence; else None."""
    m = _SIMPLE.fullmatch(text)
    if m is None or (m.group("path") == "" and m.group("op") is None):
        return None
    keys = m.group("path").split(".")[1:]
    op, literal = m.group("op"), m.group("literal")

    def member(value: Any) -> Any:
        for key in keys:
            if type(value) is not dict:
                return _NOTHING
            value = value.get(key, _NOTHING)
            if value is _NOTHING:
                return _NOTHING
        return value

    if op is None:
        return lambda value: member(value) is not _NOTHING
    if literal[0] in "\"'":
        want: Any = literal[1:-1]
    elif literal in ("true", "false", "null"):
        want = {"true": True, "false": False, "null": None}[literal]
    elif any(c in literal for c in ".eE"):
        want = float(literal)
    else:
        want = int(literal)
    kind = (
        str
        if isinstance(want, str)
        else bool
        if isinstance(want, bool)
        else None
        if want is None
        else _NUMBER
    )

    def same_kind(value: Any) -> bool:
        if kind is None:
            return value is None
        if kind is _NUMBER:
            return isinstance(value, _NUMBER) and not isinstance(value, bool)
        return isinstance(value, kind)

    def equal(value: Any) -> bool:
        return value is not _NOTHING and same_kind(value) and value == want

    def less(value: Any) -> bool:  # value < want; only numbers with numbers, text with text
        return (
            value is not _NOTHING and (kind is _NUMBER or kind is str) and same_kind(value) and value < want
        )

    def more(value: Any) -> bool:
        return (
            value is not _NOTHING and (kind is _NUMBER or kind is str) and same_kind(value) and value > want
        )

    test = {
        "==": equal,
        "!=": lambda value: not equal(value),
        "<": less,
        ">": more,
        "<=": lambda value: less(value) or equal(value),
        ">=": lambda value: more(value) or equal(value),
    }[op]
    return lambda value: test(member(value))


@lru_cache(maxsize=1)
def _environment() -> Any:
    """A JSONPath environment whose ``match`` and ``search`` run on RE2."""
    import jsonpath_rfc9535 as jsonpath

    class Pattern(jsonpath.function_extensions.FilterFunction):
        """RFC 9535 ``match`` (the whole text) or ``search`` (a part of it): False for a
        pattern that is not an I-Regexp (RFC 9485) or that RE2 cannot hold."""

        arg_types = [jsonpath.function_extensions.ExpressionType.VALUE] * 2
        return_type = jsonpath.function_extensions.ExpressionType.LOGICAL

        def __init__(self, whole: bool) -> None:
            self.whole = whole

        def __call__(self, text: object, pattern: object) -> bool:
            if not isinstance(text, str) or not isinstance(pattern, str):
                return False
            compiled = _pattern(pattern)
            if compiled is None:
                return False
            try:
                found = compiled.fullmatch(text) if self.whole else compiled.search(text)
            except UnicodeError:  # a lone surrogate: not text RE2 can read
                return False
            return found is not None

    class Environment(jsonpath.JSONPathEnvironment):
        def setup_function_extensions(self) -> None:
            super().setup_function_extensions()
            self.function_extensions["match"] = Pattern(whole=True)
            self.function_extensions["search"] = Pattern(whole=False)

    return Environment()


@lru_cache(maxsize=256)
def _pattern(pattern: str) -> Any:
    """``pattern`` (an I-Regexp) compiled by RE2, or None if it is not one or RE2 refuses it."""
    import re2
    from iregexp_check import check

    if len(pattern) > 4096 or not check(pattern):
        return None
    options = re2.Options()
    options.max_mem = PATTERN_MEMORY
    options.log_errors = False
    try:
        return re2.compile(_unescaped_dots(pattern), options)
    except (re2.error, UnicodeError):
        return None


def _unescaped_dots(pattern: str) -> str:
    """I-Regexp's ``.`` (any character but CR and LF) in RE2's syntax; the rest is the same."""
    parts, escaped, in_class = [], False, False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "[":
            in_class = True
        elif char == "]":
            in_class = False
        elif char == "." and not in_class:
            char = "[^\\n\\r]"
        parts.append(char)
    return "".join(parts)
