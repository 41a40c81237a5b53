"""The spec's ``scheduler`` as a Ray Tune trial scheduler: early stopping, or pausing ones."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from ray.tune.experiment import Trial
from ray.tune.schedulers import (
    ASHAScheduler,
    FIFOScheduler,
    HyperBandForBOHB,
    HyperBandScheduler,
    MedianStoppingRule,
    TrialScheduler,
)

from search_spaces.spec import StudySpec
from workers.population import ExploitSink, make_pbt


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


def make_scheduler(spec: StudySpec, sink: ExploitSink | None = None) -> TrialScheduler:
    """The spec's ``scheduler`` as a Ray Tune scheduler on the stopping metric
    (``scheduler.metric``, else the single objective), per epoch (``SCHEDULERS``); ``sink``
    hears of PBT's and PB2's exploit steps."""
    settings = spec.scheduler
    if settings.type == "none":
        return FIFOScheduler()
    goal = spec.stopping_goal()
    mode = "max" if goal.direction == "maximize" else "min"
    return SCHEDULERS[settings.type](spec, goal.metric, mode, sink)


def _async_hyperband(spec: StudySpec, metric: str, mode: str, _: Any) -> TrialScheduler:
    """ASHA (one bracket) or Hyperband run asynchronously: ASHA over several brackets of grace
    periods. Neither pauses a trial: a trial below its rung stops (PRUNED)."""
    settings = spec.scheduler
    max_epochs = spec.max_epochs()
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


def _median(spec: StudySpec, metric: str, mode: str, _: Any) -> TrialScheduler:
    """Stops a trial below the median of the others' running averages at the same epoch."""
    return MedianStoppingRule(
        time_attr="training_iteration",
        metric=metric,
        mode=mode,
        grace_period=spec.scheduler.grace_period,
        min_samples_required=spec.scheduler.min_samples_required,
    )


class _StopsFinishedBrackets:
    """Ray's synchronous Hyperband can leave a trial paused for good (a race between a trial
    reaching its rung and its bracket's other trials ending on their own): the study would
    hang with nothing running. A finished bracket stops its paused trials; and when nothing
    runs or waits to run, a paused trial is resumed, so the study always goes on."""

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        bracket, _ = self._trial_info[trial]  # type: ignore[attr-defined]
        super().on_trial_remove(tune_controller, trial)  # type: ignore[misc]
        if bracket.finished():
            bracket.cleanup_full(tune_controller)

    def choose_trial_to_run(self, tune_controller: Any, *args: Any, **kwargs: Any) -> Any:
        chosen = super().choose_trial_to_run(tune_controller, *args, **kwargs)  # type: ignore[misc]
        if chosen is not None:
            return chosen
        trials = tune_controller.get_trials()
        if any(t.status in (Trial.RUNNING, Trial.PENDING) for t in trials):
            return None
        return next((t for t in trials if t.status == Trial.PAUSED), None)


class SyncHyperBand(_StopsFinishedBrackets, HyperBandScheduler):
    """Ray Tune's ``HyperBandScheduler`` (see ``_StopsFinishedBrackets``)."""


class SyncBOHB(_StopsFinishedBrackets, HyperBandForBOHB):
    """Ray Tune's ``HyperBandForBOHB`` (see ``_StopsFinishedBrackets``)."""


def _hyperband_sync(spec: StudySpec, metric: str, mode: str, _: Any) -> TrialScheduler:
    """Synchronous Hyperband: trials pause at each rung until its bracket has reported there;
    the promoted ones resume from their checkpoints, the others stop (PRUNED). ``bohb`` is its
    BOHB variant (Tune's ``HyperBandForBOHB``), the configurations from the study's sampler
    (TPE by default)."""
    kind = SyncBOHB if spec.scheduler.type == "bohb" else SyncHyperBand
    return kind(
        time_attr="training_iteration",
        metric=metric,
        mode=mode,
        max_t=spec.max_epochs(),
        reduction_factor=spec.scheduler.reduction_factor,
    )


Builder = Callable[[StudySpec, str, str, "ExploitSink | None"], TrialScheduler]
SCHEDULERS: dict[str, Builder] = {
    "asha": _async_hyperband,
    "hyperband": _async_hyperband,
    "median": _median,
    "hyperband_sync": _hyperband_sync,
    "bohb": _hyperband_sync,
    "pbt": make_pbt,
    "pb2": make_pbt,
}
