"""After the last epoch: the model's predictions head (from the eval predictions), its
deployment metrics, and its saving.

Rank 0 merges LoRA adapters into the weights, compresses and measures the model
(``workers.deploy``) and, when the trial saves its model, writes it with its adapter and its
compressed variant (``workers.artifacts.save_model``). The numbers are summed over the ranks
(only rank 0's are non-zero), so every rank reports the same, and no rank ends the trial before
the model is saved.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from search_spaces.tunables import DEPLOY_KEYS
from workers.data import TokenizedData
from workers.ranks import all_reduce_sum
from workers.tasks.base import Task


def finish_model(
    model: torch.nn.Module,
    hp: dict[str, Any],
    model_name: str,
    save_dir: str | None,
    task: Task,
    data: TokenizedData,
    predictions: list[list[float]],
    device: torch.device,
    stats_device: torch.device,
    rank: int,
    distributed: bool,
    primary_value: float,
) -> dict[str, Any]:
    """The ``DEPLOY_KEYS`` metrics and the compressed model's primary task metric, and with
    ``save_dir`` also ``eval_predictions_head`` (from the gathered eval ``predictions``) and
    ``checkpoint_bytes`` (the saved model; for LoRA, the adapter alone)."""
    keys = [*DEPLOY_KEYS, task.info.compressed_metric]
    values = torch.zeros(len(keys) + 1, dtype=torch.float64, device=stats_device)
    if rank == 0:
        measured, checkpoint = _deploy_and_save(
            model, hp, model_name, save_dir, task, data, primary_value
        )
        numbers = [*(measured[k] for k in keys), checkpoint]
        values[:] = torch.tensor(numbers, dtype=torch.float64)
    totals = all_reduce_sum(values, distributed).tolist()
    result: dict[str, Any] = dict(zip(keys, totals[:-1], strict=True))
    if save_dir is not None:
        result["eval_predictions_head"] = task.head(predictions, data)
        result["checkpoint_bytes"] = int(totals[-1])
    return result


def _deploy_and_save(
    model: torch.nn.Module,
    hp: dict[str, Any],
    model_name: str,
    save_dir: str | None,
    task: Task,
    data: TokenizedData,
    primary_value: float,
) -> tuple[dict[str, float], int]:
    from workers.artifacts import directory_bytes, save_model
    from workers.compression import save_compressed
    from workers.deploy import measure_deployment
    from workers.lora import is_lora, merged, save_adapter
    from workers.models import build_tokenizer

    method = str(hp["compression"])
    adapter: Path | None = None
    try:
        if save_dir is not None and is_lora(model):
            Path(save_dir).parent.mkdir(parents=True, exist_ok=True)
            adapter = Path(tempfile.mkdtemp(prefix=".tmp-adapter-", dir=Path(save_dir).parent))
            save_adapter(model, str(adapter))
        adapter_bytes = directory_bytes(adapter) if adapter else 0
        plain = merged(model)
        deployment = measure_deployment(plain, method, task, data, primary_value)
        if save_dir is None:
            return deployment.metrics, 0

        def extras(directory: Path) -> None:
            if adapter is not None:
                os.replace(adapter, directory / "adapter")
            if method != "none":
                save_compressed(deployment.compressed, method, directory / "compressed")

        tokenizer = build_tokenizer(model_name)
        size = save_model(plain, tokenizer, Path(save_dir), int(hp["max_seq_length"]), extras)
        return deployment.metrics, adapter_bytes or size
    finally:
        if adapter is not None and adapter.exists():
            shutil.rmtree(adapter, ignore_errors=True)
