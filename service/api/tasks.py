"""``GET /tasks``: the tasks a study may name (built-in and installed plugins)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from search_spaces.tasks import registered_tasks

router = APIRouter(tags=["tasks"])


class TaskPublic(BaseModel):
    """One registered task: what it reports and which dataset fields it reads."""

    name: str
    description: str
    builtin: bool
    metrics: dict[str, str]  # eval metric -> its natural direction
    primary_metric: str  # the default objective
    compressed_metric: str  # the compressed model's primary metric (a deploy metric)
    label_kind: str  # class | number | tags
    dataset_fields: list[str]
    formats: list[str]


class TasksPublic(BaseModel):
    data: list[TaskPublic]


@router.get("/tasks", response_model=TasksPublic)
def list_tasks() -> TasksPublic:
    """Every registered task (plugins installed since start-up included)."""
    tasks = registered_tasks(refresh=True).values()
    return TasksPublic(
        data=[
            TaskPublic(
                name=t.name,
                description=t.description,
                builtin=t.builtin,
                metrics=dict(t.metrics),
                primary_metric=t.primary_metric,
                compressed_metric=t.compressed_metric,
                label_kind=t.label_kind,
                dataset_fields=list(t.dataset_fields),
                formats=list(t.formats),
            )
            for t in tasks
        ]
    )
