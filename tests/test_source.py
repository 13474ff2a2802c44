"""Offsets into 1-based lines and columns (LANGUAGE.md §10)."""

import pytest

from littleflow.source import Source

TEXT = "ab\ncd→e\n\nlast"


@pytest.mark.parametrize(
    "offset, where",
    [
        (0, (1, 1)),
        (1, (1, 2)),
        (2, (1, 3)),
        (3, (2, 1)),
        (5, (2, 3)),
        (6, (2, 4)),
        (8, (3, 1)),
        (9, (4, 1)),
        (13, (4, 5)),  # just past the end
    ],
)
def test_position(offset, where):
    assert Source(TEXT).position(offset) == where


def test_columns_count_characters_not_bytes():
    text = "café → 日本 → x"
    assert Source(text).position(text.index("x")) == (1, 13)


@pytest.mark.parametrize("line, text", [(1, "ab"), (2, "cd→e"), (3, ""), (4, "last"), (0, ""), (5, "")])
def test_line_text(line, text):
    assert Source(TEXT).line_text(line) == text


def test_line_text_drops_carriage_returns():
    assert Source("a\r\nb\r\n").line_text(1) == "a"


def test_error_and_warning_point_at_an_offset():
    source = Source(TEXT, "s.flow")
    error = source.error("bad", 5)
    assert (error.file, error.line, error.column, error.source_line, error.severity) == (
        "s.flow",
        2,
        3,
        "cd→e",
        "error",
    )
    warning = source.warning("odd", 9)
    assert (warning.line, warning.column, warning.source_line, warning.severity) == (4, 1, "last", "warning")


@pytest.mark.parametrize("offset, where", [(-3, (1, 1)), (100, (4, 5))])
def test_offsets_out_of_range_are_clamped(offset, where):
    error = Source(TEXT).error("x", offset)
    assert (error.line, error.column) == where
