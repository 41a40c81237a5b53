"""Task implementations (``workers.tasks.base.Task``) by registered name: the built-in ones and
installed plugins (``search_spaces.tasks``)."""

from __future__ import annotations

import importlib

from search_spaces.tasks import task_info
from workers.tasks.base import Task


def task_for(name: str) -> Task:
    """A fresh instance of the registered task ``name``.

    Raises:
        ValueError: No such task, or its implementation is not a Task.
    """
    module, _, attribute = task_info(name).implementation.partition(":")
    kind = getattr(importlib.import_module(module), attribute)
    if not (isinstance(kind, type) and issubclass(kind, Task)):
        raise ValueError(f"task {name}: {module}:{attribute} is not a workers.tasks.base.Task")
    return kind()
