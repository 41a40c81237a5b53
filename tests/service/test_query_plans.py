"""The incremental readers' query (``service.store.increments``) uses an index for each part on
SQLite: new trials by (study_id, number), known ones by primary key, whatever the number of ids
(with the study in the id lookup's condition, SQLite scanned the study's index from ~40 ids)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from sqlalchemy import text

from service.db import make_engine, metadata
from service.store.increments import _ABOVE_OR_AMONG
from service.store.indexes import ensure_indexes


@pytest.mark.parametrize("ids", [2, 40, 400])
def test_each_part_of_the_incremental_query_is_an_index_lookup(tmp_path: Path, ids: int) -> None:
    url = f"sqlite:///{tmp_path / 'plans.db'}"
    optuna.create_study(storage=url, study_name="plans")
    engine = make_engine(url)
    metadata.create_all(engine)
    ensure_indexes(engine)
    bound = _ABOVE_OR_AMONG.params(study_id=1, above=10, ids=list(range(1, ids + 1)))
    sql = str(bound.compile(engine, compile_kwargs={"literal_binds": True}))
    with engine.connect() as conn:
        plan = [row[-1] for row in conn.execute(text(f"EXPLAIN QUERY PLAN {sql}"))]
    engine.dispose()
    searches = [step for step in plan if step.startswith(("SEARCH", "SCAN"))]
    assert len(searches) == 2, plan
    assert "(study_id=? AND number>?)" in searches[0], plan
    assert "PRIMARY KEY" in searches[1], plan
