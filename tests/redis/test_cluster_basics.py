"""What redis-py does on a real Redis Cluster (three primaries, the ``cluster`` fixture), for
the commands littleflow uses: scripts, pipelines, transactions, streams, pub/sub, sorted sets.
Keys carry a ``{partition}`` hash tag, as littleflow's will; these tests pin down what the
store may rely on (and the few things it must work around)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
import redis
from redis.cluster import RedisCluster as ClusterClient
from redis.exceptions import CrossSlotTransactionError, NoScriptError, RedisClusterException
from rediscluster import SLOTS, RedisCluster

from littleflow.redis.connection import connect, is_cluster
from littleflow.redis.store import StoreError

#: Sets KEYS[1] and KEYS[2] to ARGV[1], returns KEYS[2]'s value and how many keys it set.
TWO_KEYS = """
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[1])
return {redis.call('GET', KEYS[2]), #KEYS}
"""


def key(partition: int, name: str) -> str:
    """A key of ``partition`` (the hash tag puts all of a partition's keys in one slot)."""
    return f"t:{{{partition}}}:{name}"


@pytest.fixture
def rc(cluster: RedisCluster) -> Iterator[ClusterClient]:
    client = connect(cluster.url)
    assert isinstance(client, ClusterClient)
    yield client
    client.close()


def node_of(rc: ClusterClient, name: str) -> str:
    return rc.get_node_from_key(name).name


def partitions_on_two_nodes(rc: ClusterClient) -> tuple[int, int]:
    """Two partitions whose slots are served by different nodes."""
    first = node_of(rc, key(0, "x"))
    other = next(p for p in range(1, 100) if node_of(rc, key(p, "x")) != first)
    return 0, other


# -- the fixture and connect ---------------------------------------------------------------


def test_the_fixture_is_a_cluster_of_three_nodes_sharing_the_slots(cluster):
    owned = []
    for url in cluster.urls:
        with redis.Redis.from_url(url, decode_responses=True) as node:
            info = node.cluster("INFO")
            assert (info["cluster_state"], int(info["cluster_known_nodes"])) == ("ok", 3)
            assert int(info["cluster_slots_ok"]) == SLOTS
            myself = next(
                line for line in node.execute_command("CLUSTER", "NODES").splitlines() if "myself" in line
            )
            owned.append(myself.split()[8])  # the slot range this node serves
    assert sorted(owned) == sorted(["0-5460", "5461-10921", "10922-16383"])
    assert all(int(url.rsplit(":", 1)[1].split("/")[0]) < 55535 for url in cluster.urls)


def test_the_cluster_fixture_starts_empty_and_flush_empties_every_node(cluster, rc):
    assert rc.dbsize(target_nodes=ClusterClient.PRIMARIES) == 0
    rc.mset_nonatomic({key(p, "k"): p for p in range(20)})
    assert all(node_keys(url) > 0 for url in cluster.urls)
    cluster.flush()
    assert [node_keys(url) for url in cluster.urls] == [0, 0, 0]


def node_keys(url: str) -> int:
    with redis.Redis.from_url(url) as node:
        return node.dbsize()


def test_connect_gives_a_cluster_client_for_a_cluster_node_and_a_plain_one_else(cluster, redis_url):
    for url in cluster.urls:
        with connect(url) as client, connect(url, decode=False) as raw:
            assert is_cluster(client) and isinstance(client, ClusterClient)
            assert len(client.get_primaries()) == 3
            client.set(key(7, "k"), "é")
            assert (client.get(key(7, "k")), raw.get(key(7, "k"))) == ("é", "é".encode())
    with connect(redis_url) as plain:
        assert not is_cluster(plain) and type(plain) is redis.Redis
        assert plain.set("k", 1) and plain.get("k") == "1"


def test_connect_refuses_a_bad_url_or_another_db_than_0_in_one_line(cluster):
    port = cluster.nodes[0].port
    for url, words in [
        (f"redis://127.0.0.1:{port}/1", "cannot use the Redis Cluster at"),
        (f"redis://:secret@127.0.0.1:{port}/0?db=2", "cannot use the Redis Cluster at"),
        (f"redis://:secret@127.0.0.1:{port}/0?socket_timeout=soon", "bad Redis URL"),
        (f"http://127.0.0.1:{port}/0", "bad Redis URL"),
    ]:
        with pytest.raises(StoreError) as caught:
            connect(url)
        message = str(caught.value)
        assert message.startswith(words), message
        assert "\n" not in message and "secret" not in message
        if "db" in url.partition("?")[2] or url.endswith("/1"):
            assert message.endswith("A ``db`` querystring option can only be 0 in cluster mode"), message


def test_connect_to_nothing_gives_a_plain_client_that_fails_on_first_use(own_redis_server):
    url = own_redis_server.url
    own_redis_server.stop()
    client = connect(url)
    assert not is_cluster(client)
    with pytest.raises(redis.ConnectionError):
        client.ping()


# -- Lua scripts ---------------------------------------------------------------------------


def test_a_registered_script_runs_with_keys_of_one_slot_and_survives_script_flush(rc):
    script = rc.register_script(TWO_KEYS)
    assert script(keys=[key(3, "a"), key(3, "b")], args=["x"]) == ["x", 2]
    rc.script_flush()  # every primary forgets it (a restarted node has none): reloaded on NOSCRIPT
    assert script(keys=[key(5, "a"), key(5, "b")], args=["y"]) == ["y", 2]
    assert rc.get(key(5, "a")) == "y"


def test_a_script_with_keys_of_two_slots_is_refused_before_it_is_sent(rc):
    script = rc.register_script(TWO_KEYS)
    with pytest.raises(RedisClusterException, match="EVALSHA - all keys must map to the same key slot"):
        script(keys=[key(3, "a"), key(4, "b")], args=["x"])
    assert rc.exists(key(3, "a"), key(4, "b")) == 0


def test_a_registered_script_cannot_be_called_on_a_cluster_pipeline(rc):
    """redis-py blocks ``pipeline.evalsha`` (which ``Script.__call__`` uses) in cluster mode,
    with and without a transaction; :func:`test_evalsha_in_a_pipeline_through_execute_command`
    is the way around it."""
    script = rc.register_script(TWO_KEYS)
    for transaction in (False, True):
        pipe = rc.pipeline(transaction=transaction)
        with pytest.raises(RedisClusterException, match="pipelined function evalsha is blocked"):
            script(keys=[key(3, "a"), key(3, "b")], args=["x"], client=pipe)


def test_evalsha_in_a_pipeline_through_execute_command(rc):
    """EVALSHA sent with ``execute_command`` is routed by its keys; scripts must be loaded on
    every primary first (``script_load`` does that): a pipeline does not load them, it raises
    NoScriptError."""
    script = rc.register_script(TWO_KEYS)
    assert rc.script_load(TWO_KEYS) == script.sha
    assert rc.script_exists(script.sha) == [True]
    first, second = partitions_on_two_nodes(rc)
    pipe = rc.pipeline(transaction=False)
    pipe.execute_command("EVALSHA", script.sha, 2, key(first, "a"), key(first, "b"), "p")
    pipe.execute_command("EVALSHA", script.sha, 2, key(second, "a"), key(second, "b"), "q")
    pipe.get(key(first, "b"))
    assert pipe.execute() == [["p", 2], ["q", 2], "p"]

    pipe = rc.pipeline(transaction=True)
    pipe.execute_command("EVALSHA", script.sha, 2, key(first, "a"), key(first, "b"), "r")
    pipe.incr(key(first, "n"))
    assert pipe.execute() == [["r", 2], 1]


@pytest.mark.parametrize("transaction", [False, True])
def test_noscript_in_a_pipeline_still_runs_the_other_commands(rc, transaction):
    """A node without the script (restarted, flushed) fails only the EVALSHA: the commands
    around it run, with or without MULTI, so running the pipeline again would repeat them."""
    script = rc.register_script(TWO_KEYS)
    rc.script_flush()
    pipe = rc.pipeline(transaction=transaction)
    pipe.incr(key(3, "before"))
    pipe.execute_command("EVALSHA", script.sha, 2, key(3, "a"), key(3, "b"), "s")
    pipe.incr(key(3, "after"))
    with pytest.raises(NoScriptError, match="No matching script"):
        pipe.execute()
    assert (rc.get(key(3, "before")), rc.get(key(3, "after")), rc.get(key(3, "a"))) == ("1", "1", None)


def test_eval_in_a_pipeline_needs_no_loaded_script(rc):
    """EVAL (the script's text) through ``execute_command`` works in both kinds of pipelines,
    whatever the nodes have loaded."""
    rc.script_flush()
    first, second = partitions_on_two_nodes(rc)
    pipe = rc.pipeline(transaction=False)
    pipe.execute_command("EVAL", TWO_KEYS, 2, key(first, "a"), key(first, "b"), "e")
    pipe.execute_command("EVAL", TWO_KEYS, 2, key(second, "a"), key(second, "b"), "f")
    assert pipe.execute() == [["e", 2], ["f", 2]]
    pipe = rc.pipeline(transaction=True)
    pipe.execute_command("EVAL", TWO_KEYS, 2, key(first, "a"), key(first, "b"), "g")
    pipe.get(key(first, "a"))
    assert pipe.execute() == [["g", 2], "g"]


# -- pipelines and transactions --------------------------------------------------------------


def test_a_pipeline_without_transaction_spans_slots_with_one_write_per_node(rc, monkeypatch):
    writes: Counter[tuple[str, int]] = Counter()
    send = redis.connection.AbstractConnection.send_packed_command

    def counted(self, command, check_health=True):
        writes[(self.host, self.port)] += 1
        return send(self, command, check_health)

    def pipeline(base: int) -> list[object]:
        pipe = rc.pipeline(transaction=False)
        for p in range(60):
            pipe.set(key(p, "k"), base + p)
            pipe.incr(key(p, "k"))
        return pipe.execute()

    pipeline(0)  # the connections to the nodes are made (and greeted) here
    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counted)
    replies = pipeline(100)
    monkeypatch.undo()
    assert replies == [reply for p in range(60) for reply in (True, 101 + p)]
    assert sorted(writes.values()) == [1, 1, 1]  # all three nodes, each written to once
    assert [rc.get(key(p, "k")) for p in range(60)] == [str(101 + p) for p in range(60)]


def test_a_pipeline_error_stays_in_its_place(rc):
    pipe = rc.pipeline(transaction=False)
    pipe.set(key(1, "h"), "x").incr(key(1, "h")).set(key(2, "k"), "y")
    replies = pipe.execute(raise_on_error=False)
    assert replies[0] is True and isinstance(replies[1], redis.ResponseError) and replies[2] is True


def test_a_transaction_runs_on_one_slot_and_refuses_two(rc):
    pipe = rc.pipeline(transaction=True)
    pipe.set(key(3, "x"), 1).incr(key(3, "x")).get(key(3, "x"))
    replies = pipe.execute()
    assert replies[1:] == [2, "2"]
    assert replies[0] in (True, "OK")  # redis-py 8.1: "OK", the raw reply (True outside a transaction)
    pipe = rc.pipeline(transaction=True)
    pipe.set(key(3, "x"), 1).incr(key(4, "x"))
    with pytest.raises(CrossSlotTransactionError, match="must map to the same slot"):
        pipe.execute()
    assert rc.get(key(3, "x")) == "2"


def test_watch_sees_a_concurrent_change(rc, cluster):
    other = connect(cluster.urls[2])  # another client, from another node's URL
    rc.set(key(3, "v"), 1)
    with rc.pipeline(transaction=True) as pipe:
        pipe.watch(key(3, "v"))
        value = int(pipe.get(key(3, "v")))
        other.set(key(3, "v"), 10)
        other.close()
        pipe.multi()
        pipe.set(key(3, "v"), value + 1)
        with pytest.raises(redis.WatchError):
            pipe.execute()
    assert rc.get(key(3, "v")) == "10"


# -- streams ---------------------------------------------------------------------------------


def test_xreadgroup_blocks_on_one_or_two_streams_of_a_slot_until_an_entry_comes(rc, cluster):
    one, two = key(3, "s1"), key(3, "s2")
    for stream in (one, two):
        rc.xgroup_create(stream, "g", id="0", mkstream=True)
    writer = connect(cluster.urls[1])

    def add_later(stream: str, fields: dict[str, str]) -> threading.Thread:
        thread = threading.Thread(target=lambda: (time.sleep(0.3), writer.xadd(stream, fields)))
        thread.start()
        return thread

    for streams, target in [({one: ">"}, one), ({one: ">", two: ">"}, two)]:
        thread = add_later(target, {"to": target})
        began = time.monotonic()
        found = rc.xreadgroup("g", "c1", streams, count=10, block=5000)
        assert 0.2 < time.monotonic() - began < 4
        thread.join()
        assert [(name, [fields for _, fields in entries]) for name, entries in found] == [
            (target, [{"to": target}])
        ]
    writer.close()
    began = time.monotonic()
    assert rc.xreadgroup("g", "c1", {one: ">", two: ">"}, count=10, block=300) == []
    assert time.monotonic() - began >= 0.25


def test_xreadgroup_on_streams_of_two_slots_is_refused(rc):
    for stream in (key(3, "s"), key(4, "s")):
        rc.xgroup_create(stream, "g", id="0", mkstream=True)
    with pytest.raises(RedisClusterException, match="XREADGROUP - all keys must map to the same key slot"):
        rc.xreadgroup("g", "c1", {key(3, "s"): ">", key(4, "s"): ">"}, block=100)


def test_xautoclaim_xpending_and_xack(rc):
    stream = key(6, "s")
    rc.xgroup_create(stream, "g", id="0", mkstream=True)
    ids = [rc.xadd(stream, {"n": str(n)}) for n in range(3)]
    assert [entry_id for entry_id, _ in rc.xreadgroup("g", "dead", {stream: ">"}, count=10)[0][1]] == ids
    time.sleep(0.02)
    next_id, claimed, deleted = rc.xautoclaim(stream, "g", "alive", min_idle_time=10, start_id="0-0", count=2)
    assert ([i for i, _ in claimed], [f for _, f in claimed], deleted) == (
        ids[:2],
        [{"n": "0"}, {"n": "1"}],
        [],
    )
    assert next_id == ids[2]
    assert rc.xautoclaim(stream, "g", "alive", min_idle_time=0, start_id=next_id, justid=True) == ids[2:]
    assert rc.xpending(stream, "g")["consumers"] == [{"name": "alive", "pending": 3}]
    assert rc.xack(stream, "g", *ids) == 3
    assert rc.xpending(stream, "g")["pending"] == 0


def test_client_unblock_must_go_to_the_node_that_serves_the_stream(rc, cluster):
    """CLIENT LIST/UNBLOCK of a cluster client go to one (the default) node only: to wake a
    blocked reader, ask the node that serves its stream."""
    stream = key(8, "s")
    rc.xgroup_create(stream, "g", id="0", mkstream=True)
    reader = connect(cluster.url)
    result: list[object] = []
    thread = threading.Thread(
        target=lambda: result.append(reader.xreadgroup("g", "c", {stream: ">"}, block=20000))
    )
    thread.start()
    owner = rc.get_node_from_key(stream)
    with redis.Redis(host=owner.host, port=owner.port, decode_responses=True) as node:
        deadline = time.monotonic() + 5
        while not (blocked := [c for c in node.client_list() if "b" in c["flags"]]):
            assert time.monotonic() < deadline, "the reader never blocked"
            time.sleep(0.01)
        assert node.client_unblock(blocked[0]["id"]) == 1
    thread.join(5)
    reader.close()
    assert not thread.is_alive() and result == [[]]


# -- sorted sets, node-wide commands, pub/sub -----------------------------------------------


def test_sorted_set_ranges(rc):
    z = key(3, "z")
    rc.zadd(z, {"a": 1, "b": 2, "c": 3})
    assert rc.zrange(z, 0, -1, withscores=True) == [("a", 1.0), ("b", 2.0), ("c", 3.0)]
    assert rc.zrangebyscore(z, 2, "+inf") == ["b", "c"]
    assert rc.zrange(z, "2", "+inf", byscore=True, offset=0, num=1) == ["b"]
    assert rc.zrevrange(z, 0, 0) == ["c"]
    assert rc.zscore(z, "b") == 2.0 and rc.zcard(z) == 3
    with pytest.raises(RedisClusterException, match="same key slot"):
        rc.zunionstore(key(4, "u"), [z])


def test_node_wide_commands_ask_one_node_unless_told_all(rc):
    for p in range(40):
        rc.set(key(p, "k"), p)
    assert rc.dbsize(target_nodes=ClusterClient.PRIMARIES) == 40
    assert len(rc.keys("t:*", target_nodes=ClusterClient.PRIMARIES)) == 40
    assert len(set(rc.scan_iter(match="t:*"))) == 40
    assert rc.dbsize() < 40 and len(rc.keys("t:*")) < 40  # the default node's keys only
    assert rc.delete(*[key(p, "k") for p in range(40)]) == 40  # split by slot
    with pytest.raises(RedisClusterException, match="MGET - all keys must map to the same key slot"):
        rc.mget(key(1, "k"), key(2, "k"))


def test_publish_reaches_subscribers_on_every_node(rc, cluster):
    subscribers = []
    for url in cluster.urls:
        subscriber = redis.Redis.from_url(url, decode_responses=True).pubsub()
        subscriber.subscribe("t:news")
        assert subscriber.get_message(timeout=2)["type"] == "subscribe"
        subscribers.append(subscriber)
    own = rc.pubsub(ignore_subscribe_messages=True)
    own.subscribe("t:news")
    assert rc.publish("t:news", "hello") >= 1
    pipe = rc.pipeline(transaction=False)
    with pytest.raises(RedisClusterException, match="pipelined function publish is blocked"):
        pipe.publish("t:news", "blocked")
    pipe.execute_command("PUBLISH", "t:news", "piped")
    assert pipe.execute()[0] >= 1
    for subscriber in [*subscribers, own]:
        texts, deadline = [], time.monotonic() + 5
        while len(texts) < 2 and time.monotonic() < deadline:  # None for an ignored "subscribe"
            message = subscriber.get_message(timeout=0.5)
            if message and message["type"] == "message":
                texts.append((message["channel"], message["data"]))
        assert texts == [("t:news", "hello"), ("t:news", "piped")]
        subscriber.close()
