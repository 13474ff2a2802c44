"""The ``k8s:`` executor when things go wrong: hung watches, API errors, Jobs deleted as
soon as they finish, cancels missed, outputs cut, names taken, other installations' Jobs
(against the test Kubernetes API server of tests/k8sserver.py)."""

from __future__ import annotations

import json
import logging
import time

from test_k8s_executor import FLOW, _redis_stop, only_job, task_node

from littleflow.k8s import jobs
from littleflow.redis.protocol import Keys, StartTask

KEYS = Keys()


def running(client, id: str) -> bool:
    return task_node(client.status(id))["status"] == "running"


def test_a_hung_watch_times_out_and_a_relist_ends_the_job_finished_meanwhile(
    engine, k8s_worker, k8s_server, client, until
):
    k8s_server.hang = True  # every watch: accepted, then nothing, never closed
    k8s_worker(resync=1, watch_slack=0.5, timeout=2)
    id = client.submit(FLOW)
    name = only_job(k8s_server, until)
    until(lambda: k8s_server.hung, what="a watch hung")
    k8s_server.finish(name, '{"seen": true}')
    assert client.wait(id, timeout=10)["output"] == {"seen": True}
    assert k8s_server.hung >= 2  # it timed out, and watched again
    watch = k8s_server.made("GET", "watch=true")[0]
    assert "timeoutSeconds=1" in watch


def test_a_job_deleted_at_once_after_it_finished_still_ends_its_task_as_it_ended(
    engine, k8s_worker, k8s_server, client, until
):
    k8s_worker(resync=300)
    kept, lost, failed = (client.submit(FLOW, {"n": n}) for n in range(3))
    until(lambda: len(k8s_server.jobs) == 3, what="three Jobs")
    until(lambda: all(running(client, id) for id in (kept, lost, failed)), what="the tasks running")
    by_workflow = {
        job["metadata"]["labels"][jobs.WORKFLOW]: name for (_, name), job in k8s_server.jobs.items()
    }
    k8s_server.muted = True  # the watch sees them deleted, already finished, and never running→finished
    k8s_server.finish(by_workflow[kept], '{"kept": 1}')
    k8s_server.finish(by_workflow[lost], '{"lost": 1}')
    k8s_server.fail(by_workflow[failed], log="boom")
    k8s_server.muted = False
    k8s_server.delete("default", by_workflow[kept], keep_pods=True)  # its pod still there: its output is read
    k8s_server.delete("default", by_workflow[lost])
    k8s_server.delete("default", by_workflow[failed], keep_pods=True)
    assert client.wait(kept, timeout=10)["output"] == {"kept": 1}
    document = client.wait(lost, timeout=10)
    assert document["state"] == "failed"
    assert "the Job succeeded but its output was lost (pod gone)" in document["error"]["error"]
    document = client.wait(failed, timeout=10)
    assert document["state"] == "failed"
    assert (
        "BackoffLimitExceeded" in document["error"]["error"] and "deleted" not in document["error"]["error"]
    )


def test_a_start_read_after_its_workflow_was_terminated_creates_no_job(
    engine, k8s_worker, k8s_server, client, until
):
    id = client.submit(FLOW)
    until(lambda: client.redis.xlen(KEYS.namespace_stream("k8s")), what="the start sent")
    client.terminate(id)
    assert client.redis.xlen(KEYS.namespace_stream("k8s")) == 1
    k8s_worker()

    def handled() -> bool:
        groups = client.redis.xinfo_groups(KEYS.namespace_stream("k8s"))
        return (
            bool(groups)
            and groups[0]["last-delivered-id"] != "0-0"
            and client.redis.xpending(KEYS.namespace_stream("k8s"), "workers")["pending"] == 0
        )

    until(handled, what="the start handled")
    time.sleep(0.2)
    assert k8s_server.made("POST", "/jobs") == [] and k8s_server.jobs == {}
    assert client.status(id)["state"] == "terminated"


def test_a_job_created_as_its_workflow_is_terminated_is_deleted_at_once(
    engine, k8s_worker, k8s_server, client, until
):
    id = client.submit(FLOW)
    until(lambda: client.redis.xlen(KEYS.namespace_stream("k8s")), what="the start sent")
    k8s_server.on_create = lambda job: client.redis.hset(
        KEYS.workflow(id), "status", "terminated"
    )  # (no cancel sent)
    k8s_worker(resync=300)
    until(lambda: k8s_server.made("DELETE", "/jobs/"), what="the Job deleted")
    assert k8s_server.jobs == {} and len(k8s_server.made("POST", "/jobs")) == 1


