"""A task worker written against docs/protocol.md with nothing but redis-py:
what a worker in any other language does. It serves the tasks ``text:upper`` and
``text:count``, each read from its own stream in every partition (on one Redis server; on a
Redis Cluster a worker reads each partition's streams apart).

    python examples/raw_worker.py redis://127.0.0.1:6379/0
"""

import json
import os
import socket
import sys
import time

import redis

TASKS = ["text:upper", "text:count"]
ROOT = "{lf}:"  # partition 0 and the shared keys: the prefix in braces (a Redis Cluster hash tag)
GROUP = "workers"
CONSUMER = f"raw-{socket.gethostname()}-{os.getpid()}"


def run_task(name, parameters, input):
    """The tasks themselves: return the output, raise to fail."""
    if name == "text:upper":
        if "text" not in input:
            raise ValueError("the input has no text")
        return {"text": str(input["text"]).upper()}
    if name == "text:count":
        return {"count": len(str(input.get("text", "")))}
    raise LookupError(f"no task {name}")


def roots(r):
    """The root of every partition's keys: {lf}:, {lf/1}:, … (one unless configured)."""
    partitions = int(r.hget(f"{ROOT}config", "partitions") or 1)
    return [ROOT] + [f"{{lf/{p}}}:" for p in range(1, partitions)]


def main(url):
    r = redis.Redis.from_url(url, decode_responses=True)
    r.hsetnx(f"{ROOT}config", "partitions", 1)  # (the first user of a prefix fixes how many there are)
    streams = {f"{root}task:{name}": root for root in roots(r) for name in TASKS}  # stream -> its root
    for stream in streams:
        try:
            r.xgroup_create(stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise
    print(f"{CONSUMER}: serving {', '.join(TASKS)}", file=sys.stderr, flush=True)
    seen = 0.0
    while True:
        if time.time() - seen > 10:  # say what it serves (submit warns of tasks nobody serves)
            seen = time.time()
            r.hset(f"{ROOT}workers", CONSUMER, json.dumps({"tasks": TASKS, "namespaces": [], "seen": seen}))
        for stream, messages in (
            r.xreadgroup(GROUP, CONSUMER, {s: ">" for s in streams}, count=10, block=1000) or []
        ):
            for message_id, fields in messages:
                end = {
                    "kind": "end",
                    "workflow": fields["workflow"],
                    "task": fields["task"],
                    "seq": fields["seq"],
                    "attempt": fields.get("attempt", "1"),
                    "started": repr(time.time()),
                    "worker": CONSUMER,
                }
                try:
                    output = run_task(
                        fields["name"], json.loads(fields["parameters"]), json.loads(fields["input"])
                    )
                    end.update(status="done", output=json.dumps(output))
                except Exception as error:  # noqa: BLE001 -- a task's error fails the task
                    end.update(status="failed", error=f"{type(error).__name__}: {error}")
                end["ended"] = repr(time.time())
                with r.pipeline(transaction=True) as pipe:  # the end first, then the ack: never lost
                    pipe.xadd(f"{streams[stream]}ends", end)  # (the ends of the start's partition)
                    pipe.xack(stream, GROUP, message_id)
                    pipe.execute()


if __name__ == "__main__":
    try:
        main(
            sys.argv[1]
            if len(sys.argv) > 1
            else os.environ.get("LITTLEFLOW_REDIS_URL", "redis://127.0.0.1:6379/0")
        )
    except KeyboardInterrupt:
        pass
