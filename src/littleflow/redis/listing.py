"""Pages of the workflow list read from the indexes scripts/commit.lua keeps (never a scan
of every workflow): by submit time (all, per state, per flow name, per name and state), the
ids of each state in lex order, and the flow names in lex order.

A search is a prefix (case-sensitive) of the id or of the flow name. What it costs:

* a prefix of flow names alone: a page of each name's index, merged (counts: ZCARD);
* a prefix of at most :data:`FEW` ids, or of ids and flow names both: the matching ids
  read whole (and counted), merged with the names' pages;
* a prefix of more ids: the time index walked from the end asked for, ids that do not
  match skipped (counts: ZLEXCOUNT); after :data:`WALK` ids read, the matching ids read
  whole instead, if there are at most :data:`LOTS` (else the walk goes on);
* with a flow name too: the smaller of the matching ids and that flow's workflows, read whole."""

from __future__ import annotations

from typing import Any

from .protocol import STATES, Keys
from .scripts import Scripts

#: An id prefix matching at most this many workflows reads them whole; a broader one walks.
FEW = 2000
#: How many ids of the time index a walk reads before it reads the matching ids whole instead
#: (when there are at most LOTS of them).
WALK = 5_000
LOTS = 200_000
_ZERO = dict.fromkeys(STATES, 0)


def find(
    redis: Any,
    keys: Keys,
    scripts: Scripts,
    state: str | None,
    name: str | None,
    offset: int,
    count: int | None,
    search: str | None,
    newest: bool,
) -> tuple[list[str], int, dict[str, int]]:
    """The ids of a page (``count`` from ``offset``, ``newest`` first or oldest), how many
    match all the filters, and how many of each state match those but the state. With
    several partitions, each gives its first ``offset + count`` and they are merged by
    submit time."""
    if keys.partitions == 1:
        return _find(redis, keys, scripts, state, name, offset, count, search, newest)
    end = None if count is None else offset + count
    pages = [_find(redis, part, scripts, state, name, 0, end, search, newest) for part in keys.parts]
    pipe = redis.pipeline(transaction=False)
    for part, (ids, _, _) in zip(keys.parts, pages):
        if ids:
            pipe.zmscore(part.workflows, ids)
    times = iter(pipe.execute() if len(pipe) else ())
    rows = sorted(
        ((time or 0.0, id) for ids, _, _ in pages if ids for id, time in zip(ids, next(times))),
        reverse=newest,
    )
    counts = {each: sum(page[2][each] for page in pages) for each in STATES}
    return [id for _, id in rows[offset:end]], sum(page[1] for page in pages), counts


def _find(
    redis: Any,
    keys: Keys,
    scripts: Scripts,
    state: str | None,
    name: str | None,
    offset: int,
    count: int | None,
    search: str | None,
    newest: bool,
) -> tuple[list[str], int, dict[str, int]]:
    """:func:`find` in one partition (``keys``)."""
    if search and name is not None and name.startswith(search):
        search = None  # (every workflow of the name matches)
    if not search:
        return _plain(redis, keys, state, name, offset, count, newest)
    low, high = b"[" + search.encode(), b"(" + search.encode() + b"\xff"
    names = [] if name is not None else redis.zrangebylex(keys.names, low, high)
    pipe = redis.pipeline(transaction=False)
    for each in STATES:
        pipe.zlexcount(keys.ids(each), low, high)
    for flow in names if name is None else [name]:
        for each in STATES:
            pipe.zcard(keys.by_name(flow, each))
    found = pipe.execute()
    by_id = dict(zip(STATES, found[: len(STATES)]))
    sizes = found[len(STATES) :]
    named = {each: sum(sizes[at :: len(STATES)]) for at, each in enumerate(STATES)}
    if name is not None:  # the workflows of the name whose id matches
        if sum(by_id.values()) <= max(FEW, sum(named.values())):
            picked = _by_ids(redis, keys, low, high, name, [], state, newest)
        else:
            picked = _of_name(redis, keys, name, search, state, newest)
        return _merged(redis, keys, *picked, [], _ZERO, state, offset, count, newest)
    if sum(by_id.values()) <= FEW or names:
        picked = (
            _by_ids(redis, keys, low, high, None, names, state, newest)
            if any(by_id.values())
            else (_ZERO, [])
        )
        return _merged(redis, keys, *picked, names, named, state, offset, count, newest)
    # many ids match, no name does: walk the time index
    index = keys.workflows if state is None else keys.by_state(state)
    total = sum(by_id.values()) if state is None else by_id[state]
    if count == 0 or offset >= total:
        return [], total, by_id
    asked = [search, offset, -1 if count is None else count, int(newest)]
    done, ids = scripts.search(keys=[index], args=[*asked, WALK])
    if done:
        return ids, total, by_id
    if sum(by_id.values()) <= LOTS:  # (the matches are far from that end: read them whole)
        picked = _by_ids(redis, keys, low, high, None, [], state, newest)
        return _merged(redis, keys, *picked, [], _ZERO, state, offset, count, newest)
    return scripts.search(keys=[index], args=[*asked, 0])[1], total, by_id