def test_a_relist_deletes_the_jobs_of_workflows_no_longer_running_when_the_cancel_was_missed(
    engine, k8s_worker, k8s_server, client, until
):
    k8s_worker(resync=1)
    stopped, gone, alive = (client.submit(FLOW, {"n": n}) for n in range(3))
    until(lambda: len(k8s_server.jobs) == 3, what="three Jobs")
    until(lambda: all(running(client, id) for id in (stopped, gone, alive)), what="the tasks running")
    client.redis.hset(KEYS.workflow(stopped), "status", "terminated")  # no cancel published
    client.redis.delete(KEYS.workflow(gone))
    until(lambda: len(k8s_server.jobs) == 1, what="two Jobs deleted at a relist")
    (job,) = k8s_server.jobs.values()
    assert job["metadata"]["labels"][jobs.WORKFLOW] == alive
    assert client.redis.xlen(KEYS.dead) == 0


def test_a_restarted_worker_follows_every_namespace_followed_before(
    engine, k8s_worker, k8s_server, client, started, until
):
    k8s_worker()
    id = client.submit('k8s:run (- {"image": "busybox", "namespace": "batch"} -)')
    (_, name) = until(lambda: next(iter(k8s_server.jobs), None), what="a Job created")
    until(
        lambda: client.redis.xpending(KEYS.namespace_stream("k8s"), "workers")["pending"] == 0,
        what="the start acked",
    )
    assert client.redis.smembers(KEYS.k8s_namespaces) == {"default", "batch"}
    _redis_stop(*started.parts.pop())
    k8s_server.finish(name, '{"there": 1}', namespace="batch")  # while no worker runs
    k8s_worker()  # no task names batch to this one: it follows it from Redis
    assert client.wait(id, timeout=10)["output"] == {"there": 1}


def test_jobs_of_another_installation_in_the_namespace_are_left_alone(
    engine, k8s_worker, k8s_server, client, until
):
    theirs = jobs.manifest(
        StartTask("theirs-1", "t1", 1, 1, "k8s:run", {"image": "busybox"}, {}), "default", prefix="other"
    )
    k8s_server.create("default", theirs)
    k8s_server.finish(theirs["metadata"]["name"], '{"theirs": 1}')
    k8s_worker()
    id = client.submit(FLOW)
    name = until(
        lambda: next((n for _, n in k8s_server.jobs if n != theirs["metadata"]["name"]), None), what="our Job"
    )
    assert k8s_server.job(name)["metadata"]["labels"][jobs.PREFIX] == "lf"
    k8s_server.finish(name, '{"ours": 1}')
    assert client.wait(id, timeout=10)["output"] == {"ours": 1}
    assert jobs.ENDED not in k8s_server.job(theirs["metadata"]["name"])["metadata"]["labels"]
    selectors = [p for p in k8s_server.made("GET", "/namespaces/default/jobs?")]
    assert selectors and all(
        "littleflow.io%2Fprefix%3Dlf" in p or "littleflow.io/prefix%3Dlf" in p for p in selectors
    ), selectors


def test_one_job_that_cannot_be_handled_does_not_stall_the_others(
    engine, k8s_worker, k8s_server, client, started, until
):
    k8s_worker()
    id = client.submit(FLOW)
    name = only_job(k8s_server, until)
    until(
        lambda: client.redis.xpending(KEYS.namespace_stream("k8s"), "workers")["pending"] == 0,
        what="the start acked",
    )
    _redis_stop(*started.parts.pop())
    bad = jobs.manifest(StartTask("bad-1", "t1", 1, 1, "k8s:run", {"image": "busybox"}, {}), "default")
    bad["metadata"]["annotations"][jobs.TASK] = json.dumps(
        {"workflow": "bad-1", "task": "t1", "seq": "not a number"}
    )
    k8s_server.create("default", bad)
    k8s_server.finish(bad["metadata"]["name"])
    k8s_server.finish(name, '{"fine": 1}')
    k8s_server.jobs = {
        key: k8s_server.jobs[key]
        for key in sorted(k8s_server.jobs, key=lambda k: k[1] != bad["metadata"]["name"])
    }  # the bad one listed first
    k8s_worker(resync=300)
    assert client.wait(id, timeout=10)["output"] == {"fine": 1}


