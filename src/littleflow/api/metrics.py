"""Prometheus text exposition of what the store knows: workflows by state, queue depths."""

from __future__ import annotations


def prometheus(counts: dict[str, int], queues: dict[str, dict[str, int]]) -> str:
    """The metrics as Prometheus text format 0.0.4."""
    lines = ["# HELP littleflow_workflows Workflows by state.", "# TYPE littleflow_workflows gauge"]
    lines += [f'littleflow_workflows{{state="{state}"}} {n}' for state, n in counts.items()]
    lines += ["# HELP littleflow_stream_messages Messages in each stream (tasks by namespace, ends, dead letters).",
              "# TYPE littleflow_stream_messages gauge"]
    lines += [f'littleflow_stream_messages{{stream="{_escape(s)}"}} {q["length"]}' for s, q in queues.items()]
    lines += ["# HELP littleflow_stream_pending Messages handed out and not yet acknowledged.",
              "# TYPE littleflow_stream_pending gauge"]
    lines += [f'littleflow_stream_pending{{stream="{_escape(s)}"}} {q["pending"]}' for s, q in queues.items()]
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
