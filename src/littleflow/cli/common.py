"""The ``littleflow`` group and what its commands share: one-line errors (:func:`fail`),
reading flows, inputs and task modules, and the ``--redis``/``--prefix`` options of the
commands of a system on Redis (:func:`redis_command`; the Redis modules are imported only
when such a command runs).

The command modules (local, system, workflows, schedules) import this one alone;
``littleflow.cli`` imports them once the group exists, which registers their commands.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import inspect
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from ..engine import DEFAULT_LIMIT
from ..private import littleflow_home
from ..redis.protocol import PREFIX  # (key names alone: no Redis client, no worker)
from ..values import brief

if TYPE_CHECKING:
    from ..flow import Flow
    from ..redis.client import Client


FLOW = click.argument("flow", metavar="FLOW")
INPUT = click.option("--input", "input_text", metavar="JSON|@FILE|-", help="The flow's input (default {}).")
LIMIT = click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=DEFAULT_LIMIT,
    show_default=True,
    help="Times one node may run before the flow fails (stops mistaken cycles).",
)


def read_flow(path: str) -> tuple[str, str]:
    """The text of ``path`` (``-`` for standard input) and the name to show for it."""
    if path == "-":
        return sys.stdin.read(), "<stdin>"
    try:
        with open(path, encoding="utf-8-sig") as file:
            return file.read(), path
    except FileNotFoundError:
        fail(f"cannot read {path}: no such file")
    except IsADirectoryError:
        fail(f"cannot read {path}: it is a directory")
    except UnicodeDecodeError as error:
        fail(f"cannot read {path}: not UTF-8 text (byte {error.start})")
    except OSError as error:
        fail(f"cannot read {path}: {error.strerror}")


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one error line and exit."""
    click.echo(f"littleflow: error: {message}", err=True)
    sys.exit(code)


def load(path: str) -> Flow:
    """Read and compile a flow, or report the error in it and exit 2."""
    return compile_text(*read_flow(path))


def compile_text(text: str, name: str) -> Flow:
    """Compile and validate flow text (its @flow options too), or report the error in it and exit 2."""
    from ..check import compile_checked
    from ..errors import FlowError

    try:
        return compile_checked(text, name)
    except FlowError as error:
        click.echo(error.format(), err=True)
        sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """littleflow: a little workflow language and engine.

    FLOW is a file of flow text, or - to read it from standard input.
    """
    from .. import tracing

    try:
        tracing.configure()  # (OpenTelemetry, when OTEL_TRACES_EXPORTER says so)
    except ValueError as error:
        fail(str(error))


def echo_failure(failure: dict[str, Any]) -> None:
    """Say on standard error which task failed, where, with what error and input."""
    from ..state import failed_node

    click.echo(f"littleflow: flow failed: {failed_node(failure)}: {failure['error']}", err=True)
    click.echo(f"  input: {brief(failure.get('input'), 2000)}", err=True)


def json_text(value: Any) -> str:
    """``value`` as one line of JSON (text that is not valid Unicode is escaped)."""
    try:
        text = json.dumps(value, ensure_ascii=False)
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return json.dumps(value)
    except ValueError as error:  # e.g. an integer too long to write
        fail(f"the flow's output cannot be written as JSON: {error}", 1)


def load_tasks(source: str) -> dict[str, Any]:
    """The public functions of a module (by name) or of a Python file; importing
    it also fills the ``@task`` registry."""
    path = Path(source).resolve() if source.endswith(".py") or os.sep in source else None
    if path is not None and not path.is_file():  # (fail's SystemExit must not reach the except below)
        fail(
            f"cannot load tasks from {source}: " + ("it is a directory" if path.is_dir() else "no such file")
        )
    try:
        if path is not None:
            spec = importlib.util.spec_from_file_location(f"littleflow_tasks_{path.stem}", path)
            module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
            sys.modules[spec.name] = module  # type: ignore[union-attr]
            sys.path.insert(0, str(path.parent))
            spec.loader.exec_module(module)  # type: ignore[union-attr]
        else:
            sys.path.insert(0, os.getcwd())
            module = importlib.import_module(source)
    except (Exception, SystemExit) as error:  # noqa: BLE001 - any import failure is the user's to fix
        fail(f"cannot load tasks from {source}: {type(error).__name__}: {error}")
    return {
        name: value
        for name, value in vars(module).items()
        if not name.startswith("_") and inspect.isfunction(value) and value.__module__ == module.__name__
    }


