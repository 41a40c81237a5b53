"""The built-in ``replay`` model: plays back a recorded learning curve, no network.

The trial's configuration names one point of the study's replay table
(``search_spaces.replay``); each epoch reports that point's recorded eval metrics, as a real
fine-tune of it did, through the same Tune reports and Optuna rows. Its ``device_seconds`` are
the recorded seconds summed so far, so cost queries and second budgets read as the real study's
would; wall time, CPU seconds and memory are this process's own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from search_spaces.replay import load_table
from workers.cost import CostMeter


def replay_metrics(table_name: str, hp: dict[str, Any]) -> list[dict[str, float]]:
    """Each epoch's report of ``hp``'s grid point: its recorded metrics, ``epoch`` and the
    recorded seconds so far as ``device_seconds``."""
    table = load_table(table_name)
    curve = table.curve(hp)
    reports, spent = [], 0.0
    for epoch, record in enumerate(curve[: int(hp["epochs"])], start=1):
        spent += record["seconds"]
        metrics = {k: v for k, v in record.items() if k != "seconds"}
        reports.append({**metrics, "epoch": float(epoch), "device_seconds": spent})
    return reports


def run_replay(
    table_name: str,
    hp: dict[str, Any],
    report: Callable[[dict[str, Any]], None],
    started_at: float | None = None,
) -> dict[str, Any]:
    """Report the recorded curve of ``hp``'s grid point, one epoch at a time."""
    meter = CostMeter("cpu", started_at=started_at)
    metrics: dict[str, Any] = {}
    for recorded in replay_metrics(table_name, hp):
        metrics = {**meter.report(), **recorded}
        report(dict(metrics))
    return metrics
