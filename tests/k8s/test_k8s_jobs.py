"""Job manifests from a ``k8s:`` task's parameters and input, Job names, and what a
finished Job says (pure functions of littleflow.k8s.jobs)."""

from __future__ import annotations

import json

import pytest
from support import need_module

from littleflow.k8s import jobs
from littleflow.redis.protocol import StartTask
from littleflow.tasks import TaskError


def task(parameters, input=None, workflow="20261127-174125-0a1b2c3d", node=3, seq=7, attempt=1) -> StartTask:
    return StartTask(
        workflow, "t3", seq, node, "k8s:run", parameters, {"x": 1} if input is None else input, attempt
    )


def test_a_minimal_task_is_a_job_of_one_container_that_never_restarts():
    job = jobs.manifest(task({"image": "busybox:1.36"}), "work")
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    assert job["metadata"]["name"] == "lf-20261127-174125-0a1b2c3d-n3-s7-a1"
    assert job["metadata"]["namespace"] == "work"
    spec = job["spec"]
    assert spec["backoffLimit"] == 0
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert container["image"] == "busybox:1.36"
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert container["terminationMessagePolicy"] == "File"
    assert "command" not in container and "args" not in container
    assert "activeDeadlineSeconds" not in spec and "ttlSecondsAfterFinished" not in spec


def test_every_parameter_reaches_the_manifest():
    params = {
        "image": "python:3.12",
        "command": ["python", "-c"],
        "args": ["print(1)", 2],
        "env": {"MODE": "fast", "N": 3},
        "resources": {"limits": {"memory": "64Mi"}},
        "namespace": "jobs",
        "service_account": "runner",
        "backoff_limit": 2,
        "deadline": "5m",
        "labels": {"team": "data"},
        "pull_policy": "IfNotPresent",
    }
    job = jobs.manifest(task(params), "default", cleanup=600)
    spec = job["spec"]
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"] == ["python", "-c"]
    assert container["args"] == ["print(1)", "2"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["MODE"] == "fast" and env["N"] == "3"
    assert container["resources"] == {"limits": {"memory": "64Mi"}}
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert job["metadata"]["namespace"] == "jobs"
    assert pod["serviceAccountName"] == "runner"
    # Kubernetes' TTL is only a safety net, a day past the worker's cleanup
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"], spec["ttlSecondsAfterFinished"]) == (
        2,
        300,
        600 + 86400,
    )
    assert job["metadata"]["labels"]["team"] == "data"
    assert spec["template"]["metadata"]["labels"]["team"] == "data"


def test_without_a_deadline_the_flows_timeout_for_the_task_is_the_jobs():
    timed = task({"image": "busybox"})
    timed.policy = {"defaults": {"timeout": 90}}
    assert jobs.manifest(timed, "default")["spec"]["activeDeadlineSeconds"] == 90
    timed.parameters = {"image": "busybox", "deadline": "10s"}
    assert jobs.manifest(timed, "default")["spec"]["activeDeadlineSeconds"] == 10


