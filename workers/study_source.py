"""Reads a study's spec from the service database (plain parameterised SQL, no service import)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import create_engine, text

from search_spaces.protocol import STUDIES_TABLE
from search_spaces.spec import StudySpec, validate_spec


@dataclass(frozen=True)
class StoredStudy:
    """What the driver needs from the study row."""

    id: str
    optuna_study_name: str
    spec: StudySpec
    started_at: datetime | None


def load_study(database_url: str, study_id: str) -> StoredStudy:
    """Load and re-validate the spec the service accepted for ``study_id``."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                text(
                    f"SELECT optuna_study_name, spec, started_at FROM {STUDIES_TABLE} "
                    "WHERE id = :id"
                ),
                {"id": study_id},
            ).first()
    finally:
        engine.dispose()
    if row is None:
        raise LookupError(f"study {study_id} is not in the database")
    spec_data: Any = row.spec if isinstance(row.spec, dict) else json.loads(row.spec)
    started = row.started_at
    if isinstance(started, str):  # SQLite returns text through a plain query
        started = datetime.fromisoformat(started)
    if started is not None and started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    return StoredStudy(study_id, row.optuna_study_name, validate_spec(spec_data), started)