def _plain(
    redis: Any, keys: Keys, state: str | None, name: str | None, offset: int, count: int | None, newest: bool
) -> tuple[list[str], int, dict[str, int]]:
    """A page of one index (no search): ZRANGE, ZCARD."""
    if name is None:
        index = keys.workflows if state is None else keys.by_state(state)
    else:
        index = keys.by_name(name, state)
    pipe = redis.pipeline(transaction=False)
    if count != 0:
        pipe.zrange(index, offset, -1 if count is None else offset + count - 1, desc=newest)
    pipe.zcard(index)
    for each in STATES:
        pipe.zcard(keys.by_state(each) if name is None else keys.by_name(name, each))
    found = pipe.execute()
    return (found[0] if count != 0 else []), found[-len(STATES) - 1], dict(zip(STATES, found[-len(STATES) :]))


def _by_ids(
    redis: Any,
    keys: Keys,
    low: bytes,
    high: bytes,
    name: str | None,
    others: list[str],
    state: str | None,
    newest: bool,
) -> tuple[dict[str, int], list[tuple[float, str]]]:
    """The workflows whose id is in the range, of flow ``name`` if given, else of no flow in
    ``others`` (counted apart): how many of each state, and those in ``state`` in time order,
    (submit time, id) each."""
    pipe = redis.pipeline(transaction=False)
    for each in STATES:
        pipe.zrangebylex(keys.ids(each), low, high)
    found = dict(zip(STATES, pipe.execute()))
    asked = [each for each in STATES if found[each]]
    pipe = redis.pipeline(transaction=False)
    for each in asked:
        pipe.zmscore(keys.workflows if name is None else keys.by_name(name, each), found[each])
        for flow in others:
            pipe.zmscore(keys.by_name(flow, each), found[each])
    answers = iter(pipe.execute() if asked else [])
    counts, rows = dict.fromkeys(STATES, 0), []
    for each in asked:
        times = next(answers)
        theirs = [next(answers) for _ in others]
        for at, (id, time) in enumerate(zip(found[each], times)):
            if time is not None and not any(other[at] is not None for other in theirs):
                counts[each] += 1
                if state in (None, each):
                    rows.append((time, id))
    rows.sort(reverse=newest)
    return counts, rows


def _of_name(
    redis: Any, keys: Keys, name: str, prefix: str, state: str | None, newest: bool
) -> tuple[dict[str, int], list[tuple[float, str]]]:
    """As :func:`_by_ids`, from every workflow of flow ``name`` (when they are fewer)."""
    pipe = redis.pipeline(transaction=False)
    for each in STATES:
        pipe.zrange(keys.by_name(name, each), 0, -1, withscores=True)
    found = {
        each: [(score, id) for id, score in rows if id.startswith(prefix)]
        for each, rows in zip(STATES, pipe.execute())
    }
    rows = sorted((row for each in STATES if state in (None, each) for row in found[each]), reverse=newest)
    return {each: len(rows) for each, rows in found.items()}, rows


def _merged(
    redis: Any,
    keys: Keys,
    counted: dict[str, int],
    rows: list[tuple[float, str]],
    names: list[str],
    named: dict[str, int],
    state: str | None,
    offset: int,
    count: int | None,
    newest: bool,
) -> tuple[list[str], int, dict[str, int]]:
    """The page of ``rows`` (``counted`` of each state) and of the workflows of flows
    ``names`` (``named`` of each state) together, in time order."""
    end = None if count is None else offset + count
    counts = {each: counted[each] + named[each] for each in STATES}
    total = sum(counts.values()) if state is None else counts[state]
    pipe = redis.pipeline(transaction=False)
    if count != 0 and offset < total:
        for flow in names:
            pipe.zrange(
                keys.by_name(flow, state), 0, -1 if end is None else end - 1, desc=newest, withscores=True
            )
    found = pipe.execute() if len(pipe) else []
    if found:
        rows = sorted([*rows, *((score, id) for page in found for id, score in page)], reverse=newest)
    return [id for _, id in rows[offset:end]] if count != 0 else [], total, counts


def scheduled(
    redis: Any,
    keys: Keys,
    schedule: str,
    state: str | None,
    offset: int,
    count: int | None,
    newest: bool,
    size: int = 200,
) -> tuple[list[str], int, dict[str, int]]:
    """The page of the workflows started by ``schedule`` (in ``state``), from its index in each
    partition, and how many it started (all states; ``counts`` is empty: counting those of
    each state would read them all). With a state, each index is read a slice at a time
    until the page is full."""
    end = None if count is None else offset + count
    rows: list[tuple[float, str]] = []
    total = 0
    for part in keys.parts:
        index = part.by_schedule(schedule)
        total += redis.zcard(index)
        found: list[tuple[float, str]] = []
        at = 0
        while end is None or len(found) < end:
            page = redis.zrange(index, at, at + size - 1, desc=newest, withscores=True)
            if not page:
                break
            at += len(page)
            if state is None:
                found += [(score, id) for id, score in page]
                continue
            pipe = redis.pipeline(transaction=False)
            for id, _ in page:
                pipe.hget(part.workflow(id), "status")
            found += [(score, id) for (id, score), status in zip(page, pipe.execute()) if status == state]
        rows += found if end is None else found[:end]
    rows.sort(reverse=newest)
    return [id for _, id in rows[offset:end]], total, {}
