"""Submits studies as Ray jobs (entrypoint: the study driver) and reads their status."""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from typing import Protocol

from search_spaces.protocol import (
    ATTEMPT_ENV,
    DATABASE_URL_ENV,
    OUTCOME_PREFIX,
    PLACEMENT_TIMEOUT_ENV,
    RESULTS_DIR_ENV,
    ray_job_id,
)
from service.ray_head import RayEndpoint

FINAL_JOB_STATES = ("SUCCEEDED", "FAILED", "STOPPED")
# Passed through to the driver, and so to its trials, when set on the service: the DDP collective
# timeout, and test-only failure injection and knobs.
PASSTHROUGH_ENV = ("HPO_DDP_TIMEOUT_S", "HPO_FAULT_INJECTION", "HPO_TOY_EPOCH_SECONDS")
STUDY_ID = re.compile(r"[A-Za-z0-9]{1,64}")


def job_entrypoint(worker_python: str, study_id: str) -> str:
    """The Ray job's shell command line: the study driver for ``study_id``, every word quoted.

    Ray runs the entrypoint through a shell; the study id is server-generated and checked to be
    ASCII alphanumeric, and each word is ``shlex.quote``-d anyway.
    """
    if not STUDY_ID.fullmatch(study_id):
        raise ValueError("study ids are 1-64 ASCII letters and digits")
    words = [worker_python, "-m", "workers.run_study", "--study-id", study_id]
    return " ".join(shlex.quote(word) for word in words)


@dataclass(frozen=True)
class JobState:
    """A Ray job's status and, once it ended, how.

    ``outcome`` is the study driver's own last word (``hpo-outcome: …``); a job that ended
    without one means the driver died (killed, out of memory, node lost).
    """

    status: str  # PENDING | RUNNING | SUCCEEDED | FAILED | STOPPED | MISSING
    outcome: str | None = None
    message: str | None = None


class Dispatcher(Protocol):
    """What the service needs from a job scheduler."""

    def submit(self, study_id: str, attempt: int) -> str: ...
    def status(self, job_id: str) -> JobState: ...
    def stop(self, job_id: str) -> None: ...
    def dashboard_job_url(self, job_id: str) -> str | None: ...
    def ping(self) -> bool: ...


class RayJobDispatcher:
    """Runs each study as a Ray job via the Jobs API of the configured cluster."""

    def __init__(
        self,
        endpoint: RayEndpoint,
        *,
        database_url: str,
        results_dir: str,
        public_dashboard_url: str | None = None,
        placement_timeout_s: float | None = None,
    ) -> None:
        from ray.job_submission import JobSubmissionClient

        self._endpoint = endpoint
        self._client = JobSubmissionClient(endpoint.dashboard_url, headers=endpoint.headers)
        self._database_url = database_url
        self._results_dir = results_dir
        self._public_url = (public_dashboard_url or endpoint.dashboard_url).rstrip("/")
        self._placement_timeout_s = placement_timeout_s

    def submit(self, study_id: str, attempt: int) -> str:
        """Submit the study driver for ``study_id``; returns the Ray job's submission id."""
        entrypoint = job_entrypoint(self._endpoint.worker_python, study_id)
        env = {
            DATABASE_URL_ENV: self._database_url,
            RESULTS_DIR_ENV: self._results_dir,
            ATTEMPT_ENV: str(attempt),
            "PYTHONUNBUFFERED": "1",
        }
        if self._placement_timeout_s is not None:
            env[PLACEMENT_TIMEOUT_ENV] = str(self._placement_timeout_s)
        env.update({k: os.environ[k] for k in PASSTHROUGH_ENV if k in os.environ})
        return str(
            self._client.submit_job(
                entrypoint=entrypoint,
                submission_id=ray_job_id(study_id, attempt),
                runtime_env={"env_vars": env},
                metadata={"hpo_study_id": study_id, "attempt": str(attempt)},
            )
        )

    def status(self, job_id: str) -> JobState:
        """The job's state; ``MISSING`` when the cluster does not know it (e.g. it restarted)."""
        try:
            info = self._client.get_job_info(job_id)
        except RuntimeError as exc:
            if "does not exist" in str(exc) or "404" in str(exc):
                return JobState("MISSING", message="the Ray job is gone (the cluster restarted)")
            raise
        status = str(getattr(info.status, "value", info.status))
        if status not in FINAL_JOB_STATES:
            return JobState(status)
        outcome = _outcome(info.message) or _outcome(self._client.get_job_logs(job_id)[-50_000:])
        return JobState(status, outcome, _last_line(info.message))

    def stop(self, job_id: str) -> None:
        """Ask Ray to stop the job (SIGTERM to the driver, SIGKILL after a grace period)."""
        self._client.stop_job(job_id)

    def dashboard_job_url(self, job_id: str) -> str | None:
        """Link to the job's page in the Ray dashboard."""
        return f"{self._public_url}/#/jobs/{job_id}"

    def ping(self) -> bool:
        """True when the Jobs API answers."""
        from service.ray_head import jobs_api_ready

        return jobs_api_ready(self._endpoint)


def _outcome(text: str | None) -> str | None:
    """The driver's outcome line, if the text holds one."""
    lines = [line.strip() for line in (text or "").splitlines()]
    ours = [line for line in lines if line.startswith(OUTCOME_PREFIX)]
    return ours[-1].removeprefix(OUTCOME_PREFIX) if ours else None


def _last_line(text: str | None) -> str | None:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1][:500] if lines else None
