"""The Celery app for ``bench/_celery_side.py``: two no-op tasks, nothing to run on its own.

The worker subprocess imports it as ``celery -A _celery_app:app`` (with this folder on
PYTHONPATH) and finds its Redis URL and queue in the environment variables below;
the submitting side builds its own app with :func:`make_app`, so one process can
bench several Redis servers in turn. Celery is imported only inside
:func:`make_app`: without Celery this module still imports, and running it (as
``dev.py bench`` does with every ``bench/*.py``) only prints a line.
"""

from __future__ import annotations

import os
import time

#: The Redis URL for broker and result backend (the worker reads it at import).
ENV_URL = "LITTLEFLOW_BENCH_CELERY_REDIS"
#: The queue to use: unique per run, so stale messages from an aborted run never interfere.
ENV_QUEUE = "LITTLEFLOW_BENCH_CELERY_QUEUE"
DEFAULT_QUEUE = "littleflow-bench"

NOOP = "littleflow_bench.noop"
COLLECT = "littleflow_bench.collect"


def make_app(redis_url: str, queue: str = DEFAULT_QUEUE):
    """A Celery app with broker and result backend both on ``redis_url``, and the two tasks."""
    from celery import Celery

    app = Celery("littleflow_bench", broker=redis_url, backend=redis_url, set_as_current=False)
    app.conf.update(
        task_default_queue=queue,
        # Short no-op tasks: let the worker hold a batch of messages rather than
        # fetch one per round trip (Celery's documented advice for short tasks).
        worker_prefetch_multiplier=64,
        task_acks_late=False,  # the default, stated: ack on receipt
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=3600,
        broker_connection_retry_on_startup=True,
        worker_disable_rate_limits=True,  # no task has a rate limit; skip the check
        worker_send_task_events=False,
        task_send_sent_event=False,
        worker_enable_remote_control=False,  # no pidbox fan-out queue to poll
        # Never eager: every task goes through Redis and the worker.
        task_always_eager=False,
    )

    @app.task(name=NOOP, shared=False)
    def noop(prev=None):
        """Do nothing; return when this step started and ended, after the steps before it.

        ``prev`` is the chain's first argument (any non-dict, e.g. the index) or
        the previous step's return value, whose ``steps`` are carried along so
        the last result of a chain holds every step's ``[started, ended]``.
        """
        started = time.time()
        if isinstance(prev, dict):
            index, steps = prev["index"], prev["steps"]
            prev_ended = steps[-1][1]
        else:
            index, steps, prev_ended = prev, [], None
        ended = time.time()
        return {
            "index": index,
            "started": started,
            "ended": ended,
            "prev_ended": prev_ended,
            "steps": [*steps, [started, ended]],
        }

    @app.task(name=COLLECT, shared=False)
    def collect(results):
        """The chord's callback: how many results arrived, and the span of their steps."""
        return {
            "count": len(results),
            "first_started": min((r["started"] for r in results), default=None),
            "last_ended": max((r["ended"] for r in results), default=None),
        }

    return app


def __getattr__(name: str):
    # `celery -A _celery_app:app` looks up `app`: build it from the environment, once.
    if name == "app":
        url = os.environ.get(ENV_URL)
        if not url:
            raise AttributeError(f"_celery_app.app needs the Redis URL in ${ENV_URL}")
        app = make_app(url, os.environ.get(ENV_QUEUE) or DEFAULT_QUEUE)
        globals()["app"] = app
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    print("bench/_celery_app.py: the Celery app behind bench/_celery_side.py; nothing to run on its own")
