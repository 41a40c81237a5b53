"""Trials per state of each study, kept up to date incrementally (counts read what changed).

A finished trial (COMPLETE, PRUNED, FAIL) never changes state while its study exists, so the
first call counts the finished trials at or below a watermark (``service.store.increments``)
once, and every call adds the current states of the trials above it or unfinished at it: one
small query instead of counting a 100,000-trial study again for every page.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import Connection, func, select

from service.store.increments import UNFINISHED, Watermark, changes, snapshot
from service.store.optuna_tables import trials

MAX_STUDIES = 4096  # studies kept; beyond it the cache starts again


@dataclass(frozen=True)
class _Counts:
    mark: Watermark
    finished: Counter[str]  # finished trials at or below the watermark, pending ones excluded


class StateCounts:
    """Exact trial counts by state name, per study."""

    def __init__(self) -> None:
        self._kept: dict[int, _Counts] = {}
        self._lock = threading.Lock()

    def counts(self, conn: Connection, study_id: int) -> Counter[str]:
        """The study's trials by state name (states without trials are absent)."""
        with self._lock:
            known = self._kept.get(study_id)
        step = None if known is None else changes(conn, study_id, known.mark)
        if known is None or step is None:  # first call, or the study was deleted
            known = _Counts(mark := snapshot(conn, study_id), _finished(conn, study_id, mark))
            step = changes(conn, study_id, known.mark)
            assert step is not None  # its top trial was there a moment ago
        mark, fresh = step
        finished = known.finished.copy()
        finished.update(state for _, _, state in fresh if state not in UNFINISHED)
        now = finished.copy()
        now.update(state for _, _, state in fresh if state in UNFINISHED)
        with self._lock:
            if len(self._kept) >= MAX_STUDIES:
                self._kept.clear()
            self._kept[study_id] = _Counts(mark, finished)
        return now

    def forget(self, study_id: int) -> None:
        """Drop a deleted study's counts."""
        with self._lock:
            self._kept.pop(study_id, None)


def _finished(conn: Connection, study_id: int, mark: Watermark) -> Counter[str]:
    """Finished trials at or below ``mark`` by state name, its pending trials left out (they
    are read as fresh ones, whatever state they reached since)."""
    query = (
        select(trials.c.state, func.count())
        .where(trials.c.study_id == study_id, trials.c.number <= mark.max_number)
        .group_by(trials.c.state)
    )
    found: Counter[str] = Counter()
    for state, n in conn.execute(query):
        found[str(getattr(state, "name", state))] += int(n)
    if mark.pending:
        pending = select(trials.c.state, func.count()).where(
            trials.c.trial_id.in_(sorted(mark.pending))
        )
        for state, n in conn.execute(pending.group_by(trials.c.state)):
            found[str(getattr(state, "name", state))] -= int(n)
    for state in UNFINISHED:
        found.pop(state, None)
    return +found