def read_input(text: str | None, option: str = "--input") -> Any:
    """The flow input from ``--input`` (or ``option``): JSON text, ``@FILE`` (JSON or YAML)
    or ``-`` (standard input)."""
    from ..resources import parse
    from ..values import check_value

    if text is None:
        return None
    kind, where = "json", option
    if text == "-":
        text, where = sys.stdin.read(), "standard input"
    elif text.startswith("@"):
        path = text[1:]
        kind = "yaml" if path.endswith((".yaml", ".yml")) else "json"
        where = path
        try:
            text = Path(path).read_text(encoding="utf-8-sig")
        except OSError as error:
            fail(f"cannot read input file {path}: {error.strerror}")
        except UnicodeDecodeError:
            fail(f"cannot read input file {path}: not UTF-8 text")
    try:
        value = parse(text, kind)
        check_value(value, "the value")
        return value
    except ValueError as error:  # (UnicodeDecodeError is one too)
        fail(f"bad input in {where}: {error}")


URL_VAR, PREFIX_VAR = "LITTLEFLOW_REDIS_URL", "LITTLEFLOW_PREFIX"


# -- where Redis is, and the one place its errors become one line ------------------------
class Target:
    """The Redis URL and key prefix a command works on."""

    def __init__(self, url: str | None, prefix: str) -> None:
        from ..redis.client import redis_url

        self.given = url or None  # from --redis or $LITTLEFLOW_REDIS_URL
        self.url = redis_url(self.given)
        self.prefix = prefix
        saved = littleflow_home() / "redis.url"
        self.hint = (
            f" (the URL in {saved}: is `littleflow serve` running?)"
            if self.given is None and saved.is_file()
            else ""
        )
        self._client: Client | None = None

    @property
    def shown(self) -> str:
        """The URL without its password."""
        from ..redis.connection import safe_url

        return safe_url(self.url)

    def check(self) -> None:
        """Refuse a URL redis-py cannot use, naming it without its password."""
        from redis.connection import parse_url

        try:
            parse_url(self.url)
        except ValueError as error:
            fail(f"bad Redis URL {self.shown}{self.hint}: {error}")

    def client(self) -> Client:
        if self._client is None:
            from ..redis.client import Client

            self.check()
            self._client = Client(self.url, self.prefix)
        return self._client


@contextlib.contextmanager
def reported(target: Target) -> Iterator[None]:
    """Turn every error a Redis command meets into one line on standard error and an exit status."""
    import redis

    from ..redis.store import StoreError

    where = target.shown
    try:
        yield
    except StoreError as error:
        fail(str(error))
    except (redis.ConnectionError, redis.TimeoutError) as error:  # AuthenticationError is a ConnectionError
        fail(f"cannot reach Redis at {where}{target.hint}: {reason(error)}")
    except redis.RedisError as error:
        fail(f"Redis at {where} refused: {reason(error)}")
    except ValueError as error:  # the @flow options, an event name…
        fail(str(error))
    except BrokenPipeError:  # `littleflow events | head`: the reader is gone, which is fine
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except KeyboardInterrupt:
        click.echo("littleflow: interrupted", err=True)
        sys.exit(130)


def reason(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def redis_command(
    name: str, *, json_flag: bool = True, group: click.Group | None = None
) -> Callable[[Callable[..., Any]], click.Command]:
    """Register a command on ``main`` (or ``group``) with ``--redis``, ``--prefix`` (and
    ``--json``); it is called with a :class:`Target` first, inside :func:`reported`."""

    def decorate(function: Callable[..., Any]) -> click.Command:
        @functools.wraps(function)
        def command(redis_option: str | None, prefix: str, **options: Any) -> None:
            target = Target(redis_option, prefix)
            with reported(target):
                function(target, **options)

        common = [
            click.Option(
                ["--redis", "redis_option"],
                envvar=URL_VAR,
                metavar="URL",
                help=f"redis://[user:password@]host:port/db [env {URL_VAR}; default: the URL "
                f"`littleflow serve` left in $LITTLEFLOW_HOME/redis.url, else "
                f"redis://127.0.0.1:6379/0].",
            ),
            click.Option(
                ["--prefix"],
                envvar=PREFIX_VAR,
                default=PREFIX,
                show_default=True,
                metavar="PREFIX",
                help=f"The prefix of littleflow's keys [env {PREFIX_VAR}].",
            ),
        ]
        if json_flag:
            common.append(click.Option(["--json", "as_json"], is_flag=True, help="Print JSON."))
        # click lists the parameters of a function's decorators bottom up: these come last
        command.__click_params__ = [*reversed(common), *getattr(function, "__click_params__", [])]  # type: ignore
        return (group or main).command(name)(command)

    return decorate


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' * (count != 1)}"


def echo_json(value: Any) -> None:
    click.echo(json_text(value))


def when(epoch: float | None, day: bool = True) -> str:
    if not epoch:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S" if day else "%H:%M:%S", time.localtime(epoch))


def table(headers: list[str], rows: list[list[Any]], right: tuple[int, ...] = ()) -> str:
    """Plain text columns, two spaces apart; the columns in ``right`` aligned right."""
    cells = [headers, *[["" if cell is None else str(cell) for cell in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        parts = [
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)
