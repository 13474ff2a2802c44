"""The ``k8s:`` executor's life cycle on a real engine and Redis, its Jobs on the test
Kubernetes API server (tests/k8sserver.py) through the official client: create, watch,
success, failure, re-attach after a restart, delete on terminate, watches that reconnect."""

from __future__ import annotations

import json
import time

from littleflow.k8s import jobs
from littleflow.redis.protocol import Keys

KEYS = Keys()

FLOW = 'k8s:run (- {"image": "busybox:1.36", "command": "echo", "deadline": 60} -)'


def task_node(document: dict) -> dict:
    (found,) = [n for n in document["nodes"] if n["name"] == "k8s:run"]
    return found


def only_job(server, until) -> str:
    """The name of the one Job the server has, once it has one."""
    return until(lambda: next(iter(name for _, name in server.jobs), None), what="a Job created")


def test_a_task_runs_as_a_job_and_ends_with_the_json_of_its_termination_message(
    engine, k8s_worker, k8s_server, client, until
):
    k8s_worker()
    id = client.submit(FLOW, {"n": 2})
    name = only_job(k8s_server, until)
    job = k8s_server.job(name)
    assert job["metadata"]["labels"][jobs.WORKFLOW] == id
    assert json.loads(job["spec"]["template"]["metadata"]["annotations"][jobs.INPUT]) == {"n": 2}
    assert job["spec"]["activeDeadlineSeconds"] == 60
    until(lambda: task_node(client.status(id))["status"] == "running", what="the task shown running")
    time.sleep(0.2)
    assert client.status(id)["state"] == "running"
    k8s_server.finish(name, '{"doubled": 4}')
    document = client.wait(id, timeout=10)
    assert (document["state"], document["output"]) == ("finished", {"doubled": 4})
    until(
        lambda: k8s_server.job(name)["metadata"]["labels"].get(jobs.ENDED) == "true",
        what="the Job labelled ended",
    )
    assert len(k8s_server.made("POST", "/jobs")) == 1


