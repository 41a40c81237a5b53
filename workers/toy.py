"""The built-in ``toy`` model: an analytic objective of the hyperparameters, no network.

It reports the same metrics as a classification fine-tune, once per epoch, so tests and demos of
search algorithms, schedulers and the study lifecycle run in seconds. ``HPO_TOY_EPOCH_SECONDS``
(default 0.05) is how long each of its epochs takes. Its reports also hold the measured cost
that makes sense without a model (``workers.cost``: wall time, time to first result, CPU
seconds, peak RSS and the estimated or measured energy).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from typing import Any

from workers.cost import CostMeter

EPOCH_SECONDS_ENV = "HPO_TOY_EPOCH_SECONDS"


def toy_metrics(hp: dict[str, Any], epoch: int) -> dict[str, float]:
    """Deterministic metrics after ``epoch``: best near lr=1e-3, weight_decay=0.01, adamw and
    small batches, while throughput grows with the batch size (two conflicting objectives)."""
    distance = abs(math.log10(hp["learning_rate"]) + 3.0)
    quality = 1.0 / (1.0 + distance**2) - 0.5 * abs(hp["weight_decay"] - 0.01)
    quality -= 0.05 * hp["dropout"] + (0.1 if hp["optimizer"] == "sgd" else 0.0)
    quality -= 0.002 * hp["batch_size"] + 0.02 * hp["momentum"] * (hp["optimizer"] == "sgd")
    progress = 1.0 - 0.5 ** (epoch / 2.0)
    accuracy = 0.5 + 0.49 * max(0.0, min(1.0, quality)) * progress
    loss = -math.log(max(accuracy, 1e-6))
    return {
        "eval_accuracy": accuracy,
        "eval_f1": accuracy * 0.98,
        "eval_mcc": 2 * accuracy - 1,  # of a balanced binary task
        "eval_loss": loss,
        "train_loss": loss * 0.9,
        "train_samples_per_second": 100.0 * math.sqrt(hp["batch_size"]),
        "epoch": float(epoch),
    }


def run_toy(
    hp: dict[str, Any],
    report: Callable[[dict[str, Any]], None],
    started_at: float | None = None,
) -> dict[str, Any]:
    """Report the toy metrics and the trial's cost once per epoch, sleeping between epochs
    (``started_at``: when the trial started, ``time.time()``; default now)."""
    seconds = float(os.environ.get(EPOCH_SECONDS_ENV, "0.05"))
    meter = CostMeter("cpu", started_at=started_at)
    metrics: dict[str, Any] = {}
    for epoch in range(1, int(hp["epochs"]) + 1):
        time.sleep(seconds)
        metrics = {**toy_metrics(hp, epoch), **meter.report()}
        report(dict(metrics))
    return metrics
