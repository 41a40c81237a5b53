"""One trial's fine-tune as named phases: ``build`` (model, precision, micro-batch, DDP,
optimizer), ``restore`` (the epoch to start from), ``train_epoch``, ``evaluate``, ``finish``
(deploy metrics and the saved model, after the last epoch), ``report`` and ``checkpoint``.

The task (``workers.tasks``) supplies the head, the loss and the metrics; nothing here knows a
particular task. ``restore`` and ``checkpoint`` make trials resumable (``workers.checkpoints``):
with a ``CheckpointPlan`` rank 0 writes a checkpoint after every ``every_epochs`` epochs, and
every rank of a retried trial loads the newest whole one and continues from the next epoch.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from workers.auto_batch import fit_micro_batch, micro_batches, worst_case_probe
from workers.batching import batches_on, length_grouped_batches, shard_indices
from workers.checkpoints import (
    CHECKPOINT_DIR_KEY,
    CheckpointPlan,
    CheckpointTooLarge,
    Progress,
    checkpoint_bytes,
    first_whole,
    read_checkpoint,
    rng_states,
    set_rng_states,
    study_checkpoint_bytes,
    write_checkpoint,
)
from workers.cost import CostMeter, parameter_counts
from workers.data import TokenizedData
from workers.faults import check_simulated_oom, simulated_oom_limit
from workers.final_model import finish_model
from workers.lora import is_lora, with_lora
from workers.lr_schedule import linear_schedule_with_warmup
from workers.models import build_model
from workers.optimizers import make_optimizer
from workers.precision import autocast_for, grad_scaler, resolve_precision
from workers.ranks import all_reduce_sum
from workers.tasks.base import Task
from workers.tasks.evaluation import evaluate

logger = logging.getLogger(__name__)


# Optimizer settings a hyperparameter chooses (the current "lr" follows the schedule).
_GROUP_SETTINGS = ("initial_lr", "weight_decay", "betas", "eps", "momentum")


def _group_settings(optimizer: torch.optim.Optimizer) -> list[dict[str, Any]]:
    """Each parameter group's ``_GROUP_SETTINGS``."""
    return [{k: g[k] for k in _GROUP_SETTINGS if k in g} for g in optimizer.param_groups]


def default_device() -> torch.device:
    """CUDA (the current device) if available, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def finite_or_inf(value: float) -> float:
    """A loss as a comparable float: non-finite (diverged) becomes +inf."""
    return value if math.isfinite(value) else math.inf


@dataclass
class EpochTraining:
    """What one epoch's training measured, summed over the ranks."""

    loss: float
    samples_per_second: float
    tokens_per_second: float
    diverged: bool


