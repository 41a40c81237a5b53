"""Parameter-efficient fine-tuning: LoRA adapters from ``peft`` on a sequence or token
classifier."""

from __future__ import annotations

from typing import Any

import torch


def with_lora(
    model: torch.nn.Module, hp: dict[str, Any], token_task: bool = False
) -> torch.nn.Module:
    """``model`` with LoRA adapters (``lora_r``, ``lora_alpha``, ``lora_dropout``) on peft's
    default attention projections for its architecture (query and value for BERT); only the
    adapters and the task head train (``token_task``: a per-token head)."""
    from peft import LoraConfig, TaskType, get_peft_model

    config = LoraConfig(
        task_type=TaskType.TOKEN_CLS if token_task else TaskType.SEQ_CLS,
        r=int(hp["lora_r"]),
        lora_alpha=int(hp["lora_alpha"]),
        lora_dropout=float(hp["lora_dropout"]),
    )
    return get_peft_model(model, config)


def is_lora(model: torch.nn.Module) -> bool:
    """Whether ``model`` carries LoRA adapters (a peft model)."""
    return hasattr(model, "merge_and_unload")


def merged(model: torch.nn.Module) -> torch.nn.Module:
    """A plain transformers model: the adapters folded into the weights (a peft model), or the
    model itself. The peft wrapper is consumed; call it after training."""
    if is_lora(model):
        return model.merge_and_unload()  # type: ignore[operator]
    return model


def save_adapter(model: torch.nn.Module, directory: str) -> None:
    """Save only the adapters and the trained head (peft's ``save_pretrained``)."""
    model.save_pretrained(directory)  # type: ignore[operator]
