"""LoRA, compression, deployment metrics, precision, gradient accumulation and the automatic
batch size, on real tiny-BERT training runs (CPU)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from search_spaces.tunables import TUNABLES
from workers.compression import METHODS, compress, load_compressed, save_compressed
from workers.data import TokenizedData, collate, synthetic_sentiment, tokenize
from workers.deploy import measure_deployment
from workers.faults import OOM_ENV
from workers.models import build_model
from workers.precision import resolve_precision
from workers.tasks.classification import ClassificationTask
from workers.tasks.evaluation import evaluate
from workers.tiny_bert import build_tiny_bert_tokenizer
from workers.train_loop import run_training

CPU = torch.device("cpu")


def _hp(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {name: tunable.default for name, tunable in TUNABLES.items()}
    values.update(epochs=1, batch_size=16, max_seq_length=32, learning_rate=3e-3)
    values.update(overrides)
    return values


@pytest.fixture(scope="module")
def data() -> TokenizedData:
    text = synthetic_sentiment(n_train=256, n_eval=96, seed=3)
    return tokenize(text, build_tiny_bert_tokenizer(), max_length=32)


def _train(hp: dict[str, Any], data: TokenizedData, save_dir: Path | None = None) -> dict[str, Any]:
    reports: list[dict[str, Any]] = []
    run_training(hp, data, "tiny-bert", reports.append, CPU, str(save_dir) if save_dir else None)
    return reports[-1]


@pytest.fixture(scope="module")
def trained() -> torch.nn.Module:
    """A tiny BERT trained for a few steps (so pruning and quantisation move its logits)."""
    text = synthetic_sentiment(n_train=256, n_eval=96, seed=3)
    small = tokenize(text, build_tiny_bert_tokenizer(), max_length=32)
    model = build_model("tiny-bert", 2, 0.0, seed=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for start in range(0, 128, 16):
        ids = small.train_ids[start : start + 16]
        width = max(len(row) for row in ids)
        inputs = torch.tensor([row + [small.pad_id] * (width - len(row)) for row in ids])
        labels = torch.tensor(small.train_labels[start : start + 16])
        mask = (inputs != small.pad_id).long()
        model(input_ids=inputs, attention_mask=mask, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return model.eval()


@pytest.mark.parametrize("method", METHODS[1:])
def test_compressed_models_round_trip_and_shrink(
    method: str, trained: torch.nn.Module, data: TokenizedData, tmp_path: Path
) -> None:
    compressed = compress(trained, method)
    size = save_compressed(compressed, method, tmp_path)
    loaded = load_compressed(tmp_path)
    inputs = torch.tensor([row[:12] + [0] * (12 - len(row[:12])) for row in data.eval_ids[:4]])
    with torch.no_grad():
        original = trained(input_ids=inputs).logits
        ours = compressed(input_ids=inputs).logits
        assert torch.allclose(loaded(input_ids=inputs).logits, ours)
    assert not torch.equal(ours, original)  # compression changed the model
    dense = sum(t.numel() * t.element_size() for t in trained.state_dict().values())
    assert size < 0.9 * dense, (method, size, dense)
    if method.startswith("prune"):
        linear = [m.weight for m in compressed.modules() if isinstance(m, torch.nn.Linear)]
        share = sum(int((w == 0).sum()) for w in linear) / sum(w.numel() for w in linear)
        assert share == pytest.approx(0.5 if method.endswith("50") else 0.3, abs=0.01)
    assert json.loads((tmp_path / "compression.json").read_text()) == {"method": method}


def test_deployment_accuracy_after_compression_is_measured(
    trained: torch.nn.Module, data: TokenizedData
) -> None:
    # A sentinel for the trained model's accuracy: a copied value would show it.
    task = ClassificationTask()
    deployed = measure_deployment(trained, "prune_l1_50", task, data, -1.0)
    metrics = deployed.metrics
    assert 0.0 <= metrics["compressed_eval_accuracy"] <= 1.0
    # Scored like any eval: the share of correct labels of the compressed model.
    logits = deployed.compressed(**collate(data.eval_ids, data.eval_labels, data.pad_id)).logits
    correct = (logits.argmax(-1) == torch.tensor(data.eval_labels)).float().mean().item()
    assert metrics["compressed_eval_accuracy"] == pytest.approx(correct)
    assert metrics["compressed_model_bytes"] < metrics["model_bytes"]
    for key in ("latency_b1_ms", "latency_b32_ms", "compressed_latency_b1_ms"):
        assert 0 < metrics[key] < 10_000
    assert metrics["latency_b32_ms"] > metrics["latency_b1_ms"]
    plain = measure_deployment(trained, "none", task, data, 0.7)
    assert plain.metrics["compressed_eval_accuracy"] == 0.7  # no compression: the same model
    assert plain.metrics["compressed_model_bytes"] == plain.metrics["model_bytes"]


def test_a_lora_trial_trains_fewer_parameters_and_saves_a_small_adapter(
    data: TokenizedData, tmp_path: Path
) -> None:
    full = _train(_hp(), data, tmp_path / "full")
    lora = _train(_hp(finetune_method="lora", lora_r=4), data, tmp_path / "lora")
    assert lora["trainable_parameter_count"] < 0.2 * full["trainable_parameter_count"]
    assert lora["parameter_count"] > full["parameter_count"]  # the adapters are extra weights
    assert lora["checkpoint_bytes"] < 0.2 * full["checkpoint_bytes"]
    adapter = tmp_path / "lora" / "adapter"
    assert lora["checkpoint_bytes"] == sum(p.stat().st_size for p in adapter.iterdir())
    # The saved model has the adapters merged in and loads without peft.
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "lora").eval()
    head = data.eval_ids[:8]
    width = max(len(row) for row in head)
    inputs = torch.tensor([row + [data.pad_id] * (width - len(row)) for row in head])
    with torch.no_grad():
        logits = model(input_ids=inputs, attention_mask=(inputs != data.pad_id).long()).logits
    assert ",".join(str(int(x)) for x in logits.argmax(-1)) == lora["eval_predictions_head"]
    assert lora["model_bytes"] == full["model_bytes"]  # merged: the same architecture


def test_a_compressed_trial_saves_its_compressed_variant(
    data: TokenizedData, tmp_path: Path
) -> None:
    last = _train(_hp(compression="dynamic_int8"), data, tmp_path / "m")
    compressed = tmp_path / "m" / "compressed"
    assert last["compressed_model_bytes"] < 0.8 * last["model_bytes"]
    assert (compressed / "model.pt").stat().st_size < 0.8 * last["model_bytes"]
    model = load_compressed(compressed)
    scores, _ = evaluate(model, ClassificationTask(), data, 64, torch.device("cpu"))
    assert scores["eval_accuracy"] == last["compressed_eval_accuracy"]


def test_micro_batches_after_out_of_memory_train_the_same(
    data: TokenizedData, monkeypatch: pytest.MonkeyPatch
) -> None:
    hp = _hp(dropout=0.0, epochs=2)
    whole = _train(hp, data)
    monkeypatch.setenv(OOM_ENV, "5")  # more than 5 examples per forward pass "run out of memory"
    split = _train(hp, data)
    assert whole["micro_batch_size"] == 16 and split["micro_batch_size"] == 4
    assert split["effective_batch_size"] == whole["effective_batch_size"] == 16
    for key in ("train_loss", "eval_loss", "eval_accuracy"):
        assert split[key] == pytest.approx(whole[key], rel=1e-4), key
    monkeypatch.setenv(OOM_ENV, "0")  # not even one example fits: the trial fails
    with pytest.raises(torch.OutOfMemoryError):
        _train(_hp(), data)


def test_gradient_accumulation_makes_fewer_larger_steps(data: TokenizedData) -> None:
    one = _train(_hp(), data)
    three = _train(_hp(gradient_accumulation_steps=3), data)
    assert three["effective_batch_size"] == 3 * one["effective_batch_size"] == 48
    assert three["train_loss"] != one["train_loss"]


def test_precision_is_resolved_per_device(data: TokenizedData) -> None:
    assert resolve_precision("auto", CPU) == "fp32"
    assert resolve_precision("bf16", CPU) == "bf16"
    with pytest.raises(ValueError, match="fp16 needs a GPU"):
        resolve_precision("fp16", CPU)
    bf16 = _train(_hp(precision="bf16"), data)
    assert bf16["precision_used"] == "bf16" and bf16["train_loss"] < 10


def test_a_model_with_non_finite_weights_is_measured_uncompressed(data: TokenizedData) -> None:
    broken = build_model("tiny-bert", 2, 0.0, seed=0)
    with torch.no_grad():
        next(broken.parameters()).fill_(float("nan"))
    deployed = measure_deployment(broken, "dynamic_int8", ClassificationTask(), data, 0.25)
    assert deployed.compressed is broken
    assert deployed.metrics["compressed_eval_accuracy"] == 0.25
    assert deployed.metrics["compressed_model_bytes"] == deployed.metrics["model_bytes"]
