"""Shared fixtures: a real PostgreSQL database, and one real server with a local Ray per session."""

from __future__ import annotations

import contextlib
import copy
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.local_server import (
    REPO,
    Server,
    fresh_postgres_database,
    start_server,
    stop_server,
)
from tests.mlflow_server import MlflowServer

SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL database shared by this session's server tests."""
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each store contract test runs on a fresh SQLite file and a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real server (SQLite file, local Ray with 2 CPUs) shared by the integration tests."""
    root = tmp_path_factory.mktemp("server")
    running = start_server(root, f"sqlite:///{root / 'hpo.db'}")
    yield running
    stop_server(running)


@contextlib.contextmanager
def attached_server(
    root: Path, database_url: str, cluster: Server, extra_env: dict[str, str] | None = None
) -> Iterator[Server]:
    """Another server on its own database, using ``cluster``'s Ray head (by address and token)."""
    head = cluster.ray_head()
    env = {
        "HPO_RAY_ADDRESS": head["dashboard_url"],
        "HPO_RAY_AUTH_TOKEN": head["token"],
        "HPO_WORKER_PYTHON": sys.executable,
        **(extra_env or {}),
    }
    running = start_server(root, database_url, env)
    try:
        yield running
    finally:
        stop_server(running)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A real MLflow tracking server (SQLite, local artifacts) on a loopback port; it starts at
    once and tests call ``ready()`` before using it (so it boots while the service does)."""
    tracking = MlflowServer(tmp_path_factory.mktemp("mlflow"))
    tracking.start()
    yield tracking
    tracking.stop()


TRACKED_EXPERIMENT = "hpo-tests"


@pytest.fixture(scope="session")
def tracked_study(mlflow_server: MlflowServer, server: Server, api: httpx.Client) -> dict[str, Any]:
    """A finished toy study tracked in MLflow (experiment ``TRACKED_EXPERIMENT``), objective
    eval_f1, 4 ranked configurations of 3 epochs under ASHA (the later ones PRUNED): what the
    MLflow test reads back and the browser test shows in optuna-dashboard and the MLflow UI."""
    spec = toy_spec(
        "sst2-toy",
        n_trials=4,
        epochs=3,
        objective={"metric": "eval_f1"},
        scheduler={"type": "asha", "grace_period": 1, "reduction_factor": 2},
        points_to_evaluate=ranked_points(4),
        tracking={
            "mlflow": {"tracking_uri": mlflow_server.ready(), "experiment": TRACKED_EXPERIMENT}
        },
    )
    study = wait_final(api, submit(api, spec), timeout_s=300)
    assert study["status"] == "SUCCEEDED", study["status_reason"]
    return study


@pytest.fixture(scope="session")
def api(server: Server) -> Iterator[httpx.Client]:
    """An HTTP client bound to the shared server."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


TOY_SPACE: dict[str, Any] = {
    "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
    "weight_decay": {"type": "float", "low": 0.0, "high": 0.1},
}


def ranked_points(n: int) -> list[dict[str, Any]]:
    """``n`` toy configurations, each strictly worse than the one before at every epoch.

    As a study's ``points_to_evaluate``, a trial that starts after an earlier one has reported is
    behind it at every rung: ASHA, HyperBand and the median rule stop it on every run, whatever
    the timing (a random sample leaves that to the order trials happen to report in).
    """
    return [{"learning_rate": 1e-3 * 10 ** (0.25 * k), "weight_decay": 0.01} for k in range(n)]


def toy_spec(name: str, n_trials: int = 3, epochs: int = 2, **extra: Any) -> dict[str, Any]:
    """A study of the built-in analytic objective: real Ray job, Tune trials and Optuna rows."""
    spec: dict[str, Any] = {
        "name": name,
        "algorithm": "random",
        "algorithm_settings": {"seed": 5},
        "budget": {"n_trials": n_trials},
        "resources_per_trial": {"num_workers": 1, "cpus_per_worker": 0.5},
        "task": {"model": "toy", "epochs": epochs},
        "search_space": copy.deepcopy(TOY_SPACE),
    }
    spec.update(extra)
    return spec


def submit(client: httpx.Client, spec: dict[str, Any]) -> str:
    """POST a spec; the new study's id (asserting 201)."""
    response = client.post("/studies", json=spec)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def trials_of(client: httpx.Client, study_id: str) -> list[dict[str, Any]]:
    """Every trial of a small study (one page of up to 1000)."""
    return list(client.get(f"/studies/{study_id}/trials", params={"limit": 1000}).json()["data"])


def wait_final(client: httpx.Client, study_id: str, timeout_s: float = 900) -> dict[str, object]:
    """Poll a study until it is SUCCEEDED, FAILED or CANCELLED."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        study = client.get(f"/studies/{study_id}").json()
        if study["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            return dict(study)
        time.sleep(0.25)
    raise AssertionError(f"study {study_id} did not finish within {timeout_s} s")
