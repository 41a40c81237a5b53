"""Engine creation for SQLite and PostgreSQL, and the service's own tables."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    inspect,
    text,
)

from search_spaces.protocol import EVENTS_TABLE, STUDIES_TABLE
from service.pool_health import ping_when_idle

POOL_SIZE, POOL_OVERFLOW = 20, 20

metadata = MetaData()

# One row per study: its spec and lifecycle. Trials live in Optuna's own tables.
studies_table = Table(
    STUDIES_TABLE,
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("optuna_study_name", String(200), nullable=False, unique=True),
    Column("spec", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("status_reason", Text, nullable=True),
    Column("ray_job_id", String(128), nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("tenant", String(63), nullable=False, server_default="default"),
    Index("ix_hpo_studies_status_created", "status", "created_at"),
    Index("ix_hpo_studies_tenant_created", "tenant", "created_at"),
)

# Append-only log per study: status transitions (service) and trial events (study driver).
events_table = Table(
    EVENTS_TABLE,
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("study_id", String(32), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("data", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_hpo_study_events_study_id", "study_id", "id"),
)


def upgrade_tables(engine: Engine) -> None:
    """Create the service's tables, and add the columns a database from an earlier version lacks
    (``hpo_studies.tenant``: its studies belong to the ``default`` tenant)."""
    metadata.create_all(engine)
    columns = {c["name"] for c in inspect(engine).get_columns(STUDIES_TABLE)}
    if "tenant" not in columns:
        with engine.begin() as conn:
            conn.execute(
                text(
                    f"ALTER TABLE {STUDIES_TABLE} "
                    "ADD COLUMN tenant VARCHAR(63) NOT NULL DEFAULT 'default'"
                )
            )
            conn.execute(
                text(
                    "CREATE INDEX IF NOT EXISTS ix_hpo_studies_tenant_created "
                    f"ON {STUDIES_TABLE} (tenant, created_at)"
                )
            )


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL mode and a busy timeout for concurrent writers."""
    # Enough pooled connections for the request threads: an overflow connection is closed on
    # return, so a busy server would otherwise reconnect on most requests.
    kwargs: dict[str, Any] = {}
    if not _in_memory(url):
        kwargs.update(pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW)
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
    engine = create_engine(url, **kwargs)
    ping_when_idle(engine)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _in_memory(url: str) -> bool:
    return url.startswith("sqlite") and (url.rstrip("/") == "sqlite:" or ":memory:" in url)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def redact_url(url: str) -> str:
    """The URL with any password replaced, for logs and messages."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
