"""The scheduler loop: starts queued studies within the concurrency limit, tracks Ray jobs."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from service.dispatcher import Dispatcher
from service.store import StudyStore

log = logging.getLogger(__name__)

JOB_TO_STUDY = {"SUCCEEDED": "SUCCEEDED", "FAILED": "FAILED", "STOPPED": "FAILED"}


class StudyMonitor:
    """Moves studies QUEUED → RUNNING → SUCCEEDED | FAILED by polling Ray's job status."""

    def __init__(self, store: StudyStore, dispatcher: Dispatcher, max_running: int) -> None:
        self._store = store
        self._dispatcher = dispatcher
        self._max_running = max_running
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
        """One pass: finish studies whose jobs ended, then start queued ones."""
        running = 0
        for study in self._store.with_status("RUNNING"):
            assert study.ray_job_id is not None
            state = self._dispatcher.status(study.ray_job_id)
            if state.status in JOB_TO_STUDY:
                status = JOB_TO_STUDY[state.status]
                self._store.finish(study.id, status, state.message)
                log.info("study %s %s: %s", study.id, status, state.message)
            elif state.status == "MISSING":
                self._store.finish(study.id, "FAILED", state.message)
            else:
                running += 1
        for study in self._store.with_status("QUEUED")[: max(0, self._max_running - running)]:
            job_id = self._dispatcher.submit(study.id, study.attempts + 1)
            if not self._store.mark_running(study.id, job_id):
                self._dispatcher.stop(job_id)
            else:
                log.info("study %s started as Ray job %s", study.id, job_id)
