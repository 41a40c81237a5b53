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


# Optuna's tables the service queries; PostgreSQL plans their joins from their statistics.
ANALYZED_TABLES = ("trials", "trial_values", "trial_params", "trial_user_attributes", "studies")


def ensure_indexes(engine: Engine) -> None:
    """Create the indexes that are missing (idempotent, also against a concurrent start-up;
    Optuna's tables must exist), then refresh PostgreSQL's statistics of the tables.

    Without statistics (a database just restored or bulk-loaded, before autovacuum's analyze)
    PostgreSQL estimates a study's 100,000 trials as a handful and picks nested loops that make
    ``/best`` 40x slower; ``ANALYZE`` samples a fixed number of rows, so it stays cheap.
    """
    with engine.begin() as conn:
        for index in INDEXES:
            conn.execute(CreateIndex(index, if_not_exists=True))
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("ANALYZE " + ", ".join(ANALYZED_TABLES))
