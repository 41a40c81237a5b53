"""What a fine-tuned model costs to serve, before and after its compression (``DEPLOY_KEYS``).

Measured once, after the last epoch, by one process (rank 0 of a DDP trial), on the CPU with
the trial's threads, so every method is compared on the same hardware (dynamic int8 has CPU
kernels only):

* ``model_bytes`` / ``compressed_model_bytes``: size of the saved weights (``torch.save``; for
  pruned models the sparse packing of ``workers.compression``);
* ``latency_b1_ms`` / ``latency_b32_ms`` (and ``compressed_*``): median wall time of a forward
  pass over batches of 1 and 32 eval examples, over :data:`LATENCY_RUNS` runs after a warm-up;
* ``compressed_eval_accuracy``: the compressed model's accuracy, measured on the whole eval set
  (with compression ``none`` it is the trained model's ``eval_accuracy``, and the other
  ``compressed_*`` values equal the uncompressed ones; likewise for a model whose weights are
  not finite, which no method can compress).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

from workers.compression import compress, compressed_state, serialized_bytes
from workers.data import collate

LATENCY_RUNS = 7
LATENCY_BATCHES = (1, 32)
EVAL_BATCH = 64


@dataclass
class Deployment:
    """The measured metrics and the compressed model (the trained model when ``none``)."""

    metrics: dict[str, float]
    compressed: torch.nn.Module


@torch.inference_mode()
def latency_ms(model: torch.nn.Module, eval_ids: list[list[int]], batch: int, pad_id: int) -> float:
    """Median milliseconds of one forward pass over the first ``batch`` eval examples."""
    rows = [eval_ids[i % len(eval_ids)] for i in range(batch)]
    tensors = collate(rows, [0] * batch, pad_id)
    inputs = {"input_ids": tensors["input_ids"], "attention_mask": tensors["attention_mask"]}
    model(**inputs)  # warm-up: lazy initialisation, allocator, caches
    times = []
    for _ in range(LATENCY_RUNS):
        started = time.perf_counter()
        model(**inputs)
        times.append(time.perf_counter() - started)
    return 1000.0 * statistics.median(times)


@torch.inference_mode()
def accuracy(
    model: torch.nn.Module, eval_ids: list[list[int]], labels: list[int], pad_id: int
) -> float:
    """Share of eval examples the model labels correctly (CPU, batches of similar length)."""
    order = sorted(range(len(eval_ids)), key=lambda i: len(eval_ids[i]))
    correct = 0
    for start in range(0, len(order), EVAL_BATCH):
        batch = order[start : start + EVAL_BATCH]
        tensors = collate([eval_ids[i] for i in batch], [labels[i] for i in batch], pad_id)
        logits = model(
            input_ids=tensors["input_ids"], attention_mask=tensors["attention_mask"]
        ).logits
        correct += int((logits.argmax(dim=-1) == tensors["labels"]).sum())
    return correct / len(order) if order else 0.0


def measure_deployment(
    model: torch.nn.Module,
    method: str,
    eval_ids: list[list[int]],
    eval_labels: list[int],
    pad_id: int,
    eval_accuracy: float,
) -> Deployment:
    """Compress ``model`` (a plain transformers model, moved to the CPU) and measure both.

    Args:
        model: The trained model (LoRA adapters already merged).
        method: A compression method of ``workers.compression.METHODS``.
        eval_ids: Tokenised eval examples (truncated as in training).
        eval_labels: Their labels.
        pad_id: The tokenizer's padding id.
        eval_accuracy: The trained model's measured accuracy (reused when ``method`` is none).
    """
    trained = model.to("cpu").float().eval()
    metrics = {"model_bytes": float(serialized_bytes(trained.state_dict()))}
    for batch in LATENCY_BATCHES:
        metrics[f"latency_b{batch}_ms"] = latency_ms(trained, eval_ids, batch, pad_id)
    finite = all(bool(torch.isfinite(t).all()) for t in trained.state_dict().values())
    if method == "none" or not finite:  # nothing to compress, or a diverged model
        compressed = trained
        metrics["compressed_eval_accuracy"] = eval_accuracy
        metrics["compressed_model_bytes"] = metrics["model_bytes"]
        for batch in LATENCY_BATCHES:
            metrics[f"compressed_latency_b{batch}_ms"] = metrics[f"latency_b{batch}_ms"]
        return Deployment(metrics, compressed)
    compressed = compress(trained, method)
    metrics["compressed_eval_accuracy"] = accuracy(compressed, eval_ids, eval_labels, pad_id)
    state = compressed_state(compressed, method)
    metrics["compressed_model_bytes"] = float(serialized_bytes(state))
    for batch in LATENCY_BATCHES:
        metrics[f"compressed_latency_b{batch}_ms"] = latency_ms(compressed, eval_ids, batch, pad_id)
    return Deployment(metrics, compressed)
