"""The spec's scheduler maps to the Ray Tune scheduler with its settings."""

from __future__ import annotations

import pytest
from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, MedianStoppingRule

from search_spaces.spec import validate_spec
from workers.schedulers import make_scheduler


def _spec(scheduler: dict[str, object]) -> object:
    return validate_spec(
        {
            "name": "s",
            "task": {"epochs": 8},
            "scheduler": scheduler,
            "search_space": {"learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2}},
        }
    )


@pytest.mark.parametrize(
    ("scheduler", "kind", "brackets"),
    [
        ({"type": "none"}, FIFOScheduler, None),
        ({"type": "asha", "reduction_factor": 2}, AsyncHyperBandScheduler, 1),
        ({"type": "hyperband", "reduction_factor": 2}, AsyncHyperBandScheduler, 4),  # 8 = 2^3
        ({"type": "median", "grace_period": 2}, MedianStoppingRule, None),
    ],
)
def test_scheduler_mapping(scheduler: dict[str, object], kind: type, brackets: int | None) -> None:
    made = make_scheduler(_spec(scheduler))  # type: ignore[arg-type]
    assert isinstance(made, kind)
    if brackets is not None:
        assert len(made._brackets) == brackets  # type: ignore[attr-defined]
        assert made._max_t == 8  # type: ignore[attr-defined]
