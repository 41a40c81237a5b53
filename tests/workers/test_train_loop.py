"""Tests of the training loop: metrics, learning-rate sensitivity, optimizers, divergence, DDP."""

from __future__ import annotations

import json
import math
import random
import socket
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import workers.batching as batching
import workers.trial_run as trial_run
from search_spaces.tasks import BUILTIN_TASKS
from search_spaces.tunables import (
    COST_KEYS,
    COST_STRING_KEYS,
    DEPLOY_KEYS,
    REPORT_KEYS,
    RUN_KEYS,
    RUN_STRING_KEYS,
    TUNABLES,
)
from workers.data import TokenizedData, synthetic_sentiment, tokenize
from workers.faults import OOM_ENV
from workers.models import build_model
from workers.optimizers import make_optimizer
from workers.tiny_bert import build_tiny_bert_tokenizer
from workers.train_loop import length_grouped_batches, run_training, shard_indices

# What every epoch's report holds; the last one adds DEPLOY_KEYS and compressed_eval_accuracy.
CLASSIFICATION = BUILTIN_TASKS["classification"]
EVERY_REPORT = {
    *CLASSIFICATION.metrics, *REPORT_KEYS, *COST_KEYS, *COST_STRING_KEYS, *RUN_KEYS,
    *RUN_STRING_KEYS, "epochs_trained",
}  # fmt: skip
FINAL = (*DEPLOY_KEYS, CLASSIFICATION.compressed_metric)


