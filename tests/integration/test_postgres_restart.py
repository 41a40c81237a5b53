"""A PostgreSQL restart mid-study: the service and the study driver reconnect, the study
finishes with exactly its trials, nothing lost or counted twice.

It restarts the machine's own PostgreSQL cluster (``pg_ctlcluster … restart``), so it runs
alone, with its own server on a fresh database; the servers of other tests reconnect as well.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from service.local_server import (
    fresh_postgres_database,
    restart_postgres,
    start_server,
    stop_server,
)
from tests.conftest import toy_spec, wait_final

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.slow]


def test_a_study_survives_a_postgres_restart(tmp_path: Path) -> None:
    n_trials = 6
    with fresh_postgres_database() as url:
        server = start_server(tmp_path / "server", url, {"HPO_TOY_EPOCH_SECONDS": "0.5"})
        try:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                spec = toy_spec(
                    "pg-restart",
                    n_trials=n_trials,
                    epochs=4,
                    budget={"n_trials": n_trials, "max_concurrent_trials": 2},
                )
                response = client.post("/studies", json=spec)
                assert response.status_code == 201, response.text
                study_id = response.json()["id"]

                def some_complete() -> bool:
                    counts = client.get(f"/studies/{study_id}").json()["trial_counts"]
                    return 1 <= counts["COMPLETE"] < n_trials

                deadline = time.monotonic() + 300
                while not some_complete():
                    assert time.monotonic() < deadline, client.get(f"/studies/{study_id}").text
                    time.sleep(0.2)
                # Readers during the restart get an answer or a 503 to retry, never a 500.
                restart = threading.Thread(target=restart_postgres)
                restart.start()
                codes = set()
                while restart.is_alive():
                    codes.add(client.get(f"/studies/{study_id}").status_code)
                    time.sleep(0.05)
                restart.join()
                assert codes <= {200, 503}, codes
                study = wait_final(client, study_id, timeout_s=600)
                assert study["status"] == "SUCCEEDED", study["status_reason"]
                trials = client.get(f"/studies/{study_id}/trials").json()["data"]
                assert client.get("/healthz").json()["database"] is True
        finally:
            stop_server(server)
    assert sorted(t["number"] for t in trials) == list(range(n_trials))
    assert [t["state"] for t in trials] == ["COMPLETE"] * n_trials, trials
    assert study["trial_counts"] == {**study["trial_counts"], "COMPLETE": n_trials}
    assert all(sorted(map(int, t["intermediate_values"])) == [1, 2, 3, 4] for t in trials)
    configs = [tuple(sorted(t["params"].items())) for t in trials]
    assert len(set(configs)) == n_trials  # no configuration run (and counted) twice
