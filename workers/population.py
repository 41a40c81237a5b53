"""Population based training (Ray Tune's PBT and PB2) over the study's search space, with
each exploit step recorded as the trial's lineage."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ray import tune
from ray.tune.experiment import Trial
from ray.tune.schedulers import PopulationBasedTraining

from search_spaces.params import CategoricalParam, FloatParam, IntParam
from search_spaces.pausing import explored_names
from search_spaces.spec import StudySpec
from search_spaces.tunables import RESUME_FROM_KEY, TRIAL_NUMBER_KEY

# Called after every exploit with (trial id, source trial id, epoch of the copied checkpoint,
# the trial's new configuration).
ExploitSink = Callable[[str, str, int, dict[str, Any]], None]


def mutations(spec: StudySpec) -> dict[str, Any]:
    """Each explored parameter as PBT's resample distribution: its choices, or a Tune domain
    over its range (log-scaled when the parameter is)."""
    found: dict[str, Any] = {}
    for name in explored_names(spec):
        param = spec.search_space[name]
        if isinstance(param, CategoricalParam):
            found[name] = list(param.choices)
        elif isinstance(param, IntParam):
            high = int(param.high) + 1  # Tune's integer domains exclude the upper bound
            low = int(param.low)
            found[name] = tune.lograndint(low, high) if param.log else tune.randint(low, high)
        else:
            found[name] = (
                tune.loguniform(param.low, param.high)
                if param.log
                else tune.uniform(param.low, param.high)
            )
    return found


def bounds(spec: StudySpec) -> dict[str, list[float]]:
    """PB2's ranges: each explored (numeric) parameter's low and high."""
    found = {}
    for name in explored_names(spec):
        param = spec.search_space[name]
        assert isinstance(param, FloatParam | IntParam)  # pausing_problem rejects the others
        found[name] = [float(param.low), float(param.high)]
    return found


def within_space(spec: StudySpec) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """PBT's ``custom_explore_fn``: a perturbed value (x1.2 of the high bound, x0.8 of the
    low one) clipped into its range and onto its step, so every explored configuration is one
    of the search space."""

    def clip(config: dict[str, Any]) -> dict[str, Any]:
        config = dict(config)
        for name in explored_names(spec):
            param = spec.search_space[name]
            if isinstance(param, CategoricalParam) or name not in config:
                continue
            value = min(max(float(config[name]), float(param.low)), float(param.high))
            step = param.step
            if step:
                value = float(param.low) + round((value - float(param.low)) / step) * step
                value = min(value, float(param.high))
            config[name] = round(value) if isinstance(param, IntParam) else value
        return config

    return clip


class _Lineage:
    """Mixed into Tune's PBT and PB2: after the source's configuration is explored, the trial
    keeps its own Optuna trial number (Tune copies the source's whole configuration), and the
    exploit step goes to ``sink``."""

    def __init__(self, sink: ExploitSink | None = None, **settings: Any) -> None:
        super().__init__(**settings)
        self._sink = sink

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        # Tune refuses a search algorithm with PBT because explored configurations no longer
        # match the suggested ones; here the searcher only opens each member's Optuna trial
        # (the population's first configurations) and the lineage records what changed.
        super().on_trial_add(_WithoutSearcher(tune_controller), trial)  # type: ignore[misc]

    def _quantiles(self) -> tuple[list[Trial], list[Trial]]:
        # A trial that scores as well as the worst of the upper quantile (a tie: e.g. a copy
        # of the same weights) is not replaced: copying it would only repeat epochs.
        lower, upper = super()._quantiles()  # type: ignore[misc]
        if not upper:
            return lower, upper
        states = self._trial_state  # type: ignore[attr-defined]
        floor = min(states[t].last_score for t in upper)
        return [t for t in lower if states[t].last_score < floor], upper

    def _get_new_config(self, trial: Trial, trial_to_clone: Trial) -> tuple[dict, dict]:
        new_config, operations = super()._get_new_config(trial, trial_to_clone)  # type: ignore[misc]
        new_config = {k: v for k, v in new_config.items() if k != RESUME_FROM_KEY}
        if TRIAL_NUMBER_KEY in trial.config:
            new_config[TRIAL_NUMBER_KEY] = trial.config[TRIAL_NUMBER_KEY]
        if self._sink is not None:
            epoch = _last_epoch(self._trial_state[trial_to_clone].last_result)  # type: ignore[attr-defined]
            self._sink(trial.trial_id, trial_to_clone.trial_id, epoch, new_config)
        return new_config, operations


class _WithoutSearcher:
    """The Tune controller as PBT's ``on_trial_add`` checks it: without its search algorithm."""

    search_alg = None

    def __init__(self, controller: Any) -> None:
        self._controller = controller

    def __getattr__(self, name: str) -> Any:
        return getattr(self._controller, name)


def _last_epoch(result: dict[str, Any] | None) -> int:
    """The epoch of the result PBT recorded with the checkpoint it copies."""
    result = result or {}
    value = result.get("training_iteration", 0)
    return int(value) if isinstance(value, int | float) and math.isfinite(value) else 0


class LineagePBT(_Lineage, PopulationBasedTraining):
    """Tune's ``PopulationBasedTraining`` recording lineage (see ``_Lineage``)."""


def make_pbt(spec: StudySpec, metric: str, mode: str, sink: ExploitSink | None) -> Any:
    # PB2 is imported here: its module imports scikit-learn, which other studies never need.
    """PBT (``pbt``) or PB2 (``pb2``, Ray Tune's GP-bandit explore) on the stopping metric,
    perturbing every ``perturbation_interval`` epochs."""
    settings = spec.scheduler
    common: dict[str, Any] = {
        "time_attr": "training_iteration",
        "metric": metric,
        "mode": mode,
        "perturbation_interval": settings.perturbation_interval,
        "quantile_fraction": settings.quantile_fraction,
        "custom_explore_fn": within_space(spec),
        "log_config": False,
    }
    if settings.type == "pb2":
        from ray.tune.schedulers.pb2 import PB2

        class LineagePB2(_Lineage, PB2):
            """Tune's ``PB2`` recording lineage (see ``_Lineage``)."""

        return LineagePB2(sink=sink, hyperparam_bounds=bounds(spec), **common)
    return LineagePBT(
        sink=sink,
        hyperparam_mutations=mutations(spec),
        resample_probability=settings.resample_probability,
        **common,
    )
