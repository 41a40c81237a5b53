"""``/studies/{id}/trials`` and ``/studies/{id}/best``: read trials from Optuna's tables."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from service.api.read_cache import Answer, ReadCache
from service.api.studies import require_study
from service.auth.access import find_study, not_found
from service.auth.principal import PrincipalDep
from service.deps import StoreDep, TrialsDep
from service.population import schedule
from service.schemas import TrialPublic, TrialsPublic, TrialState
from service.store import StudyStore, TrialQueries
from service.store.trial_filters import (
    TRIAL_STATES,
    Cursor,
    ParamFilter,
    QueryError,
    SortKey,
    TrialFilter,
)

router = APIRouter(prefix="/studies", tags=["trials"])

assert set(TrialState.__args__) == set(TRIAL_STATES)  # type: ignore[attr-defined]


@router.get("/{study_id}/trials", response_model=TrialsPublic)
def list_trials(
    study_id: str,
    store: StoreDep,
    principal: PrincipalDep,
    trials: TrialsDep,
    state: TrialState | None = None,
    value_min: float | None = Query(
        None, description="First objective ≥ this (a finite number)", allow_inf_nan=False
    ),
    value_max: float | None = Query(
        None, description="First objective ≤ this (a finite number)", allow_inf_nan=False
    ),
    param: Annotated[
        list[str] | None,
        Query(
            max_length=200,
            description="name:value (equal) or name:low:high (a range; one bound may be empty); "
            "repeat for several",
        ),
    ] = None,
    sort: SortKey = "number",
    order: Literal["asc", "desc"] | None = Query(
        None, description="Default: best first for value, ascending otherwise"
    ),
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    cursor: Annotated[
        str | None, Query(max_length=512, description="next_cursor of the previous page")
    ] = None,
) -> TrialsPublic:
    """Trials filtered by state, value and parameter ranges, sorted by number, value or
    duration, paginated by keyset (``cursor``) or ``offset``."""
    study = require_study(store, study_id, principal)
    optuna_id = trials.study_id(study.optuna_study_name)
    if optuna_id is None:
        return TrialsPublic(data=[], count=0)
    if order is None:
        maximize = trials.directions(optuna_id)[:1] == ["MAXIMIZE"]
        descending = sort == "value" and maximize
    else:
        descending = order == "desc"
    if cursor and offset:
        raise QueryError("offset", "give either cursor or offset, not both")
    where = TrialFilter(
        state=state,
        value_min=value_min,
        value_max=value_max,
        params=tuple(ParamFilter.parse(p) for p in param or []),
    )
    found = trials.page(
        optuna_id,
        where=where,
        sort=sort,
        descending=descending,
        limit=limit,
        offset=offset,
        cursor=Cursor.decode(cursor) if cursor else None,
    )
    return TrialsPublic(
        data=[TrialPublic.of(t) for t in found.trials],
        count=found.total,
        next_cursor=found.next_cursor.encode() if found.next_cursor else None,
    )


@router.get("/{study_id}/best", response_model=TrialPublic | TrialsPublic)
async def read_best_trial(study_id: str, request: Request, principal: PrincipalDep) -> Response:
    """The best completed trial (404 while there is none); for several objectives, the Pareto
    front ({data, count}). A running study's answer may lag a just-completed trial by up to
    ``HPO_READ_CACHE_S`` (default 1 s); a finished study's is exact."""
    # The hottest read: its infrastructure comes from app.state, not as dependencies (solving
    # each costs about as much as answering from the cache).
    state = request.app.state
    cache: ReadCache = state.read_cache
    store: StudyStore = state.store
    trials: TrialQueries = state.trials
    found = await cache.answer(
        ("best", study_id),
        principal,
        lambda: run_in_threadpool(best_answer, store, trials, study_id),
    )
    if found.tenant is None:
        raise not_found(study_id)
    if found.status_code != 200:
        raise HTTPException(found.status_code, found.body.decode())
    return Response(found.body, media_type="application/json")


def best_answer(store: StudyStore, trials: TrialQueries, study_id: str) -> Answer:
    """``/best`` of a study for whoever may see it: its best trial or Pareto front as JSON, or a
    404 while no trial has completed."""
    study = find_study(store, study_id)
    if study is None:
        return Answer(None, 404, b"")
    optuna_id = trials.study_id(study.optuna_study_name)
    answer: TrialPublic | TrialsPublic | None = None
    if optuna_id is not None and len(trials.directions(optuna_id)) > 1:
        front = trials.pareto(optuna_id)
        if front:
            answer = TrialsPublic(data=[TrialPublic.of(t) for t in front], count=len(front))
    if answer is None:
        best = trials.best(optuna_id) if optuna_id is not None else None
        if best is None:
            reason = f"study {study_id!r} has no completed trial yet (status {study.status})"
            return Answer(study.tenant, 404, reason.encode())
        answer = TrialPublic.of(best)
        if answer.lineage:
            assert optuna_id is not None
            everyone = {t.number: t for t in trials.every(optuna_id)}
            answer.schedule = schedule(best, everyone)
    return Answer(study.tenant, 200, answer.model_dump_json(by_alias=True).encode())