def test_a_command_given_as_text_runs_in_a_shell():
    container = jobs.manifest(
        task({"image": "busybox", "command": "echo hi > /dev/termination-log"}), "default"
    )["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["sh", "-c", "echo hi > /dev/termination-log"]


def test_the_input_is_an_environment_variable_and_a_file_from_a_pod_annotation():
    job = jobs.manifest(task({"image": "busybox"}, {"text": "héllo", "n": [1, 2]}), "default")
    template = job["spec"]["template"]
    text = template["metadata"]["annotations"][jobs.INPUT]
    assert json.loads(text) == {"text": "héllo", "n": [1, 2]}
    container = template["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert json.loads(env["LITTLEFLOW_INPUT"]) == {"text": "héllo", "n": [1, 2]}
    assert env["LITTLEFLOW_INPUT_FILE"] == "/littleflow/input.json"
    (mount,) = container["volumeMounts"]
    (volume,) = template["spec"]["volumes"]
    assert mount == {"name": volume["name"], "mountPath": "/littleflow", "readOnly": True}
    (item,) = volume["downwardAPI"]["items"]
    assert item == {
        "path": "input.json",
        "fieldRef": {"fieldPath": "metadata.annotations['littleflow.io/input']"},
    }


def test_a_big_input_is_only_in_the_file_and_a_too_big_one_fails_the_task():
    big = {"data": "x" * (jobs.ENV_LIMIT + 10)}
    job = jobs.manifest(task({"image": "busybox"}, big), "default")
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["LITTLEFLOW_INPUT"] == ""
    assert json.loads(job["spec"]["template"]["metadata"]["annotations"][jobs.INPUT]) == big
    with pytest.raises(TaskError, match="must fit"):
        jobs.manifest(task({"image": "busybox"}, {"data": "x" * jobs.INPUT_LIMIT}), "default")


def test_labels_and_the_task_annotation_say_whose_job_it_is():
    job = jobs.manifest(task({"image": "busybox"}), "default", started=12.5, worker="w1")
    labels = job["metadata"]["labels"]
    assert labels[jobs.MANAGED_BY] == "littleflow"
    assert labels[jobs.WORKFLOW] == "20261127-174125-0a1b2c3d"
    assert labels[jobs.NODE] == "3"
    assert jobs.about(job) == {
        "workflow": "20261127-174125-0a1b2c3d",
        "task": "t3",
        "seq": 7,
        "node": 3,
        "name": "k8s:run",
        "attempt": 1,
        "started": 12.5,
        "worker": "w1",
    }
    assert jobs.SELECTOR == "app.kubernetes.io/managed-by=littleflow"
    assert labels[jobs.PREFIX] == "lf"
    assert jobs.selector("other") == "app.kubernetes.io/managed-by=littleflow,littleflow.io/prefix=other"
    assert (
        jobs.manifest(task({"image": "busybox"}), "default", prefix="other")["metadata"]["labels"][
            jobs.PREFIX
        ]
        == "other"
    )


def test_workflow_ids_that_differ_only_where_they_are_cleaned_get_different_names():
    names = {jobs.job_name(id, 1, 2, 1) for id in ("wf_A", "wf.a", "WF-a", "wf-a")}
    assert len(names) == 4
    assert (
        jobs.job_name("wf-a", 1, 2, 1) == "lf-wf-a-n1-s2-a1"
    )  # an id that is a DNS label part stays as it is
    for name in names:
        assert len(name) <= 63 and all(c.isdigit() or c.islower() or c == "-" for c in name)


def test_pods_get_no_api_token_and_a_restricted_security_context_unless_told():
    pod = jobs.manifest(task({"image": "busybox"}), "default")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["containers"][0]["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    pod = jobs.manifest(
        task({"image": "busybox", "service_account": "runner", "security_context": {"runAsUser": 0}}),
        "default",
    )["spec"]["template"]["spec"]
    assert "automountServiceAccountToken" not in pod and pod["serviceAccountName"] == "runner"
    assert pod["containers"][0]["securityContext"] == {"runAsUser": 0}
    pod = jobs.manifest(task({"image": "busybox", "security_context": None}), "default")["spec"]["template"][
        "spec"
    ]
    assert "securityContext" not in pod["containers"][0]


def test_the_container_is_told_its_run_for_littleflow_current(monkeypatch):
    from littleflow import current

    start = StartTask("wf-1", "/2.0|4|1", 5, 4, "k8s:run", {"image": "busybox"}, {}, 2)
    container = jobs.manifest(start, "work")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["LITTLEFLOW_KEY"] == "wf-1|/2.0|4|1#5" and env["LITTLEFLOW_ITEM"] == "1"
    for name, value in env.items():  # what a Python program in the container finds
        monkeypatch.setenv(name, value)
    run = current()
    assert (run.workflow, run.node, run.task, run.attempt, run.item, run.key) == (
        "wf-1",
        4,
        "k8s:run",
        2,
        1,
        "wf-1|/2.0|4|1#5",
    )


def test_env_values_may_come_from_secrets():
    container = jobs.manifest(
        task({"image": "busybox", "env": {"A": "1", "TOKEN": {"secret": "api", "key": "t"}}}), "default"
    )["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["A"] == {"name": "A", "value": "1"}
    assert env["TOKEN"] == {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "api", "key": "t"}}}


@pytest.mark.parametrize(
    "params, error",
    [
        (None, "needs parameters"),
        ({}, "needs an image"),
        ({"image": "busybox", "colour": "red"}, "unknown parameters colour"),
        ({"image": "busybox", "backoff_limit": -1}, "backoff_limit"),
        ({"image": "busybox", "deadline": "soon"}, "duration"),
        ({"image": "busybox", "env": ["A=1"]}, "env must be an object"),
        ({"image": "busybox", "command": 3}, "command must be text or a list"),
        (
            {"image": "busybox", "labels": {"littleflow.io/workflow": "x"}},
            "labels may not set littleflow.io/workflow",
        ),
        (
            {"image": "busybox", "labels": {"app.kubernetes.io/managed-by": "me"}},
            "may not set app.kubernetes.io/managed-by",
        ),
        ({"image": "busybox", "security_context": "root"}, "security_context must be an object"),
    ],
)
def test_wrong_parameters_fail_the_task_with_a_reason(params, error):
    with pytest.raises(TaskError, match=error):
        jobs.manifest(task(params), "default")


def test_job_names_are_dns_labels_the_same_for_the_same_run_and_hashed_when_too_long():
    assert jobs.job_name("wf", 1, 2, 1) == jobs.job_name("wf", 1, 2, 1)
    assert (
        len(
            {
                jobs.job_name("wf", 1, 2, 1),
                jobs.job_name("wf", 1, 2, 2),
                jobs.job_name("wf", 1, 3, 1),
                jobs.job_name("wf", 2, 2, 1),
            }
        )
        == 4
    )
    assert jobs.job_name("my-flow-id", 1, 2, 1) == "lf-my-flow-id-n1-s2-a1"
    long = [jobs.job_name("w" * 80 + suffix, 1, 2, 1) for suffix in ("a", "b")]
    assert long[0] != long[1]
    for name in long + [jobs.job_name("-x-", 0, 1, 1)]:
        assert len(name) <= 63
        assert all(c.isdigit() or c.islower() or c == "-" for c in name)
        assert name[0].isalnum() and name[-1].isalnum()


def test_label_values_are_made_valid():
    assert jobs.label_text("20261127-174125-0a1b2c3d") == "20261127-174125-0a1b2c3d"
    assert jobs.label_text("a b/c") == "a-b-c"
    assert len(jobs.label_text("x" * 100)) <= 63


def finished(kind: str, reason: str = "") -> dict:
    return {"status": {"conditions": [{"type": kind, "status": "True", "reason": reason, "message": "m"}]}}


def test_a_jobs_state_and_failure_come_from_its_conditions():
    assert jobs.state({"status": {"active": 1}}) == "running"
    assert jobs.state(finished("Complete")) == "succeeded"
    assert jobs.state(finished("Failed", "DeadlineExceeded")) == "failed"
    assert jobs.failure(finished("Failed", "DeadlineExceeded")) == "DeadlineExceeded: m"
    assert jobs.state({"status": {"conditions": [{"type": "Failed", "status": "False"}]}}) == "running"


def test_the_output_is_the_json_of_the_termination_message():
    pod = {
        "status": {
            "containerStatuses": [
                {"name": "task", "state": {"terminated": {"exitCode": 0, "message": '{"sum": 3}'}}}
            ]
        }
    }
    assert jobs.output(jobs.termination_message(pod)) == {"sum": 3}
    assert jobs.output("") == {} and jobs.output(None) == {}
    assert jobs.output("plain words") == {"text": "plain words"}
    assert jobs.termination_message({"status": {}}) is None
    older = {"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"}}
    newer = {"metadata": {"creationTimestamp": "2026-01-01T00:00:09Z"}}
    assert jobs.latest_pod([newer, older]) is newer and jobs.latest_pod([]) is None


def test_manifests_are_valid_jobs_for_the_kubernetes_schema():
    need_module("kubernetes_validate", "test")
    import kubernetes_validate as validate

    params = {
        "image": "busybox",
        "command": ["echo"],
        "args": ["hi"],
        "env": {"A": 1},
        "resources": {"requests": {"cpu": "100m"}, "limits": {"memory": "64Mi"}},
        "namespace": "jobs",
        "service_account": "runner",
        "backoff_limit": 1,
        "deadline": 30,
        "labels": {"team": "data"},
        "pull_policy": "Always",
        "security_context": {"runAsNonRoot": True},
    }
    secret = {"image": "busybox", "env": {"T": {"secret": "s", "key": "k"}}}
    for job in (
        jobs.manifest(task({"image": "busybox"}), "default"),
        jobs.manifest(task(params), "default", 600),
        jobs.manifest(task(secret), "default"),
    ):
        validate.validate(job, "1.30.0", strict=True)
