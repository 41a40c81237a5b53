"""Evaluation of any task on one rank or a DDP group: every rank scores its share of the eval
examples, the predictions are gathered into one table on every rank (an all-reduced sum of
disjoint rows), and the task turns them into its metrics, so all ranks report the same."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any

import torch

from workers.data import TokenizedData, collate
from workers.ranks import all_reduce_sum
from workers.tasks.base import Task


def eval_batch(data: TokenizedData, rows: list[int], device: torch.device) -> dict[str, Any]:
    """The eval examples ``rows`` collated and moved to ``device``."""
    types = [data.eval_types[i] for i in rows] if data.eval_types is not None else None
    tensors = collate(
        [data.eval_ids[i] for i in rows], [data.eval_labels[i] for i in rows], data.pad_id, types
    )
    return {k: v.to(device) for k, v in tensors.items()}


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    task: Task,
    data: TokenizedData,
    batch_size: int,
    device: torch.device,
    autocast: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
    rank: int = 0,
    world_size: int = 1,
    stats_device: torch.device | None = None,
) -> tuple[dict[str, float], list[list[float]]]:
    """eval_loss and the task's metrics, and every eval example's predictions (all ranks)."""
    was_training = model.training
    model.eval()
    n = len(data.eval_ids)
    table = torch.zeros(n, task.prediction_width(data), dtype=torch.float64, device=device)
    sums = torch.zeros(2, dtype=torch.float64, device=device)  # summed loss, counted
    mine = sorted(range(rank, n, world_size), key=lambda i: len(data.eval_ids[i]))
    for start in range(0, len(mine), batch_size):
        rows = mine[start : start + batch_size]
        batch = eval_batch(data, rows, device)
        labels = batch.pop("labels")
        with autocast():
            logits = model(**batch).logits
        sums[0] += task.loss(logits, labels, reduction="sum").double()
        sums[1] += task.counted(labels)
        predicted = task.predict(logits, labels)
        table[torch.tensor(rows, device=device), : predicted.shape[1]] = predicted
    model.train(was_training)
    target = stats_device or device
    distributed = world_size > 1
    loss, counted = all_reduce_sum(sums.to(target), distributed).tolist()
    predictions = all_reduce_sum(table.to(target), distributed).tolist()
    mean = loss / counted if counted else math.inf
    metrics = {"eval_loss": mean if math.isfinite(mean) else math.inf}
    metrics.update(task.metrics(predictions, data))
    return metrics, predictions
