"""optuna-dashboard at /dashboard, in a real headless Chromium: the single-page app loads, calls
its API under the mount and shows a finished study and its trials.

Needs Debian's ``chromium`` (``make browser`` installs it; ``make test`` depends on it).
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from service.local_server import Server
from tests.conftest import toy_spec, wait_final

pytestmark = pytest.mark.integration

N_TRIALS = 3


def chromium_text(url: str, profile: Path, expect: str, timeout_s: float = 90) -> str:
    """The visible text of ``url`` once the app rendered it, read from the DOM headless
    Chromium dumps after running the page's scripts (retried until ``expect`` shows up: the
    first run may still be loading the 6 MB bundle on a busy machine)."""
    browser = shutil.which("chromium")
    if browser is None:
        pytest.fail("headless Chromium is missing: run `make browser`")
    deadline = time.monotonic() + timeout_s
    text = ""
    while time.monotonic() < deadline:
        dom = subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=15000",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        ).stdout
        text = visible_text(dom)
        if expect in text:
            return text
        time.sleep(1)
    return text


def visible_text(dom: str) -> str:
    dom = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S | re.I)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", dom))).strip()


def test_dashboard_shows_the_study_and_its_trials(
    server: Server, api: httpx.Client, tmp_path: Path
) -> None:
    study_id = api.post("/studies", json=toy_spec("dashboard", n_trials=N_TRIALS)).json()["id"]
    study = wait_final(api, study_id, timeout_s=600)
    assert study["status"] == "SUCCEEDED"
    name = str(study["optuna_study_name"])
    counts = dict(study["trial_counts"])  # type: ignore[call-overload]
    assert counts["COMPLETE"] == N_TRIALS

    # The study list: the app fetched /dashboard/api/studies and rendered the study's name.
    home = chromium_text(f"{server.url}/dashboard/", tmp_path / "profile", name)
    assert name in home, home[:2000]

    # The study's trial list, by optuna-dashboard's own (Optuna) study id.
    summaries = api.get("/dashboard/api/studies").json()["study_summaries"]
    (optuna_id,) = [s["study_id"] for s in summaries if s["study_name"] == name]
    url = f"{server.url}/dashboard/studies/{optuna_id}/trials"
    page = chromium_text(url, tmp_path / "profile", f"{N_TRIALS} Trials")
    assert name in page, page[:2000]
    assert f"{N_TRIALS} Trials" in page, page[:2000]
    for number in range(N_TRIALS):
        assert f"Trial {number} Complete" in page, page[:2000]
    assert f"Trial {N_TRIALS} " not in page
