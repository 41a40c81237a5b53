"""Sampler adjustments needed when Optuna samplers run under Ray Tune's ask/tell loop."""

from __future__ import annotations

from collections.abc import Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState


class NonStoppingGridSampler(optuna.samplers.GridSampler):
    """A GridSampler that does not call ``study.stop()`` when the grid is exhausted.

    ``study.stop()`` only works inside ``study.optimize``; under Tune's ask/tell it raises. The
    trial budget (``n_trials`` ≤ grid size, checked at submit time) ends the study instead.
    """

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        return None
