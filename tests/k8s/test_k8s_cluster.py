"""End to end on a real cluster: a flow whose ``k8s:`` tasks run as Jobs. Runs only when
``KUBECONFIG`` is set (docs/kubernetes.md: with kind, in a minute); the namespace is
``$LITTLEFLOW_K8S_NAMESPACE``, else the context's, else ``default``."""

from __future__ import annotations

import json
import os

import pytest

pytestmark = pytest.mark.skipif(
    not os.environ.get("KUBECONFIG"),
    reason="KUBECONFIG is not set: no cluster to run Jobs on (see docs/kubernetes.md "
    "for running this test with kind)",
)

IMAGE = os.environ.get("LITTLEFLOW_K8S_IMAGE", "busybox:1.36")


@pytest.fixture
def cluster_worker(started, redis_url):
    from littleflow.k8s.executor import KubernetesTasks, connect
    from littleflow.redis.connection import connect as redis_connect
    from littleflow.redis.protocol import Keys
    from littleflow.redis.store import Store
    from littleflow.redis.worker import Worker

    api, namespace = connect(os.environ.get("LITTLEFLOW_K8S_NAMESPACE"))
    executor = KubernetesTasks(api, namespace, cleanup=30, resync=10)
    worker = Worker(
        Store(redis_connect(redis_url), Keys()),
        redis_connect(redis_url, decode=False),
        [executor],
        claim_idle=5.0,
    )
    started.part(worker)
    return executor


def params(**values) -> str:
    return "(- " + json.dumps(values) + " -)"


def test_a_flow_runs_its_tasks_as_jobs_on_the_cluster(engine, cluster_worker, client):
    double = params(
        image=IMAGE,
        deadline=120,
        command=(
            'n=$(sed -e "s/[^0-9]//g" /littleflow/input.json); '
            'echo "doubling $n"; echo "{\\"n\\": $((n * 2))}" > /dev/termination-log'
        ),
    )
    flow = f"@task k8s:double {double}\nk8s:double → k8s:double"
    document = client.wait(client.submit(flow, {"n": 21}), timeout=300)
    assert (document["state"], document["output"]) == ("finished", {"n": 84}), document.get("error")


def test_a_failing_job_fails_its_task_with_its_log(engine, cluster_worker, client):
    fail = params(image=IMAGE, deadline=120, command='echo "something broke"; exit 3')
    document = client.wait(client.submit(f"k8s:fail {fail}"), timeout=300)
    assert document["state"] == "failed"
    assert (
        "BackoffLimitExceeded" in document["error"]["error"]
        and "something broke" in document["error"]["error"]
    )
