"""Training precision: ``auto | fp32 | bf16 | fp16`` resolved for a device, as autocast + scaler."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch


def resolve_precision(requested: str, device: torch.device) -> str:
    """The precision a trial trains in: ``auto`` is bf16 on a GPU that supports it, else fp32.

    Raises:
        ValueError: fp16 on a CPU (the submit check rejects it without GPUs), or bf16 on a GPU
            without bf16.
    """
    on_gpu = device.type == "cuda"
    if requested == "auto":
        return "bf16" if on_gpu and torch.cuda.is_bf16_supported() else "fp32"
    if requested == "fp16" and not on_gpu:
        raise ValueError("precision fp16 needs a GPU; this trial runs on the CPU")
    if requested == "bf16" and on_gpu and not torch.cuda.is_bf16_supported():
        raise ValueError("precision bf16 is not supported by this GPU; use fp16 or fp32")
    if requested not in ("fp32", "bf16", "fp16"):
        raise ValueError(f"unknown precision {requested!r}; known: auto, fp32, bf16, fp16")
    return requested


def autocast_for(
    precision: str, device: torch.device
) -> Callable[[], contextlib.AbstractContextManager[Any]]:
    """A factory of the autocast context for the forward passes (weights stay float32)."""
    if precision == "fp32":
        return contextlib.nullcontext
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return lambda: torch.autocast(device.type, dtype=dtype)


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    """fp16's loss scaler (float16 gradients underflow without it); None otherwise."""
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None
