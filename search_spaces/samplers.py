"""Sampler adjustments needed when Optuna samplers run under Ray Tune's ask/tell loop."""

from __future__ import annotations

import threading
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


class PicklableNSGAIISampler(optuna.samplers.NSGAIISampler):
    """NSGA-II that Tune can pickle (the Tuner pickles its search algorithm when it starts).

    Optuna 5.1's genetic samplers hold a ``threading.Lock`` (``_thread_lock``), which cannot be
    pickled: it is left out of the pickle and made anew when unpickled.
    """

    def __getstate__(self) -> dict[str, object]:
        state = self.__dict__.copy()
        if "_thread_lock" in state:
            state["_thread_lock"] = None
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        if "_thread_lock" in state:
            state = {**state, "_thread_lock": threading.Lock()}
        self.__dict__.update(state)
