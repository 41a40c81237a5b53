"""A trial's checkpoint on disk: what resuming after an epoch needs, written atomically and
verified before it is loaded.

A checkpoint is a directory of two payload files and a manifest:

- ``state.pt`` (``torch.save``): the model's weights (only the trained ones, the LoRA adapters
  and the head, under LoRA), the optimizer, the LR schedule, the gradient scaler and the RNG
  states (Python, NumPy, torch, CUDA) of every rank;
- ``progress.json``: the epochs done, the metrics reported after each of them, the best so far,
  and the sizes of the trial's checkpoints so far;
- ``manifest.json``, written last: each payload file's size and sha256. A directory without a
  manifest, or whose files do not match it (truncated, corrupt), is never loaded.

The data position needs no file: the order of an epoch's examples and batches is derived from
the trial's seed and the epoch (``workers.batching``), and checkpoints are written between
epochs.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

# torch and numpy are imported where used: the study driver imports this module (through the
# trainable) and never needs torch (workers/overhead.py).

MANIFEST = "manifest.json"
STATE = "state.pt"
PROGRESS = "progress.json"
_PAYLOAD = (STATE, PROGRESS)
_TUNE_CHECKPOINT = re.compile(r"checkpoint_(\d+)$")  # Tune's name for a persisted checkpoint
# The key of a report that carries its checkpoint's (temporary) directory to the trainable,
# which hands it to Tune with the report and removes it from the metrics.
CHECKPOINT_DIR_KEY = "hpo_checkpoint_dir"


@dataclass(frozen=True)
class CheckpointPlan:
    """When a trial writes checkpoints, how many it keeps, its byte limit and where it resumes.

    Built by the trainable from the spec's ``checkpoint`` and Tune's session; travels to every
    DDP rank (every rank restores; rank 0 writes).
    """

    every_epochs: int
    keep: int
    max_bytes: int  # the study's checkpoints, all trials together
    latest: str | None = None  # Tune's checkpoint of this trial to resume from
    trial_dir: str | None = None  # the trial's directory in the study's storage (local only)

    def due(self, epoch: int, epochs: int) -> bool:
        """Whether to checkpoint after ``epoch`` (0-based) of ``epochs``; never after the last
        (the trial is done; its final model is saved apart)."""
        return self.every_epochs > 0 and epoch < epochs - 1 and (epoch + 1) % self.every_epochs == 0


class CheckpointTooLarge(RuntimeError):
    """A checkpoint would take the study's checkpoints over their byte limit."""


@dataclass
class Progress:
    """Where a trial stands after an epoch (the ``progress.json`` of its checkpoint)."""

    epochs_done: int = 0
    # The report of each epoch done, in order (numbers and strings).
    history: list[dict[str, Any]] = field(default_factory=list)
    # Bytes of each checkpoint the trial wrote, in order (its last ``keep`` are kept).
    sizes: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"epochs_done": self.epochs_done, "history": self.history, "sizes": self.sizes}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Progress:
        return cls(int(data["epochs_done"]), list(data["history"]), list(data["sizes"]))

    def kept_bytes(self, keep: int) -> int:
        """Bytes of the trial's checkpoints that are kept now."""
        return sum(self.sizes[-keep:]) if keep > 0 else 0

    def best(self, metric: str, maximize: bool) -> dict[str, Any] | None:
        """The report of the best epoch so far by ``metric`` (None: no epoch reported it)."""
        scored = [r for r in self.history if isinstance(r.get(metric), int | float)]
        if not scored:
            return None
        pick = max if maximize else min
        return pick(scored, key=lambda r: float(r[metric]))


