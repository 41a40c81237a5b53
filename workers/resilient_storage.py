"""The study driver's Optuna storage, riding out a database that restarts.

A PostgreSQL restart (or failover) breaks every pooled connection and refuses new ones for a
few seconds; Optuna turns that into ``StorageInternalError`` and the study would fail. Here each
storage call that fails because the connection did is retried with backoff for up to
``PATIENCE_S`` (pooled connections are checked before use, so a retry gets a live one). Errors
of the data itself (integrity, bad values) are raised at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from optuna.exceptions import StorageInternalError
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages._cached_storage import _CachedStorage
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

log = logging.getLogger(__name__)

PATIENCE_S = 120.0  # how long a call waits for the database to come back


def is_connection_loss(exc: BaseException) -> bool:
    """Whether ``exc`` (or what Optuna wrapped) is a lost or refused database connection."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OperationalError | InterfaceError):
            return True
        if isinstance(cause, DBAPIError) and cause.connection_invalidated:
            return True
        cause = cause.__cause__ or cause.__context__
    return False


class ResilientStorage(BaseStorage):
    """An Optuna storage whose calls wait out a lost database connection (every public method
    of ``BaseStorage`` is a retrying call of ``inner``'s, set below)."""

    def __init__(self, inner: BaseStorage, patience_s: float = PATIENCE_S) -> None:
        self.inner = inner
        self.patience_s = patience_s

    def __getattr__(self, name: str) -> Any:  # anything else the inner storage offers
        return getattr(self.__dict__["inner"], name)


def _retrying(name: str) -> Callable[..., Any]:
    def call(self: ResilientStorage, *args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + self.patience_s
        delay = 0.25
        while True:
            try:
                return getattr(self.inner, name)(*args, **kwargs)
            except (StorageInternalError, DBAPIError) as exc:
                if not is_connection_loss(exc) or time.monotonic() + delay > deadline:
                    raise
                log.warning("database unreachable in %s (%s); retrying in %.1f s", name, exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    call.__name__ = name
    return call


for _name in dir(BaseStorage):
    if not _name.startswith("_") and callable(getattr(BaseStorage, _name)):
        setattr(ResilientStorage, _name, _retrying(_name))
ResilientStorage.__abstractmethods__ = frozenset()


def study_storage(database_url: str, patience_s: float = PATIENCE_S) -> BaseStorage:
    """Optuna's cached RDB storage on ``database_url``, retried through connection losses."""
    kwargs: dict[str, Any] = (
        {"connect_args": {"timeout": 60}}
        if database_url.startswith("sqlite")
        else {"pool_pre_ping": True}
    )
    rdb = RDBStorage(database_url, engine_kwargs=kwargs)
    resilient: Any = ResilientStorage  # its methods are set after the class is made
    return resilient(_CachedStorage(rdb), patience_s)