class TrialRun:
    """The state of one trial's fine-tune (one DDP rank of it under a process group)."""

    def __init__(
        self,
        hp: dict[str, Any],
        data: TokenizedData,
        model_name: str,
        task: Task,
        device: torch.device | None = None,
        save_dir: str | None = None,
        started_at: float | None = None,
    ) -> None:
        if not data.train_ids:
            raise ValueError("no training examples")
        if hp.get("num_threads"):
            torch.set_num_threads(int(hp["num_threads"]))
        self.hp, self.model_name, self.task, self.save_dir = hp, model_name, task, save_dir
        self.distributed = dist.is_available() and dist.is_initialized()
        self.rank, self.world_size = (
            (dist.get_rank(), dist.get_world_size()) if self.distributed else (0, 1)
        )
        device = device or default_device()
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        self.device = device
        # NCCL reduces CUDA tensors; gloo reduces CPU ones.
        nccl = self.distributed and dist.get_backend() == "nccl"
        self.stats_device = device if nccl else torch.device("cpu")
        self.meter = CostMeter(device.type, device.index, started_at, use_rapl=not self.distributed)
        # Data tokenised at the study's largest length serves this trial's (maybe smaller) one.
        self.data = task.fit_length(data, int(hp["max_seq_length"]))
        self.lengths = [len(ids) for ids in self.data.train_ids]
        self.seed = int(hp["seed"])
        self.epochs = int(hp["epochs"])
        self.batch_size = int(hp["batch_size"])
        self.accumulate = int(hp["gradient_accumulation_steps"])
        self.oom_limit = simulated_oom_limit()
        self.plan: CheckpointPlan | None = None
        self.progress = Progress()
        self.start_epoch = 0
        self.resumed_from: int | None = None
        self.skipped: list[str] = []

    def build(self, auto_batch_size: bool) -> None:
        """The model (with LoRA), precision, the micro-batch that fits, DDP and the optimizer."""
        hp, task = self.hp, self.task
        model = build_model(
            self.model_name, self.data.num_labels, float(hp["dropout"]), self.seed,
            auto_class=task.auto_class, head=task.model_config(self.data),
        )  # fmt: skip
        if hp["finetune_method"] == "lora":
            token_head = task.auto_class.endswith("TokenClassification")
            model = with_lora(model, hp, token_task=token_head)
        self.model = model.to(self.device)
        self.precision = resolve_precision(str(hp["precision"]), self.device)
        self.autocast = autocast_for(self.precision, self.device)
        self.scaler = grad_scaler(self.precision, self.device)
        self.micro = self._micro_batch(auto_batch_size)
        torch.manual_seed(self.seed + self.rank)  # independent dropout masks per rank
        self.train_model = self._ddp(self.model) if self.distributed else self.model
        per_rank = math.ceil(len(self.data.train_ids) / self.world_size)
        total_steps = math.ceil(math.ceil(per_rank / self.batch_size) / self.accumulate)
        total_steps *= self.epochs
        self.optimizer = make_optimizer(self.model, hp)
        warmup_steps = math.ceil(float(hp["warmup_ratio"]) * total_steps)
        self.scheduler = linear_schedule_with_warmup(self.optimizer, warmup_steps, total_steps)
        self.parameters = [p for p in self.model.parameters() if p.requires_grad]
        self.counts = parameter_counts(self.model)
        self.optimizer.zero_grad(set_to_none=True)

    def _micro_batch(self, auto_batch_size: bool) -> int:
        """The batch size, or on a GPU (or a simulated OOM) the largest micro-batch that fits."""
        if not auto_batch_size or (self.device.type != "cuda" and self.oom_limit is None):
            return self.batch_size

        def probe_pass(batch: dict[str, torch.Tensor]) -> None:
            self._loss(self.model, batch).backward()

        probe = worst_case_probe(self.model, self.data, self.device, probe_pass)
        return fit_micro_batch(probe, self.batch_size, self.distributed, self.stats_device)

    def _ddp(self, model: torch.nn.Module) -> torch.nn.Module:
        # BERT's buffers are constant: no need to sync them before every forward pass.
        # (torch >= 2.13 renamed broadcast_buffers to forward_sync_buffers.)
        options = inspect.signature(DistributedDataParallel.__init__).parameters
        no_sync: dict[str, Any] = (
            {"forward_sync_buffers": False}
            if "forward_sync_buffers" in options
            else {"broadcast_buffers": False}
        )
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids, **no_sync)

    def restore(self, plan: CheckpointPlan | None = None) -> int:
        """Load the newest whole checkpoint of ``plan.latest`` and its older siblings (a
        truncated or corrupt one is skipped, with the reason kept for the reports); the epoch to
        start from (0: none, or none whole)."""
        self.plan = plan
        if plan is None or plan.latest is None:
            return 0
        directory, self.skipped = first_whole(Path(plan.latest))
        for reason in self.skipped:
            logger.warning("checkpoint skipped: %s", reason)
        if directory is None:
            return 0
        state, progress = read_checkpoint(directory, self.device)
        self.model.load_state_dict(state["model"], strict=not is_lora(self.model))
        chosen = _group_settings(self.optimizer)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if _group_settings(self.optimizer) != chosen:
            self._apply_settings(chosen)
        if self.scaler is not None and state.get("scaler") is not None:
            self.scaler.load_state_dict(state["scaler"])
        rngs = state["rng"]
        if self.rank < len(rngs):
            set_rng_states(rngs[self.rank])
        else:  # more ranks than when it was written: a fresh stream for this one
            torch.manual_seed(self.seed + self.rank + 1_000_003 * progress.epochs_done)
        progress.sizes.append(checkpoint_bytes(directory))
        self.progress = progress
        self.start_epoch = self.resumed_from = progress.epochs_done
        return progress.epochs_done

    def _apply_settings(self, chosen: list[dict[str, Any]]) -> None:
        """Keep this trial's optimizer settings over the checkpoint's (a population scheduler
        restored another trial's checkpoint under explored hyperparameters): the learning rate
        of the restored step on this trial's schedule, its weight decay, betas, epsilon."""
        groups = self.optimizer.param_groups
        for group, settings in zip(groups, chosen, strict=True):
            group.update(settings)
        self.scheduler.base_lrs = [float(group["initial_lr"]) for group in groups]
        step = self.scheduler.last_epoch
        for group, base, factor in zip(
            groups, self.scheduler.base_lrs, self.scheduler.lr_lambdas, strict=True
        ):
            group["lr"] = base * factor(step)
        self.scheduler._last_lr = [float(group["lr"]) for group in groups]

    def resume_metrics(self, epoch: int) -> dict[str, Any]:
        """How the trial resumed, for the report of ``epoch``: ``epochs_trained`` (by this run),
        ``checkpoint_bytes_total``, and ``resumed_from_epoch`` and ``checkpoint_skipped`` when
        they apply."""
        keep = self.plan.keep if self.plan is not None else 0
        metrics: dict[str, Any] = {
            "epochs_trained": float(epoch + 1 - self.start_epoch),
            "checkpoint_bytes_total": float(self.progress.kept_bytes(keep)),
        }
        if self.resumed_from is not None:
            metrics["resumed_from_epoch"] = float(self.resumed_from)
        if self.skipped:
            metrics["checkpoint_skipped"] = "; ".join(self.skipped)[-1000:]
        return metrics

    def _loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The task's mean loss of one (micro-)batch, the forward pass under autocast."""
        check_simulated_oom(len(batch["labels"]), self.oom_limit)
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        with self.autocast():
            output = model(**inputs)
        return self.task.loss(output.logits, batch["labels"])

    def _forward_backward(
        self, batch: dict[str, torch.Tensor], weight: float, sync: bool
    ) -> torch.Tensor:
        """Add ``weight`` * the batch's mean loss to the gradients (all-reduced if ``sync``)."""
        skip_sync = self.distributed and not sync
        no_sync = self.train_model.no_sync() if skip_sync else contextlib.nullcontext()  # type: ignore[operator]
        with no_sync:
            loss = self._loss(self.train_model, batch)
            scaled = loss * weight
            (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
        return loss.detach()

    def _step(self) -> bool:
        """Clip and take the optimizer step; False when the gradients are not finite."""
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        # Clip (an infinite bound only measures). Gradients are all-reduced, so their norm, and
        # so the decision to stop, agrees on all ranks. fp16's scaler skips overflowing steps.
        bound = float(self.hp["max_grad_norm"])
        norm = torch.nn.utils.clip_grad_norm_(self.parameters, bound if bound > 0 else math.inf)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        elif not torch.isfinite(norm):
            return False
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return True

    def train_epoch(self, epoch: int) -> EpochTraining:
        """One epoch over this rank's shard, in optimizer steps of ``accumulate`` batches, each
        in micro-batches; stops at the first step with non-finite gradients."""
        indices = shard_indices(len(self.lengths), epoch, self.seed, self.rank, self.world_size)
        rng = random.Random(self.seed + epoch + 7919 * (self.rank + 1))
        batches = length_grouped_batches(indices, self.lengths, self.batch_size, rng)
        sums = torch.zeros(4, dtype=torch.float64, device=self.device)
        diverged = False
        started = time.perf_counter()
        for first in range(0, len(batches), self.accumulate):
            group = batches[first : first + self.accumulate]
            examples = sum(len(batch) for batch in group)
            pieces = [piece for batch in group for piece in micro_batches(batch, self.micro)]
            for index, (count, batch) in enumerate(batches_on(self.data, pieces, self.device)):
                loss = self._forward_backward(batch, count / examples, index == len(pieces) - 1)
                sums[0] += loss.double() * count
                sums[1] += count
                sums[3] += batch["attention_mask"].sum()  # non-padding tokens
            if not self._step():
                diverged = True
                break
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        sums[2] = time.perf_counter() - started
        # Sums over ranks: loss, examples, seconds (averaged, so all ranks agree), tokens.
        loss, count, seconds, tokens = all_reduce_sum(
            sums.to(self.stats_device), self.distributed
        ).tolist()
        seconds = max(seconds / self.world_size, 1e-9)
        mean = finite_or_inf(loss / count) if count else math.inf
        return EpochTraining(mean, count / seconds, tokens / seconds, diverged)

    def evaluate(self) -> tuple[dict[str, Any], list[list[float]]]:
        """eval_loss and the task's metrics (identical on all ranks), and the predictions."""
        return evaluate(
            self.model, self.task, self.data, self.batch_size, self.device, self.autocast,
            self.rank, self.world_size, self.stats_device,
        )  # fmt: skip

    def epoch_metrics(
        self, epoch: int, training: EpochTraining, scores: dict[str, Any]
    ) -> dict[str, Any]:
        """An epoch's report: eval scores, training figures and how the trial ran."""
        return {
            **scores,
            "train_loss": training.loss,
            "train_samples_per_second": training.samples_per_second,
            "train_tokens_per_second": training.tokens_per_second,
            "epoch": float(epoch + 1),
            "micro_batch_size": float(self.micro),
            "effective_batch_size": float(self.batch_size * self.accumulate * self.world_size),
            "precision_used": self.precision,
        }

    def finish(self, predictions: list[list[float]], metrics: dict[str, Any]) -> dict[str, Any]:
        """After the last epoch: deployment metrics, and the saved model with its head."""
        primary = metrics[self.task.info.primary_metric]
        return finish_model(
            self.model, self.hp, self.model_name, self.save_dir, self.task, self.data,
            predictions, self.device, self.stats_device, self.rank, self.distributed, primary,
        )  # fmt: skip

    def cost(self) -> dict[str, Any]:
        """The measured cost so far, summed over the ranks, with the parameter counts."""
        sums = torch.tensor(self.meter.sums(), dtype=torch.float64, device=self.stats_device)
        totals = all_reduce_sum(sums, self.distributed).tolist()
        return {**self.meter.metrics(totals), **self.counts}

    def checkpoint(self, epoch: int, metrics: dict[str, Any]) -> None:
        """Record ``epoch``'s report, and when the plan says so write a checkpoint of what
        resuming after it needs (rank 0; every rank hands over its RNG states): its directory
        goes to Tune with the report (``CHECKPOINT_DIR_KEY``), and ``checkpoint_bytes_total``
        counts it.

        Raises:
            CheckpointTooLarge: The study's checkpoints would exceed ``plan.max_bytes``.
        """
        self.progress.history.append(
            {k: v for k, v in metrics.items() if isinstance(v, int | float | str)}
        )
        self.progress.epochs_done = epoch + 1
        plan = self.plan
        if plan is None or not plan.due(epoch, self.epochs):
            return
        rngs = [rng_states()]
        if self.distributed:
            gathered: list[Any] = [None] * self.world_size
            dist.all_gather_object(gathered, rngs[0])
            rngs = gathered
        if self.rank != 0:
            return
        trained = {n for n, p in self.model.named_parameters() if p.requires_grad}
        weights = self.model.state_dict()
        if is_lora(self.model):  # the adapters and the head; the frozen base is rebuilt
            weights = {k: v for k, v in weights.items() if k in trained}
        state = {
            "model": weights,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": rngs,
        }
        directory = write_checkpoint(state, self.progress)
        size = checkpoint_bytes(directory)
        self.progress.sizes.append(size)
        own = self.progress.kept_bytes(plan.keep)
        total = own + (study_checkpoint_bytes(Path(plan.trial_dir)) if plan.trial_dir else 0)
        if total > plan.max_bytes:
            shutil.rmtree(directory, ignore_errors=True)
            raise CheckpointTooLarge(
                f"the checkpoint of epoch {epoch + 1} ({size} bytes) does not fit: the study's "
                f"checkpoints would take {total} bytes, over checkpoint.max_bytes "
                f"({plan.max_bytes} bytes)"
            )
        metrics["checkpoint_bytes_total"] = float(own)
        metrics[CHECKPOINT_DIR_KEY] = str(directory)

    def diverged(self, epoch: int) -> None:
        if self.rank == 0:
            logger.warning("training diverged in epoch %d; stopping early", epoch + 1)
