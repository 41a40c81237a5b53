"""Observability: /metrics (Prometheus), JSON logs with request ids, optuna-dashboard's mount.

In-process tests use the app with a stand-in dispatcher; the others use the shared real server
(``hpo serve`` with a local Ray), its toy studies and its log file.
"""

from __future__ import annotations

import io
import json
import logging
import logging.config
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import optuna
import pytest
from asgi_correlation_id.context import correlation_id
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from service.app import create_app
from service.db import make_engine, metadata
from service.local_server import Server
from service.observability.dashboard import _PrefixedDashboard
from service.observability.logs import AccessFields, logging_config
from service.observability.metrics import StudyCollector
from service.schemas import STUDY_STATUSES
from service.settings import Settings
from service.store import StudyStore
from service.store.trial_filters import TRIAL_STATES
from tests.conftest import toy_spec, wait_final
from tests.service.test_api import IN_PROCESS_HOSTS, SPEC, RecordingDispatcher

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    """Every sample of a Prometheus text page, keyed by name and labels."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    return found[(name, frozenset(labels.items()))]


def requests_total(found: Samples, handler: str, method: str) -> float:
    return sum(
        v
        for (name, labels), v in found.items()
        if name == "http_requests_total"
        and ("handler", handler) in labels
        and ("method", method) in labels
    )


@pytest.fixture
def local(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        allowed_hosts=IN_PROCESS_HOSTS,
        database_url=f"sqlite:///{tmp_path / 'obs.db'}",
        state_dir=tmp_path / "state",
        poll_interval_s=0.05,
    )
    with TestClient(create_app(settings, RecordingDispatcher())) as client:
        yield client


# --- /metrics, in process -------------------------------------------------------------------


def test_metrics_lists_every_status_and_state_and_counts_requests(local: TestClient) -> None:
    assert local.post("/studies", json=SPEC).status_code == 201
    response = local.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)
    for status in STUDY_STATUSES:
        assert ("hpo_studies", frozenset({("status", status)})) in found
    for state in TRIAL_STATES:
        assert value(found, "hpo_trials", state=state) == 0
    assert sum(value(found, "hpo_studies", status=s) for s in STUDY_STATUSES) == 1
    assert value(found, "hpo_queue_length") == value(found, "hpo_studies", status="QUEUED")
    assert requests_total(found, "/studies", "POST") == 1
    assert any(name == "http_request_duration_seconds_count" for name, _ in found)
    # /metrics is neither counted nor part of the API's schema.
    assert requests_total(found, "/metrics", "GET") == 0
    assert "/metrics" not in local.get("/openapi.json").json()["paths"]


def test_requests_are_counted_under_their_route_template(local: TestClient) -> None:
    """The handler label is the matched route's template (one series for every study id), a
    mount's path, or ``none`` for a path no route matches; the status is grouped."""
    study_id = local.post("/studies", json=SPEC).json()["id"]
    for _ in range(2):
        assert local.get(f"/studies/{study_id}/best").status_code == 404  # no trial yet
    assert local.get("/studies/nosuchstudy/best").status_code == 404
    assert local.get(f"/studies/{study_id}").status_code == 200
    assert local.get("/no/such/path").status_code == 404
    local.get("/dashboard/")
    found = samples(local.get("/metrics").text)
    best = "/studies/{study_id}/best"
    assert value(found, "http_requests_total", handler=best, method="GET", status="4xx") == 3
    assert requests_total(found, "/studies/{study_id}", "GET") == 1
    assert requests_total(found, "none", "GET") == 1
    assert requests_total(found, "/dashboard", "GET") == 1
    histogram = ("http_request_duration_seconds_count", frozenset({("handler", best),
                 ("method", "GET")}))  # fmt: skip
    assert found[histogram] == 3
    assert not any(("handler", f"/studies/{study_id}/best") in labels for _, labels in found)


