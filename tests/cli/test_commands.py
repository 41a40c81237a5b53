"""Every ``hpo`` command against the real shared server (local Ray, SQLite, toy objective)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from service.cli import app
from service.client import Client
from service.local_server import Server
from tests.conftest import toy_spec

pytestmark = pytest.mark.integration
runner = CliRunner()


def hpo(server: Server, *args: str) -> Result:
    """Run one CLI command in-process against the shared server."""
    return runner.invoke(app, [*args, "--url", server.url])


def spec_file(tmp_path: Path, name: str, **extra: Any) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(toy_spec(name, **extra)))
    return path


@pytest.fixture(scope="module")
def finished(server: Server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A toy study submitted with ``hpo submit --wait --json`` and followed to its end."""
    path = spec_file(tmp_path_factory.mktemp("cli"), "cli-study", n_trials=4)
    result = hpo(server, "submit", str(path), "--wait", "--json")
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def test_submit_wait_json_reports_the_final_study(finished: dict[str, Any]) -> None:
    assert finished["status"] == "SUCCEEDED"
    assert finished["trial_counts"]["COMPLETE"] == 4
    assert finished["best_value"] is not None


def test_submit_wait_shows_progress_then_exits_zero(server: Server, tmp_path: Path) -> None:
    result = hpo(server, "submit", str(spec_file(tmp_path, "cli-progress")), "--wait")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines[0]) == 32 and lines[0].isalnum()  # the study id comes first
    assert any("SUCCEEDED: 3/3 trials done (3 complete, 0 pruned, 0 failed)" in x for x in lines)
    assert "ETA 0s" in lines[-1] or "ETA 0s" in result.stdout


def test_ls_lists_the_study_in_json_and_as_a_table(server: Server, finished: dict) -> None:
    listed = json.loads(hpo(server, "ls", "--json", "--status", "SUCCEEDED").stdout)
    assert finished["id"] in [s["id"] for s in listed["data"]]
    assert all(s["status"] == "SUCCEEDED" for s in listed["data"])
    table = hpo(server, "ls", "--limit", "100")
    assert table.exit_code == 0
    assert finished["id"] in table.stdout and "cli-study" in table.stdout
    assert "4/4" in table.stdout


def test_show_prints_the_study(server: Server, finished: dict) -> None:
    shown = json.loads(hpo(server, "show", finished["id"], "--json").stdout)
    assert shown["id"] == finished["id"] and [h["status"] for h in shown["history"]][-1] == (
        "SUCCEEDED"
    )
    table = hpo(server, "show", finished["id"]).stdout
    assert "4 complete" in table and finished["optuna_study_name"] in table


def test_trials_sorts_limits_and_tables(server: Server, finished: dict) -> None:
    result = hpo(server, "trials", finished["id"], "--sort", "value", "--limit", "2", "--json")
    page = json.loads(result.stdout)
    assert page["count"] == 4 and len(page["data"]) == 2
    values = [t["value"] for t in page["data"]]
    assert values == sorted(values, reverse=True)  # accuracy: best first
    assert values[0] == finished["best_value"]
    table = hpo(server, "trials", finished["id"], "--state", "COMPLETE").stdout
    assert "4 of 4 trials" in table and "learning_rate" in table
    bad = hpo(server, "trials", finished["id"], "--state", "DONE")
    assert bad.exit_code == 2 and "Traceback" not in bad.output


def test_best_matches_the_api(server: Server, finished: dict) -> None:
    best = json.loads(hpo(server, "best", finished["id"], "--json").stdout)
    with Client(server.url) as client:
        assert best == client.best(finished["id"]).model_dump(mode="json")
    assert best["value"] == finished["best_value"]
    table = hpo(server, "best", finished["id"]).stdout
    assert f"trial #{best['number']}" in table and "param learning_rate" in table


def test_pareto_of_one_objective_is_the_best(server: Server, finished: dict) -> None:
    front = json.loads(hpo(server, "pareto", finished["id"], "--json").stdout)
    assert [t["value"] for t in front["data"]] == [finished["best_value"]]


