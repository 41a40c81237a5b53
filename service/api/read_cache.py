"""Response bodies of hot read endpoints (``/best``), served again for a short while.

Thousands of readers polling one study would otherwise each cost a worker-thread hop, database
reads and a serialisation. A body is kept for ``ttl_s`` seconds; any status change or deletion
of a study empties the cache first (``StudyStore.watch``), and a body computed before that is
not stored. So a finished study's ``/best`` is always exact, and a running study's may lag a
newly completed trial by at most ``ttl_s`` (and the time one computation takes). Concurrent
misses of one key share one computation, and a body read often is refreshed ahead: a read after
``REFRESH_AT`` of its life starts one computation in the background and is answered with the
kept body, so under steady reads no reader waits for a computation.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from service.auth.principal import Principal

log = logging.getLogger(__name__)

MAX_ENTRIES = 4096  # beyond it the cache starts again
REFRESH_AT = 0.75  # share of a body's life after which a read refreshes it in the background


@dataclass(frozen=True)
class Answer:
    """A computed answer: the study's tenant (None: no such study), HTTP status and body."""

    tenant: str | None
    status_code: int
    body: bytes


@dataclass(frozen=True)
class _Entry:
    tenant: str
    body: bytes
    refresh: float  # monotonic time after which a read starts a background refresh
    expires: float


class ReadCache:
    """Bodies by (endpoint, study id), each with its study's tenant for the access check."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._epoch = 0  # bumped by every forget; a body computed in an older epoch is dropped
        self._lock = threading.Lock()
        self._running: dict[tuple[str, str], asyncio.Future[Answer]] = {}

    async def answer(
        self, key: tuple[str, str], principal: Principal, compute: Callable[[], Awaitable[Answer]]
    ) -> Answer:
        """The kept answer if fresh, else ``compute()`` (shared by concurrent callers; it must
        not depend on who asks). A study ``principal`` may not see is answered as missing."""
        entry = self._entries.get(key)
        now = time.monotonic()
        if self.ttl_s <= 0:  # off: every call computes
            found = await compute()
        elif entry is not None and entry.expires >= now:
            found = Answer(entry.tenant, 200, entry.body)
            if entry.refresh <= now and key not in self._running:
                refresh = asyncio.ensure_future(self._compute(key, compute))
                refresh.add_done_callback(_log_failure)
                self._running[key] = refresh
        else:
            running = self._running.get(key)
            if running is None:
                running = asyncio.ensure_future(self._compute(key, compute))
                self._running[key] = running
            found = await asyncio.shield(running)
        if found.tenant is None or not principal.sees(found.tenant):
            return Answer(None, 404, b"")
        return found

    async def _compute(
        self, key: tuple[str, str], compute: Callable[[], Awaitable[Answer]]
    ) -> Answer:
        epoch = self._epoch
        try:
            found = await compute()
        finally:
            self._running.pop(key, None)
        if found.status_code == 200 and found.tenant is not None:
            self._keep(key, found.tenant, found.body, epoch)
        return found

    def _keep(self, key: tuple[str, str], tenant: str, body: bytes, epoch: int) -> None:
        """Keep ``body`` unless a study changed since ``epoch`` (read before computing it)."""
        with self._lock:
            if epoch != self._epoch:
                return
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            now = time.monotonic()
            self._entries[key] = _Entry(
                tenant, body, now + REFRESH_AT * self.ttl_s, now + self.ttl_s
            )

    def forget(self, study_id: str) -> None:
        """Drop what is kept of a study that changed status or was deleted."""
        with self._lock:
            self._epoch += 1
            for key in [k for k in self._entries if k[1] == study_id]:
                del self._entries[key]


def _log_failure(refresh: asyncio.Future[Answer]) -> None:
    """A background refresh's error (its readers had the kept body): logged, not raised."""
    if not refresh.cancelled() and refresh.exception() is not None:
        log.warning("refreshing a kept answer failed", exc_info=refresh.exception())
