"""Cross-field rules of the efficiency options: which metrics, precisions and model options a
study's task can honour. Each rule returns the broken field's location and why, or None."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from search_spaces.params import CategoricalParam
from search_spaces.registry import SIMULATED_MODELS
from search_spaces.replay import REPLAY_MODEL, table_names
from search_spaces.tasks import DEFAULT_TASK, TaskInfo, registered_tasks
from search_spaces.tunables import (
    TUNABLES,
    final_only_metrics,
    finetune_only_metrics,
    metric_directions,
)

if TYPE_CHECKING:
    from search_spaces.spec import Dataset, StudySpec

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
    info = spec.task.info
    task_metrics = info.all_metrics()
    # Any metric but another task's eval metrics.
    allowed = (set(metric_directions()) - _all_task_metrics()) | set(task_metrics)
    for loc, metric in named:
        if metric not in allowed:
            return loc, (
                f"task {info.name} does not report {metric}; its metrics: {', '.join(task_metrics)}"
            )
    if spec.task.model in SIMULATED_MODELS:
        for loc, metric in named:
            if metric in finetune_only_metrics():
                return loc, (
                    f"{metric} is measured only by fine-tuning trials, not the "
                    f"{spec.task.model} model"
                )
    metric = spec.stopping_goal().metric
    if spec.scheduler.type != "none" and metric in final_only_metrics():
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
    if (model := spec.task.model) in SIMULATED_MODELS:
        if "model" in spec.search_space:
            return ("search_space", "model"), f"the {model} objective has no model to choose"
        for name, neutral in _MODEL_OPTIONS.items():
            for loc, value in possible_values(spec, name):
                if value != neutral:
                    return loc, f"{name}={value!r} needs a model; the {model} objective has none"
    if spec.resources_per_trial.gpus_per_worker == 0:
        for loc, value in possible_values(spec, "precision"):
            if value == "fp16":
                return loc, (
                    "fp16 needs GPUs (resources_per_trial.gpus_per_worker > 0); "
                    "use bf16 or fp32 on CPUs"
                )
    return None


def _all_task_metrics() -> set[str]:
    return {m for info in registered_tasks().values() for m in info.all_metrics()}


# Dataset fields that only some tasks read (the others every task reads).
_TASK_FIELDS = ("text_column", "text_pair_column", "label_column", "tokens_column", "tags_column",
                "tag_scheme")  # fmt: skip


def dataset_problem(info: TaskInfo, dataset: Dataset, model: str) -> Broken | None:
    """A dataset field, format or built-in set the task does not read, or a column missing
    from ``column_names``."""
    for name in _TASK_FIELDS:
        default = type(dataset).model_fields[name].default
        if name not in info.dataset_fields and getattr(dataset, name) != default:
            return ("dataset", name), (
                f"task {info.name} does not read {name}; it reads: {', '.join(info.dataset_fields)}"
            )
    if (model == REPLAY_MODEL) != (dataset.name in table_names()):
        if model == REPLAY_MODEL:
            return ("dataset", "name"), (
                f"the replay objective plays back a recorded table: {', '.join(table_names())}"
            )
        return ("dataset", "name"), f"{dataset.name} is a replay table: use it with model replay"
    if dataset.name is not None and info.name != DEFAULT_TASK:
        return ("dataset", "name"), (
            f"built-in dataset {dataset.name} is a classification set; task {info.name} needs "
            "train (and eval) files"
        )
    if model in SIMULATED_MODELS and info.name != DEFAULT_TASK:
        return ("model",), f"the {model} objective stands in for classification, not {info.name}"
    if dataset.train is not None and dataset.file_format not in info.formats:
        field = "format" if dataset.format else "train"
        return ("dataset", field), (
            f"task {info.name} reads {', '.join(info.formats)} files, not {dataset.file_format}"
            + ("" if dataset.format else " (set dataset.format)")
        )
    if dataset.column_names is not None and dataset.file_format in ("tsv", "csv"):
        for field, column in dataset.columns(info).items():
            if column not in dataset.column_names:
                return ("dataset", field), f"column {column!r} is not in column_names"
    return None
