"""What a caller may see: studies of its own tenant (all of them for an admin), 404 otherwise,
so another tenant's study ids do not even leak their existence."""

from __future__ import annotations

from fastapi import HTTPException, Request

from service.auth.principal import Principal, authenticate, must_be_admin
from service.store import StudyRecord, StudyStore

MAX_ID_LENGTH = 64


def find_study(store: StudyStore, study_id: str) -> StudyRecord | None:
    """The study, whoever asks (None: missing, or an id too long to be one)."""
    return store.get(study_id) if len(study_id) <= MAX_ID_LENGTH else None


def not_found(study_id: str) -> HTTPException:
    """The 404 for a study that is missing or not the caller's (the two look the same)."""
    return HTTPException(404, f"study {study_id!r} not found")


def visible_study(store: StudyStore, study_id: str, principal: Principal) -> StudyRecord:
    """The study if ``principal`` may see it; the same 404 whether it is missing or not theirs."""
    study = find_study(store, study_id)
    if study is None or not principal.sees(study.tenant):
        raise not_found(study_id)
    return study


def metrics_access(request: Request) -> None:
    """``/metrics``: public when ``HPO_METRICS_PUBLIC`` is set (aggregate counts only), else it
    needs an admin key (the counts span every tenant)."""
    if request.app.state.settings.metrics_public:
        return
    must_be_admin(authenticate(request))
