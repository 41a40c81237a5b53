"""Which saved models MLflow gets in the transformers flavour (the others: as a directory)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workers.mlflow_model import pipeline_task


@pytest.mark.parametrize(
    ("architectures", "task"),
    [
        (["BertForSequenceClassification"], "text-classification"),
        (["DistilBertForTokenClassification"], "token-classification"),
        (["BertForMaskedLM"], None),  # a plugin task's head: logged as the saved directory
        ([], None),
    ],
)
def test_the_pipeline_task_comes_from_the_saved_head(
    tmp_path: Path, architectures: list[str], task: str | None
) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"architectures": architectures}))
    assert pipeline_task(tmp_path) == task


def test_a_directory_without_a_config_has_no_pipeline_task(tmp_path: Path) -> None:
    assert pipeline_task(tmp_path) is None
