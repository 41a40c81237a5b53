"""Ray Tune writes per-trial TensorBoard logs into the study's results directory."""

from __future__ import annotations

import json

import pytest

from service.client import Client
from service.local_server import Server
from tests.conftest import toy_spec

pytestmark = pytest.mark.integration


def test_every_trial_has_tensorboard_events_with_its_metrics(server: Server) -> None:
    with Client(server.url) as client:
        study = client.submit(json.dumps(toy_spec("tensorboard", n_trials=2, epochs=3)))
        assert client.wait(study.id, timeout_s=600).status == "SUCCEEDED"
    experiments = server.state_dir / "ray_results"
    files = sorted(experiments.glob(f"study-{study.id}-attempt-*/*/events.out.tfevents.*"))
    assert len(files) == 2
    for path in files:
        records = path.read_bytes()
        assert b"ray/tune/eval_accuracy" in records and b"ray/tune/eval_loss" in records
