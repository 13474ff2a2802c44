"""A small Kubernetes API server for tests: the REST endpoints the ``k8s:`` executor
uses, with the real JSON shapes, over real HTTP, so the official client runs against it
unmodified. Jobs (batch/v1): create, read, list, watch, patch, delete; pods (v1): list
and log. The test moves Jobs along (``finish``, ``fail``), drops watch connections,
forgets old versions (a watch from before gets 410 Gone), hangs watches (``hang``: a
connection accepted that never says anything), answers with errors (``faults``), changes
Jobs without events (``muted``), and reads ``requests``."""

from __future__ import annotations

import copy
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

#: A kubeconfig for the test server at ``url`` (``KUBECONFIG.format(url=…)``): a token, namespace batch.
KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {{server: "{url}"}}
users:
- name: test
  user: {{token: "t"}}
contexts:
- name: test
  context: {{cluster: test, user: test, namespace: batch}}
current-context: test
"""

JOBS = re.compile(r"^/apis/batch/v1/namespaces/([^/]+)/jobs(?:/([^/]+))?$")
PODS = re.compile(r"^/api/v1/namespaces/([^/]+)/pods(?:/([^/]+)(/log)?)?$")


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def selected(obj: dict[str, Any], selector: str | None) -> bool:
    """Equality-based label selector: ``a=b,c=d``."""
    labels = obj.get("metadata", {}).get("labels") or {}
    for term in filter(None, (selector or "").split(",")):
        key, _, value = term.partition("=")
        if labels.get(key) != value.lstrip("="):
            return False
    return True


def merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """A JSON merge patch (RFC 7386)."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