def rng_states() -> dict[str, Any]:
    """This process's random number generator states."""
    import numpy as np
    import torch

    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": _numpy_state(np.random.get_state(legacy=True)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _numpy_state(state: Any) -> dict[str, Any]:
    """NumPy's legacy state as plain values and a tensor, so that checkpoints load with
    ``torch.load(weights_only=True)`` (no arbitrary unpickling)."""
    import numpy as np
    import torch

    name, keys, pos, has_gauss, cached = state
    return {
        "name": str(name),
        "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached),
    }


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what :func:`rng_states` returned."""
    import numpy as np
    import torch

    random.setstate(states["python"])
    numpy_state = states["numpy"]
    np.random.set_state(
        (
            numpy_state["name"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checkpoint(state: dict[str, Any], progress: Progress) -> Path:
    """Write a checkpoint into a new temporary directory (the manifest last); returns it.

    The caller hands the directory to Tune (which copies it into the study's storage) and
    deletes it afterwards. ``progress.sizes`` must already end with this checkpoint's size
    estimate; the manifest holds the real one.
    """
    import torch

    directory = Path(tempfile.mkdtemp(prefix="hpo-checkpoint-"))
    try:
        torch.save(state, directory / STATE)
        (directory / PROGRESS).write_text(json.dumps(progress.to_json()))
        files = {
            name: {"bytes": (directory / name).stat().st_size, "sha256": _sha256(directory / name)}
            for name in _PAYLOAD
        }
        staging = directory / f".{MANIFEST}.tmp"
        staging.write_text(json.dumps({"files": files}))
        with staging.open("rb") as handle:
            os.fsync(handle.fileno())
        staging.rename(directory / MANIFEST)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return directory


def checkpoint_bytes(directory: Path) -> int:
    """Bytes of a checkpoint's files."""
    return sum(p.stat().st_size for p in directory.iterdir() if p.is_file())


def checkpoint_problem(directory: Path) -> str | None:
    """Why a checkpoint directory must not be loaded (no manifest, a file missing, truncated or
    corrupt), or None when it is whole."""
    manifest = directory / MANIFEST
    if not manifest.is_file():
        return f"{directory.name}: no {MANIFEST} (the checkpoint was never completed)"
    try:
        files = json.loads(manifest.read_text())["files"]
    except (ValueError, KeyError, TypeError):
        return f"{directory.name}: unreadable {MANIFEST}"
    for name in _PAYLOAD:
        path = directory / name
        expected = files.get(name) if isinstance(files, dict) else None
        if not isinstance(expected, dict):
            return f"{directory.name}: {name} is not in the manifest"
        if not path.is_file():
            return f"{directory.name}: {name} is missing"
        size = path.stat().st_size
        if size != expected.get("bytes"):
            return (
                f"{directory.name}: {name} is truncated ({size} of {expected.get('bytes')} bytes)"
            )
        if _sha256(path) != expected.get("sha256"):
            return f"{directory.name}: {name} is corrupt (sha256 differs from the manifest)"
    return None


def read_checkpoint(directory: Path, device: torch.device) -> tuple[dict[str, Any], Progress]:
    """The state and progress of a verified checkpoint (see :func:`checkpoint_problem`)."""
    import torch

    # Tensors and plain values only: a checkpoint never runs code when it is loaded.
    state = torch.load(directory / STATE, map_location=device, weights_only=True)
    progress = Progress.from_json(json.loads((directory / PROGRESS).read_text()))
    return state, progress


def candidates(latest: Path) -> list[Path]:
    """``latest`` and then the trial's older checkpoints beside it (Tune's ``checkpoint_N``
    directories in the trial's directory), newest first."""
    found = [latest]
    parent = latest.parent
    match = _TUNE_CHECKPOINT.search(latest.name)
    if match is None or not parent.is_dir():
        return found
    older = []
    for sibling in parent.iterdir():
        other = _TUNE_CHECKPOINT.search(sibling.name)
        if other and sibling.is_dir() and int(other.group(1)) < int(match.group(1)):
            older.append((int(other.group(1)), sibling))
    return found + [path for _, path in sorted(older, reverse=True)]


def first_whole(latest: Path) -> tuple[Path | None, list[str]]:
    """The newest checkpoint of the trial that passes :func:`checkpoint_problem`, starting at
    ``latest`` (None: none does), and why each newer one was skipped."""
    skipped: list[str] = []
    for directory in candidates(latest):
        problem = checkpoint_problem(directory)
        if problem is None:
            return directory, skipped
        skipped.append(problem)
    return None, skipped


def study_checkpoint_bytes(trial_dir: Path) -> int:
    """Bytes of the checkpoints of the other trials of the experiment ``trial_dir`` belongs to
    (0 when its storage is not a local directory)."""
    experiment = trial_dir.parent
    if not experiment.is_dir():
        return 0
    total = 0
    for trial in experiment.iterdir():
        if trial == trial_dir or not trial.is_dir():
            continue
        for directory in trial.iterdir():
            if _TUNE_CHECKPOINT.search(directory.name) and directory.is_dir():
                total += checkpoint_bytes(directory)
    return total


def remove_study_checkpoints(results_dir: Path, study_id: str) -> int:
    """Delete every checkpoint of the study's attempts once it has ended (its best model is kept
    apart, under artifacts/); the bytes freed. Nothing for storage that is not a local dir."""
    freed = 0
    if not results_dir.is_dir():
        return 0
    for experiment in results_dir.glob(f"study-{study_id}-attempt-*"):
        for directory in experiment.glob("*/checkpoint_*"):
            if _TUNE_CHECKPOINT.search(directory.name) and directory.is_dir():
                freed += checkpoint_bytes(directory)
                shutil.rmtree(directory, ignore_errors=True)
    return freed
