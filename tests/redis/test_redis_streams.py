"""Streams: reading several streams in the order their messages were queued; taking over the
messages of a dead consumer behind many of a live one."""

import threading
import time

import redis

from littleflow.redis.protocol import Keys
from littleflow.redis.streams import Streams


def test_a_dead_consumers_messages_behind_a_thousand_live_ones_are_taken_over(redis_url):
    raw = redis.Redis.from_url(redis_url)
    keys, stream = Keys(), Keys().stream("x")
    live = Streams(raw, keys, "workers", "live", claim_idle=0.2)
    live.join(stream)
    for n in range(1500):
        raw.xadd(stream, {"n": n})
    held = [message_id for _, message_id, _, _ in live.read({stream: ">"}, 1200, 0)]
    raw.xreadgroup("workers", "dead", {stream: ">"}, count=300)
    time.sleep(0.3)
    live.heartbeat(stream, held)  # still working on its 1,200
    taker = Streams(raw, keys, "workers", "taker", claim_idle=0.2)
    taken = []
    for _ in range(6):
        taken += taker.reclaim(stream, count=100)
    assert len(taken) == 300
    assert {int(fields[b"n"]) for _, _, fields, _ in taken} == set(range(1200, 1500))


def test_consumers_that_hold_nothing_and_are_long_silent_are_forgotten(redis_url):
    raw = redis.Redis.from_url(redis_url)
    stream = Keys().stream("y")
    one = Streams(raw, Keys(), "workers", "one")
    one.join(stream)
    raw.xadd(stream, {"n": 1})
    raw.xreadgroup("workers", "gone", {stream: ">"}, count=1)  # "gone" holds one message
    raw.xreadgroup("workers", "idle", {stream: ">"}, count=1)  # "idle" holds nothing
    time.sleep(0.05)
    one.forget_idle_consumers(stream, idle=0.01)
    assert sorted(c["name"] for c in raw.xinfo_consumers(stream, "workers")) == [b"gone"]


def test_a_blocked_read_gets_what_every_stream_got_at_once_in_the_order_it_was_queued(redis_url):
    """Redis wakes a read blocked on several streams with the first one that gets messages,
    and gives it that one's alone; a step's starts go to several streams at once (A → { B  D }),
    and a worker that can take one more task must not leave D behind for C, queued later."""
    raw = redis.Redis.from_url(redis_url)
    keys = Keys()
    b, c, d = (keys.stream(name) for name in "BCD")
    reader = Streams(raw, keys, "workers", "reader")
    reader.join(b, c, d)
    found = []
    blocked = threading.Thread(target=lambda: found.extend(reader.read({c: ">", d: ">", b: ">"}, 1, 5.0)))
    blocked.start()
    deadline = time.monotonic() + 5
    while not any(client.get("cmd") == "xreadgroup" for client in raw.client_list()):
        assert time.monotonic() < deadline, "the read never blocked"
        time.sleep(0.01)
    raw.eval(
        "redis.call('XADD', KEYS[1], '*', 'n', 'B'); redis.call('XADD', KEYS[2], '*', 'n', 'D')", 2, b, d
    )
    blocked.join(10)
    assert [(stream, fields[b"n"]) for stream, _, fields, _ in found] == [(b, b"B"), (d, b"D")]

    # ids of their own, a millisecond apart (within one, the ids of two streams may tie)
    now = int(time.time() * 1000) + 1000
    raw.xadd(d, {"n": "D2"}, id=f"{now}-0")
    raw.xadd(c, {"n": "C"}, id=f"{now + 1}-0")
    raw.xadd(b, {"n": "B2"}, id=f"{now + 2}-0")  # read together: by when each was queued, not by stream
    assert [fields[b"n"] for _, _, fields, _ in reader.read({c: ">", d: ">", b: ">"}, 10, 1.0)] == [
        b"D2",
        b"C",
        b"B2",
    ]

    # one step's starts to two streams, queued in one millisecond (their ids may be equal):
    # in the order the engine released them, which their run numbers keep
    e, f = keys.stream("E"), keys.stream("F")
    reader.join(e, f)
    raw.eval(
        "redis.call('XADD', KEYS[1], '*', 'n', 'F1', 'seq', '7');"
        "redis.call('XADD', KEYS[2], '*', 'n', 'E1', 'seq', '8');"
        "redis.call('XADD', KEYS[2], '*', 'n', 'E2', 'seq', '9')",
        2,
        f,
        e,
    )
    assert [fields[b"n"] for _, _, fields, _ in reader.read({e: ">", f: ">"}, 10, 1.0)] == [
        b"F1",
        b"E1",
        b"E2",
    ]
