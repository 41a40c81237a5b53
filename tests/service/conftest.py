"""Fixtures of the store tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from service.db import make_engine, metadata


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on the test's fresh database, with the service's tables."""
    engine = make_engine(database_url)
    metadata.create_all(engine)
    yield engine
    engine.dispose()
