"""The in-process app with the stand-in dispatcher, confined to roots under ``tmp_path``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings
from tests.conftest import submit, toy_spec
from tests.service.test_api import IN_PROCESS_HOSTS, RecordingDispatcher


@pytest.fixture
def roots(tmp_path: Path) -> dict[str, Path]:
    """A data root and a model root (with a model directory), and a directory outside both."""
    found = {name: tmp_path / name for name in ("data", "models", "outside")}
    for path in found.values():
        path.mkdir()
    (found["data"] / "train.tsv").write_text("sentence\tlabel\ngood\t1\nbad\t0\n")
    (found["outside"] / "secret.tsv").write_text("sentence\tlabel\nTOP-SECRET\t1\n")
    for parent in (found["models"], found["outside"]):
        (parent / "bert").mkdir()
        (parent / "bert" / "config.json").write_text("{}")
    return found


@pytest.fixture
def settings(tmp_path: Path, roots: dict[str, Path]) -> Settings:
    return Settings(
        allowed_hosts=IN_PROCESS_HOSTS,
        database_url=f"sqlite:///{tmp_path / 'api.db'}",
        state_dir=tmp_path / "state",
        poll_interval_s=0.05,
        data_roots=[roots["data"]],
        model_roots=[roots["models"]],
        max_body_bytes=64 * 1024,
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, dispatcher=RecordingDispatcher())) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def cancelled_study(api: httpx.Client) -> str:
    """A study of the shared server, cancelled at once: its trials and events are there to be
    queried, and it holds no running slot."""
    study_id = submit(api, toy_spec("security-cancelled", n_trials=1, epochs=1))
    assert api.post(f"/studies/{study_id}/cancel").status_code == 200
    return study_id
