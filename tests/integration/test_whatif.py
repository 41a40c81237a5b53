"""``POST /studies/{id}/whatif`` and ``hpo whatif`` on real toy studies of the shared server: the
replay through Ray Tune's ASHA equals the rule written out here, ``none`` saves nothing, the
median rule answers consistently, and every 4xx."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from service.app import create_app
from service.auth.keys import KeyStore
from service.cli import app as cli
from service.db import make_engine, upgrade_tables
from service.local_server import Server
from service.settings import Settings
from tests.conftest import submit, toy_spec, trials_of, wait_final
from tests.service.test_api import IN_PROCESS_HOSTS, SPEC, RecordingDispatcher

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EPOCHS = 4


@pytest.fixture(scope="module")
def study(api: httpx.Client) -> str:
    """8 trials of 4 epochs, one at a time, no early stopping."""
    spec = toy_spec(
        "whatif", n_trials=8, epochs=EPOCHS, budget={"n_trials": 8, "max_concurrent_trials": 1}
    )
    found = wait_final(api, submit(api, spec), timeout_s=300)
    assert found["status"] == "SUCCEEDED", found["status_reason"]
    return str(found["id"])


def whatif(api: httpx.Client, study_id: str, scheduler: dict[str, Any]) -> httpx.Response:
    return api.post(f"/studies/{study_id}/whatif", json={"scheduler": scheduler}, timeout=180)


def asha_by_hand(curves: list[tuple[int, list[float]]], grace: int, rf: float) -> dict[str, Any]:
    """ASHA's rule (Ray's ``_Bracket``) on curves in start order, maximising: at each rung
    ``grace * rf**k`` below the last epoch a trial is stopped if its value is below the
    ``1 - 1/rf`` percentile of the values recorded at that rung before it (its own is recorded
    either way)."""
    rungs: dict[float, list[float]] = {}
    milestones = []
    while grace * rf ** len(milestones) < EPOCHS:
        milestones.append(grace * rf ** len(milestones))
    stopped, run = [], 0
    for number, curve in curves:
        for epoch, value in enumerate(curve, start=1):
            run += 1
            if epoch not in milestones:
                continue
            seen = rungs.setdefault(epoch, [])
            cutoff = np.nanpercentile(seen, (1 - 1 / rf) * 100) if seen else None
            seen.append(value)
            if cutoff is not None and value < cutoff:
                if epoch < len(curve):
                    stopped.append(number)
                break
    return {"stopped_trials": sorted(stopped), "epochs_run": run}


@pytest.mark.parametrize("rf", [2, 3])
def test_asha_equals_its_rule_replayed_by_hand(api: httpx.Client, study: str, rf: int) -> None:
    trials = sorted(trials_of(api, study), key=lambda t: (t["datetime_start"], t["number"]))
    curves = [
        (t["number"], [t["intermediate_values"][str(e)] for e in range(1, EPOCHS + 1)])
        for t in trials
    ]
    expected = asha_by_hand(curves, grace=1, rf=rf)
    response = whatif(api, study, {"type": "asha", "grace_period": 1, "reduction_factor": rf})
    assert response.status_code == 200, response.text
    got = response.json()
    assert got["stopped_trials"] == expected["stopped_trials"]
    assert got["stopped_trials"], "this seed's trials should give ASHA something to stop"
    assert got["epochs_run"] == expected["epochs_run"]
    assert got["epochs_study"] == 8 * EPOCHS
    assert got["compute_saved_fraction"] == pytest.approx(1 - expected["epochs_run"] / 32)
    kept = {n: c[-1] for n, c in curves if n not in expected["stopped_trials"]}
    best = max(kept, key=lambda n: (kept[n], -n))
    assert (got["best_trial"], got["best_value"]) == (best, pytest.approx(kept[best]))
    study_best = api.get(f"/studies/{study}/best").json()
    assert got["study_best_trial"] == study_best["number"]
    assert got["best_kept"] == (study_best["number"] not in expected["stopped_trials"])
    assert got["scheduler"]["reduction_factor"] == rf and got["metric"] == "eval_accuracy"


def test_no_scheduler_saves_nothing(api: httpx.Client, study: str) -> None:
    got = whatif(api, study, {"type": "none"}).json()
    best = api.get(f"/studies/{study}/best").json()
    assert got["stopped_trials"] == [] and got["compute_saved_fraction"] == 0.0
    assert got["epochs_run"] == got["epochs_study"] == 8 * EPOCHS and got["trials"] == 8
    assert got["best_kept"] is True
    assert got["best_value"] == got["study_best_value"] == pytest.approx(best["value"])
    assert got["best_trial"] == best["number"]


def test_median_rule_on_the_loss_answers_consistently(api: httpx.Client, study: str) -> None:
    scheduler = {"type": "median", "grace_period": 1, "min_samples_required": 2}
    got = whatif(api, study, {**scheduler, "metric": "eval_loss"}).json()
    assert (got["metric"], got["direction"]) == ("eval_loss", "minimize")
    assert got["scheduler"]["type"] == "median"
    assert got["epochs_run"] <= got["epochs_study"] == 8 * EPOCHS
    assert got["epochs_run"] <= 8 * EPOCHS - len(got["stopped_trials"])
    assert got["compute_saved_fraction"] == pytest.approx(1 - got["epochs_run"] / 32)
    assert set(got["stopped_trials"]) <= set(range(8))
    assert got["best_kept"] == (got["study_best_trial"] not in got["stopped_trials"])


def test_bad_settings_are_422_naming_the_field(api: httpx.Client, study: str) -> None:
    too_late = whatif(api, study, {"type": "asha", "grace_period": EPOCHS})
    assert too_late.status_code == 422
    [problem] = too_late.json()["detail"]
    assert (
        problem["loc"] == ["scheduler", "grace_period"] and "below the epochs" in problem["reason"]
    )
    unknown = whatif(api, study, {"type": "asha", "grace": 1})
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == [
        "scheduler",
        "grace",
    ]
    bad_type = whatif(api, study, {"type": "sha"})
    assert bad_type.json()["detail"][0]["field"] == "scheduler.type"
    pausing = whatif(api, study, {"type": "pbt"})
    assert pausing.status_code == 422
    assert pausing.json()["detail"][0]["field"] == "scheduler.type"
    assert "cannot replay" in pausing.json()["detail"][0]["reason"]
    assert api.post(f"/studies/{study}/whatif", json={}).status_code == 422  # no scheduler


def test_running_and_one_epoch_studies_are_409_unknown_404(api: httpx.Client) -> None:
    one_epoch = submit(api, toy_spec("whatif-one-epoch", n_trials=2, epochs=1))
    running = submit(api, toy_spec("whatif-running", n_trials=4, epochs=100))
    asha = {"type": "asha"}
    assert wait_final(api, one_epoch, timeout_s=300)["status"] == "SUCCEEDED"
    deadline = time.monotonic() + 120
    while not any(len(t["intermediate_values"]) >= 2 for t in trials_of(api, running)):
        assert time.monotonic() < deadline, "the long study reported no two epochs in time"
        time.sleep(0.2)
    busy = whatif(api, running, asha)
    assert busy.status_code == 409 and "RUNNING" in busy.json()["detail"]
    assert api.post(f"/studies/{running}/cancel").status_code == 200
    short = whatif(api, one_epoch, asha)
    assert short.status_code == 409 and "at most 1 epoch" in short.json()["detail"]
    missing = whatif(api, "0" * 32, asha)
    assert missing.status_code == 404 and "not found" in missing.json()["detail"]
    # A cancelled study is final: its failed trial's recorded epochs replay, no trial completed.
    assert wait_final(api, running, timeout_s=120)["status"] == "CANCELLED"
    cancelled = whatif(api, running, {"type": "none"}).json()
    assert cancelled["epochs_study"] >= 2 and cancelled["stopped_trials"] == []
    if not any(t["state"] == "COMPLETE" for t in trials_of(api, running)):
        assert cancelled["best_kept"] is None and cancelled["best_trial"] is None


@pytest.fixture
def tenants(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, dict[str, str]]]]:
    """The in-process app with keys for tenants a and b (Ray stood in for)."""
    settings = Settings(
        allowed_hosts=IN_PROCESS_HOSTS,
        database_url=f"sqlite:///{tmp_path / 'tenants.db'}",
        state_dir=tmp_path / "state",
        auth="enabled",
    )
    engine = make_engine(settings.database_url)
    upgrade_tables(engine)
    store = KeyStore(engine)
    keys = {who: {"Authorization": f"Bearer {store.create(who).secret}"} for who in "ab"}
    with TestClient(create_app(settings, dispatcher=RecordingDispatcher())) as client:
        yield client, keys


def test_another_tenants_study_is_404(tenants: tuple[TestClient, dict[str, Any]]) -> None:
    client, keys = tenants
    created = client.post("/studies", json=SPEC, headers=keys["a"])
    study_id = created.json()["id"]
    url = f"/studies/{study_id}/whatif"
    other = client.post(url, json={"scheduler": {"type": "asha"}}, headers=keys["b"])
    assert other.status_code == 404 and other.json()["detail"] == f"study {study_id!r} not found"
    own = client.post(url, json={"scheduler": {"type": "asha"}}, headers=keys["a"])
    assert own.status_code == 409  # queued or running: its own tenant learns why


def test_cli_prints_the_answer_and_one_line_errors(server: Server, study: str) -> None:
    runner = CliRunner()
    args = ["whatif", study, "--scheduler", "asha", "--url", server.url]
    result = runner.invoke(cli, [*args, "--grace-period", "1", "--reduction-factor", "2"])
    assert result.exit_code == 0, result.output
    assert "asha (grace_period 1, reduction_factor 2.0)" in result.stdout
    assert "stopped early:" in result.stdout and "of the study's 32" in result.stdout
    assert "saved)" in result.stdout and "best it would have found: #" in result.stdout
    bad = runner.invoke(cli, [*args, "--grace-period", "4"])
    assert bad.exit_code == 1
    assert bad.output.strip().count("\n") == 0 and "scheduler.grace_period" in bad.output
