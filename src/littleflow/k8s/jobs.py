"""Pure Kubernetes Job helpers: a ``k8s:`` task's parameters and input → a Job manifest
(a plain dict of the batch/v1 API), its name, and what a finished Job's pods say."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from ..redis import protocol
from ..redis.builtins import duration
from ..redis.protocol import StartTask
from ..tasks import TaskError
from ..values import brief

#: Labels and annotations littleflow puts on its Jobs (and their pods).
MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "littleflow"
WORKFLOW = "littleflow.io/workflow"
NODE = "littleflow.io/node"
ENDED = "littleflow.io/ended"
PREFIX = "littleflow.io/prefix"  # the installation: its Redis key prefix
TASK = "littleflow.io/task"  # annotation: JSON of what the end-task message needs
INPUT = "littleflow.io/input"  # pod annotation: the task's input as JSON
#: The label selector of every Job littleflow started (of any installation).
SELECTOR = f"{MANAGED_BY}={MANAGER}"
#: A day: how much longer than the worker's cleanup time Kubernetes keeps a finished Job.
TTL_MARGIN = 86400
#: The container's securityContext unless the task gives ``security_context``.
SECURITY_CONTEXT: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}

#: Where the container finds its input, and writes its output.
INPUT_DIR = "/littleflow"
INPUT_FILE = f"{INPUT_DIR}/input.json"
INPUT_ENV = "LITTLEFLOW_INPUT"
OUTPUT_FILE = "/dev/termination-log"
#: Inputs up to this many bytes of JSON are in the environment too.
ENV_LIMIT = 32 * 1024
#: Kubernetes keeps at most 256 KiB of annotations per object; the input must fit with the rest.
INPUT_LIMIT = 200 * 1024
#: The termination message is cut at 4096 bytes per container.
OUTPUT_LIMIT = 4096

PARAMETERS = {
    "image",
    "command",
    "args",
    "env",
    "resources",
    "namespace",
    "service_account",
    "backoff_limit",
    "deadline",
    "labels",
    "pull_policy",
    "security_context",
}
_NAME_LIMIT = 63


def selector(prefix: str) -> str:
    """The label selector of the Jobs of one installation (Redis key prefix ``prefix``)."""
    return f"{SELECTOR},{PREFIX}={label_text(prefix)}"


def job_name(workflow: str, node: int, seq: int, attempt: int) -> str:
    """The Job's name: a DNS-1123 label (≤ 63 characters) from the workflow id, the node,
    the run (``seq``) and the attempt, the same each time the same run is started, so a
    restarted worker finds the Job it created. A workflow id that is not already a DNS label
    part (``wf_A``, ``WF.a``) is followed by a short hash of it, so ids differing only there
    differ in name; too long, the name is cut and ends in a hash."""
    clean = re.sub(r"[^a-z0-9-]+", "-", workflow.lower()).strip("-")
    if clean != workflow:
        clean = f"{clean}-{hashlib.sha256(workflow.encode()).hexdigest()[:6]}".strip("-")
    name = f"lf-{clean}-n{node}-s{seq}-a{attempt}"
    if len(name) <= _NAME_LIMIT:
        return name
    digest = hashlib.sha256(f"{workflow}|{node}|{seq}|{attempt}".encode()).hexdigest()[:10]
    return name[: _NAME_LIMIT - 11].rstrip("-") + "-" + digest


def label_text(text: str) -> str:
    """``text`` made a valid label value: letters, digits, ``-``, ``_``, ``.``, starting and
    ending with a letter or digit, ≤ 63 characters (a hash replaces the tail if too long)."""
    clean = re.sub(r"[^A-Za-z0-9_.-]", "-", text).strip("-_.")
    if len(clean) > _NAME_LIMIT:
        clean = clean[: _NAME_LIMIT - 11].rstrip("-_.") + "-" + hashlib.sha256(text.encode()).hexdigest()[:10]
    return clean or "x"


def parameters(params: Any, name: str) -> dict[str, Any]:
    """The task's parameters, checked: ``image`` required, nothing unknown."""
    if not isinstance(params, dict):
        raise TaskError(f"{name} needs parameters, at least an image: (- image: busybox -)")
    unknown = sorted(set(params) - PARAMETERS)
    if unknown:
        raise TaskError(
            f"{name}: unknown parameters {', '.join(unknown)} (known: {', '.join(sorted(PARAMETERS))})"
        )
    if not isinstance(params.get("image"), str) or not params["image"]:
        raise TaskError(f"{name} needs an image parameter (e.g. busybox:1.36)")
    return params


