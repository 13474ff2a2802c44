"""The ``littleflow`` commands of a system on Redis: ``serve``, ``engine`` and
``worker`` run it; ``submit``, ``status``, ``list``, ``terminate``, ``resume``,
``delete``, ``archive``, ``restore``, ``send``, ``events``, ``workers`` and
``dead`` use it.

The commands register themselves on :data:`littleflow.cli.main` when this module
is imported (cli.py imports it last). The Redis modules are imported only when
one of these commands runs, so the other commands start as fast as before.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from .local import FLOW, compile_text, echo_failure, fail, json_text, load_tasks, main, read_flow, read_input
from ..durations import seconds
from ..engine import DEFAULT_LIMIT, DEFAULT_PARALLELISM
from ..state import failed_node
from ..values import loads

if TYPE_CHECKING:
    from ..redis.client import Client

#: The workflow states (as littleflow.redis.store.STATES, which this module does not import up front).
STATES = ("running", "finished", "failed", "terminated")
URL_VAR, PREFIX_VAR, HOME_VAR = "LITTLEFLOW_REDIS_URL", "LITTLEFLOW_PREFIX", "LITTLEFLOW_HOME"


def littleflow_home() -> Path:
    """Where ``littleflow serve`` keeps a private server's data: ``$LITTLEFLOW_HOME`` or ``~/.littleflow``."""
    return Path(os.environ.get(HOME_VAR) or os.path.expanduser("~/.littleflow"))


# -- where Redis is, and the one place its errors become one line ------------------------
class Target:
    """The Redis URL and key prefix a command works on."""

    def __init__(self, url: str | None, prefix: str) -> None:
        from ..redis.client import redis_url

        self.given = url or None  # from --redis or $LITTLEFLOW_REDIS_URL
        self.url = redis_url(self.given)
        self.prefix = prefix
        saved = littleflow_home() / "redis.url"
        self.hint = f" (the URL in {saved}: is `littleflow serve` running?)" \
            if self.given is None and saved.is_file() else ""
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
        fail(f"cannot reach Redis at {where}{target.hint}: {_reason(error)}")
    except redis.RedisError as error:
        fail(f"Redis at {where} refused: {_reason(error)}")
    except ValueError as error:  # the @flow options, an event name…
        fail(str(error))
    except BrokenPipeError:  # `littleflow events | head`: the reader is gone, which is fine
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except KeyboardInterrupt:
        click.echo("littleflow: interrupted", err=True)
        sys.exit(130)


