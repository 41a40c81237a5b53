"""Early-stopping schedulers: the spec's ``scheduler`` as a Ray Tune trial scheduler."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, MedianStoppingRule, TrialScheduler

from search_spaces.spec import StudySpec


class SeededHyperBand(ASHAScheduler):
    """Ray's asynchronous HyperBand, drawing each trial's bracket from its own generator.

    Ray draws from NumPy's global state, so which trials may be stopped early changed from run
    to run; seeded here by the study's seed, the same trials land in the same brackets.
    """

    def __init__(self, seed: int | None, **settings: Any) -> None:
        super().__init__(**settings)
        self._bracket_rng = np.random.default_rng(seed)

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        super().on_trial_add(tune_controller, trial)  # validates the metric and mode
        sizes = np.array([len(bracket._rungs) for bracket in self._brackets])
        weights = np.exp(sizes - sizes.max())  # Ray's softmax: most rungs, most trials
        index = self._bracket_rng.choice(len(self._brackets), p=weights / weights.sum())
        self._trial_info[trial.trial_id] = self._brackets[index]


def make_scheduler(spec: StudySpec) -> TrialScheduler:
    """ASHA, HyperBand or the median rule on the stopping metric (``scheduler.metric``, else
    the single objective), per epoch; else FIFO."""
    settings = spec.scheduler
    if settings.type == "none":
        return FIFOScheduler()
    goal = spec.stopping_goal()
    metric = goal.metric
    mode = "max" if goal.direction == "maximize" else "min"
    max_epochs = spec.max_epochs()
    if settings.type in ("asha", "hyperband"):
        # Hyperband runs asynchronously: ASHA over several brackets of grace periods. Tune's
        # synchronous HyperBandScheduler pauses trials, which needs trial checkpoints to resume.
        brackets = 1
        if settings.type == "hyperband":
            ratio = max_epochs / settings.grace_period
            brackets = max(1, int(math.log(ratio, settings.reduction_factor) + 1e-9) + 1)
        return SeededHyperBand(
            seed=spec.algorithm_settings.get("seed"),
            time_attr="training_iteration",
            metric=metric,
            mode=mode,
            max_t=max_epochs,
            grace_period=settings.grace_period,
            reduction_factor=settings.reduction_factor,
            brackets=brackets,
        )
    return MedianStoppingRule(
        time_attr="training_iteration",
        metric=metric,
        mode=mode,
        grace_period=settings.grace_period,
        min_samples_required=settings.min_samples_required,
    )
