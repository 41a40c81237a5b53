"""A submitted study speaks the user's names: its Optuna study (for optuna-dashboard and plain
Optuna) and its tracking URI (the server's default filled in, other hosts refused)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings
from tests.service.test_api import IN_PROCESS_HOSTS, RecordingDispatcher

DEFAULT_URI = "http://127.0.0.1:5999"
SPEC: dict[str, Any] = {
    "name": "sms-spam-minilm",
    "objectives": [{"metric": "eval_f1"}, {"metric": "latency_b1_ms"}],
    "algorithm": "nsga2",
    "algorithm_settings": {"seed": 3},
    "budget": {"n_trials": 2},
    "task": {"epochs": 2},
    "search_space": {"learning_rate": {"type": "float", "low": 1e-5, "high": 1e-3, "log": True}},
}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'names.db'}",
        state_dir=tmp_path / "state",
        mlflow_tracking_uri=DEFAULT_URI,
        tracking_hosts=["127.0.0.1", "mlflow.internal"],
        public_url="https://hpo.example.org/",
        allowed_hosts=IN_PROCESS_HOSTS,
    )
    with TestClient(create_app(settings, RecordingDispatcher())) as test_client:
        yield test_client


def test_the_optuna_study_carries_the_users_names(client: TestClient) -> None:
    created = client.post("/studies", json=SPEC).json()
    assert created["optuna_study_name"] == f"sms-spam-minilm-{created['id']}"
    url = str(client.app.state.settings.database_url)  # type: ignore[attr-defined]
    study = optuna.load_study(study_name=created["optuna_study_name"], storage=url)
    assert study.metric_names == ["eval_f1", "latency_b1_ms"]
    assert study.user_attrs == {
        "name": "sms-spam-minilm",
        "algorithm": "nsga2 (seed=3)",
        "scheduler": "none",
        "task": "tiny-bert on synthetic-sentiment, 2 epochs",
        "service_url": f"https://hpo.example.org/studies/{created['id']}",
    }


def test_tracking_without_a_uri_uses_the_server_default(client: TestClient) -> None:
    spec = {**SPEC, "tracking": {"mlflow": {"experiment": "spam"}}}
    created = client.post("/studies", json=spec)
    assert created.status_code == 201, created.text
    stored = client.get(f"/studies/{created.json()['id']}").json()["spec"]["tracking"]
    assert stored == {"mlflow": {"tracking_uri": DEFAULT_URI, "experiment": "spam"}}


@pytest.mark.parametrize(
    ("uri", "status"),
    [
        ("https://mlflow.internal/", 201),  # a listed host
        ("http://localhost:5000", 422),  # not listed here (the default list is the loopback)
        ("http://10.0.0.5:5000", 422),
    ],
)
def test_tracking_uris_are_checked_at_submit(client: TestClient, uri: str, status: int) -> None:
    response = client.post("/studies", json={**SPEC, "tracking": {"mlflow": {"tracking_uri": uri}}})
    assert response.status_code == status, response.text
    if status == 422:
        assert "tracking.mlflow.tracking_uri" in response.text