def test_watch_replays_the_event_stream_to_the_final_status(server: Server, finished: dict) -> None:
    result = hpo(server, "watch", finished["id"], "--json")
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds.count("trial_completed") == 4
    assert events[-1]["event"] == "status" and events[-1]["data"]["status"] == "SUCCEEDED"
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    later = hpo(server, "watch", finished["id"], "--since", str(events[-2]["id"]), "--json")
    assert [json.loads(x)["id"] for x in later.stdout.splitlines()] == [events[-1]["id"]]
    human = hpo(server, "watch", finished["id"]).stdout
    assert "status SUCCEEDED" in human and "trial_completed" in human


def test_plots_writes_png_and_html(server: Server, finished: dict, tmp_path: Path) -> None:
    result = hpo(server, "plots", finished["id"], str(tmp_path / "plots"), "--json")
    assert result.exit_code == 0, result.output
    files = [Path(p) for p in json.loads(result.stdout)["files"]]
    names = {p.name for p in files}
    assert {"optimization_history.png", "optimization_history.html"} <= names
    assert {"parallel_coordinate.png", "param_importances.png"} <= names
    for path in files:
        head = path.read_bytes()[:16]
        assert head.startswith(b"\x89PNG") if path.suffix == ".png" else b"html>" in head
        assert path.stat().st_size > 1000
    html = (tmp_path / "plots" / "optimization_history.html").read_text()
    assert "plotly" in html and "eval_accuracy" in html


def test_errors_are_one_line_and_exit_non_zero(
    server: Server, finished: dict, tmp_path: Path
) -> None:
    checks = {
        ("cancel", finished["id"]): "HTTP 409",
        ("show", "no-such-study"): "HTTP 404: study 'no-such-study' not found",
        ("export", finished["id"], str(tmp_path / "model")): "HTTP 404",
    }
    bad_spec = tmp_path / "bad.yaml"
    bad_spec.write_text(yaml.safe_dump(toy_spec("bad", n_trials=0)))
    checks[("submit", str(bad_spec))] = "budget.n_trials"
    for args, expected in checks.items():
        result = hpo(server, *args)
        assert result.exit_code == 1, (args, result.output)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and expected in lines[0], (args, lines)


def test_rm_deletes_a_finished_study(server: Server, tmp_path: Path) -> None:
    submitted = hpo(server, "submit", str(spec_file(tmp_path, "cli-rm", n_trials=1)), "--wait")
    study_id = submitted.stdout.splitlines()[0]
    assert hpo(server, "rm", study_id).exit_code == 0
    gone = hpo(server, "show", study_id)
    assert gone.exit_code == 1 and "not found" in gone.output


def test_cancelled_study_makes_submit_wait_exit_one(server: Server, tmp_path: Path) -> None:
    """The real ``hpo`` executable, cancelled from a second one while it waits."""
    path = spec_file(tmp_path, "cli-cancel", n_trials=60, epochs=60)
    env_url = ["--url", server.url]
    waiting = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "submit", str(path), "--wait", *env_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert waiting.stdout is not None
    study_id = waiting.stdout.readline().strip()
    with Client(server.url) as client:
        deadline = time.monotonic() + 300
        while client.study(study_id).status != "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.25)
    cancel = subprocess.run(
        [sys.executable, "-m", "service.cli", "cancel", study_id, *env_url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cancel.returncode == 0, cancel.stderr
    assert f"{study_id}: CANCELLED" in cancel.stdout
    rest, _ = waiting.communicate(timeout=300)
    assert waiting.returncode == 1
    assert "CANCELLED:" in rest


def test_api_key_is_sent_as_a_bearer_token(server: Server) -> None:
    with Client(server.url, api_key="k-123") as client:
        sent = client._http.build_request("GET", "/studies").headers["Authorization"]
    assert sent == "Bearer k-123"
