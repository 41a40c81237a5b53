"""``/studies``: submit, list and read studies."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import optuna
from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from search_spaces.loader import SpecSyntaxError, SpecTooLarge, parse_text
from search_spaces.paths import PathPolicy
from search_spaces.protocol import ARTIFACTS_DIR
from search_spaces.spec import Problem, SpecError, StudySpec, validate_spec
from service.auth.access import MAX_ID_LENGTH, not_found, visible_study
from service.auth.principal import NOBODY, Principal, PrincipalDep
from service.auth.quotas import quota_problems
from service.cluster import placement_problems
from service.deps import (
    DispatcherDep,
    EventsDep,
    LifecycleDep,
    MonitorDep,
    OptunaStorageDep,
    SettingsDep,
    StoreDep,
    TrialsDep,
)
from service.dispatcher import Dispatcher
from service.lifecycle import Conflict, Gone
from service.optuna_study import create_optuna_study
from service.request_guards import YAML_TYPES, media_type, read_body
from service.schemas import StudiesPublic, StudyPublic, StudyStatus, TransitionPublic, study_public
from service.store import EventStore, StudyRecord, StudyStore, TrialQueries
from service.store.trial_filters import TRIAL_STATES, TrialFilter
from service.store.trials import TrialSummary

router = APIRouter(prefix="/studies", tags=["studies"])

EMPTY = TrialSummary(dict.fromkeys(TRIAL_STATES, 0), None)
WARM_START_LOC = ("warm_start", "from_study")

_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": StudySpec.model_json_schema()},
            "application/yaml": {"schema": {"type": "string"}},
        },
    }
}


@router.post("", status_code=201, response_model=StudyPublic, openapi_extra=_BODY_DOC)
async def create_study(
    request: Request,
    store: StoreDep,
    trials: TrialsDep,
    dispatcher: DispatcherDep,
    storage: OptunaStorageDep,
    monitor: MonitorDep,
    principal: PrincipalDep,
) -> StudyPublic:
    """Validate a study spec (JSON or YAML) and queue it for the caller's tenant (within its
    quotas: trials per study, GPUs per trial; its running-studies limit queues it; one trial
    must fit on a fixed cluster)."""
    spec = await _checked_spec(request, principal)
    await run_in_threadpool(resolve_warm_start, spec, store, trials, principal)
    public_url = request.app.state.settings.public_url or str(request.base_url)
    study = await run_in_threadpool(
        _create, store, storage, spec, principal.tenant, public_url.rstrip("/")
    )
    monitor.wake()
    return await run_in_threadpool(view_study, study, trials, dispatcher)


class VerdictPublic(BaseModel):
    """A spec the server would accept: what it would run (nothing is stored)."""

    valid: bool
    name: str
    task: str
    algorithm: str
    n_trials: int
    objectives: list[dict[str, str]]


@router.post("/validate", response_model=VerdictPublic, openapi_extra=_BODY_DOC)
async def validate_study(request: Request, principal: PrincipalDep) -> VerdictPublic:
    """Check a study spec exactly as ``POST /studies`` does (data roots, file headers, the
    caller's quotas, the cluster's size) and store nothing: 200 with what would run, else the
    same 4xx."""
    spec = await _checked_spec(request, principal)
    return VerdictPublic(
        valid=True, name=spec.name, task=spec.task.type, algorithm=spec.algorithm,
        n_trials=spec.budget.n_trials,
        objectives=[{"metric": g.metric, "direction": str(g.direction)} for g in spec.goals],
    )  # fmt: skip


async def _checked_spec(request: Request, principal: Principal) -> StudySpec:
    """The request's spec validated with the server's paths, the tenant's quotas and the
    cluster's size."""
    settings = request.app.state.settings
    body = await read_body(request, settings.max_body_bytes)
    try:
        data = parse_text(body, yaml_syntax=media_type(request.headers) in YAML_TYPES)
    except SpecTooLarge as exc:
        raise HTTPException(413, str(exc)) from None
    except SpecSyntaxError as exc:
        raise HTTPException(400, str(exc)) from None
    policy = PathPolicy.of(settings.data_roots, settings.model_roots)
    spec = await run_in_threadpool(
        validate_spec, data, policy, settings.tracking_policy, check_files=True
    )
    quota = await run_in_threadpool(request.app.state.quotas.of, principal.tenant)
    if problems := quota_problems(spec, principal.tenant, quota):
        raise SpecError(problems)
    if problems := await run_in_threadpool(placement_problems, spec, request.app.state.cluster):
        raise SpecError(problems)
    return spec


