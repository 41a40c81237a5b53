"""The progress line and ETA of ``submit --wait`` (pure functions), and its live terminal view
against the real shared server."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from rich.console import Console

from service.client import Client
from service.commands.progress import follow, progress_line
from service.local_server import Server
from service.schemas import StudyPublic
from tests.conftest import toy_spec

START = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


def study(status: str, counts: dict[str, int], **budget: Any) -> StudyPublic:
    return StudyPublic(
        id="s",
        name="n",
        status=status,
        status_reason=None,
        attempts=1,
        spec={"budget": {"n_trials": 10, **budget}},
        optuna_study_name="hpo-s",
        trial_counts=counts,
        best_value=0.8125,
        ray_job_id=None,
        dashboard_url=None,
        created_at=START,
        started_at=START,
        finished_at=None,
    )


def test_progress_line_counts_and_eta_from_the_pace_so_far() -> None:
    running = study("RUNNING", {"COMPLETE": 3, "PRUNED": 1, "RUNNING": 2})
    line = progress_line(running, now=START + timedelta(seconds=80))
    assert line == (
        "RUNNING: 4/10 trials done (3 complete, 1 pruned, 0 failed), 2 running; "
        "best 0.8125; ETA 2m00s"  # 20 s per finished trial, 6 left
    )


def test_eta_is_capped_by_the_time_budget_and_unknown_before_a_result() -> None:
    capped = study("RUNNING", {"COMPLETE": 1}, time_budget_s=100)
    assert progress_line(capped, now=START + timedelta(seconds=90)).endswith("ETA 10s")
    assert progress_line(study("RUNNING", {"RUNNING": 1}), now=START).endswith("ETA ?")
    assert progress_line(study("SUCCEEDED", {"COMPLETE": 10})).endswith("ETA 0s")


@pytest.mark.integration
def test_live_view_on_a_terminal_ends_on_the_final_line(server: Server) -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=200)
    with Client(server.url) as client:
        submitted = client.submit(json.dumps(toy_spec("live", n_trials=2)))
        final = follow(client, submitted.id, console, poll_s=0.5)
    assert final.status == "SUCCEEDED"
    assert "SUCCEEDED: 2/2 trials done (2 complete, 0 pruned, 0 failed)" in screen.getvalue()
    assert "\x1b[" in screen.getvalue()  # drawn with terminal control codes, in place


@pytest.mark.integration
def test_client_all_trials_follows_cursors_across_pages(server: Server) -> None:
    with Client(server.url) as client:
        submitted = client.submit(json.dumps(toy_spec("pages", n_trials=5)))
        assert client.wait(submitted.id, timeout_s=600).status == "SUCCEEDED"
        pages = [client.trials(submitted.id, limit=2)]
        while pages[-1].next_cursor:
            pages.append(client.trials(submitted.id, limit=2, cursor=pages[-1].next_cursor))
        every = client.all_trials(submitted.id)
        by_value = client.all_trials(submitted.id, sort="value")
    assert len(pages) == 3
    assert [t.number for p in pages for t in p.data] == [t.number for t in every] == list(range(5))
    assert [t.value for t in by_value] == sorted((t.value for t in every), reverse=True)
