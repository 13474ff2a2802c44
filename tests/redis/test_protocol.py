"""littleflow.redis.protocol: what an end-task message carries of a retried run's attempts."""

from __future__ import annotations

from littleflow.redis.protocol import MAX_ATTEMPTS, EndTask


def end(**more) -> EndTask:
    return EndTask("w", "|1|-1", 1, "done", {"ok": True}, None, 3, 10.0, 20.0, "pool-1", **more)


def test_a_retried_runs_attempts_travel_with_its_end():
    attempts = [[1, 10.0, 12.0, "failed", "OSError: no"], [2, 13.0, 20.0, "done", None]]
    assert EndTask.parse(end(attempts=attempts).fields()).attempts == attempts
    assert "attempts" not in end().fields() and EndTask.parse(end().fields()).attempts is None


def test_bad_attempts_lose_nothing_else_and_many_are_cut_to_the_latest():
    fields = end().fields()
    parsed = EndTask.parse({**fields, "attempts": "{not json"})
    assert parsed.attempts is None and parsed.output == {"ok": True} and parsed.attempt == 3
    assert EndTask.parse({**fields, "attempts": '{"a": 1}'}).attempts is None
    many = [[n, 1.0, 2.0, "failed", "no"] for n in range(1, 101)]
    kept = EndTask.parse(end(attempts=many).fields()).attempts
    assert len(kept) == MAX_ATTEMPTS and kept[-1][0] == 100