@router.get("", response_model=StudiesPublic)
def list_studies(
    store: StoreDep,
    trials: TrialsDep,
    dispatcher: DispatcherDep,
    principal: PrincipalDep,
    status: StudyStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> StudiesPublic:
    """The caller's studies (an admin's: everyone's), newest first, optionally by status."""
    tenant = None if principal.admin else principal.tenant
    found, count = store.page(status=status, limit=limit, offset=offset, tenant=tenant)
    summaries = trials.summaries([s.optuna_study_name for s in found])
    views = [
        view_study(s, trials, dispatcher, summary=summaries.get(s.optuna_study_name, EMPTY))
        for s in found
    ]
    return StudiesPublic(data=views, count=count)


@router.get("/{study_id}", response_model=StudyPublic)
def read_study(
    study_id: str,
    store: StoreDep,
    trials: TrialsDep,
    dispatcher: DispatcherDep,
    events: EventsDep,
    principal: PrincipalDep,
) -> StudyPublic:
    """One study: spec, status and its history, trial counts, best value, Ray job, dashboard."""
    return view_study(require_study(store, study_id, principal), trials, dispatcher, events)


@router.post("/{study_id}/cancel", response_model=StudyPublic)
def cancel_study(
    study_id: str,
    store: StoreDep,
    trials: TrialsDep,
    dispatcher: DispatcherDep,
    lifecycle: LifecycleDep,
    principal: PrincipalDep,
) -> StudyPublic:
    """Stop a queued or running study; running trials end FAIL ("cancelled"); 409 if final."""
    try:
        lifecycle.cancel(require_study(store, study_id, principal))
    except Conflict as exc:
        raise HTTPException(409, str(exc)) from None
    return view_study(require_study(store, study_id, principal), trials, dispatcher)


@router.delete("/{study_id}", status_code=204, response_class=Response)
def delete_study(
    study_id: str,
    store: StoreDep,
    lifecycle: LifecycleDep,
    settings: SettingsDep,
    principal: PrincipalDep,
) -> Response:
    """Remove a study that is not running, with its trials, events, kept model and Tune
    results with their checkpoints (409 while running; of concurrent deletions one succeeds,
    the others get a 404)."""
    try:
        lifecycle.delete(require_study(store, study_id, principal))
    except Conflict as exc:
        raise HTTPException(409, str(exc)) from None
    except Gone:
        raise not_found(study_id) from None
    results = Path(settings.results_dir)
    shutil.rmtree(results / ARTIFACTS_DIR / study_id, ignore_errors=True)
    for experiment in results.glob(f"study-{study_id}-attempt-*"):  # the driver's Tune runs
        shutil.rmtree(experiment, ignore_errors=True)
    return Response(status_code=204)


def resolve_warm_start(
    spec: StudySpec, store: StudyStore, trials: TrialQueries, principal: Principal = NOBODY
) -> None:
    """Put the earlier study's best configurations first in ``points_to_evaluate``.

    Raises a 422 naming ``warm_start.from_study`` when that study is unknown, has no completed
    trial, or none of its best configurations fits this search space.
    """
    if spec.warm_start is None:
        return
    source_id = spec.warm_start.from_study
    source = store.get(source_id) if len(source_id) <= MAX_ID_LENGTH else None
    if source is not None and not principal.sees(source.tenant):
        source = None  # another tenant's study: as if it did not exist
    optuna_id = trials.study_id(source.optuna_study_name) if source else None
    if optuna_id is None:
        raise SpecError([Problem(WARM_START_LOC, f"study {source_id!r} not found")])
    if len(trials.directions(optuna_id)) > 1:
        best = trials.pareto(optuna_id)[: spec.warm_start.top_k]
    else:
        maximize = trials.directions(optuna_id) == ["MAXIMIZE"]
        best = trials.page(
            optuna_id,
            where=TrialFilter(state="COMPLETE"),
            sort="value",
            descending=maximize,
            limit=spec.warm_start.top_k,
        ).trials
    if not best:
        raise SpecError([Problem(WARM_START_LOC, f"study {source_id!r} has no completed trial")])
    problems = [spec.point_problem(trial.params) for trial in best]
    points = [trial.params for trial, problem in zip(best, problems, strict=True) if not problem]
    if not points:
        reason = f"incompatible search space: trial #{best[0].number}: {problems[0]}"
        raise SpecError([Problem(WARM_START_LOC, reason)])
    spec.points_to_evaluate = points + spec.points_to_evaluate


def require_study(store: StudyStore, study_id: str, principal: Principal) -> StudyRecord:
    """The study if ``principal`` may see it, else a 404 naming the id (the same for a study of
    another tenant as for a missing one)."""
    return visible_study(store, study_id, principal)


def view_study(
    study: StudyRecord,
    trials: TrialQueries,
    dispatcher: Dispatcher,
    events: EventStore | None = None,
    summary: TrialSummary | None = None,
) -> StudyPublic:
    """The public view of a study, with its trial summary (and history, if ``events``)."""
    if summary is None:
        summary = trials.summaries([study.optuna_study_name]).get(study.optuna_study_name, EMPTY)
    job_url = dispatcher.dashboard_job_url(study.ray_job_id) if study.ray_job_id else None
    history = None
    if events is not None:
        history = [
            TransitionPublic(status=e.data["status"], reason=e.data.get("reason"), at=e.created_at)
            for e in events.after(study.id, kind="status", limit=1000)
        ]
    return study_public(study, summary.counts, summary.best_value, job_url, history)


def _create(
    store: StudyStore,
    storage: optuna.storages.BaseStorage,
    spec: StudySpec,
    tenant: str,
    public_url: str,
) -> StudyRecord:
    study = store.create(spec.name, spec.model_dump(mode="json"), tenant=tenant)
    create_optuna_study(storage, study.optuna_study_name, spec, f"{public_url}/studies/{study.id}")
    return study
