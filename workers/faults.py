"""Test-only failure injection, off unless ``HPO_FAULT_INJECTION`` is set.

``HPO_FAULT_INJECTION="trial=1,failures=2"`` makes the trial with Tune index 1 raise on its
first two attempts (so ``max_failures`` ≥ 2 retries it to success, fewer records a failure).
"""

from __future__ import annotations

import os
from pathlib import Path

FAULT_ENV = "HPO_FAULT_INJECTION"


class InjectedFailure(RuntimeError):
    """Raised on purpose by failure injection."""


def maybe_fail(trial_id: str, trial_dir: str) -> None:
    """Raise ``InjectedFailure`` if the injection setting targets this trial and attempt."""
    setting = os.environ.get(FAULT_ENV, "")
    if not setting:
        return
    options = dict(part.split("=", 1) for part in setting.split(",") if "=" in part)
    index = int(trial_id.rsplit("_", 1)[-1])
    if index != int(options.get("trial", -1)):
        return
    marker = Path(trial_dir) / ".hpo_attempts"
    attempt = int(marker.read_text()) + 1 if marker.exists() else 1
    marker.write_text(str(attempt))
    if attempt <= int(options.get("failures", 1)):
        raise InjectedFailure(f"injected failure in trial {index}, attempt {attempt}")
