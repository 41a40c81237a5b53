"""Test-only failure injection, off unless ``HPO_FAULT_INJECTION`` or ``HPO_FAULT_OOM_ABOVE``
is set.

``HPO_FAULT_INJECTION="trial=1,failures=2"`` makes Optuna trial number 1 raise on its first
two attempts (so ``max_failures`` ≥ 2 retries it to success, fewer records a failure);
``trial=*`` targets every trial.
"""

from __future__ import annotations

import os
from pathlib import Path

FAULT_ENV = "HPO_FAULT_INJECTION"


class InjectedFailure(RuntimeError):
    """Raised on purpose by failure injection."""


def maybe_fail(trial_number: int | None, trial_dir: str) -> None:
    """Raise ``InjectedFailure`` if the injection setting targets this trial and attempt."""
    setting = os.environ.get(FAULT_ENV, "")
    if not setting or trial_number is None:
        return
    options = dict(part.split("=", 1) for part in setting.split(",") if "=" in part)
    target = options.get("trial", "")
    if target != "*" and trial_number != int(target or -1):
        return
    index = trial_number
    marker = Path(trial_dir) / ".hpo_attempts"
    marker.parent.mkdir(parents=True, exist_ok=True)
    attempt = int(marker.read_text()) + 1 if marker.exists() else 1
    marker.write_text(str(attempt))
    if attempt <= int(options.get("failures", 1)):
        raise InjectedFailure(f"injected failure in trial {index}, attempt {attempt}")


OOM_ENV = "HPO_FAULT_OOM_ABOVE"


def simulated_oom_limit() -> int | None:
    """``HPO_FAULT_OOM_ABOVE=N``: forward passes over more than N examples run out of memory
    (tests the automatic batch size without a GPU); None when unset."""
    value = os.environ.get(OOM_ENV, "")
    return int(value) if value else None


def check_simulated_oom(examples: int, limit: int | None) -> None:
    """Raise ``torch.OutOfMemoryError`` if ``examples`` exceeds the simulated limit."""
    if limit is not None and examples > limit:
        import torch

        raise torch.OutOfMemoryError(f"simulated: {examples} examples > {limit} ({OOM_ENV})")
