"""The fenced code blocks of the project's documents, and a reader's session that runs them
as they are copied: Python blocks as scripts, shell blocks in bash (a command that runs until
stopped, such as `littleflow serve`, in the background, as in a terminal of its own), console
transcripts compared with what they show, flow text compiled, YAML and JSON parsed.

A block that cannot run as it is carries a marker right before it:
``<!-- example: output -->``, ``<!-- example: picture -->``, ``<!-- example: needs … -->``
(skipped, saying why), ``<!-- example: synopsis -->`` (its options are checked against
the command's ``--help``) or ``<!-- example: shape -->`` (the shape of the compiled graph's JSON:
its keys and node kinds are checked against `littleflow compile --format json`)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from littleflow import FlowError, compile_flow

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the bin directory of the environment running the tests

FENCE = re.compile(r"^(?P<fence>```+)(?P<lang>[^\n`]*)\n(?P<body>.*?)^(?P=fence)[ \t]*$", re.M | re.S)
MARKER = re.compile(r"^<!-- example: (?P<what>[^\n]*?) -->\n\Z", re.M)
SKIPPED = re.compile(r"output|picture|needs .+")
CHECKED = {"synopsis", "shape"}

#: commands that run until stopped: a pattern of the command line, where it says it is ready
#: and what it says then (none: it is ready when it still runs a second later).
UNTIL_STOPPED: list[tuple[re.Pattern[str], str, str]] = [
    (re.compile(r"^littleflow serve\b.*--api\b"), "stderr", "littleflow: the console on "),
    (re.compile(r"^littleflow serve\b"), "stderr", "littleflow: an engine, "),
    (re.compile(r"^littleflow worker\b"), "stderr", "littleflow worker: "),
    (re.compile(r"^littleflow engine\b"), "stderr", "littleflow engine: "),
    (re.compile(r"^littleflow events\b.*\s(--follow|-f)\b"), "", ""),
]


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it starts, its language, its text, the marker before it."""

    path: Path
    line: int
    lang: str
    text: str
    marker: str | None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """Every fenced code block of the Markdown file ``path``, in order."""
    text = path.read_text(encoding="utf-8")
    indented = re.search(r"^[ \t]+```", text, re.M)
    assert indented is None, (
        f"{path.name}:{text[: indented.start()].count(chr(10)) + 1}: an indented fence, "
        "which this test does not read: start code blocks at the margin"
    )
    found = []
    for match in FENCE.finditer(text):
        marker = MARKER.search(text[: match.start()])
        found.append(
            Block(
                path,
                text[: match.start()].count("\n") + 1,
                match["lang"].strip().lower(),
                match["body"],
                marker["what"] if marker else None,
            )
        )
    return found