def test_the_jobs_container_is_told_its_run_in_environment_variables(
    engine, k8s_worker, k8s_server, client, until
):
    k8s_worker()
    id = client.submit(FLOW, {"n": 2})
    name = only_job(k8s_server, until)
    (container,) = k8s_server.job(name)["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    node = task_node(client.status(id))["id"]
    assert {
        key: value for key, value in env.items() if key.startswith("LITTLEFLOW_") and "INPUT" not in key
    } == {
        "LITTLEFLOW_WORKFLOW": id,
        "LITTLEFLOW_NODE": str(node),
        "LITTLEFLOW_TASK": "k8s:run",
        "LITTLEFLOW_ATTEMPT": "1",
        "LITTLEFLOW_ITEM": "",
        "LITTLEFLOW_KEY": f"{id}||{node}|-1#1",
    }
    k8s_server.finish(name, "{}")
    assert client.wait(id, timeout=10)["state"] == "finished"


def test_a_job_that_writes_no_message_outputs_nothing(engine, k8s_worker, k8s_server, client, until):
    k8s_worker()
    id = client.submit(FLOW, {"n": 2})
    k8s_server.finish(only_job(k8s_server, until), "")
    document = client.wait(id, timeout=10)
    assert document["state"] == "finished"
    assert document["output"] in ({}, None)


def test_a_failed_job_fails_the_task_with_its_reason_and_the_tail_of_its_log(
    engine, k8s_worker, k8s_server, client, until
):
    k8s_worker()
    id = client.submit(FLOW)
    name = only_job(k8s_server, until)
    log = "".join(f"line {i}\n" for i in range(50)) + "Traceback: boom\n"
    k8s_server.fail(name, "BackoffLimitExceeded", log)
    document = client.wait(id, timeout=10)
    assert document["state"] == "failed"
    error = document["error"]["error"]
    assert "BackoffLimitExceeded" in error and "Traceback: boom" in error
    assert "line 49" in error and "line 20" not in error  # the last lines only
    (log_request,) = k8s_server.made("GET", "/log")
    assert "tailLines=200" in log_request and "limitBytes=32768" in log_request
    kept = client.logs(id)["runs"][0]
    assert kept["lines"][-1] == "Traceback: boom" and len(kept["lines"]) == 51  # (the run's log: more of it)


def test_a_jobs_log_is_kept_as_its_runs_log(engine, k8s_worker, k8s_server, client, until):
    k8s_worker()
    id = client.submit(FLOW)
    name = only_job(k8s_server, until)
    k8s_server.finish(name, "{}", log="resizing\ndone\n")
    assert client.wait(id, timeout=10)["state"] == "finished"
    (run,) = client.logs(id)["runs"]
    assert (run["name"], run["lines"], run["status"]) == ("k8s:run", ["resizing", "done"], "done")


def test_wrong_parameters_fail_the_task_without_a_job(engine, k8s_worker, k8s_server, client):
    k8s_worker()
    document = client.wait(client.submit('k8s:run (- {"command": "echo"} -)'), timeout=10)
    assert document["state"] == "failed"
    assert "needs an image" in document["error"]["error"]
    assert k8s_server.jobs == {}


def test_a_restarted_worker_re_attaches_to_the_job_instead_of_creating_it_again(
    engine, k8s_worker, k8s_server, client, started, until
):
    k8s_worker()
    id = client.submit(FLOW, {"n": 1})
    name = only_job(k8s_server, until)
    until(
        lambda: client.redis.xpending(KEYS.namespace_stream("k8s"), "workers")["pending"] == 0,
        what="the start acked",
    )
    stop, thread, url = started.parts.pop()
    _redis_stop(stop, thread, url)  # the worker goes away while its Job runs
    k8s_server.finish(name, '{"done": true}')  # and the Job ends while nobody watches
    time.sleep(0.3)
    assert client.status(id)["state"] == "running"
    k8s_worker()  # a new worker lists the Jobs, finds it finished, ends its task
    document = client.wait(id, timeout=10)
    assert (document["state"], document["output"]) == ("finished", {"done": True})
    assert len(k8s_server.made("POST", "/jobs")) == 1


def test_a_start_delivered_again_finds_the_job_and_does_not_create_it_twice(
    engine, k8s_worker, k8s_server, client, until, redis_url
):
    from littleflow.redis.protocol import StartTask

    k8s_worker()
    id = client.submit(FLOW, {"n": 1})
    name = only_job(k8s_server, until)
    until(
        lambda: client.redis.xpending(KEYS.namespace_stream("k8s"), "workers")["pending"] == 0,
        what="the start acked",
    )
    # the worker died after creating the Job, before acking: the start comes again
    ((_, fields),) = client.redis.xrange(KEYS.namespace_stream("k8s"))
    client.redis.xadd(KEYS.namespace_stream("k8s"), StartTask.parse(fields).fields())
    until(lambda: len(k8s_server.made("GET", f"/jobs/{name}")) >= 2, what="the Job looked up again")
    assert len(k8s_server.made("POST", "/jobs")) == 1
    k8s_server.finish(name, '{"once": 1}')
    assert client.wait(id, timeout=10)["output"] == {"once": 1}


def test_terminating_a_workflow_deletes_its_running_jobs(engine, k8s_worker, k8s_server, client, until):
    k8s_worker()
    id = client.submit('k8s:a (- {"image": "busybox"} -) | k8s:b (- {"image": "busybox"} -)')
    other = client.submit(FLOW)
    until(lambda: len(k8s_server.jobs) == 3, what="three Jobs")
    client.terminate(id)
    until(lambda: len(k8s_server.jobs) == 1, what="the terminated workflow's Jobs deleted")
    (remaining,) = k8s_server.jobs.values()
    assert remaining["metadata"]["labels"][jobs.WORKFLOW] == other
    deletes = k8s_server.made("DELETE", "/jobs/")
    assert len(deletes) == 2 and all("propagationPolicy=Background" in path for path in deletes)
    assert client.status(id)["state"] == "terminated"


def test_watches_reconnect_from_their_version_and_relist_when_it_is_gone(
    engine, k8s_worker, k8s_server, client, until
):
    k8s_worker(resync=300)
    first = client.submit(FLOW, {"n": 1})
    name = only_job(k8s_server, until)
    until(lambda: k8s_server.watches, what="a watch open")
    lists = len([p for p in k8s_server.made("GET", "/jobs?") if "watch=true" not in p])
    k8s_server.drop_watches()  # the connection breaks: watch again from the last version
    until(lambda: len(k8s_server.made("GET", "watch=true")) >= 2, what="a new watch")
    watch = k8s_server.made("GET", "watch=true")[-1]
    assert "resourceVersion=" in watch and "resourceVersion=&" not in watch
    k8s_server.finish(name, '{"first": 1}')
    assert client.wait(first, timeout=10)["output"] == {"first": 1}
    assert len([p for p in k8s_server.made("GET", "/jobs?") if "watch=true" not in p]) == lists  # no relist

    second = client.submit(FLOW, {"n": 2})
    until(lambda: len(k8s_server.jobs) == 2, what="a second Job")
    (name,) = [n for _, n in k8s_server.jobs if not k8s_server.job(n)["metadata"]["labels"].get(jobs.ENDED)]
    k8s_server.compact()  # its version forgotten: 410 Gone, so list again and watch from there
    k8s_server.drop_watches()
    until(
        lambda: len([p for p in k8s_server.made("GET", "/jobs?") if "watch=true" not in p]) > lists,
        what="a relist after 410 Gone",
    )
    k8s_server.finish(name, '{"second": 2}')
    assert client.wait(second, timeout=10)["output"] == {"second": 2}


def test_a_job_deleted_by_someone_else_fails_its_task(engine, k8s_worker, k8s_server, client, until):
    k8s_worker()
    id = client.submit(FLOW)
    name = only_job(k8s_server, until)
    k8s_server.delete("default", name)
    document = client.wait(id, timeout=10)
    assert document["state"] == "failed"
    assert "deleted" in document["error"]["error"]


def test_ended_jobs_are_cleaned_up_after_the_cleanup_time(engine, k8s_worker, k8s_server, client, until):
    k8s_worker(cleanup=0, resync=1)
    id = client.submit(FLOW)
    name = only_job(k8s_server, until)
    assert k8s_server.job(name)["spec"]["ttlSecondsAfterFinished"] == 86400  # a day past the cleanup
    k8s_server.finish(name, "{}")
    assert client.wait(id, timeout=10)["state"] == "finished"
    until(lambda: not k8s_server.jobs, timeout=10, what="the ended Job deleted")


def _redis_stop(stop, thread, url):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "littleflow_redis_conftest_stop", Path(__file__).parent.parent / "redis" / "conftest.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.stop_now(stop, [thread], url)


def test_two_workers_end_a_job_once_and_delete_on_terminate_without_false_failures(
    engine, k8s_worker, k8s_server, client, until
):
    k8s_worker()
    k8s_worker()
    id = client.submit(FLOW, {"n": 1})
    name = only_job(k8s_server, until)
    until(lambda: len(k8s_server.watches) >= 2, what="both workers watching")
    k8s_server.finish(name, '{"once": true}')
    assert client.wait(id, timeout=10)["output"] == {"once": True}
    running = client.submit(FLOW)
    # (the first Job may be gone by now: a relist deletes the Jobs of workflows no longer running)
    second = until(lambda: next((n for _, n in k8s_server.jobs if n != name), None), what="a second Job")
    client.terminate(running)
    until(lambda: all(n != second for _, n in k8s_server.jobs), what="its Job deleted")
    time.sleep(0.5)
    assert client.status(running)["state"] == "terminated"
    assert client.redis.xlen(KEYS.dead) == 0, client.redis.xrange(KEYS.dead)
    assert len(k8s_server.made("POST", "/jobs")) == 2


def test_a_task_may_name_its_namespace_and_is_followed_there(engine, k8s_worker, k8s_server, client, until):
    k8s_worker()
    id = client.submit('k8s:run (- {"image": "busybox", "namespace": "batch"} -)')
    (namespace, name) = until(lambda: next(iter(k8s_server.jobs), None), what="a Job created")
    assert namespace == "batch"
    until(
        lambda: any("/namespaces/batch/jobs?" in p and "watch=true" in p for p in k8s_server.made("GET", "")),
        what="a watch of its namespace",
    )
    k8s_server.finish(name, '{"there": 1}', namespace="batch")
    assert client.wait(id, timeout=10)["output"] == {"there": 1}
