"""``littleflow worker --kubernetes`` as a process: it reads a kubeconfig, serves ``k8s:``
tasks (here against the test API server), and says in one line when it has no configuration."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from k8sserver import KUBECONFIG

COMMAND = [sys.executable, "-m", "littleflow"]


def environment(tmp_path: Path, redis_url: str, kubeconfig: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LITTLEFLOW_", "KUBERNETES_")) and k != "KUBECONFIG"
    }
    env.update(
        LITTLEFLOW_HOME=str(tmp_path / "home"),
        LITTLEFLOW_REDIS_URL=redis_url,
        HOME=str(tmp_path),
        KUBECONFIG=str(kubeconfig),
    )
    return env


def test_without_a_cluster_configuration_the_worker_says_so_in_one_line(tmp_path, redis_url):
    result = subprocess.run(
        [*COMMAND, "worker", "--kubernetes"],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
        env=environment(tmp_path, redis_url, tmp_path / "missing"),
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("littleflow: error: no Kubernetes configuration"), lines
    assert "Traceback" not in result.stderr


def test_a_cleanup_under_a_minute_is_refused(tmp_path, redis_url):
    result = subprocess.run(
        [*COMMAND, "worker", "--kubernetes", "--k8s-cleanup", "0"],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
        env=environment(tmp_path, redis_url, tmp_path / "missing"),
    )
    assert result.returncode == 2 and "--k8s-cleanup" in result.stderr and "60" in result.stderr, (
        result.stderr
    )


def test_the_worker_runs_k8s_tasks_in_the_namespace_of_its_kubeconfig(
    tmp_path, redis_url, engine, k8s_server, client, until
):
    config = tmp_path / "kubeconfig"
    config.write_text(KUBECONFIG.format(url=k8s_server.url))
    worker = subprocess.Popen(
        [*COMMAND, "worker", "--kubernetes", "--k8s-cleanup", "60"],
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment(tmp_path, redis_url, config),
    )
    try:
        id = client.submit('k8s:run (- {"image": "busybox"} -)', {"a": 1})
        (namespace, name) = until(lambda: next(iter(k8s_server.jobs), None), timeout=20, what="a Job created")
        assert namespace == "batch"
        assert k8s_server.job(name, "batch")["spec"]["ttlSecondsAfterFinished"] == 60 + 86400
        k8s_server.finish(name, '{"b": 2}', namespace="batch")
        assert client.wait(id, timeout=20)["output"] == {"b": 2}
    finally:
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    assert "serving k8s:*; Jobs in namespace batch" in err
    assert "Traceback" not in err
