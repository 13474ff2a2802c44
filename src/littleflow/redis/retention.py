"""Retention: workflows that ended (finished, failed or terminated) longer ago than the
retention period are removed, each written first, if asked, to a directory as the archive
``littleflow archive`` prints. Engines sweep now and then, a bounded batch at a time; any
number of them may sweep at once (removing a workflow twice removes it once)."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

from ..private import private_file
from .store import Store, StoreError

log = logging.getLogger("littleflow.retention")

#: How long an ended workflow is kept by default: a week.
DEFAULT_RETENTION = 7 * 24 * 3600.0
#: Workflows removed by one sweep at most.
BATCH = 200
#: Seconds between sweeps that found less than a batch.
EVERY = 5.0
_writing = threading.Lock()  # (threads of one process share private_file's temporary name)


class Sweeper:
    """Removes the workflows of ``store`` that ended more than ``retention`` seconds ago
    (0: never), archiving each to ``archive_dir`` first when given (one not archived is kept)."""

    def __init__(
        self,
        store: Store,
        retention: float = DEFAULT_RETENTION,
        archive_dir: Path | None = None,
        batch: int = BATCH,
        every: float = EVERY,
        partitions: list[int] | None = None,
    ) -> None:
        self.store = store
        self.partitions = partitions  # the partitions swept (None: all)
        self.retention = retention
        self.archive_dir = archive_dir
        self.batch = batch
        self.every = every
        self.removed = 0  # workflows this sweeper removed
        self._next = 0.0

    def now_and_then(self) -> int:
        """Sweep if it is time to (at once again after a full batch); returns how many went."""
        now = time.monotonic()
        if self.retention <= 0 or now < self._next:
            return 0
        removed = self.sweep()
        self._next = now if removed >= self.batch else now + self.every
        return removed

    def sweep(self, now: float | None = None) -> int:
        """Remove (archiving first, if asked) up to a batch of the workflows that ended before
        ``now`` less the retention; returns how many were removed."""
        if self.retention <= 0:
            return 0
        keys, redis = self.store.keys, self.store.redis
        cutoff = (time.time() if now is None else now) - self.retention
        ids: list[str] = []
        for partition in range(keys.partitions) if self.partitions is None else self.partitions:
            ids += redis.zrangebyscore(
                keys.part(partition).ended, "-inf", cutoff, start=0, num=self.batch - len(ids)
            )
            if len(ids) >= self.batch:
                break
        if ids and self.archive_dir is not None:
            ids = self._archived(ids)
        if not ids:
            return 0
        removed = self.store.forget(ids, ended_before=cutoff)  # (one resumed since it was read is kept)
        self.removed += removed
        if removed:
            log.info("removed %d workflows that ended more than %gs ago", removed, self.retention)
        return removed

    def _archived(self, ids: list[str]) -> list[str]:
        """Those of ``ids`` now archived in ``archive_dir`` (or gone meanwhile)."""
        from .archive import archive_of  # (pydantic, imported by engines that archive only)

        assert self.archive_dir is not None
        done = []
        for id in ids:
            try:
                text = json.dumps(archive_of(self.store, id), ensure_ascii=False, indent=1) + "\n"
            except StoreError as error:  # removed meanwhile (by another engine), or damaged: kept
                if self.store.redis.exists(self.store.keys.workflow(id)):
                    log.error("cannot archive workflow %s, kept: %s", id, error)
                continue
            try:
                with _writing:
                    private_file(self.archive_dir / f"{id}.json", text)
            except OSError as error:
                log.error("cannot archive workflows to %s, kept: %s", self.archive_dir, error)
                break
            done.append(id)
        return done
