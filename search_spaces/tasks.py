"""The tasks a study may fine-tune for: what each reports and which dataset fields it reads.

Built-in tasks are listed here; a team adds its own by installing a package with an entry point
in the group ``hpo.tasks`` (on the API and on the worker machines) whose object is a
:class:`TaskInfo` naming its implementation (a subclass of ``workers.tasks.base.Task``). A spec
names a registered task by name only, never code or an import path.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Literal

Direction = Literal["maximize", "minimize"]
LabelKind = Literal["class", "number", "tags"]

ENTRY_POINT_GROUP = "hpo.tasks"
DEFAULT_TASK = "classification"

logger = logging.getLogger(__name__)

# Dataset fields every task reads (the others are the task's own ``dataset_fields``).
COMMON_DATASET_FIELDS = ("name", "train", "eval", "format", "column_names", "eval_fraction")


@dataclass(frozen=True)
class TaskInfo:
    """What the service must know of a task without importing its code."""

    name: str
    description: str
    metrics: dict[str, Direction]  # eval metrics reported after every epoch
    primary_metric: str  # the default objective, and what compression is measured by
    label_kind: LabelKind
    implementation: str  # "module:Class" of the workers.tasks.base.Task subclass
    dataset_fields: tuple[str, ...] = ("text_column", "label_column")
    formats: tuple[str, ...] = ("tsv", "csv", "jsonl")
    builtin: bool = field(default=False, compare=False)

    @property
    def compressed_metric(self) -> str:
        """The primary metric of the compressed model (a deploy metric, after the last epoch)."""
        return f"compressed_{self.primary_metric}"

    def all_metrics(self) -> dict[str, Direction]:
        """Eval metrics and the compressed model's primary metric, with their directions."""
        return {**self.metrics, self.compressed_metric: self.metrics[self.primary_metric]}


_CLASSIFICATION = TaskInfo(
    name="classification",
    description="one text or a text pair (text_pair_column) with a class label: binary or "
    "multi-class, string or integer labels (SST-2, RTE, MRPC, QNLI, CoLA, ...)",
    metrics={
        "eval_accuracy": "maximize",
        "eval_f1": "maximize",  # binary: of class 1; multi-class: macro
        "eval_mcc": "maximize",
        "eval_loss": "minimize",
    },
    primary_metric="eval_accuracy",
    label_kind="class",
    implementation="workers.tasks.classification:ClassificationTask",
    dataset_fields=("text_column", "text_pair_column", "label_column"),
    builtin=True,
)
_REGRESSION = TaskInfo(
    name="regression",
    description="one text or a text pair with a real-valued label, one output, MSE loss (STS-B)",
    metrics={
        "eval_pearson": "maximize",
        "eval_spearman": "maximize",
        "eval_mse": "minimize",
        "eval_loss": "minimize",
    },
    primary_metric="eval_pearson",
    label_kind="number",
    implementation="workers.tasks.regression:RegressionTask",
    dataset_fields=("text_column", "text_pair_column", "label_column"),
    builtin=True,
)
_TOKEN_CLASSIFICATION = TaskInfo(
    name="token_classification",
    description="word-level tags (IOB1/IOB2/BIOES; named entities: CoNLL-2003, WNUT-17), "
    "labels on the first sub-token of each word; entity-level F1 by seqeval",
    metrics={
        "eval_f1": "maximize",
        "eval_precision": "maximize",
        "eval_recall": "maximize",
        "eval_accuracy": "maximize",  # of word tags
        "eval_loss": "minimize",
    },
    primary_metric="eval_f1",
    label_kind="tags",
    implementation="workers.tasks.token_classification:TokenClassificationTask",
    dataset_fields=("tokens_column", "tags_column", "tag_scheme"),
    formats=("conll", "jsonl"),
    builtin=True,
)
BUILTIN_TASKS: dict[str, TaskInfo] = {
    t.name: t for t in (_CLASSIFICATION, _REGRESSION, _TOKEN_CLASSIFICATION)
}


@functools.cache
def _plugins() -> dict[str, TaskInfo]:
    found: dict[str, TaskInfo] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            info = point.load()
        except Exception as exc:  # a broken plugin must not take the service down
            logger.warning("task plugin %s failed to load: %s", point.name, exc)
            continue
        if not isinstance(info, TaskInfo) or info.name != point.name:
            logger.warning("task plugin %s is not a TaskInfo named %r; ignored", point, point.name)
            continue
        if info.name in BUILTIN_TASKS or info.primary_metric not in info.metrics:
            logger.warning(
                "task plugin %s clashes with a built-in or lacks its primary metric", info
            )
            continue
        found[info.name] = info
    return found


def registered_tasks(refresh: bool = False) -> dict[str, TaskInfo]:
    """Built-in tasks and installed plugins, by name (``refresh``: look for new plugins)."""
    if refresh:
        _plugins.cache_clear()
    return {**BUILTIN_TASKS, **_plugins()}


def task_info(name: str) -> TaskInfo:
    """The registered task ``name`` (plugins installed since start-up are found too).

    Raises:
        ValueError: No such task; the message lists the registered ones.
    """
    tasks = registered_tasks()
    if name not in tasks:
        tasks = registered_tasks(refresh=True)
    if name not in tasks:
        raise ValueError(f"unknown task type {name!r}; registered: {', '.join(tasks)}")
    return tasks[name]


def known_metrics() -> dict[str, Direction]:
    """Every eval metric some registered task reports, with its direction."""
    merged: dict[str, Direction] = {}
    for info in registered_tasks().values():
        for name, direction in info.all_metrics().items():
            merged.setdefault(name, direction)
    return merged
