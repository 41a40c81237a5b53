"""REST routers, one module per resource, joined here."""

from fastapi import APIRouter

from service.api import (
    analysis,
    artifacts,
    cost,
    events,
    health,
    studies,
    tasks,
    trials,
    whatif,
)

# Included into the app one by one (each level of nested routers costs route matching on every
# request), the hot reads (/best, /trials) first: routes are matched in order.
api_routers: tuple[APIRouter, ...] = (
    trials.router,
    health.router,
    studies.router,
    artifacts.router,
    events.router,
    analysis.router,
    cost.router,
    tasks.router,
    whatif.router,
)