def _hp(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {name: tunable.default for name, tunable in TUNABLES.items()}
    values.update(epochs=2, batch_size=16, max_seq_length=64, learning_rate=3e-3)
    values.update(overrides)
    return values


@pytest.fixture(scope="module")
def data() -> TokenizedData:
    text = synthetic_sentiment(n_train=512, n_eval=256, seed=0)
    return tokenize(text, build_tiny_bert_tokenizer(), max_length=64)


def _train(hp: dict[str, Any], data: TokenizedData) -> list[dict[str, float]]:
    reports: list[dict[str, float]] = []
    last = run_training(hp, data, "tiny-bert", reports.append, device=torch.device("cpu"))
    assert reports and last == reports[-1]
    return reports


def test_reports_every_epoch_with_valid_metrics(data: TokenizedData) -> None:
    reports = _train(_hp(epochs=3), data)
    assert [r["epoch"] for r in reports] == [1, 2, 3]
    for metrics in reports:
        final = FINAL if metrics is reports[-1] else ()
        assert set(metrics) == {*EVERY_REPORT, *final}
        assert metrics["device_kind"] == "cpu" and metrics["precision_used"] == "fp32"
        strings = {*COST_STRING_KEYS, *RUN_STRING_KEYS}
        assert all(isinstance(v, float) for k, v in metrics.items() if k not in strings)
        assert metrics["parameter_count"] >= metrics["trainable_parameter_count"] > 0
        assert metrics["train_tokens_per_second"] > metrics["train_samples_per_second"]
        assert metrics["wall_time_s"] >= metrics["time_to_first_result_s"] > 0
        assert metrics["device_seconds"] > 0 and metrics["peak_rss_bytes"] > 10 * 2**20
        assert 0.0 <= metrics["eval_accuracy"] <= 1.0
        assert 0.0 <= metrics["eval_f1"] <= 1.0
        assert 0.0 < metrics["eval_loss"] < 10.0
        assert 0.0 < metrics["train_loss"] < 10.0
        assert metrics["train_samples_per_second"] > 0


def test_good_learning_rate_beats_a_tiny_one(data: TokenizedData) -> None:
    good = _train(_hp(learning_rate=3e-3), data)[-1]
    bad = _train(_hp(learning_rate=1e-7), data)[-1]
    assert good["eval_accuracy"] > 0.75
    assert bad["eval_accuracy"] < 0.6
    assert good["eval_accuracy"] - bad["eval_accuracy"] > 0.2
    assert good["train_loss"] < bad["train_loss"]


def test_sgd_runs(data: TokenizedData) -> None:
    reports = _train(_hp(optimizer="sgd", learning_rate=0.05, momentum=0.9), data)
    assert len(reports) == 2
    assert all(math.isfinite(r["train_loss"]) for r in reports)
    assert all(0.0 <= r["eval_accuracy"] <= 1.0 for r in reports)


# A change of each tunable that must change the outcome of a short run (optimizer-specific
# ones under their optimizer).
CHANGES: dict[str, dict[str, Any]] = {
    "learning_rate": {"learning_rate": 1e-3},
    "batch_size": {"batch_size": 8},
    "weight_decay": {"weight_decay": 0.5},
    "warmup_ratio": {"warmup_ratio": 0.5},
    "optimizer": {"optimizer": "sgd"},
    "momentum": {"optimizer": "sgd", "momentum": 0.0},
    "adam_beta1": {"adam_beta1": 0.5},
    "adam_beta2": {"adam_beta2": 0.9},
    "adam_epsilon": {"adam_epsilon": 1e-3},
    "dropout": {"dropout": 0.3},
    "epochs": {"epochs": 2},
    "max_seq_length": {"max_seq_length": 8},
    "seed": {"seed": 1},
    "max_grad_norm": {"max_grad_norm": 0.01},
    "gradient_accumulation_steps": {"gradient_accumulation_steps": 3},
    "finetune_method": {"finetune_method": "lora"},
    "lora_r": {"finetune_method": "lora", "lora_r": 2},
    "lora_alpha": {"finetune_method": "lora", "lora_alpha": 64},
    "lora_dropout": {"finetune_method": "lora", "lora_dropout": 0.0},
    "compression": {"compression": "dynamic_int8"},
    "precision": {"precision": "bf16"},
}


def test_every_tunable_is_used() -> None:
    assert set(CHANGES) == set(TUNABLES)
    small = tokenize(synthetic_sentiment(96, 32, 0), build_tiny_bert_tokenizer(), max_length=64)

    def outcome(**overrides: Any) -> list[tuple[float, ...]]:
        reports = _train(_hp(**{"epochs": 1, **overrides}), small)
        last = reports[-1]["compressed_model_bytes"]
        return [(r["train_loss"], r["eval_loss"], r["epoch"], last) for r in reports]

    baseline = outcome()
    assert outcome() == baseline  # deterministic
    references = {"momentum": outcome(optimizer="sgd"), "lora": outcome(finetune_method="lora")}
    for name, change in CHANGES.items():
        reference = references.get(name.split("_")[0], baseline)
        assert outcome(**change) != reference, name


def test_optimizer_uses_its_hyperparameters() -> None:
    model = build_model("tiny-bert", 2, 0.1, seed=0)
    hp = _hp(weight_decay=0.05, adam_beta1=0.8, adam_beta2=0.95, adam_epsilon=1e-6)
    adamw = make_optimizer(model, hp)
    assert isinstance(adamw, torch.optim.AdamW)
    decay, no_decay = adamw.param_groups
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (0.05, 0.0)
    assert decay["betas"] == (0.8, 0.95) and decay["eps"] == 1e-6 and decay["lr"] == 3e-3
    # Biases and LayerNorm weights are exempt from weight decay, matrices are not.
    exempt = {id(p) for p in no_decay["params"]}
    for name, param in model.named_parameters():
        assert (id(param) in exempt) == (name.endswith("bias") or "LayerNorm" in name), name
    sgd = make_optimizer(model, _hp(optimizer="sgd", momentum=0.5, weight_decay=0.01))
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.param_groups[0]["momentum"] == 0.5
    assert sgd.param_groups[0]["weight_decay"] == 0.01


def test_max_seq_length_truncates_batches(
    data: TokenizedData, monkeypatch: pytest.MonkeyPatch
) -> None:
    widths: list[int] = []
    original = batching.collate

    def spy(batch_ids: list[list[int]], labels: list[int], pad_id: int, types: Any) -> Any:
        widths.append(max(len(ids) for ids in batch_ids))
        return original(batch_ids, labels, pad_id, types)

    monkeypatch.setattr(batching, "collate", spy)
    _train(_hp(epochs=1, max_seq_length=8), data)
    assert max(widths) == 8
    assert max(len(ids) for ids in data.train_ids) > 8


def test_divergence_stops_early_with_valid_metrics(
    data: TokenizedData, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}

    def poisoned(*args: Any, **kwargs: Any) -> torch.nn.Module:
        model = build_model(*args, **kwargs)

        def hook(module: torch.nn.Module, inputs: Any, output: Any) -> Any:
            if module.training:
                calls["n"] += 1
                if calls["n"] >= 3:  # the third training step produces NaN logits
                    output.logits = output.logits * float("nan")
            return output

        model.register_forward_hook(hook)
        return model

    monkeypatch.setattr(trial_run, "build_model", poisoned)
    reports = _train(_hp(epochs=3), data)
    assert len(reports) == 1  # stopped after the epoch that diverged
    metrics = reports[0]
    assert metrics["train_loss"] == math.inf
    # The non-finite step was skipped, so evaluation still sees finite weights.
    assert math.isfinite(metrics["eval_loss"])
    assert 0.0 <= metrics["eval_accuracy"] <= 1.0


def test_shard_indices_like_distributed_sampler() -> None:
    shards = [shard_indices(11, epoch=2, seed=0, rank=r, world_size=3) for r in range(3)]
    assert [len(s) for s in shards] == [4, 4, 4]
    assert set().union(*shards) == set(range(11))
    assert shard_indices(11, 2, 0, 1, 3) == shards[1]
    assert shard_indices(11, 3, 0, 1, 3) != shards[1]
    assert sorted(shard_indices(5, 0, 0, 0, 1)) == list(range(5))


def test_length_grouped_batches() -> None:
    lengths = [random.Random(i).randrange(3, 60) for i in range(100)]
    batches = length_grouped_batches(list(range(100)), lengths, 16, random.Random(0))
    assert len(batches) == 7
    assert sorted(i for batch in batches for i in batch) == list(range(100))
    assert sum(len(b) == 16 for b in batches) == 6


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ddp_worker(
    rank: int, port: int, data: TokenizedData, out: str, overrides: dict[str, Any] | None = None
) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        reports: list[dict[str, float]] = []
        hp = _hp(epochs=2, **(overrides or {}))
        save_dir = str(Path(out, "model")) if overrides else None
        run_training(hp, data, "tiny-bert", reports.append, torch.device("cpu"), save_dir)
        Path(out, f"rank{rank}.json").write_text(json.dumps(reports))
        dist.barrier()  # both ranks done before teardown: gloo aborts a rank torn down early
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(180)
def test_two_process_gloo_ddp_reports_identical_metrics(
    data: TokenizedData, tmp_path: Path
) -> None:
    mp.spawn(_ddp_worker, args=(_free_port(), data, str(tmp_path)), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert len(ranks[0]) == 2
    assert ranks[0] == ranks[1]
    for metrics in ranks[0]:
        final = FINAL if metrics is ranks[0][-1] else ()
        assert set(metrics) == {*EVERY_REPORT, *final}
        assert 0.0 <= metrics["eval_accuracy"] <= 1.0
        assert math.isfinite(metrics["train_loss"])
    # Each rank trains on half the data; the global sample count is all 512 examples.
    assert ranks[0][-1]["eval_accuracy"] > 0.55


@pytest.mark.timeout(180)
def test_two_process_ddp_with_lora_accumulation_micro_batches_and_int8(
    data: TokenizedData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(OOM_ENV, "5")  # the spawned ranks inherit it: micro-batches of 4
    options = {"finetune_method": "lora", "learning_rate": 1e-2, "gradient_accumulation_steps": 2,
               "compression": "dynamic_int8"}  # fmt: skip
    mp.spawn(_ddp_worker, args=(_free_port(), data, str(tmp_path), options), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0] == ranks[1]
    last = ranks[0][-1]
    assert last["micro_batch_size"] == 4 and last["effective_batch_size"] == 16 * 2 * 2
    assert last["trainable_parameter_count"] < 0.2 * last["parameter_count"]
    assert last["compressed_model_bytes"] < 0.8 * last["model_bytes"]
    saved = tmp_path / "model"
    assert (saved / "adapter").is_dir() and (saved / "compressed" / "model.pt").is_file()
    assert last["checkpoint_bytes"] == sum(p.stat().st_size for p in (saved / "adapter").iterdir())
