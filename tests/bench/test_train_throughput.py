"""The training-throughput benchmark runs end to end in quick mode (so the script cannot rot)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from service.local_server import REPO

pytestmark = pytest.mark.slow


def test_quick_run_writes_both_throughputs(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "bench/train_throughput.py", "--quick", "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "train_throughput_quick.json").read_text())
    assert report["quick"] is True
    for loop in ("ours", "hf_trainer"):
        assert report[loop]["samples_per_s"] > 0
        assert report[loop]["tokens_per_s"] > report[loop]["samples_per_s"]
        assert 0.0 <= report[loop]["eval_accuracy"] <= 1.0
        assert len(report[loop]["runs"]) == report["settings"]["repeats"]
    assert report["ratio_ours_over_hf"] > 0
    assert "ours / HF Trainer" in done.stdout
