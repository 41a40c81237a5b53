"""REST routers, one module per resource, joined here."""

from fastapi import APIRouter

from service.api import analysis, artifacts, cost, events, health, studies, trials

api_router = APIRouter()
api_router.include_router(health.router)
api_router.include_router(studies.router)
api_router.include_router(trials.router)
api_router.include_router(artifacts.router)
api_router.include_router(events.router)
api_router.include_router(analysis.router)
api_router.include_router(cost.router)
