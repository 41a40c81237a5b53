"""Indexes the service adds to Optuna's tables for its page, count and best queries."""

from __future__ import annotations

from sqlalchemy import Engine, Index
from sqlalchemy.schema import CreateIndex

from service.store.optuna_tables import trial_values, trials

INDEXES = (
    # Counts by state, state filters and keyset pages in trial-number order.
    Index("ix_hpo_trials_study_state_number", trials.c.study_id, trials.c.state, trials.c.number),
    Index("ix_hpo_trials_study_number", trials.c.study_id, trials.c.number),
    # Value-ordered scans for /best and ?sort=value.
    Index("ix_hpo_trial_values_objective_value", trial_values.c.objective, trial_values.c.value),
)


def ensure_indexes(engine: Engine) -> None:
    """Create the indexes that are missing (idempotent, also against a concurrent start-up;
    Optuna's tables must exist)."""
    with engine.begin() as conn:
        for index in INDEXES:
            conn.execute(CreateIndex(index, if_not_exists=True))
