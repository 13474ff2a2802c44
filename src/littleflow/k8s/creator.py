"""The creating half of the ``k8s:`` executor: a task's start makes its Job, or finds the one
an earlier delivery made (same name), then hands it to the follower."""

from __future__ import annotations

import logging
import time
from typing import Any

from kubernetes.client.rest import ApiException

from ..calling import Cancelled, message
from ..redis.protocol import StartTask
from ..redis.worker import DEFERRED, Handle, Job
from ..tasks import TaskError
from ..values import brief
from . import jobs
from .api import JobsApi, Transient, describe, reason, transient
from .follower import JobFollower

log = logging.getLogger("littleflow.k8s")


class JobCreator:
    """Starts ``k8s:`` tasks as Jobs in ``namespace`` (unless a task names its own), trying
    the API ``attempts`` times (waiting ``retry`` s, doubled up to ``retry_max``) before
    leaving a start for a later delivery; ``follower`` follows the Jobs from there on."""

    def __init__(
        self,
        api: JobsApi,
        namespace: str,
        follower: JobFollower,
        *,
        cleanup: float = 3600.0,
        retry: float = 1.0,
        retry_max: float = 30.0,
        attempts: int = 4,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.follower = follower
        self.cleanup = cleanup
        self.retry = retry
        self.retry_max = retry_max
        self.attempts = attempts

    def start(self, job: Job, handle: Handle) -> Any:
        """Create the task's Job (or find it), ack its start message and defer: the Job is the
        record of the task from then on. Raises to fail the task (Cancelled if its workflow was
        terminated); returns DEFERRED unacked if the API server cannot be reached for now."""
        task = job.task
        job.started = time.time()
        body = jobs.manifest(task, self.namespace, self.cleanup, job.started, handle.name, handle.prefix)
        name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
        if not handle.workflow_running(task.workflow):
            raise Cancelled(f"the workflow was terminated (or is gone): no Job {namespace}/{name} created")
        try:
            found = self._retrying(lambda: self._create(body, task.name))
        except Transient as error:  # unacked: delivered again (the name makes that safe)
            log.warning(
                "k8s: cannot start Job %s/%s now (%s); its start is left for a later delivery",
                namespace,
                name,
                error,
            )
            return DEFERRED
        if found is not None:
            self._check_owner(found, task)
            job.started = (jobs.about(found) or {}).get("started") or job.started
            log.info("k8s: Job %s/%s exists already: following it", namespace, name)
        if not handle.workflow_running(
            task.workflow
        ):  # terminated while it was created: no one else deletes it
            try:
                now = self._retrying(lambda: self.api.get(name, namespace))
            except (Transient, TaskError):  # (cannot tell: it goes, as a terminated workflow's would)
                now = None
            if now is not None and jobs.state(now) != "running":  # (it ended already: the workflow went on
                handle.ack(job)  # with its end, sent by the workers following it)
                return DEFERRED
            self.api.delete(name, namespace)
            raise Cancelled("the workflow was terminated")
        handle.running(job, job.started)
        handle.ack(job)  # the Job is the record of the task from here on
        self.follower.follow(namespace, handle)
        if found is not None:
            try:
                self.follower.seen(found)  # it may have finished while no worker followed it
            except Exception as error:  # noqa: BLE001 - acked already: the next list ends it
                log.warning("k8s: Job %s/%s: %s", namespace, name, message(error))
        return DEFERRED

    def _retrying(self, call: Any) -> Any:
        """``call()``, tried ``attempts`` times while the API server fails transiently;
        raises Transient after the last."""
        delay = self.retry
        for attempt in range(self.attempts):
            try:
                return call()
            except Exception as error:
                if not transient(error):
                    raise
                if attempt + 1 >= self.attempts:
                    raise Transient(describe(error)) from None
                time.sleep(delay)
                delay = min(delay * 2, self.retry_max)
        raise AssertionError("unreachable")

    def _create(self, body: dict[str, Any], task_name: str) -> dict[str, Any] | None:
        """Create the Job unless it exists; returns the existing one, or None if created."""
        name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
        found = self.api.get(name, namespace)
        if found is not None:
            return found
        try:
            self.api.batch.create_namespaced_job(namespace, body, _request_timeout=self.api.timeout)
            log.info("k8s: created Job %s/%s for %s", namespace, name, task_name)
            return None
        except ApiException as error:
            if error.status == 409:  # created meanwhile (by an earlier delivery): follow it
                found = self.api.get(name, namespace)
                if found is not None:
                    return found
                raise Transient(f"Job {namespace}/{name} exists and does not") from None
            if transient(error):
                raise
            raise TaskError(f"cannot create Job {namespace}/{name}: {reason(error)}") from None

    def _check_owner(self, found: dict[str, Any], task: StartTask) -> None:
        """A Job of this name must be this task's run: else the names collide."""
        about = jobs.about(found) or {}
        mine = (task.workflow, task.task, task.seq)
        if (about.get("workflow"), about.get("task"), about.get("seq")) != mine:
            meta = found.get("metadata") or {}
            raise TaskError(
                f"Job {meta.get('namespace')}/{meta.get('name')} exists but is not this task's run "
                f"(it is {brief(about.get('workflow'))} {brief(about.get('task'))} run {brief(about.get('seq'))})"
            )
