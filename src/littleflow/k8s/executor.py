"""The ``k8s:`` executor: each task runs as a Kubernetes Job, created through the official
client; the Jobs are followed with watches, and their ends sent as end-task messages."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import urllib3
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from ..calling import Cancelled, message
from ..redis.protocol import EndTask
from ..redis.worker import DEFERRED, Job, Worker
from ..tasklogs import BYTES, RunLog
from ..tasks import TaskError
from . import jobs

log = logging.getLogger("littleflow.k8s")

#: The namespace of the tasks this executor serves.
NAMESPACE = "k8s"
#: Lines of a failed pod's log that go into the task's error, and at most how many bytes of it.
LOG_LINES = 20
LOG_BYTES = 16384
#: Lines of an ended pod's log read (at most tasklogs.BYTES bytes): kept as the task run's log.
LOG_KEPT = 200
#: A termination message this long that is not JSON was most likely cut by Kubernetes.
CUT_OUTPUT = 4000


class Transient(Exception):
    """The API server could not answer for now (5xx, 429, a timeout, no connection)."""


def transient(error: BaseException) -> bool:
    """Whether ``error`` is one the API server may not make again in a moment."""
    if isinstance(error, ApiException):
        return error.status in (0, None, 429) or (error.status or 0) >= 500
    return isinstance(error, (urllib3.exceptions.HTTPError, OSError, Transient))


class KubernetesTasks:
    """Executor of ``k8s:`` tasks. ``execute`` creates the task's Job (or finds the one a
    previous worker created: same name), acks the start message and defers; ``background``
    follows the Jobs of ``namespace`` (and of those tasks named) with watches resumed from
    the last resourceVersion, relists every ``resync`` seconds, ends the tasks of finished
    Jobs, deletes the Jobs of terminated workflows, and deletes ended Jobs ``cleanup``
    seconds after they finished."""

    def __init__(self, api: client.ApiClient, namespace: str = "default", *, cleanup: float = 3600.0,
                 resync: float = 60.0, retry: float = 1.0, retry_max: float = 30.0, timeout: float = 30.0,
                 connect_timeout: float = 10.0, watch_slack: float = 30.0, attempts: int = 4) -> None:
        """``retry``: the first wait after an API error, doubled up to ``retry_max``;
        ``timeout``: seconds an API call may take (a watch: its own time plus ``watch_slack``);
        ``attempts``: API calls tried when starting a task before leaving its message for later."""
        self.api = api
        self.batch = client.BatchV1Api(api)
        self.core = client.CoreV1Api(api)
        self.namespace = namespace
        self.cleanup = cleanup
        self.resync = resync
        self.retry = retry
        self.retry_max = retry_max
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.watch_slack = watch_slack
        self.attempts = attempts
        self._namespaces: set[str] = {namespace}
        self._watching: set[str] = set()  # namespaces with a watch thread
        self._ended: set[str] = set()  # uids of Jobs whose task this worker ended, or deleted
        self._lock = threading.Lock()
        self._watches: set[watch.Watch] = set()
        self._worker: Worker | None = None
        self._stop: threading.Event | None = None

    def names(self) -> set[str]:
        return set()

    def namespaces(self) -> set[str]:
        return {NAMESPACE}

    def serves(self, name: str) -> bool:
        return name.startswith(NAMESPACE + ":")

    # -- starting a task -----------------------------------------------------------------
    def execute(self, job: Job, worker: Worker) -> Any:
        task = job.task
        job.started = time.time()
        body = jobs.manifest(task, self.namespace, self.cleanup, job.started, worker.name, worker.keys.prefix)
        name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
        if not self._running(worker, task.workflow):
            raise Cancelled(f"the workflow was terminated (or is gone): no Job {namespace}/{name} created")
        try:
            found = self._retrying(lambda: self._create(body, task.name))
        except Transient as error:  # unacked: delivered again (the name makes that safe)
            log.warning("k8s: cannot start Job %s/%s now (%s); its start is left for a later delivery",
                        namespace, name, error)
            return DEFERRED
        if found is not None:
            self._check_owner(found, task)
            job.started = (jobs.about(found) or {}).get("started") or job.started
            log.info("k8s: Job %s/%s exists already: following it", namespace, name)
        if not self._running(worker, task.workflow):  # terminated while it was created: no one else deletes it
            try:
                now = self._retrying(lambda: self._get(name, namespace))
            except (Transient, TaskError):  # (cannot tell: it goes, as a terminated workflow's would)
                now = None
            if now is not None and jobs.state(now) != "running":  # (it ended already: the workflow went on
                worker.streams.ack(job.stream, job.id)  # with its end, sent by the workers following it)
                return DEFERRED
            self._delete(name, namespace)
            raise Cancelled("the workflow was terminated")
        worker.running(job, job.started)
        worker.streams.ack(job.stream, job.id)  # the Job is the record of the task from here on
        self._follow(namespace, worker)
        if found is not None:
            try:
                self._seen(found)  # it may have finished while no worker followed it
            except Exception as error:  # noqa: BLE001 - acked already: the next list ends it
                log.warning("k8s: Job %s/%s: %s", namespace, name, message(error))
        return DEFERRED

    def _running(self, worker: Worker, workflow: str) -> bool:
        return worker.store.redis.hget(worker.keys.workflow(workflow), "status") == "running"

    def _retrying(self, call: Any) -> Any:
        """``call()``, tried ``attempts`` times while the API server fails transiently;
        raises Transient after the last."""
        delay = self.retry
        for attempt in range(self.attempts):
            try:
                return call()
            except Exception as error:  # noqa: BLE001 - sorted below
                if not transient(error):
                    raise
                if attempt + 1 >= self.attempts:
                    raise Transient(_text(error)) from None
                time.sleep(delay)
                delay = min(delay * 2, self.retry_max)
        raise AssertionError("unreachable")

    def _create(self, body: dict[str, Any], task_name: str) -> dict[str, Any] | None:
        """Create the Job unless it exists; returns the existing one, or None if created."""
        name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
        found = self._get(name, namespace)
        if found is not None:
            return found
        try:
            self.batch.create_namespaced_job(namespace, body, _request_timeout=self.timeout)
            log.info("k8s: created Job %s/%s for %s", namespace, name, task_name)
            return None
        except ApiException as error:
            if error.status == 409:  # created meanwhile (by an earlier delivery): follow it
                found = self._get(name, namespace)
                if found is not None:
                    return found
                raise Transient(f"Job {namespace}/{name} exists and does not") from None
            if transient(error):
                raise
            raise TaskError(f"cannot create Job {namespace}/{name}: {_reason(error)}") from None

    def _check_owner(self, found: dict[str, Any], task: Any) -> None:
        """A Job of this name must be this task's run: else the names collide."""
        about = jobs.about(found) or {}
        mine = (task.workflow, task.task, task.seq)
        if (about.get("workflow"), about.get("task"), about.get("seq")) != mine:
            meta = found.get("metadata") or {}
            raise TaskError(f"Job {meta.get('namespace')}/{meta.get('name')} exists but is not this task's run "
                            f"(it is {about.get('workflow')!r} {about.get('task')!r} run {about.get('seq')!r})")

    def _get(self, name: str, namespace: str) -> dict[str, Any] | None:
        try:
            return self._dict(self.batch.read_namespaced_job(name, namespace, _request_timeout=self.timeout))
        except ApiException as error:
            if error.status == 404:
                return None
            if transient(error):
                raise
            raise TaskError(f"cannot read Job {namespace}/{name}: {_reason(error)}") from None

    def _dict(self, model: Any) -> dict[str, Any]:
        return self.api.sanitize_for_serialization(model)

    # -- following Jobs ----------------------------------------------------------------
    def background(self, worker: Worker, stop: threading.Event) -> None:
        """Follow the Jobs until ``stop`` is set (the worker calls :meth:`terminate`)."""
        self._worker, self._stop = worker, stop
        while not stop.is_set():  # the namespaces any worker of this installation followed
            try:
                known = worker.store.redis.smembers(worker.keys.k8s_namespaces)
                with self._lock:
                    mine = sorted(self._namespaces)
                worker.store.redis.sadd(worker.keys.k8s_namespaces, *mine)
                break
            except Exception as error:  # noqa: BLE001 - Redis away a moment
                log.warning("k8s: cannot read the namespaces followed: %s", message(error))
                stop.wait(self.retry)
        else:
            return
        with self._lock:
            self._namespaces |= {str(ns) for ns in known}
        with self._lock:
            namespaces = sorted(self._namespaces)
        for namespace in namespaces:
            self._start_watch(namespace)
        stop.wait()
        with self._lock:
            for follower in self._watches:
                follower.stop()  # (closes its connection: the thread sees the stop at once)

    def _selector(self) -> str:
        return jobs.selector(self._worker.keys.prefix if self._worker is not None else "lf")

    def _follow(self, namespace: str, worker: Worker) -> None:
        """Follow ``namespace`` too, and say so in Redis for the workers that start later."""
        with self._lock:
            if namespace in self._namespaces:
                return
            self._namespaces.add(namespace)
        try:
            worker.store.redis.sadd(worker.keys.k8s_namespaces, namespace)
        except Exception as error:  # noqa: BLE001 - this worker follows it all the same
            log.warning("k8s: cannot record namespace %s as followed: %s", namespace, message(error))
        if self._stop is not None:
            self._start_watch(namespace)

    def _start_watch(self, namespace: str) -> None:
        with self._lock:
            if namespace in self._watching:
                return
            self._watching.add(namespace)
        threading.Thread(target=self._watch, args=(namespace,), name=f"littleflow-k8s-watch-{namespace}",
                         daemon=True).start()

    def _watch(self, namespace: str) -> None:
        """List, then watch from the list's resourceVersion; on a dropped connection watch
        again from the last version seen; on 410 Gone (too old) or every ``resync`` s, list again."""
        stop = self._stop
        assert stop is not None
        version: str | None = None
        relist = 0.0
        delay = self.retry  # after an error: doubled at each one in a row, up to retry_max
        while not stop.is_set():
            follower = watch.Watch()
            try:
                if version is None or time.monotonic() >= relist:
                    version = self.resync_now(namespace)
                    relist = time.monotonic() + self.resync
                    delay = self.retry
                with self._lock:
                    self._watches.add(follower)
                if stop.is_set():
                    break
                timeout = max(1, int(relist - time.monotonic()))
                for event in follower.stream(self.batch.list_namespaced_job, namespace, label_selector=self._selector(),
                                             resource_version=version, timeout_seconds=timeout,
                                             allow_watch_bookmarks=True,
                                             _request_timeout=(self.connect_timeout, timeout + self.watch_slack)):
                    delay = self.retry
                    raw = event["raw_object"]
                    version = (raw.get("metadata") or {}).get("resourceVersion") or version
                    try:
                        if event["type"] in ("ADDED", "MODIFIED"):
                            self._seen(raw)
                        elif event["type"] == "DELETED":
                            self._deleted(raw)
                    except Exception as error:  # noqa: BLE001 - Redis away a moment: the next list sees it again
                        log.warning("k8s: Job %s: %s", (raw.get("metadata") or {}).get("name"), message(error))
                        relist = 0.0
                    if stop.is_set():
                        break
            except ApiException as error:
                if error.status == 410:
                    log.info("k8s: watch of %s expired; listing again", namespace)
                    version = None
                    continue
                log.warning("k8s: watching Jobs in %s: %s; again in %g s", namespace, _reason(error), delay)
                stop.wait(delay)
                delay = min(delay * 2, self.retry_max)
            except Exception as error:  # noqa: BLE001 - the API server away for a moment: watch again
                if not stop.is_set():
                    log.warning("k8s: watching Jobs in %s: %s; again in %g s", namespace, _text(error), delay)
                    stop.wait(delay)
                    delay = min(delay * 2, self.retry_max)
            finally:
                with self._lock:
                    self._watches.discard(follower)

    def resync_now(self, namespace: str) -> str:
        """List the Jobs of ``namespace``: end those finished, delete those ended long ago
        and those running for a workflow no longer running (a cancel missed); returns the
        list's resourceVersion."""
        found = self._dict(self.batch.list_namespaced_job(namespace, label_selector=self._selector(),
                                                          _request_timeout=self.timeout))
        for job in found.get("items") or []:
            try:
                self._seen(job)
                self._orphan(job)
            except Exception as error:  # noqa: BLE001 - one Job must not stall the others: the next list sees it
                log.warning("k8s: Job %s: %s", (job.get("metadata") or {}).get("name"), message(error))
        return (found.get("metadata") or {}).get("resourceVersion") or ""

    def _orphan(self, job: dict[str, Any]) -> None:
        """Delete a running Job whose workflow is no longer running, or gone."""
        meta, about, worker = job.get("metadata") or {}, jobs.about(job), self._worker
        if (worker is None or about is None or meta.get("deletionTimestamp") or jobs.state(job) != "running"
                or (meta.get("labels") or {}).get(jobs.ENDED) == "true"):
            return
        if self._running(worker, about["workflow"]):
            return
        with self._lock:
            self._ended.add(meta.get("uid"))
        log.info("k8s: deleting Job %s: its workflow %s is no longer running", meta.get("name"), about["workflow"])
        self._delete(meta["name"], meta["namespace"])

    def _seen(self, job: dict[str, Any]) -> None:
        """A Job as it is now: end its task if it finished; clean it up if it ended long ago."""
        meta = job.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            return
        if (meta.get("labels") or {}).get(jobs.ENDED) == "true":
            self._clean(job)
            return
        outcome = jobs.state(job)
        if outcome == "running" or self._worker is None:
            return
        with self._lock:
            if meta.get("uid") in self._ended:
                return
            self._ended.add(meta.get("uid"))
        try:
            self._end(job, outcome)
        except Exception:
            with self._lock:
                self._ended.discard(meta.get("uid"))
            raise

    def _end(self, job: dict[str, Any], outcome: str) -> None:
        """Send the end of the Job's task, then label the Job ended."""
        worker = self._worker
        assert worker is not None
        meta = job["metadata"]
        about = jobs.about(job)
        if about is None:
            log.warning("k8s: Job %s has no littleflow.io/task annotation; left alone", meta.get("name"))
            return
        try:
            pod = jobs.latest_pod(self._pods(meta["name"], meta["namespace"]))
            unread = None
        except ApiException as error:  # (transient ones raise: the next list tries again)
            pod, unread = None, f"cannot list the pods of Job {meta['name']}: {_reason(error)}"
        text = jobs.termination_message(pod) if outcome == "succeeded" else None
        lines = self._log_lines(pod)
        if outcome == "succeeded" and unread:
            end = EndTask(about["workflow"], about["task"], int(about["seq"]), "failed",
                          error=f"the Job succeeded but its output cannot be read: {unread}")
        elif outcome == "succeeded" and text is None:
            end = EndTask(about["workflow"], about["task"], int(about["seq"]), "failed",
                          error=f"Job {meta['name']}: the Job succeeded but its output was lost (pod gone)")
        elif outcome == "succeeded" and len(text.encode()) >= CUT_OUTPUT and not _is_json(text):
            end = EndTask(about["workflow"], about["task"], int(about["seq"]), "failed",
                          error=f"Job {meta['name']}: its output is {len(text.encode())} bytes that are not JSON: "
                                f"most likely cut at Kubernetes' {jobs.OUTPUT_LIMIT}-byte termination message "
                                "limit (put big results in storage and output their address)")
        elif outcome == "succeeded":
            end = EndTask(about["workflow"], about["task"], int(about["seq"]), "done", jobs.output(text))
        else:
            error = f"Job {meta['name']} failed: {jobs.failure(job)}"
            tail = _tail(lines)
            if tail:
                error += f"; last lines of its log: {tail}"
            end = EndTask(about["workflow"], about["task"], int(about["seq"]), "failed", error=error)
        end.attempt, end.started, end.ended, end.worker = (int(about.get("attempt") or 1), about.get("started"),
                                                          time.time(), worker.name)
        if lines:
            kept = RunLog()
            for line in lines:
                kept.add(line)
            end.log = kept.to_json()
        self._send(end, meta.get("uid") or meta["name"])
        log.info("k8s: Job %s %s", meta["name"], outcome)
        try:
            self.batch.patch_namespaced_job(meta["name"], meta["namespace"], {"metadata": {"labels": {
                jobs.ENDED: "true"}}}, _request_timeout=self.timeout)
        except ApiException as error:  # sent twice at worst, and the engine applies the first
            if error.status != 404:
                log.warning("k8s: cannot label Job %s ended: %s", meta["name"], _reason(error))

    def _pods(self, name: str, namespace: str) -> list[dict[str, Any]]:
        """The Job's pods; raises on API errors (transient ones: Transient)."""
        try:
            return self._dict(self.core.list_namespaced_pod(namespace, label_selector=f"job-name={name}",
                                                            _request_timeout=self.timeout)).get("items") or []
        except ApiException as error:
            if transient(error):
                raise Transient(f"cannot list the pods of Job {name}: {_reason(error)}") from None
            raise

    def _log_lines(self, pod: dict[str, Any] | None) -> list[str]:
        """The last lines of the pod's log (its task container's), or one line saying why there are none."""
        if pod is None:
            return []
        meta = pod["metadata"]
        try:
            text = self.core.read_namespaced_pod_log(meta["name"], meta["namespace"], container="task",
                                                     tail_lines=LOG_KEPT, limit_bytes=BYTES,
                                                     _request_timeout=self.timeout)
        except ApiException as error:
            return [f"(no log: {_reason(error)})"]
        except Exception as error:  # noqa: BLE001 - a log is no reason not to end the task
            return [f"(no log: {message(error)})"]
        return str(text).splitlines()

    def _deleted(self, job: dict[str, Any]) -> None:
        """A Job deleted: if it had finished, its task ends as the Job did; if it had not,
        its workflow still running (not terminated), the task fails."""
        meta = job.get("metadata") or {}
        if (meta.get("labels") or {}).get(jobs.ENDED) != "true" and jobs.state(job) != "running":
            self._seen({**job, "metadata": {k: v for k, v in meta.items() if k != "deletionTimestamp"}})
            with self._lock:
                self._ended.discard(meta.get("uid"))
            return
        with self._lock:
            if meta.get("uid") in self._ended or (meta.get("labels") or {}).get(jobs.ENDED) == "true":
                self._ended.discard(meta.get("uid"))  # (gone: nothing to remember it for)
                return
            self._ended.add(meta.get("uid"))
        about, worker = jobs.about(job), self._worker
        if about is None or worker is None:
            return
        if worker.store.redis.hget(worker.keys.workflow(about["workflow"]), "status") != "running":
            return  # terminated (by this worker or another), or gone
        end = EndTask(about["workflow"], about["task"], int(about["seq"]), "failed",
                      error=f"Job {meta.get('name')} was deleted before it ended",
                      attempt=int(about.get("attempt") or 1),
                      started=about.get("started"), ended=time.time(), worker=worker.name)
        self._send(end, meta.get("uid") or meta.get("name"))

    def _send(self, end: EndTask, uid: str) -> None:
        """Add ``end`` to the end-task stream unless a worker did for this Job already
        (every worker of the namespace sees it end)."""
        worker = self._worker
        assert worker is not None
        fields = [part for pair in end.fields().items() for part in pair]
        part = worker.keys.of(end.workflow)
        worker.store.scripts.end_once(keys=[part.k8s_ended(uid), part.ends],
                                      args=[int(max(self.cleanup, 0)) + 2 * jobs.TTL_MARGIN, *fields])

    def _clean(self, job: dict[str, Any]) -> None:
        """Delete an ended Job ``cleanup`` seconds after it finished."""
        status = job.get("status") or {}
        finished = status.get("completionTime") or max(
            (c.get("lastTransitionTime") or "" for c in status.get("conditions") or []), default="")
        if not finished or _age(finished) < self.cleanup:
            return
        self._delete(job["metadata"]["name"], job["metadata"]["namespace"])

    def _delete(self, name: str, namespace: str) -> None:
        try:
            self.batch.delete_namespaced_job(name, namespace, propagation_policy="Background",
                                             _request_timeout=self.timeout)
        except ApiException as error:
            if error.status != 404:
                log.warning("k8s: cannot delete Job %s/%s: %s", namespace, name, _reason(error))

    # -- terminate ---------------------------------------------------------------------
    def terminate(self, workflow: str) -> int:
        """Delete the Jobs of ``workflow`` (their pods go with them); returns how many."""
        with self._lock:
            namespaces = sorted(self._namespaces)
        deleted = 0
        for namespace in namespaces:
            found = self._dict(self.batch.list_namespaced_job(
                namespace, label_selector=f"{self._selector()},{jobs.WORKFLOW}={jobs.label_text(workflow)}",
                _request_timeout=self.timeout))
            for job in found.get("items") or []:
                meta = job["metadata"]
                if (jobs.about(job) or {}).get("workflow") != workflow:
                    continue
                with self._lock:
                    self._ended.add(meta.get("uid"))
                self._delete(meta["name"], namespace)
                deleted += 1
        if deleted:
            log.info("k8s: deleted %d Jobs of terminated workflow %s", deleted, workflow)
        return deleted


