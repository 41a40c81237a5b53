"""What changed in a study since we last looked: the basis of the incremental ``/pareto`` and
``/best``.

A COMPLETE trial never changes or disappears while its study exists, and a study numbers its
trials in the order it creates them. So a reader remembers a :class:`Watermark` (the highest
trial number it looked at, and the trials at or below it that had not finished then) and next
time reads only the trials above that number (an index range on ``(study_id, number)``, which
the planner estimates well, unlike ranges of the table-wide trial id) or among those.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from optuna.trial import TrialState
from sqlalchemy import Connection, bindparam, select, union_all

from service.store.optuna_tables import trial_values, trials

UNFINISHED = frozenset({TrialState.RUNNING.name, TrialState.WAITING.name})


@dataclass(frozen=True)
class Watermark:
    """The highest trial number looked at (-1: none) and that trial's id, and the ids of the
    trials at or below it that had not finished then."""

    max_number: int = -1
    top_id: int = 0
    pending: frozenset[int] = field(default_factory=frozenset)


def _name(state: object) -> str:
    return str(getattr(state, "name", state))


def snapshot(conn: Connection, study_id: int) -> Watermark:
    """The study's watermark now (read before the values it covers: a trial finishing in
    between stays pending and is read again)."""
    of_study = trials.c.study_id == study_id
    last = select(trials.c.number, trials.c.trial_id).where(of_study)
    top = conn.execute(last.order_by(trials.c.number.desc()).limit(1)).first()
    unfinished = select(trials.c.trial_id).where(
        of_study, trials.c.state.in_([TrialState.RUNNING, TrialState.WAITING])
    )
    pending = frozenset(int(i) for i in conn.execute(unfinished).scalars())
    if top is None:
        return Watermark(pending=pending)
    return Watermark(int(top[0]), int(top[1]), pending)


_COLUMNS = (trials.c.trial_id, trials.c.number, trials.c.state, trials.c.study_id)
# Built once (a statement built per call costs more than the query): the study's trials above a
# number, and those plus some by id, as a UNION rather than an OR so each part is one index
# range. The ids are looked up by primary key alone (their study is checked here): with the
# study in the condition too, SQLite scans the study's index once the list grows.
_ABOVE = select(*_COLUMNS).where(
    trials.c.study_id == bindparam("study_id"), trials.c.number > bindparam("above")
)
_ABOVE_OR_AMONG = union_all(
    _ABOVE, select(*_COLUMNS).where(trials.c.trial_id.in_(bindparam("ids", expanding=True)))
)


def changes(
    conn: Connection, study_id: int, mark: Watermark, kept: Iterable[int] = ()
) -> tuple[Watermark, list[tuple[int, int, str]]] | None:
    """The new watermark and every trial that is new or was unfinished at ``mark``, as
    (id, number, state name) by id, in one query; None when a ``kept`` trial or the top one no
    longer exists in the study (it was deleted and its id reused): the caller starts again."""
    wanted = {*kept, mark.top_id} - {0}
    ids = sorted(mark.pending | wanted)
    parameters = {"study_id": study_id, "above": mark.max_number, "ids": ids}
    rows = sorted(
        {
            (int(i), int(n), _name(state))
            for i, n, state, study in conn.execute(_ABOVE_OR_AMONG if ids else _ABOVE, parameters)
            if study == study_id
        }
    )
    if not wanted <= {i for i, _, _ in rows}:
        return None
    fresh = [row for row in rows if row[1] > mark.max_number or row[0] in mark.pending]
    pending = frozenset(i for i, _, state in fresh if state in UNFINISHED)
    number, top_id = max([(mark.max_number, mark.top_id), *((n, i) for i, n, _ in fresh)])
    return Watermark(number, top_id, pending), fresh


def advance(
    conn: Connection, study_id: int, mark: Watermark, kept: Iterable[int] = ()
) -> tuple[Watermark, dict[int, int]] | None:
    """Like :func:`changes`, but of the fresh trials only those completed since ``mark``
    (id → number)."""
    step = changes(conn, study_id, mark, kept)
    if step is None:
        return None
    mark, fresh = step
    return mark, {i: number for i, number, state in fresh if state == TrialState.COMPLETE.name}


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
