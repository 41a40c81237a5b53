"""The one table that maps an algorithm name to its settings and an Optuna sampler factory.

Settings are validated at submit time (``validate_settings``); samplers are built lazily on the
cluster (``make_sampler``) so the service never pays for importing sampler dependencies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    import optuna


class RandomSettings(BaseModel):
    """Uniform random sampling."""

    model_config = ConfigDict(extra="forbid")
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)


class GridSettings(RandomSettings):
    """Exhaustive grid; ``seed`` shuffles the visiting order."""


class TPESettings(RandomSettings):
    """Tree-structured Parzen estimator (Bayesian)."""

    n_startup_trials: int = Field(default=10, ge=0, le=100_000)
    n_ei_candidates: int = Field(default=24, ge=1, le=10_000)
    multivariate: bool = False
    group: bool = False
    constant_liar: bool = False


def _random(settings: BaseModel, grid: dict[str, list[Any]]) -> optuna.samplers.BaseSampler:
    import optuna

    assert isinstance(settings, RandomSettings)
    return optuna.samplers.RandomSampler(seed=settings.seed)


def _grid(settings: BaseModel, grid: dict[str, list[Any]]) -> optuna.samplers.BaseSampler:
    from search_spaces.samplers import NonStoppingGridSampler

    assert isinstance(settings, GridSettings)
    return NonStoppingGridSampler(grid, seed=settings.seed)


def _tpe(settings: BaseModel, grid: dict[str, list[Any]]) -> optuna.samplers.BaseSampler:
    import optuna

    assert isinstance(settings, TPESettings)
    return optuna.samplers.TPESampler(
        seed=settings.seed,
        n_startup_trials=settings.n_startup_trials,
        n_ei_candidates=settings.n_ei_candidates,
        multivariate=settings.multivariate,
        group=settings.group,
        constant_liar=settings.constant_liar,
    )


SamplerFactory = Callable[[BaseModel, dict[str, list[Any]]], "optuna.samplers.BaseSampler"]


@dataclass(frozen=True)
class Algorithm:
    """An algorithm's settings model, sampler factory and whether it needs a discrete space."""

    settings: type[BaseModel]
    factory: SamplerFactory
    needs_grid: bool = False
    summary: str = ""


ALGORITHMS: dict[str, Algorithm] = {
    "grid": Algorithm(GridSettings, _grid, needs_grid=True, summary="every grid point once"),
    "random": Algorithm(RandomSettings, _random, summary="uniform random sampling"),
    "tpe": Algorithm(TPESettings, _tpe, summary="Bayesian optimisation (TPE)"),
}


def algorithm_names() -> Sequence[str]:
    """Names accepted in ``StudySpec.algorithm``."""
    return tuple(ALGORITHMS)


def make_sampler(
    name: str, settings: dict[str, Any], grid: dict[str, list[Any]], attempt: int = 1
) -> optuna.samplers.BaseSampler:
    """Build the Optuna sampler for a validated algorithm name and settings.

    A resumed study (``attempt`` > 1) derives a new seed from the user's, so a seeded sampler
    does not propose the first attempt's configurations again.
    """
    algorithm = ALGORITHMS[name]
    parsed = algorithm.settings.model_validate(settings)
    seed = getattr(parsed, "seed", None)
    if seed is not None and attempt > 1:
        parsed = parsed.model_copy(update={"seed": (seed + 7919 * (attempt - 1)) % 2**32})
    return algorithm.factory(parsed, grid)
