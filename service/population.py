"""What pausing and population schedulers leave with a trial: whether it is paused, and for
PBT and PB2 its lineage and the hyperparameter schedule that trained it.

A trial paused by its scheduler (synchronous Hyperband, BOHB, PBT) stays RUNNING in Optuna with
the ``paused`` user attribute set by the study driver (``workers.search``); the service shows
it as ``PAUSED``.

PBT and PB2 copy a better trial's checkpoint into a worse one and change its hyperparameters
(``workers.population``); each such exploit step is one ``lineage`` entry ``{epoch,
from_trial, params}`` of the trial that copied. The weights of a trial's last checkpoint were
trained by its source up to the copied epoch, under the source's own schedule until then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the CLI client imports the schemas, and so this, without SQLAlchemy
    from service.store.trials import TrialRecord

PAUSED = "PAUSED"


def is_paused(state: str, user_attrs: dict[str, Any]) -> bool:
    """Whether a trial in ``state`` with these user attributes is paused by its scheduler."""
    return state == "RUNNING" and user_attrs.get("paused") is True


def lineage(trial: TrialRecord) -> list[dict[str, Any]]:
    """The trial's exploit steps, oldest first (empty: it was never exploited)."""
    found = trial.user_attrs.get("lineage")
    return [entry for entry in found if isinstance(entry, dict)] if isinstance(found, list) else []


def schedule(trial: TrialRecord, by_number: dict[int, TrialRecord]) -> list[dict[str, Any]]:
    """What trained the trial's final weights, as ``{from_epoch, trial, params}`` steps: the
    hyperparameters from ``from_epoch`` on (until the next step), and the trial that trained
    with them. Following each last exploit back to its source, truncated at the copied epoch,
    reproduces the winner."""
    return _until(trial, by_number, None, depth=0)


def _until(
    trial: TrialRecord, by_number: dict[int, TrialRecord], until: int | None, depth: int
) -> list[dict[str, Any]]:
    steps = [s for s in lineage(trial) if until is None or int(s.get("epoch", 0)) < until]
    source = by_number.get(steps[-1].get("from_trial", -1)) if steps else None
    if not steps or source is None or depth > len(by_number):
        return [{"from_epoch": 0, "trial": trial.number, "params": trial.params}]
    last = steps[-1]
    epoch = int(last.get("epoch", 0))
    before = _until(source, by_number, epoch, depth + 1)
    return [*before, {"from_epoch": epoch, "trial": trial.number, "params": last.get("params")}]
