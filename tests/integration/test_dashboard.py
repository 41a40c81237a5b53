"""optuna-dashboard at /dashboard and the MLflow UI, in a real headless Chromium (Debian's, driven
by Playwright): the dashboard shows a finished study in the user's names (its name in the list,
its objective's metric, its attributes), offers no write it would refuse, and lists the trials;
the MLflow UI shows the same study's runs (a screenshot of it illustrates the README).

Needs Debian's ``chromium`` (``make browser`` installs it; ``make test`` depends on it).
``HPO_SCREENSHOT_DIR=docs`` writes the screenshot where the README takes it from.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from service.local_server import Server
from tests.conftest import TRACKED_EXPERIMENT, trials_of
from tests.mlflow_server import MlflowServer

pytestmark = pytest.mark.integration

SCREENSHOT = "mlflow-study.png"


@pytest.fixture(scope="module")
def page() -> Iterator[Page]:
    """A page of headless Chromium, 1500x850."""
    browser_path = shutil.which("chromium")
    if browser_path is None:
        pytest.fail("headless Chromium is missing: run `make browser`")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=browser_path, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        opened = browser.new_page(viewport={"width": 1500, "height": 850})
        opened.set_default_timeout(90_000)  # the first load of a 6 MB bundle on a busy machine
        expect.set_options(timeout=90_000)
        yield opened
        browser.close()


def test_dashboard_speaks_the_users_names(
    page: Page, server: Server, api: httpx.Client, tracked_study: dict[str, Any]
) -> None:
    study_id, name = tracked_study["id"], tracked_study["optuna_study_name"]
    assert name == f"sst2-toy-{study_id}"

    # The list: the user's name, and no create / rename / delete (hidden, the reason shown).
    page.goto(f"{server.url}/dashboard/")
    expect(page.get_by_text(name)).to_be_visible()
    expect(page.get_by_role("button", name="Reload")).to_be_visible()
    expect(page.get_by_role("button", name="Create")).to_have_count(0)  # not exposed
    for label in ("rename study", "delete study"):
        hidden = page.locator(f'button[aria-label="{label}"]')
        expect(hidden.first).to_be_attached()
        expect(hidden.first).to_be_hidden()
    expect(page.locator("#hpo-read-only")).to_contain_text("Read-only here: studies are created")

    # The study: its objective drawn as the metric, its attributes in the user's terms.
    summaries = api.get("/dashboard/api/studies").json()["study_summaries"]
    (optuna_id,) = [s["study_id"] for s in summaries if s["study_name"] == name]
    page.goto(f"{server.url}/dashboard/studies/{optuna_id}")
    expect(page.locator("text.ytitle", has_text="eval_f1").first).to_be_visible()
    expect(page.get_by_text("Objective 0")).to_have_count(0)
    expect(page.get_by_text("Study User Attributes")).to_be_visible()
    attributes = {
        "name": "sst2-toy",
        "algorithm": "random (seed=5)",
        "scheduler": "asha on eval_f1 (grace_period=1)",
        "task": "toy objective, 3 epochs",
        "service_url": f"{server.url}/studies/{study_id}",
    }
    for key, value in attributes.items():
        row = page.get_by_role("row").filter(has=page.get_by_role("cell", name=key, exact=True))
        expect(row).to_contain_text(value)

    # The trials, each in its state; a note cannot be edited here.
    trials = sorted(trials_of(api, study_id), key=lambda t: t["number"])
    page.goto(f"{server.url}/dashboard/studies/{optuna_id}/trials")
    expect(page.get_by_text(f"{len(trials)} Trials")).to_be_visible()
    for trial in trials:
        state = trial["state"].capitalize()  # Complete | Pruned
        label = re.compile(rf"^Trial {trial['number']} {state}\b")  # (the best: "… Best Trial")
        expect(page.get_by_role("button", name=label)).to_be_visible()
    expect(page.locator('button:has(svg[data-testid="EditIcon"])').first).to_be_hidden()


def test_mlflow_ui_shows_the_tracked_study(
    page: Page, mlflow_server: MlflowServer, tracked_study: dict[str, Any], tmp_path: Path
) -> None:
    uri = mlflow_server.ready()
    experiment = httpx.get(
        f"{uri}/api/2.0/mlflow/experiments/get-by-name",
        params={"experiment_name": TRACKED_EXPERIMENT},
    ).json()["experiment"]
    page.goto(f"{uri}/#/experiments/{experiment['experiment_id']}/runs")
    study_run = page.get_by_role("link", name="sst2-toy", exact=True)
    expect(study_run).to_be_visible()
    assistant = page.get_by_role("button", name="Close")  # MLflow 3's assistant panel
    if assistant.count():
        assistant.first.click()
    row = page.locator('div[role="row"]').filter(has=study_run)
    row.locator('button[data-component-id*="runnamecellrenderer"]').click()  # its trials
    for number in range(4):
        expect(page.get_by_role("link", name=f"trial-{number}", exact=True)).to_be_visible()
    page.locator('label:has(input[value="CHART"])').click()
    page.get_by_placeholder("Search metric charts").fill("eval_f1")
    expect(page.get_by_text("eval_f1", exact=True).first).to_be_visible()
    page.wait_for_timeout(1500)  # the charts' drawing animation
    target = Path(os.environ.get("HPO_SCREENSHOT_DIR") or tmp_path) / SCREENSHOT
    page.screenshot(path=str(target))
    assert target.stat().st_size > 20_000
