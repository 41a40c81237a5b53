"""Test-only failure injection, off unless ``HPO_FAULT_INJECTION`` or ``HPO_FAULT_OOM_ABOVE``
is set.

``HPO_FAULT_INJECTION="trial=1,failures=2"`` makes Optuna trial number 1 raise on its first
two attempts (so ``max_failures`` ≥ 2 retries it to success, fewer records a failure);
``trial=*`` targets every trial. With ``after_epoch=E`` the trial raises right after it has
reported (and checkpointed) epoch E instead of at its start, on its first ``failures``
attempts that get there: ``"trial=0,after_epoch=2,failures=1"`` makes trial 0 fail once after
epoch 2, so a retry resumes from its epoch-2 checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path

FAULT_ENV = "HPO_FAULT_INJECTION"


class InjectedFailure(RuntimeError):
    """Raised on purpose by failure injection."""


def _options(trial_number: int | None) -> dict[str, str] | None:
    """The injection options if they target this trial, else None."""
    setting = os.environ.get(FAULT_ENV, "")
    if not setting or trial_number is None:
        return None
    options = dict(part.split("=", 1) for part in setting.split(",") if "=" in part)
    target = options.get("trial", "")
    if target != "*" and trial_number != int(target or -1):
        return None
    return options


def maybe_fail(trial_number: int | None, trial_dir: str) -> None:
    """Raise ``InjectedFailure`` if the injection setting targets this trial and attempt."""
    options = _options(trial_number)
    if options is None or "after_epoch" in options:
        return
    _count_and_fail(options, trial_number, trial_dir, ".hpo_attempts", "")


def maybe_fail_after_epoch(trial_number: int | None, epoch: int, trial_dir: str) -> None:
    """Raise ``InjectedFailure`` after epoch ``epoch`` (1-based) has been reported, if the
    setting's ``after_epoch`` names it and this attempt is one of the first ``failures``."""
    options = _options(trial_number)
    if options is None or options.get("after_epoch") != str(epoch):
        return
    _count_and_fail(
        options, trial_number, trial_dir, ".hpo_epoch_failures", f" after epoch {epoch}"
    )


def _count_and_fail(
    options: dict[str, str], index: int | None, trial_dir: str, name: str, where: str
) -> None:
    marker = Path(trial_dir) / name
    marker.parent.mkdir(parents=True, exist_ok=True)
    attempt = int(marker.read_text()) + 1 if marker.exists() else 1
    marker.write_text(str(attempt))
    if attempt <= int(options.get("failures", 1)):
        raise InjectedFailure(f"injected failure in trial {index}{where}, attempt {attempt}")


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
