"""Read-only Core views of the Optuna RDB tables the service queries (Optuna owns the schema)."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Float, Integer, MetaData, String, Table, Text

optuna_metadata = MetaData()

studies = Table(
    "studies",
    optuna_metadata,
    Column("study_id", Integer, primary_key=True),
    Column("study_name", String(512)),
)
study_directions = Table(
    "study_directions",
    optuna_metadata,
    Column("study_id", Integer),
    Column("objective", Integer),
    Column("direction", String(16)),
)
trials = Table(
    "trials",
    optuna_metadata,
    Column("trial_id", Integer, primary_key=True),
    Column("number", Integer),
    Column("study_id", Integer),
    Column("state", String(16)),
    Column("datetime_start", DateTime),
    Column("datetime_complete", DateTime),
)
trial_params = Table(
    "trial_params",
    optuna_metadata,
    Column("trial_id", Integer),
    Column("param_name", String(512)),
    Column("param_value", Float),
    Column("distribution_json", Text),
)
trial_values = Table(
    "trial_values",
    optuna_metadata,
    Column("trial_id", Integer),
    Column("objective", Integer),
    Column("value", Float),
    Column("value_type", String(16)),
)
trial_intermediate_values = Table(
    "trial_intermediate_values",
    optuna_metadata,
    Column("trial_id", Integer),
    Column("step", Integer),
    Column("intermediate_value", Float),
    Column("intermediate_value_type", String(16)),
)
trial_user_attributes = Table(
    "trial_user_attributes",
    optuna_metadata,
    Column("trial_id", Integer),
    Column("key", String(512)),
    Column("value_json", Text),
)
