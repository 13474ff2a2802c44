"""The Kubernetes API calls both halves of the ``k8s:`` executor make (reading and deleting a
Job), and how their errors are told apart: transient (try again) or not."""

from __future__ import annotations

import json
import logging
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.rest import ApiException

from ..calling import message
from ..tasks import TaskError

log = logging.getLogger("littleflow.k8s")


class Transient(Exception):
    """The API server could not answer for now (5xx, 429, a timeout, no connection)."""


def transient(error: BaseException) -> bool:
    """Whether ``error`` is one the API server may not make again in a moment."""
    if isinstance(error, ApiException):
        return error.status in (0, None, 429) or (error.status or 0) >= 500
    return isinstance(error, (urllib3.exceptions.HTTPError, OSError, Transient))


def reason(error: ApiException) -> str:
    """An API error in one line: the Status message if there is one."""
    try:
        text = json.loads(error.body or "").get("message")
    except (ValueError, AttributeError):
        text = None
    return f"{error.status} {text or error.reason}"


def describe(error: BaseException) -> str:
    """Any error in one line (an API error's Status message if it has one)."""
    return reason(error) if isinstance(error, ApiException) else message(error)


class JobsApi:
    """The official client's Job and pod APIs, each call bounded by ``timeout`` seconds."""

    def __init__(self, api: client.ApiClient, timeout: float = 30.0) -> None:
        self.api = api
        self.batch = client.BatchV1Api(api)
        self.core = client.CoreV1Api(api)
        self.timeout = timeout

    def as_dict(self, model: Any) -> dict[str, Any]:
        """A model of the client as the JSON of the API."""
        return self.api.sanitize_for_serialization(model)

    def get(self, name: str, namespace: str) -> dict[str, Any] | None:
        """The Job, or None if there is none; transient errors raise as they are, others as TaskError."""
        try:
            return self.as_dict(
                self.batch.read_namespaced_job(name, namespace, _request_timeout=self.timeout)
            )
        except ApiException as error:
            if error.status == 404:
                return None
            if transient(error):
                raise
            raise TaskError(f"cannot read Job {namespace}/{name}: {reason(error)}") from None

    def delete(self, name: str, namespace: str) -> None:
        """Delete the Job (its pods go with it); a failure is logged (the next resync tries again)."""
        try:
            self.batch.delete_namespaced_job(
                name, namespace, propagation_policy="Background", _request_timeout=self.timeout
            )
        except ApiException as error:
            if error.status != 404:
                log.warning("k8s: cannot delete Job %s/%s: %s", namespace, name, reason(error))
