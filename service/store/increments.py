"""What changed in a study since we last looked: the basis of the incremental ``/pareto`` and
``/best``.

A COMPLETE trial never changes or disappears while its study exists. So a reader remembers a
:class:`Watermark` (the highest trial id it looked at, and the ids at or below it that had not
finished then) and next time reads only the trials above that id or among those.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from optuna.trial import TrialState
from sqlalchemy import Connection, func, or_, select

from service.store.optuna_tables import trial_values, trials

UNFINISHED = frozenset({TrialState.RUNNING.name, TrialState.WAITING.name})


@dataclass(frozen=True)
class Watermark:
    """The highest trial id looked at, and the ids at or below it not finished then."""

    max_id: int = 0
    pending: frozenset[int] = field(default_factory=frozenset)


def _name(state: object) -> str:
    return str(getattr(state, "name", state))


def snapshot(conn: Connection, study_id: int) -> Watermark:
    """The study's watermark now (read before the values it covers: a trial finishing in
    between stays pending and is read again)."""
    of_study = trials.c.study_id == study_id
    top = conn.execute(select(func.max(trials.c.trial_id)).where(of_study)).scalar()
    unfinished = select(trials.c.trial_id).where(
        of_study, trials.c.state.in_([TrialState.RUNNING, TrialState.WAITING])
    )
    return Watermark(int(top or 0), frozenset(int(i) for i in conn.execute(unfinished).scalars()))


def advance(conn: Connection, study_id: int, mark: Watermark) -> tuple[Watermark, list[int]]:
    """The new watermark and the ids of the trials that completed since ``mark``."""
    changed = trials.c.trial_id > mark.max_id
    if mark.pending:
        changed = or_(changed, trials.c.trial_id.in_(sorted(mark.pending)))
    query = select(trials.c.trial_id, trials.c.state).where(trials.c.study_id == study_id, changed)
    states = {int(trial_id): _name(state) for trial_id, state in conn.execute(query)}
    pending = frozenset(i for i, state in states.items() if state in UNFINISHED)
    done = sorted(i for i, state in states.items() if state == TrialState.COMPLETE.name)
    return Watermark(max([mark.max_id, *states]), pending), done


def intact(conn: Connection, study_id: int, ids: Iterable[int]) -> bool:
    """Whether these trials still exist in the study (it was not deleted, its id not reused)."""
    wanted = set(ids) - {0}
    if not wanted:
        return True
    query = select(func.count()).where(
        trials.c.study_id == study_id, trials.c.trial_id.in_(sorted(wanted))
    )
    return conn.execute(query).scalar_one() == len(wanted)


def stored_number(value: float | None, kind: object) -> float:
    """An objective value as stored; Optuna stores infinities as NULL with their sign as type."""
    if value is not None:
        return float(value)
    name = _name(kind)
    return math.inf if name == "INF_POS" else -math.inf if name == "INF_NEG" else math.nan


# The columns :func:`vectors` reads.
VALUE_COLUMNS = (
    trial_values.c.trial_id,
    trial_values.c.objective,
    trial_values.c.value,
    trial_values.c.value_type,
)


def vectors(rows: Iterable[Any], signs: list[float]) -> dict[int, list[float]]:
    """Objective vectors to minimise (each value times its sign) from ``VALUE_COLUMNS`` rows."""
    found: dict[int, list[float]] = {}
    for trial_id, objective, value, kind in rows:
        vector = found.setdefault(int(trial_id), [math.inf] * len(signs))
        if objective < len(signs):
            vector[objective] = signs[objective] * stored_number(value, kind)
    return found


def values_of(conn: Connection, ids: list[int], signs: list[float]) -> dict[int, list[float]]:
    """The objective vectors of these trials."""
    query = select(*VALUE_COLUMNS).where(trial_values.c.trial_id.in_(ids))
    return vectors(conn.execute(query), signs)
