"""The fine-tuning loop of one trial: single process or one rank of a DDP group, as the named
phases of ``workers.trial_run.TrialRun``."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from workers.batching import length_grouped_batches, shard_indices
from workers.checkpoints import CHECKPOINT_DIR_KEY, CheckpointPlan
from workers.data import TokenizedData
from workers.tasks import task_for
from workers.tasks.base import Task
from workers.trial_run import TrialRun, default_device

__all__ = ["default_device", "length_grouped_batches", "run_training", "shard_indices"]


def run_training(
    hp: dict[str, Any],
    data: TokenizedData,
    model_name: str,
    report: Callable[[dict[str, Any]], None],
    device: torch.device | None = None,
    save_dir: str | None = None,
    started_at: float | None = None,
    auto_batch_size: bool = True,
    task: Task | None = None,
    checkpoints: CheckpointPlan | None = None,
) -> dict[str, Any]:
    """Fine-tune a model for its task and report eval metrics after every epoch.

    Under an initialised ``torch.distributed`` process group this runs as one DDP rank: the
    training examples are sharded (equal counts per rank), the eval sums are all-reduced, and
    every rank reports identical metrics. A diverged run (non-finite gradients) stops early,
    still evaluates, and reports its losses as +inf.

    ``finetune_method`` lora trains peft adapters (``workers.lora``); ``precision`` picks the
    autocast dtype (``workers.precision``); ``gradient_accumulation_steps`` batches make one
    optimizer step; after the last epoch the model is compressed and measured
    (``workers.final_model``).

    Args:
        hp: Every tunable of ``search_spaces.tunables.TUNABLES``; an optional ``num_threads``
            sets ``torch.set_num_threads``.
        data: Tokenised train and eval data.
        model_name: "tiny-bert", "minilm-l6", a local model directory or a hub id.
        report: Called on every rank after every epoch with eval_loss and the task's eval
            metrics, train_loss, train_samples_per_second and epoch.
        device: Where to train; default CUDA if available, else the CPU.
        save_dir: Where to save the final model and tokenizer (``save_pretrained``; rank 0
            only, atomically, before the last report). The last report then also holds
            ``eval_predictions_head`` (predicted labels of the first 8 eval examples, e.g.
            "1,0,1") and ``checkpoint_bytes`` (size of the saved model; for LoRA, of the
            adapter), on every rank.
        started_at: When the trial started (``time.time()``; default: now). Every report also
            holds the cost keys of ``workers.cost`` (summed over ranks), train_tokens_per_second,
            parameter_count, trainable_parameter_count and the ``RUN_KEYS``; the last one the
            ``DEPLOY_KEYS`` of ``workers.deploy``.
        auto_batch_size: On a GPU (or under ``HPO_FAULT_OOM_ABOVE``), find the largest
            micro-batch that fits first (``workers.auto_batch``).
        task: What the model learns (``workers.tasks``); default: the data's task.
        checkpoints: Resume from ``checkpoints.latest`` (the newest whole checkpoint there or
            before it) and write checkpoints as planned: a report that carries one holds its
            temporary directory under ``CHECKPOINT_DIR_KEY`` (the caller hands it to Tune).
            Every report holds ``epochs_trained``, ``checkpoint_bytes_total`` (0 without
            checkpoints) and, when it resumed, ``resumed_from_epoch`` (and
            ``checkpoint_skipped``: why newer checkpoints were not whole).

    Returns:
        The metrics of the last epoch.

    Raises:
        ValueError: There are no training examples, or the optimizer is unknown.
    """
    run = TrialRun(hp, data, model_name, task or task_for(data.task), device, save_dir, started_at)
    run.build(auto_batch_size)
    metrics: dict[str, Any] = {}
    for epoch in range(run.restore(checkpoints), run.epochs):
        training = run.train_epoch(epoch)
        scores, predictions = run.evaluate()
        metrics = run.epoch_metrics(epoch, training, scores)
        stop = training.diverged or not math.isfinite(training.loss)
        if stop or epoch == run.epochs - 1:
            metrics.update(run.finish(predictions, metrics))
        metrics.update(run.cost())
        metrics.update(run.resume_metrics(epoch))
        if not stop:
            run.checkpoint(epoch, metrics)
        report(dict(metrics))
        metrics.pop(CHECKPOINT_DIR_KEY, None)
        if stop:
            run.diverged(epoch)
            break
    return metrics
