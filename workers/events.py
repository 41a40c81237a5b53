"""Trial events written by the study driver into the service's event log (plain SQL)."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from search_spaces.protocol import EVENTS_TABLE

log = logging.getLogger(__name__)


class EventWriter:
    """Appends events for one study; retries while SQLite reports the database locked."""

    def __init__(self, database_url: str, study_id: str) -> None:
        kwargs: dict[str, Any] = {}
        if database_url.startswith("sqlite"):
            kwargs["connect_args"] = {"timeout": 60}
        self._engine: Engine = create_engine(database_url, **kwargs)
        self._study_id = study_id
        self._insert = text(
            f"INSERT INTO {EVENTS_TABLE} (study_id, kind, data, created_at) "
            "VALUES (:study_id, :kind, :data, :created_at)"
        )

    def write(self, kind: str, data: dict[str, Any]) -> None:
        """Store one event; never raises (events are progress reports, not the results)."""
        values = {
            "study_id": self._study_id,
            "kind": kind,
            "data": json.dumps(data, default=str),
            "created_at": datetime.now(UTC),
        }
        for attempt in range(10):
            try:
                with self._engine.begin() as conn:
                    conn.execute(self._insert, values)
                return
            except OperationalError as exc:
                if "locked" not in str(exc).lower() or attempt == 9:
                    log.warning("could not store event %s: %s", kind, exc)
                    return
                time.sleep(0.2 * (attempt + 1))

    def close(self) -> None:
        """Release the connection pool."""
        self._engine.dispose()