def _strings(value: Any, what: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return ["sh", "-c", value] if what == "command" else [value]
    if isinstance(value, list):
        return [v if isinstance(v, str) else json.dumps(v) for v in value]
    raise TaskError(f"{what} must be text or a list, not {brief(value)}")


def _env(value: Any) -> list[dict[str, Any]]:
    """``env`` as container env entries; a value ``{secret: NAME, key: KEY}`` is read from a Secret."""
    if value is None:
        return []
    if not isinstance(value, dict):
        raise TaskError(f"env must be an object of names to values, not {brief(value)}")
    found: list[dict[str, Any]] = []
    for name, item in value.items():
        if isinstance(item, dict) and set(item) == {"secret", "key"}:
            found.append(
                {
                    "name": str(name),
                    "valueFrom": {"secretKeyRef": {"name": str(item["secret"]), "key": str(item["key"])}},
                }
            )
        else:
            found.append({"name": str(name), "value": item if isinstance(item, str) else json.dumps(item)})
    return found


def _mapping(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TaskError(f"{what} must be an object of names to values, not {brief(value)}")
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}


def manifest(
    task: StartTask,
    namespace: str,
    cleanup: float | None = None,
    started: float | None = None,
    worker: str = "",
    prefix: str = protocol.PREFIX,
) -> dict[str, Any]:
    """The batch/v1 Job that runs ``task`` in ``namespace`` (unless its parameters name one);
    ``cleanup``: seconds the worker keeps it once finished (Kubernetes keeps it a day more);
    ``prefix``: the installation's Redis key prefix, a label."""
    params = parameters(task.parameters, task.name)
    text = json.dumps(task.input, ensure_ascii=False, separators=(",", ":"))
    if len(text.encode()) > INPUT_LIMIT:
        raise TaskError(
            f"{task.name}: the input is {len(text.encode())} bytes of JSON; a Job's input must fit in "
            f"{INPUT_LIMIT} (pass a reference, e.g. a URL, instead)"
        )
    name = job_name(task.workflow, task.node, task.seq, task.attempt)
    extra = _mapping(params.get("labels"), "labels")
    reserved = sorted(k for k in extra if k.startswith("littleflow.io/") or k == MANAGED_BY)
    if reserved:
        raise TaskError(f"{task.name}: labels may not set {', '.join(reserved)} (littleflow's own)")
    labels = {
        **extra,
        MANAGED_BY: MANAGER,
        PREFIX: label_text(prefix),
        WORKFLOW: label_text(task.workflow),
        NODE: str(task.node),
    }
    env = _env(params.get("env"))
    env.append({"name": INPUT_ENV, "value": text if len(text.encode()) <= ENV_LIMIT else ""})
    env.append({"name": "LITTLEFLOW_INPUT_FILE", "value": INPUT_FILE})
    env.extend(
        {"name": name, "value": value} for name, value in task.run().to_env().items()
    )  # littleflow.current()
    container: dict[str, Any] = {
        "name": "task",
        "image": params["image"],
        "env": env,
        "volumeMounts": [{"name": "littleflow-input", "mountPath": INPUT_DIR, "readOnly": True}],
        "terminationMessagePath": OUTPUT_FILE,
        "terminationMessagePolicy": "File",
    }
    for key, field in (("command", "command"), ("args", "args")):
        found = _strings(params.get(key), key)
        if found is not None:
            container[field] = found
    if params.get("resources") is not None:
        if not isinstance(params["resources"], dict):
            raise TaskError(
                "resources must be an object like {requests: {cpu: 100m}, limits: {memory: 64Mi}}"
            )
        container["resources"] = params["resources"]
    if params.get("pull_policy"):
        container["imagePullPolicy"] = str(params["pull_policy"])
    security = params.get("security_context", SECURITY_CONTEXT)
    if security is not None and not isinstance(security, dict):
        raise TaskError("security_context must be an object (a container securityContext), or null for none")
    if security:
        container["securityContext"] = json.loads(json.dumps(security))
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [container],
        "volumes": [
            {
                "name": "littleflow-input",
                "downwardAPI": {
                    "items": [
                        {"path": "input.json", "fieldRef": {"fieldPath": f"metadata.annotations['{INPUT}']"}}
                    ]
                },
            }
        ],
    }
    if params.get("service_account"):
        pod["serviceAccountName"] = str(params["service_account"])
    else:  # no API token in pods that were given no account to use it with
        pod["automountServiceAccountToken"] = False
    spec: dict[str, Any] = {
        "backoffLimit": _whole(params.get("backoff_limit", 0), "backoff_limit"),
        "template": {"metadata": {"labels": labels, "annotations": {INPUT: text}}, "spec": pod},
    }
    deadline = (
        duration(params["deadline"]) if params.get("deadline") is not None else task.run_policy().timeout
    )
    if deadline is not None:  # (else the flow's timeout for the task, if it has one)
        spec["activeDeadlineSeconds"] = max(1, int(deadline))
    if cleanup is not None:
        spec["ttlSecondsAfterFinished"] = int(cleanup) + TTL_MARGIN
    about = {
        "workflow": task.workflow,
        "task": task.task,
        "seq": task.seq,
        "node": task.node,
        "name": task.name,
        "attempt": task.attempt,
        "started": started,
        "worker": worker,
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": str(params.get("namespace") or namespace),
            "labels": labels,
            "annotations": {TASK: json.dumps(about)},
        },
        "spec": spec,
    }


