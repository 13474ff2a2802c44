"""Pages of the workflow list read from the indexes scripts/commit.lua keeps (never a scan
of every workflow): by submit time (all, per state, per flow name, per name and state), the
ids of each state in lex order, and the flow names in lex order.

A search is a prefix (case-sensitive) of the id or of the flow name. What it costs:

* a prefix of flow names alone: a page of each name's index, merged;
* a prefix of at most :data:`FEW` ids: those ids, read whole;
* a prefix of more ids: the time index walked from the end asked for, ids that do not
  match skipped (so the work grows as the matches thin out near that end); with a flow
  name too, the smaller of the matching ids and that flow's workflows is read whole.

Counts are ZCARD and ZLEXCOUNT but for the last case."""

from __future__ import annotations

from typing import Any

from .protocol import Keys
from .scripts import Scripts
from .store import STATES

#: An id prefix matching at most this many workflows reads them whole; a broader one walks.
FEW = 2000


def find(redis: Any, keys: Keys, scripts: Scripts, state: str | None, name: str | None, offset: int,
         count: int | None, search: str | None, newest: bool) -> tuple[list[str], int, dict[str, int]]:
    """The ids of a page (``count`` from ``offset``, ``newest`` first or oldest), how many
    match all the filters, and how many of each state match those but the state."""
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
    by_id = dict(zip(STATES, found[:len(STATES)]))
    sizes = found[len(STATES):]
    named = {each: sum(sizes[at::len(STATES)]) for at, each in enumerate(STATES)}
    if name is not None:  # the workflows of the name whose id matches
        if sum(by_id.values()) <= max(FEW, sum(named.values())):
            chosen = _by_ids(redis, keys, low, high, name, [])
        else:
            chosen = _of_name(redis, keys, name, search)
        return _merged(redis, keys, chosen, [], state, offset, count, newest)
    if sum(by_id.values()) <= FEW or names:
        chosen = _by_ids(redis, keys, low, high, None, names)
        return _merged(redis, keys, chosen, names, state, offset, count, newest)
    # many ids match, no name does: walk the time index
    index = keys.workflows if state is None else keys.by_state(state)
    total = sum(by_id.values()) if state is None else by_id[state]
    if count == 0 or offset >= total:
        return [], total, by_id
    ids = scripts.search(keys=[index], args=[search, offset, -1 if count is None else count, int(newest)])
    return ids, total, by_id


def _plain(redis: Any, keys: Keys, state: str | None, name: str | None, offset: int, count: int | None,
           newest: bool) -> tuple[list[str], int, dict[str, int]]:
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
    return (found[0] if count != 0 else []), found[-len(STATES) - 1], dict(zip(STATES, found[-len(STATES):]))


def _by_ids(redis: Any, keys: Keys, low: bytes, high: bytes, name: str | None,
            others: list[str]) -> dict[str, list[tuple[float, str]]]:
    """Per state, (submit time, id) of the workflows whose id is in the range: of flow
    ``name`` if given, else those of no flow in ``others`` (which are counted apart)."""
    pipe = redis.pipeline(transaction=False)
    for each in STATES:
        pipe.zrangebylex(keys.ids(each), low, high)
    found = dict(zip(STATES, pipe.execute()))
    pipe = redis.pipeline(transaction=False)
    asked = [each for each in STATES if found[each]]
    for each in asked:
        ids = found[each]
        pipe.zmscore(keys.workflows if name is None else keys.by_name(name, each), ids)
        for flow in others:
            pipe.zmscore(keys.by_name(flow, each), ids)
    answers = iter(pipe.execute())
    chosen: dict[str, list[tuple[float, str]]] = {each: [] for each in STATES}
    for each in asked:
        scores = next(answers)
        theirs = [next(answers) for _ in others]
        for at, (id, score) in enumerate(zip(found[each], scores)):
            if score is not None and not any(other[at] is not None for other in theirs):
                chosen[each].append((score, id))
    return chosen


def _of_name(redis: Any, keys: Keys, name: str, prefix: str) -> dict[str, list[tuple[float, str]]]:
    """Per state, (submit time, id) of the workflows of flow ``name`` whose id starts with ``prefix``."""
    pipe = redis.pipeline(transaction=False)
    for each in STATES:
        pipe.zrange(keys.by_name(name, each), 0, -1, withscores=True)
    return {each: [(score, id) for id, score in found if id.startswith(prefix)]
            for each, found in zip(STATES, pipe.execute())}


def _merged(redis: Any, keys: Keys, chosen: dict[str, list[tuple[float, str]]], names: list[str],
            state: str | None, offset: int, count: int | None, newest: bool) -> tuple[list[str], int, dict[str, int]]:
    """The page of ``chosen`` and of the workflows of flows ``names`` together, in time order."""
    end = None if count is None else offset + count
    pipe = redis.pipeline(transaction=False)
    for flow in names:
        for each in STATES:
            pipe.zcard(keys.by_name(flow, each))
    for flow in names:
        if count != 0:
            pipe.zrange(keys.by_name(flow, state), 0, -1 if end is None else end - 1, desc=newest, withscores=True)
    found = pipe.execute() if names else []
    sizes = found[:len(names) * len(STATES)]
    counts = {each: len(chosen[each]) + sum(sizes[at::len(STATES)]) for at, each in enumerate(STATES)}
    total = sum(counts.values()) if state is None else counts[state]
    rows = [row for each in STATES if state in (None, each) for row in chosen[each]]
    rows += [(score, id) for page in found[len(names) * len(STATES):] for id, score in page]
    rows.sort(reverse=newest)
    return [id for _, id in rows[offset:end]] if count != 0 else [], total, counts
