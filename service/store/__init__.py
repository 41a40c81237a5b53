"""The store: the service's study rows and read-only queries on Optuna's trial tables."""

from service.store.studies import StudyRecord, StudyStore
from service.store.trials import TrialQueries

__all__ = ["StudyRecord", "StudyStore", "TrialQueries"]
