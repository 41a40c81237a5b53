"""The service's study rows: create, read, list and move through the lifecycle.

Every status change is a conditional update (from the states it may leave) plus an event row
in the same transaction, so transitions are atomic, never applied twice, and kept with their
time and reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update

from search_spaces.protocol import optuna_study_name
from service.db import studies_table as t
from service.statuses import FINAL_STATES
from service.store.events import EventStore, add_event

DELETABLE_STATES = ("QUEUED", *FINAL_STATES)  # not while a Ray job may run it


@dataclass(frozen=True)
class StudyRecord:
    """One study's row, detached from the database."""

    id: str
    name: str
    optuna_study_name: str
    spec: dict[str, Any]
    status: str
    status_reason: str | None
    ray_job_id: str | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    tenant: str = "default"


class StudyStore:
    """CRUD and lifecycle transitions on ``hpo_studies``."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._watchers: list[Callable[[str], None]] = []

    def watch(self, changed: Callable[[str], None]) -> None:
        """Call ``changed(study_id)`` before any status change or deletion is written."""
        self._watchers.append(changed)

    def _changing(self, study_id: str) -> None:
        for changed in self._watchers:
            changed(study_id)

    @property
    def engine(self) -> Engine:
        """The engine the store uses."""
        return self._engine

    def create(self, name: str, spec: dict[str, Any], tenant: str = "default") -> StudyRecord:
        """Insert a new QUEUED study of ``tenant`` (and its first event) and return it."""
        study_id = uuid.uuid4().hex
        row: dict[str, Any] = {
            "id": study_id,
            "name": name,
            "optuna_study_name": optuna_study_name(name, study_id),
            "spec": spec,
            "status": "QUEUED",
            "status_reason": "submitted",
            "ray_job_id": None,
            "attempts": 0,
            "created_at": _now(),
            "started_at": None,
            "finished_at": None,
            "tenant": tenant,
        }
        with self._engine.begin() as conn:
            conn.execute(insert(t).values(**row))
            add_event(conn, study_id, "status", {"status": "QUEUED", "reason": "submitted"})
        return StudyRecord(**row)

    def get(self, study_id: str) -> StudyRecord | None:
        """The study, or None."""
        with self._engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.id == study_id)).mappings().first()
        return _record(row) if row else None

    def page(
        self,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
        tenant: str | None = None,
    ) -> tuple[list[StudyRecord], int]:
        """A page of studies (of ``tenant``, or all), newest first, and the filter's total."""
        where = [t.c.status == status] if status else []
        if tenant is not None:
            where.append(t.c.tenant == tenant)
        query = select(t).where(*where).order_by(t.c.created_at.desc(), t.c.id.desc())
        with self._engine.connect() as conn:
            rows = conn.execute(query.limit(limit).offset(offset)).mappings().all()
            total = conn.execute(select(func.count()).select_from(t).where(*where)).scalar_one()
        return [_record(r) for r in rows], int(total)

    def count(self, tenant: str, statuses: Iterable[str]) -> int:
        """How many studies of ``tenant`` are in ``statuses``."""
        query = select(func.count()).where(t.c.tenant == tenant, t.c.status.in_(tuple(statuses)))
        with self._engine.connect() as conn:
            return int(conn.execute(query.select_from(t)).scalar_one())

    def with_status(self, *statuses: str) -> list[StudyRecord]:
        """All studies in the given states, oldest first (queue order)."""
        query = select(t).where(t.c.status.in_(statuses)).order_by(t.c.created_at, t.c.id)
        with self._engine.connect() as conn:
            return [_record(r) for r in conn.execute(query).mappings()]

    def transition(
        self,
        study_id: str,
        from_states: Iterable[str],
        status: str,
        reason: str | None,
        **fields: Any,
    ) -> bool:
        """Move a study to ``status`` if it is in one of ``from_states``; False if it was not.

        Final states set ``finished_at``; the first RUNNING sets ``started_at``.
        """
        values: dict[str, Any] = {"status": status, "status_reason": reason, **fields}
        if status in FINAL_STATES:
            values["finished_at"] = _now()
        if status == "RUNNING":
            values["started_at"] = func.coalesce(t.c.started_at, _now())
        self._changing(study_id)
        with self._engine.begin() as conn:
            result = conn.execute(
                update(t)
                .where(t.c.id == study_id, t.c.status.in_(tuple(from_states)))
                .values(**values)
            )
            if result.rowcount != 1:
                return False
            add_event(conn, study_id, "status", {"status": status, "reason": reason})
        return True

    def start_attempt(self, study_id: str, from_states: Iterable[str], job_id: str) -> bool:
        """→ RUNNING as a new attempt with its Ray job."""
        return self.transition(
            study_id,
            from_states,
            "RUNNING",
            None,
            ray_job_id=job_id,
            attempts=t.c.attempts + 1,
        )

    def delete(
        self, study_id: str, events: EventStore, from_states: Iterable[str] = DELETABLE_STATES
    ) -> StudyRecord | None:
        """Remove the study row and its events if it is in one of ``from_states``: one
        conditional statement, so of concurrent deletions exactly one removes it. Returns the
        removed row, or None if the study was not (or no longer) there in such a state."""
        self._changing(study_id)
        condition = (t.c.id == study_id, t.c.status.in_(tuple(from_states)))
        with self._engine.begin() as conn:
            row = conn.execute(delete(t).where(*condition).returning(*t.c)).mappings().first()
            if row is None:
                return None
            events.delete_study(conn, study_id)
        return _record(row)


def _now() -> datetime:
    return datetime.now(UTC)


def _record(row: Any) -> StudyRecord:
    values = dict(row)
    for key in ("created_at", "started_at", "finished_at"):
        if values[key] is not None and values[key].tzinfo is None:
            values[key] = values[key].replace(tzinfo=UTC)
    return StudyRecord(**values)