def commands(text: str) -> list[str]:
    """The command lines of shell text: continuation lines joined, blank and comment lines left out."""
    joined = re.sub(r"\\\n\s*", "", text)
    return [line for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def until_stopped(command: str) -> tuple[str, str] | None:
    """(stream, ready text) if ``command`` runs until stopped, else None."""
    for pattern, stream, ready in UNTIL_STOPPED:
        if pattern.search(command):
            return stream, ready
    return None


def matches(expected: str, seen: str) -> bool:
    """Does the line ``seen`` read as ``expected``, where ``…`` stands for anything?"""
    pattern = ".*".join(re.escape(part) for part in expected.rstrip().split("…"))
    return re.fullmatch(pattern, seen.rstrip()) is not None


def printed(text: str) -> list[str]:
    """What a Python block says it prints: the comment lines right after a ``print(`` line,
    without a remark in parentheses after two or more spaces."""
    shown, after_print = [], False
    for line in text.splitlines():
        if after_print and line.startswith("# "):
            shown.append(re.sub(r"\s{2,}\(.*\)$", "", line[2:]))
            continue
        after_print = line.startswith("print(")
    return shown


@dataclass
class Background:
    """A command that runs until stopped, with its output in files."""

    command: str
    where: str
    process: subprocess.Popen
    stdout: Path
    stderr: Path

    def output(self) -> tuple[str, str]:
        return (
            self.stdout.read_text(encoding="utf-8", errors="replace"),
            self.stderr.read_text(encoding="utf-8", errors="replace"),
        )


@dataclass
class Session:
    """A reader's terminal: a directory holding what the examples need (a copy of examples/,
    dev.py), HOME there, the environment's bin first on PATH, and the commands still running."""

    dir: Path
    env: dict[str, str]
    replace: dict[str, str] = field(default_factory=dict)
    running: list[Background] = field(default_factory=list)
    ran: list[Block] = field(default_factory=list)

    @classmethod
    def start(
        cls, dir: Path, env: dict[str, str] | None = None, replace: dict[str, str] | None = None
    ) -> Session:
        shutil.copytree(REPO / "examples", dir / "examples")
        (dir / "dev.py").symlink_to(REPO / "dev.py")  # its environment is the repository's
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("LITTLEFLOW_", "KUBERNETES_")) and k != "KUBECONFIG"
        }
        base.update(HOME=str(dir), PATH=f"{BIN}{os.pathsep}{base.get('PATH', '')}", PYTHONUNBUFFERED="1")
        base.update(env or {})
        return cls(dir, base, dict(replace or {}))

    def run(self, block: Block) -> None:
        """Run ``block`` as its marker and language say; AssertionError names the block if it fails."""
        if block.marker is not None:
            assert SKIPPED.fullmatch(block.marker) or block.marker in CHECKED, (
                f"{block.where}: unknown marker 'example: {block.marker}'"
            )
            if block.marker in CHECKED:
                getattr(self, block.marker)(block)
                self.ran.append(block)
            return
        runner = {
            "python": self.python,
            "sh": self.shell,
            "bash": self.shell,
            "console": self.console,
            "flow": self.flow,
            "yaml": self.yaml,
            "yml": self.yaml,
            "json": self.json,
        }.get(block.lang)
        assert runner is not None, (
            f"{block.where}: nothing runs a block of language {block.lang or '(none)'!r}: "
            "give it one, or a marker that says why it cannot run"
        )
        runner(block)
        self.ran.append(block)

    def text(self, block: Block) -> str:
        text = block.text
        for old, new in self.replace.items():
            text = text.replace(old, new)
        return text

    def python(self, block: Block) -> None:
        script = self.dir / f"example_{block.path.stem.lower()}_{block.line}.py"
        script.write_text(self.text(block), encoding="utf-8")
        result = subprocess.run(
            [str(BIN / "python"), script.name],
            cwd=self.dir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, f"{block.where}: exit {result.returncode}\n{result.stderr}"
        lines = iter(result.stdout.splitlines())
        for expected in printed(block.text):
            assert any(matches(expected, line) for line in lines), (
                f"{block.where}: it says it prints {expected!r}, but printed:\n{result.stdout}"
            )

    def shell(self, block: Block) -> None:
        """Consecutive commands as one bash script that stops at the first failure; a command
        that runs until stopped in the background, until the session ends."""
        script: list[str] = []
        for command in commands(self.text(block)):
            if until_stopped(command) is None:
                script.append(command)
                continue
            self.script(block, script)
            script = []
            alone = re.sub(r"(?<!&)&\s*(#.*)?$", "", command)  # `serve &`: it is, already
            self.background(block, alone, alongside=alone != command)
        self.script(block, script)

    def script(self, block: Block, lines: list[str]) -> None:
        if not lines:
            return
        text = "set -euo pipefail -x\n" + "\n".join(lines) + "\n"
        result = subprocess.run(
            ["bash", "-c", text], cwd=self.dir, env=self.env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, (
            f"{block.where}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
        assert "Traceback" not in result.stderr, f"{block.where}:\n{result.stderr}"

    def background(self, block: Block, command: str, timeout: float = 30, alongside: bool = False) -> None:
        """Start ``command``; unless ``alongside`` (it ended in ``&``: a terminal runs it next to
        the others, as a second worker), the same command started before is stopped first."""
        stream, ready = until_stopped(command)
        if not alongside:
            again = [
                started for started in self.running if started.command.split()[:2] == command.split()[:2]
            ]
            self.stop(again)  # a reader stops it (Ctrl-C) to start it again with other options
        number = len(list(self.dir.glob(".background-*.out")))
        out, err = self.dir / f".background-{number}.out", self.dir / f".background-{number}.err"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            process = subprocess.Popen(
                ["bash", "-c", f"exec {command}"],
                cwd=self.dir,
                env=self.env,
                stdout=stdout,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
            )
        started = Background(command, block.where, process, out, err)
        self.running.append(started)
        deadline = time.monotonic() + (timeout if stream else 1)
        while not self.ready(started, stream, ready):
            assert process.poll() is None, (
                f"{block.where}: `{command}` ended (exit {process.returncode}) "
                f"before it was ready:\n{''.join(started.output())}"
            )
            if time.monotonic() > deadline:
                assert not stream, (
                    f"{block.where}: `{command}` not ready after {timeout} s:\n{''.join(started.output())}"
                )
                return
            time.sleep(0.05)

    @staticmethod
    def ready(started: Background, stream: str, ready: str) -> bool:
        """Has ``started`` written a whole line starting with ``ready`` to ``stream``?"""
        if not stream:
            return False
        said = started.output()[0 if stream == "stdout" else 1]
        return any(line.startswith(ready) for line in said.splitlines(keepends=True) if line.endswith("\n"))

    def stop(self, which: list[Background] | None = None) -> None:
        """Stop ``which`` (else all that still runs), newest first, as a reader would (Ctrl-C);
        each must end cleanly."""
        problems = []
        which = list(self.running if which is None else which)
        for started in reversed(which):
            self.running.remove(started)
            started.process.send_signal(signal.SIGTERM)
            try:
                started.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                started.process.kill()
                started.process.wait()
                problems.append(f"{started.where}: `{started.command}` still ran 20 s after SIGTERM")
                continue
            stderr = started.output()[1]
            if started.process.returncode != 0 or "Traceback" in stderr:
                problems.append(
                    f"{started.where}: `{started.command}` ended with exit "
                    f"{started.process.returncode}:\n{stderr}"
                )
        assert not problems, "\n".join(problems)

    def console(self, block: Block) -> None:
        """A transcript: each ``$ command`` runs, and what follows it until the next one is
        its output (standard output and error), ``…`` standing for anything."""
        steps: list[tuple[str, list[str]]] = []
        for line in self.text(block).splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            else:
                assert steps, f"{block.where}: a console block starts with `$ command`"
                steps[-1][1].append(line)
        for command, shown in steps:
            result = subprocess.run(
                ["bash", "-c", command],
                cwd=self.dir,
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=60,
            )
            seen = result.stdout.rstrip("\n").splitlines()
            assert len(seen) == len(shown) and all(map(matches, shown, seen)), (
                f"{block.where}: `{command}` printed\n{result.stdout}\nwhere the block shows\n"
                + "\n".join(shown)
            )

    def flow(self, block: Block) -> None:
        try:
            compile_flow(self.text(block), file=block.where)
        except FlowError as error:
            raise AssertionError(error.format()) from None

    def yaml(self, block: Block) -> None:
        list(yaml.safe_load_all(self.text(block)))

    def json(self, block: Block) -> None:
        json.loads(self.text(block))

    def synopsis(self, block: Block) -> None:
        """Every ``--option`` of a ``littleflow COMMAND …`` line (indented lines continue it),
        its comments included, is one its ``--help`` lists."""
        lines: list[str] = []
        for line in block.text.splitlines():
            if line.startswith((" ", "\t")) and lines:
                lines[-1] += line
            elif line.startswith("littleflow "):
                lines.append(line)
        assert lines, f"{block.where}: a synopsis without `littleflow …` lines"
        for line in lines:
            command = line.split()[1]
            result = subprocess.run(
                [str(BIN / "littleflow"), command, "--help"],
                env=self.env,
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert result.returncode == 0, f"{block.where}: `littleflow {command} --help`: {result.stderr}"
            for option in re.findall(r"--[a-z][a-z-]*", line):
                assert re.search(rf"{option}\b", result.stdout), (
                    f"{block.where}: `littleflow {command}` has no {option}"
                )

    def shape(self, block: Block) -> None:
        """The keys and node kinds of ``block`` are those of `littleflow compile --format json`
        for a flow with every kind of node (conditionals and loops included)."""
        flow = self.dir / "every-kind.flow"
        flow.write_text(
            "@task S { B }\nA → { S → <out.json> }\n<[1, 2]> → * C\n"
            "D → if `$[?@.x == 1]` then E else F\nrepeat G until `$[?@.n > 2]`\n"
            "while `$[?@.more == true]` do H\n",
            encoding="utf-8",
        )
        result = subprocess.run(
            [str(BIN / "littleflow"), "compile", flow.name, "--format", "json"],
            cwd=self.dir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr
        graph = json.loads(result.stdout)
        keys = set(graph) | {key for node in graph["nodes"] for key in node}
        assert keys == set(re.findall(r'"([a-z_]+)":', block.text)), (
            f"{block.where}: the keys are {sorted(keys)}"
        )
        kinds = {node["kind"] for node in graph["nodes"]}
        shown = re.search(r'"kind": ([^,]*),', block.text)
        assert shown and set(shown[1].replace('"', "").split("|")) == kinds, (
            f"{block.where}: the kinds are {kinds}"
        )