def _whole(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TaskError(f"{what} must be a whole number ≥ 0, not {brief(value)}")
    return value


def about(job: dict[str, Any]) -> dict[str, Any] | None:
    """What the Job's annotation says of its task (workflow, task, seq, attempt…), or None."""
    try:
        found = json.loads(job["metadata"]["annotations"][TASK])
    except (KeyError, TypeError, ValueError):
        return None
    return found if isinstance(found, dict) and {"workflow", "task", "seq"} <= found.keys() else None


def _condition(job: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            return condition
    return None


def state(job: dict[str, Any]) -> str:
    """``succeeded``, ``failed`` or ``running``."""
    if _condition(job, "Complete") or _condition(job, "SuccessCriteriaMet"):
        return "succeeded"
    if _condition(job, "Failed") or _condition(job, "FailureTarget"):
        return "failed"
    return "running"


def failure(job: dict[str, Any]) -> str:
    """Why a failed Job failed, from its condition (e.g. ``BackoffLimitExceeded: …``)."""
    condition = _condition(job, "Failed") or _condition(job, "FailureTarget") or {}
    reason, text = condition.get("reason") or "Failed", condition.get("message") or ""
    return f"{reason}: {text}" if text else reason


def latest_pod(pods: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The most recently created of a Job's pods."""
    return max(pods, key=lambda p: p.get("metadata", {}).get("creationTimestamp") or "", default=None)


def termination_message(pod: dict[str, Any] | None) -> str | None:
    """The termination message of the pod's task container, if it ended."""
    for status in ((pod or {}).get("status") or {}).get("containerStatuses") or []:
        terminated = (status.get("state") or {}).get("terminated") or status.get("lastState", {}).get(
            "terminated"
        )
        if status.get("name") == "task" and terminated:
            return terminated.get("message") or ""
    return None


def output(message: str | None) -> Any:
    """The task's output from its termination message: its JSON; ``{}`` when empty; text
    that is not JSON as ``{"text": …}``."""
    if not message or not message.strip():
        return {}
    try:
        return json.loads(message)
    except ValueError:
        return {"text": message}
