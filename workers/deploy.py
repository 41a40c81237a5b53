"""What a fine-tuned model costs to serve, before and after its compression (``DEPLOY_KEYS``).

Measured once, after the last epoch, by one process (rank 0 of a DDP trial), on the CPU with
the trial's threads, so every method is compared on the same hardware (dynamic int8 has CPU
kernels only):

* ``model_bytes`` / ``compressed_model_bytes``: size of the saved weights (``torch.save``; for
  pruned models the sparse packing of ``workers.compression``);
* ``latency_b1_ms`` / ``latency_b32_ms`` (and ``compressed_*``): median wall time of a forward
  pass over batches of 1 and 32 eval examples, over :data:`LATENCY_RUNS` runs after a warm-up;
* ``compressed_<primary metric>`` (``compressed_eval_accuracy`` for classification): the
  compressed model's primary task metric on the whole eval set (with compression ``none`` it is
  the trained model's, and the other
  ``compressed_*`` values equal the uncompressed ones; likewise for a model whose weights are
  not finite, which no method can compress).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

from workers.compression import compress, compressed_state, serialized_bytes
from workers.data import TokenizedData, collate
from workers.tasks.base import Task
from workers.tasks.evaluation import evaluate

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


def measure_deployment(
    model: torch.nn.Module, method: str, task: Task, data: TokenizedData, primary_value: float
) -> Deployment:
    """Compress ``model`` (a plain transformers model, moved to the CPU) and measure both.

    Args:
        model: The trained model (LoRA adapters already merged).
        method: A compression method of ``workers.compression.METHODS``.
        task: Its task: the compressed model is scored by the task's primary metric.
        data: The tokenised data (eval examples truncated as in training).
        primary_value: The trained model's primary metric (reused when ``method`` is none).
    """
    eval_ids, pad_id = data.eval_ids, data.pad_id
    compressed_key = task.info.compressed_metric
    trained = model.to("cpu").float().eval()
    metrics = {"model_bytes": float(serialized_bytes(trained.state_dict()))}
    for batch in LATENCY_BATCHES:
        metrics[f"latency_b{batch}_ms"] = latency_ms(trained, eval_ids, batch, pad_id)
    finite = all(bool(torch.isfinite(t).all()) for t in trained.state_dict().values())
    if method == "none" or not finite:  # nothing to compress, or a diverged model
        compressed = trained
        metrics[compressed_key] = primary_value
        metrics["compressed_model_bytes"] = metrics["model_bytes"]
        for batch in LATENCY_BATCHES:
            metrics[f"compressed_latency_b{batch}_ms"] = metrics[f"latency_b{batch}_ms"]
        return Deployment(metrics, compressed)
    compressed = compress(trained, method)
    scores, _ = evaluate(compressed, task, data, EVAL_BATCH, torch.device("cpu"))
    metrics[compressed_key] = scores[task.info.primary_metric]
    state = compressed_state(compressed, method)
    metrics["compressed_model_bytes"] = float(serialized_bytes(state))
    for batch in LATENCY_BATCHES:
        metrics[f"compressed_latency_b{batch}_ms"] = latency_ms(compressed, eval_ids, batch, pad_id)
    return Deployment(metrics, compressed)
