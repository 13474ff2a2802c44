"""The ``k8s:`` executor: each task runs as a Kubernetes Job, created through the official
client (:mod:`.creator`); the Jobs are followed with watches, and their ends sent as end-task
messages (:mod:`.follower`)."""

from __future__ import annotations

import threading
from typing import Any

from kubernetes import client

from ..redis.worker import Executor, Handle, Job
from .api import JobsApi
from .creator import JobCreator
from .follower import JobFollower

#: The namespace of the tasks this executor serves.
NAMESPACE = "k8s"


class KubernetesTasks(Executor):
    """Executor of ``k8s:`` tasks. ``execute`` creates the task's Job (or finds the one a
    previous worker created: same name), acks the start message and defers; ``background``
    follows the Jobs of ``namespace`` (and of those tasks named) with watches resumed from
    the last resourceVersion, relists every ``resync`` seconds, ends the tasks of finished
    Jobs, deletes the Jobs of terminated workflows, and deletes ended Jobs ``cleanup``
    seconds after they finished."""

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str = "default",
        *,
        cleanup: float = 3600.0,
        resync: float = 60.0,
        retry: float = 1.0,
        retry_max: float = 30.0,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        watch_slack: float = 30.0,
        attempts: int = 4,
    ) -> None:
        """``retry``: the first wait after an API error, doubled up to ``retry_max``;
        ``timeout``: seconds an API call may take (a watch: its own time plus ``watch_slack``);
        ``attempts``: API calls tried when starting a task before leaving its message for later."""
        calls = JobsApi(api, timeout)
        self.namespace = namespace
        self.follower = JobFollower(
            calls,
            namespace,
            cleanup=cleanup,
            resync=resync,
            retry=retry,
            retry_max=retry_max,
            connect_timeout=connect_timeout,
            watch_slack=watch_slack,
        )
        self.creator = JobCreator(
            calls,
            namespace,
            self.follower,
            cleanup=cleanup,
            retry=retry,
            retry_max=retry_max,
            attempts=attempts,
        )

    def namespaces(self) -> set[str]:
        return {NAMESPACE}

    def serves(self, name: str) -> bool:
        return name.startswith(NAMESPACE + ":")

    def execute(self, job: Job, handle: Handle) -> Any:
        return self.creator.start(job, handle)

    def background(self, handle: Handle, stop: threading.Event) -> None:
        """Follow the Jobs until ``stop`` is set."""
        self.follower.run(handle, stop)

    def terminate(self, workflow: str) -> int:
        """Delete the Jobs of ``workflow`` (their pods go with them); returns how many."""
        return self.follower.terminate(workflow)


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
            raise ValueError(
                f"no Kubernetes configuration: not in a cluster, and no kubeconfig ({error})"
            ) from None
    return client.ApiClient(configuration), namespace or found or "default"
