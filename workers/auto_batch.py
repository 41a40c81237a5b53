"""The automatic batch size: the largest micro-batch whose forward and backward pass fits.

Before training, one forward and backward pass runs on the worst case: the ``batch_size``
longest training examples (padded to the longest). On running out of memory the micro-batch
halves, down to one example. DDP ranks then agree on the smallest. Each batch is then split
into micro-batches of that size with their gradients accumulated, so the effective batch size
and the training are those asked for; only peak memory falls.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.distributed as dist

from workers.data import TokenizedData, collate


def fit_micro_batch(
    try_batch: Callable[[int], None],
    batch_size: int,
    distributed: bool,
    device: torch.device,
) -> int:
    """The largest micro-batch (``batch_size``, halved on every out-of-memory error) for which
    ``try_batch(size)`` succeeds, the minimum over DDP ranks.

    Raises:
        torch.OutOfMemoryError: Even one example does not fit.
    """
    size = batch_size
    while True:
        try:
            try_batch(size)
            break
        except torch.OutOfMemoryError:
            if size == 1:
                raise
            size = max(1, size // 2)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    if distributed:
        agreed = torch.tensor([size], dtype=torch.int64, device=device)
        dist.all_reduce(agreed, op=dist.ReduceOp.MIN)
        size = int(agreed.item())
    return size


def worst_case_probe(
    model: torch.nn.Module,
    data: TokenizedData,
    device: torch.device,
    forward_backward: Callable[[dict[str, torch.Tensor]], None],
) -> Callable[[int], None]:
    """``try_batch(size)``: a forward and backward pass of ``model`` over the ``size`` longest
    training examples, gradients cleared afterwards."""
    ids = data.train_ids
    longest = sorted(range(len(ids)), key=lambda i: len(ids[i]), reverse=True)

    def try_batch(size: int) -> None:
        rows = longest[:size]
        types = [data.train_types[i] for i in rows] if data.train_types is not None else None
        labels = [data.train_labels[i] for i in rows]
        tensors = collate([ids[i] for i in rows], labels, data.pad_id, types)
        try:
            forward_backward({k: v.to(device) for k, v in tensors.items()})
        finally:
            model.zero_grad(set_to_none=True)

    return try_batch


def micro_batches(batch: list[int], size: int) -> list[list[int]]:
    """``batch`` cut into consecutive pieces of at most ``size`` examples."""
    return [batch[i : i + size] for i in range(0, len(batch), size)]
