"""Flow text with its file name, and offsets turned into lines and columns."""

from __future__ import annotations

import re
from bisect import bisect_right
from typing import TypeVar

from .errors import Diagnostic, FlowError

_NEWLINE = re.compile("\n")
_D = TypeVar("_D", bound=Diagnostic)


class Source:
    """Flow text and where it came from (``file`` is ``None`` for inline text)."""

    __slots__ = ("text", "file", "_line_starts")

    def __init__(self, text: str, file: str | None = None) -> None:
        self.text = text
        self.file = file
        self._line_starts: list[int] | None = None

    def _starts(self) -> list[int]:
        if self._line_starts is None:
            self._line_starts = [0] + [m.end() for m in _NEWLINE.finditer(self.text)]
        return self._line_starts

    def position(self, offset: int) -> tuple[int, int]:
        """The 1-based ``(line, column)`` of a character offset."""
        starts = self._starts()
        line = bisect_right(starts, offset)
        return line, offset - starts[line - 1] + 1

    def line_text(self, line: int) -> str:
        """The text of a 1-based line, without its line break."""
        starts = self._starts()
        if not 1 <= line <= len(starts):
            return ""
        end = starts[line] - 1 if line < len(starts) else len(self.text)
        return self.text[starts[line - 1] : end].rstrip("\r")

    def error(self, message: str, offset: int) -> FlowError:
        """A :class:`FlowError` pointing at ``offset``."""
        return self._at(FlowError, message, offset)

    def warning(self, message: str, offset: int) -> Diagnostic:
        """A warning pointing at ``offset``."""
        return self._at(Diagnostic, message, offset)

    def _at(self, kind: type[_D], message: str, offset: int) -> _D:
        line, column = self.position(min(max(offset, 0), len(self.text)))
        return kind(message, file=self.file, line=line, column=column, source_line=self.line_text(line))
