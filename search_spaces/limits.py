"""Size limits of a study, computed arithmetically: a spec is never enumerated to be measured.

A grid of 10**16 points, a float ``step`` of 1e-308 or an int range of 2**31 values costs the
same few operations to measure as a grid of four; only specs within these limits are ever built
(``GridSampler`` materialises every grid point, Ray's ASHA builds every rung).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from search_spaces.params import CategoricalParam, FloatParam, IntParam

if TYPE_CHECKING:
    from search_spaces.spec import StudySpec

MAX_GRID_POINTS = 100_000  # a grid study runs at most budget.n_trials (≤ 100,000) points
MAX_STEPS_PER_PARAMETER = 2**31  # values of one stepped parameter (the int seed's full range)
MAX_RUNGS = 100  # rungs of an ASHA/HyperBand bracket; trials run at most 100 epochs

Broken = tuple[tuple[str | int, ...], str]


def value_count(param: FloatParam | IntParam | CategoricalParam) -> int:
    """How many values a discrete parameter takes (a float without step: 0, i.e. not discrete)."""
    if isinstance(param, CategoricalParam):
        return len(param.choices)
    if isinstance(param, IntParam):
        return (param.high - param.low) // (param.step or 1) + 1
    if param.step is None:
        return 0
    return math.floor((param.high - param.low) / param.step + 1e-9) + 1


def grid_size(spec: StudySpec) -> int:
    """Points of the full grid over the search space (an exact integer, however large)."""
    return math.prod(value_count(param) for param in spec.search_space.values())


def rung_count(max_epochs: int, grace_period: int, reduction_factor: float) -> int:
    """Rungs of one ASHA bracket: milestones grace·rf^k up to ``max_epochs`` (as Ray counts)."""
    if max_epochs <= grace_period:
        return 1
    return int(math.log(max_epochs / grace_period) / math.log(reduction_factor) + 1e-9) + 1


def longest_trial_epochs(spec: StudySpec) -> int:
    """Epochs of the longest trial the task and search space allow."""
    param = spec.search_space.get("epochs")
    if isinstance(param, CategoricalParam):
        return int(max(float(v) for v in param.choices))
    if param is not None:
        return int(param.high)
    return int(spec.task.hyperparameters.get("epochs", spec.task.epochs))


def step_problem(spec: StudySpec) -> Broken | None:
    """An int, or a float with ``step``, taking more values than ``MAX_STEPS_PER_PARAMETER``."""
    for name, param in spec.search_space.items():
        if isinstance(param, CategoricalParam) or (
            isinstance(param, FloatParam) and not param.step
        ):
            continue
        count = value_count(param)
        if count > MAX_STEPS_PER_PARAMETER:
            return ("search_space", name, "step"), (
                f"{count:.3g} steps between low and high exceed the limit of "
                f"{MAX_STEPS_PER_PARAMETER} per parameter; use a larger step, or none"
            )
    return None


def grid_problem(spec: StudySpec) -> Broken | None:
    """A grid larger than ``MAX_GRID_POINTS``, or smaller than the trial budget."""
    size = grid_size(spec)
    if size > MAX_GRID_POINTS:
        shown = f"{size:,}" if size < 10**12 else f"about 10^{len(str(size)) - 1}"
        return ("search_space",), (
            f"the grid has {shown} points, over the limit of {MAX_GRID_POINTS:,}; "
            "use fewer values per parameter, or another algorithm (random, tpe)"
        )
    if spec.budget.n_trials > size:
        return (
            "budget",
            "n_trials",
        ), f"{spec.budget.n_trials} trials exceed the grid size ({size})"
    return None


def scheduler_problem(spec: StudySpec) -> Broken | None:
    """``scheduler.max_epochs`` beyond the longest trial, or more rungs than ``MAX_RUNGS``."""
    scheduler = spec.scheduler
    longest = longest_trial_epochs(spec)
    if scheduler.max_epochs is not None and scheduler.max_epochs > longest:
        return ("scheduler", "max_epochs"), (
            f"{scheduler.max_epochs} is beyond the epochs of the longest trial ({longest}: "
            "task.epochs, or search_space.epochs)"
        )
    if scheduler.type not in ("asha", "hyperband", "hyperband_sync", "bohb"):
        return None
    max_epochs = scheduler.max_epochs or longest
    rungs = rung_count(max_epochs, scheduler.grace_period, scheduler.reduction_factor)
    if rungs > MAX_RUNGS:
        return ("scheduler", "reduction_factor"), (
            f"{scheduler.reduction_factor} makes {rungs:.3g} rungs between grace_period "
            f"({scheduler.grace_period}) and {max_epochs} epochs, over the limit of {MAX_RUNGS}; "
            "use a larger reduction_factor"
        )
    return None
