"""The ``k8s:`` executor: each task runs as a Kubernetes Job, created through the official
client; the Jobs are followed with watches, and their ends sent as end-task messages."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from ..calling import message
from ..redis.protocol import EndTask
from ..redis.worker import DEFERRED, Job, Worker
from ..tasks import TaskError
from . import jobs

log = logging.getLogger("littleflow.k8s")

#: The namespace of the tasks this executor serves.
NAMESPACE = "k8s"
#: Lines of a failed pod's log that go into the task's error.
LOG_LINES = 20


class KubernetesTasks:
    """Executor of ``k8s:`` tasks. ``execute`` creates the task's Job (or finds the one a
    previous worker created: same name), acks the start message and defers; ``background``
    follows the Jobs of ``namespace`` (and of those tasks named) with watches resumed from
    the last resourceVersion, relists every ``resync`` seconds, ends the tasks of finished
    Jobs, deletes the Jobs of terminated workflows, and deletes ended Jobs ``cleanup``
    seconds after they finished."""

    def __init__(self, api: client.ApiClient, namespace: str = "default", *, cleanup: float = 3600.0,
                 resync: float = 60.0, retry: float = 1.0) -> None:
        self.api = api
        self.batch = client.BatchV1Api(api)
        self.core = client.CoreV1Api(api)
        self.namespace = namespace
        self.cleanup = cleanup
        self.resync = resync
        self.retry = retry
        self._namespaces: set[str] = {namespace}
        self._ended: set[str] = set()  # uids of Jobs whose task this worker ended, or deleted
        self._lock = threading.Lock()
        self._watches: set[watch.Watch] = set()
        self._worker: Worker | None = None
        self._stop: threading.Event | None = None

    def namespaces(self) -> set[str]:
        return {NAMESPACE}

    def serves(self, name: str) -> bool:
        return name.startswith(NAMESPACE + ":")

    # -- starting a task -----------------------------------------------------------------
    def execute(self, job: Job, worker: Worker) -> Any:
        task = job.task
        job.started = time.time()
        body = jobs.manifest(task, self.namespace, self.cleanup, job.started, worker.name)
        name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
        found = self._get(name, namespace)
        if found is None:
            try:
                self.batch.create_namespaced_job(namespace, body)
                log.info("k8s: created Job %s/%s for %s of %s", namespace, name, task.name, task.workflow)
            except ApiException as error:
                if error.status != 409:  # 409: created meanwhile (by the previous delivery): follow it
                    raise TaskError(f"cannot create Job {namespace}/{name}: {_reason(error)}") from None
        else:
            job.started = (jobs.about(found) or {}).get("started") or job.started
            log.info("k8s: Job %s/%s exists already: following it", namespace, name)
        worker.running(job, job.started)
        worker.streams.ack(job.stream, job.id)  # the Job is the record of the task from here on
        self._follow(namespace)
        if found is not None:
            try:
                self._seen(found)  # it may have finished while no worker followed it
            except Exception as error:  # noqa: BLE001 - acked already: the next list ends it
                log.warning("k8s: Job %s/%s: %s", namespace, name, message(error))
        return DEFERRED

    def _get(self, name: str, namespace: str) -> dict[str, Any] | None:
        try:
            return self._dict(self.batch.read_namespaced_job(name, namespace))
        except ApiException as error:
            if error.status == 404:
                return None
            raise TaskError(f"cannot read Job {namespace}/{name}: {_reason(error)}") from None

    def _dict(self, model: Any) -> dict[str, Any]:
        return self.api.sanitize_for_serialization(model)

    # -- following Jobs ----------------------------------------------------------------
    def background(self, worker: Worker, stop: threading.Event) -> None:
        """Follow the Jobs and the control channel until ``stop`` is set."""
        self._worker, self._stop = worker, stop
        threading.Thread(target=self._listen, args=(worker, stop), name="littleflow-k8s-control",
                         daemon=True).start()
        with self._lock:
            namespaces = sorted(self._namespaces)
        for namespace in namespaces:
            self._start_watch(namespace)
        stop.wait()
        with self._lock:
            for follower in self._watches:
                follower.stop()  # (closes its connection: the thread sees the stop at once)

    def _follow(self, namespace: str) -> None:
        with self._lock:
            if namespace in self._namespaces:
                return
            self._namespaces.add(namespace)
        if self._stop is not None:
            self._start_watch(namespace)

    def _start_watch(self, namespace: str) -> None:
        threading.Thread(target=self._watch, args=(namespace,), name=f"littleflow-k8s-watch-{namespace}",
                         daemon=True).start()

    def _watch(self, namespace: str) -> None:
        """List, then watch from the list's resourceVersion; on a dropped connection watch
        again from the last version seen; on 410 Gone (too old) or every ``resync`` s, list again."""
        stop = self._stop
        assert stop is not None
        version: str | None = None
        relist = 0.0
        while not stop.is_set():
            follower = watch.Watch()
            try:
                if version is None or time.monotonic() >= relist:
                    version = self.resync_now(namespace)
                    relist = time.monotonic() + self.resync
                with self._lock:
                    self._watches.add(follower)
                if stop.is_set():
                    break
                timeout = max(1, int(relist - time.monotonic()))
                for event in follower.stream(self.batch.list_namespaced_job, namespace, label_selector=jobs.SELECTOR,
                                             resource_version=version, timeout_seconds=timeout,
                                             allow_watch_bookmarks=True):
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
                log.warning("k8s: watching Jobs in %s: %s", namespace, _reason(error))
                stop.wait(self.retry)
            except Exception as error:  # noqa: BLE001 - the API server away for a moment: watch again
                if not stop.is_set():
                    log.warning("k8s: watching Jobs in %s: %s", namespace, message(error))
                    stop.wait(self.retry)
            finally:
                with self._lock:
                    self._watches.discard(follower)

    def resync_now(self, namespace: str) -> str:
        """List the Jobs of ``namespace``: end those finished, delete those ended long ago;
        returns the list's resourceVersion."""
        found = self._dict(self.batch.list_namespaced_job(namespace, label_selector=jobs.SELECTOR))
        for job in found.get("items") or []:
            self._seen(job)
        return (found.get("metadata") or {}).get("resourceVersion") or ""

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
        pod = jobs.latest_pod(self._pods(meta["name"], meta["namespace"]))
        if outcome == "succeeded":
            end = EndTask(about["workflow"], about["task"], int(about["seq"]), "done",
                          jobs.output(jobs.termination_message(pod)))
        else:
            error = f"Job {meta['name']} failed: {jobs.failure(job)}"
            tail = self._log_tail(pod)
            if tail:
                error += f"; last lines of its log: {tail}"
            end = EndTask(about["workflow"], about["task"], int(about["seq"]), "failed", error=error)
        end.attempt, end.started, end.ended, end.worker = (int(about.get("attempt") or 1), about.get("started"),
                                                          time.time(), worker.name)
        self._send(end, meta.get("uid") or meta["name"])
        log.info("k8s: Job %s %s", meta["name"], outcome)
        try:
            self.batch.patch_namespaced_job(meta["name"], meta["namespace"], {"metadata": {"labels": {
                jobs.ENDED: "true"}}})
        except ApiException as error:  # sent twice at worst, and the engine applies the first
            if error.status != 404:
                log.warning("k8s: cannot label Job %s ended: %s", meta["name"], _reason(error))

    def _pods(self, name: str, namespace: str) -> list[dict[str, Any]]:
        try:
            return self._dict(self.core.list_namespaced_pod(namespace, label_selector=f"job-name={name}")).get(
                "items") or []
        except ApiException as error:
            log.warning("k8s: cannot list the pods of Job %s: %s", name, _reason(error))
            return []

    def _log_tail(self, pod: dict[str, Any] | None) -> str:
        if pod is None:
            return ""
        meta = pod["metadata"]
        try:
            text = self.core.read_namespaced_pod_log(meta["name"], meta["namespace"], container="task",
                                                     tail_lines=LOG_LINES)
        except ApiException as error:
            return f"(no log: {_reason(error)})"
        return " | ".join(line for line in str(text).splitlines() if line.strip())

    def _deleted(self, job: dict[str, Any]) -> None:
        """A Job deleted before its task ended, its workflow still running (not terminated):
        the task fails."""
        meta = job.get("metadata") or {}
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
                      error=f"Job {meta.get('name')} was deleted before it ended", attempt=int(about.get("attempt") or 1),
                      started=about.get("started"), ended=time.time(), worker=worker.name)
        self._send(end, meta.get("uid") or meta.get("name"))

    def _send(self, end: EndTask, uid: str) -> None:
        """Add ``end`` to the end-task stream unless a worker did for this Job already
        (every worker of the namespace sees it end)."""
        worker = self._worker
        assert worker is not None
        fields = [part for pair in end.fields().items() for part in pair]
        worker.store.scripts.end_once(keys=[f"{worker.keys.prefix}:k8s:ended:{uid}", worker.keys.ends],
                                      args=[int(max(self.cleanup, 0) + 86400), *fields])

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
            self.batch.delete_namespaced_job(name, namespace, propagation_policy="Background")
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
                namespace, label_selector=f"{jobs.SELECTOR},{jobs.WORKFLOW}={jobs.label_text(workflow)}"))
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

    def _listen(self, worker: Worker, stop: threading.Event) -> None:
        """Delete the Jobs of the workflows terminated (``{"cancel": ID}`` on the control channel)."""
        while not stop.is_set():
            try:
                pubsub = worker.raw.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(worker.keys.control)
                while not stop.is_set():
                    note = pubsub.get_message(timeout=0.5)
                    if note is None:
                        continue
                    try:
                        workflow = json.loads(note["data"]).get("cancel")
                    except (ValueError, AttributeError):
                        continue
                    if isinstance(workflow, str):
                        self.terminate(workflow)
            except Exception as error:  # noqa: BLE001 - Redis or the API server away: listen again
                log.warning("k8s: control channel: %s", message(error))
                stop.wait(self.retry)


def _reason(error: ApiException) -> str:
    """An API error in one line: the Status message if there is one."""
    try:
        text = json.loads(error.body or "").get("message")
    except (ValueError, AttributeError):
        text = None
    return f"{error.status} {text or error.reason}"


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
