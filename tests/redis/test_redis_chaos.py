"""Nothing lost, nothing doubled: real `littleflow engine` and `littleflow worker`
processes SIGKILLed at random moments, the Redis server restarted, killed or frozen under
them, garbage and duplicate messages thrown into their streams, several engines at once —
and every workflow still ends with the right output, each of its task ends applied
exactly once.

What "applied once" is checked by, for every workflow (:func:`check_workflows`): its
output (a fan-out joined, then an iteration joined: a doubled end would add a part or
an item); its run state (nothing running, no run awaited, as many task runs started —
the run's ``seq`` — as the flow has task instances); its task info (each instance done,
the seqs exactly 1…N); its log (submitted, finished). The tasks (chaos_processes.py)
note each completed execution in a file, so a test also knows how often each ran.

The processes are the real commands (``python -m littleflow engine|worker``), started
with a claim idle time of 1 s; every one still alive is killed at teardown, and their
logs are printed then (pytest shows them when a test fails). The randomness is seeded:
each test prints its seed; ``CHAOS_SEED=<seed>`` replays the same choices (not the same
timing, of course).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from rediscluster import RedisCluster, any_client, away_from, on_server_and_cluster, owner_of

from littleflow.redis.client import Client
from littleflow.redis.connection import connect
from littleflow.redis.protocol import ENGINES, WORKERS, Keys
from littleflow.redis.server import RedisServer
from littleflow.redis.store import Store

TASKS = Path(__file__).resolve().parent / "chaos_processes.py"
#: A fan-out and its join, then an iteration and its join (the tasks are in chaos_processes.py).
FLOW = "first → { double inc } → join → spread → *square → total"
CLAIM_IDLE = 1.0  # seconds before a live process takes over the messages of a dead one
#: The tasks of FLOW (each has a start-task stream in every partition).
TASK_NAMES = ("first", "double", "inc", "join", "spread", "square", "total")
#: The one reason a dead letter may have when nothing was injected: an end that came twice.
DUPLICATE = b"duplicate or stale end"


def expected(n: int, k: int) -> dict[str, Any]:
    """The output of a workflow of FLOW with input ``{"n": n, "k": k}``, ``k`` ≥ 1."""
    return {"n": n, "count": k, "squares": [i * i + n for i in range(k)], "tags": [f"{3 * n + 1}/2"]}


def tasks_per_workflow(k: int) -> int:
    """first, double, inc, join, spread, ``k`` squares, total."""
    return 6 + k


def run_keys(n: int, k: int) -> list[str]:
    """What the tasks of one workflow write to the executions file."""
    return [
        f"first {n}",
        f"double {n}",
        f"inc {n}",
        f"join {n}",
        f"spread {n}",
        *(f"square {n}.{i}" for i in range(k)),
        f"total {n}",
    ]


# -- the processes ---------------------------------------------------------------------
class System:
    """Engine and worker processes of one test on one Redis (the real CLI commands),
    each logging to its own file. :meth:`close` kills every one still alive."""

    def __init__(self, url: str, directory: Path) -> None:
        self.url = url
        self.directory = directory
        directory.mkdir(parents=True)
        self.runs = directory / "runs.txt"  # one line per completed task execution
        self.processes: list[subprocess.Popen] = []
        self.logs: dict[int, Path] = {}
        self.killed: set[int] = set()  # pids this test killed or stopped on purpose

    def start(self, role: str, *options: str) -> subprocess.Popen:
        log = self.directory / f"{len(self.processes) + 1:02d}-{role}.log"
        env = {**os.environ, "CHAOS_RUNS": str(self.runs)}
        env.pop("LITTLEFLOW_PREFIX", None)
        with open(log, "wb") as stderr:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "littleflow",
                    role,
                    "--redis",
                    self.url,
                    "--claim-idle",
                    str(CLAIM_IDLE),
                    *options,
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env=env,
            )
        self.processes.append(process)
        self.logs[process.pid] = log
        return process

    def engine(self, *options: str) -> subprocess.Popen:
        return self.start("engine", *options)

    def worker(self, concurrency: int = 8, *options: str) -> subprocess.Popen:
        return self.start("worker", "--tasks", str(TASKS), "--concurrency", str(concurrency), *options)

    def kill(self, process: subprocess.Popen) -> None:
        """SIGKILL, as in a crash."""
        self.killed.add(process.pid)
        process.kill()
        process.wait(10)

    def stop(self, process: subprocess.Popen, timeout: float = 20.0) -> int:
        """SIGTERM, and the exit status once it has finished what it was doing."""
        self.killed.add(process.pid)
        process.terminate()
        return process.wait(timeout)

    def check_alive(self) -> None:
        """Fail at once if a process ended that the test did not end."""
        for process in self.processes:
            if process.pid not in self.killed and process.poll() is not None:
                pytest.fail(
                    f"process {process.pid} ({self.logs[process.pid].name}) exited with status "
                    f"{process.returncode}:\n{self.log(process)}"
                )

    def consumer(self, process: subprocess.Popen, timeout: float = 20.0) -> str:
        """The consumer name the process reads streams as (from the first line it logs)."""
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(r"littleflow (?:engine|worker): (\S+) on ", self.log(process))
            if found:
                return found.group(1)
            self.check_alive()
            if time.monotonic() > deadline:
                pytest.fail(f"process {process.pid} did not say its name within {timeout:g} s")
            time.sleep(0.02)

    def log(self, process: subprocess.Popen, tail: int = 4000) -> str:
        return self.logs[process.pid].read_text(errors="replace")[-tail:]

    def executions(self) -> Counter:
        """How often each task instance ran to completion (see chaos_processes.py)."""
        return Counter(self.runs.read_text().splitlines()) if self.runs.exists() else Counter()

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                pass

    def report(self) -> str:
        return "\n".join(
            f"--- {self.logs[p.pid].name} (pid {p.pid}, exit {p.returncode})\n{self.log(p, 1500)}"
            for p in self.processes
        )


@pytest.fixture
def systems(tmp_path: Path) -> Iterator[Callable[[str], System]]:
    """``systems(url)`` makes a :class:`System`; every process of it dies at teardown,
    whatever the test did (their logs are printed then: pytest shows them on failure)."""
    made: list[System] = []

    def make(url: str) -> System:
        made.append(System(url, tmp_path / f"system-{len(made) + 1}"))
        return made[-1]

    yield make
    for system in made:
        system.close()
    for system in made:
        print(system.report())


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> random.Random:
    seed = int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(2**32))
    print(f"{request.node.name}: CHAOS_SEED={seed}")
    return random.Random(seed)


# -- submitting and waiting --------------------------------------------------------------
def submit(
    client: Client,
    rng: random.Random,
    count: int,
    nap: list[int] | None,
    first_n: int = 0,
) -> dict[str, tuple[int, int]]:
    """``count`` workflows of FLOW with unique ``n`` from ``first_n``; returns id -> (n, k)."""
    inputs = [{"n": n, "k": rng.randint(1, 4), "nap": nap} for n in range(first_n, first_n + count)]
    ids = client.submit_many(FLOW, inputs)
    return {id: (input["n"], input["k"]) for id, input in zip(ids, inputs)}


def ended(client: Client, ids: list[str]) -> int:
    return sum(summary["state"] != "running" for summary in client.store.summaries(ids))


def wait_for_progress(
    client: Client, ids: list[str], fraction: float, system: System, timeout: float = 60.0
) -> None:
    """Wait until ``fraction`` of the workflows ended."""
    goal, deadline = int(len(ids) * fraction), time.monotonic() + timeout
    while ended(client, ids) < goal:
        system.check_alive()
        if time.monotonic() > deadline:
            pytest.fail(f"fewer than {goal} of {len(ids)} workflows ended within {timeout:g} s")
        time.sleep(0.03)


def keys_at(url: str) -> Keys:
    """The keys of the system at ``url`` (as many partitions as it has)."""
    return Store(connect(url)).keys


def ends(keys: Keys) -> tuple[str, ...]:
    """The end stream of every partition."""
    return tuple(part.ends for part in keys.parts)


def task_streams(keys: Keys, names: tuple[str, ...] = TASK_NAMES) -> tuple[str, ...]:
    """The start-task streams of tasks ``names`` in every partition."""
    return tuple(part.stream(name) for part in keys.parts for name in names)


def in_flight(r: redis.Redis, keys: Keys) -> int:
    """Messages of the end and task streams that a consumer group still has to handle:
    pending, or not yet delivered (``r`` must not decode responses: XINFO STREAM shows
    entries, which may hold any bytes)."""
    count = 0
    for stream in (*ends(keys), *task_streams(keys)):
        try:
            groups = r.xinfo_groups(stream)
            if any(group.get("lag") is None for group in groups):  # Redis < 7, or lag unknown
                last = r.xinfo_stream(stream)["last-generated-id"]
                count += sum(group["last-delivered-id"] != last for group in groups)
            else:
                count += sum(group["lag"] for group in groups)
        except redis.ResponseError:  # no such stream (yet)
            continue
        count += sum(group["pending"] for group in groups)
    return count


def wait_until_ended(
    client: Client, ids: list[str], system: System, timeout: float = 60.0, stall: float | None = None
) -> None:
    """Wait until every workflow ended. Fails at once when a process died that should not
    have, after 3 s of nothing in flight while workflows still run (their ends were lost),
    and, given ``stall``, after that many seconds without a workflow ending."""
    deadline, quiet_since, running = time.monotonic() + timeout, None, list(ids)
    progress = (len(ids), time.monotonic())
    with any_client(client.url) as raw:
        while True:
            system.check_alive()
            try:
                running = [s["id"] for s in client.store.summaries(ids) if s["state"] == "running"]
                if not running:
                    return
                idle = in_flight(raw, client.keys) == 0
            except (redis.ConnectionError, redis.TimeoutError):  # the server is restarting
                idle = False
            now = time.monotonic()
            if len(running) < progress[0]:
                progress = (len(running), now)
            elif stall is not None and now - progress[1] > stall:
                pytest.fail(
                    f"STALLED: {len(running)} workflows still run, none ended in {stall:g} s: "
                    f"{describe(client, running[:3])}\nin flight: {in_flight(raw, client.keys)}"
                )
            quiet_since = (quiet_since or now) if idle else None
            if quiet_since is not None and now - quiet_since > 3:
                pytest.fail(
                    f"LOST: {len(running)} workflows still run but no consumer group has a message "
                    f"left to handle: "
                    f"{describe(client, running[:3])}\ndead letters: {dead_reasons(client.url)}"
                )
            if now > deadline:
                pytest.fail(
                    f"{len(running)} workflows still run after {timeout:g} s: "
                    f"{describe(client, running[:3])}\nin flight: {in_flight(raw, client.keys)}\n"
                    f"dead letters: {dead_reasons(client.url)}"
                )
            time.sleep(0.05)


def describe(client: Client, ids: list[str]) -> str:
    lines = []
    for id in ids:
        run = client.store.load(id)
        lines.append(
            f"{id}: running {sorted(run.state.running)}, awaiting runs {run.seqs}, "
            f"tasks {client.store.task_info(id)}, log {client.store.log(id)}"
        )
    return "\n".join(lines)


# -- checking ------------------------------------------------------------------------------
def check_workflows(client: Client, cases: dict[str, tuple[int, int]]) -> None:
    """Each workflow finished with its expected output, and each of its task ends was
    applied exactly once (see the module's docstring)."""
    problems = []
    for id, (n, k) in cases.items():
        status = client.status(id)
        run = client.store.load(id)
        info = client.store.task_info(id)
        kinds = [entry["kind"] for entry in client.store.log(id)]
        count = tasks_per_workflow(k)
        if status["state"] != "finished" or status["output"] != expected(n, k):
            problems.append(
                f"{id} (n={n}, k={k}): {status['state']}, output {status['output']} "
                f"(expected {expected(n, k)}), error {status['error']}"
            )
        if run.state.running or run.seqs:
            problems.append(f"{id}: still running {sorted(run.state.running)}, awaiting runs {run.seqs}")
        if run.seq != count:
            problems.append(
                f"{id}: {run.seq} task runs started, not one for each of its {count} task instances"
            )
        if sorted(entry.get("seq") for entry in info.values()) != list(range(1, count + 1)) or any(
            entry.get("status") != "done" for entry in info.values()
        ):
            problems.append(f"{id}: task info {info}")
        if kinds != ["submitted", "finished"]:
            problems.append(f"{id}: log {kinds}")
    assert not problems, f"{len(problems)} problems; the first:\n" + "\n".join(problems[:10])


def check_executions(
    system: System, cases: dict[str, tuple[int, int]], exactly_once: bool, extra: frozenset[str] = frozenset()
) -> Counter:
    """Every task instance ran to completion (exactly once when no worker died or was fooled;
    ``extra``: what else may have run once, tasks of no workflow of ``cases``)."""
    counts = system.executions()
    wanted = [key for n, k in cases.values() for key in run_keys(n, k)]
    missing = [key for key in wanted if counts[key] < 1]
    assert not missing, f"never completed: {missing[:10]}"
    if exactly_once:
        wanted_set = set(wanted) | extra
        odd = {key: count for key, count in counts.items() if count != 1 or key not in wanted_set}
        assert not odd, f"task instances not run exactly once: {dict(list(odd.items())[:10])}"
    return counts


def dead_letters(url: str) -> list[tuple[str, dict[bytes, bytes]]]:
    """The dead-letter stream, fields as bytes (injected garbage need not be UTF-8)."""
    with any_client(url) as raw:
        return [
            (entry_id.decode(), fields)
            for part in keys_at(url).parts
            for entry_id, fields in raw.xrange(part.dead)
        ]


def dead_reasons(url: str) -> Counter:
    return Counter(
        fields.get(b"reason", b"?")[:60].decode(errors="replace") for _, fields in dead_letters(url)
    )


def check_only_duplicates_dead(url: str) -> int:
    """Nothing was set aside but ends that came twice (a message set aside for any other
    reason, when nothing was injected, would be one lost). Returns how many there were."""
    dead = dead_letters(url)
    other = [fields for _, fields in dead if not fields.get(b"reason", b"").startswith(DUPLICATE)]
    assert not other, f"dead letters besides duplicate ends: {other[:5]}"
    return len(dead)


def pending_of(r: redis.Redis, streams: tuple[str, ...], group: str, consumer: str) -> int:
    count = 0
    for stream in streams:
        try:
            pending = r.xpending(stream, group)
        except redis.ResponseError:  # (no such stream or group yet)
            continue
        count += sum(c["pending"] for c in pending.get("consumers") or () if c["name"] == consumer)
    return count


def holding(r: redis.Redis, streams: tuple[str, ...], group: str, consumer: str, limit: float = 1.0) -> None:
    """Wait (``limit`` seconds at most) until ``consumer`` holds messages it has not acked yet:
    the moment to kill it."""
    deadline = time.monotonic() + limit
    while not pending_of(r, streams, group, consumer) and time.monotonic() < deadline:
        time.sleep(0.001)


def start_server(server: RedisServer) -> None:
    """Start the server and wait until it has loaded its data (RedisServer.start() returns
    once it answers INFO, which it does while still loading: other commands fail then)."""
    server.start()
    deadline = time.monotonic() + 10
    with redis.Redis.from_url(server.url) as r:
        while True:
            try:
                r.ping()
                return
            except redis.BusyLoadingError:
                assert time.monotonic() < deadline, "the server is still loading its data after 10 s"
                time.sleep(0.02)


# -- the tests -----------------------------------------------------------------------------
@on_server_and_cluster
def test_engines_sigkilled_at_random_moments_lose_and_double_nothing(redis_url, systems, rng):
    """400 workflows of instant tasks (two workers: the engine has plenty to do); the engine
    is SIGKILLed 4 times as they run — each time when a random share more of them has ended,
    as soon as it holds ends it has read and not yet applied — and a new one started. Once,
    while no engine runs, a phantom engine reads a few ends and vanishes too. The new
    engines take over every pending end.

    Not 5 times: an end held by 5 engines in a row, each killed, has been delivered more
    than max-deliveries (5) times when the next one takes it over, and is set aside as
    one that kills engines (docs/protocol.md, "Dead letters"): its workflow never ends."""
    system, client = systems(redis_url), Client(redis_url)
    system.worker(concurrency=4)
    system.worker(concurrency=4)
    engine = system.engine()
    cases = submit(client, rng, 400, nap=None)
    ids = list(cases)
    took = []  # ends pending on each engine killed
    phantom_at, phantom = rng.randrange(4), 0
    for number, fraction in enumerate(sorted(rng.uniform(0.05, 0.9) for _ in range(4))):
        wait_for_progress(client, ids, fraction, system)
        name = system.consumer(engine)
        holding(client.redis, ends(client.keys), ENGINES, name)
        system.kill(engine)
        took.append(pending_of(client.redis, ends(client.keys), ENGINES, name))
        if number == phantom_at:  # an engine that read ends and died before it did anything with them
            cases.update(submit(client, rng, 20, nap=None, first_n=10_000))  # their first tasks end now
            deadline = time.monotonic() + 3
            while not phantom and time.monotonic() < deadline:  # (one read per partition: one slot each)
                for stream in ends(client.keys):
                    found = client.redis.xreadgroup(ENGINES, "engine-phantom", {stream: ">"}, count=10)
                    phantom += sum(len(messages) for _, messages in found or ())
                time.sleep(0.05)
        time.sleep(rng.uniform(0, 0.3))
        engine = system.engine()
    wait_until_ended(client, list(cases), system)
    check_workflows(client, cases)
    check_executions(system, cases, exactly_once=True)  # no worker died: nothing ran twice
    dead = check_only_duplicates_dead(redis_url)
    assert phantom > 0 and pending_of(client.redis, ends(client.keys), ENGINES, "engine-phantom") == 0
    system.check_alive()
    print(
        f"ends pending on the engines killed: {took}; taken by the phantom: {phantom}; dead letters: {dead}"
    )


@on_server_and_cluster
def test_workers_sigkilled_mid_task_lose_and_double_nothing(redis_url, systems, rng):
    """120 workflows whose first task and squares take 50–200 ms; the worker is SIGKILLed
    3 times with tasks in hand, and a new one started: those tasks run again (at least
    once), and each end is still applied once (no square twice in a list)."""
    system, client = systems(redis_url), Client(redis_url)
    system.engine()
    worker = system.worker(concurrency=16)
    cases = submit(client, rng, 120, nap=[50, 200])
    ids = list(cases)
    in_hand = []  # start messages the killed workers held
    for fraction in sorted(rng.uniform(0.1, 0.8) for _ in range(3)):
        wait_for_progress(client, ids, fraction, system)
        name = system.consumer(worker)
        holding(client.redis, task_streams(client.keys), WORKERS, name)
        system.kill(worker)
        in_hand.append(pending_of(client.redis, task_streams(client.keys), WORKERS, name))
        time.sleep(rng.uniform(0, 0.3))
        worker = system.worker(concurrency=16)
    wait_until_ended(client, ids, system)
    check_workflows(client, cases)
    counts = check_executions(system, cases, exactly_once=False)
    dead = check_only_duplicates_dead(redis_url)
    assert sum(in_hand) > 0, "no worker was killed with a task in hand"
    system.check_alive()
    print(
        f"tasks in hand of the workers killed: {in_hand}; executions beyond one: "
        f"{sum(counts.values()) - len(counts)}; dead letters: {dead}"
    )


def test_redis_restarted_mid_run_loses_and_doubles_nothing(own_redis_server, systems, rng):
    """An append-only Redis under an engine and a worker: stopped gracefully mid-run and
    started again after a while, then (every write synced: appendfsync always) SIGKILLed
    and started again. The processes retry while it is down; every workflow — those
    submitted before and after the restarts — finishes right."""
    server = own_redis_server
    system, client = systems(server.url), Client(server.url)
    system.engine()
    system.worker(concurrency=8)
    cases = submit(client, rng, 150, nap=[2, 10])
    wait_for_progress(client, list(cases), rng.uniform(0.15, 0.4), system)
    server.stop()
    time.sleep(rng.uniform(0.5, 1.5))
    start_server(server)
    cases.update(submit(client, rng, 50, nap=[2, 10], first_n=1000))
    ids = list(cases)
    wait_for_progress(client, ids, rng.uniform(0.5, 0.75), system)
    client.redis.config_set("appendfsync", "always")
    server.kill()
    time.sleep(rng.uniform(0.5, 1.5))
    start_server(server)
    wait_until_ended(client, ids, system)
    check_workflows(client, cases)
    check_executions(
        system, cases, exactly_once=False
    )  # a reply lost with the server may make a worker send again
    check_only_duplicates_dead(server.url)
    system.check_alive()
    for (
        process
    ) in system.processes:  # both saw the server go (said once an outage: two at most), and carried on
        assert 1 <= system.log(process, 100_000).count("Redis unreachable") <= 2, system.log(process)


def test_the_cluster_node_of_the_prefix_killed_and_restarted_loses_and_doubles_nothing(
    tmp_path, systems, rng
):
    """A Redis Cluster of the test's own, append-only (every write synced: appendfsync always);
    the engine and the worker are given another node's URL. The node that serves the ``{lf}``
    slot is SIGKILLed mid-run and started again on its port with its data and cluster state:
    the cluster is whole again, the processes carry on, and every workflow finishes right."""
    with RedisCluster(tmp_path / "cluster", appendonly=True) as cluster:
        url = away_from(cluster, Keys().ends)
        node = next(n for n in cluster.nodes if n.url == owner_of(cluster, Keys().ends))
        with cluster.client(node) as admin:
            admin.config_set("appendfsync", "always")
        system, client = systems(url), Client(url)
        system.engine()
        system.worker(concurrency=8)
        cases = submit(client, rng, 100, nap=[2, 10])
        wait_for_progress(client, list(cases), rng.uniform(0.15, 0.5), system)
        node.kill()
        time.sleep(rng.uniform(0.5, 1.5))  # less than the cluster's node timeout (5 s): no failover
        start_server(node)
        cluster.wait_ok()
        wait_until_ended(client, list(cases), system, stall=15)
        check_workflows(client, cases)
        check_executions(
            system, cases, exactly_once=False
        )  # a reply lost with the node may make a worker send again
        check_only_duplicates_dead(url)
        system.check_alive()
        client.redis.close()


def test_redis_frozen_longer_than_the_socket_timeout_loses_nothing(own_redis_server, systems, rng):
    """The Redis server stops answering for 6 s while tasks run — longer than redis-py's
    default socket timeout of 5 s (SIGSTOP: as in a stall, or a network partition without a
    reset) — then answers again: the processes carry on, and every workflow finishes right."""
    server = own_redis_server
    system, client = systems(server.url), Client(server.url)
    system.engine()
    worker = system.worker(concurrency=8)
    cases = submit(client, rng, 100, nap=[20, 60])
    wait_for_progress(client, list(cases), 0.05, system)  # both at work
    holding(client.redis, task_streams(client.keys), WORKERS, system.consumer(worker), limit=5)
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        time.sleep(6)
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
    wait_until_ended(client, list(cases), system, stall=10)
    check_workflows(client, cases)
    check_only_duplicates_dead(server.url)
    system.check_alive()


def test_a_redis_restarted_without_its_data_runs_new_workflows(own_redis_server, systems, rng):
    """The Redis server is restarted with its data gone (as a server without persistence
    would be): what it held is lost, but the engine and the worker carry on with the
    workflows submitted afterwards."""
    server = own_redis_server
    system, client = systems(server.url), Client(server.url)
    system.engine()
    system.worker()
    before = submit(client, rng, 20, nap=None)
    wait_until_ended(client, list(before), system)
    server.stop()
    shutil.rmtree(server.data_dir / "appendonlydir")
    start_server(server)
    assert client.redis.dbsize() == 0
    after = submit(client, rng, 20, nap=None, first_n=100)
    wait_until_ended(client, list(after), system, stall=10)
    check_workflows(client, after)
    system.check_alive()


@on_server_and_cluster
def test_garbage_and_duplicate_messages_are_set_aside_and_change_nothing(redis_url, systems, rng):
    """While 150 workflows run, three times: malformed end and start messages (random
    bytes, text that is not UTF-8, fields missing or wrong), ends and starts of workflows
    that do not exist, stale ends of real tasks, and copies of real end messages. Every
    workflow finishes right; every piece of garbage is in the dead-letter stream, and of
    each real end and its copy one was applied and the other set aside; the engine and the
    worker are alive at the end, and stop cleanly when told to."""
    system, client = systems(redis_url), Client(redis_url)
    engine = system.engine()
    worker = system.worker(concurrency=8)
    cases = submit(client, rng, 150, nap=[5, 20])
    ids = list(cases)
    raw = any_client(redis_url)
    garbage: list[tuple[bytes, bytes]] = []  # (stream, id) of each message injected
    copies: list[tuple[bytes, bytes]] = []  # (a real end, its copy)
    ghost = 0
    for fraction in (0.1, 0.4, 0.7):
        wait_for_progress(client, ids, fraction, system)
        ghost -= 1
        for stream, fields in injections(rng, rng.choice(ids), ghost, client.keys):
            garbage.append((stream.encode(), raw.xadd(stream, fields)))
        raw.xadd(
            client.keys.of(f"ghost{ghost}").stream("first"), ghost_start(ghost)
        )  # runs; its end is set aside
        copied = {entry_id for _, *pair in copies for entry_id in pair} | {
            entry_id for _, entry_id in garbage
        }
        real = [
            (stream, entry_id, fields)
            for stream in ends(client.keys)
            for entry_id, fields in raw.xrange(stream, count=2000)
            if fields.get(b"kind") == b"end"
            and fields.get(b"workflow", b"").decode(errors="replace") in cases
            and entry_id not in copied
        ]
        for stream, entry_id, fields in rng.sample(real, min(8, len(real))):
            copies.append((stream.encode(), entry_id, raw.xadd(stream, fields)))
    assert copies
    wait_until_ended(client, ids, system)
    check_workflows(client, cases)
    ghosts = frozenset(f"first {n}" for n in range(ghost, 0))
    counts = check_executions(system, cases, exactly_once=True, extra=ghosts)
    assert all(counts[key] == 1 for key in ghosts), counts  # tasks of workflows that do not exist ran once

    deadline = time.monotonic() + 5  # the ends of the last ghosts may still be on their way
    while True:
        dead = dead_letters(redis_url)
        set_aside = {(fields.get(b"stream"), fields.get(b"id")) for _, fields in dead}
        unknown = {
            fields[b"reason"]
            for _, fields in dead
            if fields[b"reason"].startswith(b"end of a task of unknown")
        }
        missing = set(garbage) - set_aside
        if (not missing and len(unknown) == -ghost) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not missing, (
        f"garbage not set aside: {sorted(missing)[:5]}; dead letters: {dead_reasons(redis_url)}"
    )
    assert unknown == {f"end of a task of unknown workflow ghost{n}".encode() for n in range(ghost, 0)}
    for stream, original, copy in copies:  # one of the two was applied, the other set aside as a duplicate
        assert len({(stream, original), (stream, copy)} & set_aside) == 1, (original, copy)

    system.check_alive()
    assert system.stop(engine) == 0, system.log(engine)
    assert system.stop(worker) == 0, system.log(worker)
    raw.close()


def injections(rng: random.Random, real: str, ghost: int, keys: Keys) -> list[tuple[str, dict]]:
    """Garbage for the end streams and the task stream. ``real`` is a workflow that exists,
    ``ghost`` names one that does not. Each end goes to the end stream of its workflow's
    partition (the real one's when it has none); the starts to the stream of ``first`` in
    the ghost's partition."""

    def end(**fields: Any) -> dict:
        return {
            "kind": "end",
            "workflow": real,
            "task": "|1|-1",
            "seq": "1",
            "status": "done",
            "output": "{}",
            **fields,
        }

    def start(**fields: Any) -> dict:
        return {
            "kind": "start",
            "workflow": f"ghost{ghost}",
            "task": "|1|-1",
            "seq": "1",
            "node": "1",
            "name": "first",
            "parameters": "null",
            "input": json.dumps({"n": ghost, "k": 1}),
            **fields,
        }

    noise = bytes(rng.getrandbits(8) for _ in range(24))
    ends = [
        {"junk": noise},
        {b"\xff\xfe" + noise[:4]: noise},  # a field name that is not UTF-8
        {b"kind\xff": b"end", "workflow": real},
        end(workflow=b"\xff\xfe" + noise),  # not UTF-8
        end(output=b"\xc3\x28"),
        {"kind": "end"},  # fields missing
        end(workflow=""),
        end(seq="one"),
        end(task="nonsense"),
        end(task="|99|-1"),  # no such node
        end(task="|-3|-1"),
        end(status="maybe"),
        end(output="{not json"),
        end(started="yesterday"),
        end(kind="start"),
        end(seq="999999"),  # a stale run of a real task
        end(workflow=f"ghost{ghost}"),  # no such workflow
        {
            "kind": "end",
            "workflow": f"ghost{ghost}",
            "task": "|1|-1",
            "seq": "1",
            "status": "failed",
            "error": "boom",
        },
    ]
    starts = [
        {"junk": noise},
        {b"\xff\xfe" + noise[:4]: noise},
        {b"kind\xff": b"start", "workflow": real},
        start(name=b"\xff" + noise),
        {"kind": "start"},
        start(seq="x"),
        start(input="{not json"),
        start(kind="end"),
    ]

    def home(fields: dict) -> str:
        workflow = fields.get("workflow")
        return keys.of(workflow if isinstance(workflow, str) and workflow else real).ends

    return [(home(fields), fields) for fields in ends] + [
        (keys.of(f"ghost{ghost}").stream("first"), fields) for fields in starts
    ]


def ghost_start(ghost: int) -> dict:
    """A start of a real task (first, with ``n`` = ``ghost``) of a workflow that does not exist."""
    return {
        "kind": "start",
        "workflow": f"ghost{ghost}",
        "task": "|1|-1",
        "seq": "1",
        "node": "1",
        "name": "first",
        "parameters": "null",
        "input": json.dumps({"n": ghost, "k": 1}),
    }


DEEP = "[" * 20_000 + "]" * 20_000  # JSON nested deeper than Python's recursion limit


def test_an_end_nested_too_deep_is_set_aside_alone(redis_url, systems, rng):
    """An end message whose output is JSON nested 20,000 deep, read in one batch with real
    ends: it is set aside as malformed, and the real ends are applied."""
    system, client = systems(redis_url), Client(redis_url)
    system.worker()
    cases = submit(client, rng, 30, nap=None)
    raw = any_client(redis_url)
    deadline = time.monotonic() + 20
    while sum(raw.xlen(stream) for stream in ends(client.keys)) < len(
        cases
    ):  # the first tasks ended; no engine yet
        assert time.monotonic() < deadline, "the worker did not run the first tasks"
        time.sleep(0.05)
    poison = raw.xadd(
        client.keys.of(next(iter(cases))).ends,
        {
            "kind": "end",
            "workflow": next(iter(cases)),
            "task": "|1|-1",
            "seq": "1",
            "status": "done",
            "output": DEEP,
        },
    )
    system.engine("--max-deliveries", "2")
    wait_until_ended(client, list(cases), system, stall=8)
    check_workflows(client, cases)
    reasons = {fields[b"id"]: fields[b"reason"] for _, fields in dead_letters(redis_url)}
    assert list(reasons) == [poison] and reasons[poison].startswith(b"malformed"), reasons
    raw.close()


def test_a_start_nested_too_deep_is_set_aside_alone(redis_url, systems, rng):
    """A start message whose input is JSON nested 20,000 deep, first in its stream, so the
    worker reads it in one batch with real starts: it is set aside as malformed, and the real
    tasks run."""
    system, client = systems(redis_url), Client(redis_url)
    raw = any_client(redis_url)
    poison = raw.xadd(
        client.keys.of("ghost").stream("first"),
        {
            "kind": "start",
            "workflow": "ghost",
            "task": "|1|-1",
            "seq": "1",
            "node": "1",
            "name": "first",
            "parameters": "null",
            "input": DEEP,
        },
    )
    cases = submit(client, rng, 30, nap=None)
    system.engine()
    system.worker(concurrency=4)
    wait_until_ended(client, list(cases), system, stall=8)
    check_workflows(client, cases)
    reasons = {fields[b"id"]: fields[b"reason"] for _, fields in dead_letters(redis_url)}
    assert list(reasons) == [poison] and reasons[poison].startswith(b"malformed"), reasons
    raw.close()


def test_a_start_message_run_twice_leaves_the_task_info_alone(redis_url, systems, rng):
    """A start message delivered twice (its copy, or a stale start of a real task) runs
    again, as at-least-once allows; its end is set aside, and it changes nothing else."""
    system, client = systems(redis_url), Client(redis_url)
    system.engine()
    system.worker()
    cases = submit(
        client, rng, 20, nap=[30, 30]
    )  # first runs 30 ms: its end is sent apart from its "running"
    wait_until_ended(client, list(cases), system)
    raw = any_client(redis_url)
    firsts = [
        (stream, fields)
        for stream in task_streams(client.keys, ("first",))
        for _, fields in raw.xrange(stream)
        if fields.get(b"name") == b"first"
    ]
    for stream, fields in firsts:  # the first task of each workflow, sent again
        raw.xadd(stream, fields)
    stream, first = firsts[0]
    stale = {**first, b"seq": b"999999", b"input": json.dumps({"n": -1, "k": 1, "nap": [30, 30]}).encode()}
    raw.xadd(stream, stale)  # a start of a run that the workflow never made
    deadline = time.monotonic() + 20
    while (
        sum(fields[b"reason"].startswith(DUPLICATE) for _, fields in dead_letters(redis_url))
        < len(firsts) + 1
    ):
        system.check_alive()
        assert time.monotonic() < deadline, "the ends of the copies were not set aside"
        time.sleep(0.05)
    counts = system.executions()
    assert [counts[f"first {n}"] for n, _ in cases.values()] == [2] * len(cases)
    check_workflows(client, cases)
    raw.close()


@on_server_and_cluster
def test_three_engines_at_once_lose_and_double_nothing(redis_url, systems, rng):
    """300 workflows advanced by three engines at once (their ends shared out among them,
    so two engines often hold ends of one workflow): every workflow right, none advanced twice."""
    system, client = systems(redis_url), Client(redis_url)
    engines = [system.engine() for _ in range(3)]
    system.worker(concurrency=8)
    system.worker(concurrency=8)
    for engine in engines:
        system.consumer(engine)  # all three read before the first end comes
    cases = submit(client, rng, 300, nap=[1, 4])
    wait_until_ended(client, list(cases), system)
    check_workflows(client, cases)
    check_executions(system, cases, exactly_once=True)
    dead = check_only_duplicates_dead(redis_url)
    applied = [system.stop(engine) for engine in engines]
    assert applied == [0, 0, 0]
    shares = [re.search(r"stopped \((\d+) task ends applied\)", system.log(engine)) for engine in engines]
    print(
        f"ends applied by each engine: {[int(s.group(1)) if s else None for s in shares]}; dead letters: {dead}"
    )


@on_server_and_cluster
def test_two_worker_pools_with_big_and_small_workflows_and_a_pool_worker_killed(
    redis_url, systems, rng, tmp_path
):
    """As teams deploy: two pools with different tasks (each its own worker processes), one
    big workflow (400 squares) beside 60 small ones, and a worker of the pool of the squares
    SIGKILLed mid-run: every workflow gives its output, every task ran, no pool waited on the other."""
    here = Path(__file__).resolve().parent
    pools = {"light": ["first", "double", "inc", "join", "spread", "total"], "heavy": ["square"]}
    for pool, names in pools.items():
        (tmp_path / f"{pool}.py").write_text(
            f"import sys\nsys.path.insert(0, {str(here)!r})\nimport chaos_processes\n"
            + "".join(f"\ndef {name}(input):\n    return chaos_processes.{name}(input)\n" for name in names)
        )
    system, client = systems(redis_url), Client(redis_url)
    system.engine("--parallelism", "50")
    system.start("worker", "--tasks", str(tmp_path / "light.py"), "--concurrency", "4")
    heavy = [
        system.start("worker", "--tasks", str(tmp_path / "heavy.py"), "--concurrency", "8") for _ in range(2)
    ]
    big = client.submit(FLOW, {"n": 10_000, "k": 400, "nap": [1, 5]})
    cases = {**submit(client, rng, 60, nap=[1, 20]), big: (10_000, 400)}
    wait_for_progress(client, [id for id in cases if id != big], 0.3, system)
    holding(client.redis, task_streams(client.keys), WORKERS, system.consumer(heavy[0]))
    system.kill(heavy[0])
    wait_until_ended(client, list(cases), system, timeout=120)
    check_workflows(client, cases)
    check_executions(system, cases, exactly_once=False)
    check_only_duplicates_dead(redis_url)
    workers = json.loads(client.redis.hget(client.keys.workers, system.consumer(heavy[1])))
    assert workers["tasks"] == ["square"]
    system.check_alive()
