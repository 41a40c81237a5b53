"""Metrics (/metrics), structured logs with request ids, and optuna-dashboard at /dashboard."""

from __future__ import annotations

from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import FastAPI

from service.auth import dashboard_login
from service.observability.dashboard import PREFIX, DashboardApp
from service.observability.metrics import install_metrics


def install_observability(app: FastAPI) -> None:
    """``/metrics``, optuna-dashboard under ``/dashboard`` (on ``app.state.optuna_storage``,
    made in the lifespan), and X-Request-ID on every request and its log lines."""
    install_metrics(app)
    app.include_router(dashboard_login.router)  # before the mount, which would take its path
    app.mount(PREFIX, DashboardApp(lambda: app.state.optuna_storage), name="dashboard")
    # Added last, so outermost: the id is set for everything inside, uvicorn's access log too.
    app.add_middleware(CorrelationIdMiddleware, header_name="X-Request-ID")
