"""What the Ray cluster can place: its alive nodes' CPUs and GPUs, read from the dashboard's
state API and kept for a few seconds, and the submit-time check of a study's trial against it.

On a fixed cluster a trial that fits on no node would wait for ever, holding a running slot;
it is refused at submission (422 naming ``resources_per_trial``). An autoscaling cluster
(``HPO_CLUSTER_AUTOSCALING``) may grow, so nothing is refused: the study driver's placement
deadline (``HPO_PLACEMENT_TIMEOUT_S``) ends a study whose first trial never starts.
"""

from __future__ import annotations

import logging
import threading
import time

import httpx

from search_spaces.placement import ClusterCapacity, TrialDemand, placement_problem
from search_spaces.spec import Problem, StudySpec
from service.ray_head import RayEndpoint

log = logging.getLogger(__name__)

FIELD = ("resources_per_trial",)


class ClusterResources:
    """The cluster's capacity, read at most every ``ttl_s`` seconds (None: unknown)."""

    def __init__(self, endpoint: RayEndpoint, ttl_s: float = 10.0) -> None:
        self._endpoint = endpoint
        self._ttl_s = ttl_s
        self._lock = threading.Lock()
        self._read_at = -float("inf")
        self._capacity: ClusterCapacity | None = None

    def capacity(self) -> ClusterCapacity | None:
        """The alive nodes' resources; None while the cluster cannot tell (no node yet, the
        dashboard unreachable): then nothing is refused."""
        with self._lock:
            if time.monotonic() - self._read_at > self._ttl_s:
                self._capacity = self._read()
                self._read_at = time.monotonic() if self._capacity else -float("inf")
            return self._capacity

    def _read(self) -> ClusterCapacity | None:
        url = f"{self._endpoint.dashboard_url}/api/v0/nodes"
        try:
            response = httpx.get(
                url, params={"limit": 10_000}, headers=self._endpoint.headers, timeout=5
            )
            rows = response.raise_for_status().json()["data"]["result"]["result"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            log.warning("could not read the cluster's resources: %s", exc)
            return None
        nodes = [row.get("resources_total") or {} for row in rows if row.get("state") == "ALIVE"]
        return ClusterCapacity.of_nodes(nodes) if nodes else None


def placement_problems(spec: StudySpec, cluster: ClusterResources | None) -> list[Problem]:
    """A 422's problem when one trial of ``spec`` can never be placed on the fixed cluster."""
    capacity = cluster.capacity() if cluster is not None else None
    if capacity is None:
        return []
    problem = placement_problem(TrialDemand.of(spec), capacity)
    return [Problem(FIELD, problem)] if problem else []
