"""The watching half of the ``k8s:`` executor: follows the Jobs of its namespaces with watches
(resumed, relisted), sends the ends of their tasks once, deletes the Jobs of terminated
workflows and ended Jobs after the cleanup time."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from kubernetes import watch
from kubernetes.client.rest import ApiException

from ..calling import message
from ..redis import protocol
from ..redis.protocol import EndTask
from ..redis.worker import Handle
from ..tasklogs import BYTES, RunLog
from . import jobs
from .api import JobsApi, Transient, describe, reason, transient

log = logging.getLogger("littleflow.k8s")

#: Lines of a failed pod's log that go into the task's error, and at most how many bytes of it.
LOG_LINES = 20
LOG_BYTES = 16384
#: Lines of an ended pod's log read (at most tasklogs.BYTES bytes): kept as the task run's log.
LOG_KEPT = 200
#: A termination message this long that is not JSON was most likely cut by Kubernetes.
CUT_OUTPUT = 4000


class JobFollower:
    """Follows the Jobs of ``namespace`` (and of the namespaces tasks named) with watches
    resumed from the last resourceVersion, relists every ``resync`` seconds, ends the tasks of
    finished Jobs, deletes the Jobs of terminated workflows, and deletes ended Jobs
    ``cleanup`` seconds after they finished. ``retry``: the first wait after an API error,
    doubled up to ``retry_max``; a watch may take its own time plus ``watch_slack`` seconds,
    ``connect_timeout`` to connect."""

    def __init__(
        self,
        api: JobsApi,
        namespace: str,
        *,
        cleanup: float = 3600.0,
        resync: float = 60.0,
        retry: float = 1.0,
        retry_max: float = 30.0,
        connect_timeout: float = 10.0,
        watch_slack: float = 30.0,
    ) -> None:
        self.api = api
        self.cleanup = cleanup
        self.resync = resync
        self.retry = retry
        self.retry_max = retry_max
        self.connect_timeout = connect_timeout
        self.watch_slack = watch_slack
        self._namespaces: set[str] = {namespace}
        self._watching: set[str] = set()  # namespaces with a watch thread
        self._ended: set[str] = set()  # uids of Jobs whose task this worker ended, or deleted
        self._lock = threading.Lock()
        self._watches: set[watch.Watch] = set()
        self._handle: Handle | None = None
        self._stop: threading.Event | None = None

    def run(self, handle: Handle, stop: threading.Event) -> None:
        """Follow the Jobs until ``stop`` is set (the worker calls :meth:`terminate`)."""
        self._handle, self._stop = handle, stop
        while not stop.is_set():  # the namespaces any worker of this installation followed
            try:
                known = handle.followed_namespaces()
                with self._lock:
                    mine = sorted(self._namespaces)
                handle.follow_namespaces(*mine)
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
        return jobs.selector(self._handle.prefix if self._handle is not None else protocol.PREFIX)

    def follow(self, namespace: str, handle: Handle) -> None:
        """Follow ``namespace`` too, and say so in Redis for the workers that start later."""
        with self._lock:
            if namespace in self._namespaces:
                return
            self._namespaces.add(namespace)
        try:
            handle.follow_namespaces(namespace)
        except Exception as error:  # noqa: BLE001 - this worker follows it all the same
            log.warning("k8s: cannot record namespace %s as followed: %s", namespace, message(error))
        if self._stop is not None:
            self._start_watch(namespace)

    def _start_watch(self, namespace: str) -> None:
        with self._lock:
            if namespace in self._watching:
                return
            self._watching.add(namespace)
        threading.Thread(
            target=self._watch, args=(namespace,), name=f"littleflow-k8s-watch-{namespace}", daemon=True
        ).start()

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
                for event in follower.stream(
                    self.api.batch.list_namespaced_job,
                    namespace,
                    label_selector=self._selector(),
                    resource_version=version,
                    timeout_seconds=timeout,
                    allow_watch_bookmarks=True,
                    _request_timeout=(self.connect_timeout, timeout + self.watch_slack),
                ):
                    delay = self.retry
                    raw = event["raw_object"]
                    version = (raw.get("metadata") or {}).get("resourceVersion") or version
                    try:
                        if event["type"] in ("ADDED", "MODIFIED"):
                            self.seen(raw)
                        elif event["type"] == "DELETED":
                            self._deleted(raw)
                    except Exception as error:  # noqa: BLE001 - Redis away a moment: the next list sees it again
                        log.warning(
                            "k8s: Job %s: %s", (raw.get("metadata") or {}).get("name"), message(error)
                        )
                        relist = 0.0
                    if stop.is_set():
                        break
            except ApiException as error:
                if error.status == 410:
                    log.info("k8s: watch of %s expired; listing again", namespace)
                    version = None
                    continue
                log.warning("k8s: watching Jobs in %s: %s; again in %g s", namespace, reason(error), delay)
                stop.wait(delay)
                delay = min(delay * 2, self.retry_max)
            except Exception as error:  # noqa: BLE001 - the API server away for a moment: watch again
                if not stop.is_set():
                    log.warning(
                        "k8s: watching Jobs in %s: %s; again in %g s", namespace, describe(error), delay
                    )
                    stop.wait(delay)
                    delay = min(delay * 2, self.retry_max)
            finally:
                with self._lock:
                    self._watches.discard(follower)

    def resync_now(self, namespace: str) -> str:
        """List the Jobs of ``namespace``: end those finished, delete those ended long ago
        and those running for a workflow no longer running (a cancel missed); returns the
        list's resourceVersion."""
        found = self.api.as_dict(
            self.api.batch.list_namespaced_job(
                namespace, label_selector=self._selector(), _request_timeout=self.api.timeout
            )
        )
        for job in found.get("items") or []:
            try:
                self.seen(job)
                self._orphan(job)
            except Exception as error:  # noqa: BLE001 - one Job must not stall the others: the next list sees it
                log.warning("k8s: Job %s: %s", (job.get("metadata") or {}).get("name"), message(error))
        return (found.get("metadata") or {}).get("resourceVersion") or ""

    def _orphan(self, job: dict[str, Any]) -> None:
        """Delete a running Job whose workflow is no longer running, or gone."""
        meta, about, handle = job.get("metadata") or {}, jobs.about(job), self._handle
        if (
            handle is None
            or about is None
            or meta.get("deletionTimestamp")
            or jobs.state(job) != "running"
            or (meta.get("labels") or {}).get(jobs.ENDED) == "true"
        ):
            return
        if handle.workflow_running(about["workflow"]):
            return
        with self._lock:
            self._ended.add(meta.get("uid"))
        log.info(
            "k8s: deleting Job %s: its workflow %s is no longer running", meta.get("name"), about["workflow"]
        )
        self.api.delete(meta["name"], meta["namespace"])

    def seen(self, job: dict[str, Any]) -> None:
        """A Job as it is now: end its task if it finished; clean it up if it ended long ago."""
        meta = job.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            return
        if (meta.get("labels") or {}).get(jobs.ENDED) == "true":
            self._clean(job)
            return
        outcome = jobs.state(job)
        if outcome == "running" or self._handle is None:
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
        handle = self._handle
        assert handle is not None
        meta = job["metadata"]
        about = jobs.about(job)
        if about is None:
            log.warning("k8s: Job %s has no littleflow.io/task annotation; left alone", meta.get("name"))
            return
        try:
            pod = jobs.latest_pod(self._pods(meta["name"], meta["namespace"]))
            unread = None
        except ApiException as error:  # (transient ones raise: the next list tries again)
            pod, unread = None, f"cannot list the pods of Job {meta['name']}: {reason(error)}"
        text = jobs.termination_message(pod) if outcome == "succeeded" else None
        lines = self._log_lines(pod)
        if outcome == "succeeded" and unread:
            end = EndTask(
                about["workflow"],
                about["task"],
                int(about["seq"]),
                "failed",
                error=f"the Job succeeded but its output cannot be read: {unread}",
            )
        elif outcome == "succeeded" and text is None:
            end = EndTask(
                about["workflow"],
                about["task"],
                int(about["seq"]),
                "failed",
                error=f"Job {meta['name']}: the Job succeeded but its output was lost (pod gone)",
            )
        elif outcome == "succeeded" and len(text.encode()) >= CUT_OUTPUT and not _is_json(text):
            end = EndTask(
                about["workflow"],
                about["task"],
                int(about["seq"]),
                "failed",
                error=f"Job {meta['name']}: its output is {len(text.encode())} bytes that are not JSON: "
                f"most likely cut at Kubernetes' {jobs.OUTPUT_LIMIT}-byte termination message "
                "limit (put big results in storage and output their address)",
            )
        elif outcome == "succeeded":
            end = EndTask(about["workflow"], about["task"], int(about["seq"]), "done", jobs.output(text))
        else:
            error = f"Job {meta['name']} failed: {jobs.failure(job)}"
            tail = _tail(lines)
            if tail:
                error += f"; last lines of its log: {tail}"
            end = EndTask(about["workflow"], about["task"], int(about["seq"]), "failed", error=error)
        end.attempt, end.started, end.ended, end.worker = (
            int(about.get("attempt") or 1),
            about.get("started"),
            time.time(),
            handle.name,
        )
        if lines:
            kept = RunLog()
            for line in lines:
                kept.add(line)
            end.log = kept.to_json()
        self._send(end, meta.get("uid") or meta["name"])
        log.info("k8s: Job %s %s", meta["name"], outcome)
        try:
            self.api.batch.patch_namespaced_job(
                meta["name"],
                meta["namespace"],
                {"metadata": {"labels": {jobs.ENDED: "true"}}},
                _request_timeout=self.api.timeout,
            )
        except ApiException as error:  # sent twice at worst, and the engine applies the first
            if error.status != 404:
                log.warning("k8s: cannot label Job %s ended: %s", meta["name"], reason(error))

    def _pods(self, name: str, namespace: str) -> list[dict[str, Any]]:
        """The Job's pods; raises on API errors (transient ones: Transient)."""
        try:
            return (
                self.api.as_dict(
                    self.api.core.list_namespaced_pod(
                        namespace, label_selector=f"job-name={name}", _request_timeout=self.api.timeout
                    )
                ).get("items")
                or []
            )
        except ApiException as error:
            if transient(error):
                raise Transient(f"cannot list the pods of Job {name}: {reason(error)}") from None
            raise

    def _log_lines(self, pod: dict[str, Any] | None) -> list[str]:
        """The last lines of the pod's log (its task container's), or one line saying why there are none."""
        if pod is None:
            return []
        meta = pod["metadata"]
        try:
            text = self.api.core.read_namespaced_pod_log(
                meta["name"],
                meta["namespace"],
                container="task",
                tail_lines=LOG_KEPT,
                limit_bytes=BYTES,
                _request_timeout=self.api.timeout,
            )
        except ApiException as error:
            return [f"(no log: {reason(error)})"]
        except Exception as error:  # noqa: BLE001 - a log is no reason not to end the task
            return [f"(no log: {message(error)})"]
        return str(text).splitlines()

    def _deleted(self, job: dict[str, Any]) -> None:
        """A Job deleted: if it had finished, its task ends as the Job did; if it had not,
        its workflow still running (not terminated), the task fails."""
        meta = job.get("metadata") or {}
        if (meta.get("labels") or {}).get(jobs.ENDED) != "true" and jobs.state(job) != "running":
            self.seen({**job, "metadata": {k: v for k, v in meta.items() if k != "deletionTimestamp"}})
            with self._lock:
                self._ended.discard(meta.get("uid"))
            return
        with self._lock:
            if meta.get("uid") in self._ended or (meta.get("labels") or {}).get(jobs.ENDED) == "true":
                self._ended.discard(meta.get("uid"))  # (gone: nothing to remember it for)
                return
            self._ended.add(meta.get("uid"))
        about, handle = jobs.about(job), self._handle
        if about is None or handle is None:
            return
        if not handle.workflow_running(about["workflow"]):
            return  # terminated (by this worker or another), or gone
        end = EndTask(
            about["workflow"],
            about["task"],
            int(about["seq"]),
            "failed",
            error=f"Job {meta.get('name')} was deleted before it ended",
            attempt=int(about.get("attempt") or 1),
            started=about.get("started"),
            ended=time.time(),
            worker=handle.name,
        )
        self._send(end, meta.get("uid") or meta.get("name"))

    def _send(self, end: EndTask, uid: str) -> None:
        """Add ``end`` to the end-task stream unless a worker did for this Job already
        (every worker of the namespace sees it end)."""
        handle = self._handle
        assert handle is not None
        handle.end_once(uid, end, int(max(self.cleanup, 0)) + 2 * jobs.TTL_MARGIN)

    def _clean(self, job: dict[str, Any]) -> None:
        """Delete an ended Job ``cleanup`` seconds after it finished."""
        status = job.get("status") or {}
        finished = status.get("completionTime") or max(
            (c.get("lastTransitionTime") or "" for c in status.get("conditions") or []), default=""
        )
        if not finished or _age(finished) < self.cleanup:
            return
        self.api.delete(job["metadata"]["name"], job["metadata"]["namespace"])

    def terminate(self, workflow: str) -> int:
        """Delete the Jobs of ``workflow`` (their pods go with them); returns how many."""
        with self._lock:
            namespaces = sorted(self._namespaces)
        deleted = 0
        for namespace in namespaces:
            found = self.api.as_dict(
                self.api.batch.list_namespaced_job(
                    namespace,
                    label_selector=f"{self._selector()},{jobs.WORKFLOW}={jobs.label_text(workflow)}",
                    _request_timeout=self.api.timeout,
                )
            )
            for job in found.get("items") or []:
                meta = job["metadata"]
                if (jobs.about(job) or {}).get("workflow") != workflow:
                    continue
                with self._lock:
                    self._ended.add(meta.get("uid"))
                self.api.delete(meta["name"], namespace)
                deleted += 1
        if deleted:
            log.info("k8s: deleted %d Jobs of terminated workflow %s", deleted, workflow)
        return deleted


def _tail(lines: list[str]) -> str:
    """The last LOG_LINES lines that are not blank, joined with `` | ``, at most LOG_BYTES bytes of them."""
    text = " | ".join([line for line in lines if line.strip()][-LOG_LINES:])
    data = text.encode()
    return text if len(data) <= LOG_BYTES else data[-LOG_BYTES:].decode("utf-8", "ignore")


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
