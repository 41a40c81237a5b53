"""The service's study rows: create, read, list and move through the lifecycle."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, insert, select, update

from service.db import studies_table as t

FINAL_STATES = ("SUCCEEDED", "FAILED", "CANCELLED")


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


class StudyStore:
    """CRUD on ``hpo_studies``."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @property
    def engine(self) -> Engine:
        """The engine the store uses."""
        return self._engine

    def create(self, name: str, spec: dict[str, Any]) -> StudyRecord:
        """Insert a new QUEUED study and return it."""
        study_id = uuid.uuid4().hex
        row: dict[str, Any] = {
            "id": study_id,
            "name": name,
            "optuna_study_name": f"hpo-{study_id}",
            "spec": spec,
            "status": "QUEUED",
            "status_reason": None,
            "ray_job_id": None,
            "attempts": 0,
            "created_at": _now(),
            "started_at": None,
            "finished_at": None,
        }
        with self._engine.begin() as conn:
            conn.execute(insert(t).values(**row))
        return StudyRecord(**row)

    def get(self, study_id: str) -> StudyRecord | None:
        """The study, or None."""
        with self._engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.id == study_id)).mappings().first()
        return _record(row) if row else None

    def page(
        self, status: str | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[StudyRecord], int]:
        """A page of studies, newest first, and the total count for the filter."""
        where = [t.c.status == status] if status else []
        query = select(t).where(*where).order_by(t.c.created_at.desc(), t.c.id.desc())
        with self._engine.connect() as conn:
            rows = conn.execute(query.limit(limit).offset(offset)).mappings().all()
            total = conn.execute(select(func.count()).select_from(t).where(*where)).scalar_one()
        return [_record(r) for r in rows], int(total)

    def with_status(self, *statuses: str) -> list[StudyRecord]:
        """All studies in the given states, oldest first (queue order)."""
        query = select(t).where(t.c.status.in_(statuses)).order_by(t.c.created_at, t.c.id)
        with self._engine.connect() as conn:
            return [_record(r) for r in conn.execute(query).mappings()]

    def mark_running(self, study_id: str, ray_job_id: str) -> bool:
        """QUEUED → RUNNING with its Ray job; False if the study was not QUEUED any more."""
        with self._engine.begin() as conn:
            result = conn.execute(
                update(t)
                .where(t.c.id == study_id, t.c.status == "QUEUED")
                .values(
                    status="RUNNING",
                    ray_job_id=ray_job_id,
                    started_at=_now(),
                    attempts=t.c.attempts + 1,
                    status_reason=None,
                )
            )
        return result.rowcount == 1

    def finish(self, study_id: str, status: str, reason: str | None) -> None:
        """Move a study to a final state with its reason."""
        assert status in FINAL_STATES
        with self._engine.begin() as conn:
            conn.execute(
                update(t)
                .where(t.c.id == study_id)
                .values(status=status, status_reason=reason, finished_at=_now())
            )


def _now() -> datetime:
    return datetime.now(UTC)


def _record(row: Any) -> StudyRecord:
    values = dict(row)
    for key in ("created_at", "started_at", "finished_at"):
        if values[key] is not None and values[key].tzinfo is None:
            values[key] = values[key].replace(tzinfo=UTC)
    return StudyRecord(**values)
