"""Lifecycle and fault tolerance with real processes and real kills (cheap ``toy`` trials)."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import optuna
import pytest

from tests.conftest import (
    Server,
    attached_server,
    fresh_postgres_database,
    start_server,
    stop_server,
    submit,
    toy_spec,
    trials_of,
    wait_final,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def wait_for(predicate: Any, timeout_s: float = 120, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def read_events(url: str, study_id: str, last_event_id: int | None = None) -> list[dict[str, Any]]:
    """Read a study's SSE stream to its end; each event as {id, event, data}."""
    import json

    headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    with httpx.stream(
        "GET", f"{url}/studies/{study_id}/events", headers=headers, timeout=300
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if not line:
                if current:
                    events.append(current)
                current = {}
            elif line.startswith("id: "):
                current["id"] = int(line[4:])
            elif line.startswith("event: "):
                current["event"] = line[7:]
            elif line.startswith("data: "):
                current["data"] = json.loads(line[6:])
    return events


@pytest.fixture
def toy_server(
    server: Server, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[Server, httpx.Client]]:
    """A server on its own SQLite file, attached to the shared Ray; env from the test's marker."""
    marker = request.node.get_closest_marker("server_env")
    env = {"HPO_TOY_EPOCH_SECONDS": "0.2", **(marker.args[0] if marker else {})}
    with (
        attached_server(tmp_path, f"sqlite:///{tmp_path / 'hpo.db'}", server, env) as running,
        httpx.Client(base_url=running.url, timeout=30) as client,
    ):
        yield running, client


@pytest.mark.server_env(
    {"HPO_FAULT_INJECTION": "trial=1,failures=2", "HPO_MAX_RUNNING_STUDIES": "2"}
)
def test_failing_trial_is_retried_then_recorded_with_its_error(
    toy_server: tuple[Server, httpx.Client],
) -> None:
    server, client = toy_server
    retried = submit(client, toy_spec("retried", max_failures=2))
    recorded = submit(client, toy_spec("recorded", max_failures=1))
    study = wait_final(client, retried)
    assert study["status"] == "SUCCEEDED", study["status_reason"]
    assert study["trial_counts"]["COMPLETE"] == 3  # two failures, two retries, success
    events = read_events(server.url, retried)
    retries = [e for e in events if e["event"] == "trial_retried"]
    assert [e["data"]["number"] for e in retries] == [1, 1]
    assert "injected failure in trial 1" in retries[0]["data"]["error"]

    study = wait_final(client, recorded)
    assert study["status"] == "SUCCEEDED"
    assert study["status_reason"] == "study finished: 2 trials completed, 1 failed"
    failed = [t for t in trials_of(client, recorded) if t["state"] == "FAIL"]
    assert [t["number"] for t in failed] == [1]
    assert "InjectedFailure: injected failure in trial 1, attempt 2" in failed[0]["error"]


@pytest.mark.server_env(
    {"HPO_FAULT_INJECTION": "trial=*,failures=99", "HPO_MAX_RUNNING_STUDIES": "2"}
)
def test_studies_whose_trials_fail_end_failed_with_the_reason(
    toy_server: tuple[Server, httpx.Client],
) -> None:
    _, client = toy_server
    every = submit(client, toy_spec("all-fail", n_trials=2))
    capped = submit(
        client,
        toy_spec("capped", n_trials=8, budget={"n_trials": 8, "max_failed_trials": 2}),
    )
    study = wait_final(client, every)
    assert study["status"] == "FAILED"
    assert study["status_reason"].startswith("study failed: all 2 trials failed")
    assert "InjectedFailure" in study["status_reason"]
    study = wait_final(client, capped)
    assert study["status"] == "FAILED"
    assert "(budget.max_failed_trials = 2)" in study["status_reason"]
    counts = study["trial_counts"]
    assert counts["FAIL"] >= 2 and counts["COMPLETE"] == 0 and counts["RUNNING"] == 0
    assert counts["FAIL"] < 8  # stopped early


@pytest.mark.server_env({"HPO_TOY_EPOCH_SECONDS": "0.5"})
def test_time_budget_stops_the_study_cleanly(toy_server: tuple[Server, httpx.Client]) -> None:
    _, client = toy_server
    spec = toy_spec("timed", epochs=4, budget={"n_trials": 200, "time_budget_s": 12})
    study = wait_final(client, submit(client, spec))
    assert study["status"] == "SUCCEEDED"
    assert "time budget" in study["status_reason"]
    counts = study["trial_counts"]
    assert 0 < counts["COMPLETE"] < 200
    assert counts["RUNNING"] == 0


@pytest.mark.server_env({"HPO_TOY_EPOCH_SECONDS": "1"})
def test_cancel_and_delete(toy_server: tuple[Server, httpx.Client]) -> None:
    server, client = toy_server
    running = submit(client, toy_spec("long", n_trials=5, epochs=60))
    queued = submit(client, toy_spec("waiting"))  # HPO_MAX_RUNNING_STUDIES=1: it waits
    wait_for(
        lambda: client.get(f"/studies/{running}").json()["trial_counts"]["RUNNING"] == 1,
        what="a running trial",
    )
    assert client.get(f"/studies/{queued}").json()["status"] == "QUEUED"
    assert client.delete(f"/studies/{running}").status_code == 409  # running: cancel first

    started = time.monotonic()
    response = client.post(f"/studies/{running}/cancel")
    assert response.status_code == 200, response.text
    assert time.monotonic() - started < 30
    assert response.json()["status"] == "CANCELLED"
    trials = trials_of(client, running)
    assert [t["state"] for t in trials] == ["FAIL"]
    assert trials[0]["error"] == "cancelled"
    job = client.get(f"/studies/{running}").json()["ray_job_id"]
    assert job

    conflict = client.post(f"/studies/{running}/cancel")
    assert conflict.status_code == 409
    assert "already CANCELLED" in conflict.json()["detail"]

    assert client.post(f"/studies/{queued}/cancel").json()["status"] == "CANCELLED"
    study = client.get(f"/studies/{running}").json()
    results = server.state_dir / "ray_results"
    assert list(results.glob(f"study-{running}-attempt-*"))  # the driver's Tune run
    assert client.delete(f"/studies/{running}").status_code == 204
    assert not list(results.glob(f"study-{running}-attempt-*"))  # gone with the study
    assert client.get(f"/studies/{running}").status_code == 404
    assert client.get(f"/studies/{running}/trials").status_code == 404
    with pytest.raises(KeyError):
        optuna.load_study(study_name=study["optuna_study_name"], storage=server.database_url)


@pytest.mark.server_env({"HPO_MAX_RUNNING_STUDIES": "1"})
def test_queue_runs_studies_one_at_a_time_in_submission_order(
    toy_server: tuple[Server, httpx.Client],
) -> None:
    _, client = toy_server
    ids = [submit(client, toy_spec(f"queued-{i}", n_trials=1)) for i in range(2)]
    studies = [wait_final(client, study_id) for study_id in ids]
    assert [s["status"] for s in studies] == ["SUCCEEDED"] * 2
    starts = [s["started_at"] for s in studies]
    assert starts == sorted(starts)
    for earlier, later in itertools.pairwise(studies):
        assert later["started_at"] >= earlier["finished_at"]  # never two at once
    history = client.get(f"/studies/{ids[1]}").json()["history"]
    assert [h["status"] for h in history] == ["QUEUED", "RUNNING", "SUCCEEDED"]


def test_event_stream_reads_to_the_end_and_resumes_from_last_event_id(
    toy_server: tuple[Server, httpx.Client],
) -> None:
    server, client = toy_server
    study_id = submit(client, toy_spec("streamed", n_trials=2, epochs=3))
    events = read_events(server.url, study_id)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "status" and events[0]["data"]["status"] == "QUEUED"
    assert events[-1]["event"] == "status" and events[-1]["data"]["status"] == "SUCCEEDED"
    assert kinds.count("trial_started") == 2
    assert kinds.count("trial_result") == 6  # 2 trials x 3 epochs
    assert kinds.count("trial_completed") == 2
    epochs = [e["data"]["epoch"] for e in events if e["event"] == "trial_result"]
    assert sorted(epochs) == [1, 1, 2, 2, 3, 3]
    ids = [e["id"] for e in events]
    assert ids == sorted(set(ids))
    middle = ids[len(ids) // 2]
    rest = read_events(server.url, study_id, last_event_id=middle)
    assert [e["id"] for e in rest] == [i for i in ids if i > middle]
    assert (
        client.get(f"/studies/{study_id}/events", headers={"Last-Event-ID": "abc"}).status_code
        == 400
    )


def _driver_pids(study_id: str) -> list[int]:
    found = subprocess.run(
        ["pgrep", "-f", f"workers.run_study --study-id {study_id}"], capture_output=True, text=True
    )
    return [int(pid) for pid in found.stdout.split()]


@pytest.mark.server_env({"HPO_TOY_EPOCH_SECONDS": "1"})
def test_killed_driver_resumes_with_exact_budget(toy_server: tuple[Server, httpx.Client]) -> None:
    _, client = toy_server
    spec = toy_spec("resumed", n_trials=5, epochs=4, budget={"n_trials": 5})
    study_id = submit(client, spec)

    def early_in_a_trial_after_two_finished() -> bool:
        counts = client.get(f"/studies/{study_id}").json()["trial_counts"]
        running = client.get(f"/studies/{study_id}/trials", params={"state": "RUNNING"}).json()
        return counts["COMPLETE"] >= 2 and any(
            len(t["intermediate_values"]) < 2 for t in running["data"]
        )

    wait_for(early_in_a_trial_after_two_finished, timeout_s=180, what="a trial just started")
    for pid in _driver_pids(study_id):
        os.kill(pid, signal.SIGKILL)
    study = wait_final(client, study_id)
    assert study["status"] == "SUCCEEDED", study["status_reason"]
    assert study["attempts"] == 2
    statuses = [h["status"] for h in study["history"]]
    assert statuses == ["QUEUED", "RUNNING", "RESUMING", "RUNNING", "SUCCEEDED"]
    trials = trials_of(client, study_id)
    numbers = [t["number"] for t in trials]
    assert len(numbers) == len(set(numbers))
    assert not [t for t in trials if t["state"] == "RUNNING"]
    interrupted = [t for t in trials if t["state"] == "FAIL"]
    assert interrupted and all(t["error"] == "interrupted" for t in interrupted)
    complete = [t for t in trials if t["state"] == "COMPLETE"]
    assert len(complete) == 5  # exactly n_trials finished; interrupted ones spent again
    # The interrupted configurations were run again.
    rerun = {tuple(sorted(t["params"].items())) for t in complete}
    assert all(tuple(sorted(t["params"].items())) in rerun for t in interrupted)


def test_api_and_then_whole_ray_killed_mid_study(tmp_path: Path) -> None:
    """kill -9 of a server that owns its Ray head: the job goes on and a restart shows the truth;
    then kill -9 of the server and of the whole local Ray: the next start resumes the study."""
    database_url = f"sqlite:///{tmp_path / 'hpo.db'}"
    env = {"HPO_TOY_EPOCH_SECONDS": "0.5", "HPO_RAY_NUM_CPUS": "1"}

    def complete(client: httpx.Client, study_id: str) -> int:
        return int(client.get(f"/studies/{study_id}").json()["trial_counts"]["COMPLETE"])

    first = start_server(tmp_path, database_url, env)
    second = third = None
    try:
        with httpx.Client(base_url=first.url, timeout=30) as client:
            study_id = submit(client, toy_spec("survivor", n_trials=8, epochs=4))
            wait_for(lambda: complete(client, study_id) >= 1, what="a finished trial")
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=30)
        assert _driver_pids(study_id), "the Ray job must outlive the API process"

        second = start_server(tmp_path, database_url, env)
        assert second.ray_head()["dashboard_url"] == first.ray_head()["dashboard_url"]  # reused
        with httpx.Client(base_url=second.url, timeout=30) as client:
            seen = complete(client, study_id)
            assert client.get(f"/studies/{study_id}").json()["status"] == "RUNNING"
            wait_for(lambda: complete(client, study_id) > seen, what="progress after restart")
        head_pid = int(second.ray_head()["pid"])
        second.process.send_signal(signal.SIGKILL)
        second.process.wait(timeout=30)
        os.killpg(head_pid, signal.SIGKILL)
        for pid in _driver_pids(study_id):  # the job's driver runs in its own session
            os.kill(pid, signal.SIGKILL)

        third = start_server(tmp_path, database_url, env)
        with httpx.Client(base_url=third.url, timeout=30) as client:
            study = wait_final(client, study_id)
            trials = trials_of(client, study_id)
    finally:
        for running in (first, second, third):
            if running is not None:
                stop_server(running)
    assert study["status"] == "SUCCEEDED", study["status_reason"]
    assert study["attempts"] == 2  # the first restart did not re-run it; the Ray loss did
    assert [h["status"] for h in study["history"]].count("RESUMING") == 1
    assert [t["state"] for t in trials].count("COMPLETE") == 8
    assert not [t for t in trials if t["state"] == "RUNNING"]


@pytest.mark.postgres
def test_concurrent_submissions_and_readers_on_postgres(server: Server, tmp_path: Path) -> None:
    """20 studies submitted at once with 100 concurrent readers: every study runs exactly once."""
    env = {"HPO_MAX_RUNNING_STUDIES": "4", "HPO_TOY_EPOCH_SECONDS": "0.05"}
    with (
        fresh_postgres_database() as postgres_url,
        attached_server(tmp_path, postgres_url, server, env) as running,
        httpx.Client(base_url=running.url, timeout=60) as client,
    ):

        def submit_one(i: int) -> str:
            with httpx.Client(base_url=running.url, timeout=60) as own:
                return submit(own, toy_spec(f"concurrent-{i}", n_trials=1, epochs=1))

        def read_one(i: int) -> int:
            with httpx.Client(base_url=running.url, timeout=60) as own:
                return own.get("/studies", params={"limit": 5, "offset": i % 7}).status_code

        with ThreadPoolExecutor(max_workers=32) as pool:
            submissions = pool.map(submit_one, range(20))
            reads = pool.map(read_one, range(100))
            ids = list(submissions)
            codes = list(reads)
        assert codes == [200] * 100
        assert len(set(ids)) == 20
        studies = [wait_final(client, study_id, timeout_s=600) for study_id in ids]
        assert client.get("/studies", params={"limit": 100}).json()["count"] == 20
    for study in studies:
        assert study["status"] == "SUCCEEDED", study["status_reason"]
        assert study["trial_counts"]["COMPLETE"] == 1  # run once: none lost, none doubled
        statuses = [h["status"] for h in study["history"]]
        # Started once; a driver that died under load may be resumed, never run side by side.
        resumed = ["QUEUED"] + ["RUNNING", "RESUMING"] * (study["attempts"] - 1)
        assert statuses == [*resumed, "RUNNING", "SUCCEEDED"], study["history"]
    assert sum(s["attempts"] for s in studies) <= 22, [s["history"] for s in studies]
