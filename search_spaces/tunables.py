"""The names a search space may tune and the metrics a trial reports.

Each tunable is consumed by the training loop in ``workers/``; a name outside this table is an
error at submit time, never a silent no-op.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from search_spaces.tasks import Direction, known_metrics, registered_tasks

ValueKind = Literal["float", "int", "str"]


@dataclass(frozen=True)
class Tunable:
    """One hyperparameter the training loop understands."""

    kind: ValueKind
    default: float | int | str
    help: str
    low: float | None = None  # inclusive lower bound of legal values
    high: float | None = None  # inclusive upper bound of legal values
    choices: tuple[str, ...] | None = None


TUNABLES: dict[str, Tunable] = {
    "learning_rate": Tunable("float", 5e-5, "peak learning rate", low=1e-9, high=10.0),
    "batch_size": Tunable("int", 32, "per-worker batch size", low=1, high=4096),
    "weight_decay": Tunable("float", 0.0, "decoupled weight decay", low=0.0, high=1.0),
    "warmup_ratio": Tunable("float", 0.0, "share of steps in linear warm-up", low=0.0, high=1.0),
    "optimizer": Tunable("str", "adamw", "optimizer", choices=("adamw", "sgd")),
    "momentum": Tunable("float", 0.9, "SGD momentum", low=0.0, high=0.999999),
    "adam_beta1": Tunable("float", 0.9, "AdamW beta1", low=0.0, high=0.999999),
    "adam_beta2": Tunable("float", 0.999, "AdamW beta2", low=0.0, high=0.999999),
    "adam_epsilon": Tunable("float", 1e-8, "AdamW epsilon", low=1e-12, high=1e-2),
    "dropout": Tunable("float", 0.1, "hidden and attention dropout", low=0.0, high=0.9),
    "epochs": Tunable("int", 1, "training epochs", low=1, high=100),
    "max_seq_length": Tunable("int", 128, "tokens per example", low=8, high=4096),
    "seed": Tunable("int", 0, "seed of initialisation and data order", low=0, high=2**31 - 1),
    "max_grad_norm": Tunable("float", 1.0, "gradient clipping norm (0 = off)", low=0.0, high=1e6),
    "gradient_accumulation_steps": Tunable(
        "int", 1, "batches per optimizer step (effective batch = batch_size * this * workers)",
        low=1, high=1024,
    ),
    "finetune_method": Tunable(
        "str", "full", "train every weight, or LoRA adapters (peft)", choices=("full", "lora")
    ),
    "lora_r": Tunable("int", 8, "LoRA rank", low=1, high=1024),
    "lora_alpha": Tunable("int", 16, "LoRA scale numerator (scale = alpha / r)", low=1, high=4096),
    "lora_dropout": Tunable("float", 0.1, "dropout on the LoRA input", low=0.0, high=0.9),
    "compression": Tunable(
        "str", "none", "applied to the model after fine-tuning",
        choices=("none", "dynamic_int8", "prune_l1_30", "prune_l1_50"),
    ),
    "precision": Tunable(
        "str", "auto", "training precision (auto: bf16 on GPUs that have it, else fp32)",
        choices=("auto", "fp32", "bf16", "fp16"),
    ),
}  # fmt: skip

# Training metrics every trial reports after each epoch, with the direction that makes them
# better; the eval metrics are the task's (``search_spaces.tasks``).
TRAIN_METRICS: dict[str, Direction] = {
    "train_loss": "minimize",
    "train_samples_per_second": "maximize",
}

# The Optuna trial number, added to each Tune trial's config (not a hyperparameter).
TRIAL_NUMBER_KEY = "hpo_trial_number"
# The checkpoint a re-run of a trial interrupted in an earlier attempt of the study resumes
# from, added to its Tune config (not a hyperparameter).
RESUME_FROM_KEY = "hpo_resume_from"

# Keys of a trial's report that are bookkeeping, not objectives.
REPORT_KEYS = (*TRAIN_METRICS, "epoch")

# Where a trial ran (strings, stored with its metrics): the Ray node id, that node's IP and its
# host name. For a DDP trial: where its first training worker (rank 0) ran.
NODE_KEYS = ("worker_node_id", "worker_node_ip", "worker_hostname")

# The measured cost of a trial (floats, in every report; see workers/cost.py): the toy objective
# reports the first six and energy_estimated, a fine-tune all of them.
COST_KEYS = (
    "wall_time_s",
    "time_to_first_result_s",
    "device_seconds",
    "peak_rss_bytes",
    "peak_accelerator_bytes",
    "energy_joules",
    "energy_estimated",
    "train_tokens_per_second",
    "parameter_count",
    "trainable_parameter_count",
    "checkpoint_bytes_total",
)
# String keys of the cost: the kind of device that trained ("cpu" or "cuda").
COST_STRING_KEYS = ("device_kind",)

# How a fine-tune resumed (floats; workers/checkpoints.py): the epochs its checkpoint held
# (only in the reports of a trial that resumed from one) and the epochs this run trained itself.
# ``checkpoint_bytes_total`` (a cost key) is the bytes its kept checkpoints take.
RESUME_KEYS = ("resumed_from_epoch", "epochs_trained")
# String keys of it: why checkpoints were skipped when the trial resumed (truncated, corrupt),
# only when one was.
RESUME_STRING_KEYS = ("checkpoint_skipped",)

# How the training ran (floats, in every fine-tuning report): the per-step micro-batch the
# automatic batch size settled on, and examples per optimizer step over all workers.
RUN_KEYS = ("micro_batch_size", "effective_batch_size")
# How a DDP trial's workers started (floats, multi-worker fine-tunes only; workers/rank_group.py):
# which trial of its kept worker group it was (1: the group was started for it), how many
# seconds starting that group took, and on how many Ray nodes its ranks run.
DDP_KEYS = ("ddp_group_trials", "ddp_group_start_s", "ddp_group_nodes")
# String keys of how it ran: the precision actually used ("fp32", "bf16" or "fp16").
RUN_STRING_KEYS = ("precision_used",)

# Measured once, after the last epoch of a fine-tune (workers/deploy.py), on the CPU: the model
# as trained, and after its ``compression`` (equal to the former when compression is none). The
# compressed model's primary task metric (``compressed_eval_accuracy`` for classification) too.
DEPLOY_KEYS = (
    "model_bytes",
    "latency_b1_ms",
    "latency_b32_ms",
    "compressed_model_bytes",
    "compressed_latency_b1_ms",
    "compressed_latency_b32_ms",
)

_COST_DIRECTIONS: dict[str, Direction] = {
    key: "maximize" if key == "train_tokens_per_second" else "minimize"
    for key in COST_KEYS
    if key != "energy_estimated"  # a flag, not a cost
}
_DEPLOY_DIRECTIONS: dict[str, Direction] = dict.fromkeys(DEPLOY_KEYS, "minimize")


def metric_directions() -> dict[str, Direction]:
    """Every metric an objective or a constraint may name (the eval metrics of every registered
    task included), with the direction that makes it better."""
    return {**known_metrics(), **TRAIN_METRICS, **_COST_DIRECTIONS, **_DEPLOY_DIRECTIONS}


def final_only_metrics() -> frozenset[str]:
    """Metrics measured once at the end of a trial, not after every epoch (no early stopping)."""
    compressed = {info.compressed_metric for info in registered_tasks().values()}
    return frozenset({*DEPLOY_KEYS, *compressed})


def finetune_only_metrics() -> frozenset[str]:
    """Metrics only a fine-tune reports (the toy objective has no model, tokens or checkpoint)."""
    extra = {
        "train_tokens_per_second",
        "parameter_count",
        "trainable_parameter_count",
        "checkpoint_bytes_total",
    }
    return frozenset({*extra, *final_only_metrics()})
