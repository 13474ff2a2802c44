"""The one error type (LANGUAGE.md §10): file, line, column, message, source line and caret."""

import pytest
from support import fails

from littleflow import Diagnostic, FlowError, compile_flow


def test_error_carries_file_line_column_and_message():
    error = fails("A → B\nC → :nowhere", "flows/x.flow")
    assert isinstance(error, Exception)
    assert (error.file, error.line, error.column) == ("flows/x.flow", 2, 5)
    assert "nowhere" in error.message and "\n" not in error.message
    assert error.source_line == "C → :nowhere"


def test_format_prints_location_source_line_and_caret():
    error = fails("A → B\n  C → :nowhere", "x.flow")
    first, source, caret = error.format().splitlines()
    assert first == f"x.flow:2:7: error: {error.message}"
    assert source.strip() == "C → :nowhere"
    assert caret.strip() == "^"
    assert caret.index("^") == source.index(":nowhere")


def test_caret_is_under_the_column_with_tabs_and_unicode():
    error = fails("\tcafé → 日本 → %", "t.flow")
    _, source, caret = error.format().splitlines()
    assert caret.index("^") == source.index("%")


def test_str_is_the_one_line_form():
    error = fails("A → %", "y.flow")
    assert str(error) == f"y.flow:1:5: error: {error.message}"


def test_text_without_a_file():
    error = fails("A → %")
    assert error.file is None
    assert str(error).startswith("<flow>:1:5: error: ")


@pytest.mark.parametrize(
    "text",
    [
        "A → B\n  → ",  # at the end of the text
        "A → {\n",
        "A\r\nB → :x\r\n",
    ],
)
def test_errors_always_have_a_line_and_a_column(text):
    error = fails(text, "z.flow")
    assert error.line >= 1 and error.column >= 1
    lines = error.format().splitlines()
    assert lines[0].startswith(f"z.flow:{error.line}:{error.column}: error: ")
    assert "\r" not in error.format()


def test_diagnostic_without_a_position():
    warning = Diagnostic("the flow can never reach its end", file="f.flow")
    assert str(warning) == "f.flow: warning: the flow can never reach its end"
    assert warning.format() == str(warning)


def test_flow_error_is_raised_by_compile_flow_and_catchable_as_exception():
    with pytest.raises(Exception) as caught:
        compile_flow("{")
    assert type(caught.value) is FlowError


def test_every_error_littleflow_raises_is_a_littleflow_error_and_keeps_its_builtin_kind():
    from littleflow import FlowFailed, LittleflowError, UnknownTasks
    from littleflow.calling import Cancelled, TaskTimeout
    from littleflow.confine import Refused
    from littleflow.guard import GuardError
    from littleflow.literals import LiteralError
    from littleflow.policy import OptionError
    from littleflow.redis.protocol import Malformed
    from littleflow.redis.schedules import UnknownSchedule
    from littleflow.redis.store import InvalidArchive, InvalidKey, KeyReused, StoreError, WorkflowNotFound
    from littleflow.resources import ResourceError
    from littleflow.schedules import ScheduleError
    from littleflow.statefile import StateFileError
    from littleflow.tasks import CallError, Fail, TaskError

    kinds = {
        FlowError: Exception,
        OptionError: ValueError,
        GuardError: ValueError,
        LiteralError: ValueError,
        ScheduleError: ValueError,
        Malformed: ValueError,
        TaskTimeout: TimeoutError,
        UnknownTasks: LookupError,
        WorkflowNotFound: LookupError,
        UnknownSchedule: LookupError,
        StoreError: Exception,
        InvalidArchive: StoreError,
        InvalidKey: StoreError,
        KeyReused: StoreError,
        TaskError: Exception,
        CallError: TaskError,
        Fail: Exception,
        Cancelled: Exception,
        Refused: Exception,
        ResourceError: Exception,
        StateFileError: Exception,
        FlowFailed: Exception,
    }
    for error, kind in kinds.items():
        assert issubclass(error, LittleflowError) and issubclass(error, kind), error
    assert issubclass(WorkflowNotFound, StoreError) and issubclass(UnknownSchedule, StoreError)
    with pytest.raises(LittleflowError, match="^<flow>:1:1: error: "):
        compile_flow("@")
