"""Check a pooled database connection only after it sat idle (a ping on every checkout is a
round trip per request; a connection in steady use has just proved itself)."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine, event, exc

IDLE_BEFORE_PING_S = 5.0


def ping_when_idle(engine: Engine) -> None:
    """Ping a connection idle for more than ``IDLE_BEFORE_PING_S`` at checkout; a dead one is
    replaced (SQLAlchemy retries the checkout with a fresh connection on ``DisconnectionError``).
    A connection that dies while in steady use fails one request with a 503, and the pool is
    reset."""

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi: Any, record: Any) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _check(dbapi: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get("returned_at")
        if returned is None or time.monotonic() - returned < IDLE_BEFORE_PING_S:
            return
        try:
            cursor = dbapi.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
            # The ping opened a transaction (a driver outside autocommit): end it, or a reader
            # that wants the connection in autocommit could not switch it (psycopg refuses).
            dbapi.rollback()
        except Exception as error:  # the driver's own error types differ
            raise exc.DisconnectionError(f"stale connection: {error}") from error
