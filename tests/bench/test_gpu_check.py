"""The GPU check's dry run: the same script and service path on the CPU with the tiny BERT."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.local_server import REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_dry_run_study_succeeds_with_throughput(tmp_path: Path) -> None:
    env = {**os.environ, "GPU_CHECK_PYTHON": sys.executable}
    env.pop("RAY_ADDRESS", None)
    done = subprocess.run(
        ["bash", "bench/gpu_check.sh", "--dry-run", "--out", str(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    report = json.loads((tmp_path / "gpu_check_dry_run.json").read_text())
    assert report["dry_run"] is True
    assert report["study"]["status"] == "SUCCEEDED"
    assert report["model"] == "tiny-bert"
    assert [t["state"] for t in report["trials"]] == ["COMPLETE"] * report["settings"]["trials"]
    throughput = report["throughput"]
    assert throughput["aggregate_samples_per_s"] > 0
    assert throughput["aggregate_tokens_per_s"] > throughput["aggregate_samples_per_s"]
    assert 0 < throughput["mfu_aggregate"] < 1
    assert report["workload"]["params"] > 0
    assert report["gpu_memory"] == {}  # no GPU queries in a dry run
    assert "4/4 done" in done.stdout
