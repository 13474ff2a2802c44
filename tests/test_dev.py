"""dev.py's choice of what to install for each command, and its record of what is installed."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parent.parent


def load_dev() -> ModuleType:
    spec = importlib.util.spec_from_file_location("littleflow_dev", REPO / "dev.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


dev = load_dev()
FINGERPRINT = "a" * 64
FULL = ".[kubernetes,otel,server,test]"


def test_the_demo_installs_no_extras_and_the_tests_all_but_bench() -> None:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert dev.COMMAND_EXTRAS["demo"] == ()
    assert set(dev.COMMAND_EXTRAS["test"]) == set(extras) - {"bench"}
    assert dev.COMMAND_EXTRAS["setup"] == dev.COMMAND_EXTRAS["test"]
    for command, named in dev.COMMAND_EXTRAS.items():
        assert set(named) <= set(extras), command


def test_install_spec() -> None:
    assert dev.install_spec(()) == "."
    assert dev.install_spec(("test", "otel", "test")) == ".[otel,test]"
    assert dev.install_spec(dev.FULL_EXTRAS) == FULL


def test_a_demo_install_does_not_make_the_tests_skip_theirs() -> None:
    assert dev.needed_spec("", FINGERPRINT, dev.COMMAND_EXTRAS["demo"]) == "."
    after_demo = f"{FINGERPRINT} .\n"
    assert dev.needed_spec(after_demo, FINGERPRINT, dev.COMMAND_EXTRAS["demo"]) is None
    assert dev.needed_spec(after_demo, FINGERPRINT, dev.COMMAND_EXTRAS["test"]) == FULL
    after_test = after_demo + f"{FINGERPRINT} {FULL}\n"
    for command in ("demo", "test", "setup", "system"):
        assert dev.needed_spec(after_test, FINGERPRINT, dev.COMMAND_EXTRAS[command]) is None, command


def test_a_changed_pyproject_or_an_unknown_stamp_means_installing_again() -> None:
    stale = f"{'b' * 64} {FULL}\n"
    assert dev.needed_spec(stale, FINGERPRINT, ()) == "."
    assert dev.installed_extras(stale + f"{FINGERPRINT} .[server]\n", FINGERPRINT) == {"server"}
    assert dev.needed_spec(f"{'c' * 64}\n", FINGERPRINT, ()) == "."  # the stamp of an older dev.py
    assert dev.installed_extras("", FINGERPRINT) is None


def test_under_ci_every_system_dependency_is_required() -> None:
    everything = {"redis", "chromium", "graphviz", "kubectl"}
    assert set(dev.required_for_tests(ci=True, apt=False)) == everything
    assert set(dev.required_for_tests(ci=True, apt=True)) == everything
    assert dev.required_for_tests(ci=False, apt=True) == ["redis", "chromium"]
    assert dev.required_for_tests(ci=False, apt=False) == ["redis"]
    assert set(dev.SYSTEM_DEPENDENCIES) == everything


def test_under_ci_a_test_fails_rather_than_skips_for_want_of_what_dev_py_installs(tmp_path: Path) -> None:
    (tmp_path / "test_wants.py").write_text(
        "from support import need_command\n\n"
        "def test_wants_a_tool():\n"
        "    need_command('littleflow-no-such-tool', 'to check nothing')\n"
    )

    def outcome(ci: str) -> str:
        env = {**os.environ, "CI": ci, "PYTHONPATH": str(REPO / "tests")}
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(tmp_path)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return result.stdout

    skipped = outcome("")
    assert "1 skipped" in skipped and "littleflow-no-such-tool is not on PATH: to check nothing" in skipped
    failed = outcome("true")
    assert "1 failed" in failed and "CI=true: `python3 dev.py test` should have installed it" in failed


def test_the_suite_runs_a_process_per_core_unless_the_arguments_say_how_many() -> None:
    assert dev.parallel([]) == dev.parallel(["-k", "parser", "-x", "-p", "no:cacheprovider"])
    assert dev.parallel([])[:2] == ["-n", "auto"]
    for given in (["-n", "0"], ["-n0"], ["--numprocesses=1"]):
        assert dev.parallel(given) == []
