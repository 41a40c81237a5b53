"""Pooled connections on the real PostgreSQL: one killed while idle is replaced unseen; one
killed while in steady use fails a single request with a 503, and the next request works."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import make_url

from service import pool_health
from service.app import create_app
from service.db import make_engine, metadata
from service.local_server import fresh_postgres_database
from service.settings import Settings
from service.store import TrialQueries
from tests.service.test_api import IN_PROCESS_HOSTS, SPEC, RecordingDispatcher


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_postgres_database() as url:
        yield url


def terminate_others(url: str) -> int:
    """Kill every other session on ``url``'s database, as a server restart would."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        killed = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    assert killed is not None
    return int(killed[0])


def backend_pid(engine: object) -> int:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_trial_reads_after_an_idle_ping(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The idle ping leaves no transaction open: the trial reads switch their connections to
    autocommit at checkout, which psycopg refuses inside a transaction."""
    monkeypatch.setattr(pool_health, "IDLE_BEFORE_PING_S", 0.0)
    engine = make_engine(pg_url)
    try:
        metadata.create_all(engine)
        study = optuna.create_study(storage=pg_url, study_name="pinged")
        study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
        queries = TrialQueries(engine)
        study_id = queries.study_id("pinged")
        assert study_id is not None
        for _ in range(3):  # every checkout after the first pings first
            time.sleep(0.01)
            best = queries.best(study_id)
            assert best is not None and best.value == study.best_value
    finally:
        engine.dispose()


def test_an_idle_connection_killed_is_replaced_before_use(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pool_health, "IDLE_BEFORE_PING_S", 0.05)
    engine = make_engine(pg_url)
    try:
        first = backend_pid(engine)
        assert backend_pid(engine) == first  # the pool hands the same connection back
        assert terminate_others(pg_url) == 1
        time.sleep(0.1)
        assert backend_pid(engine) != first  # pinged, found dead, replaced: no error
    finally:
        engine.dispose()


def test_a_connection_killed_in_steady_use_is_one_503_then_recovers(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pool_health, "IDLE_BEFORE_PING_S", 3600.0)  # never ping
    settings = Settings(
        allowed_hosts=IN_PROCESS_HOSTS,
        database_url=pg_url,
        state_dir=tmp_path / "state",
        poll_interval_s=60,
    )
    app = create_app(settings, dispatcher=RecordingDispatcher())
    with TestClient(app, raise_server_exceptions=False) as client:
        study_id = client.post("/studies", json=SPEC).json()["id"]
        assert client.get(f"/studies/{study_id}").status_code == 200
        assert terminate_others(pg_url) >= 1
        lost = client.get(f"/studies/{study_id}")
        assert lost.status_code == 503, lost.text
        assert lost.json()["detail"] == "database unavailable; retry the request"
        assert lost.headers["retry-after"] == "1"
        again = client.get(f"/studies/{study_id}")
        assert again.status_code == 200, again.text
        assert again.json()["id"] == study_id
