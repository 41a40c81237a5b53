"""The learning-rate schedule of the training loop: linear warm-up, then linear decay to 0.

The same schedule as ``transformers.get_linear_schedule_with_warmup``, without importing it:
that import pulls in ``transformers.trainer_utils`` and peft, about 2 s of every training
process's start (a DDP trial starts one per rank).
"""

from __future__ import annotations

import torch
from torch.optim.lr_scheduler import LambdaLR


def linear_schedule_with_warmup(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int
) -> LambdaLR:
    """Scale the learning rate by step/warmup_steps, then by (total - step)/(total - warmup).

    Args:
        optimizer: Its groups' learning rates are the peak ones.
        warmup_steps: Steps of linear warm-up from 0.
        total_steps: Steps after which the learning rate is 0.

    Returns:
        The scheduler; step it once per optimizer step.
    """

    def factor(step: int) -> float:
        if step < warmup_steps:
            return step / max(1, warmup_steps)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return LambdaLR(optimizer, factor)
