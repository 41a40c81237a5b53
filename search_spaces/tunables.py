"""The names a search space may tune and the metrics a trial reports.

Each tunable is consumed by the training loop in ``workers/``; a name outside this table is an
error at submit time, never a silent no-op.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

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
}

# Metrics every trial reports after each epoch, with the direction that makes them better.
METRICS: dict[str, Literal["maximize", "minimize"]] = {
    "eval_accuracy": "maximize",
    "eval_f1": "maximize",
    "eval_loss": "minimize",
    "train_loss": "minimize",
    "train_samples_per_second": "maximize",
}

# The Optuna trial number, added to each Tune trial's config (not a hyperparameter).
TRIAL_NUMBER_KEY = "hpo_trial_number"

# Keys of a trial's report that are bookkeeping, not objectives.
REPORT_KEYS = (*METRICS, "epoch")

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
)
# String keys of the cost: the kind of device that trained ("cpu" or "cuda").
COST_STRING_KEYS = ("device_kind",)