def test_queue_length_counts_queued_studies(tmp_path: Path) -> None:
    settings = Settings(
        allowed_hosts=IN_PROCESS_HOSTS,
        database_url=f"sqlite:///{tmp_path / 'queue.db'}",
        state_dir=tmp_path / "state",
        poll_interval_s=0.05,
        max_running_studies=1,
    )
    with TestClient(create_app(settings, RecordingDispatcher())) as client:
        for _ in range(3):
            assert client.post("/studies", json=SPEC).status_code == 201
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the scheduler loop starts one of them
            found = samples(client.get("/metrics").text)
            if value(found, "hpo_studies", status="RUNNING") == 1:
                break
            time.sleep(0.05)
    assert value(found, "hpo_studies", status="RUNNING") == 1
    assert value(found, "hpo_studies", status="QUEUED") == 2
    assert value(found, "hpo_queue_length") == 2


def test_trials_gauge_counts_only_the_services_studies(local: TestClient) -> None:
    study_id = local.post("/studies", json=SPEC).json()["id"]
    name = local.get(f"/studies/{study_id}").json()["optuna_study_name"]
    storage = local.app.state.optuna_storage  # type: ignore[attr-defined]
    ours = optuna.load_study(study_name=name, storage=storage)
    for x in (0.1, 0.2):
        ours.add_trial(_trial(x))
    ours.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    other = optuna.create_study(study_name="not-a-service-study", storage=storage)
    other.add_trial(_trial(0.3))
    found = samples(local.get("/metrics").text)
    assert value(found, "hpo_trials", state="COMPLETE") == 2
    assert value(found, "hpo_trials", state="FAIL") == 1


@pytest.mark.postgres
def test_collector_on_sqlite_and_postgres(database_url: str) -> None:
    """The gauges' SQL on both databases (on PostgreSQL, Optuna's trial state is a native enum)."""
    engine = make_engine(database_url)
    metadata.create_all(engine)
    storage = optuna.storages.RDBStorage(database_url)
    try:
        store = StudyStore(engine)
        ours = store.create("collector", SPEC)
        store.create("queued", SPEC)
        assert store.transition(ours.id, ["QUEUED"], "SUCCEEDED", "done")
        study = optuna.create_study(study_name=ours.optuna_study_name, storage=storage)
        for x in (0.1, 0.2, 0.3):
            study.add_trial(_trial(x))
        study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
        optuna.create_study(study_name="foreign", storage=storage).add_trial(_trial(0.5))
        registry = CollectorRegistry()
        registry.register(StudyCollector(lambda: engine))
        found = samples(generate_latest(registry).decode())
    finally:
        storage.remove_session()
        storage.engine.dispose()
        engine.dispose()
    assert value(found, "hpo_studies", status="SUCCEEDED") == 1
    assert value(found, "hpo_studies", status="QUEUED") == 1
    assert value(found, "hpo_studies", status="CANCELLED") == 0
    assert value(found, "hpo_queue_length") == 1
    assert value(found, "hpo_trials", state="COMPLETE") == 3
    assert value(found, "hpo_trials", state="FAIL") == 1
    assert value(found, "hpo_trials", state="RUNNING") == 0


def test_two_apps_in_one_process_have_their_own_metrics(tmp_path: Path, local: TestClient) -> None:
    settings = Settings(
        allowed_hosts=IN_PROCESS_HOSTS,
        database_url=f"sqlite:///{tmp_path / 'b.db'}",
        state_dir=tmp_path / "b",
    )
    with TestClient(create_app(settings, RecordingDispatcher())) as other:
        local.post("/studies", json=SPEC)
        assert requests_total(samples(other.get("/metrics").text), "/studies", "POST") == 0
        assert requests_total(samples(local.get("/metrics").text), "/studies", "POST") == 1


def _trial(x: float) -> optuna.trial.FrozenTrial:
    return optuna.trial.create_trial(
        params={"learning_rate": x},
        distributions={"learning_rate": optuna.distributions.FloatDistribution(0.0, 1.0)},
        value=x,
    )


# --- request ids and the log format, in process ---------------------------------------------


def test_request_id_is_returned_and_generated(local: TestClient) -> None:
    rid = uuid.uuid4().hex
    assert local.get("/healthz", headers={"X-Request-ID": rid}).headers["x-request-id"] == rid
    generated = local.get("/healthz").headers["x-request-id"]
    assert len(generated) == 32 and generated != rid


