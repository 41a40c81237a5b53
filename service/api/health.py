"""Liveness of the service's dependencies."""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy import text

from service.deps import DispatcherDep, StoreDep
from service.schemas import HealthPublic

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthPublic)
def read_health(store: StoreDep, dispatcher: DispatcherDep, response: Response) -> HealthPublic:
    """Database and Ray reachable: 200, else 503."""
    try:
        with store.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        database = True
    except Exception:
        database = False
    ray = dispatcher.ping()
    if not (database and ray):
        response.status_code = 503
    return HealthPublic(status="ok" if database and ray else "degraded", database=database, ray=ray)
