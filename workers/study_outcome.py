"""How an attempt of a study that ran its trials ended: the driver's outcome line."""

from __future__ import annotations

from typing import Any


def attempt_outcome(
    results: list[Any],
    spent: int,
    failed_for_good: int | None,
    failure_limit: int | None,
    budget_reached: bool,
) -> tuple[bool, str]:
    """(succeeded, reason) from Tune's results of this attempt.

    Args:
        results: Tune's result of each trial of this attempt (``error`` set for a failed one).
        spent: trials earlier attempts finished.
        failed_for_good: when the failure budget stopped the study, the trials failed in all.
        failure_limit: ``budget.max_failed_trials``.
        budget_reached: the time budget ran out.
    """
    completed = sum(1 for r in results if r.error is None)
    failed = len(results) - completed
    if failed_for_good is not None:
        return False, (
            f"study failed: {failed_for_good} trials failed "
            f"(budget.max_failed_trials = {failure_limit})"
        )
    if completed == 0 and spent == 0:
        errors = [str(r.error).strip().splitlines()[-1] for r in results if r.error is not None]
        last = errors[-1] if errors else "no trial ran"
        return False, f"study failed: all {len(results)} trials failed (last error: {last[:300]})"
    if budget_reached:
        return True, (
            f"study finished: time budget reached after {spent + completed} trials "
            f"({failed} failed in this attempt)"
        )
    return True, f"study finished: {spent + completed} trials completed, {failed} failed"
