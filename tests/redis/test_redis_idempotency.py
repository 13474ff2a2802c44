"""Idempotency keys on a real Redis: a submission repeated with its key starts nothing new
(even when the repeats race), a key reused for another request is refused, keys expire and
are freed with their workflow; and an answer lost on the way back is no failure."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from redisproxy import AnswerLosingProxy

from littleflow.redis.client import Client
from littleflow.redis.store import InvalidKey, KeyReused


def test_the_same_key_twice_gives_the_first_workflow(client):
    first = client.submit_once("A", {"n": 1}, key="order-17")
    again = client.submit_once("A", {"n": 1}, key="order-17")
    assert first[1] is True and again == (first[0], False)
    assert [w["id"] for w in client.list()] == [first[0]]
    assert client.submit("A", {"n": 1}, key="order-17") == first[0]


def test_without_a_key_every_submission_is_new(client):
    assert client.submit("A", {"n": 1}) != client.submit("A", {"n": 1})
    assert len(client.list()) == 2


def test_racing_submissions_with_one_key_make_one_workflow(redis_url):
    clients = [Client(redis_url) for _ in range(8)]
    barrier = threading.Barrier(len(clients))

    def submit(client: Client) -> tuple[str, bool]:
        barrier.wait()
        return client.submit_once("A → A", {"n": 1}, key="race")

    with ThreadPoolExecutor(len(clients)) as pool:
        answers = list(pool.map(submit, clients))
    assert len({id for id, _ in answers}) == 1
    assert sorted(new for _, new in answers) == [False] * 7 + [True]
    assert len(clients[0].list()) == 1


@pytest.mark.parametrize("flow, input", [("A", {"n": 2}), ("A → A", {"n": 1}), ("A", None)])
def test_a_key_given_again_with_another_request_is_refused(client, flow, input):
    id = client.submit("A", {"n": 1}, key="k")
    with pytest.raises(KeyReused, match=f"idempotency key 'k' was given for workflow {id} with another"):
        client.submit(flow, input, key="k")
    assert [w["id"] for w in client.list()] == [id]


def test_keys_are_per_request_not_per_flow(client):
    """The same flow and input under two keys: two workflows."""
    assert client.submit("A", {}, key="one") != client.submit("A", {}, key="two")


@pytest.mark.parametrize("key", ["", " lead", "trail ", "tab\there", "é", "x" * 201, "new\nline"])
def test_a_bad_key_is_refused_before_anything_is_stored(client, key):
    with pytest.raises(InvalidKey, match="1 to 200 printable ASCII"):
        client.submit("A", key=key)
    assert client.list() == []


def test_any_printable_ascii_key_up_to_200_characters_is_taken(client):
    for key in ("x" * 200, "a b:c/d*e?[f]", "~!"):
        assert client.submit("A", key=key) == client.submit("A", key=key)


def test_a_key_lives_a_day_and_then_expires(client, raw, until):
    first = client.submit("A", key="day")
    assert 24 * 3600 - 60 < raw.ttl(client.keys.idempotency("day")) <= 24 * 3600
    short = client.submit_once("A", key="short", key_ttl=1)[0]
    until(lambda: not raw.exists(client.keys.idempotency("short")), what="the key expiring")
    assert client.submit("A", key="short") != short
    assert client.submit("A", key="day") == first


@pytest.mark.parametrize("ttl", [0, -5, 1.5])
def test_a_key_lives_whole_seconds(client, ttl):
    with pytest.raises(ValueError, match="whole number of seconds, at least 1"):
        client.submit_once("A", key="k", key_ttl=ttl)
    assert client.list() == []


def test_deleting_the_workflow_frees_its_key(client):
    id = client.submit("A", key="del")
    client.terminate(id)
    client.delete(id)
    again = client.submit("A → A", key="del")  # (another request is fine now: the key is free)
    assert again != id and client.submit("A → A", key="del") == again


def test_deleting_a_workflow_leaves_a_key_that_names_another(client, raw):
    """A key that expired and was taken again by a newer workflow stays with that one."""
    old = client.submit("A", key="k")
    client.terminate(old)
    raw.delete(client.keys.idempotency("k"))  # (as if it expired)
    new = client.submit("A", key="k")
    client.delete(old)
    assert client.submit("A", key="k") == new


def test_submit_many_takes_a_key_for_each_input(client):
    first = client.submit_many("A", [{"n": 1}, {"n": 2}, {"n": 3}], keys=["a", None, "c"])
    again = client.submit_many("A", [{"n": 1}, {"n": 2}, {"n": 3}], keys=["a", None, "c"])
    assert again[0] == first[0] and again[2] == first[2] and again[1] != first[1]
    assert len(client.list()) == 4
    with pytest.raises(ValueError, match="2 idempotency keys for 3 inputs"):
        client.submit_many("A", [1, 2, 3], keys=["a", "b"])


def test_the_key_is_kept_in_the_stored_workflow_and_its_definition_is_the_first(client, raw):
    id = client.submit("@flow first\nA", key="k")
    assert client.submit("@flow first\nA", key="k") == id
    assert raw.hget(client.keys.workflow(id), "idempotency") == client.keys.idempotency("k")
    assert raw.get(client.keys.idempotency("k")).startswith(id + " ")


# -- an answer lost after the write --------------------------------------------------------


@pytest.fixture
def lossy(redis_server, redis_url):
    """A Client whose first commit is carried out by Redis and its answer lost."""
    proxy = AnswerLosingProxy(redis_server.port)
    yield Client(redis_url.replace(f":{redis_server.port}/", f":{proxy.port}/"))
    proxy.close()


@pytest.mark.parametrize("key", [None, "lost"])
def test_a_submission_whose_answer_is_lost_still_answers_its_id(lossy, client, key):
    """The connection breaks after the commit ran: the client asks again (on a new
    connection), finds the workflow stored, and answers its id; nothing is stored twice."""
    id = lossy.submit("A", {"n": 1}, key=key)
    assert [w["id"] for w in client.list()] == [id]
    assert client.status(id)["input"] == {"n": 1}
