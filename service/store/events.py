"""The study event log: status transitions (written by the service) and trial events (written
by the study driver), read back in id order by the SSE endpoint and the study history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select

from service.db import events_table as t


@dataclass(frozen=True)
class StudyEvent:
    """One stored event."""

    id: int
    study_id: str
    kind: str
    data: dict[str, Any]
    created_at: datetime


def add_event(conn: Connection, study_id: str, kind: str, data: dict[str, Any]) -> None:
    """Append an event inside the caller's transaction."""
    conn.execute(
        insert(t).values(study_id=study_id, kind=kind, data=data, created_at=datetime.now(UTC))
    )


class EventStore:
    """Reads of the event log."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def after(
        self, study_id: str, last_id: int = 0, limit: int = 500, kind: str | None = None
    ) -> list[StudyEvent]:
        """Events of a study with id > ``last_id``, oldest first."""
        query = select(t).where(t.c.study_id == study_id, t.c.id > last_id)
        if kind:
            query = query.where(t.c.kind == kind)
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(t.c.id).limit(limit)).mappings().all()
        return [
            StudyEvent(
                id=int(r["id"]),
                study_id=r["study_id"],
                kind=r["kind"],
                data=dict(r["data"]),
                created_at=_utc(r["created_at"]),
            )
            for r in rows
        ]

    def delete_study(self, conn: Connection, study_id: str) -> None:
        """Remove a study's events (inside the caller's transaction)."""
        conn.execute(delete(t).where(t.c.study_id == study_id))


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
