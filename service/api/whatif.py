"""``/studies/{id}/whatif``: what another early-stopping scheduler would have done to a study."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, ValidationError

from search_spaces.loader import SpecSyntaxError, parse_text
from search_spaces.pausing import PAUSING_SCHEDULERS
from search_spaces.spec import Problem, Scheduler, SpecError
from service.api.studies import require_study
from service.auth.principal import PrincipalDep
from service.deps import EventsDep, StoreDep, TrialsDep
from service.request_guards import YAML_TYPES, media_type, read_body
from service.schemas import WhatIfPublic
from service.statuses import FINAL_STATES
from service.whatif import NotReplayable, ReplayFailed, what_if

router = APIRouter(prefix="/studies", tags=["analysis"])


class WhatIfRequest(BaseModel):
    """The scheduler to replay the study under (the study spec's ``scheduler``)."""

    model_config = ConfigDict(extra="forbid")

    scheduler: Scheduler


_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": WhatIfRequest.model_json_schema()}},
    }
}


@router.post("/{study_id}/whatif", response_model=WhatIfPublic, openapi_extra=_BODY_DOC)
async def compute_what_if(
    study_id: str,
    request: Request,
    store: StoreDep,
    events: EventsDep,
    trials: TrialsDep,
    principal: PrincipalDep,
) -> WhatIfPublic:
    """Replay a finished study's per-epoch values, in the order they happened, through Ray
    Tune's ASHA, Hyperband or median rule: the trials it would stop, the compute it would save,
    whether the best trial survives; 409 for a study still running or with under 2 epochs."""
    study = await run_in_threadpool(require_study, store, study_id, principal)
    scheduler = await _scheduler(request)
    if study.status not in FINAL_STATES:
        raise HTTPException(409, f"study {study_id!r} is {study.status}: a what-if needs it ended")
    try:
        return await run_in_threadpool(what_if, study, scheduler, events, trials)
    except NotReplayable as exc:
        raise HTTPException(409, f"cannot replay study {study_id!r}: {exc}") from None
    except ReplayFailed as exc:
        raise HTTPException(503, f"the replay could not run: {exc}") from None


async def _scheduler(request: Request) -> dict[str, object]:
    """The request's scheduler settings as given (422 naming a bad field, like a spec's)."""
    body = await read_body(request, request.app.state.settings.max_body_bytes)
    try:
        data = parse_text(body, yaml_syntax=media_type(request.headers) in YAML_TYPES)
        scheduler = WhatIfRequest.model_validate(data).scheduler
    except SpecSyntaxError as exc:
        raise HTTPException(400, str(exc)) from None
    except ValidationError as exc:
        problems = [
            Problem(tuple(e["loc"]), str(e["msg"]).removeprefix("Value error, "))
            for e in exc.errors()
        ]
        raise SpecError(problems) from None
    if scheduler.type in PAUSING_SCHEDULERS:
        reason = (
            f"{scheduler.type} pauses or changes trials while they train, which recorded curves "
            "cannot replay: use asha, hyperband or median"
        )
        raise SpecError([Problem(("scheduler", "type"), reason)])
    return scheduler.model_dump(exclude_unset=True)
