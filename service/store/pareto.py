"""Pareto fronts kept up to date incrementally, so ``/pareto`` reads only what changed.

The front of the trials seen so far plus new points is the front of (old front + new points).
So per study we keep the front's vectors and a :class:`~service.store.increments.Watermark`;
the first call reads every completed trial's values once, later ones only those of the trials
completed since.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from optuna.trial import TrialState
from sqlalchemy import Engine, select

from service.store.increments import (
    VALUE_COLUMNS,
    Watermark,
    advance,
    snapshot,
    values_of,
    vectors,
)
from service.store.optuna_tables import trial_values, trials

MAX_STUDIES = 4096  # fronts kept; beyond it the cache starts again


@dataclass(frozen=True)
class _Front:
    mark: Watermark
    vectors: dict[int, list[float]] = field(default_factory=dict)


class ParetoFronts:
    """The current Pareto front of each study's completed trials, by Optuna trial id."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._fronts: dict[int, _Front] = {}
        self._lock = threading.Lock()

    def front(self, study_id: int, signs: list[float]) -> list[int]:
        """Trial ids of the non-dominated completed trials; ``signs`` turn each objective into
        one to minimise (-1 for a maximised objective)."""
        with self._lock:
            known = self._fronts.get(study_id)
        with self._engine.connect() as conn:
            step = None if known is None else advance(conn, study_id, known.mark, known.vectors)
            if known is not None and step is not None:
                mark, done = step
                found = {**known.vectors, **(values_of(conn, list(done), signs) if done else {})}
            else:  # first call, or the study was deleted (and its id reused)
                mark = snapshot(conn, study_id)
                complete = (
                    select(*VALUE_COLUMNS)
                    .join(trials, trials.c.trial_id == trial_values.c.trial_id)
                    .where(
                        trials.c.study_id == study_id,
                        trials.c.state == TrialState.COMPLETE,
                        trials.c.number <= mark.max_number,
                    )
                )
                found = vectors(conn.execute(complete), signs)
        updated = _Front(mark, {i: found[i] for i in non_dominated(found)})
        with self._lock:
            if len(self._fronts) >= MAX_STUDIES:
                self._fronts.clear()
            self._fronts[study_id] = updated
        return list(updated.vectors)

    def forget(self, study_id: int) -> None:
        """Drop a deleted study's front."""
        with self._lock:
            self._fronts.pop(study_id, None)


def non_dominated(vectors: dict[int, list[float]]) -> list[int]:
    """Keys whose vectors (to minimise) no other vector dominates; ties are all kept."""
    front: list[tuple[int, list[float]]] = []
    for key, vector in sorted(vectors.items(), key=lambda item: item[1]):
        if any(_dominates(other, vector) for _, other in front):
            continue
        front = [(k, v) for k, v in front if not _dominates(vector, v)]
        front.append((key, vector))
    return [key for key, _ in front]


def _dominates(a: list[float], b: list[float]) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True)) and a != b