def _tail(lines: list[str]) -> str:
    """The last LOG_LINES lines that are not blank, joined with `` | ``, at most LOG_BYTES bytes of them."""
    text = " | ".join([line for line in lines if line.strip()][-LOG_LINES:])
    data = text.encode()
    return text if len(data) <= LOG_BYTES else data[-LOG_BYTES:].decode("utf-8", "ignore")


def _reason(error: ApiException) -> str:
    """An API error in one line: the Status message if there is one."""
    try:
        text = json.loads(error.body or "").get("message")
    except (ValueError, AttributeError):
        text = None
    return f"{error.status} {text or error.reason}"


def _text(error: BaseException) -> str:
    return _reason(error) if isinstance(error, ApiException) else message(error)


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _age(timestamp: str) -> float:
    """Seconds since an RFC 3339 time of the API (``2024-01-02T03:04:05Z``)."""
    from datetime import datetime

    try:
        when = datetime.fromisoformat(timestamp)
    except ValueError:
        return 0.0
    return time.time() - when.timestamp()


def connect(namespace: str | None = None) -> tuple[client.ApiClient, str]:
    """An API client from the in-cluster configuration, else from the kubeconfig
    (``$KUBECONFIG`` or ~/.kube/config), and its namespace (the given one, else the pod's
    or the context's, else ``default``); raises ValueError in one line if neither is there."""
    from kubernetes import config

    configuration = client.Configuration()
    found = None
    try:
        config.load_incluster_config(client_configuration=configuration)
        try:
            with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as file:
                found = file.read().strip() or None
        except OSError:
            pass
    except config.ConfigException:
        try:
            config.load_kube_config(client_configuration=configuration)
            _, context = config.list_kube_config_contexts()
            found = (context or {}).get("context", {}).get("namespace")
        except Exception as error:  # noqa: BLE001 - missing, unreadable or wrong: one line
            raise ValueError(f"no Kubernetes configuration: not in a cluster, and no kubeconfig ({error})") from None
    return client.ApiClient(configuration), namespace or found or "default"
