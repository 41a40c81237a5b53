"""Trials no cluster can place: refused at submission on a fixed cluster (422 naming
``resources_per_trial``); on a cluster said to autoscale, the study ends FAILED with the reason
once its first trial could not be placed within ``HPO_PLACEMENT_TIMEOUT_S``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from service.local_server import Server
from tests.conftest import attached_server, submit, toy_spec, wait_final

TOO_BIG = [
    ({"num_workers": 512, "cpus_per_worker": 512}, "toy", "a worker fits on no node"),
    ({"num_workers": 1, "cpus_per_worker": 1, "gpus_per_worker": 1}, "toy", "fits on no node"),
    ({"num_workers": 3, "cpus_per_worker": 1}, "tiny-bert", "more than the whole cluster"),
]


@pytest.mark.integration
@pytest.mark.parametrize(("resources", "model", "needle"), TOO_BIG)
def test_a_trial_larger_than_the_fixed_cluster_is_422(
    api: httpx.Client, resources: dict[str, Any], model: str, needle: str
) -> None:
    spec = toy_spec("too-big", resources_per_trial=resources)
    spec["task"]["model"] = model
    response = api.post("/studies", json=spec)
    assert response.status_code == 422, response.text
    problem = response.json()["detail"][0]
    assert problem["field"] == "resources_per_trial"
    assert needle in problem["reason"] and "the cluster has 2 CPUs and 0 GPUs" in problem["reason"]


@pytest.mark.integration
def test_a_study_whose_trial_is_never_placed_fails_after_the_deadline(
    tmp_path: Path, server: Server
) -> None:
    env = {"HPO_CLUSTER_AUTOSCALING": "true", "HPO_PLACEMENT_TIMEOUT_S": "2"}
    with (
        attached_server(tmp_path, f"sqlite:///{tmp_path / 'placement.db'}", server, env) as other,
        httpx.Client(base_url=other.url, timeout=30) as api,
    ):
        spec = toy_spec("never-placed", resources_per_trial={"cpus_per_worker": 3})
        study = wait_final(api, submit(api, spec), timeout_s=120)
    assert study["status"] == "FAILED"
    reason = str(study["status_reason"])
    assert "no trial could be placed within 2 s" in reason, reason
    assert "1 worker x (3 CPUs)" in reason and "the cluster has 2 CPUs" in reason
