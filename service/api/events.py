"""``/studies/{id}/events``: state changes and trial progress as Server-Sent Events.

Served from the stored event log, so a client that reconnects with ``Last-Event-ID`` (or
``?last_event_id=``) gets exactly the events it missed. The stream ends after the study's
final status event.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from service.api.studies import require_study
from service.auth.principal import PrincipalDep
from service.client_numbers import MAX_ROW_ID, row_id
from service.deps import EventsDep, StoreDep
from service.store import FINAL_STATES, EventStore, StudyEvent, StudyStore

router = APIRouter(prefix="/studies", tags=["events"])

POLL_S = 0.5
HEARTBEAT_S = 15.0


@router.get(
    "/{study_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "event stream"}},
)
async def stream_events(
    request: Request,
    study_id: str,
    store: StoreDep,
    events: EventsDep,
    principal: PrincipalDep,
    last_event_id: Annotated[str | None, Header()] = None,
    after: Annotated[int | None, Query(alias="last_event_id", ge=0, le=MAX_ROW_ID)] = None,
) -> StreamingResponse:
    """Follow a study: ``status``, ``trial_started``, ``trial_result``, ``trial_completed``,
    ``trial_retried`` and ``trial_failed`` events, each with its id. A tenant may hold
    ``HPO_MAX_EVENT_STREAMS_PER_TENANT`` streams open at once (429 beyond)."""
    await run_in_threadpool(require_study, store, study_id, principal)
    start = after if after is not None else _parse_id(last_event_id)
    streams: StreamCounter = request.app.state.event_streams
    limit = request.app.state.settings.max_event_streams_per_tenant
    if not streams.open(principal.tenant, limit):
        raise HTTPException(
            429, f"tenant {principal.tenant} already has {limit} event streams open"
        )
    return StreamingResponse(
        _counted(streams, principal.tenant, _events(store, events, study_id, start)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _parse_id(header: str | None) -> int:
    if header is None or not header.strip():
        return 0
    event_id = row_id(header)
    if event_id is None:
        raise HTTPException(
            400, f"Last-Event-ID must be an event id: ASCII digits, at most {MAX_ROW_ID}"
        )
    return event_id


async def _events(
    store: StudyStore, events: EventStore, study_id: str, last_id: int
) -> AsyncIterator[str]:
    quiet_since = time.monotonic()
    while True:
        batch = await run_in_threadpool(events.after, study_id, last_id)
        for event in batch:
            last_id = event.id
            yield _format(event)
            if event.kind == "status" and event.data.get("status") in FINAL_STATES:
                return
        if batch:
            quiet_since = time.monotonic()
            continue
        study = await run_in_threadpool(store.get, study_id)
        if study is None:  # deleted while followed
            return
        if time.monotonic() - quiet_since > HEARTBEAT_S:
            quiet_since = time.monotonic()
            yield ": keep-alive\n\n"
        await asyncio.sleep(POLL_S)


class StreamCounter:
    """Open event streams per tenant (one event loop: no lock needed)."""

    def __init__(self) -> None:
        self._open: Counter[str] = Counter()

    def open(self, tenant: str, limit: int) -> bool:
        """Count one more stream of ``tenant`` unless it already has ``limit``."""
        if self._open[tenant] >= limit:
            return False
        self._open[tenant] += 1
        return True

    def close(self, tenant: str) -> None:
        """One stream of ``tenant`` ended."""
        self._open[tenant] -= 1


async def _counted(
    streams: StreamCounter, tenant: str, chunks: AsyncIterator[str]
) -> AsyncIterator[str]:
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        streams.close(tenant)


def _format(event: StudyEvent) -> str:
    data = {**event.data, "at": event.created_at.isoformat()}
    return f"id: {event.id}\nevent: {event.kind}\ndata: {json.dumps(data)}\n\n"
