"""``/metrics`` in Prometheus format: HTTP requests and latency per handler
(``service.observability.http_metrics``) and the service's own gauges, read from the database
at scrape time: studies by status, Optuna trials by state, the queue length."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from fastapi import Depends, FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

from service.auth.access import metrics_access
from service.db import studies_table
from service.observability.http_metrics import HttpMetrics, HttpMetricsMiddleware
from service.schemas import STUDY_STATUSES
from service.store.optuna_tables import studies as optuna_studies
from service.store.optuna_tables import trials
from service.store.trial_filters import TRIAL_STATES

METRICS_PATH = "/metrics"


class StudyCollector(Collector):
    """``hpo_studies{status}``, ``hpo_trials{state}`` and ``hpo_queue_length``, evaluated on
    every scrape (two grouped counts). ``engine`` is a callable: the engine is made in the app's
    lifespan, after the collector is registered."""

    def __init__(self, engine: Callable[[], Engine | None]) -> None:
        self._engine = engine

    def collect(self) -> Iterator[Metric]:
        engine = self._engine()
        if engine is None:  # scraped before start-up finished
            return
        by_status = select(studies_table.c.status, func.count()).group_by(studies_table.c.status)
        # Trials of this service's studies only (the database may hold other Optuna studies).
        by_state = (
            select(trials.c.state, func.count())
            .select_from(
                trials.join(optuna_studies, trials.c.study_id == optuna_studies.c.study_id)
            )
            .join(studies_table, studies_table.c.optuna_study_name == optuna_studies.c.study_name)
            .group_by(trials.c.state)
        )
        with engine.connect() as conn:
            statuses = {str(s): int(n) for s, n in conn.execute(by_status)}
            states = {str(getattr(s, "name", s)): int(n) for s, n in conn.execute(by_state)}
        studies = GaugeMetricFamily("hpo_studies", "Studies by status.", labels=["status"])
        for status in STUDY_STATUSES:
            studies.add_metric([status], statuses.get(status, 0))
        yield studies
        trial_gauge = GaugeMetricFamily(
            "hpo_trials", "Optuna trials of the service's studies by state.", labels=["state"]
        )
        for state in TRIAL_STATES:
            trial_gauge.add_metric([state], states.get(state, 0))
        yield trial_gauge
        yield GaugeMetricFamily(
            "hpo_queue_length", "Studies waiting to start (QUEUED).", statuses.get("QUEUED", 0)
        )


def install_metrics(app: FastAPI) -> CollectorRegistry:
    """Instrument ``app`` and expose ``/metrics`` (not in the OpenAPI schema; an admin key unless
    ``HPO_METRICS_PUBLIC``) from a registry of its own, so several apps in one process do not
    clash."""
    registry = CollectorRegistry()
    metrics = HttpMetrics(registry, excluded=frozenset({METRICS_PATH}))
    app.add_middleware(HttpMetricsMiddleware, metrics=metrics)
    registry.register(StudyCollector(lambda: _engine(app)))

    @app.get(METRICS_PATH, include_in_schema=False, dependencies=[Depends(metrics_access)])
    def read_metrics() -> Response:
        """Every metric of the registry, in Prometheus' text format."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return registry


def _engine(app: FastAPI) -> Engine | None:
    store = getattr(app.state, "store", None)
    return store.engine if store is not None else None
