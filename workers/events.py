"""Trial events written by the study driver into the service's event log (plain SQL)."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError

from search_spaces.protocol import EVENTS_TABLE
from workers.resilient_storage import is_connection_loss

log = logging.getLogger(__name__)


class EventWriter:
    """Appends events for one study; retries while SQLite reports the database locked or the
    connection is lost (a PostgreSQL restart: about 10 s)."""

    def __init__(self, database_url: str, study_id: str) -> None:
        self._url = database_url
        self._engine: Engine | None = None
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
                with self._connect().begin() as conn:
                    conn.execute(self._insert, values)
                return
            except DBAPIError as exc:  # OperationalError ("locked", a lost connection) among them
                retriable = "locked" in str(exc).lower() or is_connection_loss(exc)
                if not retriable or attempt == 9:
                    log.warning("could not store event %s: %s", kind, exc)
                    return
                time.sleep(0.2 * (attempt + 1))

    def close(self) -> None:
        """Release the connection pool."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def _connect(self) -> Engine:
        if self._engine is None:
            kwargs: dict[str, Any] = {}
            if self._url.startswith("sqlite"):
                kwargs["connect_args"] = {"timeout": 60}
            else:
                kwargs["pool_pre_ping"] = True  # a connection from before a restart is replaced
            self._engine = create_engine(self._url, **kwargs)
        return self._engine

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles callbacks with its experiment state; the engine is rebuilt on demand.
        return {**self.__dict__, "_engine": None}
