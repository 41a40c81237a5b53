"""The optimizer of a trial: AdamW or SGD, fused where torch has a fused kernel."""

from __future__ import annotations

from typing import Any

import torch


def make_optimizer(model: torch.nn.Module, hp: dict[str, Any]) -> torch.optim.Optimizer:
    """AdamW or SGD; biases and normalisation weights get no weight decay."""
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, param in model.named_parameters():
        if param.requires_grad:
            exempt = param.ndim < 2 or "norm" in name.lower()
            (no_decay if exempt else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": float(hp["weight_decay"])},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    lr = float(hp["learning_rate"])
    if hp["optimizer"] == "adamw":
        betas = (float(hp["adam_beta1"]), float(hp["adam_beta2"]))
        options = {"lr": lr, "betas": betas, "eps": float(hp["adam_epsilon"])}
        return _fused_if_possible(torch.optim.AdamW, groups, options)
    if hp["optimizer"] == "sgd":
        options = {"lr": lr, "momentum": float(hp["momentum"])}
        return _fused_if_possible(torch.optim.SGD, groups, options)
    raise ValueError(f"unknown optimizer {hp['optimizer']!r}; known: adamw, sgd")


def _fused_if_possible(
    kind: type[torch.optim.Optimizer], groups: list[dict[str, Any]], options: dict[str, Any]
) -> torch.optim.Optimizer:
    """The optimizer with torch's fused kernel where this torch has one for these tensors.

    The fused kernel updates every tensor in one pass; the default per-tensor loop costs about
    as much as the forward and backward pass of MiniLM on short sentences on the CPU.
    """
    params = [p for group in groups for p in group["params"]]
    if params and {p.device.type for p in params} <= {"cpu", "cuda"}:
        try:
            return kind(groups, fused=True, **options)  # type: ignore[call-arg]
        except (RuntimeError, ValueError, TypeError):
            pass  # an older torch, or a dtype the fused kernel lacks
    return kind(groups, **options)
