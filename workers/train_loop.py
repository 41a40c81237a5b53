"""The fine-tuning loop of one trial: single process or one rank of a DDP group."""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from transformers import get_linear_schedule_with_warmup

from workers.cost import CostMeter, parameter_counts
from workers.data import TokenizedData, collate, truncate
from workers.models import build_model

logger = logging.getLogger(__name__)

# Batches are formed from chunks of this many batches sorted by length (less padding).
_LENGTH_GROUP_BATCHES = 50


def default_device() -> torch.device:
    """CUDA (the current device) if available, else the CPU.

    Returns:
        The device to train on.
    """
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def shard_indices(n: int, epoch: int, seed: int, rank: int, world_size: int) -> list[int]:
    """This rank's training examples of one epoch, like ``DistributedSampler``.

    Every rank draws the same permutation (seeded by ``seed + epoch``), pads it by repeating
    examples to a multiple of ``world_size`` and takes every ``world_size``-th example, so all
    ranks get the same number of examples.

    Args:
        n: Number of training examples (at least 1).
        epoch: Epoch number.
        seed: The trial's seed.
        rank: This process's rank.
        world_size: Number of processes.

    Returns:
        Indices of this rank's examples, ``ceil(n / world_size)`` of them.
    """
    order = list(range(n))
    random.Random(seed + epoch).shuffle(order)
    total = math.ceil(n / world_size) * world_size
    order = (order * math.ceil(total / n))[:total]
    return order[rank:total:world_size]


def length_grouped_batches(
    indices: list[int], lengths: list[int], batch_size: int, rng: random.Random
) -> list[list[int]]:
    """Split indices into batches of similar lengths, in random order.

    Consecutive chunks of ``50 * batch_size`` indices are sorted by length and cut into
    batches; the batch order is then shuffled. The number of batches is always
    ``ceil(len(indices) / batch_size)``.

    Args:
        indices: Example indices in (shuffled) epoch order.
        lengths: Token count of every example.
        batch_size: Examples per batch.
        rng: Random source of the batch order.

    Returns:
        The batches.
    """
    chunk = batch_size * _LENGTH_GROUP_BATCHES
    batches: list[list[int]] = []
    for start in range(0, len(indices), chunk):
        part = sorted(indices[start : start + chunk], key=lambda i: lengths[i], reverse=True)
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


