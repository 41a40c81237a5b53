"""The scheduler loop: starts queued studies within the concurrency limit, watches their Ray
jobs, and resumes a study whose driver died (up to ``max_resumes`` times)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable

from service.dispatcher import Dispatcher
from service.lifecycle import INTERRUPTED, Lifecycle
from service.store import StudyRecord, StudyStore

log = logging.getLogger(__name__)


class StudyMonitor:
    """Moves studies QUEUED → RUNNING → SUCCEEDED | FAILED, and RUNNING → RESUMING → RUNNING."""

    def __init__(
        self,
        store: StudyStore,
        dispatcher: Dispatcher,
        lifecycle: Lifecycle,
        *,
        max_running: int,
        max_resumes: int,
        tenant_limit: Callable[[str], int | None] = lambda _tenant: None,
    ) -> None:
        self._store = store
        self._dispatcher = dispatcher
        self._lifecycle = lifecycle
        self._max_running = max_running
        self._max_resumes = max_resumes
        self._tenant_limit = tenant_limit
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Run a tick soon (e.g. right after a submission)."""
        self._wake.set()

    async def run(self, interval_s: float) -> None:
        """Tick forever; errors are logged, never fatal."""
        while True:
            try:
                await asyncio.to_thread(self.tick)
            except Exception:
                log.exception("monitor tick failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=interval_s)
            self._wake.clear()

    def tick(self) -> None:
        """One reconciliation pass: ended jobs, dead drivers, then the queue (in submission
        order, skipping tenants at their own running limit)."""
        running: Counter[str] = Counter()
        for study in self._store.with_status("RUNNING", "RESUMING"):
            try:
                running[study.tenant] += self._reconcile(study)
            except Exception:  # one unreachable job must not stall the others
                log.exception("could not reconcile study %s", study.id)
                running[study.tenant] += 1
        free = self._max_running - sum(running.values())
        limits: dict[str, int | None] = {}
        for study in self._store.with_status("QUEUED"):
            if free <= 0:
                return
            if study.tenant not in limits:
                limits[study.tenant] = self._tenant_limit(study.tenant)
            limit = limits[study.tenant]
            if limit is not None and running[study.tenant] >= limit:
                continue
            job_id = self._dispatcher.submit(study.id, study.attempts + 1)
            if self._store.start_attempt(study.id, ("QUEUED",), job_id):
                log.info("study %s started as Ray job %s", study.id, job_id)
                running[study.tenant] += 1
                free -= 1
            else:
                self._dispatcher.stop(job_id)

    def _reconcile(self, study: StudyRecord) -> int:
        """Bring one active study up to date; returns 1 while it still occupies a slot."""
        if study.status == "RESUMING" or study.ray_job_id is None:
            return self._resubmit(study)
        state = self._dispatcher.status(study.ray_job_id)
        if state.status in ("PENDING", "RUNNING"):
            return 1
        if state.outcome is not None:  # the driver finished and said how
            status = "SUCCEEDED" if state.status == "SUCCEEDED" else "FAILED"
            self._lifecycle.fail_running_trials(study, INTERRUPTED, requeue=False)
            self._store.transition(study.id, ("RUNNING",), status, state.outcome)
            log.info("study %s %s: %s", study.id, status, state.outcome)
            return 0
        why = state.message or f"the Ray job ended {state.status}"
        if study.attempts > self._max_resumes:
            self._lifecycle.fail_running_trials(study, INTERRUPTED, requeue=False)
            reason = f"the study driver died {study.attempts} times; last: {why}"
            self._store.transition(study.id, ("RUNNING",), "FAILED", reason)
            return 0
        reason = f"the study driver died ({why}); resuming"
        if not self._store.transition(study.id, ("RUNNING",), "RESUMING", reason):
            return 0
        self._lifecycle.fail_running_trials(study, INTERRUPTED, requeue=True)
        return self._resubmit(study)

    def _resubmit(self, study: StudyRecord) -> int:
        job_id = self._dispatcher.submit(study.id, study.attempts + 1)
        if self._store.start_attempt(study.id, ("RESUMING", "RUNNING"), job_id):
            log.info("study %s resumed as Ray job %s", study.id, job_id)
            return 1
        self._dispatcher.stop(job_id)
        return 0
