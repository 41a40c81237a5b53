"""Compression of a fine-tuned model: dynamic int8 quantisation or L1 magnitude pruning.

Each method gives a CPU model and saves it under a directory of its own
(``compression.json``, the model's ``config.json`` and ``model.pt``) that
:func:`load_compressed` reads back:

* ``dynamic_int8``: every ``nn.Linear`` quantised to int8 weights, activations quantised on
  the fly (``torch.ao.quantization.quantize_dynamic``; CPU kernels). ``model.pt`` is the
  quantised state dict.
* ``prune_l1_30`` / ``prune_l1_50``: in every ``nn.Linear`` the 30 % / 50 % of weights with the
  smallest magnitude set to zero (``torch.nn.utils.prune.l1_unstructured``, made permanent).
  ``model.pt`` stores each weight with zeros as a bit mask plus its non-zero values, so the
  file shrinks with the sparsity; the dense kernels run no faster.
"""

from __future__ import annotations

import copy
import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

METHODS = ("none", "dynamic_int8", "prune_l1_30", "prune_l1_50")
PRUNE_AMOUNTS = {"prune_l1_30": 0.3, "prune_l1_50": 0.5}
METHOD_FILE = "compression.json"
WEIGHTS_FILE = "model.pt"
_SPARSE_MIN_ZEROS = 0.2  # below this share of zeros a tensor is stored dense


def serialized_bytes(state: dict[str, Any]) -> int:
    """Size of ``torch.save(state)``: what the weights take on disk."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getbuffer().nbytes


def compress(model: torch.nn.Module, method: str) -> torch.nn.Module:
    """A compressed CPU copy of ``model`` in eval mode (``none``: the model itself, on the CPU).

    Raises:
        ValueError: An unknown method.
    """
    if method == "none":
        return model.to("cpu").eval()
    if method not in METHODS:
        raise ValueError(f"unknown compression {method!r}; known: {', '.join(METHODS)}")
    result = copy.deepcopy(model).to("cpu").float().eval()
    if method == "dynamic_int8":
        return _quantize(result)
    from torch.nn.utils import prune

    for module in result.modules():
        if isinstance(module, torch.nn.Linear):
            prune.l1_unstructured(module, "weight", amount=PRUNE_AMOUNTS[method])
            prune.remove(module, "weight")
    return result


def compressed_state(model: torch.nn.Module, method: str) -> dict[str, Any]:
    """What :func:`save_compressed` writes to ``model.pt`` (pruned weights packed sparse)."""
    state = model.state_dict()  # keeps its _metadata: quantised modules read their version
    if method in PRUNE_AMOUNTS:
        return {name: _packed(tensor) for name, tensor in state.items()}
    return state


def save_compressed(model: torch.nn.Module, method: str, directory: Path) -> int:
    """Write the compressed model to ``directory``; returns the size of ``model.pt`` in bytes."""
    directory.mkdir(parents=True, exist_ok=True)
    model.config.to_json_file(directory / "config.json")  # type: ignore[union-attr,operator]
    (directory / METHOD_FILE).write_text(json.dumps({"method": method}))
    torch.save(compressed_state(model, method), directory / WEIGHTS_FILE)
    return (directory / WEIGHTS_FILE).stat().st_size


def load_compressed(directory: str | Path) -> torch.nn.Module:
    """The compressed model saved by :func:`save_compressed`, on the CPU in eval mode (with the
    head its config names: sequence or token classification)."""
    import transformers
    from transformers import AutoConfig

    directory = Path(directory)
    method = json.loads((directory / METHOD_FILE).read_text())["method"]
    config = AutoConfig.from_pretrained(directory, trust_remote_code=False)
    kind = "AutoModelForSequenceClassification"
    if any(name.endswith("ForTokenClassification") for name in config.architectures or ()):
        kind = "AutoModelForTokenClassification"
    model = getattr(transformers, kind).from_config(config).eval()
    state = torch.load(directory / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    if method == "dynamic_int8":
        model = _quantize(model)
    else:
        state = {name: _unpacked(value) for name, value in state.items()}
    model.load_state_dict(state)
    return model


def _quantize(model: torch.nn.Module) -> torch.nn.Module:
    with warnings.catch_warnings():  # torch.ao.quantization's deprecation notices
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def _packed(tensor: torch.Tensor) -> Any:
    """A tensor with many zeros as {shape, mask (1 bit per element), non-zero values}."""
    flat = tensor.detach().reshape(-1)
    nonzero = flat != 0
    if flat.numel() == 0 or 1 - nonzero.float().mean().item() < _SPARSE_MIN_ZEROS:
        return tensor
    mask = torch.from_numpy(np.packbits(nonzero.numpy()))
    return {"shape": list(tensor.shape), "mask": mask, "values": flat[nonzero].clone()}


def _unpacked(value: Any) -> torch.Tensor:
    if not isinstance(value, dict):
        return value
    count = int(np.prod(value["shape"]))
    nonzero = torch.from_numpy(np.unpackbits(value["mask"].numpy(), count=count).astype(bool))
    flat = torch.zeros(count, dtype=value["values"].dtype)
    flat[nonzero] = value["values"]
    return flat.reshape(value["shape"])
