"""dev.py's choice of what to install for each command, and its record of what is installed."""

from __future__ import annotations

import importlib.util
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