def _optimizer(model: torch.nn.Module, hp: dict[str, Any]) -> torch.optim.Optimizer:
    """AdamW or SGD; biases and normalisation weights get no weight decay."""
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, param in model.named_parameters():
        if param.requires_grad:
            exempt = param.ndim < 2 or "norm" in name.lower()
            (no_decay if exempt else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": float(hp["weight_decay"])},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    lr = float(hp["learning_rate"])
    if hp["optimizer"] == "adamw":
        betas = (float(hp["adam_beta1"]), float(hp["adam_beta2"]))
        options = {"lr": lr, "betas": betas, "eps": float(hp["adam_epsilon"])}
        return _fused_if_possible(torch.optim.AdamW, groups, options)
    if hp["optimizer"] == "sgd":
        options = {"lr": lr, "momentum": float(hp["momentum"])}
        return _fused_if_possible(torch.optim.SGD, groups, options)
    raise ValueError(f"unknown optimizer {hp['optimizer']!r}; known: adamw, sgd")


def _fused_if_possible(
    kind: type[torch.optim.Optimizer], groups: list[dict[str, Any]], options: dict[str, Any]
) -> torch.optim.Optimizer:
    """The optimizer with torch's fused kernel where this torch has one for these tensors.

    The fused kernel updates every tensor in one pass; the default per-tensor loop costs about
    as much as the forward and backward pass of MiniLM on short sentences on the CPU.
    """
    params = [p for group in groups for p in group["params"]]
    if params and {p.device.type for p in params} <= {"cpu", "cuda"}:
        try:
            return kind(groups, fused=True, **options)  # type: ignore[call-arg]
        except (RuntimeError, ValueError, TypeError):
            pass  # an older torch, or a dtype the fused kernel lacks
    return kind(groups, **options)


def _all_reduce(values: torch.Tensor, distributed: bool) -> torch.Tensor:
    """Sum a float64 vector over all ranks (identity when not distributed)."""
    if distributed:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def _finite_or_inf(value: float) -> float:
    """A loss as a comparable float: non-finite (diverged) becomes +inf."""
    return value if math.isfinite(value) else math.inf


def _batches_on(
    ids: list[list[int]],
    labels: list[int],
    batches: list[list[int]],
    pad_id: int,
    device: torch.device,
) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
    """Collate and move each batch to the device; yields (examples, tensors)."""
    for batch in batches:
        tensors = collate([ids[i] for i in batch], [labels[i] for i in batch], pad_id)
        yield len(batch), {k: v.to(device, non_blocking=True) for k, v in tensors.items()}


@torch.no_grad()
def _evaluate(
    model: torch.nn.Module,
    ids: list[list[int]],
    labels: list[int],
    num_labels: int,
    hp: dict[str, Any],
    pad_id: int,
    device: torch.device,
    autocast: Callable[[], contextlib.AbstractContextManager[Any]],
    rank: int,
    world_size: int,
) -> torch.Tensor:
    """This rank's eval sums: [loss, count, correct, TP per class, predicted, actual]."""
    model.eval()
    stats = torch.zeros(3 + 3 * num_labels, dtype=torch.float64, device=device)
    mine = sorted(range(rank, len(ids), world_size), key=lambda i: len(ids[i]))
    size = int(hp["batch_size"])
    batches = [mine[i : i + size] for i in range(0, len(mine), size)]
    k = num_labels
    for count, batch in _batches_on(ids, labels, batches, pad_id, device):
        with autocast():
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        logits = logits.logits.float()
        target = batch["labels"]
        predicted = logits.argmax(dim=-1)
        hits = predicted == target
        stats[0] += F.cross_entropy(logits, target, reduction="sum").double()
        stats[1] += count
        stats[2] += hits.sum()
        stats[3 : 3 + k] += torch.bincount(target[hits], minlength=k)[:k]
        stats[3 + k : 3 + 2 * k] += torch.bincount(predicted, minlength=k)[:k]
        stats[3 + 2 * k :] += torch.bincount(target, minlength=k)[:k]
    model.train()
    return stats


def _eval_metrics(stats: torch.Tensor, num_labels: int) -> dict[str, float]:
    """Loss, accuracy and F1 (binary: of class 1; else macro) from all-reduced eval sums."""
    values = stats.tolist()
    k = num_labels
    loss, count, correct = values[0], values[1], values[2]
    tp, predicted, actual = values[3 : 3 + k], values[3 + k : 3 + 2 * k], values[3 + 2 * k :]
    # F1 = 2TP / (2TP + FP + FN) = 2TP / (predicted + actual).
    f1 = [
        2 * t / (p + a) if p + a > 0 else 0.0 for t, p, a in zip(tp, predicted, actual, strict=True)
    ]
    return {
        "eval_loss": _finite_or_inf(loss / count) if count else math.inf,
        "eval_accuracy": correct / count if count else 0.0,
        "eval_f1": f1[1] if k == 2 else sum(f1) / k,
    }


def run_training(
    hp: dict[str, Any],
    data: TokenizedData,
    model_name: str,
    report: Callable[[dict[str, Any]], None],
    device: torch.device | None = None,
    save_dir: str | None = None,
    started_at: float | None = None,
) -> dict[str, Any]:
    """Fine-tune a sequence classifier and report eval metrics after every epoch.

    Under an initialised ``torch.distributed`` process group this runs as one DDP rank: the
    training examples are sharded (equal counts per rank), the eval sums are all-reduced, and
    every rank reports identical metrics. A diverged run (non-finite gradients) stops early,
    still evaluates, and reports its losses as +inf.

    Args:
        hp: Every tunable of ``search_spaces.tunables.TUNABLES``; an optional ``num_threads``
            sets ``torch.set_num_threads``.
        data: Tokenised train and eval data.
        model_name: "tiny-bert", "minilm-l6", a local model directory or a hub id.
        report: Called on every rank after every epoch with eval_loss, eval_accuracy, eval_f1,
            train_loss, train_samples_per_second and epoch.
        device: Where to train; default CUDA if available, else the CPU.
        save_dir: Where to save the final model and tokenizer (``save_pretrained``; rank 0
            only, atomically, before the last report). The last report then also holds
            ``eval_predictions_head`` (predicted labels of the first 8 eval examples, e.g.
            "1,0,1") and ``checkpoint_bytes`` (size of the saved directory), on every rank.
        started_at: When the trial started (``time.time()``; default: now). Every report also
            holds the cost keys of ``workers.cost`` (summed over ranks), train_tokens_per_second,
            parameter_count and trainable_parameter_count.

    Returns:
        The metrics of the last epoch.

    Raises:
        ValueError: There are no training examples, or the optimizer is unknown.
    """
    if not data.train_ids:
        raise ValueError("no training examples")
    if hp.get("num_threads"):
        torch.set_num_threads(int(hp["num_threads"]))
    distributed = dist.is_available() and dist.is_initialized()
    rank, world_size = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    device = device or default_device()
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    # NCCL reduces CUDA tensors; gloo reduces CPU ones.
    stats_device = device if distributed and dist.get_backend() == "nccl" else torch.device("cpu")

    meter = CostMeter(device.type, device.index, started_at, use_rapl=not distributed)
    seed = int(hp["seed"])
    model = build_model(model_name, data.num_labels, float(hp["dropout"]), seed).to(device)
    torch.manual_seed(seed + rank)  # independent dropout masks per rank
    train_model: torch.nn.Module = model
    if distributed:
        # BERT's buffers are constant: no need to sync them before every forward pass.
        # (torch >= 2.13 renamed broadcast_buffers to forward_sync_buffers.)
        ddp_options = inspect.signature(DistributedDataParallel.__init__).parameters
        no_sync: dict[str, Any] = (
            {"forward_sync_buffers": False}
            if "forward_sync_buffers" in ddp_options
            else {"broadcast_buffers": False}
        )
        train_model = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, **no_sync
        )

    def autocast() -> contextlib.AbstractContextManager[Any]:
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # Data tokenised at the study's largest length serves this trial's (maybe smaller) one.
    max_length = int(hp["max_seq_length"])
    train_ids = [truncate(ids, max_length, data.sep_id) for ids in data.train_ids]
    eval_ids = [truncate(ids, max_length, data.sep_id) for ids in data.eval_ids]
    lengths = [len(ids) for ids in train_ids]

    epochs = int(hp["epochs"])
    batch_size = int(hp["batch_size"])
    steps_per_epoch = math.ceil(math.ceil(len(train_ids) / world_size) / batch_size)
    total_steps = steps_per_epoch * epochs
    optimizer = _optimizer(model, hp)
    warmup_steps = math.ceil(float(hp["warmup_ratio"]) * total_steps)
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup_steps, total_steps)
    max_grad_norm = float(hp["max_grad_norm"])
    parameters = [p for p in model.parameters() if p.requires_grad]
    counts = parameter_counts(model)

    metrics: dict[str, Any] = {}
    for epoch in range(epochs):
        indices = shard_indices(len(train_ids), epoch, seed, rank, world_size)
        rng = random.Random(seed + epoch + 7919 * (rank + 1))
        batches = length_grouped_batches(indices, lengths, batch_size, rng)
        train_sums = torch.zeros(4, dtype=torch.float64, device=device)
        diverged = False
        started = time.perf_counter()
        for count, batch in _batches_on(train_ids, data.train_labels, batches, data.pad_id, device):
            with autocast():
                output = train_model(
                    input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
                )
            loss = F.cross_entropy(output.logits.float(), batch["labels"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            train_sums[0] += loss.detach().double() * count
            train_sums[1] += count
            train_sums[3] += batch["attention_mask"].sum()  # non-padding tokens
            # Clip (an infinite bound only measures). Gradients are all-reduced, so their norm,
            # and so the decision to stop, agrees on all ranks.
            norm = torch.nn.utils.clip_grad_norm_(
                parameters, max_grad_norm if max_grad_norm > 0 else math.inf
            )
            if not torch.isfinite(norm):
                diverged = True
                break
            optimizer.step()
            scheduler.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        train_sums[2] = time.perf_counter() - started
        # Sums over ranks: loss, examples, seconds (averaged below, so all ranks agree), tokens.
        train = _all_reduce(train_sums.to(stats_device), distributed).tolist()
        stats = _evaluate(
            model, eval_ids, data.eval_labels, data.num_labels, hp, data.pad_id, device,
            autocast, rank, world_size,
        )  # fmt: skip
        metrics = _eval_metrics(_all_reduce(stats.to(stats_device), distributed), data.num_labels)
        train_loss = _finite_or_inf(train[0] / train[1]) if train[1] else math.inf
        metrics["train_loss"] = train_loss
        metrics["train_samples_per_second"] = train[1] / max(train[2] / world_size, 1e-9)
        metrics["train_tokens_per_second"] = train[3] / max(train[2] / world_size, 1e-9)
        metrics["epoch"] = float(epoch + 1)
        last = diverged or not math.isfinite(train_loss) or epoch == epochs - 1
        if last and save_dir is not None:
            metrics.update(
                _save_final_model(
                    model, model_name, save_dir, eval_ids, data, max_length, device,
                    stats_device, rank, distributed,
                )
            )  # fmt: skip
        cost = torch.tensor(meter.sums(), dtype=torch.float64, device=stats_device)
        metrics.update(meter.metrics(_all_reduce(cost, distributed).tolist()), **counts)
        report(dict(metrics))
        if diverged or not math.isfinite(train_loss):
            if rank == 0:
                logger.warning("training diverged in epoch %d; stopping early", epoch + 1)
            break
    return metrics


@torch.no_grad()
def predictions_head(
    model: torch.nn.Module, eval_ids: list[list[int]], pad_id: int, device: torch.device
) -> str:
    """Predicted labels of the first 8 eval examples, one padded float32 batch, e.g. "1,0,1".

    Every DDP rank holds the same weights, so every rank computes the same labels.
    """
    from workers.artifacts import PREDICTIONS_HEAD

    head = eval_ids[:PREDICTIONS_HEAD]
    if not head:
        return ""
    batch = collate(head, [0] * len(head), pad_id)
    was_training = model.training
    model.eval()
    logits = model(
        input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)
    ).logits
    model.train(was_training)
    return ",".join(str(int(label)) for label in logits.float().argmax(dim=-1).tolist())


def _save_final_model(
    model: torch.nn.Module,
    model_name: str,
    save_dir: str,
    eval_ids: list[list[int]],
    data: TokenizedData,
    max_length: int,
    device: torch.device,
    stats_device: torch.device,
    rank: int,
    distributed: bool,
) -> dict[str, Any]:
    """Rank 0 saves the model; every rank gets the same eval_predictions_head and size."""
    from pathlib import Path

    from workers.artifacts import save_model
    from workers.models import build_tokenizer

    head = predictions_head(model, eval_ids, data.pad_id, device)
    size = torch.zeros(1, dtype=torch.float64, device=stats_device)
    if rank == 0:
        size[0] = save_model(model, build_tokenizer(model_name), Path(save_dir), max_length)
    # Also a barrier: no rank reports (and ends the trial) before the model is saved.
    size = _all_reduce(size, distributed)
    return {"eval_predictions_head": head, "checkpoint_bytes": int(size.item())}
