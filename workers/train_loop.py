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
from torch.nn.parallel import DistributedDataParallel

from workers.auto_batch import fit_micro_batch, micro_batches, worst_case_probe
from workers.cost import CostMeter, parameter_counts
from workers.data import TokenizedData, collate
from workers.faults import check_simulated_oom, simulated_oom_limit
from workers.final_model import finish_model
from workers.lora import with_lora
from workers.lr_schedule import linear_schedule_with_warmup
from workers.models import build_model
from workers.precision import autocast_for, grad_scaler, resolve_precision
from workers.ranks import all_reduce_sum
from workers.tasks import task_for
from workers.tasks.base import Task
from workers.tasks.evaluation import evaluate

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


def _batch_loss(
    model: torch.nn.Module,
    task: Task,
    batch: dict[str, torch.Tensor],
    autocast: Callable[[], contextlib.AbstractContextManager[Any]],
    oom_limit: int | None,
) -> torch.Tensor:
    """The task's mean loss of one (micro-)batch, the forward pass under autocast."""
    check_simulated_oom(len(batch["labels"]), oom_limit)
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with autocast():
        output = model(**inputs)
    return task.loss(output.logits, batch["labels"])


def _finite_or_inf(value: float) -> float:
    """A loss as a comparable float: non-finite (diverged) becomes +inf."""
    return value if math.isfinite(value) else math.inf


def _batches_on(
    data: TokenizedData, batches: list[list[int]], device: torch.device
) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
    """Collate and move each batch of training examples to the device; yields (examples,
    tensors)."""
    for batch in batches:
        types = [data.train_types[i] for i in batch] if data.train_types is not None else None
        rows = [data.train_ids[i] for i in batch]
        tensors = collate(rows, [data.train_labels[i] for i in batch], data.pad_id, types)
        yield len(batch), {k: v.to(device, non_blocking=True) for k, v in tensors.items()}


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
    task = task or task_for(data.task)
    model = build_model(
        model_name, data.num_labels, float(hp["dropout"]), seed,
        auto_class=task.auto_class, head=task.model_config(data),
    )  # fmt: skip
    if hp["finetune_method"] == "lora":
        model = with_lora(model, hp, token_task=task.auto_class.endswith("TokenClassification"))
    model = model.to(device)
    precision = resolve_precision(str(hp["precision"]), device)
    autocast = autocast_for(precision, device)
    scaler = grad_scaler(precision, device)
    oom_limit = simulated_oom_limit()

    # Data tokenised at the study's largest length serves this trial's (maybe smaller) one.
    data = task.fit_length(data, int(hp["max_seq_length"]))
    train_ids = data.train_ids
    lengths = [len(ids) for ids in train_ids]

    epochs = int(hp["epochs"])
    batch_size = int(hp["batch_size"])
    accumulate = int(hp["gradient_accumulation_steps"])
    micro = batch_size
    if auto_batch_size and (device.type == "cuda" or oom_limit is not None):

        def probe_pass(batch: dict[str, torch.Tensor]) -> None:
            _batch_loss(model, task, batch, autocast, oom_limit).backward()

        probe = worst_case_probe(model, data, device, probe_pass)
        micro = fit_micro_batch(probe, batch_size, distributed, stats_device)
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

    def forward_backward(batch: dict[str, torch.Tensor], weight: float, sync: bool) -> torch.Tensor:
        """Add ``weight`` * the batch's mean loss to the gradients (all-reduced if ``sync``)."""
        skip_sync = distributed and not sync
        with train_model.no_sync() if skip_sync else contextlib.nullcontext():  # type: ignore[operator]
            loss = _batch_loss(train_model, task, batch, autocast, oom_limit)
            scaled = loss * weight
            (scaler.scale(scaled) if scaler is not None else scaled).backward()
        return loss.detach()

    batches_per_epoch = math.ceil(math.ceil(len(train_ids) / world_size) / batch_size)
    total_steps = math.ceil(batches_per_epoch / accumulate) * epochs
    optimizer = _optimizer(model, hp)
    warmup_steps = math.ceil(float(hp["warmup_ratio"]) * total_steps)
    scheduler = linear_schedule_with_warmup(optimizer, warmup_steps, total_steps)
    max_grad_norm = float(hp["max_grad_norm"])
    parameters = [p for p in model.parameters() if p.requires_grad]
    counts = parameter_counts(model)
    run: dict[str, Any] = {
        "micro_batch_size": float(micro),
        "effective_batch_size": float(batch_size * accumulate * world_size),
        "precision_used": precision,
    }

    metrics: dict[str, Any] = {}
    optimizer.zero_grad(set_to_none=True)
    for epoch in range(epochs):
        indices = shard_indices(len(train_ids), epoch, seed, rank, world_size)
        rng = random.Random(seed + epoch + 7919 * (rank + 1))
        batches = length_grouped_batches(indices, lengths, batch_size, rng)
        train_sums = torch.zeros(4, dtype=torch.float64, device=device)
        diverged = False
        started = time.perf_counter()
        for first in range(0, len(batches), accumulate):
            # One optimizer step: `accumulate` batches, each in micro-batches of `micro`.
            group = batches[first : first + accumulate]
            examples = sum(len(batch) for batch in group)
            pieces = [piece for batch in group for piece in micro_batches(batch, micro)]
            on_device = _batches_on(data, pieces, device)
            for index, (count, batch) in enumerate(on_device):
                loss = forward_backward(batch, count / examples, sync=index == len(pieces) - 1)
                train_sums[0] += loss.double() * count
                train_sums[1] += count
                train_sums[3] += batch["attention_mask"].sum()  # non-padding tokens
            if scaler is not None:
                scaler.unscale_(optimizer)
            # Clip (an infinite bound only measures). Gradients are all-reduced, so their norm,
            # and so the decision to stop, agrees on all ranks. fp16's scaler skips the steps
            # with overflowing gradients itself.
            norm = torch.nn.utils.clip_grad_norm_(
                parameters, max_grad_norm if max_grad_norm > 0 else math.inf
            )
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            elif not torch.isfinite(norm):
                diverged = True
                break
            else:
                optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        train_sums[2] = time.perf_counter() - started
        # Sums over ranks: loss, examples, seconds (averaged below, so all ranks agree), tokens.
        train = all_reduce_sum(train_sums.to(stats_device), distributed).tolist()
        metrics, predictions = evaluate(
            model, task, data, batch_size, device, autocast, rank, world_size, stats_device
        )
        train_loss = _finite_or_inf(train[0] / train[1]) if train[1] else math.inf
        metrics["train_loss"] = train_loss
        metrics["train_samples_per_second"] = train[1] / max(train[2] / world_size, 1e-9)
        metrics["train_tokens_per_second"] = train[3] / max(train[2] / world_size, 1e-9)
        metrics["epoch"] = float(epoch + 1)
        metrics.update(run)
        last = diverged or not math.isfinite(train_loss) or epoch == epochs - 1
        if last:
            metrics.update(
                finish_model(
                    model, hp, model_name, save_dir, task, data, predictions, device,
                    stats_device, rank, distributed, metrics[task.info.primary_metric],
                )
            )  # fmt: skip
        cost = torch.tensor(meter.sums(), dtype=torch.float64, device=stats_device)
        metrics.update(meter.metrics(all_reduce_sum(cost, distributed).tolist()), **counts)
        report(dict(metrics))
        if diverged or not math.isfinite(train_loss):
            if rank == 0:
                logger.warning("training diverged in epoch %d; stopping early", epoch + 1)
            break
    return metrics
