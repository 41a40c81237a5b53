"""The efficiency benchmark runs end to end in quick mode (so the script cannot rot)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from service.local_server import REPO

pytestmark = pytest.mark.slow


def test_quick_run_writes_the_table_and_the_front(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "bench/efficiency.py", "--quick", "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "efficiency_quick.json").read_text())
    rows = report["variants"]
    assert set(rows) == {"full", "lora", "full+dynamic_int8", "lora+dynamic_int8",
                         "full+prune_l1_50"}  # fmt: skip
    assert rows["lora"]["trainable_parameter_count"] < rows["full"]["trainable_parameter_count"]
    assert rows["lora"]["checkpoint_bytes"] < rows["full"]["checkpoint_bytes"]
    int8 = rows["full+dynamic_int8"]
    assert int8["compressed_model_bytes"] < int8["model_bytes"] == rows["full"]["model_bytes"]
    assert report["pareto_accuracy_latency"] and set(report["pareto_accuracy_latency"]) <= set(rows)
    assert (tmp_path / "efficiency_quick.png").stat().st_size > 10_000
    assert "| variant | accuracy (deployed) |" in done.stdout
