"""Metric constraints as an Optuna ``constraints_func`` (picklable: Tune saves the sampler)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

UNMEASURED = 1e9  # a trial without the metric counts as infeasible


class MetricConstraints:
    """``[{metric, max?, min?}]`` → one value per bound; ≤ 0 means satisfied (Optuna's rule)."""

    def __init__(self, bounds: Sequence[tuple[str, float | None, float | None]]) -> None:
        self._bounds = list(bounds)

    def __call__(self, trial: Any) -> list[float]:
        metrics = trial.user_attrs.get("metrics", {})
        values: list[float] = []
        for metric, upper, lower in self._bounds:
            measured = metrics.get(metric)
            if upper is not None:
                values.append(UNMEASURED if measured is None else measured - upper)
            if lower is not None:
                values.append(UNMEASURED if measured is None else lower - measured)
        return values
