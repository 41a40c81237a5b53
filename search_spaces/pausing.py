"""Rules of the schedulers that pause trials and resume them from their checkpoints.

Synchronous Hyperband and BOHB pause trials at each rung and promote some; PBT and PB2 copy
the weights of the population's best trials into its worst (exploit) and change their
hyperparameters while they train (explore). All four need trials that write checkpoints.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from search_spaces.params import CategoricalParam
from search_spaces.registry import SIMULATED_MODELS

if TYPE_CHECKING:
    from search_spaces.limits import Broken
    from search_spaces.spec import StudySpec

PAUSING_SCHEDULERS = ("hyperband_sync", "bohb", "pbt", "pb2")
POPULATION_SCHEDULERS = ("pbt", "pb2")

# What a trial's weights and optimizer state are built from: a trial that copies another's
# checkpoint keeps these of its source, so population schedulers never change them.
FIXED_UNDER_EXPLORE = (
    "model",
    "epochs",
    "seed",
    "finetune_method",
    "lora_r",
    "lora_alpha",
    "optimizer",
    "precision",
)


def explored_names(spec: StudySpec) -> list[str]:
    """The search-space parameters a population scheduler changes while trials train."""
    return [name for name in spec.search_space if name not in FIXED_UNDER_EXPLORE]


def pausing_problem(spec: StudySpec) -> Broken | None:
    """Why the spec's pausing scheduler cannot run it, or None."""
    kind = spec.scheduler.type
    if kind not in PAUSING_SCHEDULERS:
        return None
    if spec.task.model in SIMULATED_MODELS:
        return ("scheduler", "type"), (
            f"{kind} pauses trials and resumes them from checkpoints, which the "
            f"{spec.task.model} objective does not write; fine-tune a model"
        )
    if not spec.checkpoint.enabled:
        return ("checkpoint", "every_epochs"), (
            f"{kind} resumes trials from their checkpoints: give every_epochs of at least 1"
        )
    resources = spec.resources_per_trial
    if resources.num_workers > 1 and resources.ddp == "ray_train":
        return ("resources_per_trial", "ddp"), (
            f"{kind} needs trial checkpoints, which ray_train trials do not write; use kept"
        )
    if kind in POPULATION_SCHEDULERS:
        return _population_problem(spec)
    return _bracket_problem(spec)


def largest_bracket(max_epochs: int, reduction_factor: float) -> int:
    """Trials in the largest bracket of synchronous Hyperband (as Ray Tune sizes them)."""
    brackets = round(math.log(max_epochs) / math.log(reduction_factor)) + 1
    return max(
        math.ceil(brackets / (s + 1) * reduction_factor**s)
        for s in range(brackets)
        if int(max_epochs * reduction_factor**-s) >= 1
    )


def _bracket_problem(spec: StudySpec) -> Broken | None:
    kind, budget = spec.scheduler.type, spec.budget
    needed = min(
        largest_bracket(spec.max_epochs(), spec.scheduler.reduction_factor), budget.n_trials
    )
    if budget.max_concurrent_trials < needed:
        return ("budget", "max_concurrent_trials"), (
            f"{kind} halves a bracket only once all its trials have started (paused ones keep "
            f"their place; until then trials run past their rungs): give at least {needed}, "
            "the largest bracket's trials"
        )
    return None


def _population_problem(spec: StudySpec) -> Broken | None:
    kind, budget = spec.scheduler.type, spec.budget
    if budget.max_concurrent_trials < 2:
        return ("budget", "max_concurrent_trials"), (
            f"{kind} evolves a population of max_concurrent_trials trials that train at once: "
            "give at least 2"
        )
    if budget.n_trials != budget.max_concurrent_trials:
        return ("budget", "n_trials"), (
            f"{kind}'s population is max_concurrent_trials ({budget.max_concurrent_trials}) "
            f"trials: n_trials ({budget.n_trials}) must equal it"
        )
    epochs = spec.max_epochs()
    if spec.scheduler.perturbation_interval >= epochs:
        return ("scheduler", "perturbation_interval"), (
            f"{spec.scheduler.perturbation_interval} leaves no exploit step before the last "
            f"epoch: give fewer than the trials' {epochs} epochs"
        )
    names = explored_names(spec)
    if not names:
        return ("search_space",), (
            f"{kind} changes hyperparameters while trials train, but every searched one is "
            f"fixed by the weights ({', '.join(FIXED_UNDER_EXPLORE)}): search another one, "
            "e.g. learning_rate"
        )
    for name in names:
        param = spec.search_space[name]
        if param.when:
            return ("search_space", name, "when"), (
                f"{kind} changes every explored parameter; conditional ones are not supported"
            )
        if kind == "pb2" and isinstance(param, CategoricalParam):
            return ("search_space", name), (
                "pb2 explores numeric ranges; a categorical parameter cannot be explored by it "
                "(use pbt, or fix it in task.hyperparameters)"
            )
    return None


def checkpoints_kept(spec: StudySpec) -> int:
    """Checkpoints kept per trial. PBT and PB2 keep all of a trial's: a trial may load its
    source's checkpoint epochs after it was written (Tune warns that keeping two or fewer
    breaks its restores); they are deleted with the rest when the study ends."""
    keep = spec.checkpoint.keep
    if spec.scheduler.type in POPULATION_SCHEDULERS:
        return max(keep, spec.max_epochs())
    return keep
