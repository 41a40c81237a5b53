"""The one table that maps an algorithm name to its settings and an Optuna sampler factory.

Settings are validated at submit time (``StudySpec``); samplers are built lazily on the cluster
(``make_sampler``) so the service never pays for importing sampler dependencies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    import optuna

    from search_spaces.constraints import MetricConstraints


class RandomSettings(BaseModel):
    """Uniform random sampling."""

    model_config = ConfigDict(extra="forbid")
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)


class GridSettings(RandomSettings):
    """Exhaustive grid; ``seed`` shuffles the visiting order."""


class QMCSettings(RandomSettings):
    """Quasi-Monte Carlo (low-discrepancy) sampling."""

    qmc_type: str = Field(default="sobol", pattern="^(sobol|halton)$")
    scramble: bool = True


class TPESettings(RandomSettings):
    """Tree-structured Parzen estimator (Bayesian)."""

    n_startup_trials: int = Field(default=10, ge=0, le=100_000)
    n_ei_candidates: int = Field(default=24, ge=1, le=10_000)
    multivariate: bool = False
    group: bool = False
    constant_liar: bool = Field(
        default=False, description="Penalise running trials: use with concurrent trials."
    )


class GPSettings(RandomSettings):
    """Gaussian-process Bayesian optimisation."""

    n_startup_trials: int = Field(default=10, ge=0, le=100_000)
    deterministic_objective: bool = False


class CmaEsSettings(RandomSettings):
    """Covariance matrix adaptation evolution strategy (continuous and integer parameters)."""

    n_startup_trials: int = Field(default=1, ge=0, le=100_000)
    sigma0: float | None = Field(default=None, gt=0)
    restart_strategy: str | None = Field(default=None, pattern="^(ipop|bipop)$")
    popsize: int | None = Field(default=None, ge=2, le=10_000)


class NSGA2Settings(RandomSettings):
    """NSGA-II genetic algorithm (multi-objective)."""

    population_size: int = Field(default=50, ge=2, le=100_000)
    mutation_prob: float | None = Field(default=None, ge=0, le=1)
    crossover_prob: float = Field(default=0.9, ge=0, le=1)
    swapping_prob: float = Field(default=0.5, ge=0, le=1)


Factory = Callable[..., "optuna.samplers.BaseSampler"]
# The grid's values per parameter, built only when called: by the grid algorithm alone (a
# random study over discrete parameters must not pay for, or hold, their grid).
GridSource = Callable[[], dict[str, list[Any]]]


def _random(s: RandomSettings, **_: Any) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.RandomSampler(seed=s.seed)


def _grid(s: GridSettings, grid: GridSource, **_: Any) -> optuna.samplers.BaseSampler:
    from search_spaces.samplers import NonStoppingGridSampler

    return NonStoppingGridSampler(grid(), seed=s.seed)


def _qmc(s: QMCSettings, **_: Any) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.QMCSampler(qmc_type=s.qmc_type, scramble=s.scramble, seed=s.seed)


def _tpe(
    s: TPESettings, constraints: MetricConstraints | None = None, **_: Any
) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.TPESampler(
        seed=s.seed,
        n_startup_trials=s.n_startup_trials,
        n_ei_candidates=s.n_ei_candidates,
        multivariate=s.multivariate or s.group,
        group=s.group,
        constant_liar=s.constant_liar,
        constraints_func=constraints,
    )


def _gp(
    s: GPSettings, constraints: MetricConstraints | None = None, **_: Any
) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.GPSampler(
        seed=s.seed,
        n_startup_trials=s.n_startup_trials,
        deterministic_objective=s.deterministic_objective,
        constraints_func=constraints,
    )


def _cmaes(s: CmaEsSettings, **_: Any) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.CmaEsSampler(
        seed=s.seed,
        n_startup_trials=s.n_startup_trials,
        sigma0=s.sigma0,
        restart_strategy=s.restart_strategy,
        popsize=s.popsize,
        warn_independent_sampling=False,
    )


def _nsga2(
    s: NSGA2Settings, constraints: MetricConstraints | None = None, **_: Any
) -> optuna.samplers.BaseSampler:
    from search_spaces.samplers import PicklableNSGAIISampler

    return PicklableNSGAIISampler(
        seed=s.seed,
        population_size=s.population_size,
        mutation_prob=s.mutation_prob,
        crossover_prob=s.crossover_prob,
        swapping_prob=s.swapping_prob,
        constraints_func=constraints,
    )


@dataclass(frozen=True)
class Algorithm:
    """An algorithm's settings model, sampler factory and what it supports."""

    settings: type[RandomSettings]
    factory: Factory
    summary: str
    needs_grid: bool = False
    multi_objective: bool = True
    constraints: bool = False
    conditional: bool = True
    deterministic: bool = True  # the same seed proposes the same sequence


ALGORITHMS: dict[str, Algorithm] = {
    "grid": Algorithm(
        GridSettings, _grid, "every grid point once", needs_grid=True, conditional=False
    ),
    "random": Algorithm(RandomSettings, _random, "uniform random sampling"),
    "qmc": Algorithm(QMCSettings, _qmc, "quasi-Monte Carlo (Sobol or Halton)", conditional=False),
    "tpe": Algorithm(TPESettings, _tpe, "Bayesian optimisation (TPE)", constraints=True),
    "gp": Algorithm(GPSettings, _gp, "Bayesian optimisation (Gaussian process)", constraints=True),
    "cmaes": Algorithm(
        CmaEsSettings,
        _cmaes,
        "CMA-ES evolution strategy",
        multi_objective=False,
        conditional=False,
    ),
    "nsga2": Algorithm(
        NSGA2Settings, _nsga2, "NSGA-II genetic algorithm (multi-objective)", constraints=True
    ),
}


def algorithm_names() -> Sequence[str]:
    """Names accepted in ``StudySpec.algorithm``."""
    return tuple(ALGORITHMS)


def make_sampler(
    name: str,
    settings: dict[str, Any],
    grid: GridSource,
    attempt: int = 1,
    constraints: MetricConstraints | None = None,
) -> optuna.samplers.BaseSampler:
    """Build the Optuna sampler for a validated algorithm name and settings.

    A resumed study (``attempt`` > 1) derives a new seed from the user's, so a seeded sampler
    does not propose the first attempt's configurations again. ``grid`` is called only by
    the grid algorithm.
    """
    algorithm = ALGORITHMS[name]
    parsed = algorithm.settings.model_validate(settings)
    if parsed.seed is not None and attempt > 1:
        parsed = parsed.model_copy(update={"seed": (parsed.seed + 7919 * (attempt - 1)) % 2**32})
    return algorithm.factory(parsed, grid=grid, constraints=constraints)
