"""The driver's Optuna storage waits out a lost database connection and nothing else."""

from __future__ import annotations

from typing import Any

import optuna
import pytest
from optuna.exceptions import StorageInternalError
from sqlalchemy.exc import IntegrityError, OperationalError

from workers.resilient_storage import ResilientStorage, is_connection_loss, study_storage


def _wrapped(cause: Exception) -> StorageInternalError:
    try:
        raise StorageInternalError("An exception is raised during the commit.") from cause
    except StorageInternalError as exc:
        return exc


LOST = OperationalError("INSERT", {}, Exception("server closed the connection unexpectedly"))
BAD = IntegrityError("INSERT", {}, Exception("duplicate key value"))


class _Flaky:
    """A storage whose ``get_all_studies`` fails ``failures`` times, then answers."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    def get_all_studies(self) -> list[Any]:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return []


def test_connection_losses_are_told_apart_from_data_errors() -> None:
    assert is_connection_loss(LOST) and is_connection_loss(_wrapped(LOST))
    assert not is_connection_loss(BAD) and not is_connection_loss(_wrapped(BAD))


def test_a_lost_connection_is_retried_and_a_data_error_is_not() -> None:
    resilient: Any = ResilientStorage
    flaky = _Flaky(2, _wrapped(LOST))
    assert resilient(flaky, 30.0).get_all_studies() == [] and flaky.calls == 3
    broken = _Flaky(1, _wrapped(BAD))
    with pytest.raises(StorageInternalError):
        resilient(broken, 30.0).get_all_studies()
    assert broken.calls == 1
    gone = _Flaky(100, _wrapped(LOST))
    with pytest.raises(StorageInternalError):
        resilient(gone, 0.5).get_all_studies()  # patience spent: the loss is raised


def test_it_is_a_working_optuna_storage(tmp_path: Any) -> None:
    storage = study_storage(f"sqlite:///{tmp_path / 'o.db'}")
    study = optuna.create_study(storage=storage, study_name="s")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    loaded = optuna.load_study(study_name="s", storage=storage)
    assert len(loaded.trials) == 3 and loaded.best_value == study.best_value
