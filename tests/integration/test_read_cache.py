"""/best on the real server while a study runs: it lags a completed trial by at most the read
cache's ttl (HPO_READ_CACHE_S, 1 s by default), and is exact once the study has finished."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx

from tests.conftest import submit, toy_spec, trials_of

TTL_S = 1.0
SLACK_S = 1.0  # the trial's own clock stamp, the request's time on the wire


def test_best_lags_at_most_the_ttl_and_is_exact_at_the_end(api: httpx.Client) -> None:
    # Each trial better than the one before (the toy objective peaks at lr 1e-3), one at a
    # time and at least a second long (20 epochs of 0.05 s): every completion changes the best
    # trial, and each best stays long enough for a reader to see it through a 1 s cache.
    points = [{"learning_rate": lr, "weight_decay": 0.01} for lr in (1e-5, 3e-5, 1e-4, 3e-4, 1e-3)]
    spec = toy_spec("read-cache", n_trials=len(points), epochs=20, points_to_evaluate=points)
    spec["budget"]["max_concurrent_trials"] = 1
    study_id = submit(api, spec)
    seen: list[tuple[datetime, float]] = []
    while True:
        asked = datetime.now(UTC)
        status = api.get(f"/studies/{study_id}").json()["status"]
        best = api.get(f"/studies/{study_id}/best")
        if best.status_code == 200:
            seen.append((asked, best.json()["value"]))
        else:
            assert best.status_code == 404, best.text
        if status in ("SUCCEEDED", "FAILED", "CANCELLED"):
            break
        time.sleep(0.05)
    assert status == "SUCCEEDED"
    trials = [t for t in trials_of(api, study_id) if t["state"] == "COMPLETE"]
    final = api.get(f"/studies/{study_id}/best").json()
    assert final["value"] == max(t["value"] for t in trials)  # exact once finished
    assert len({value for _, value in seen}) >= 3  # the answer followed the study
    for asked, value in seen:
        settled = asked - timedelta(seconds=TTL_S + SLACK_S)
        done_before = [
            t["value"] for t in trials if datetime.fromisoformat(t["datetime_complete"]) < settled
        ]
        assert value >= max(done_before, default=value), (asked, value, done_before)
