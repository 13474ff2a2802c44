"""The project's error family: :class:`LittleflowError` over every exception littleflow
raises on purpose, and :class:`FlowError`, what a user can get wrong in flow text and where."""

from __future__ import annotations

from typing import Any


class Diagnostic:
    """A message about a place in flow text (an error or a warning).

    ``str()`` gives the one-line ``FILE:LINE:COL: SEVERITY: MESSAGE`` form;
    :meth:`format` adds the offending source line and a caret under the column.
    """

    severity = "warning"

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int = 0,
        column: int = 0,
        source_line: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.column = column
        self.source_line = source_line

    def location(self) -> str:
        """``FILE:LINE:COL``, leaving out the parts that are unknown."""
        parts = [self.file or "<flow>"]
        if self.line:
            parts.append(str(self.line))
            if self.column:
                parts.append(str(self.column))
        return ":".join(parts)

    def __str__(self) -> str:
        return f"{self.location()}: {self.severity}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def format(self) -> str:
        """The one-line message, then the source line with a caret under the column."""
        text = str(self)
        if self.source_line is not None and self.line:
            line = self.source_line.replace("\t", " ")
            caret = " " * max(self.column - 1, 0) + "^"
            text += f"\n    {line}\n    {caret}"
        return text


class LittleflowError(Exception):
    """The base of littleflow's own exceptions (flow text, options, tasks, the store …): one
    ``except LittleflowError`` catches what littleflow means to raise, and not its bugs."""


class FlowError(Diagnostic, LittleflowError):
    """A user error in flow text: bad token, unknown label, malformed literal, …"""

    severity = "error"

    def __init__(self, message: str, **where: Any) -> None:
        Diagnostic.__init__(self, message, **where)
        Exception.__init__(self, message)

    __str__ = Diagnostic.__str__
