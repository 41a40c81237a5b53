"""Experiment tracking in a spec (``tracking: {mlflow: {tracking_uri, experiment}}``) and where a
tracking URI may point.

A tracking URI is checked at submit like a data path: allowed are the server-wide default
(``HPO_MLFLOW_TRACKING_URI``, used when the spec gives none) and ``http(s)`` URIs on a host the
server lists (``HPO_TRACKING_HOSTS``, default the loopback names). Credentials never come from a
spec: a URI with a user or password in it is refused; the workers' environment holds them
(``MLFLOW_TRACKING_TOKEN``, ``MLFLOW_TRACKING_USERNAME`` / ``_PASSWORD``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
MAX_URI_CHARS = 2048
MAX_EXPERIMENT_CHARS = 500
URI_LOC = ("tracking", "mlflow", "tracking_uri")


class MlflowTracking(BaseModel):
    """Where a study's trials are tracked in MLflow."""

    model_config = ConfigDict(extra="forbid")

    tracking_uri: Annotated[str, Field(min_length=1, max_length=MAX_URI_CHARS)] | None = Field(
        default=None, description="MLflow tracking server (default: the server-wide default)."
    )
    experiment: (
        Annotated[str, Field(min_length=1, max_length=MAX_EXPERIMENT_CHARS, pattern=r"^\S.*$")]
        | None
    ) = Field(default=None, description="MLflow experiment (default: the study's name).")


class Tracking(BaseModel):
    """Experiment trackers a study's trials are sent to (tracking never fails a trial)."""

    model_config = ConfigDict(extra="forbid")

    mlflow: MlflowTracking | None = None


@dataclass(frozen=True)
class TrackingPolicy:
    """The server's tracking settings: its default URI and the hosts a spec may name."""

    default_uri: str | None = None
    hosts: tuple[str, ...] = LOOPBACK_HOSTS


def resolve_tracking(tracking: Tracking, policy: TrackingPolicy) -> tuple[str | None, str | None]:
    """Fill in the server's default URI; returns (problem, resolved URI).

    ``problem`` says why the spec's URI is refused, or None; the URI is what the study will use.
    """
    if tracking.mlflow is None:
        return None, None
    uri = tracking.mlflow.tracking_uri
    if uri is None:
        if policy.default_uri is None:
            return "give a tracking_uri: this server has no default (HPO_MLFLOW_TRACKING_URI)", None
        return None, policy.default_uri
    problem = tracking_uri_problem(uri, policy)
    return problem, None if problem else uri


def tracking_uri_problem(uri: str, policy: TrackingPolicy) -> str | None:
    """Why the study may not send its trials to ``uri``, or None if it may."""
    if policy.default_uri is not None and uri == policy.default_uri:
        return None
    try:
        parts = urlsplit(uri)
        host = (parts.hostname or "").lower()
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        return "not a valid URI"
    if parts.username is not None or parts.password is not None:
        return (
            "credentials are not taken from a spec: set MLFLOW_TRACKING_TOKEN (or "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD) on the workers"
        )
    allowed = ", ".join(policy.hosts) or "none"
    if parts.scheme not in ("http", "https") or host not in {h.lower() for h in policy.hosts}:
        return (
            f"only the server's default tracking URI or http(s) on an allowed host "
            f"(HPO_TRACKING_HOSTS: {allowed}) may be used"
        )
    return None