class KubernetesServer:
    """The server's state, and what tests do to it."""

    def __init__(self) -> None:
        self.jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.logs: dict[tuple[str, str], str] = {}
        self.events: list[tuple[int, str, dict[str, Any]]] = []  # (resourceVersion, type, Job)
        self.oldest = 0  # watches from versions below this get 410 Gone
        self.version = 100
        self.requests: list[tuple[str, str]] = []  # (method, path with query)
        self.changed = threading.Condition()
        self.generation = 0  # bumped to drop every open watch
        self.watches: list[socket.socket] = []
        self.hang = False  # watches are accepted, then never answered nor closed
        self.hung = 0  # watches hung so far
        self.release = threading.Event()  # ends the hung watches
        self.faults: list[
            tuple[str, str, int]
        ] = []  # (method, path fragment, status): each answers one request
        self.muted = False  # changes make no watch events
        self.on_create: Any = None  # called with the Job each time one is created
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        self.thread = threading.Thread(target=self.http.serve_forever, name="k8s-test-server", daemon=True)

    # -- state changes, each an event -------------------------------------------------
    def _change(self, kind: str, job: dict[str, Any]) -> None:
        with self.changed:
            self.version += 1
            job["metadata"]["resourceVersion"] = str(self.version)
            if not self.muted:
                self.events.append((self.version, kind, copy.deepcopy(job)))
            self.changed.notify_all()

    def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        job = copy.deepcopy(body)
        meta = job.setdefault("metadata", {})
        meta.update(namespace=namespace, uid=str(uuid.uuid4()), creationTimestamp=now(), generation=1)
        job["status"] = {"active": 1, "startTime": now()}
        pod_name = f"{meta['name']}-{uuid.uuid4().hex[:5]}"
        container = job["spec"]["template"]["spec"]["containers"][0]
        self.pods[(namespace, pod_name)] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name,
                "namespace": namespace,
                "uid": str(uuid.uuid4()),
                "creationTimestamp": now(),
                "labels": {
                    **job["spec"]["template"]["metadata"].get("labels", {}),
                    "job-name": meta["name"],
                    "batch.kubernetes.io/job-name": meta["name"],
                },
                "annotations": job["spec"]["template"]["metadata"].get("annotations", {}),
            },
            "spec": job["spec"]["template"]["spec"],
            "status": {
                "phase": "Running",
                "containerStatuses": [
                    {
                        "name": container["name"],
                        "image": container["image"],
                        "imageID": "",
                        "ready": True,
                        "restartCount": 0,
                        "state": {"running": {"startedAt": now()}},
                    }
                ],
            },
        }
        self.jobs[(namespace, meta["name"])] = job
        self._change("ADDED", job)
        return job

    def job(self, name: str, namespace: str = "default") -> dict[str, Any]:
        return self.jobs[(namespace, name)]

    def pod_of(self, name: str, namespace: str = "default") -> dict[str, Any]:
        (pod,) = [
            p
            for (ns, _), p in self.pods.items()
            if ns == namespace and p["metadata"]["labels"]["job-name"] == name
        ]
        return pod

    def _end_pod(self, name: str, namespace: str, code: int, message: str, log: str) -> None:
        pod = self.pod_of(name, namespace)
        pod["status"]["phase"] = "Succeeded" if code == 0 else "Failed"
        pod["status"]["containerStatuses"][0].update(
            ready=False,
            state={
                "terminated": {
                    "exitCode": code,
                    "reason": "Completed" if code == 0 else "Error",
                    "message": message,
                    "startedAt": now(),
                    "finishedAt": now(),
                }
            },
        )
        self.logs[(namespace, pod["metadata"]["name"])] = log

    def finish(self, name: str, output: str = "", namespace: str = "default", log: str = "") -> None:
        """The Job's pod wrote ``output`` to its termination message and exited 0: the Job is Complete."""
        self._end_pod(name, namespace, 0, output, log)
        job = self.job(name, namespace)
        job["status"] = {
            "succeeded": 1,
            "startTime": job["status"].get("startTime"),
            "completionTime": now(),
            "conditions": [
                {"type": t, "status": "True", "lastProbeTime": now(), "lastTransitionTime": now()}
                for t in ("SuccessCriteriaMet", "Complete")
            ],
        }
        self._change("MODIFIED", job)

    def fail(
        self,
        name: str,
        reason: str = "BackoffLimitExceeded",
        log: str = "",
        namespace: str = "default",
        message: str = "Job has reached the specified backoff limit",
    ) -> None:
        """The Job's pod exited 1 after logging ``log``: the Job Failed with ``reason``."""
        self._end_pod(name, namespace, 1, "", log)
        job = self.job(name, namespace)
        job["status"] = {
            "failed": 1,
            "startTime": job["status"].get("startTime"),
            "conditions": [
                {
                    "type": t,
                    "status": "True",
                    "reason": reason,
                    "message": message,
                    "lastProbeTime": now(),
                    "lastTransitionTime": now(),
                }
                for t in ("FailureTarget", "Failed")
            ],
        }
        self._change("MODIFIED", job)

    def delete(self, namespace: str, name: str, keep_pods: bool = False) -> dict[str, Any] | None:
        job = self.jobs.pop((namespace, name), None)
        if job is None:
            return None
        pods = [] if keep_pods else self.pods.items()
        for key in [k for k, p in pods if k[0] == namespace and p["metadata"]["labels"]["job-name"] == name]:
            del self.pods[key]
        self._change("DELETED", job)
        return job

    def drop_watches(self) -> None:
        """Cut every open watch connection (as a restarting API server or a proxy would)."""
        with self.changed:
            self.generation += 1
            for sock in self.watches:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.watches.clear()
            self.changed.notify_all()

    def compact(self) -> None:
        """Forget every version so far: a watch resumed from one of them gets 410 Gone."""
        with self.changed:
            self.version += 1
            self.oldest = self.version
            self.events.clear()

    def made(self, method: str, fragment: str) -> list[str]:
        """The paths of the ``method`` requests whose path holds ``fragment``."""
        return [path for m, path in list(self.requests) if m == method and fragment in path]


