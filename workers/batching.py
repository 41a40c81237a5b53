"""Which training examples a rank sees in an epoch, and in which batches."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

import torch

from workers.data import TokenizedData, collate

# Batches are formed from chunks of this many batches sorted by length (less padding).
_LENGTH_GROUP_BATCHES = 50


def shard_indices(n: int, epoch: int, seed: int, rank: int, world_size: int) -> list[int]:
    """This rank's training examples of one epoch, like ``DistributedSampler``.

    Every rank draws the same permutation (seeded by ``seed + epoch``), pads it by repeating
    examples to a multiple of ``world_size`` and takes every ``world_size``-th example, so all
    ranks get the same number of examples.

    Args:
        n: Number of training examples (at least 1).
        epoch: Epoch number.
        seed: The trial's seed.
        rank: This process's rank.
        world_size: Number of processes.

    Returns:
        Indices of this rank's examples, ``ceil(n / world_size)`` of them.
    """
    order = list(range(n))
    random.Random(seed + epoch).shuffle(order)
    total = math.ceil(n / world_size) * world_size
    order = (order * math.ceil(total / n))[:total]
    return order[rank:total:world_size]


def length_grouped_batches(
    indices: list[int], lengths: list[int], batch_size: int, rng: random.Random
) -> list[list[int]]:
    """Split indices into batches of similar lengths, in random order.

    Consecutive chunks of ``50 * batch_size`` indices are sorted by length and cut into
    batches; the batch order is then shuffled. The number of batches is always
    ``ceil(len(indices) / batch_size)``.

    Args:
        indices: Example indices in (shuffled) epoch order.
        lengths: Token count of every example.
        batch_size: Examples per batch.
        rng: Random source of the batch order.

    Returns:
        The batches.
    """
    chunk = batch_size * _LENGTH_GROUP_BATCHES
    batches: list[list[int]] = []
    for start in range(0, len(indices), chunk):
        part = sorted(indices[start : start + chunk], key=lambda i: lengths[i], reverse=True)
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


def batches_on(
    data: TokenizedData, batches: list[list[int]], device: torch.device
) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
    """Collate and move each batch of training examples to the device; yields (examples,
    tensors)."""
    for batch in batches:
        types = [data.train_types[i] for i in batch] if data.train_types is not None else None
        rows = [data.train_ids[i] for i in batch]
        tensors = collate(rows, [data.train_labels[i] for i in batch], data.pad_id, types)
        yield len(batch), {k: v.to(device, non_blocking=True) for k, v in tensors.items()}
