"""Infrastructure injected into handlers through ``Annotated`` aliases.

The getters are ``async``: FastAPI runs a plain ``def`` dependency in a worker thread, a hop
that costs more than reading ``app.state``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from service.dispatcher import Dispatcher
from service.lifecycle import Lifecycle
from service.monitor import StudyMonitor
from service.settings import Settings
from service.store import EventStore, StudyStore, TrialQueries


async def get_settings(request: Request) -> Settings:
    """The app's settings."""
    return request.app.state.settings


async def get_store(request: Request) -> StudyStore:
    """The study store."""
    return request.app.state.store


async def get_trials(request: Request) -> TrialQueries:
    """Read-only trial queries."""
    return request.app.state.trials


async def get_events(request: Request) -> EventStore:
    """The study event log."""
    return request.app.state.events


async def get_lifecycle(request: Request) -> Lifecycle:
    """Cancel, delete, resume."""
    return request.app.state.lifecycle


async def get_dispatcher(request: Request) -> Dispatcher:
    """The job dispatcher (Ray)."""
    return request.app.state.dispatcher


async def get_monitor(request: Request) -> StudyMonitor:
    """The scheduler loop."""
    return request.app.state.monitor


async def get_optuna_storage(request: Request) -> Any:
    """Optuna's RDB storage on the service database."""
    return request.app.state.optuna_storage


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[StudyStore, Depends(get_store)]
TrialsDep = Annotated[TrialQueries, Depends(get_trials)]
DispatcherDep = Annotated[Dispatcher, Depends(get_dispatcher)]
MonitorDep = Annotated[StudyMonitor, Depends(get_monitor)]
EventsDep = Annotated[EventStore, Depends(get_events)]
LifecycleDep = Annotated[Lifecycle, Depends(get_lifecycle)]
OptunaStorageDep = Annotated[Any, Depends(get_optuna_storage)]
