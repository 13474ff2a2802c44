"""Guards: RFC 9535 JSONPath filters that decide whether a step runs (LANGUAGE.md §9.3)."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

# A string literal, or a lone '=' (not part of ==, !=, <=, >=).
_EQUALS = re.compile(r"""("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(?<![=!<>])=(?!=)""")
_ROOT_FILTER = re.compile(r"\$\s*\[\s*\?")


class GuardError(ValueError):
    """A malformed guard expression."""


class Guard:
    """A compiled guard; :meth:`test` says whether the step runs for an input."""

    __slots__ = ("expression", "_query", "_root")

    def __init__(self, expression: str) -> None:
        import jsonpath_rfc9535 as jsonpath  # only flows with guards pay for importing it

        self.expression = expression
        text = normalize(expression)
        try:
            self._query = jsonpath.compile(text)
        except jsonpath.JSONPathError as error:
            raise GuardError(f"invalid guard `{expression}`: {error}") from None
        except RecursionError:
            raise GuardError(f"invalid guard `{expression}`: nested too deeply") from None
        except (ValueError, OverflowError) as error:  # numbers the library cannot hold
            raise GuardError(f"invalid guard `{expression}`: {error}") from None
        self._root = _ROOT_FILTER.match(text) is not None

    def test(self, value: Any) -> bool:
        """True when the expression selects at least one value of ``value``.

        A filter at the root (``$[?…]``) tests ``value`` itself rather than its members.
        """
        subject = [value] if self._root else value
        return self._query.find_one(subject) is not None


def normalize(expression: str) -> str:
    """The expression with a single ``=`` (accepted for compatibility) read as ``==``."""
    return _EQUALS.sub(lambda m: m.group(1) or "==", expression.strip())


@lru_cache(maxsize=1024)
def compile_guard(expression: str) -> Guard:
    """The :class:`Guard` for ``expression``; raises :class:`GuardError` if malformed."""
    return Guard(expression)
