"""Sums over DDP ranks (the identity in a single process)."""

from __future__ import annotations

import torch
import torch.distributed as dist


def all_reduce_sum(values: torch.Tensor, distributed: bool) -> torch.Tensor:
    """Sum a vector over all ranks in place (identity when not distributed); also a barrier."""
    if distributed:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values