def _reason(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def redis_command(name: str, *, json_flag: bool = True,
                  group: click.Group | None = None) -> Callable[[Callable[..., Any]], click.Command]:
    """Register a command on ``main`` (or ``group``) with ``--redis``, ``--prefix`` (and
    ``--json``); it is called with a :class:`Target` first, inside :func:`reported`."""
    def decorate(function: Callable[..., Any]) -> click.Command:
        @functools.wraps(function)
        def command(redis_option: str | None, prefix: str, **options: Any) -> None:
            target = Target(redis_option, prefix)
            with reported(target):
                function(target, **options)

        common = [click.Option(["--redis", "redis_option"], envvar=URL_VAR, metavar="URL",
                               help=f"redis://[user:password@]host:port/db [env {URL_VAR}; default: the URL "
                                    f"`littleflow serve` left in $LITTLEFLOW_HOME/redis.url, else "
                                    f"redis://127.0.0.1:6379/0]."),
                  click.Option(["--prefix"], envvar=PREFIX_VAR, default="lf", show_default=True, metavar="PREFIX",
                               help=f"The prefix of littleflow's keys [env {PREFIX_VAR}].")]
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


# -- running the system: engine, worker, serve --------------------------------------------
class Signals:
    """SIGINT and SIGTERM, trapped while in use: the first one sets ``received``;
    another one quits at once (after ``on_force``)."""

    def __init__(self, on_force: Callable[[], None] | None = None) -> None:
        self.received: int | None = None
        self.on_force = on_force
        self._saved: dict[int, Any] = {}

    def _handle(self, number: int, frame: Any) -> None:
        if self.received is not None:
            if self.on_force:
                self.on_force()
            os._exit(128 + number)
        self.received = number

    def __enter__(self) -> Signals:
        for number in (signal.SIGINT, signal.SIGTERM):
            self._saved[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for number, handler in self._saved.items():
            signal.signal(number, handler)


def run_until_signalled(who: str, signals: Signals, stop: threading.Event,
                        start: Callable[[], list[threading.Thread]]) -> None:
    """Start the threads of ``start()`` and wait for a signal (or for one of them to end or
    fail); then set ``stop`` and wait for them. A thread's error is raised here."""
    errors: list[BaseException] = []
    saved_hook = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is not None and not isinstance(args.exc_value, SystemExit):
            errors.append(args.exc_value)

    threading.excepthook = hook
    threads: list[threading.Thread] = []
    try:
        if signals.received is None:  # (a signal while it was getting ready: start nothing)
            threads = start()
        while signals.received is None and not errors and all(thread.is_alive() for thread in threads):
            time.sleep(0.1)
    finally:
        stop.set()
        if signals.received is not None:
            click.echo(f"littleflow {who}: stopping (finishing what runs; signal again to quit at once)", err=True)
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)
        threading.excepthook = saved_hook
    if errors:
        import redis

        error = errors[0]
        if isinstance(error, redis.RedisError):
            raise error
        fail(f"{who} stopped: {type(error).__name__}: {_reason(error)}", 1)


def threads_of(stop: threading.Event, *parts: Any) -> Callable[[], list[threading.Thread]]:
    def start() -> list[threading.Thread]:
        threads = [threading.Thread(target=part.run, args=(stop,), name=f"littleflow-{part.name}", daemon=True)
                   for part in parts]
        for thread in threads:
            thread.start()
        return threads

    return start


class _OneLine(logging.Formatter):
    """Log records on one line: an exception adds its type and message, not its traceback."""

    def formatException(self, exc_info: Any) -> str:  # logging names it so
        return ""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        if record.exc_info and record.exc_info[1] is not None:
            line += f": {type(record.exc_info[1]).__name__}: {_reason(record.exc_info[1])}"
        return line


def log_to_stderr(who: str, verbose: bool) -> None:
    """littleflow's log on standard error as ``littleflow WHO: message``: INFO and up with
    ``--verbose`` (tracebacks too), else WARNING and up, one line each."""
    handler = logging.StreamHandler(sys.stderr)
    form = f"littleflow {who}: %(message)s"
    handler.setFormatter(logging.Formatter(form) if verbose else _OneLine(form))
    logger = logging.getLogger("littleflow")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    logger.propagate = False


def task_registry(sources: tuple[str, ...]) -> Any:
    """One registry of the tasks of every ``--tasks`` source (and the ``@task`` ones they registered)."""
    from ..tasks import collect

    registry = collect([load_tasks(source) for source in sources])
    if sources and not registry.names():
        fail(f"no tasks in {', '.join(sources)}: it has no public functions and registers no @task")
    return registry


def served(info: dict[str, Any]) -> str:
    """What a worker serves (its entry in the workers hash), in words."""
    return ", ".join([*(info.get("tasks") or ()), *(f"{space}:*" for space in info.get("namespaces") or ())]) \
        or "nothing"


def ping(target: Target) -> None:
    """Reach Redis now, so that a wrong URL is one line before anything starts."""
    target.client().redis.ping()


TASKS = click.option("--tasks", "task_sources", metavar="MODULE_OR_FILE", multiple=True,
                     help="Where task functions are: a module name or a .py file (repeatable).")
CLAIM_IDLE = click.option("--claim-idle", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
                          metavar="SECONDS",
                          help="Take over the messages of a process silent this long (it is taken for dead).")
MAX_DELIVERIES = click.option("--max-deliveries", type=click.IntRange(min=1), default=5, show_default=True,
                              help="Deliveries of a message before it is set aside as a dead letter.")
VERBOSE = click.option("--verbose", "-v", is_flag=True, help="Log what happens, not only warnings.")


class Duration(click.ParamType):
    """A duration: seconds, or 90s, 30m, 12h, 7d, 1d12h (:func:`littleflow.durations.seconds`)."""

    name = "duration"

    def convert(self, value: Any, param: Any, ctx: Any) -> float:
        try:
            return seconds(value)
        except ValueError as error:
            self.fail(str(error), param, ctx)


RETENTION = click.option("--retention", type=Duration(), default="7d", show_default=True, metavar="DURATION",
                         help="Remove finished, failed and terminated workflows this long after they ended "
                              "(like 90s, 30m, 12h, 7d; 0 keeps them for ever).")
ARCHIVE_DIR = click.option("--archive-dir", type=click.Path(file_okay=False, writable=True, path_type=Path),
                           metavar="DIR", help="Write each workflow the retention removes to DIR/ID.json first "
                                               "(the archive `littleflow archive` prints; `restore` takes it).")
FILES = click.option("--files", "files", metavar="DIR", multiple=True, type=click.Path(exists=True, file_okay=False),
                     help="Let file resources read and write in this directory (repeatable; relative paths "
                          "resolve in the first) [default: no file resources].")
HTTP_ALLOW = click.option("--http-allow", "http_allow", metavar="HOST|CIDR", multiple=True,
                          help="Let HTTP resources and http: tasks reach this host name, address or network "
                               "beyond the public addresses (repeatable) [default: public addresses only].")


PARALLELISM = click.option("--parallelism", type=click.IntRange(min=1), default=DEFAULT_PARALLELISM,
                           show_default=True, metavar="N",
                           help="Task runs of one workflow queued or running at once, for flows that do not say "
                                "(@flow (- parallelism: N -)); the rest wait their turn in the workflow.")

PARTITIONS = click.option("--partitions", type=click.IntRange(min=1, max=1024), metavar="N",
                          help="Spread the workflows over N partitions (each in one hash slot of a Redis Cluster), "
                               "if this prefix is new; once fixed it cannot change [default: 8 on a cluster, "
                               "else 1].")


def share_option(text: str | None) -> tuple[int, int]:
    """``--share I/N`` as (I, N); a one-line error if it is not that."""
    if text is None:
        return 0, 1
    first, slash, second = text.partition("/")
    if not (slash and first.isdigit() and second.isdigit() and 0 <= int(first) < int(second)):
        fail(f"--share: I/N with 0 <= I < N (say 0/2 and 1/2 for two engines), not {text!r}")
    return int(first), int(second)


def fixed_partitions(store: Any, partitions: int | None) -> None:
    """Fix the number of partitions of a new prefix (or check it); a one-line error if it differs."""
    from ..redis.store import StoreError

    try:
        store.partitions(partitions)
    except StoreError as error:
        fail(str(error))


def archive_directory(path: Path | None) -> None:
    """Make the --archive-dir directory (for this user alone) if it is not there, or a one-line error."""
    if path is not None:
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as error:
            fail(f"cannot make the archive directory {path}: {error.strerror or error}")


def confinement(files: tuple[str, ...], http_allow: tuple[str, ...], owner: str) -> Any:
    """The :class:`~littleflow.confine.Confinement` of --files and --http-allow, or a one-line error."""
    from ..confine import Confinement

    try:
        return Confinement(files, http_allow, owner=owner)
    except ValueError as error:
        fail(str(error))


@redis_command("engine", json_flag=False)
@CLAIM_IDLE
@MAX_DELIVERIES
@PARALLELISM
@RETENTION
@ARCHIVE_DIR
@PARTITIONS
@click.option("--share", metavar="I/N", help="Serve the partitions whose number modulo N is I (run N engines, "
                                             "0/N to N-1/N, to split the work) [default: all].")
@VERBOSE
def engine_command(target: Target, claim_idle: float, max_deliveries: int, parallelism: int, retention: float,
                   archive_dir: Path | None, partitions: int | None, share: str | None, verbose: bool) -> None:
    """Run an engine: advance workflows as their tasks end, until SIGINT or SIGTERM.
    Run as many as you like."""
    from ..redis.engine import EngineProcess
    from ..redis.protocol import Keys
    from ..redis.store import Store
    from ..redis.connection import connect

    log_to_stderr("engine", verbose)
    archive_directory(archive_dir)
    with Signals() as signals:
        ping(target)
        stop = threading.Event()
        store = Store(connect(target.url), Keys(target.prefix))
        fixed_partitions(store, partitions)
        engine = EngineProcess(store, connect(target.url, decode=False), claim_idle=claim_idle,
                               max_deliveries=max_deliveries, parallelism=parallelism, retention=retention,
                               archive_dir=archive_dir, share=share_option(share))
        click.echo(f"littleflow engine: {engine.name} on {target.shown} (prefix {target.prefix})", err=True)
        run_until_signalled("engine", signals, stop, threads_of(stop, engine))
    click.echo(f"littleflow engine: stopped ({plural(engine.applied, 'task end')} applied)", err=True)


@redis_command("worker", json_flag=False)
@TASKS
@click.option("--builtins", is_flag=True, help="Run the built-in tasks too: wait:…, http:… and <resource> nodes.")
@click.option("--kubernetes", is_flag=True,
              help="Run k8s: tasks as Kubernetes Jobs (in-cluster configuration, else the kubeconfig).")
@click.option("--k8s-namespace", metavar="NS",
              help="Where Jobs run unless a task names its namespace [default: the pod's or the context's, "
                   "else default].")
@click.option("--k8s-cleanup", type=click.FloatRange(min=60), default=3600.0, show_default=True, metavar="SECONDS",
              help="Delete finished Jobs this long after they end (at least 60; Kubernetes' TTL is a day more).")
@click.option("--concurrency", type=click.IntRange(min=1), default=4, show_default=True, help="Tasks run at once.")
@FILES
@HTTP_ALLOW
@CLAIM_IDLE
@MAX_DELIVERIES
@VERBOSE
def worker_command(target: Target, task_sources: tuple[str, ...], builtins: bool, kubernetes: bool,
                   k8s_namespace: str | None, k8s_cleanup: float, concurrency: int, files: tuple[str, ...],
                   http_allow: tuple[str, ...], claim_idle: float, max_deliveries: int, verbose: bool) -> None:
    """Run a worker: run the tasks of --tasks (and, with --builtins, the built-in ones;
    with --kubernetes, k8s: tasks as Jobs) until SIGINT or SIGTERM. Run as many as you like."""
    if not task_sources and not builtins and not kubernetes:
        fail("a worker needs tasks: give --tasks MODULE_OR_FILE, --builtins or --kubernetes (or several)")
    from ..redis.builtins import BuiltinTasks
    from ..redis.protocol import Keys
    from ..redis.store import Store
    from ..redis.connection import connect
    from ..redis.worker import PythonTasks, Worker

    log_to_stderr("worker", verbose)
    confine = confinement(files, http_allow, "worker")
    registry = task_registry(task_sources) if task_sources else None
    executors: list[Any] = ([PythonTasks(registry)] if registry is not None else []) + \
        ([BuiltinTasks(confine=confine)] if builtins else [])
    jobs_in = ""
    if kubernetes:
        executors.append(kubernetes_tasks(k8s_namespace, k8s_cleanup))
        jobs_in = f"; Jobs in namespace {executors[-1].namespace}"
    with Signals() as signals:
        ping(target)
        stop = threading.Event()
        worker = Worker(Store(connect(target.url), Keys(target.prefix)), connect(target.url, decode=False),
                        executors, concurrency=concurrency, claim_idle=claim_idle, max_deliveries=max_deliveries)
        click.echo(f"littleflow worker: {worker.name} on {target.shown} (prefix {target.prefix}) serving "
                   f"{worker.serving()}{jobs_in}; concurrency {concurrency}", err=True)
        run_until_signalled("worker", signals, stop, threads_of(stop, worker))
    click.echo(f"littleflow worker: stopped ({plural(worker.done, 'task')} run)", err=True)


def kubernetes_tasks(namespace: str | None, cleanup: float) -> Any:
    """The ``k8s:`` executor, connected to the cluster; one error line if it cannot be."""
    try:
        from ..k8s.executor import KubernetesTasks, connect
    except ImportError:
        fail("--kubernetes needs the Kubernetes client: pip install 'littleflow[kubernetes]'")
    try:
        api, namespace = connect(namespace)
    except ValueError as error:
        fail(str(error))
    return KubernetesTasks(api, namespace, cleanup=cleanup)


@redis_command("serve", json_flag=False)
@TASKS
@click.option("--concurrency", type=click.IntRange(min=1), default=4, show_default=True,
              help="Python tasks run at once.")
@click.option("--data", "data_dir", metavar="DIR", type=click.Path(file_okay=False, path_type=Path),
              help="Where the private server (without a Redis URL) keeps its data, and the API its token "
                   "[default: $LITTLEFLOW_HOME, else ~/.littleflow].")
@click.option("--port", type=click.IntRange(1, 65535), help="Without a Redis URL: the private server's port, "
                                                             "kept in DATA/redis.port for the next start "
                                                             "[default: the kept one, else a free one].")
@click.option("--api", "api_address", metavar="HOST:PORT",
              help="Serve the HTTP API here too, e.g. 127.0.0.1:8080.")
@click.option("--api-tokens", "tokens_file", metavar="FILE",
              help="Bearer tokens of the API: read:TOKEN or admin:TOKEN entries, one a line "
                   "(also from $LITTLEFLOW_API_TOKENS, comma-separated) [default: an admin token kept in "
                   "DATA/api.token, printed in the console's address].")
@click.option("--api-no-auth", "no_auth", is_flag=True,
              help="Serve the API without tokens: anyone who can reach it may run anything. Loopback only.")
@click.option("--api-host", "api_hosts", metavar="NAME", multiple=True,
              help="A name the API is reached by (the Host header), beside its address and the loopback "
                   "names; needed behind a proxy or an Ingress (repeatable).")
@click.option("--api-cors", "cors", metavar="ORIGIN", multiple=True,
              help="Let browser pages of this origin call the API (repeatable; none by default).")
@click.option("--api-max-nodes", "max_nodes", type=click.IntRange(min=2), default=20_000, show_default=True,
              help="Refuse (422) a flow sent to the API that would have more nodes than this once its named "
                   "subflows are expanded (counted before they are).")
@click.option("--api-only", is_flag=True,
              help="Serve the HTTP API alone: no engine, no built-in or Python tasks (they run in "
                   "`littleflow engine` and `littleflow worker` processes elsewhere). Needs --api and a Redis URL.")
@FILES
@HTTP_ALLOW
@CLAIM_IDLE
@PARALLELISM
@RETENTION
@ARCHIVE_DIR
@PARTITIONS
@VERBOSE
def serve_command(target: Target, task_sources: tuple[str, ...], concurrency: int, data_dir: Path | None,
                  port: int | None, api_address: str | None, tokens_file: str | None, no_auth: bool,
                  api_hosts: tuple[str, ...], cors: tuple[str, ...], max_nodes: int, api_only: bool, claim_idle: float,
                  verbose: bool, files: tuple[str, ...], http_allow: tuple[str, ...], parallelism: int,
                  retention: float, archive_dir: Path | None, partitions: int | None) -> None:
    """Run a whole system here: an engine, the built-in tasks and the Python tasks of
    --tasks, until SIGINT or SIGTERM. Without a Redis URL (--redis or
    $LITTLEFLOW_REDIS_URL) it starts a private Redis server on 127.0.0.1 and leaves its URL
    in DIR/redis.url, where the other commands look for it."""
    from ..redis.serve import Services

    if target.given and (port is not None or (data_dir is not None and api_address is None)):
        fail("--port and --data are for a private server (--data for the API's token too); with a Redis URL "
             "and no --api there is none")
    if api_only and (api_address is None or not target.given or task_sources):
        fail("--api-only serves the API of a system running elsewhere: give --api HOST:PORT and a Redis URL "
             "(--redis or $LITTLEFLOW_REDIS_URL), and no --tasks")
    log_to_stderr("serve", verbose)
    archive_directory(archive_dir)
    confine = confinement(files, http_allow, "server")
    registry = task_registry(task_sources) if task_sources else None
    with contextlib.ExitStack() as cleanup:
        signals = cleanup.enter_context(Signals())
        if not target.given:
            target.url = private(data_dir or littleflow_home(), port, cleanup, signals)
            target.hint = ""
        ping(target)
        if target.given:
            click.echo(f"littleflow: serving on {target.shown} (prefix {target.prefix})", err=True)
        services = Services(target.url, prefix=target.prefix, tasks=registry, concurrency=concurrency,
                            engine=not api_only, builtins=not api_only, claim_idle=claim_idle, confine=confine,
                            parallelism=parallelism, retention=retention, archive_dir=archive_dir)
        fixed_partitions(services.store, partitions)
        names = f": {', '.join(sorted(registry.names()))}" if registry is not None else ""
        click.echo("littleflow: the API alone (no engine, no tasks)" if api_only else
                   f"littleflow: an engine, the built-in tasks and {len(registry.names()) if registry else 0} "
                   f"Python tasks{names}", err=True)
        start = lambda: services.start().threads  # noqa: E731
        if api_address is not None:
            api, token = api_server(target, api_address, tokens_file, no_auth, list(api_hosts), list(cors),
                                    data_dir or littleflow_home(), max_nodes)
            fragment = f"#token={token}" if token else ""
            click.echo(f"littleflow: the console on http://{shown_address(api.host, api.port)}/console/{fragment}, "
                       "the API beside it (/docs, /openapi.json)", err=True)
            start = lambda: services.start().threads + threads_of(services.stop_event, api)()  # noqa: E731
        run_until_signalled("serve", signals, services.stop_event, start)
    click.echo("littleflow: stopped", err=True)


def api_server(target: Target, address: str, tokens_file: str | None, no_auth: bool, names: list[str],
               cors: list[str], data: Path, max_nodes: int = 20_000) -> tuple[Any, str | None]:
    """The API server for ``--api HOST:PORT``, and the token it made (kept in ``data``) when
    none is configured; or a one-line error."""
    from ..api.auth import TOKEN_FILE, Tokens, ensure_local_token
    from ..api.server import ApiServer

    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        fail(f"--api wants HOST:PORT, like 127.0.0.1:8080, not {address!r}")
    try:
        tokens, made = Tokens.configured(tokens_file), None
        if no_auth and tokens:
            fail("--api-no-auth turns tokens off: give no --api-tokens and no $LITTLEFLOW_API_TOKENS with it")
        if not no_auth and not tokens:
            data = data.expanduser().absolute()
            try:
                made = ensure_local_token(data)
            except OSError as error:
                fail(f"cannot keep the API's token in {data / TOKEN_FILE}: {_reason(error)}")
            tokens = Tokens([("admin", made)])
        return ApiServer(target.url, target.prefix, host.strip("[]"), int(port), tokens, cors, names,
                         no_auth, max_nodes), made
    except ValueError as error:
        fail(str(error))


def shown_address(host: str, port: int) -> str:
    """``host:port`` as a browser on this machine reaches it (a wildcard address by 127.0.0.1)."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def private(data: Path, port: int | None, cleanup: contextlib.ExitStack, signals: Signals) -> str:
    """Start a private Redis server keeping its data in ``data``; leave its URL in
    ``data/redis.url`` until ``cleanup`` closes (which stops the server). Returns the URL."""
    import redis

    from ..redis.serve import private_server
    from ..private import private_file
    from ..redis.server import ServerNotFound
    from ..redis.connection import safe_url

    data = data.expanduser().absolute()
    saved = data / "redis.url"
    with contextlib.suppress(OSError, UnicodeDecodeError):
        url = saved.read_text(encoding="utf-8").strip()
        with contextlib.suppress(redis.RedisError, ValueError), redis.Redis.from_url(
                url, socket_connect_timeout=1, socket_timeout=1) as other:
            other.ping()
            fail(f"a server answers at {url}, the URL in {saved}: another `littleflow serve` uses {data}; "
                 f"stop it, or give this one --data DIR")
    try:
        server = private_server(data, port)
    except ServerNotFound as error:
        fail(f"no Redis URL given, and no server to start a private one: {error}")
    except (RuntimeError, OSError) as error:
        fail(f"cannot start a private Redis server: {_reason(error)}")
    cleanup.callback(server.stop)
    try:
        private_file(saved, server.url + "\n")  # it holds the password
    except OSError as error:
        fail(f"cannot write {saved}: {error.strerror}")

    def forget() -> None:
        with contextlib.suppress(OSError):
            if saved.read_text(encoding="utf-8").strip() == server.url:
                saved.unlink()

    cleanup.callback(forget)

    def force() -> None:  # a second signal: no waiting for threads, but no server or redis.url left behind
        forget()
        server.stop()

    signals.on_force = force
    click.echo(f"littleflow: serving on {safe_url(server.url)} (data in {data}; its URL with the password in "
               f"{saved}, where the other commands look)", err=True)
    click.echo(f"littleflow: in another terminal: export {URL_VAR}={server.url}", err=True)
    return server.url


# -- running workflows -------------------------------------------------------------------
@redis_command("submit")
@FLOW
@click.option("--input", "input_text", metavar="JSON|@FILE|-", help="The flow's input (default {}).")
@click.option("--limit", type=click.IntRange(min=1), default=DEFAULT_LIMIT, show_default=True,
              help="Times one node may run before the flow fails (stops mistaken cycles).")
@click.option("--key", metavar="KEY", help="An idempotency key (1-200 printable ASCII characters): submitted "
              "again with it within 24 h, the same flow and input start nothing; the first workflow's id is printed.")
@click.option("--wait", is_flag=True, help="Wait for the workflow to end, then print its output as `run` does.")
@click.option("--quiet", "-q", is_flag=True, help="With --wait: do not print the id on standard error.")
@click.option("--require-workers", is_flag=True,
              help="Submit nothing (and exit 2) if a task of the flow has no live worker to run it.")
def submit_command(target: Target, flow: str, input_text: str | None, limit: int, key: str | None, wait: bool,
                   quiet: bool, require_workers: bool, as_json: bool) -> None:
    """Start a workflow of FLOW and print its id. With --wait, wait for it to end and
    print its output (exit 0), or say why it failed (exit 1). Tasks that no live worker
    serves are named on standard error (they wait until one comes).

    With --json: {"id": …}, or with --wait the status document of the ended workflow.
    """
    text, name = read_flow(flow)
    compiled = compile_text(text, name)
    value = read_input(input_text)
    base = str(Path(flow).resolve().parent) if flow != "-" else os.getcwd()
    client = target.client()
    unserved = client.unserved(compiled)
    if unserved and require_workers:
        fail(f"no live worker serves {_tasks(unserved)}; nothing submitted")
    id, new = client.submit_once(compiled, value, limit=limit, base=base, text=text, key=key)
    if unserved and new and not quiet:
        click.echo(f"littleflow: no live worker serves {_tasks(unserved)}; its runs wait until one does", err=True)
    if not new and not quiet:
        click.echo(f"littleflow: workflow {id} was submitted with key {key!r} before; nothing new started", err=True)
    if not wait:
        echo_json({"id": id}) if as_json else click.echo(id)
        return
    if not quiet:
        click.echo(f"littleflow: submitted {id}", err=True)
    try:
        try:
            document = client.wait(id, timeout=5)
        except TimeoutError:
            for hint in client.stalled(id):
                click.echo(f"littleflow: still waiting: {hint}", err=True)
            document = client.wait(id)
    except KeyboardInterrupt:
        click.echo(f"littleflow: interrupted; workflow {id} goes on (littleflow status {id})", err=True)
        sys.exit(130)
    report_end(document, as_json)


def _tasks(names: list[str]) -> str:
    return f"task{'s' if len(names) > 1 else ''} {', '.join(names)}"


def report_end(document: dict[str, Any], as_json: bool) -> NoReturn:
    """Report how a workflow ended, as ``littleflow run`` does, and exit 0 if it finished, else 1."""
    state, id = document["state"], document["id"]
    if as_json:
        echo_json(document)
    elif state == "finished":
        click.echo(json_text(document["output"]))
    elif state == "failed" and document.get("error"):
        echo_failure(document["error"])
        click.echo(f"  littleflow resume {id} runs it again from there", err=True)
    else:
        click.echo(f"littleflow: workflow {id} {state}", err=True)
    sys.exit(0 if state == "finished" else 1)


# -- looking at workflows --------------------------------------------------------------------
def when(epoch: float | None, day: bool = True) -> str:
    if not epoch:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S" if day else "%H:%M:%S", time.localtime(epoch))


def took(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return ""
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def short(value: Any, width: int = 100) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"


def table(headers: list[str], rows: list[list[Any]], right: tuple[int, ...] = ()) -> str:
    """Plain text columns, two spaces apart; the columns in ``right`` aligned right."""
    cells = [headers, *[["" if cell is None else str(cell) for cell in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        parts = [cell.rjust(width) if i in right else cell.ljust(width)
                 for i, (cell, width) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def readable(document: dict[str, Any]) -> str:
    """The status document as a page of text: the workflow, then one row per node."""
    now = time.time()
    lines = [f"workflow  {document['id']}", f"flow      {document['name'] or '(no name)'}",
             f"state     {document['state']}", f"created   {when(document['created'])}"]
    if document["updated"]:
        lines.append(f"updated   {when(document['updated'])} ({took(document['updated'] - document['created'])} "
                     f"after)")
    if document["state"] == "finished":
        lines.append(f"output    {short(document['output'], 200)}")
    if document.get("error"):
        failure = document["error"]
        lines.append(f"error     {failed_node(failure)}: {short(failure['error'], 200)}")
    rows = []
    for node in document["nodes"]:
        started, ended = node.get("started"), node.get("ended")
        duration = (ended if ended else now if node["status"] == "running" else None)
        rows.append([node["id"], node["label"], node["status"], node.get("attempt") or "",
                     when(started, day=False),
                     took(duration - started) if started and duration else "",
                     short(node.get("error") or node.get("note") or "", 80)])
    lines += ["", table(["node", "label", "status", "attempt", "started", "took", "error or note"], rows, (0, 3))]
    return "\n".join(lines)


@redis_command("status")
@click.argument("id")
def status_command(target: Target, id: str, as_json: bool) -> None:
    """Show workflow ID: its state and times, and every node's status."""
    document = target.client().status(id)
    echo_json(document) if as_json else click.echo(readable(document))


@redis_command("list")
@click.option("--state", type=click.Choice(STATES), help="Only workflows in this state.")
@click.option("--name", help="Only workflows of the flow of this name (@flow NAME).")
@click.option("--search", metavar="PREFIX",
              help="Only workflows whose id or flow name starts with PREFIX (case-sensitive).")
@click.option("--schedule", metavar="NAME", help="Only workflows started by schedule NAME (with --state alone).")
def list_command(target: Target, state: str | None, name: str | None, search: str | None, schedule: str | None,
                 as_json: bool) -> None:
    """List the workflows, oldest first."""
    found = target.client().list(state=state, name=name, search=search, schedule=schedule)
    if as_json:
        echo_json(found)
        return
    if not found:
        click.echo("littleflow: no workflows" + (" in that state" if state else "") + (" of that name" if name else "")
                   + (f" matching {search!r}" if search else ""), err=True)
        return
    click.echo(table(["id", "state", "flow", "created", "took"],
                     [[s["id"], s["state"], s["name"] or "", when(s["created"]),
                       took((s["updated"] or 0) - (s["created"] or 0)) if s["state"] != "running" else ""]
                      for s in found]))


@redis_command("logs")
@click.argument("id")
@click.option("--node", "-n", type=int, metavar="N", help="Only the runs of node N (its id, as `status` shows it).")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until the workflow is no longer running.")
def logs_command(target: Target, id: str, node: int | None, follow: bool, as_json: bool) -> None:
    """Print what the task runs of workflow ID wrote (stdout, stderr, logging): the last lines
    of each run kept (see the README), under a header line per run."""
    client = target.client()
    found = client.logs(id, node)
    if as_json and not follow:
        echo_json(found)
        return
    shown: dict[str, tuple[int, int]] = {}  # task -> (seq, lines shown)
    while True:
        for run in found["runs"]:
            seen_seq, seen = shown.get(run["task"], (None, 0))
            lines, dropped = run["lines"], run["dropped"]
            if seen_seq != run["seq"]:
                seen = 0
            total = dropped + len(lines)
            if total <= seen:
                continue
            if as_json:
                echo_json({**run, "lines": lines[max(0, seen - dropped):]})
            else:
                if seen == 0:
                    item = f" item {run['item']}" if run["item"] is not None else ""
                    click.echo(f"── node {run['node']} {run['name'] or ''}{item} (attempt {run['attempt']}, "
                               f"{run['status']})"
                               + (f": {plural(dropped, 'earlier line')} not kept" if dropped else ""))
                for line in lines[max(0, seen - dropped):]:
                    click.echo(line)
            shown[run["task"]] = (run["seq"], total)
        if not follow or found["state"] != "running":
            return
        time.sleep(0.5)
        found = client.logs(id, node)


@redis_command("terminate")
@click.argument("id")
def terminate_command(target: Target, id: str, as_json: bool) -> None:
    """Stop workflow ID: nothing new starts, and its running tasks are told to cancel."""
    document = target.client().terminate(id)
    echo_json(document) if as_json else click.echo(f"{id} {document['state']}")


@redis_command("resume")
@click.argument("id")
def resume_command(target: Target, id: str, as_json: bool) -> None:
    """Continue a failed or terminated workflow: what failed or was cut short runs again."""
    document = target.client().resume(id)
    echo_json(document) if as_json else click.echo(f"{id} {document['state']}")


@redis_command("delete")
@click.argument("id")
def delete_command(target: Target, id: str, as_json: bool) -> None:
    """Forget workflow ID (terminate it first if it runs; `archive` keeps a copy)."""
    target.client().delete(id)
    echo_json({"id": id, "deleted": True}) if as_json else click.echo(f"{id} deleted")


@redis_command("archive", json_flag=False)
@click.argument("id")
@click.option("--output", "-o", "path", metavar="FILE", help="Write it here rather than on standard output.")
def archive_command(target: Target, id: str, path: str | None) -> None:
    """Print everything about workflow ID as JSON: flow, state, task runs and log
    (`littleflow restore` brings it back)."""
    text = json.dumps(target.client().archive(id), ensure_ascii=False, indent=1)
    if path is None:
        click.echo(text)
        return
    try:
        Path(path).write_text(text + "\n", encoding="utf-8")
    except OSError as error:
        fail(f"cannot write {path}: {error.strerror}")


@redis_command("restore")
@click.argument("path", metavar="FILE")
@click.option("--replace", is_flag=True, help="Overwrite a workflow of the same id.")
def restore_command(target: Target, path: str, replace: bool, as_json: bool) -> None:
    """Bring back an archived workflow (FILE, or - for standard input) under its id, and print
    the id. A running one goes on: its running tasks are sent again."""
    text, name = read_flow(path)
    try:
        archive = loads(text)
    except ValueError as error:
        fail(f"cannot read an archive from {name}: not JSON: {' '.join(str(error).split())}")
    if not isinstance(archive, dict):
        fail(f"cannot read an archive from {name}: not a littleflow archive")
    client = target.client()
    id = client.restore(archive, replace=replace)
    echo_json(client.status(id)) if as_json else click.echo(id)


# -- events, workers, dead letters ------------------------------------------------------------
@redis_command("send")
@click.argument("event")
@click.option("--data", "data_text", metavar="JSON|@FILE|-", help="The event's data (default {}).")
def send_command(target: Target, event: str, data_text: str | None, as_json: bool) -> None:
    """Send EVENT: the wait:event tasks waiting for it (whose match fits the data) end,
    with the data as their output."""
    data = read_input(data_text, "--data")
    ended = target.client().send(event, data)
    if as_json:
        echo_json({"event": event, "ended": ended})
    else:
        click.echo(f"{plural(ended, 'task')} woken", err=True)



@redis_command("events")
@click.option("--follow", "-f", is_flag=True, help="Keep waiting for more (until Ctrl-C or SIGTERM).")
def events_command(target: Target, follow: bool, as_json: bool) -> None:
    """Print the events sent and the workflows' state changes, oldest first: one line each."""
    client = target.client()
    client.redis.ping()

    def quit_quietly(number: int, frame: Any) -> None:
        raise _Stop

    saved = {number: signal.signal(number, quit_quietly) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        for entry in client.events(follow=follow):
            if entry is None:  # a quiet second
                continue
            moment = entry["time"]
            if as_json:
                echo_json(entry)
                continue
            fields = " ".join(f"{key}={value if isinstance(value, str) else short(value, 2000)}"
                              for key, value in entry.items() if key not in ("id", "kind", "time") and value != "")
            click.echo(f"{when(moment)}.{int(moment * 1000) % 1000:03d}  {entry.get('kind', '?'):<8}  {fields}")
    except _Stop:
        pass
    finally:
        for number, handler in saved.items():
            signal.signal(number, handler)


class _Stop(Exception):
    """Raised by the signal handler of ``events --follow``."""


@redis_command("workers")
def workers_command(target: Target, as_json: bool) -> None:
    """List the workers that said what they serve: tasks, namespaces, concurrency, when last seen.
    A worker says so every 10 s while it runs."""
    client = target.client()
    found = []
    for name, text in sorted(client.redis.hgetall(client.keys.workers).items()):
        try:
            info = json.loads(text)
        except ValueError:
            info = {}
        found.append({"name": name, **(info if isinstance(info, dict) else {})})
    if as_json:
        echo_json(found)
        return
    if not found:
        click.echo("littleflow: no workers", err=True)
        return
    now = time.time()
    click.echo(table(["worker", "serves", "concurrency", "seen"],
                     [[w["name"], served(w), w.get("concurrency"),
                       f"{took(now - w['seen'])} ago" if isinstance(w.get("seen"), (int, float)) else "?"]
                      for w in found], (2,)))


@redis_command("dead")
@click.option("--count", type=click.IntRange(min=1), default=100, show_default=True, help="How many, newest first.")
def dead_command(target: Target, count: int, as_json: bool) -> None:
    """List the dead letters: messages set aside because they could not be handled, newest first."""
    found = target.client().dead(count)
    if as_json:
        echo_json(found)
        return
    if not found:
        click.echo("littleflow: no dead letters", err=True)
        return
    rows = []
    for entry in found:
        try:
            moment = when(float(entry.get("time", "")))
        except ValueError:
            moment = ""
        rows.append([moment, entry.get("stream", ""), entry.get("field:workflow", ""),
                     entry.get("field:task", ""), short(entry.get("reason", ""), 100)])
    click.echo(table(["time", "stream", "workflow", "task", "reason"], rows))


from . import schedules  # noqa: E402,F401 - importing it registers `littleflow schedule …`