def _format(log_format: str, record: logging.LogRecord) -> str:
    """A record through the handler's filters and formatter as ``hpo serve`` configures them
    (built from the same dictConfig, without touching this process's logging)."""
    config = logging_config(log_format)  # type: ignore[arg-type]
    configurator = logging.config.DictConfigurator(config)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(configurator.configure_formatter(config["formatters"][log_format]))
    for name in config["handlers"]["default"]["filters"]:
        handler.addFilter(configurator.configure_filter(config["filters"][name]))
    handler.handle(record)
    return stream.getvalue()


def _access_record() -> logging.LogRecord:
    return logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/healthz", "1.1", 200),
        None,
    )


def test_json_lines_carry_time_level_logger_message_and_request_id() -> None:
    token = correlation_id.set("abc123")
    try:
        line = _format("json", _access_record())
    finally:
        correlation_id.reset(token)
    entry = json.loads(line)
    assert entry["level"] == "INFO"
    assert entry["logger"] == "uvicorn.access"
    assert entry["message"] == '127.0.0.1:5000 - "GET /healthz HTTP/1.1" 200'
    assert entry["request_id"] == "abc123"
    assert entry["time"].endswith("+00:00")
    assert (entry["method"], entry["path"], entry["status"]) == ("GET", "/healthz", 200)
    outside = json.loads(_format("json", _access_record()))
    assert outside["request_id"] is None


def test_text_format_carries_the_request_id() -> None:
    token = correlation_id.set("abc123")
    try:
        line = _format("text", _access_record())
    finally:
        correlation_id.reset(token)
    assert "INFO uvicorn.access [abc123]" in line and "GET /healthz" in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def test_access_fields_leave_other_records_alone() -> None:
    record = logging.LogRecord("service.app", logging.INFO, __file__, 1, "x %s", ("y",), None)
    assert AccessFields().filter(record) and not hasattr(record, "path")


