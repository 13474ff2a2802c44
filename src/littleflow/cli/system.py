"""The commands that run a system on Redis: ``serve``, ``engine`` and ``worker``, with
their signals, log and options. The Redis modules are imported only when one runs."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..durations import seconds
from ..engine import DEFAULT_PARALLELISM
from ..private import littleflow_home
from .common import URL_VAR, Target, fail, load_tasks, plural, reason, redis_command


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


def run_until_signalled(
    who: str, signals: Signals, stop: threading.Event, start: Callable[[], list[threading.Thread]]
) -> None:
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
            click.echo(
                f"littleflow {who}: stopping (finishing what runs; signal again to quit at once)", err=True
            )
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)
        threading.excepthook = saved_hook
    if errors:
        import redis

        error = errors[0]
        if isinstance(error, redis.RedisError):
            raise error
        fail(f"{who} stopped: {type(error).__name__}: {reason(error)}", 1)


def threads_of(stop: threading.Event, *parts: Any) -> Callable[[], list[threading.Thread]]:
    def start() -> list[threading.Thread]:
        threads = [
            threading.Thread(target=part.run, args=(stop,), name=f"littleflow-{part.name}", daemon=True)
            for part in parts
        ]
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
            line += f": {type(record.exc_info[1]).__name__}: {reason(record.exc_info[1])}"
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


def ping(target: Target) -> None:
    """Reach Redis now, so that a wrong URL is one line before anything starts."""
    target.client().redis.ping()


TASKS = click.option(
    "--tasks",
    "task_sources",
    metavar="MODULE_OR_FILE",
    multiple=True,
    help="Where task functions are: a module name or a .py file (repeatable).",
)


CLAIM_IDLE = click.option(
    "--claim-idle",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="Take over the messages of a process silent this long (it is taken for dead).",
)


MAX_DELIVERIES = click.option(
    "--max-deliveries",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Deliveries of a message before it is set aside as a dead letter.",
)


VERBOSE = click.option("--verbose", "-v", is_flag=True, help="Log what happens, not only warnings.")


class Duration(click.ParamType):
    """A duration: seconds, or 90s, 30m, 12h, 7d, 1d12h (:func:`littleflow.durations.seconds`)."""

    name = "duration"

    def convert(self, value: Any, param: Any, ctx: Any) -> float:
        try:
            return seconds(value)
        except ValueError as error:
            self.fail(str(error), param, ctx)


RETENTION = click.option(
    "--retention",
    type=Duration(),
    default="7d",
    show_default=True,
    metavar="DURATION",
    help="Remove finished, failed and terminated workflows this long after they ended "
    "(like 90s, 30m, 12h, 7d; 0 keeps them for ever).",
)


ARCHIVE_DIR = click.option(
    "--archive-dir",
    type=click.Path(file_okay=False, writable=True, path_type=Path),
    metavar="DIR",
    help="Write each workflow the retention removes to DIR/ID.json first "
    "(the archive `littleflow archive` prints; `restore` takes it).",
)


FILES = click.option(
    "--files",
    "files",
    metavar="DIR",
    multiple=True,
    type=click.Path(exists=True, file_okay=False),
    help="Let file resources read and write in this directory (repeatable; relative paths "
    "resolve in the first) [default: no file resources].",
)


HTTP_ALLOW = click.option(
    "--http-allow",
    "http_allow",
    metavar="HOST|CIDR",
    multiple=True,
    help="Let HTTP resources and http: tasks reach this host name, address or network "
    "beyond the public addresses (repeatable) [default: public addresses only].",
)


PARALLELISM = click.option(
    "--parallelism",
    type=click.IntRange(min=1),
    default=DEFAULT_PARALLELISM,
    show_default=True,
    metavar="N",
    help="Task runs of one workflow queued or running at once, for flows that do not say "
    "(@flow (- parallelism: N -)); the rest wait their turn in the workflow.",
)


PARTITIONS = click.option(
    "--partitions",
    type=click.IntRange(min=1, max=1024),
    metavar="N",
    help="Spread the workflows over N partitions (each in one hash slot of a Redis Cluster), "
    "if this prefix is new; once fixed it cannot change [default: 8 on a cluster, "
    "else 1].",
)


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
@click.option(
    "--share",
    metavar="I/N",
    help="Serve the partitions whose number modulo N is I (run N engines, "
    "0/N to N-1/N, to split the work) [default: all].",
)
@VERBOSE
def engine_command(
    target: Target,
    claim_idle: float,
    max_deliveries: int,
    parallelism: int,
    retention: float,
    archive_dir: Path | None,
    partitions: int | None,
    share: str | None,
    verbose: bool,
) -> None:
    """Run an engine: advance workflows as their tasks end, until SIGINT or SIGTERM.
    Run as many as you like."""
    from ..redis.connection import connect
    from ..redis.engine import EngineProcess
    from ..redis.protocol import Keys
    from ..redis.store import Store

    log_to_stderr("engine", verbose)
    archive_directory(archive_dir)
    with Signals() as signals:
        ping(target)
        stop = threading.Event()
        store = Store(connect(target.url), Keys(target.prefix))
        fixed_partitions(store, partitions)
        engine = EngineProcess(
            store,
            connect(target.url, decode=False),
            claim_idle=claim_idle,
            max_deliveries=max_deliveries,
            parallelism=parallelism,
            retention=retention,
            archive_dir=archive_dir,
            share=share_option(share),
        )
        click.echo(f"littleflow engine: {engine.name} on {target.shown} (prefix {target.prefix})", err=True)
        run_until_signalled("engine", signals, stop, threads_of(stop, engine))
    click.echo(f"littleflow engine: stopped ({plural(engine.applied, 'task end')} applied)", err=True)


@redis_command("worker", json_flag=False)
@TASKS
@click.option(
    "--builtins", is_flag=True, help="Run the built-in tasks too: wait:…, http:… and <resource> nodes."
)
@click.option(
    "--kubernetes",
    is_flag=True,
    help="Run k8s: tasks as Kubernetes Jobs (in-cluster configuration, else the kubeconfig).",
)
@click.option(
    "--k8s-namespace",
    metavar="NS",
    help="Where Jobs run unless a task names its namespace [default: the pod's or the context's, "
    "else default].",
)
@click.option(
    "--k8s-cleanup",
    type=click.FloatRange(min=60),
    default=3600.0,
    show_default=True,
    metavar="SECONDS",
    help="Delete finished Jobs this long after they end (at least 60; Kubernetes' TTL is a day more).",
)
@click.option(
    "--concurrency", type=click.IntRange(min=1), default=4, show_default=True, help="Tasks run at once."
)
@FILES
@HTTP_ALLOW
@CLAIM_IDLE
@MAX_DELIVERIES
@VERBOSE
def worker_command(
    target: Target,
    task_sources: tuple[str, ...],
    builtins: bool,
    kubernetes: bool,
    k8s_namespace: str | None,
    k8s_cleanup: float,
    concurrency: int,
    files: tuple[str, ...],
    http_allow: tuple[str, ...],
    claim_idle: float,
    max_deliveries: int,
    verbose: bool,
) -> None:
    """Run a worker: run the tasks of --tasks (and, with --builtins, the built-in ones;
    with --kubernetes, k8s: tasks as Jobs) until SIGINT or SIGTERM. Run as many as you like."""
    if not task_sources and not builtins and not kubernetes:
        fail("a worker needs tasks: give --tasks MODULE_OR_FILE, --builtins or --kubernetes (or several)")
    from ..redis.builtins import BuiltinTasks
    from ..redis.connection import connect
    from ..redis.protocol import Keys
    from ..redis.store import Store
    from ..redis.worker import PythonTasks, Worker

    log_to_stderr("worker", verbose)
    confine = confinement(files, http_allow, "worker")
    registry = task_registry(task_sources) if task_sources else None
    executors: list[Any] = ([PythonTasks(registry)] if registry is not None else []) + (
        [BuiltinTasks(confine=confine)] if builtins else []
    )
    jobs_in = ""
    if kubernetes:
        executors.append(kubernetes_tasks(k8s_namespace, k8s_cleanup))
        jobs_in = f"; Jobs in namespace {executors[-1].namespace}"
    with Signals() as signals:
        ping(target)
        stop = threading.Event()
        worker = Worker(
            Store(connect(target.url), Keys(target.prefix)),
            connect(target.url, decode=False),
            executors,
            concurrency=concurrency,
            claim_idle=claim_idle,
            max_deliveries=max_deliveries,
        )
        click.echo(
            f"littleflow worker: {worker.name} on {target.shown} (prefix {target.prefix}) serving "
            f"{worker.serving()}{jobs_in}; concurrency {concurrency}",
            err=True,
        )
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
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Python tasks run at once.",
)
@click.option(
    "--data",
    "data_dir",
    metavar="DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the private server (without a Redis URL) keeps its data, and the API its token "
    "[default: $LITTLEFLOW_HOME, else ~/.littleflow].",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    help="Without a Redis URL: the private server's port, "
    "kept in DATA/redis.port for the next start "
    "[default: the kept one, else a free one].",
)
@click.option(
    "--api", "api_address", metavar="HOST:PORT", help="Serve the HTTP API here too, e.g. 127.0.0.1:8080."
)
@click.option(
    "--api-tokens",
    "tokens_file",
    metavar="FILE",
    help="Bearer tokens of the API: read:TOKEN or admin:TOKEN entries, one a line "
    "(also from $LITTLEFLOW_API_TOKENS, comma-separated) [default: an admin token kept in "
    "DATA/api.token, printed in the console's address].",
)
@click.option(
    "--api-no-auth",
    "no_auth",
    is_flag=True,
    help="Serve the API without tokens: anyone who can reach it may run anything. Loopback only.",
)
@click.option(
    "--api-host",
    "api_hosts",
    metavar="NAME",
    multiple=True,
    help="A name the API is reached by (the Host header), beside its address and the loopback "
    "names; needed behind a proxy or an Ingress (repeatable).",
)
@click.option(
    "--api-cors",
    "cors",
    metavar="ORIGIN",
    multiple=True,
    help="Let browser pages of this origin call the API (repeatable; none by default).",
)
@click.option(
    "--api-max-nodes",
    "max_nodes",
    type=click.IntRange(min=2),
    default=20_000,
    show_default=True,
    help="Refuse (422) a flow sent to the API that would have more nodes than this once its named "
    "subflows are expanded (counted before they are).",
)
@click.option(
    "--api-only",
    is_flag=True,
    help="Serve the HTTP API alone: no engine, no built-in or Python tasks (they run in "
    "`littleflow engine` and `littleflow worker` processes elsewhere). Needs --api and a Redis URL.",
)
@FILES
@HTTP_ALLOW
@CLAIM_IDLE
@PARALLELISM
@RETENTION
@ARCHIVE_DIR
@PARTITIONS
@VERBOSE
def serve_command(
    target: Target,
    task_sources: tuple[str, ...],
    concurrency: int,
    data_dir: Path | None,
    port: int | None,
    api_address: str | None,
    tokens_file: str | None,
    no_auth: bool,
    api_hosts: tuple[str, ...],
    cors: tuple[str, ...],
    max_nodes: int,
    api_only: bool,
    claim_idle: float,
    verbose: bool,
    files: tuple[str, ...],
    http_allow: tuple[str, ...],
    parallelism: int,
    retention: float,
    archive_dir: Path | None,
    partitions: int | None,
) -> None:
    """Run a whole system here: an engine, the built-in tasks and the Python tasks of
    --tasks, until SIGINT or SIGTERM. Without a Redis URL (--redis or
    $LITTLEFLOW_REDIS_URL) it starts a private Redis server on 127.0.0.1 and leaves its URL
    in DIR/redis.url, where the other commands look for it."""
    from ..redis.serve import Services

    if target.given and (port is not None or (data_dir is not None and api_address is None)):
        fail(
            "--port and --data are for a private server (--data for the API's token too); with a Redis URL "
            "and no --api there is none"
        )
    if api_only and (api_address is None or not target.given or task_sources):
        fail(
            "--api-only serves the API of a system running elsewhere: give --api HOST:PORT and a Redis URL "
            "(--redis or $LITTLEFLOW_REDIS_URL), and no --tasks"
        )
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
        services = Services(
            target.url,
            prefix=target.prefix,
            tasks=registry,
            concurrency=concurrency,
            engine=not api_only,
            builtins=not api_only,
            claim_idle=claim_idle,
            confine=confine,
            parallelism=parallelism,
            retention=retention,
            archive_dir=archive_dir,
        )
        fixed_partitions(services.store, partitions)
        names = f": {', '.join(sorted(registry.names()))}" if registry is not None else ""
        click.echo(
            "littleflow: the API alone (no engine, no tasks)"
            if api_only
            else f"littleflow: an engine, the built-in tasks and {len(registry.names()) if registry else 0} "
            f"Python tasks{names}",
            err=True,
        )
        start = lambda: services.start().threads  # noqa: E731
        if api_address is not None:
            api, token = api_server(
                target,
                api_address,
                tokens_file,
                no_auth,
                list(api_hosts),
                list(cors),
                data_dir or littleflow_home(),
                max_nodes,
            )
            fragment = f"#token={token}" if token else ""
            click.echo(
                f"littleflow: the console on http://{shown_address(api.host, api.port)}/console/{fragment}, "
                "the API beside it (/docs, /openapi.json)",
                err=True,
            )
            start = lambda: services.start().threads + threads_of(services.stop_event, api)()  # noqa: E731
        run_until_signalled("serve", signals, services.stop_event, start)
    click.echo("littleflow: stopped", err=True)


def api_server(
    target: Target,
    address: str,
    tokens_file: str | None,
    no_auth: bool,
    names: list[str],
    cors: list[str],
    data: Path,
    max_nodes: int = 20_000,
) -> tuple[Any, str | None]:
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
                fail(f"cannot keep the API's token in {data / TOKEN_FILE}: {reason(error)}")
            tokens = Tokens([("admin", made)])
        return ApiServer(
            target.url, target.prefix, host.strip("[]"), int(port), tokens, cors, names, no_auth, max_nodes
        ), made
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

    from ..private import private_file
    from ..redis.connection import safe_url
    from ..redis.serve import private_server
    from ..redis.server import ServerNotFound

    data = data.expanduser().absolute()
    saved = data / "redis.url"
    with contextlib.suppress(OSError, UnicodeDecodeError):
        url = saved.read_text(encoding="utf-8").strip()
        with (
            contextlib.suppress(redis.RedisError, ValueError),
            redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1) as other,
        ):
            other.ping()
            fail(
                f"a server answers at {url}, the URL in {saved}: another `littleflow serve` uses {data}; "
                f"stop it, or give this one --data DIR"
            )
    try:
        server = private_server(data, port)
    except ServerNotFound as error:
        fail(f"no Redis URL given, and no server to start a private one: {error}")
    except (RuntimeError, OSError) as error:
        fail(f"cannot start a private Redis server: {reason(error)}")
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
    click.echo(
        f"littleflow: serving on {safe_url(server.url)} (data in {data}; its URL with the password in "
        f"{saved}, where the other commands look)",
        err=True,
    )
    click.echo(f"littleflow: in another terminal: export {URL_VAR}={server.url}", err=True)
    return server.url
