"""A database made by an earlier version (no ``hpo_studies.tenant``) is upgraded in place."""

from __future__ import annotations

from sqlalchemy import inspect, text

from service.db import make_engine, upgrade_tables
from service.store import StudyStore

OLD_TABLE = """CREATE TABLE hpo_studies (
    id VARCHAR(32) PRIMARY KEY, name VARCHAR(200) NOT NULL,
    optuna_study_name VARCHAR(200) NOT NULL UNIQUE, spec JSON NOT NULL,
    status VARCHAR(16) NOT NULL, status_reason TEXT, ray_job_id VARCHAR(128),
    attempts INTEGER NOT NULL, created_at TIMESTAMP NOT NULL,
    started_at TIMESTAMP, finished_at TIMESTAMP)"""


def test_old_studies_join_the_default_tenant(database_url: str) -> None:
    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text(OLD_TABLE))
        conn.execute(
            text(
                "INSERT INTO hpo_studies VALUES ('old1', 'old', 'hpo-old1', '{}', 'SUCCEEDED', "
                "NULL, NULL, 1, '2026-01-01 00:00:00', NULL, NULL)"
            )
        )
    upgrade_tables(engine)
    upgrade_tables(engine)  # idempotent
    assert "tenant" in {c["name"] for c in inspect(engine).get_columns("hpo_studies")}
    store = StudyStore(engine)
    old = store.get("old1")
    assert old is not None and old.tenant == "default"
    new = store.create("new", {}, tenant="acme")
    assert store.page(tenant="acme")[0] == [new]
    assert [s.id for s in store.page(tenant="default")[0]] == ["old1"]
    engine.dispose()
