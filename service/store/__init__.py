"""The store: study rows, the event log, and read-only queries on Optuna's trial tables."""

from service.statuses import ACTIVE_STATES, FINAL_STATES
from service.store.events import EventStore, StudyEvent
from service.store.studies import StudyRecord, StudyStore
from service.store.trials import TrialQueries

__all__ = [
    "ACTIVE_STATES",
    "FINAL_STATES",
    "EventStore",
    "StudyEvent",
    "StudyRecord",
    "StudyStore",
    "TrialQueries",
]