def test_log_format_setting_reads_hpo_log_format(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().log_format == "json"
    monkeypatch.setenv("HPO_LOG_FORMAT", "text")
    assert Settings().log_format == "text"
    monkeypatch.setenv("HPO_LOG_FORMAT", "xml")
    with pytest.raises(ValueError):
        Settings()


# --- optuna-dashboard's mount, in process ---------------------------------------------------


def test_dashboard_page_loads_its_script_and_api_under_the_mount(local: TestClient) -> None:
    page = local.get("/dashboard/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert '<script defer src="/dashboard/static/bundle.js">' in page.text
    assert 'src="/static/' not in page.text
    shim = local.get("/dashboard/hpo-api-prefix.js")
    assert shim.status_code == 200 and '"/dashboard" + input' in shim.text
    assert local.get("/dashboard/studies/1/trials").text == page.text  # client-side routes
    bundle = local.get("/dashboard/static/bundle.js")
    assert bundle.status_code == 200 and len(bundle.content) > 100_000
    # The app's API client calls /api/... with an empty base URL: what the shim rewrites.
    assert "${this.baseURL}/api/studies" in bundle.text


def test_dashboard_page_hides_the_write_controls_and_says_why(local: TestClient) -> None:
    first = local.get("/dashboard/")
    assert 'button[aria-label="delete study"]' in first.text and "display: none" in first.text
    assert '<div id="hpo-read-only" role="note">Read-only here' in first.text
    # The page is rewritten: optuna-dashboard's validators of its own file must not come along
    # (a browser holding the unrewritten page would keep it), nor answer a conditional GET.
    assert "etag" not in first.headers and "last-modified" not in first.headers
    assert first.headers["cache-control"] == "no-cache"
    again = local.get("/dashboard/", headers={"If-None-Match": "*", "If-Modified-Since": "x"})
    assert again.status_code == 200 and again.text == first.text


def test_dashboard_api_reads_the_service_database(local: TestClient) -> None:
    study_id = local.post("/studies", json=SPEC).json()["id"]
    name = local.get(f"/studies/{study_id}").json()["optuna_study_name"]
    summaries = local.get("/dashboard/api/studies").json()["study_summaries"]
    assert name in [s["study_name"] for s in summaries]
    assert "/dashboard" not in local.get("/openapi.json").text


def test_dashboard_is_read_only(local: TestClient) -> None:
    study_id = local.post("/studies", json=SPEC).json()["id"]
    name = local.get(f"/studies/{study_id}").json()["optuna_study_name"]
    summaries = local.get("/dashboard/api/studies").json()["study_summaries"]
    optuna_id = next(s["study_id"] for s in summaries if s["study_name"] == name)
    writes = [
        ("DELETE", f"/dashboard/api/studies/{optuna_id}"),
        ("POST", f"/dashboard/api/studies/{optuna_id}/rename"),
        ("POST", "/dashboard/api/studies"),
        ("PUT", f"/dashboard/api/studies/{optuna_id}/note"),
    ]
    for method, path in writes:
        response = local.request(method, path, json={"study_name": "x"})
        assert response.status_code == 405, (method, path, response.text)
        assert "read-only" in response.text
    after = local.get("/dashboard/api/studies").json()["study_summaries"]
    assert name in [s["study_name"] for s in after]
    assert local.get(f"/studies/{study_id}").status_code == 200


def test_dashboard_errors_go_to_the_log(caplog: pytest.LogCaptureFixture) -> None:
    def failing(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ["wsgi.errors"].write("Traceback (most recent call last):\n  boom\n")
        start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
        return [b"error"]

    environ = {"PATH_INFO": "/api/studies", "wsgi.errors": io.StringIO()}
    with caplog.at_level(logging.ERROR, logger="service.observability.dashboard"):
        _PrefixedDashboard(failing)(environ, lambda *_: None)
    assert "boom" in caplog.text


# --- the real server ------------------------------------------------------------------------


@pytest.mark.integration
def test_metrics_count_a_finished_study(server: Server, api: httpx.Client) -> None:
    before = samples(api.get("/metrics").text)
    n_trials = 3
    study_id = api.post("/studies", json=toy_spec("metrics", n_trials=n_trials)).json()["id"]
    assert wait_final(api, study_id, timeout_s=600)["status"] == "SUCCEEDED"
    after = samples(api.get("/metrics").text)
    succeeded = value(after, "hpo_studies", status="SUCCEEDED")
    assert succeeded >= value(before, "hpo_studies", status="SUCCEEDED") + 1
    complete = value(after, "hpo_trials", state="COMPLETE")
    assert complete >= value(before, "hpo_trials", state="COMPLETE") + n_trials
    assert requests_total(after, "/studies/{study_id}", "GET") >= 1
    assert requests_total(after, "/studies", "POST") >= 1


@pytest.mark.integration
def test_server_logs_are_json_with_the_request_id(server: Server, api: httpx.Client) -> None:
    rid = uuid.uuid4().hex
    response = api.get("/studies/no-such-study", headers={"X-Request-ID": rid})
    assert response.status_code == 404 and response.headers["x-request-id"] == rid
    deadline = time.monotonic() + 10
    mine: list[dict[str, object]] = []
    while not mine and time.monotonic() < deadline:
        entries = _log_entries(server.log_path)
        mine = [e for e in entries if e.get("request_id") == rid]
        time.sleep(0.2)
    assert mine, f"no log line with request_id {rid}"
    access = [e for e in mine if e["logger"] == "uvicorn.access"]
    assert access and access[0]["path"] == "/studies/no-such-study" and access[0]["status"] == 404
    for entry in entries:
        assert {"time", "level", "logger", "message", "request_id"} <= entry.keys(), entry
    assert any(e["logger"] == "service.app" for e in entries)  # the app's own lines too


def _log_entries(path: Path) -> list[dict[str, object]]:
    """Every non-empty line of the server's log, each one JSON object (fails on any other)."""
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                pytest.fail(f"{path}:{number} is not JSON: {line[:300]}")
            assert isinstance(entry, dict)
            entries.append(entry)
    return entries
