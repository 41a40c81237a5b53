"""The app factory: settings, database, Ray cluster and the scheduler loop, wired in a lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import optuna
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi

from service.api import api_routers
from service.api.errors import document_errors, install_error_handlers
from service.api.events import StreamCounter
from service.api.read_cache import ReadCache
from service.auth.keys import KeyStore
from service.auth.quotas import Quota, QuotaStore
from service.cluster import ClusterResources
from service.db import make_engine, redact_url, upgrade_tables
from service.dispatcher import Dispatcher, RayJobDispatcher
from service.lifecycle import Lifecycle
from service.monitor import StudyMonitor
from service.observability import install_observability
from service.ray_address import jobs_api_url
from service.ray_head import LocalRayHead, RayEndpoint
from service.request_guards import RequestGuard
from service.settings import WILDCARD_ADDRESSES, Settings
from service.store import EventStore, StudyStore, TrialQueries
from service.store.indexes import ensure_indexes

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, dispatcher: Dispatcher | None = None) -> FastAPI:
    """Build the FastAPI app; ``dispatcher`` replaces Ray in unit tests only."""
    settings = settings or Settings()
    if problem := settings.auth_problem():
        raise UnsafeConfiguration(problem)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        upgrade_tables(engine)
        app.state.settings = settings
        app.state.keys = KeyStore(engine)
        app.state.event_streams = StreamCounter()
        app.state.quotas = QuotaStore(engine, _default_quota(settings))
        app.state.store = StudyStore(engine)
        app.state.read_cache = ReadCache(settings.read_cache_s)
        app.state.store.watch(app.state.read_cache.forget)
        app.state.trials = TrialQueries(engine)
        app.state.events = EventStore(engine)
        app.state.optuna_storage = optuna.storages.RDBStorage(
            settings.database_url, engine_kwargs=_optuna_engine_kwargs(settings.database_url)
        )
        ensure_indexes(engine)
        log.info("database: %s", redact_url(settings.database_url))
        if settings.host in WILDCARD_ADDRESSES and "*" not in settings.allowed_hosts:
            log.warning(
                "bound to %s, but only requests whose Host is one of %s are answered (400 "
                "otherwise); list the names clients use in HPO_ALLOWED_HOSTS",
                settings.host or "every address",
                ", ".join(settings.trusted_hosts),
            )
        if not settings.auth_enabled:
            log.warning(
                "API keys are off (HPO_AUTH=%s, bound to %s): anyone on this machine can use "
                "the API; set HPO_AUTH=enabled and create keys with `hpo keys create`",
                settings.auth or "unset",
                settings.host,
            )
        head: LocalRayHead | None = None
        app.state.cluster = None  # what the cluster can place: unknown with a stand-in
        if dispatcher is None:
            endpoint, head = await asyncio.to_thread(_connect_ray, settings)
            app.state.dispatcher = RayJobDispatcher(
                endpoint,
                database_url=settings.database_url,
                results_dir=settings.results_dir,
                public_dashboard_url=settings.dashboard_public_url,
                placement_timeout_s=settings.placement_timeout_s,
            )
            if not settings.cluster_autoscaling:
                app.state.cluster = ClusterResources(endpoint)
        else:
            app.state.dispatcher = dispatcher
        app.state.lifecycle = Lifecycle(
            app.state.store,
            app.state.trials,
            app.state.events,
            app.state.dispatcher,
            app.state.optuna_storage,
        )
        app.state.monitor = StudyMonitor(
            app.state.store,
            app.state.dispatcher,
            app.state.lifecycle,
            max_running=settings.max_running_studies,
            max_resumes=settings.max_resumes,
            tenant_limit=lambda tenant: app.state.quotas.of(tenant).max_running_studies,
        )
        task = asyncio.create_task(app.state.monitor.run(settings.poll_interval_s))
        # What start-up built (modules, Ray's and Optuna's objects) lives as long as the process:
        # keep it out of the collector's full passes, which otherwise stall requests for tens of ms.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if head is not None:
                await asyncio.to_thread(head.stop)
            engine.dispose()

    app = FastAPI(
        title="hpo-service",
        version="0.1.0",
        summary="Hyperparameter search for fine-tuning: studies as Ray jobs, trials in Optuna.",
        lifespan=lifespan,
    )
    for router in api_routers:
        app.include_router(router)
    install_error_handlers(app)
    _guard_requests(app, settings)
    install_observability(app)  # outermost: refused requests are logged and counted too
    _document_errors(app)
    return app


def _guard_requests(app: FastAPI, settings: Settings) -> None:
    """Host allow-list, cross-origin refusal, body types, sizes and read deadline (see
    ``service.request_guards``); CORS headers for the configured origins only."""
    if settings.allowed_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.allowed_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID", "X-Request-ID"],
        )
    app.add_middleware(
        RequestGuard,
        hosts=settings.trusted_hosts,
        origins=settings.allowed_origins,
        max_body_bytes=settings.max_body_bytes,
        body_timeout_s=settings.body_timeout_s,
        max_header_bytes=settings.max_header_bytes,
    )


class UnsafeConfiguration(RuntimeError):
    """Settings the service refuses to start with."""


def _default_quota(settings: Settings) -> Quota:
    return Quota(
        settings.tenant_max_running_studies,
        settings.tenant_max_trials_per_study,
        settings.tenant_max_gpus_per_trial,
    )


def _document_errors(app: FastAPI) -> None:
    """Serve an OpenAPI schema whose error responses match what the handlers return."""

    def openapi() -> dict[str, object]:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    summary=app.summary,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _connect_ray(settings: Settings) -> tuple[RayEndpoint, LocalRayHead | None]:
    if settings.ray_address:
        address = jobs_api_url(settings.ray_address, settings.ray_auth_token)
        return RayEndpoint(
            address, settings.ray_auth_token, settings.worker_python or "python"
        ), None
    head = LocalRayHead(
        settings.state_dir,
        num_cpus=settings.ray_num_cpus,
        num_gpus=settings.ray_num_gpus,
        dashboard_port=settings.ray_dashboard_port,
        object_store_bytes=settings.ray_object_store_bytes,
        reserved_ports=(settings.port,),
    )
    endpoint = head.start()
    if settings.worker_python:
        endpoint = RayEndpoint(endpoint.dashboard_url, endpoint.token, settings.worker_python)
    return endpoint, head


def _optuna_engine_kwargs(url: str) -> dict[str, object]:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30}}
    return {"pool_pre_ping": True}