def _handler(server: KubernetesServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, code: int, body: Any, content_type: str = "application/json") -> None:
            data = (body if isinstance(body, str) else json.dumps(body)).encode()
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _status(self, code: int, reason: str, message: str) -> None:
            self._send(
                code,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Failure",
                    "message": message,
                    "reason": reason,
                    "code": code,
                },
            )

        def _body(self) -> Any:
            length = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(length) or b"null") if length else None

        def _route(self, method: str) -> None:
            server.requests.append((method, self.path))
            with server.changed:
                fault = next((f for f in server.faults if f[0] == method and f[1] in self.path), None)
                if fault is not None:
                    server.faults.remove(fault)
            if fault is not None:
                self._body()
                self._status(
                    fault[2],
                    {403: "Forbidden", 429: "TooManyRequests"}.get(fault[2], "InternalError"),
                    f"injected {fault[2]}",
                )
                return
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            found = JOBS.match(parts.path)
            if found:
                self._jobs(method, found[1], found[2], query)
                return
            found = PODS.match(parts.path)
            if found and method == "GET":
                namespace, name, log = found[1], found[2], found[3]
                if name is None:
                    items = [
                        p
                        for (ns, _), p in server.pods.items()
                        if ns == namespace and selected(p, query.get("labelSelector"))
                    ]
                    self._send(
                        200,
                        {
                            "kind": "PodList",
                            "apiVersion": "v1",
                            "metadata": {"resourceVersion": str(server.version)},
                            "items": items,
                        },
                    )
                elif log and (namespace, name) in server.pods:
                    lines = server.logs.get((namespace, name), "").splitlines()
                    tail = int(query.get("tailLines", len(lines)))
                    self._send(
                        200, "".join(line + "\n" for line in lines[len(lines) - tail :] if tail), "text/plain"
                    )
                else:
                    self._status(404, "NotFound", f'pods "{name}" not found')
                return
            self._status(404, "NotFound", "the server could not find the requested resource")

        def _jobs(self, method: str, namespace: str, name: str | None, query: dict[str, str]) -> None:
            if name is None and method == "POST":
                body = self._body()
                key = (namespace, body["metadata"]["name"])
                if key in server.jobs:
                    self._status(409, "AlreadyExists", f'jobs.batch "{key[1]}" already exists')
                else:
                    job = server.create(namespace, body)
                    if server.on_create is not None:
                        server.on_create(job)
                    self._send(201, job)
            elif name is None and method == "GET":
                if query.get("watch") in ("true", "1"):
                    self._watch(namespace, query)
                    return
                items = [
                    j
                    for (ns, _), j in server.jobs.items()
                    if ns == namespace and selected(j, query.get("labelSelector"))
                ]
                self._send(
                    200,
                    {
                        "kind": "JobList",
                        "apiVersion": "batch/v1",
                        "metadata": {"resourceVersion": str(server.version)},
                        "items": items,
                    },
                )
            elif name is not None and (namespace, name) not in server.jobs:
                self._body()
                self._status(404, "NotFound", f'jobs.batch "{name}" not found')
            elif method == "GET":
                self._send(200, server.jobs[(namespace, name)])
            elif method == "PATCH":
                job = server.jobs[(namespace, name)]
                merge(job, self._body())
                server._change("MODIFIED", job)
                self._send(200, job)
            elif method == "DELETE":
                self._body()
                job = server.delete(namespace, name)
                self._send(
                    200,
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "metadata": {},
                        "status": "Success",
                        "details": {
                            "name": name,
                            "group": "batch",
                            "kind": "jobs",
                            "uid": job["metadata"]["uid"],
                        },
                    },
                )
            else:
                self._status(405, "MethodNotAllowed", f"{method} is not supported here")

        def _chunk(self, event: dict[str, Any]) -> None:
            data = (json.dumps(event) + "\n").encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _watch(self, namespace: str, query: dict[str, str]) -> None:
            """Stream the events after ``resourceVersion`` (410 Gone if forgotten), then the
            new ones, until ``timeoutSeconds`` or a drop."""
            deadline = time.monotonic() + float(query.get("timeoutSeconds", 1800))
            if server.hang:  # accepted, then silence: no headers, no events, no end
                server.hung += 1
                server.release.wait(120)
                self.close_connection = True
                return
            since = int(query.get("resourceVersion") or 0)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.close_connection = True
            with server.changed:
                generation = server.generation
                server.watches.append(self.connection)
            try:
                if since and since < server.oldest:
                    self._chunk(
                        {
                            "type": "ERROR",
                            "object": {
                                "kind": "Status",
                                "apiVersion": "v1",
                                "metadata": {},
                                "status": "Failure",
                                "message": f"too old resource version: {since} ({server.oldest})",
                                "reason": "Expired",
                                "code": 410,
                            },
                        }
                    )
                else:
                    while time.monotonic() < deadline:
                        with server.changed:
                            if server.generation != generation:
                                return
                            fresh = [(v, kind, job) for v, kind, job in server.events if v > since]
                            if not fresh:
                                server.changed.wait(min(0.2, max(0.0, deadline - time.monotonic())))
                                continue
                        for version, kind, job in fresh:
                            since = version
                            if job["metadata"].get("namespace") == namespace and selected(
                                job, query.get("labelSelector")
                            ):
                                self._chunk({"type": kind, "object": job})
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except OSError:
                pass
            finally:
                with server.changed:
                    if self.connection in server.watches:
                        server.watches.remove(self.connection)

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def do_PATCH(self) -> None:
            self._route("PATCH")

        def do_DELETE(self) -> None:
            self._route("DELETE")

    return Handler


@pytest.fixture
def k8s_server() -> Iterator[KubernetesServer]:
    """A fresh test Kubernetes API server on a free port."""
    server = KubernetesServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.drop_watches()
        server.http.shutdown()
        server.http.server_close()
