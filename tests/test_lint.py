"""The code keeps the house rules that pyproject.toml configures: ruff's lint rules and
format, and mypy's strict types on the pure core (the language, the engine, its state)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support import need_module

ROOT = Path(__file__).parent.parent


def run(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    need_module(module, "test")
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


@pytest.mark.parametrize("args", [["check"], ["format", "--check", "--diff"]], ids=["lint", "format"])
def test_ruff_finds_nothing(args):
    result = run("ruff", *args, ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_nothing_in_the_pure_core():
    result = run("mypy")  # the files and strictness come from [tool.mypy]
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues found in 10 source files" in result.stdout