def test_repeated_watch_errors_back_off_doubling(engine, k8s_worker, k8s_server, client, until, caplog):
    caplog.set_level(logging.WARNING, "littleflow.k8s")
    k8s_server.faults = [("GET", "/namespaces/default/jobs?", 500)] * 5
    k8s_worker(retry=0.05, retry_max=0.2)
    until(lambda: not k8s_server.faults, what="the errors answered")
    id = client.submit(FLOW)
    k8s_server.finish(only_job(k8s_server, until), '{"after": 1}')
    assert client.wait(id, timeout=10)["output"] == {"after": 1}
    waits = [
        r.getMessage().rsplit("again in ", 1)[-1] for r in caplog.records if "again in" in r.getMessage()
    ]
    assert waits[:5] == ["0.05 s", "0.1 s", "0.2 s", "0.2 s", "0.2 s"], waits


def test_brief_api_errors_at_start_do_not_fail_the_task(engine, k8s_worker, k8s_server, client, until):
    k8s_server.faults = [("POST", "/jobs", 503), ("POST", "/jobs", 429)]
    k8s_worker(attempts=4)
    id = client.submit(FLOW)
    name = only_job(k8s_server, until)
    k8s_server.finish(name, '{"ok": 1}')
    assert client.wait(id, timeout=10)["output"] == {"ok": 1}
    assert len(k8s_server.made("POST", "/jobs")) == 3


def test_a_start_whose_api_errors_outlast_the_retries_is_delivered_again(
    engine, k8s_worker, k8s_server, client, until
):
    k8s_server.faults = [("GET", "/jobs/lf-", 500)] * 3
    k8s_worker(attempts=2)
    id = client.submit(FLOW)
    name = only_job(k8s_server, until)  # the second delivery created it
    assert len(k8s_server.made("GET", "/jobs/lf-")) >= 4
    until(lambda: running(client, id), what="the task running")
    k8s_server.finish(name, '{"ok": 2}')
    assert client.wait(id, timeout=10)["output"] == {"ok": 2}
    assert len(k8s_server.made("POST", "/jobs")) == 1


def test_an_output_cut_at_the_termination_message_limit_fails_the_task(
    engine, k8s_worker, k8s_server, client, until
):
    k8s_worker()
    id = client.submit(FLOW)
    k8s_server.finish(only_job(k8s_server, until), ('{"rows": ["' + "x" * 4100)[:4096])
    document = client.wait(id, timeout=10)
    assert document["state"] == "failed"
    assert "4096-byte" in document["error"]["error"]


def test_a_job_of_the_same_name_for_another_task_is_an_error_not_a_re_attach(
    engine, k8s_worker, k8s_server, client, until
):
    id = client.submit(FLOW)
    ((_, fields),) = until(lambda: client.redis.xrange(KEYS.namespace_stream("k8s")), what="the start sent")
    start = StartTask.parse(fields)
    other = StartTask(
        client.submit(FLOW), start.task, start.seq, start.node, start.name, start.parameters, {}
    )
    squatter = jobs.manifest(other, "default")
    squatter["metadata"]["name"] = jobs.job_name(start.workflow, start.node, start.seq, start.attempt)
    k8s_server.create("default", squatter)
    k8s_worker()
    document = client.wait(id, timeout=10)
    assert document["state"] == "failed"
    assert "is not this task's run" in document["error"]["error"]
    assert f'(it is "{other.workflow}" "{start.task}" run {start.seq})' in document["error"]["error"]


def test_a_brief_error_listing_the_pods_of_a_finished_job_is_retried_not_taken_for_a_lost_output(
    engine, k8s_worker, k8s_server, client, until
):
    k8s_worker(resync=1)
    id = client.submit(FLOW)
    name = only_job(k8s_server, until)
    k8s_server.faults = [("GET", "/pods?", 503)]
    k8s_server.finish(name, '{"read": "later"}')
    assert client.wait(id, timeout=10)["output"] == {"read": "later"}
    assert not k8s_server.faults


def test_pods_that_may_not_be_listed_fail_the_task_saying_why(engine, k8s_worker, k8s_server, client, until):
    k8s_worker()
    id = client.submit(FLOW)
    name = only_job(k8s_server, until)
    k8s_server.faults = [("GET", "/pods?", 403)]
    k8s_server.finish(name, '{"never": "read"}')
    document = client.wait(id, timeout=10)
    assert document["state"] == "failed"
    assert "output cannot be read" in document["error"]["error"] and "403" in document["error"]["error"]
