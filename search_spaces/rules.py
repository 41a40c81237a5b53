"""Cross-field rules of the efficiency options: which metrics, precisions and model options a
study's task can honour. Each rule returns the broken field's location and why, or None."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from search_spaces.params import CategoricalParam
from search_spaces.tunables import FINAL_ONLY_METRICS, FINETUNE_ONLY_METRICS, TUNABLES

if TYPE_CHECKING:
    from search_spaces.spec import StudySpec

Broken = tuple[tuple[str | int, ...], str]

# Task fields that set a tunable's value for every trial (the search space may still tune it).
TASK_OPTIONS = ("finetune_method", "compression", "precision")
# Options a model needs: the toy objective has none to adapt, compress or train in a precision.
_MODEL_OPTIONS = {"finetune_method": "full", "compression": "none", "precision": "auto"}


def possible_values(spec: StudySpec, name: str) -> list[tuple[tuple[str | int, ...], Any]]:
    """Every value tunable ``name`` may take in this study, with where it is set."""
    task = spec.task
    param = spec.search_space.get(name)
    if isinstance(param, CategoricalParam):
        return [(("search_space", name), value) for value in param.choices]
    if name in task.hyperparameters:
        return [(("task", "hyperparameters", name), task.hyperparameters[name])]
    if name in TASK_OPTIONS:
        return [(("task", name), getattr(task, name))]
    return [((), TUNABLES[name].default)]


def metric_problem(spec: StudySpec) -> Broken | None:
    """An objective or constraint the task cannot measure, or early stopping on a final metric."""
    named: list[tuple[tuple[str | int, ...], str]] = [  # (field, metric)
        (("objectives", i, "metric"), goal.metric) for i, goal in enumerate(spec.goals)
    ]
    named += [(("constraints", i, "metric"), c.metric) for i, c in enumerate(spec.constraints)]
    if spec.scheduler.metric is not None:
        named.append((("scheduler", "metric"), spec.scheduler.metric))
    if spec.task.model == "toy":
        for loc, metric in named:
            if metric in FINETUNE_ONLY_METRICS:
                return loc, f"{metric} is measured only by fine-tuning trials, not the toy model"
    metric = spec.stopping_goal().metric
    if spec.scheduler.type != "none" and metric in FINAL_ONLY_METRICS:
        return (
            ("scheduler", "metric" if spec.scheduler.metric else "type"),
            f"early stopping needs a metric reported every epoch; {metric} is measured once, "
            "after the last epoch",
        )
    return None


def option_problem(spec: StudySpec) -> Broken | None:
    """A model option on the toy objective, fp16 without GPUs, or an option given twice."""
    for name in TASK_OPTIONS:
        if name in spec.task.model_fields_set and name in spec.task.hyperparameters:
            return ("task", "hyperparameters", name), f"given twice: also as task.{name}"
    if spec.task.model == "toy":
        for name, neutral in _MODEL_OPTIONS.items():
            for loc, value in possible_values(spec, name):
                if value != neutral:
                    return loc, f"{name}={value!r} needs a model; the toy objective has none"
    if spec.resources_per_trial.gpus_per_worker == 0:
        for loc, value in possible_values(spec, "precision"):
            if value == "fp16":
                return loc, (
                    "fp16 needs GPUs (resources_per_trial.gpus_per_worker > 0); "
                    "use bf16 or fp32 on CPUs"
                )
    return None
