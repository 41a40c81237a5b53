"""The best trial of each study, kept up to date incrementally (``/best`` reads what changed).

The first call finds the best trial by walking the value index; later calls read only the
trials completed since (``service.store.increments``) and compare them with the kept best. A
completed trial never changes, so the kept record is served as it is.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Connection

from service.store.increments import Watermark, advance, snapshot, values_of

if TYPE_CHECKING:
    from service.store.trials import TrialRecord

MAX_STUDIES = 4096  # bests kept; beyond it the cache starts again


@dataclass(frozen=True)
class _Best:
    mark: Watermark
    trial_id: int | None = None
    key: tuple[float, int] | None = None  # (first objective to minimise, trial number)
    record: TrialRecord | None = None


class BestTrials:
    """The completed trial with the best first objective (lowest number on ties), per study."""

    def __init__(self) -> None:
        self._kept: dict[int, _Best] = {}
        self._lock = threading.Lock()

    def best(
        self,
        conn: Connection,
        study_id: int,
        sign: float,
        walk: Callable[[Connection], tuple[int, TrialRecord] | None],
        load: Callable[[Connection, int], TrialRecord],
    ) -> TrialRecord | None:
        """The best trial; ``sign`` is -1 for a maximised objective. ``walk`` finds the best
        trial from scratch (its id and record), ``load`` reads one trial by id."""
        with self._lock:
            known = self._kept.get(study_id)
        step = None if known is None else advance(conn, study_id, known.mark, [known.trial_id or 0])
        if known is not None and step is not None:
            mark, done = step
            updated = _Best(mark, known.trial_id, known.key, known.record)
            if done:
                values = values_of(conn, list(done), [sign])
                key, trial_id = min(((values[i][0], done[i]), i) for i in values)
                if known.key is None or key < known.key:
                    updated = _Best(mark, trial_id, key, load(conn, trial_id))
        else:  # first call, or the study was deleted (and its id reused)
            mark = snapshot(conn, study_id)
            found = walk(conn)
            updated = _Best(mark)
            if found is not None:
                trial_id, record = found
                assert record.values is not None
                updated = _Best(mark, trial_id, (sign * record.values[0], record.number), record)
        with self._lock:
            if len(self._kept) >= MAX_STUDIES:
                self._kept.clear()
            self._kept[study_id] = updated
        return updated.record

    def forget(self, study_id: int) -> None:
        """Drop a deleted study's best trial."""
        with self._lock:
            self._kept.pop(study_id, None)
