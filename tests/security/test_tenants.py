"""Keys and tenants in process (the Ray dispatcher stood in for): every study endpoint and verb
answers another tenant 404, admins see all, quotas hold, keys are hashed and revocable."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.app import create_app
from service.auth.keys import KeyStore, keys_table
from service.auth.quotas import Quota, QuotaStore
from service.db import make_engine, upgrade_tables
from service.settings import Settings
from tests.service.test_api import IN_PROCESS_HOSTS, SPEC, RecordingDispatcher


class Keys:
    """Bearer headers of tenant a, tenant b and an admin, plus the raw keys."""

    def __init__(self, store: KeyStore) -> None:
        self.raw = {
            "a": store.create("a").secret,
            "b": store.create("b").secret,
            "admin": store.create("ops", admin=True).secret,
        }

    def __getitem__(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.raw[who]}"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        allowed_hosts=IN_PROCESS_HOSTS,
        database_url=f"sqlite:///{tmp_path / 'tenants.db'}",
        state_dir=tmp_path / "state",
        poll_interval_s=0.05,
        max_running_studies=1,
        auth="enabled",
    )


@pytest.fixture
def keys(settings: Settings) -> Keys:
    engine = make_engine(settings.database_url)
    upgrade_tables(engine)
    return Keys(KeyStore(engine))


@pytest.fixture
def client(settings: Settings, keys: Keys) -> Iterator[TestClient]:
    with TestClient(create_app(settings, dispatcher=RecordingDispatcher())) as test_client:
        yield test_client


def submit(client: TestClient, headers: dict[str, str], **extra: Any) -> str:
    response = client.post("/studies", json={**SPEC, **extra}, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def study_routes(client: TestClient) -> list[tuple[str, str]]:
    """(method, path) of every API operation that names a study, from the OpenAPI schema."""
    paths = client.get("/openapi.json").json()["paths"]
    return [
        (method.upper(), path)
        for path, operations in paths.items()
        if "{study_id}" in path
        for method in operations
    ]


def test_every_study_endpoint_and_verb_is_404_for_another_tenant(
    client: TestClient, keys: Keys
) -> None:
    submit(client, keys["a"])  # takes the one running slot: the next study stays QUEUED
    study_id = submit(client, keys["a"])
    routes = study_routes(client)
    # read, delete, cancel, trials, best, artifact, events, pareto, cost, whatif, …
    assert len(routes) == 11
    for method, path in routes:
        url = path.replace("{study_id}", study_id)
        other = client.request(method, url, headers=keys["b"])
        assert other.status_code == 404, (method, path, other.text)
        assert other.json()["detail"] == f"study {study_id!r} not found"
        missing = client.request(method, path.replace("{study_id}", "0" * 32), headers=keys["b"])
        assert missing.json() == {"detail": f"study {'0' * 32!r} not found"}  # no difference
    for method, path in routes:
        if method in ("DELETE", "POST") or path.endswith("/events"):
            continue  # kept for the checks below (events would follow the queued study)
        own = client.request(method, path.replace("{study_id}", study_id), headers=keys["a"])
        assert own.status_code != 404 or "not found" not in own.text, (method, path, own.text)
    assert client.post(f"/studies/{study_id}/cancel", headers=keys["admin"]).status_code == 200
    assert client.delete(f"/studies/{study_id}", headers=keys["b"]).status_code == 404
    assert client.delete(f"/studies/{study_id}", headers=keys["a"]).status_code == 204


def test_listing_shows_own_studies_and_admins_see_all(client: TestClient, keys: Keys) -> None:
    a, b = submit(client, keys["a"]), submit(client, keys["b"])
    listed = {
        who: {s["id"] for s in client.get("/studies", headers=keys[who]).json()["data"]}
        for who in ("a", "b", "admin")
    }
    assert listed == {"a": {a}, "b": {b}, "admin": {a, b}}
    assert client.get("/studies", headers=keys["b"]).json()["count"] == 1


def test_requests_without_a_live_key_are_401(client: TestClient, keys: Keys) -> None:
    assert client.get("/healthz").status_code == 200  # the one open endpoint
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic x"}):
        response = client.get("/studies", headers=headers)
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    assert client.post("/studies", json=SPEC).status_code == 401


def test_a_revoked_key_is_rejected_at_once(
    client: TestClient, keys: Keys, settings: Settings
) -> None:
    assert client.get("/studies", headers=keys["a"]).status_code == 200
    key_id = keys.raw["a"].split("_")[1]
    KeyStore(make_engine(settings.database_url)).revoke(key_id)
    response = client.get("/studies", headers=keys["a"])
    assert response.status_code == 401 and "revoked" in response.json()["detail"]


def test_keys_are_stored_hashed(keys: Keys, settings: Settings) -> None:
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        rows = conn.execute(select(keys_table)).mappings().all()
    dumped = repr([dict(r) for r in rows])
    for raw in keys.raw.values():
        secret = raw.split("_", 2)[2]
        assert secret not in dumped
        assert hashlib.sha256(secret.encode()).hexdigest() in dumped
    assert {r["tenant"] for r in rows} == {"a", "b", "ops"}
    listed = KeyStore(engine).list()
    assert not any(raw in repr(listed) for raw in keys.raw.values())  # listed without secrets


def test_warm_start_from_another_tenants_study_is_not_found(client: TestClient, keys: Keys) -> None:
    theirs = submit(client, keys["a"])
    response = client.post(
        "/studies", json={**SPEC, "warm_start": {"from_study": theirs}}, headers=keys["b"]
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["reason"] == f"study {theirs!r} not found"


def test_trial_and_gpu_quotas_are_422_naming_the_field(
    client: TestClient, keys: Keys, settings: Settings
) -> None:
    QuotaStore(make_engine(settings.database_url)).set("a", Quota(None, 2, 1.0))
    too_many = client.post("/studies", json=SPEC, headers=keys["a"])  # 3 trials
    assert too_many.status_code == 422
    assert too_many.json()["detail"][0]["field"] == "budget.n_trials"
    assert "quota of 2 per study" in too_many.json()["detail"][0]["reason"]
    gpus = {"num_workers": 2, "gpus_per_worker": 1}
    spec = {**SPEC, "budget": {"n_trials": 2}, "resources_per_trial": gpus}
    too_big = client.post("/studies", json=spec, headers=keys["a"])
    assert too_big.json()["detail"][0]["field"] == "resources_per_trial.gpus_per_worker"
    assert client.post("/studies", json=spec, headers=keys["b"]).status_code == 201  # b: none


def test_metrics_need_an_admin_key(client: TestClient, keys: Keys) -> None:
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=keys["a"]).status_code == 403
    scraped = client.get("/metrics", headers=keys["admin"])
    assert scraped.status_code == 200 and "hpo_studies" in scraped.text


def test_dashboard_needs_an_admin_key_or_its_login_cookie(client: TestClient, keys: Keys) -> None:
    first = client.get("/dashboard/", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/dashboard/login"
    assert client.get("/dashboard/api/studies").status_code == 401
    assert client.get("/dashboard/api/studies", headers=keys["a"]).status_code == 404
    assert client.get("/dashboard/api/studies", headers=keys["admin"]).status_code == 200
    wrong = client.post("/dashboard/login", data={"key": keys.raw["b"] + "x"})
    assert wrong.status_code == 401
    login = client.post("/dashboard/login", data={"key": keys.raw["admin"]}, follow_redirects=False)
    assert login.status_code == 303
    cookie = login.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/dashboard" in cookie
    page = client.get("/dashboard/")  # the cookie now rides along
    assert page.status_code == 200 and "bundle.js" in page.text
    assert client.get("/studies").status_code == 401  # the cookie opens the dashboard only
