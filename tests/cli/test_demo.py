"""``hpo demo`` end to end: its own server (SQLite in the working directory, a local Ray), a
study run to the end, the best trial shown, and the server stopped afterwards."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from service.local_server import REPO
from service.ray_head import free_port
from tests.conftest import toy_spec

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_demo_runs_a_study_and_shows_the_best_trial(tmp_path: Path) -> None:
    spec = tmp_path / "toy.yaml"
    spec.write_text(yaml.safe_dump(toy_spec("demo-toy", n_trials=2)))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HPO_", "RAY_ADDRESS"))}
    env.update(HPO_RAY_NUM_CPUS="2", PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "demo", "--port", str(port), "--spec", str(spec)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"starting the service on http://127.0.0.1:{port}" in done.stdout
    assert "SUCCEEDED: 2/2 trials done" in done.stdout
    assert "best trial #" in done.stdout and '"learning_rate"' in done.stdout
    assert (tmp_path / "hpo.db").stat().st_size > 0  # the embedded default: SQLite in the cwd
    with socket.socket() as probe:  # the demo stopped its server
        assert probe.connect_ex(("127.0.0.1", port)) != 0
