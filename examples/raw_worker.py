"""A task worker written against docs/protocol.md with nothing but redis-py:
what a worker in any other language does. It serves the namespace ``text:``
(``text:upper`` and ``text:count``).

    python examples/raw_worker.py redis://127.0.0.1:6379/0
"""

import json
import os
import socket
import sys
import time

import redis

NAMESPACE = "text"
STREAM, GROUP = f"lf:tasks:{NAMESPACE}", "workers"
CONSUMER = f"raw-{socket.gethostname()}-{os.getpid()}"


def run_task(name, parameters, input):
    """The tasks themselves: return the output, raise to fail."""
    if name == "text:upper":
        return {"text": str(input.get("text", "")).upper()}
    if name == "text:count":
        return {"count": len(str(input.get("text", "")))}
    raise LookupError(f"no task {name}")


def main(url):
    r = redis.Redis.from_url(url, decode_responses=True)
    try:
        r.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    except redis.ResponseError as error:
        if "BUSYGROUP" not in str(error):
            raise
    print(f"{CONSUMER}: serving {NAMESPACE}:", file=sys.stderr, flush=True)
    while True:
        for _, messages in r.xreadgroup(GROUP, CONSUMER, {STREAM: ">"}, count=10, block=1000) or []:
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
                    pipe.xadd("lf:ends", end)
                    pipe.xack(STREAM, GROUP, message_id)
                    pipe.execute()


if __name__ == "__main__":
    try:
        main(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("LITTLEFLOW_REDIS_URL", "redis://127.0.0.1:6379/0"))
    except KeyboardInterrupt:
        pass
