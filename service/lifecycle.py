"""Study lifecycle operations shared by the API and the scheduler loop: cancel, delete, resume.

The SQL store is the source of truth. A trial that was RUNNING when its driver died or was
stopped is marked FAIL with the reason in its ``error`` attribute, so no trial stays RUNNING;
an interrupted trial's configuration is queued again so its budget is spent again.
"""

from __future__ import annotations

import contextlib
import logging
import time

import optuna
from optuna.trial import TrialState

from service.dispatcher import FINAL_JOB_STATES, Dispatcher
from service.store import ACTIVE_STATES, FINAL_STATES, EventStore, StudyRecord, StudyStore
from service.store.events import add_event
from service.store.trials import TrialQueries

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted"
CANCELLED = "cancelled"


class Conflict(Exception):
    """The operation does not fit the study's state (an HTTP 409)."""


class Gone(Exception):
    """The study was deleted meanwhile (an HTTP 404)."""


class Lifecycle:
    """Cancel, delete and resume studies."""

    def __init__(
        self,
        store: StudyStore,
        trials: TrialQueries,
        events: EventStore,
        dispatcher: Dispatcher,
        storage: optuna.storages.BaseStorage,
    ) -> None:
        self._store = store
        self._trials = trials
        self._events = events
        self._dispatcher = dispatcher
        self._storage = storage

    def cancel(self, study: StudyRecord, stop_timeout_s: float = 30.0) -> None:
        """Stop a queued or running study; its running trials end FAIL ("cancelled")."""
        if study.status in FINAL_STATES:
            raise Conflict(f"study {study.id} is already {study.status}; nothing to cancel")
        from_states = ("QUEUED", *ACTIVE_STATES)
        if not self._store.transition(study.id, from_states, "CANCELLED", "cancelled by user"):
            raise Conflict(f"study {study.id} changed state meanwhile; try again")
        if study.ray_job_id and study.status in ACTIVE_STATES:
            self._stop_job(study.ray_job_id, stop_timeout_s)
            self.fail_running_trials(study, CANCELLED, requeue=False)

    def delete(self, study: StudyRecord) -> None:
        """Remove a study that is not running, with its trials and events.

        The row goes first, in one statement conditional on the state: of concurrent deletions
        one wins and the others get ``Gone``; a study that started meanwhile is a ``Conflict``.
        Only the winner removes the trials, and stops the study's Ray job if one still runs (a
        cancel in flight stops it too; stopping twice is harmless): no job outlives its study.
        """
        if study.status in ACTIVE_STATES:
            raise Conflict(f"study {study.id} is {study.status}; cancel it before deleting it")
        removed = self._store.delete(study.id, self._events)
        if removed is None:
            now = self._store.get(study.id)
            if now is None:
                raise Gone(study.id)
            raise Conflict(f"study {study.id} is {now.status}; cancel it before deleting it")
        if removed.ray_job_id:
            self._stop_if_running(removed.ray_job_id)
        if self._trials.study_id(removed.optuna_study_name) is not None:
            with contextlib.suppress(KeyError):  # removed by a driver's failed start, say
                optuna.delete_study(study_name=removed.optuna_study_name, storage=self._storage)
            self._trials.forget(removed.optuna_study_name)

    def fail_running_trials(self, study: StudyRecord, reason: str, *, requeue: bool) -> int:
        """Mark the study's RUNNING trials FAIL with ``reason``; optionally queue their configs."""
        optuna_id = self._trials.study_id(study.optuna_study_name)
        if optuna_id is None:
            return 0
        try:
            return self._fail_trials(study, optuna_id, reason, requeue)
        except KeyError:  # the study was deleted meanwhile (a DELETE raced a cancel)
            return 0

    def _fail_trials(self, study: StudyRecord, optuna_id: int, reason: str, requeue: bool) -> int:
        running = self._trials.running(optuna_id)
        loaded = None
        if requeue and running:
            loaded = optuna.load_study(study_name=study.optuna_study_name, storage=self._storage)
        for trial_id, trial in running:
            self._storage.set_trial_user_attr(trial_id, "error", reason)
            try:
                self._storage.set_trial_state_values(trial_id, TrialState.FAIL)
            except RuntimeError:  # finished meanwhile (the driver told it first)
                continue
            with self._store.engine.begin() as conn:
                add_event(conn, study.id, "trial_failed", {"number": trial.number, "error": reason})
            if loaded is not None and trial.params:
                loaded.enqueue_trial(trial.params, user_attrs={"requeued_from": trial.number})
        return len(running)

    def _stop_if_running(self, job_id: str) -> None:
        try:
            if self._dispatcher.status(job_id).status not in (*FINAL_JOB_STATES, "MISSING"):
                self._dispatcher.stop(job_id)
        except Exception:
            log.warning("could not stop Ray job %s", job_id, exc_info=True)

    def _stop_job(self, job_id: str, timeout_s: float) -> None:
        try:
            self._dispatcher.stop(job_id)
        except Exception:
            log.warning("could not stop Ray job %s", job_id, exc_info=True)
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._dispatcher.status(job_id).status in (*FINAL_JOB_STATES, "MISSING"):
                return
            time.sleep(0.25)
        log.warning("Ray job %s did not stop within %.0f s", job_id, timeout_s)
