"""The REST API in-process (the Ray dispatcher replaced by a recorder): codes, shapes, errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from fastapi.testclient import TestClient

from service.app import create_app
from service.dispatcher import JobState
from service.settings import Settings

# The Host header Starlette's TestClient sends: in-process apps answer it (HPO_ALLOWED_HOSTS).
IN_PROCESS_HOSTS = ["testserver"]

SPEC: dict[str, Any] = {
    "name": "api-unit",
    "algorithm": "random",
    "budget": {"n_trials": 3},
    "search_space": {"learning_rate": {"type": "float", "low": 1e-5, "high": 1e-3, "log": True}},
}


class RecordingDispatcher:
    """Stands in for Ray in these unit tests: records submissions, jobs stay RUNNING."""

    def __init__(self) -> None:
        self.submitted: list[str] = []

    def submit(self, study_id: str, attempt: int) -> str:
        self.submitted.append(study_id)
        return f"job-{study_id}-{attempt}"

    def status(self, job_id: str) -> JobState:
        return JobState("RUNNING")

    def stop(self, job_id: str) -> None:
        return None

    def dashboard_job_url(self, job_id: str) -> str | None:
        return f"http://dashboard/#/jobs/{job_id}"

    def ping(self) -> bool:
        return True


@pytest.fixture
def dispatcher() -> RecordingDispatcher:
    return RecordingDispatcher()


@pytest.fixture
def client(tmp_path: Path, dispatcher: RecordingDispatcher) -> Iterator[TestClient]:
    settings = Settings(
        allowed_hosts=IN_PROCESS_HOSTS,
        database_url=f"sqlite:///{tmp_path / 'api.db'}",
        state_dir=tmp_path / "state",
        poll_interval_s=0.05,
        max_running_studies=1,
    )
    with TestClient(create_app(settings, dispatcher=dispatcher)) as test_client:
        yield test_client


def test_submit_json_then_read(client: TestClient) -> None:
    created = client.post("/studies", json=SPEC)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["status"] == "QUEUED" and body["name"] == "api-unit"
    assert body["spec"]["objective"] == {"metric": "eval_accuracy", "direction": "maximize"}
    assert body["optuna_study_name"] == f"api-unit-{body['id']}"
    read = client.get(f"/studies/{body['id']}")
    assert read.status_code == 200
    assert read.json()["id"] == body["id"]


def test_submit_yaml(client: TestClient) -> None:
    response = client.post(
        "/studies", content=yaml.safe_dump(SPEC), headers={"Content-Type": "application/yaml"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["spec"]["search_space"]["learning_rate"]["log"] is True


def test_queue_starts_studies_within_the_limit(
    client: TestClient, dispatcher: RecordingDispatcher
) -> None:
    first = client.post("/studies", json=SPEC).json()["id"]
    second = client.post("/studies", json=SPEC).json()["id"]
    for _ in range(100):
        if client.get(f"/studies/{first}").json()["status"] == "RUNNING":
            break
        import time

        time.sleep(0.05)
    study = client.get(f"/studies/{first}").json()
    assert study["status"] == "RUNNING"
    assert study["ray_job_id"] == f"job-{first}-1"
    assert study["dashboard_url"].endswith(study["ray_job_id"])
    assert client.get(f"/studies/{second}").json()["status"] == "QUEUED"  # limit 1
    assert dispatcher.submitted == [first]


@pytest.mark.parametrize(
    ("body", "content_type", "code", "needle"),
    [
        (b"{not json", "application/json", 400, "malformed JSON"),
        (b"name: [unclosed", "application/yaml", 400, "malformed YAML"),
        (b"[1, 2, 3]", "application/json", 400, "mapping"),
        (b"a: &x [1]\nb: *x\n", "application/yaml", 400, "aliases"),
        (b"\xff\xfe", "application/json", 400, "malformed JSON"),
    ],
)
def test_malformed_bodies_are_400(
    client: TestClient, body: bytes, content_type: str, code: int, needle: str
) -> None:
    response = client.post("/studies", content=body, headers={"Content-Type": content_type})
    assert response.status_code == code
    assert needle in response.json()["detail"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"algorithm": "annealing"}, "algorithm"),
        ({"search_space": {"learning_rate": {"type": "float", "low": 1, "high": 0}}}, None),
        ({"search_space": {"colour": {"type": "categorical", "choices": ["red"]}}}, None),
        ({"objective": {"metric": "perplexity"}}, "objective.metric"),
        ({"task": {"dataset": {"train": "/nope/train.tsv"}}}, "task.dataset.train"),
        ({"budget": {"n_trials": -3}}, "budget.n_trials"),
        ({"checkpoint": {"every_epochs": -1}}, "checkpoint.every_epochs"),
        ({"checkpoint": {"keep": 0}}, "checkpoint.keep"),
        ({"checkpoint": {"max_bytes": 2**41}}, "checkpoint.max_bytes"),
        ({"checkpoint": {"enabled": False}}, "checkpoint.enabled"),
    ],
)
def test_invalid_specs_are_422_with_field(
    client: TestClient, change: dict[str, Any], field: str | None
) -> None:
    response = client.post("/studies", json={**SPEC, **change})
    assert response.status_code == 422
    problem = response.json()["detail"][0]
    expected = field or f"search_space.{next(iter(change['search_space']))}"
    assert problem["field"] == expected
    assert problem["reason"]


def test_unknown_ids_are_404(client: TestClient) -> None:
    for path in (
        "/studies/nope",
        "/studies/nope/trials",
        "/studies/nope/best",
        "/studies/" + "x" * 300,
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "not found" in response.json()["detail"]


def test_bad_query_parameters_are_422(client: TestClient) -> None:
    study_id = client.post("/studies", json=SPEC).json()["id"]
    for query in ("state=DONE", "sort=colour", "limit=0", "limit=5000", "offset=-1"):
        response = client.get(f"/studies/{study_id}/trials?{query}")
        assert response.status_code == 422, query
        assert response.json()["detail"][0]["field"].startswith("query.")
    assert client.get("/studies?status=SLEEPING").status_code == 422


def test_trial_filters_and_cursors_over_http(client: TestClient) -> None:
    created = client.post("/studies", json=SPEC).json()
    storage = client.app.state.optuna_storage  # type: ignore[attr-defined]
    study = optuna.load_study(study_name=created["optuna_study_name"], storage=storage)
    lr = optuna.distributions.FloatDistribution(1e-5, 1e-3, log=True)
    for i in range(9):
        trial = study.ask({"learning_rate": lr})
        study.tell(trial, 0.1 * (i % 4))
    url = f"/studies/{created['id']}/trials"
    seen, cursor = [], None
    while True:
        page = client.get(url, params={"sort": "value", "limit": 4, "cursor": cursor}).json()
        assert page["count"] == 9
        seen += [(t["value"], t["number"]) for t in page["data"]]
        if not (cursor := page["next_cursor"]):
            break
    assert seen == sorted(seen, key=lambda vn: (-vn[0], vn[1]))  # best first, no repeats
    ranged = client.get(url, params={"value_min": 0.15, "value_max": 0.25}).json()
    assert {t["value"] for t in ranged["data"]} == {0.2} and ranged["count"] == 2
    low = min(t.params["learning_rate"] for t in study.trials)
    only = client.get(url, params={"param": f"learning_rate::{low}"}).json()
    assert [t["params"]["learning_rate"] for t in only["data"]] == [low]
    for query, field in (
        ({"param": "nope:1"}, "param"),
        ({"param": "learning_rate"}, "param"),
        ({"cursor": "garbage"}, "cursor"),
        ({"cursor": page["next_cursor"] or "x", "offset": 2}, "offset"),
        (
            {
                "sort": "number",
                "cursor": client.get(url, params={"sort": "value", "limit": 1}).json()[
                    "next_cursor"
                ],
            },
            "cursor",
        ),
    ):
        response = client.get(url, params=query)
        assert response.status_code == 422, query
        assert response.json()["detail"][0]["field"] == f"query.{field}", query


def test_best_is_404_until_a_trial_completes_then_matches_trials(client: TestClient) -> None:
    created = client.post("/studies", json=SPEC).json()
    assert client.get(f"/studies/{created['id']}/best").status_code == 404
    storage = client.app.state.optuna_storage  # type: ignore[attr-defined]
    study = optuna.load_study(study_name=created["optuna_study_name"], storage=storage)
    for value in (0.6, 0.9, 0.7):
        trial = study.ask({"learning_rate": optuna.distributions.FloatDistribution(1e-5, 1e-3)})
        trial.report(value / 2, 1)
        study.tell(trial, value)
    best = client.get(f"/studies/{created['id']}/best").json()
    trials = client.get(f"/studies/{created['id']}/trials").json()
    assert trials["count"] == 3
    assert best["value"] == max(t["value"] for t in trials["data"]) == 0.9
    assert best["intermediate_values"] == {"1": 0.45}
    by_value = client.get(f"/studies/{created['id']}/trials?sort=value&limit=2").json()
    assert [t["value"] for t in by_value["data"]] == [0.9, 0.7]
    summary = client.get(f"/studies/{created['id']}").json()
    assert summary["trial_counts"]["COMPLETE"] == 3
    assert summary["best_value"] == 0.9


def test_list_filters_and_paginates(client: TestClient) -> None:
    ids = [client.post("/studies", json=SPEC).json()["id"] for _ in range(3)]
    page = client.get("/studies?limit=2").json()
    assert page["count"] == 3 and len(page["data"]) == 2
    assert page["data"][0]["id"] == ids[-1]  # newest first
    rest = client.get("/studies?limit=2&offset=2").json()
    assert [s["id"] for s in rest["data"]] == [ids[0]]
    queued = client.get("/studies?status=QUEUED").json()
    assert all(s["status"] == "QUEUED" for s in queued["data"])


def test_openapi_documents_the_spec_body(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/studies"]["post"]["requestBody"]["content"]
    assert "search_space" in body["application/json"]["schema"]["properties"]
    assert "application/yaml" in body


def test_health(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "database": True, "ray": True}


def test_start_up_adds_the_query_indexes_to_an_existing_database(
    tmp_path: Path, dispatcher: RecordingDispatcher
) -> None:
    from sqlalchemy import create_engine, inspect, text

    from service.store.indexes import INDEXES

    url = f"sqlite:///{tmp_path / 'old.db'}"
    optuna.storages.RDBStorage(url).engine.dispose()  # a database Optuna made before us
    engine = create_engine(url)
    with engine.begin() as conn:
        for index in INDEXES:
            conn.execute(text(f"DROP INDEX IF EXISTS {index.name}"))
    settings = Settings(
        allowed_hosts=IN_PROCESS_HOSTS,
        database_url=url,
        state_dir=tmp_path / "state",
        poll_interval_s=0.05,
    )
    with TestClient(create_app(settings, dispatcher=dispatcher)):
        inspector = inspect(engine)
        tables = ("trials", "trial_values")
        present = {i["name"] for table in tables for i in inspector.get_indexes(table)}
    engine.dispose()
    assert {str(index.name) for index in INDEXES} <= present


def test_deleting_a_study_removes_its_kept_model(client: TestClient, tmp_path: Path) -> None:
    client.post("/studies", json=SPEC)  # takes the one running slot
    study_id = client.post("/studies", json=SPEC).json()["id"]
    kept = tmp_path / "state" / "ray_results" / "artifacts" / study_id / "best"
    kept.mkdir(parents=True)
    (kept / "config.json").write_text("{}")
    assert client.post(f"/studies/{study_id}/cancel").status_code == 200
    assert client.delete(f"/studies/{study_id}").status_code == 204
    assert not kept.parent.exists()
