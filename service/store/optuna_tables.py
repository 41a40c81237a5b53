"""Core tables of Optuna's RDB schema, taken from Optuna's own models (Optuna owns the schema).

Using Optuna's column types matters: on PostgreSQL the state and direction columns are native
enums, which a plain VARCHAR comparison cannot match.
"""

from __future__ import annotations

from optuna.storages._rdb import models

studies = models.StudyModel.__table__
study_directions = models.StudyDirectionModel.__table__
trials = models.TrialModel.__table__
trial_params = models.TrialParamModel.__table__
trial_values = models.TrialValueModel.__table__
trial_intermediate_values = models.TrialIntermediateValueModel.__table__
trial_user_attributes = models.TrialUserAttributeModel.__table__
