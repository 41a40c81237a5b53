"""Deletion is one conditional statement on the study's state: of concurrent DELETEs exactly
one succeeds and the others get a 404 (or a 409), never a 500; and a DELETE racing a cancel
leaves no Ray job of the deleted study running."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from service.local_server import Server
from tests.conftest import submit, toy_spec


def _at_once(calls: list[tuple[str, str]], api: httpx.Client) -> list[int]:
    with ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(api.request, method, url) for method, url in calls]
        return [future.result().status_code for future in futures]


def _live_jobs(server: Server, study_id: str) -> list[str]:
    head = server.ray_head()
    jobs = httpx.get(
        f"{head['dashboard_url']}/api/jobs/",
        headers={"Authorization": f"Bearer {head['token']}"},
        timeout=10,
    ).json()
    return [
        job["status"]
        for job in jobs
        if (job.get("metadata") or {}).get("hpo_study_id") == study_id
        and job["status"] in ("PENDING", "RUNNING")
    ]


@pytest.mark.integration
def test_concurrent_deletes_of_a_study_succeed_once(api: httpx.Client) -> None:
    study_id = submit(api, toy_spec("delete-race", n_trials=1, epochs=1))
    assert api.post(f"/studies/{study_id}/cancel").status_code == 200
    codes = _at_once([("DELETE", f"/studies/{study_id}")] * 6, api)
    assert codes.count(204) == 1, codes
    assert set(codes) <= {204, 404, 409}, codes
    assert api.get(f"/studies/{study_id}").status_code == 404


@pytest.mark.integration
def test_a_delete_racing_a_cancel_leaves_no_ray_job(server: Server, api: httpx.Client) -> None:
    study_id = submit(api, toy_spec("delete-cancel-race", n_trials=2, epochs=4))
    deadline = time.monotonic() + 30
    while api.get(f"/studies/{study_id}").json()["status"] == "QUEUED":
        assert time.monotonic() < deadline, "the study did not start"
        time.sleep(0.1)
    codes = _at_once(
        [("POST", f"/studies/{study_id}/cancel"), ("DELETE", f"/studies/{study_id}")], api
    )
    assert all(code < 500 for code in codes), codes
    if codes[1] != 204:  # the delete came first, while it ran (409): delete the cancelled study
        assert codes[1] == 409
        assert api.delete(f"/studies/{study_id}").status_code == 204
    deadline = time.monotonic() + 30
    while _live_jobs(server, study_id):
        assert time.monotonic() < deadline, "the deleted study's Ray job still runs"
        time.sleep(0.5)
    assert api.get(f"/studies/{study_id}").status_code == 404
