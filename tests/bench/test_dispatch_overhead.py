"""The dispatch-overhead benchmark in quick mode (own server, bare Ray), so it cannot rot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.local_server import REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.timeout(180)
def test_quick_run_writes_both_wall_times_and_the_ratio(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run(
        [sys.executable, "bench/dispatch_overhead.py", "--quick", "--out", str(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=170,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    report = json.loads((tmp_path / "dispatch_overhead_quick.json").read_text())
    sleep = report["results"]["sleep"]
    n = sleep["n_trials"]
    assert n == 3 and "ddp" not in report["results"]
    for path in ("ours", "bare"):
        figures = sleep[path]
        assert figures["trials_finished"] == n
        assert figures["wall_s"] > n * 1.0
        assert figures["trial_phase_s"] > n * 1.0
        assert figures["startup_s"] > 0
    assert sleep["ratio"] == pytest.approx(sleep["ours"]["wall_s"] / sleep["bare"]["wall_s"])
    assert sleep["ratio_trial_phase"] > 0
    assert "ratio ours/bare" in done.stdout
