"""Early-stopping schedulers: the spec's ``scheduler`` as a Ray Tune trial scheduler."""

from __future__ import annotations

import math

from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, MedianStoppingRule, TrialScheduler

from search_spaces.spec import StudySpec


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
        return ASHAScheduler(
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
