"""A task worker written against docs/protocol.md with nothing but redis-py:
what a worker in any other language does. It serves the tasks ``text:upper`` and
``text:count``, each read from its own stream.

    python examples/raw_worker.py redis://127.0.0.1:6379/0
"""

import json
import os
import socket
import sys
import time

import redis

TASKS = ["text:upper", "text:count"]
ROOT = "{lf}:"  # every key starts with the prefix in braces (one Redis Cluster hash slot)
STREAMS, GROUP = [f"{ROOT}task:{name}" for name in TASKS], "workers"
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


def main(url):
    r = redis.Redis.from_url(url, decode_responses=True)
    for stream in STREAMS:
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
        for stream, messages in r.xreadgroup(GROUP, CONSUMER, {s: ">" for s in STREAMS}, count=10, block=1000) or []:
            for message_id, fields in messages:
                end = {"kind": "end", "workflow": fields["workflow"], "task": fields["task"],
                       "seq": fields["seq"], "attempt": fields.get("attempt", "1"),
                       "started": repr(time.time()), "worker": CONSUMER}
                try:
                    output = run_task(fields["name"], json.loads(fields["parameters"]), json.loads(fields["input"]))
                    end.update(status="done", output=json.dumps(output))
                except Exception as error:  # a task's error fails the task
                    end.update(status="failed", error=f"{type(error).__name__}: {error}")
                end["ended"] = repr(time.time())
                with r.pipeline(transaction=True) as pipe:  # the end first, then the ack: never lost
                    pipe.xadd(f"{ROOT}ends", end)
                    pipe.xack(stream, GROUP, message_id)
                    pipe.execute()


if __name__ == "__main__":
    try:
        main(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("LITTLEFLOW_REDIS_URL", "redis://127.0.0.1:6379/0"))
    except KeyboardInterrupt:
        pass
